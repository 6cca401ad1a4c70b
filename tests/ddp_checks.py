"""Checks of :mod:`gencourse.train.distributed` on 2 gloo ranks, in float64 (tests only).

Run as ``torchrun --nproc_per_node=2 tests/ddp_checks.py``; each check compares what the ranks
compute on their halves of a batch with one process on the whole batch, and raises if they differ.
"""
import datetime
import sys

import torch
import torch.distributed as dist
from torch import nn

from gencourse.gan import losses, networks
from gencourse.train import distributed

torch.set_default_dtype(torch.float64)


def halves(t, rank, world):
    n = len(t) // world
    return t[rank * n: (rank + 1) * n]


def close(a, b, what):
    err = float((a - b).abs().max())
    if not err < 1e-10:
        raise AssertionError(f"{what}: ranks differ from one process by {err:.3g}")


def check_batchnorm(rank, world):
    """GlobalBatchNorm on each half == BatchNorm2d on the whole batch: outputs, input and parameter
    gradients of the global mean loss, running statistics after two calls."""
    torch.manual_seed(0)
    full = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 1, 1))
    with torch.no_grad():
        full[1].weight.uniform_(0.5, 2.0), full[1].bias.uniform_(-1, 1)
    local = distributed.convert_batchnorm(torch.nn.Sequential(*[m for m in _copy(full)]))
    assert isinstance(local[1], distributed.GlobalBatchNorm)
    x = torch.randn(8, 2, 6, 6) * 3 + 5                        # same on every rank (same seed)
    target = torch.randn(8, 1, 4, 4)
    for call in range(2):
        xf = x.clone().requires_grad_(True)
        yf = full(xf)
        ((yf - target) ** 2).mean().backward()
        xl = halves(x, rank, world).clone().requires_grad_(True)
        yl = local(xl)
        ((yl - halves(target, rank, world)) ** 2).mean().backward()
        distributed.average_gradients(local.parameters())
        close(yl, halves(yf, rank, world), "batch-norm output")
        close(xl.grad / world, halves(xf.grad, rank, world), "input gradient")
        for (n, pf), pl in zip(full.named_parameters(), local.parameters()):
            close(pl.grad, pf.grad, f"gradient of {n}")
            pf.grad = pl.grad = None
        x = x + 1.0
    for n in ("running_mean", "running_var", "num_batches_tracked"):
        close(getattr(local[1], n).double(), getattr(full[1], n).double(), n)
    local.eval(), full.eval()
    close(local(x), full(x), "eval-mode output")


def _copy(module):
    import copy
    return copy.deepcopy(module)


def check_gradient_penalty(rank, world):
    """WGAN-GP critic loss with the penalty through torch.autograd.grad (create_graph), on the plain
    critic: averaged over ranks it is the one-process gradient of the global batch."""
    torch.manual_seed(1)
    critic = networks.DCDiscriminator(8, norm="none")
    real, fake, eps = torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28), torch.rand(8)

    def loss(r, f, e):
        return losses.critic_loss(critic(r), critic(f)) + 10 * losses.gradient_penalty(critic, r, f, eps=e)

    loss(real, fake, eps).backward()
    want = [p.grad.clone() for p in critic.parameters()]
    critic.zero_grad(set_to_none=True)
    loss(halves(real, rank, world), halves(fake, rank, world), halves(eps, rank, world)).backward()
    distributed.average_gradients(critic.parameters())
    for (n, p), g in zip(critic.named_parameters(), want):
        close(p.grad, g, f"critic gradient of {n}")


def check_broadcast_and_missing_grads(rank, world):
    """broadcast_state copies rank 0's weights; a parameter without a gradient keeps grad=None."""
    torch.manual_seed(rank)                                    # different weights on each rank
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    distributed.broadcast_state({"a": a, "b": b})
    w = a.weight.detach().clone()
    dist.all_reduce(w)
    close(w / world, a.weight.detach(), "broadcast weights")
    a(torch.randn(4, 3)).sum().backward()
    distributed.average_gradients([*a.parameters(), *b.parameters()])
    assert b.weight.grad is None and a.weight.grad is not None


def main():
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))  # a failing rank cannot hang
    rank, world = distributed.rank_world()
    for check in (check_batchnorm, check_gradient_penalty, check_broadcast_and_missing_grads):
        check(rank, world)
        if rank == 0:
            print(f"ok {check.__name__}", flush=True)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
