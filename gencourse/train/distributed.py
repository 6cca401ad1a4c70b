"""Data parallelism for the :class:`~gencourse.train.Trainer` (``torchrun``, one process a device).

What ``W`` processes equal: one process with the global batch, the gradient of the *global*
mean loss.  Three pieces make it so, for every recipe and whatever its step function calls:

* :func:`broadcast_state`: every rank starts from rank 0's weights and buffers;
* :func:`average_gradients`, called by :meth:`Trainer.optimize <gencourse.train.Trainer.optimize>`
  between ``backward`` and the optimizer step: the gradients of that optimizer's parameters are
  averaged over the ranks (one flattened ``all_reduce`` per update).  The step function calls its
  modules' methods as in one process (``model.encode``, ``rbm.gibbs``, a gradient penalty through
  ``torch.autograd.grad``), which ``DistributedDataParallel`` does not support: DDP averages only
  through its own ``forward`` and cannot differentiate twice (pytorch#47562);
* :class:`GlobalBatchNorm` (:func:`convert_batchnorm`): batch norm whose statistics are those of
  the global batch, so the batch-norm models (DCGAN and friends) equal one process too.  It works
  on gloo (CPU) and NCCL alike; ``torch.nn.SyncBatchNorm`` runs on GPUs only.

What the ranks do *not* share is their random draws (noise, latents, Gibbs samples): rank ``r``
is seeded with ``seed + r``, so a stochastic recipe equals one process with the global batch in
distribution, not draw for draw.  Every rank must call the same modules the same number of times
(each batch-norm call and each update is a collective), as the recipes' step functions do.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch import Tensor, nn


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, ``(0, 1)`` without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def broadcast_state(modules: Mapping[str, nn.Module] | Iterable[nn.Module]) -> None:
    """Copy rank 0's parameters and buffers to every rank (a no-op in one process)."""
    import torch.distributed as dist

    if rank_world()[1] == 1:
        return
    mods = modules.values() if isinstance(modules, Mapping) else modules
    for m in mods:
        for t in m.state_dict(keep_vars=True).values():
            if isinstance(t, Tensor):
                dist.broadcast(t.data if isinstance(t, nn.Parameter) else t, src=0)


@torch.no_grad()
def average_gradients(params: Iterable[Tensor]) -> None:
    """Replace each gradient by its mean over the ranks (a no-op in one process).

    One ``all_reduce`` of all gradients flattened together (per dtype); a parameter without a
    gradient here contributes zeros and keeps ``grad=None``, so the ranks must use the same
    parameters in each update (as ``DistributedDataParallel`` also requires)."""
    import torch.distributed as dist

    world = rank_world()[1]
    if world == 1:
        return
    params = [p for p in params if p.requires_grad]
    by_dtype: dict[torch.dtype, list[Tensor]] = {}
    for p in params:
        by_dtype.setdefault(p.dtype, []).append(p)
    for group in by_dtype.values():
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in group])
        dist.all_reduce(flat)
        flat.div_(world)
        offset = 0
        for p in group:
            n = p.numel()
            if p.grad is not None:
                p.grad.copy_(flat[offset: offset + n].view_as(p.grad))
            offset += n


class _AllReduceSum(torch.autograd.Function):
    """``all_reduce(SUM)`` with its gradient: the sum over ranks of each rank's upstream gradient.
    With the gradients then averaged over ranks this gives the gradient of the global mean loss."""

    @staticmethod
    def forward(ctx, x):
        import torch.distributed as dist

        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        import torch.distributed as dist

        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over the global batch of all ranks (``BatchNorm1d/2d/3d`` in one process).

    In training under a process group the per-channel mean and (biased) variance are those of
    the ``W`` ranks' batches together: each rank sums ``x - s`` and ``(x - s)^2`` over its batch
    (``s`` = the running mean, identical on every rank, as a shift that keeps the sums small),
    one differentiable ``all_reduce`` adds the sums, and ``mean = s + S1 / N``,
    ``var = S2 / N - (S1 / N)^2``.  The running statistics are updated as ``BatchNorm`` does
    (unbiased variance ``var * N / (N - 1)``), so they agree on every rank.  Statistics in
    float32 whatever the autocast dtype.  Same parameters and buffers as ``BatchNorm``, so
    checkpoints load into either.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input of shape (N, C, ...), got {input.dim()}D input")

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or rank_world()[1] == 1:
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        view = (1, -1) + (1,) * (x.dim() - 2)
        dtype = torch.promote_types(x.dtype, torch.float32)  # fp16/bf16 inputs: statistics in float32
        xf = x.to(dtype)
        shift = (self.running_mean if self.running_mean is not None
                 else torch.zeros(x.shape[1], device=x.device)).detach().to(dtype)
        d = xf - shift.view(view)
        local_n = torch.full((1,), x.numel() // x.shape[1], dtype=dtype, device=x.device)
        sums = _AllReduceSum.apply(torch.cat([d.sum(dims), (d * d).sum(dims), local_n]))
        c = x.shape[1]
        n = sums[-1]
        m1 = sums[:c] / n
        mean = shift + m1
        var = (sums[c: 2 * c] / n - m1 * m1).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                unbiased = var.detach() * n / (n - 1).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        y = (xf - mean.view(view)) * torch.rsqrt(var + self.eps).view(view)
        if self.affine:
            y = y * self.weight.view(view) + self.bias.view(view)
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every ``BatchNorm1d/2d/3d`` replaced by a :class:`GlobalBatchNorm` that keeps
    its parameters and buffers (the same tensors, so optimizers built before or after both work).
    Returns ``module`` itself (changed in place) unless it is a batch norm."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats, device="meta")
        new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        new = convert_batchnorm(child)
        if new is not child:
            setattr(module, name, new)
    return module
