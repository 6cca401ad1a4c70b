"""The toy GAN experiments of Chapter 4: a discriminator trained alone against a frozen p_g (1-D), and one
GAN per seed on the ring of Gaussians (2-D), trained side by side in one vectorised run
(:func:`train_toy_gan`); :func:`train_toy_sweep` trains several configurations and their seeds in one run
(at the chapter's small sizes the step is dominated by per-operation overhead, so one run of C x S networks
costs far less than C runs of S); :func:`wasserstein1` is the exact W1 distance between two small point clouds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .. import data as _data
from .. import utils
from ..train import adam

from .losses import discriminator_loss, label_targets
from .networks import MLPDiscriminator, MLPGenerator
from .training import frozen, gan_step


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
    with utils.one_thread():  # a small MLP: a second thread would cost more than it saves
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
                  log_every: int = 100, device: torch.device | str = "cpu", **config) -> ToyRun:
    """Train one GAN per seed on the ring of Gaussians (:func:`gencourse.data.ring_of_gaussians`), vectorised.

    ``config`` overrides :data:`TOY_DEFAULTS` (e.g. ``real_smoothing=0.1``,
    ``dropout=0.3``, ``lr_d=2.5e-4``, ``batch_size=1024``, ``loss="wgan-gp", d_steps=5``; ``d_hidden``
    gives the discriminator its own hidden sizes, default ``hidden``).
    All seeds share the data stream and the latent noise draws but nothing else; seed
    s fixes the initial weights of its networks.  Mode coverage of ``n_eval`` samples
    per seed with :func:`gencourse.metrics.count_modes`.  ``device``: where the networks train and the
    data and noise are drawn (the default global generator of that device); samples come back on the CPU.
    """
    from ..metrics.modes import count_modes
    from ..train import Trainer

    unknown = sorted(set(config) - set(TOY_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown toy setting(s) {unknown}; known: {sorted(TOY_DEFAULTS)}")
    cfg = dict(TOY_DEFAULTS, **config)
    seeds = [int(s) for s in seeds]
    S = len(seeds)
    dev = torch.device(device)
    G = MLPGenerator(cfg["latent_dim"], (2,), cfg["hidden"], n_models=S, seeds=[1000 + s for s in seeds]).to(dev)
    D = MLPDiscriminator((2,), cfg["d_hidden"] or cfg["hidden"], dropout=cfg["dropout"], n_models=S,
                         seeds=[2000 + s for s in seeds]).to(dev)
    opt_g, opt_d = (adam(m.parameters(), cfg[lr], cfg["betas"]) for m, lr in ((G, "lr_g"), (D, "lr_d")))
    # each network's loss is a mean over its batch; summing over the S networks keeps their gradients separate
    step = gan_step(G, D, _Scaled(opt_g, S), _Scaled(opt_d, S), latent_dim=cfg["latent_dim"], loss=cfg["loss"],
                    d_steps=cfg["d_steps"], g_steps=cfg["g_steps"], gp_weight=cfg["gp_weight"],
                    real_smoothing=cfg["real_smoothing"], label_noise=cfg["label_noise"], flip=cfg["flip"],
                    batch_dims=2)
    B, k, r, std = cfg["batch_size"], cfg["modes"], cfg["radius"], cfg["std"]
    centres = _data.ring_modes(k, r)
    sample = _ring_stream(centres, std, S, B, dev)
    trainer = Trainer(step, sample, modules={"generator": G, "discriminator": D},
                      optimizers={"g": opt_g, "d": opt_d}, log_every=log_every, progress="off",
                      amp=False)  # 2-D toys: float32 on every device (half precision buys nothing at this size)
    snaps = []

    def grab(tr):
        with torch.no_grad():
            snaps.append((tr.step, G(torch.randn(S, 500, cfg["latent_dim"], device=dev)).cpu()))

    t0 = time.perf_counter()
    with utils.one_thread():  # tiny networks: thread hand-offs would cost more than the arithmetic
        trainer.fit(steps=steps, callback=grab if snapshot_every else None, callback_every=snapshot_every)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        x = G(torch.randn(S, n_eval, cfg["latent_dim"], device=dev)).cpu()
    modes = [count_modes(x[s], centres, std) for s in range(S)]
    return ToyRun(cfg, seeds, x, modes, trainer.history, snaps, seconds)


def _ring_stream(centres: Tensor, std: float, S: int, B: int, device: torch.device) -> Callable[[], Tensor]:
    """A fresh batch per step for every network, (S, B, 2) on ``device``, drawn as
    :func:`gencourse.data.ring_of_gaussians` draws it (a mode index, then Gaussian noise around it)."""
    centres = centres.to(device)
    k = len(centres)
    return lambda: centres[torch.randint(k, (S, B), device=device)] + std * torch.randn(S, B, 2, device=device)


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
# Many configurations in one vectorised run
# ---------------------------------------------------------------------------
SWEEP_SETTINGS = ("lr_g", "lr_d", "d_steps", "real_smoothing", "label_noise", "flip", "dropout", "batch_size")


class StackedAdam(torch.optim.Optimizer):
    """Adam (Kingma and Ba, 2015) for stacked parameters whose leading dimension indexes S networks, with a
    learning rate per network, ``lr`` (S,).  Before :meth:`step`, ``mask`` (S,) bool (or None: all) says
    which networks to update: the others keep their weights, moment estimates and step counts.  For
    each network alone it is ``torch.optim.Adam`` (no weight decay): ``m <- b1 m + (1 - b1) g``,
    ``v <- b2 v + (1 - b2) g^2``, ``p <- p - lr m_hat / (sqrt(v_hat) + eps)`` with bias-corrected hats.
    """

    def __init__(self, params, lr, betas=(0.9, 0.999), eps: float = 1e-8):
        lr = torch.as_tensor(lr, dtype=torch.float32).flatten()
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps))
        self.mask: Tensor | None = None

    @torch.no_grad()
    def step(self, closure=None):
        # a handful of foreach calls per group instead of a dozen tensor ops per parameter: the toy networks
        # are so small that the optimizer's per-call overhead, not its arithmetic, is what costs
        for group in self.param_groups:
            lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
            S = len(lr)
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if len(params) != len(group["params"]):   # so that every parameter's step counts stay the same
                raise ValueError("StackedAdam updates a group's parameters together: some have gradients, "
                                 "others none (zero the gradients instead of setting them to None)")
            for p in params:
                if p.shape[0] != S:
                    raise ValueError(f"StackedAdam has {S} learning rates but a parameter of shape {tuple(p.shape)}: "
                                     "the leading dimension must index the networks")
                st = self.state[p]
                if not st:
                    st.update(t=torch.zeros(S), m=torch.zeros_like(p), v=torch.zeros_like(p))
            mask = torch.ones(S, dtype=torch.bool) if self.mask is None else self.mask.to(torch.bool).cpu()
            states = [self.state[p] for p in params]
            for st in states:
                st["t"] += mask                                   # the step count of every updated network
            t, keep = states[0]["t"].clamp_min(1), mask.float()  # t: the same for every parameter of the group
            # the per-network factors (S,), each computed once per step and shaped (S, 1, ..., 1) once per rank
            factors = {"w1": keep * (1 - b1), "w2": keep * (1 - b2), "bc2": (1 - b2 ** t).sqrt(),
                       "step": keep * lr / (1 - b1 ** t)}
            views = {}

            def per_network(name):
                out = []
                for p in params:
                    if (name, p.dim()) not in views:
                        views[name, p.dim()] = factors[name].view((S,) + (1,) * (p.dim() - 1)).to(p.device)
                    out.append(views[name, p.dim()])
                return out

            ms, vs, grads = [st["m"] for st in states], [st["v"] for st in states], [p.grad for p in params]
            # m <- m + keep (1 - b1) (g - m) and v <- v + keep (1 - b2) (g^2 - v): b m + (1 - b) g where the
            # network updates, unchanged (weight 0) where it does not
            torch._foreach_lerp_(ms, grads, per_network("w1"))
            torch._foreach_lerp_(vs, torch._foreach_mul(grads, grads), per_network("w2"))
            # p <- p - keep lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
            denom = torch._foreach_sqrt(vs)
            torch._foreach_div_(denom, per_network("bc2"))
            torch._foreach_add_(denom, eps)
            update = torch._foreach_div(ms, denom)
            torch._foreach_mul_(update, per_network("step"))
            torch._foreach_sub_(params, update)


class _StackDropout(nn.Module):
    """Dropout with its own rate for each of S stacked networks: ``p`` (S,), inputs (S, B, F).  Random
    numbers are drawn only for the networks whose rate is above zero."""

    def __init__(self, p: Tensor):
        super().__init__()
        p = torch.as_tensor(p, dtype=torch.float32).flatten()
        on = (p > 0).nonzero().flatten()
        self.register_buffer("p", p.view(-1, 1, 1))
        self.register_buffer("on", on)                       # the networks with dropout
        self.register_buffer("keep_on", (1 - p[on]).view(-1, 1, 1))
        self.every = len(on) == len(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not len(self.on):
            return x
        if self.every:
            keep = 1 - self.p
            return x * (torch.rand_like(x) < keep) / keep
        part = x.index_select(0, self.on)
        return x.index_copy(0, self.on, part * (torch.rand_like(part) < self.keep_on) / self.keep_on)


def train_toy_sweep(configs: dict, seeds: Sequence[int], steps: int, *, n_eval: int = 2000,
                    snapshot_every: int | None = None, log_every: int = 100,
                    device: torch.device | str = "cpu") -> dict:
    """Train every configuration of ``configs`` (name -> overrides of :data:`TOY_DEFAULTS`) with every seed,
    all in one vectorised run (C configurations x len(seeds) networks side by side); returns name -> ToyRun.

    The configurations may differ only in :data:`SWEEP_SETTINGS` (learning rates, D steps per G step,
    label smoothing / noise / flips, dropout in D, batch size); everything else, including the loss
    (``"non-saturating"`` or ``"saturating"``; WGAN-GP needs :func:`train_toy_gan`), must be shared.
    Network s of a configuration starts from the same weights as seed s in :func:`train_toy_gan`.  Each
    network's losses are means over its own batch (a configuration with a smaller batch uses the first
    ``batch_size`` samples of the largest batch), and its learning rates and update schedule are its own
    (:class:`StackedAdam`), so the runs never interact.  ``ToyRun.seconds`` is the sweep's time divided by
    the number of configurations; ``ToyRun.history`` is the sweep's history, with keys
    ``d_loss/NAME`` and ``g_loss/NAME`` (means over the seeds).  ``device`` as in :func:`train_toy_gan`.
    """
    from ..metrics.modes import count_modes
    from ..train import Trainer

    if not configs:
        raise ValueError("give at least one configuration: {name: overrides of TOY_DEFAULTS}")
    cfgs = {}
    for name, overrides in configs.items():
        unknown = sorted(set(overrides) - set(TOY_DEFAULTS))
        if unknown:
            raise ValueError(f"{name}: unknown toy setting(s) {unknown}; known: {sorted(TOY_DEFAULTS)}")
        cfgs[name] = dict(TOY_DEFAULTS, **overrides)
    first = next(iter(cfgs.values()))
    for name, cfg in cfgs.items():
        differ = sorted(k for k in TOY_DEFAULTS if k not in SWEEP_SETTINGS and cfg[k] != first[k])
        if differ:
            raise ValueError(f"{name}: {differ} differ from the first configuration; a sweep may vary only "
                             f"{list(SWEEP_SETTINGS)} (train the others with train_toy_gan)")
    if first["loss"] not in ("non-saturating", "saturating"):
        raise ValueError(f"train_toy_sweep trains the cross-entropy game; for loss={first['loss']!r} use train_toy_gan")
    seeds = [int(s) for s in seeds]
    names, n = list(cfgs), len(seeds)
    S = len(names) * n
    dev = torch.device(device)
    per = lambda key: torch.tensor([float(cfgs[k][key]) for k in names for _ in seeds], device=dev)  # (S,)  # noqa: E731
    latent, B = first["latent_dim"], int(max(c["batch_size"] for c in cfgs.values()))
    G = MLPGenerator(latent, (2,), first["hidden"], n_models=S, seeds=[1000 + s for _ in names for s in seeds])
    G = G.to(dev)
    D = MLPDiscriminator((2,), first["d_hidden"] or first["hidden"], dropout=0.5, n_models=S,
                         seeds=[2000 + s for _ in names for s in seeds])
    drop = per("dropout")
    for i, layer in enumerate(D.net.net):               # the placeholder dropout -> one rate per network
        if isinstance(layer, nn.Dropout):
            D.net.net[i] = _StackDropout(drop)
    D = D.to(dev)
    opt_g = StackedAdam(G.parameters(), per("lr_g"), first["betas"])
    opt_d = StackedAdam(D.parameters(), per("lr_d"), first["betas"])
    d_steps = per("d_steps").long()
    smooth, noise, flip = (per(k)[:, None] for k in ("real_smoothing", "label_noise", "flip"))   # (S, 1)
    sizes = per("batch_size")
    weights = (torch.arange(B, device=dev)[None, :] < sizes[:, None]).float() / sizes[:, None]   # (S, B): a mean per network
    g_loss_fn = (lambda l: F.softplus(-l)) if first["loss"] == "non-saturating" else (lambda l: -F.softplus(l))
    by_config = lambda v: v.view(len(names), n).mean(1)   # (S,) -> (C,): mean over seeds  # noqa: E731
    last_g = {"loss": torch.zeros(S, device=dev)}

    def step(real, trainer):                                # real: (S, B, 2)
        with torch.no_grad():
            fake = G(torch.randn(S, B, latent, device=dev))
        d_real, d_fake = D(torch.cat([real, fake], 1)).split(B, 1)     # (S, B) logits each, from one pass of D
        t_real = label_targets((S, B), 1.0, smoothing=smooth, noise=noise, flip=flip, device=dev)
        t_fake = label_targets((S, B), 0.0, noise=noise, flip=flip, device=dev)
        bce = F.binary_cross_entropy_with_logits
        d_loss = ((bce(d_real, t_real, reduction="none") + bce(d_fake, t_fake, reduction="none")) * weights).sum(1)
        opt_d.mask = None
        trainer.optimize(d_loss.sum(), opt_d)              # the sum over networks keeps their gradients apart
        opt_g.mask = trainer.step % d_steps == 0           # networks whose generator updates at this step
        with frozen(D):                                    # no weight gradients for D in G's update
            for _ in range(first["g_steps"] if bool(opt_g.mask.any()) else 0):
                g_loss = (g_loss_fn(D(G(torch.randn(S, B, latent, device=dev)))) * weights).sum(1)   # (S,)
                trainer.optimize(g_loss.sum(), opt_g)
                last_g["loss"] = torch.where(opt_g.mask, g_loss.detach(), last_g["loss"])
        out = {}
        for name, dl, gl in zip(names, by_config(d_loss.detach()), by_config(last_g["loss"])):
            out[f"d_loss/{name}"], out[f"g_loss/{name}"] = dl, gl
        return out

    k, r, std = first["modes"], first["radius"], first["std"]
    centres = _data.ring_modes(k, r)
    trainer = Trainer(step, _ring_stream(centres, std, S, B, dev),
                      modules={"generator": G, "discriminator": D}, optimizers={"g": opt_g, "d": opt_d},
                      log_every=log_every, progress="off", amp=False)   # float32, as train_toy_gan
    snaps = []

    def grab(tr):
        with torch.no_grad():
            snaps.append((tr.step, G(torch.randn(S, 500, latent, device=dev)).cpu()))

    t0 = time.perf_counter()
    with utils.one_thread():  # tiny networks: thread hand-offs would cost more than the arithmetic
        trainer.fit(steps=steps, callback=grab if snapshot_every else None, callback_every=snapshot_every)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        x = G(torch.randn(S, n_eval, latent, device=dev)).cpu()
    runs = {}
    for c, name in enumerate(names):
        part = slice(c * n, (c + 1) * n)
        runs[name] = ToyRun(cfgs[name], seeds, x[part], [count_modes(x[i], centres, std) for i in
                                                          range(S)[part]], trainer.history,
                            [(st, xs[part]) for st, xs in snaps], seconds / len(names))
    return runs


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
