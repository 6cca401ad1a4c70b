"""Flow matching (Chapter 8): probability paths, the conditional flow-matching loss, minibatch
optimal-transport pairing, ODE samplers and the ``fm-mnist`` recipes.

**Convention, used everywhere in the chapter and in this module.**  Time runs from noise to
data: ``t = 0`` is the noise ``x_0 ~ N(0, I)``, ``t = 1`` is a data point ``x_1``.  The
linear (rectified-flow) path between a pair is

    x_t = (1 - t) x_0 + t x_1,        its velocity   u = dx_t/dt = x_1 - x_0,

and conditional flow matching (Lipman et al. 2023, Liu et al. 2023) regresses a network
``v_theta(x_t, t)`` onto ``u``: ``L = E_{t, x_0, x_1} ||v_theta(x_t, t) - (x_1 - x_0)||^2``
(here the **mean** over pixels and over the batch).  Chapter 6 runs time the other way
(its ``x_0`` is data, its ``t = T`` is noise); :func:`fm_to_ddpm` maps this path onto
Chapter 6's ``alpha_bar`` so the two can be compared on the same noisy image.

Pieces:

* paths and targets: :func:`interpolate`, :func:`target_velocity`, :func:`cfm_loss`;
* couplings: :func:`ot_pairing` (exact minibatch OT with SciPy's assignment solver);
* conversions between velocity, noise (epsilon) and data (x_1) predictions on the same x_t;
* ODE integration of any velocity field: :func:`integrate` (Euler, midpoint, Heun) and the
  straightness of the resulting paths (:func:`straightness`);
* :class:`VelocityMLP` for 2-D toys and :class:`FlowMatching`, the process that wraps the
  Chapter 6 U-Net (``fm(x, y)`` is the training loss, ``fm.sample(...)`` draws images);
* the recipes ``fm-mnist`` (OT pairs within each class, shipped) and the 2,000-step comparison models
  ``fm-mnist-class-ot-2k``, ``fm-mnist-ot-2k`` and ``fm-mnist-indep-2k``.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "interpolate", "target_velocity", "cfm_loss", "ot_pairing", "pair", "COUPLINGS", "METHODS",
    "velocity_to_eps", "velocity_to_x1", "eps_to_velocity", "fm_to_ddpm", "nfe",
    "integrate", "straightness", "VelocityMLP", "train_toy_flow", "FlowMatching", "build_model",
    "load_ema", "compare_samplers", "FM_DEFAULTS",
]

COUPLINGS = ("independent", "ot", "class-ot")
METHODS = ("euler", "midpoint", "heun")


# ---------------------------------------------------------------------------------------------
# The path, its velocity and the loss
# ---------------------------------------------------------------------------------------------
def _per_sample(t: Tensor, like: Tensor) -> Tensor:
    """Times (B,) -> (B, 1, ..., 1) so they broadcast against ``like`` (B, ...)."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.dim() == 0:
        t = t.expand(like.shape[0])
    if t.shape != like.shape[:1]:
        raise ValueError(f"t must be a number or have shape ({like.shape[0]},), got {tuple(t.shape)}")
    return t.reshape(-1, *([1] * (like.dim() - 1)))


def interpolate(x0: Tensor, x1: Tensor, t: Tensor | float) -> Tensor:
    """The linear path ``x_t = (1 - t) x_0 + t x_1`` (noise ``x_0``, data ``x_1``, both (B, ...); t (B,))."""
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    tt = _per_sample(t, x1)
    return (1 - tt) * x0 + tt * x1


def target_velocity(x0: Tensor, x1: Tensor) -> Tensor:
    """The regression target of the linear path: ``u = x_1 - x_0`` (constant along the path)."""
    return x1 - x0


def cfm_loss(v_pred: Tensor, x0: Tensor, x1: Tensor) -> Tensor:
    """Conditional flow-matching loss ``mean ||v_pred - (x_1 - x_0)||^2``: the mean over every
    coordinate and every sample (multiply by the number of coordinates for a per-sample sum)."""
    return (v_pred.float() - target_velocity(x0, x1).float()).pow(2).mean()


def ot_pairing(x0: Tensor, x1: Tensor) -> Tensor:
    """Minibatch optimal transport (Tong et al. 2023): the permutation ``p`` of the noise rows that
    minimises ``sum_i ||x0[p[i]] - x1[i]||^2``, solved exactly by SciPy's
    ``linear_sum_assignment``.  Returns ``p`` (B,) on ``x0.device``; ``x0[p]`` is the paired noise.
    The assignment runs on the CPU (one host round trip per call)."""
    from scipy.optimize import linear_sum_assignment

    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    cost = torch.cdist(x1.reshape(len(x1), -1).float(), x0.reshape(len(x0), -1).float()).pow(2)  # (B data, B noise)
    rows, cols = linear_sum_assignment(cost.detach().cpu().double().numpy())
    perm = np.empty(len(rows), dtype=np.int64)
    perm[rows] = cols
    return torch.from_numpy(perm).to(x0.device)


def pair(x0: Tensor, x1: Tensor, coupling: str, labels: Tensor | None = None) -> Tensor:
    """The noise paired with each data row: ``x0`` itself (``"independent"``), ``x0`` reordered by
    :func:`ot_pairing` over the whole batch (``"ot"``), or reordered within each class (``"class-ot"``,
    ``labels`` (B,) required): the noise rows of the images of class c (i.i.d. draws, so still
    N(0, I)) are matched to those images only.  Class-blind OT would hand each class the noise
    that happens to lie closest to its images, so the noise a class-conditional model learns to
    start from would no longer be N(0, I)."""
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")
    if coupling == "independent":
        return x0
    if coupling == "ot":
        return x0[ot_pairing(x0, x1)]
    if labels is None or labels.shape != x1.shape[:1]:
        raise ValueError(f"coupling 'class-ot' needs one label per image, shape ({x1.shape[0]},)")
    out = x0.clone()
    for c in torch.unique(labels):
        idx = (labels == c).nonzero().squeeze(1)
        out[idx] = x0[idx][ot_pairing(x0[idx], x1[idx])]
    return out


# ---------------------------------------------------------------------------------------------
# Velocity, noise and data predictions on the same x_t, and the map onto Chapter 6's process
# ---------------------------------------------------------------------------------------------
def velocity_to_x1(x_t: Tensor, v: Tensor, t) -> Tensor:
    """The data end implied by a velocity: ``x_1 = x_t + (1 - t) v``."""
    return x_t + (1 - _per_sample(t, x_t)) * v


def velocity_to_eps(x_t: Tensor, v: Tensor, t) -> Tensor:
    """The noise end implied by a velocity: ``x_0 = eps = x_t - t v``."""
    return x_t - _per_sample(t, x_t) * v


def eps_to_velocity(x_t: Tensor, eps: Tensor, t) -> Tensor:
    """A noise prediction as a velocity: ``v = (x_t - eps) / t`` (undefined at t = 0, where x_t is the noise)."""
    tt = _per_sample(t, x_t)
    if bool((tt <= 0).any()):
        raise ValueError("eps_to_velocity needs t > 0: at t = 0 the image is pure noise and carries no data")
    return (x_t - eps) / tt


def fm_to_ddpm(t) -> tuple[Tensor, Tensor]:
    """The flow-matching time ``t`` in Chapter 6's terms: ``(alpha_bar, scale)`` such that
    ``x_t / scale = sqrt(alpha_bar) x_1 + sqrt(1 - alpha_bar) eps`` is a Chapter 6 noisy image.
    ``scale = sqrt(t^2 + (1 - t)^2)`` and ``alpha_bar = t^2 / scale^2`` (same signal-to-noise ratio
    ``t^2 / (1 - t)^2``)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    scale = (t ** 2 + (1 - t) ** 2).sqrt()
    return (t / scale) ** 2, scale


# ---------------------------------------------------------------------------------------------
# ODE integration of a velocity field from t = 0 (noise) to t = 1 (data)
# ---------------------------------------------------------------------------------------------
_EVALS_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2}


def nfe(method: str, steps: int) -> int:
    """Network evaluations of :func:`integrate`: Euler 1 per step, midpoint and Heun 2."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return _EVALS_PER_STEP[method] * steps


def integrate(velocity: Callable[[Tensor, Tensor], Tensor], x: Tensor, steps: int, method: str = "euler", *,
              t0: float = 0.0, t1: float = 1.0, trajectory: bool = False):
    """Solve ``dx/dt = velocity(x, t)`` from ``t0`` to ``t1`` with ``steps`` uniform steps of size h.

    * ``euler``:    ``x += h v(x, t)``
    * ``midpoint``: ``x += h v(x + h/2 v(x, t), t + h/2)``
    * ``heun``:     ``x' = x + h v(x, t)``; ``x += h/2 (v(x, t) + v(x', t + h))`` (the trapezoid rule)

    ``velocity`` receives ``x`` (B, ...) and times ``t`` (B,).  Returns the final ``x``, or with
    ``trajectory=True`` the list of the ``steps + 1`` states (the start included).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    h = (t1 - t0) / steps
    path = [x] if trajectory else None
    for i in range(int(steps)):
        t = torch.full((x.shape[0],), t0 + i * h, device=x.device, dtype=x.dtype)
        v = velocity(x, t)
        if method == "euler":
            x = x + h * v
        elif method == "midpoint":
            x = x + h * velocity(x + 0.5 * h * v, t + 0.5 * h)
        else:
            v_end = velocity(x + h * v, t + h)
            x = x + 0.5 * h * (v + v_end)
        if trajectory:
            path.append(x)
    return path if trajectory else x


def straightness(path: Sequence[Tensor]) -> Tensor:
    """How far ODE paths are from straight lines, per sample: ``1 - |x_end - x_start| / length``
    (0 for a straight path; the length is the sum of the segment lengths of ``path``, a list of
    states (B, ...) as :func:`integrate` returns with ``trajectory=True``).  Shape (B,)."""
    xs = torch.stack([p.reshape(p.shape[0], -1).double() for p in path])          # (K+1, B, D)
    length = (xs[1:] - xs[:-1]).norm(dim=-1).sum(0)
    chord = (xs[-1] - xs[0]).norm(dim=-1)
    return (1 - chord / length.clamp_min(1e-12)).float()


# ---------------------------------------------------------------------------------------------
# A velocity field for 2-D toys
# ---------------------------------------------------------------------------------------------
class VelocityMLP(nn.Module):
    """``v(x, t)`` for points (B, dim): an MLP on ``[x, sin/cos features of t]`` -> (B, dim)."""

    def __init__(self, dim: int = 2, hidden: int = 128, layers: int = 3, time_features: int = 8):
        super().__init__()
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(time_features // 2).float())
        sizes = [dim + time_features] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            mods += [nn.Linear(a, b), nn.SiLU()]
        self.net = nn.Sequential(*mods, nn.Linear(hidden, dim))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        args = t.reshape(-1, 1).float() * self.freqs                   # (B, F/2)
        return self.net(torch.cat([x, torch.sin(args), torch.cos(args)], dim=1))


def train_toy_flow(sample_data: Callable[[int], Tensor], *, coupling: str = "independent", steps: int = 2000,
                   batch_size: int = 256, lr: float = 2e-3, seed: int = 0, hidden: int = 128,
                   log_every: int = 100):
    """Train a :class:`VelocityMLP` by conditional flow matching from N(0, I) to ``sample_data(n)``
    (points (n, 2)), pairing each batch by ``coupling``.  Returns ``(model, history)``."""
    from .train import Trainer, adam

    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")
    torch.manual_seed(seed)
    model = VelocityMLP(hidden=hidden)
    opt = adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed + 1)

    def batch():
        x1 = sample_data(batch_size)
        return pair(torch.randn(x1.shape, generator=g), x1, coupling), x1, torch.rand(batch_size, generator=g)

    def step(b, trainer):
        x0, x1, t = b
        loss = cfm_loss(model(interpolate(x0, x1, t), t), x0, x1)
        trainer.optimize(loss, opt)
        return {"loss": loss}

    trainer = Trainer(step, batch, modules=model, optimizers=opt, log_every=log_every, progress="off")
    history = trainer.fit(steps=steps)
    return model.eval(), history


# ---------------------------------------------------------------------------------------------
# The process around Chapter 6's U-Net
# ---------------------------------------------------------------------------------------------
def _randn(shape, generator: torch.Generator | None, device) -> Tensor:
    """Standard normal noise drawn with ``generator`` on its own device, then moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device).to(device)


class FlowMatching(nn.Module):
    """Conditional flow matching with a velocity network ``model(x_t, time, y)`` (the Chapter 6
    :class:`gencourse.unet.UNet`, which embeds a scalar time per image).

    The network sees ``time = time_scale * t`` so that its sinusoidal embedding, built for
    Chapter 6's integer steps 0..999, spans the same range.  Images are in [-1, 1] inside the
    process; :meth:`forward` takes and :meth:`sample` returns images in [0, 1].
    ``coupling``: ``"independent"`` (plain CFM), ``"ot"`` (minibatch OT pairs) or ``"class-ot"`` (OT pairs
    within each class, see :func:`pair`; needs labels).
    """

    def __init__(self, model: nn.Module, *, coupling: str = "ot", time_scale: float = 1000.0, time_power: float = 1.0,
                 image_shape: tuple = (1, 28, 28)):
        super().__init__()
        if coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")
        if not time_power > 0:
            raise ValueError(f"time_power must be positive (1 = uniform times), got {time_power}")
        self.model, self.coupling, self.time_scale = model, coupling, float(time_scale)
        self.time_power = float(time_power)
        self.image_shape = tuple(image_shape)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(self, x: Tensor, y: Tensor | None = None, *, generator: torch.Generator | None = None) -> Tensor:
        """The CFM loss of a batch of images ``x`` (B, C, H, W) in [0, 1] with labels ``y`` (B,) or None:
        draw noise, pair it (``coupling``), draw ``t = U^(1/k)`` per image
        (``k = time_power``; density ``k t^(k-1)``, uniform for ``k = 1``), regress onto ``x_1 - x_0``."""
        x1 = x * 2 - 1
        x0 = pair(_randn(x1.shape, generator, x1.device), x1, self.coupling, y)
        gen_dev = generator.device if generator is not None else x1.device
        t = torch.rand(x1.shape[0], generator=generator, device=gen_dev).to(x1.device)
        if self.time_power != 1.0:
            t = t ** (1.0 / self.time_power)                          # density k t^(k-1): more training near the data
        x_t = interpolate(x0, x1, t)
        v = self.model(x_t, t * self.time_scale, y) if y is not None else self.model(x_t, t * self.time_scale)
        return cfm_loss(v, x0, x1)

    def velocity(self, x: Tensor, t: Tensor, labels: Tensor | None = None, guidance_scale: float = 1.0) -> Tensor:
        """``v(x, t)`` for images ``x`` (B, C, H, W) in [-1, 1] at times ``t`` (B,); with labels,
        classifier-free guidance ``v = v(x, t, null) + s (v(x, t, y) - v(x, t, null))`` (one batched call)."""
        tt = t * self.time_scale
        if labels is None:
            return self.model(x, tt)
        if guidance_scale == 1.0:
            return self.model(x, tt, labels)
        null = torch.full_like(labels, self.model.null_label)
        if guidance_scale == 0.0:
            return self.model(x, tt, null)
        v_c, v_u = self.model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([labels, null])).chunk(2)
        return v_u + guidance_scale * (v_c - v_u)

    @torch.no_grad()
    def sample(self, n: int, *, labels: Tensor | None = None, guidance_scale: float = 1.0, method: str = "heun",
               steps: int = 10, generator: torch.Generator | None = None, x0: Tensor | None = None,
               frames: int = 0, batch_size: int | None = None):
        """``n`` images in [0, 1], (n, C, H, W), by integrating the learned ODE from noise (t = 0) to
        data (t = 1) with ``method`` and ``steps`` (see :func:`nfe` for the cost).  ``x0`` gives the
        starting noise.  With ``frames > 0`` also returns about ``frames`` snapshots ``(t, x_t, x1_hat)``
        (each in [0, 1]) for animations.  ``batch_size`` splits the work (same result as one batch)."""
        if labels is not None:
            labels = torch.as_tensor(labels, device=self.device).long().reshape(-1)
            if labels.numel() != n:
                raise ValueError(f"give one label per image: {n} images but {labels.numel()} labels")
        x = _randn((n, *self.image_shape), generator, self.device) if x0 is None else x0.to(self.device).clone()
        out, snaps = [], []
        size = batch_size or n
        keep = set(np.linspace(0, steps, frames).round().astype(int).tolist()) if frames else set()
        for i in range(0, n, size):
            lab = None if labels is None else labels[i:i + size]
            field = lambda z, t: self.velocity(z, t, lab, guidance_scale)  # noqa: E731
            if frames:
                path = integrate(field, x[i:i + size], steps, method, trajectory=True)
                if i == 0:
                    for k in sorted(keep):
                        tk = torch.full((len(path[k]),), k / steps, device=self.device)
                        x1_hat = velocity_to_x1(path[k], field(path[k], tk), tk) if k < steps else path[k]
                        snaps.append((k / steps, _to_unit(path[k]), _to_unit(x1_hat)))
                out.append(path[-1])
            else:
                out.append(integrate(field, x[i:i + size], steps, method))
        images = _to_unit(torch.cat(out))
        return (images, snaps) if frames else images


def _to_unit(x: Tensor) -> Tensor:
    return ((x + 1) / 2).clamp(0, 1)


def compare_samplers(fm: FlowMatching, settings=(("euler", 1), ("euler", 2), ("heun", 2), ("euler", 4)), *,
                     n: int = 1000, dataset: str = "mnist", guidance_scale: float = 1.0, seed: int = 0,
                     batch_size: int = 500) -> list[dict]:
    """For each ``(method, steps)``: ``n`` class-balanced samples (labels ``i % 10``, the same starting
    noise for every row) scored with the domain-classifier FID of :func:`gencourse.metrics.fid`
    against the test split, the number of network evaluations and seconds per sample.
    Rows: ``sampler, steps, nfe, fid, seconds_per_sample, protocol`` (the format of the
    ``ddpm-mnist`` sampler tables)."""
    import time

    from . import metrics

    labels = torch.arange(n) % 10 if getattr(fm.model, "null_label", None) is not None else None
    rows = []
    for method, steps in settings:
        g = torch.Generator(device=fm.device).manual_seed(seed)
        t0 = time.perf_counter()
        x = fm.sample(n, labels=labels, guidance_scale=guidance_scale, method=method, steps=steps, generator=g,
                      batch_size=batch_size)
        if fm.device.type == "cuda":
            torch.cuda.synchronize(fm.device)
        sec = time.perf_counter() - t0
        r = metrics.fid(x.cpu(), dataset, device=fm.device)
        evals = nfe(method, steps) * (2 if labels is not None and guidance_scale not in (0.0, 1.0) else 1)
        rows.append(dict(sampler=method, steps=steps, nfe=evals, fid=round(r.value, 3),
                         seconds_per_sample=round(sec / n, 5), guidance=guidance_scale, protocol=r.protocol))
    return rows


# ---------------------------------------------------------------------------------------------
# Recipes: class-conditional flow matching on MNIST with the ddpm-mnist U-Net and budget
# ---------------------------------------------------------------------------------------------
FM_DEFAULTS = dict(
    dataset="mnist", n_train=60_000, data_seed=0, init_seed=0, coupling="class-ot", time_scale=1000.0, time_power=1.0,
    channels=16, channel_mults=[1, 2, 4], num_res_blocks=1, attention=True,
    num_classes=10, class_dropout=0.1,
    lr=2e-3, warmup=200, batch_size=64, ema_decay=0.999, steps=20_000,
    sample_method="heun", sample_steps=10, sample_guidance=1.0, eval_samples=2000,
)


def build_model(cfg: dict) -> FlowMatching:
    """The process + U-Net of a recipe config (the architecture of ``ddpm-mnist``)."""
    from .unet import UNet

    unet = UNet(1, cfg["channels"], tuple(cfg["channel_mults"]), cfg["num_res_blocks"], cfg["attention"],
                num_classes=cfg["num_classes"], class_dropout=cfg["class_dropout"])
    return FlowMatching(unet, coupling=cfg["coupling"], time_scale=cfg["time_scale"],
                        time_power=cfg.get("time_power", 1.0))


def load_ema(name: str = "fm-mnist", device: torch.device | str = "cpu"):
    """The EMA model of the shipped checkpoint ``NAME`` in eval mode on ``device``: ``(model, checkpoint)``."""
    from . import checkpoint, recipes

    path = recipes.weights_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"no shipped weights {path}; train them with `python -m gencourse train {name}`")
    ck = checkpoint.load(path)
    model = build_model(dict(FM_DEFAULTS, **{k: v for k, v in ck.config.items() if k != "recipe"}))
    ck.load_into({"ema": model})
    return model.to(device).eval(), ck


def _build(cfg):
    import copy

    torch.manual_seed(cfg["init_seed"])
    model = build_model(cfg)
    return {"model": model, "ema": copy.deepcopy(model).requires_grad_(False)}


def _data(cfg, device, rank=0, world_size=1):
    from . import data, recipes

    images, labels = data.load(cfg["dataset"], "train")
    if cfg["n_train"] < len(labels):
        images, labels = data.subset(images, labels, cfg["n_train"], seed=cfg["data_seed"])
    return recipes.batches(cfg, device, rank, world_size, images, labels,
                           transform=lambda x, y: (data.to_float(x), y), seed=cfg["data_seed"])


def _step(modules, opts, cfg):
    from .diffusion import ema_update

    model, ema, opt = modules["model"], modules["ema"], opts["opt"]
    net = getattr(model, "module", model)

    def step(batch, trainer):
        x, y = batch                                                  # (B, 1, 28, 28) in [0, 1], (B,)
        for g in opt.param_groups:                                    # linear warm-up of the learning rate
            g["lr"] = cfg["lr"] * min(1.0, (trainer.step + 1) / cfg["warmup"])
        loss = model(x, y if cfg["num_classes"] else None)
        trainer.optimize(loss, opt)
        ema_update(ema, net, min(cfg["ema_decay"], (1 + trainer.step) / (10 + trainer.step)))
        return {"loss": loss}
    return step


def _sample(modules, cfg, n, device, generator=None):
    """Class-balanced samples (labels 0..9 cycling) from the EMA weights with ``sample_method`` /
    ``sample_steps`` / ``sample_guidance``; returns ``(images, labels)``."""
    ema = modules["ema"]
    labels = torch.arange(n, device=device) % cfg["num_classes"] if cfg["num_classes"] else None
    x = ema.sample(n, labels=labels, guidance_scale=cfg["sample_guidance"], method=cfg["sample_method"],
                   steps=cfg["sample_steps"], generator=generator, batch_size=500)
    return (x, labels) if labels is not None else x


def _evaluate(modules, cfg, device):
    """Domain-classifier FID and class accuracy of ``eval_samples`` samples from :func:`_sample`."""
    from . import metrics

    g = torch.Generator(device=device).manual_seed(0)
    out = _sample(modules, cfg, cfg["eval_samples"], device, g)
    x, labels = out if isinstance(out, tuple) else (out, None)
    rep = metrics.evaluate(x.cpu(), cfg["dataset"], labels=None if labels is None else labels.cpu(), device=device,
                           floor=False)
    res = {k: round(float(v), 5) for k, v in rep.as_dict().items()}
    res["eval_samples"] = cfg["eval_samples"]
    res["protocol"] = (f"{cfg['eval_samples']} samples (labels i % 10, EMA weights, {cfg['sample_method']} "
                       f"{cfg['sample_steps']} steps = {nfe(cfg['sample_method'], cfg['sample_steps'])} network "
                       f"evaluations, guidance {cfg['sample_guidance']:g}, seed 0); "
                       + "; ".join(rep.protocols().values()))
    return res


def _register() -> None:
    from . import recipes

    for name, desc, over in (
            ("fm-mnist", "class-conditional flow matching with OT pairs within each class (ddpm-mnist's U-Net) "
                         "on MNIST", {}),
            ("fm-mnist-class-ot-2k", "fm-mnist for 2,000 steps (Chapter 8's coupling comparison)", {"steps": 2000}),
            ("fm-mnist-ot-2k", "fm-mnist with class-blind minibatch OT pairs, 2,000 steps (Chapter 8's comparison)",
             {"steps": 2000, "coupling": "ot"}),
            ("fm-mnist-indep-2k", "fm-mnist with independent pairs for 2,000 steps (Chapter 8's comparison)",
             {"steps": 2000, "coupling": "independent"})):
        recipes.register(recipes.Recipe(
            name=name, description=desc, defaults=dict(FM_DEFAULTS, **over), build=_build,
            optimizers=recipes.one_adam, data=_data, step=_step, evaluate=_evaluate, sample=_sample,
            datasets=("mnist", "fashion"),
            notes={"sample": "EMA weights, Heun 10 steps (20 network evaluations), guidance 1, labels i % 10"}))


_register()
