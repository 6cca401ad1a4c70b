"""The toy GAN experiments of Chapter 4: a discriminator trained alone against a frozen p_g (1-D), and one
GAN per seed on the ring of Gaussians (2-D), trained side by side in one vectorised run
(:func:`train_toy_gan`); :func:`wasserstein1` is the exact W1 distance between two small point clouds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from .. import data as _data
from ..train import adam
from .losses import discriminator_loss
from .networks import MLPDiscriminator, MLPGenerator
from .training import gan_step


def train_discriminator(discriminator: nn.Module, sample_real: Callable[[int], Tensor],
                        sample_fake: Callable[[int], Tensor], *, steps: int, batch_size: int = 512,
                        lr: float = 1e-3, log_every: int = 100):
    """Train only a discriminator (the generator is frozen: ``sample_fake`` draws from a fixed p_g)
    with the BCE :func:`discriminator_loss` via :class:`~gencourse.train.Trainer`; returns the history."""
    from ..train import Trainer

    opt = torch.optim.Adam(discriminator.parameters(), lr=lr)

    def step(batch, trainer):
        real, fake = batch
        loss = discriminator_loss(discriminator(real), discriminator(fake))
        trainer.optimize(loss, opt)
        return {"d_loss": loss}

    trainer = Trainer(step, lambda: (sample_real(batch_size), sample_fake(batch_size)), modules=discriminator,
                      optimizers=opt, log_every=log_every, progress="off")
    return trainer.fit(steps=steps)


# two hidden layers of 32 units and batches of 64: the ring experiments are compute-bound on a CPU, and at this
# size Chapter 4 can train every configuration for 3000 steps over several seeds in FAST mode
TOY_DEFAULTS = dict(latent_dim=2, hidden=[32, 32], d_hidden=None, lr_g=2e-3, lr_d=2e-3, betas=[0.5, 0.9], batch_size=64,
                    loss="non-saturating", d_steps=1, g_steps=1, gp_weight=1.0, real_smoothing=0.0,
                    label_noise=0.0, flip=0.0, dropout=0.0, modes=8, radius=2.0, std=0.05)


@dataclass
class ToyRun:
    """One toy configuration trained with several seeds at once."""

    config: dict
    seeds: list
    samples: Tensor                     # (S, n_eval, 2) final samples, one set per seed
    modes: list                         # a metrics.ModeCount per seed
    history: object                     # the Trainer history (losses summed over seeds' means)
    snapshots: list = field(default_factory=list)   # [(step, samples (S, m, 2))]
    seconds: float = 0.0

    @property
    def covered(self) -> list[int]:
        return [m.covered for m in self.modes]

    @property
    def high_quality(self) -> list[float]:
        return [m.high_quality for m in self.modes]


def train_toy_gan(seeds: Sequence[int], steps: int, *, n_eval: int = 2000, snapshot_every: int | None = None,
                  log_every: int = 100, **config) -> ToyRun:
    """Train one GAN per seed on the ring of Gaussians (:func:`gencourse.data.ring_of_gaussians`), vectorised.

    ``config`` overrides :data:`TOY_DEFAULTS` (e.g. ``real_smoothing=0.1``,
    ``dropout=0.3``, ``lr_d=2.5e-4``, ``batch_size=1024``, ``loss="wgan-gp", d_steps=5``; ``d_hidden``
    gives the discriminator its own hidden sizes, default ``hidden``).
    All seeds share the data stream and the latent noise draws but nothing else; seed
    s fixes the initial weights of its networks.  Mode coverage of ``n_eval`` samples
    per seed with :func:`gencourse.metrics.count_modes`.
    """
    from ..metrics.modes import count_modes
    from ..train import Trainer

    unknown = sorted(set(config) - set(TOY_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown toy setting(s) {unknown}; known: {sorted(TOY_DEFAULTS)}")
    cfg = dict(TOY_DEFAULTS, **config)
    seeds = [int(s) for s in seeds]
    S = len(seeds)
    G = MLPGenerator(cfg["latent_dim"], (2,), cfg["hidden"], n_models=S, seeds=[1000 + s for s in seeds])
    D = MLPDiscriminator((2,), cfg["d_hidden"] or cfg["hidden"], dropout=cfg["dropout"], n_models=S,
                         seeds=[2000 + s for s in seeds])
    opt_g, opt_d = (adam(m.parameters(), cfg[lr], cfg["betas"]) for m, lr in ((G, "lr_g"), (D, "lr_d")))
    # each network's loss is a mean over its batch; summing over the S networks keeps their gradients separate
    step = gan_step(G, D, _Scaled(opt_g, S), _Scaled(opt_d, S), latent_dim=cfg["latent_dim"], loss=cfg["loss"],
                    d_steps=cfg["d_steps"], g_steps=cfg["g_steps"], gp_weight=cfg["gp_weight"],
                    real_smoothing=cfg["real_smoothing"], label_noise=cfg["label_noise"], flip=cfg["flip"],
                    batch_dims=2)
    B, k, r, std = cfg["batch_size"], cfg["modes"], cfg["radius"], cfg["std"]
    centres = _data.ring_modes(k, r)

    def sample():  # a fresh batch per step for every network: (S, B, 2), as data.ring_of_gaussians draws it
        return centres[torch.randint(k, (S, B))] + std * torch.randn(S, B, 2)
    trainer = Trainer(step, sample, modules={"generator": G, "discriminator": D},
                      optimizers={"g": opt_g, "d": opt_d}, log_every=log_every, progress="off")
    snaps = []

    def grab(tr):
        with torch.no_grad():
            snaps.append((tr.step, G(torch.randn(S, 500, cfg["latent_dim"])).clone()))

    t0 = time.perf_counter()
    trainer.fit(steps=steps, callback=grab if snapshot_every else None, callback_every=snapshot_every)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        x = G(torch.randn(S, n_eval, cfg["latent_dim"]))
    modes = [count_modes(x[s], centres, std) for s in range(S)]
    return ToyRun(cfg, seeds, x, modes, trainer.history, snaps, seconds)


class _Scaled:
    """An optimizer proxy that multiplies the loss by S before ``backward`` (via the trainer):
    the step function's loss is a mean over S stacked networks; S x mean = sum, so each
    network gets exactly the gradient of its own mean loss."""

    def __init__(self, opt: torch.optim.Optimizer, scale: int):
        self.opt, self.scale = opt, scale

    def zero_grad(self, set_to_none: bool = True):
        self.opt.zero_grad(set_to_none=set_to_none)

    def step(self):
        grads = [p.grad for g in self.opt.param_groups for p in g["params"] if p.grad is not None]
        torch._foreach_mul_(grads, float(self.scale))
        self.opt.step()

    @property
    def param_groups(self):
        return self.opt.param_groups


def summarize_runs(runs: dict) -> list[dict]:
    """Rows for :func:`gencourse.metrics.table`: per configuration, the modes covered and the share of
    high-quality samples over the seeds (mean, min and max)."""
    rows = []
    for name, run in runs.items():
        cov, hq = run.covered, run.high_quality
        rows.append({"configuration": name, "seeds": len(cov),
                     "modes covered (mean)": sum(cov) / len(cov), "min": min(cov), "max": max(cov),
                     "all 8 covered": f"{sum(c == run.modes[0].modes for c in cov)}/{len(cov)}",
                     "high quality (mean)": sum(hq) / len(hq), "seconds": round(run.seconds, 1)})
    return rows


# ---------------------------------------------------------------------------
# An exact reference for the critic's estimate
# ---------------------------------------------------------------------------
def wasserstein1(x: Tensor, y: Tensor) -> float:
    """The exact Wasserstein-1 distance between the empirical distributions of ``x`` (N, d) and ``y`` (N, d)
    (equal sizes, equal weights): the mean Euclidean distance of the optimal one-to-one matching, found by
    the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) in float64.  O(N^3): for N up to a
    few thousand.  Units: those of the points."""
    from scipy.optimize import linear_sum_assignment

    x, y = torch.as_tensor(x).double(), torch.as_tensor(y).double()
    if x.dim() != 2 or x.shape != y.shape:
        raise ValueError(f"expected two point clouds of the same shape (N, d), got {tuple(x.shape)} and {tuple(y.shape)}")
    cost = torch.cdist(x, y).numpy()                       # (N, N) Euclidean distances
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())
