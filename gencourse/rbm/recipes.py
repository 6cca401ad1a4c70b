"""The training recipe of Chapter 3: ``rbm-mnist`` (persistent CD on binarised MNIST)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .cd import cd_loss
from .model import RBM, bernoulli, binarise
from .partition import ais_log_partition, base_rate_bias


class PersistentChains(nn.Module):
    """The fantasy particles of persistent CD: ``v`` (n_chains, D), a buffer.

    They are state of the *training procedure*, but living in a module means
    :meth:`gencourse.train.Trainer.state_dict` saves them with the weights, so a
    resumed run continues the same chains (re-initialising them would be a small
    jolt to training), and the NaN roll-back of the Trainer restores them too.
    """

    def __init__(self, n_chains: int, n_visible: int):
        super().__init__()
        self.register_buffer("v", torch.zeros(n_chains, n_visible))


def _mnist_binary(split: str, n: int | None = None) -> Tensor:
    from .. import data

    x = data.load("mnist", split)[0]
    return binarise(x[:n] if n else x)                             # (n or N, 784) in {0, 1}


def _build(cfg: dict) -> dict:
    g = torch.Generator().manual_seed(cfg["init_seed"])
    return {"rbm": RBM(784, cfg["n_hidden"], init_std=cfg["init_std"], generator=g),
            "chains": PersistentChains(cfg["n_chains"], 784)}


def _optimizers(modules: dict, cfg: dict) -> dict:
    rbm = modules["rbm"]
    groups = [{"params": [rbm.W], "weight_decay": cfg["weight_decay"]}, {"params": [rbm.b, rbm.c], "weight_decay": 0.0}]
    from ..train import sgd

    return {"opt": sgd(groups, lr=cfg["lr"], momentum=cfg["momentum"])}  # fused: no sync under fp16


def _data(cfg: dict, device, rank: int = 0, world_size: int = 1):
    from .. import recipes

    x = _mnist_binary("train", cfg["n_train"])                      # (N, 784) in {0, 1}
    return recipes.batches(cfg, device, rank, world_size, x)  # batch_size is global: split over the ranks


def _step(modules: dict, opts: dict, cfg: dict):
    rbm, chains, opt = modules["rbm"], modules["chains"], opts["opt"]
    if cfg["method"] not in ("cd", "pcd"):
        raise ValueError(f"method must be 'cd' or 'pcd', got {cfg['method']!r}")
    # Start from the base rates: visible biases = logit(pixel means), chains = samples of that
    # independent-pixel model.  (On --resume, Trainer.load_state_dict then overwrites both.)
    with torch.no_grad():
        rbm.b.copy_(base_rate_bias(_mnist_binary("train", cfg["n_train"])))
        chains.v.copy_(bernoulli(torch.sigmoid(rbm.b).expand_as(chains.v).contiguous()))
    k, total = cfg["k"], cfg["steps"]

    def step(v_data: Tensor, trainer) -> dict:
        # learning rate: linear decay from lr to lr * lr_final over the recipe's `steps`
        frac = min(trainer.step / total, 1.0)
        for group in opt.param_groups:
            group["lr"] = cfg["lr"] * (1 - frac * (1 - cfg["lr_final"]))
        with torch.autocast(v_data.device.type, enabled=False):   # sampling and F in float32
            if cfg["method"] == "pcd":
                chains.v.copy_(rbm.gibbs(chains.v, k))                 # continue the persistent chains
                v_model = chains.v
            else:
                v_model = rbm.gibbs(v_data, k)                         # CD-k: k sweeps from the data
            loss = cd_loss(rbm, v_data, v_model)                       # mean F(data) - mean F(model)
            trainer.optimize(loss, opt)
        return {"free_energy_gap": loss.detach()}

    return step


def _evaluate(modules: dict, cfg: dict, device) -> dict:
    """AIS estimate of the test log-likelihood, nats per image (mean over ``n_test`` test images)."""
    rbm = modules["rbm"]
    device = torch.device(device)
    x_train = _mnist_binary("train", cfg["n_train"])
    x_test = _mnist_binary("test", cfg["n_test"]).to(device)
    g = torch.Generator(device=device).manual_seed(cfg["eval_seed"])
    res = ais_log_partition(rbm, cfg["ais_chains"], cfg["ais_betas"], base_bias=base_rate_bias(x_train), generator=g)
    ll_test = res.log_likelihood(rbm, x_test)
    ll_train = res.log_likelihood(rbm, x_train[: len(x_test)].to(device))
    lo, hi = res.interval
    return {
        "ais_test_ll": round(float(ll_test.mean()), 3),
        "ais_test_ll_stderr": round(res.stderr, 4),
        "ais_test_ll_3se_interval": [round(float(ll_test.mean()) + res.log_z - hi, 3),
                                     round(float(ll_test.mean()) + res.log_z - lo, 3) if math.isfinite(lo) else None],
        "ais_train_ll": round(float(ll_train.mean()), 3),
        "ais_log_z": round(res.log_z, 4),
        "test_reconstruction_error": round(float(rbm.reconstruction_error(x_test)), 3),
        "ais_protocol": (f"AIS, {res.n_chains} chains, {res.n_betas} intermediate distributions "
                         f"(Salakhutdinov-Murray spacing), base model: independent pixels with the smoothed "
                         f"training-set base rates (W=0, c=0); test log-likelihood = mean over "
                         f"{len(x_test)} thresholded (>127) MNIST test images of -F(v) - log Z, nats per image"),
    }


def _sample(modules: dict, cfg: dict, n: int, device, generator: torch.Generator | None = None) -> Tensor:
    """``n`` images (n, 1, 28, 28) in [0, 1]: the mean p(v | h) after ``sample_steps`` Gibbs sweeps
    of independent chains started from the base-rate model."""
    rbm, steps = modules["rbm"], max(1, int(cfg["sample_steps"]))
    with torch.no_grad():
        v0 = bernoulli(torch.sigmoid(rbm.b).expand(n, -1).contiguous(), generator)
        _, frames = rbm.gibbs(v0, steps, generator=generator, keep_every=steps)
    return frames[-1].reshape(n, 1, 28, 28).clamp(0, 1)


def _register() -> None:
    """Config keys: ``n_hidden``; ``method`` "pcd" or "cd" with ``k`` Gibbs sweeps per update and
    ``n_chains`` persistent chains; SGD ``lr`` (decaying linearly to ``lr * lr_final`` over ``steps``),
    ``momentum``, ``weight_decay`` (on W only); ``n_train`` training images (0 = all 60,000);
    evaluation: ``ais_chains`` runs x ``ais_betas`` distributions on ``n_test`` test images;
    ``sample_steps`` Gibbs sweeps per sample."""
    from .. import recipes

    recipes.register(recipes.Recipe(
        name="rbm-mnist",
        description="Bernoulli RBM, 784-500, persistent CD on thresholded MNIST; AIS test log-likelihood",
        defaults=dict(dataset="mnist", n_hidden=500, method="pcd", k=1, n_chains=100, batch_size=100,
                      lr=0.01, lr_final=0.0, momentum=0.9, weight_decay=1e-4, init_std=0.01, n_train=0,
                      steps=20_000, init_seed=0, ais_chains=100, ais_betas=14_500, n_test=10_000,
                      sample_steps=1000, eval_seed=0),
        build=_build, optimizers=_optimizers, data=_data, step=_step, evaluate=_evaluate, sample=_sample,
        datasets=("mnist",),
        notes={"train": "OMP_NUM_THREADS=1 python -m gencourse train rbm-mnist --out runs/rbm-mnist "
                        "(then copy rbm-mnist.pt* into gencourse/assets/weights)",
               "longer": "change the length with --set steps=N (the learning rate decays over `steps`)"},
    ))


_register()
