"""The GAN recipes (Chapter 4): ``dcgan-mnist``, ``dcgan-fashion``, ``cgan-mnist``, ``cgan-fashion``,
``wgan-gp-mnist``.  Their ``sample`` gives images in [0, 1] (and the labels, for the conditional ones),
their ``evaluate`` the metrics of :mod:`gencourse.metrics`.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .. import data as _data
from .. import recipes
from ..train import adam
from .networks import DCDiscriminator, DCGenerator, MLPDiscriminator, MLPGenerator
from .training import Snapshots, gan_step, generate, snapshot_schedule


GAN_DEFAULTS = dict(
    dataset="mnist", arch="dcgan", conditional=False, latent_dim=64, width=32, d_width=0, deep=False,
    hidden=[256, 512],
    d_norm="batch", d_dropout=0.0, d_spectral=False, loss="non-saturating", r1_weight=0.0, r1_every=1, d_steps=1, g_steps=1, gp_weight=10.0,
    real_smoothing=0.0, label_noise=0.0, flip=0.0,
    lr_g=4e-4, lr_d=1e-4, betas=[0.5, 0.999], batch_size=64, steps=8000, n_train=0, init_seed=0,
    ema_decay=0.999, snapshots=8, eval_samples=10_000,
)


def build_gan(cfg: dict) -> dict:
    """``{"generator", "discriminator", "snapshots"}`` for a recipe config (see :data:`GAN_DEFAULTS`),
    plus ``"generator_ema"`` (the moving average of the generator's weights) when ``ema_decay > 0``."""
    torch.manual_seed(cfg["init_seed"])
    k = 10 if cfg["conditional"] else 0
    if cfg["arch"] == "dcgan":
        G = DCGenerator(cfg["latent_dim"], cfg["width"], n_classes=k, deep=cfg["deep"])
        D = DCDiscriminator(cfg["d_width"] or cfg["width"], n_classes=k, norm=cfg["d_norm"], dropout=cfg["d_dropout"],
                            deep=cfg["deep"], spectral=cfg["d_spectral"])
    elif cfg["arch"] == "mlp":
        if cfg["d_spectral"]:
            raise ValueError("d_spectral=True is implemented for arch='dcgan' only: set d_spectral=false or arch=dcgan")
        G = MLPGenerator(cfg["latent_dim"], (1, 28, 28), cfg["hidden"], n_classes=k, tanh=True)
        D = MLPDiscriminator((1, 28, 28), list(reversed(cfg["hidden"])), n_classes=k, dropout=cfg["d_dropout"])
    else:
        raise ValueError(f"arch must be 'dcgan' or 'mlp', got {cfg['arch']!r}")
    snaps = Snapshots(snapshot_schedule(cfg["steps"], cfg["snapshots"]), 16 if not k else 20, cfg["latent_dim"], k)
    mods = {"generator": G, "discriminator": D, "snapshots": snaps}
    if cfg["ema_decay"]:
        mods["generator_ema"] = copy.deepcopy(G).requires_grad_(False)
    return mods


def sampler(modules: dict) -> nn.Module:
    """The generator a recipe samples from: the weight average ``generator_ema`` if there is one."""
    return modules.get("generator_ema", modules["generator"])


def stored_trials() -> list[dict]:
    """The finished GAN training runs that Chapter 4 reports (``gencourse/assets/gan_trials.json``, collected
    from each run's sidecar by ``benchmarks/gan_trials.py``): one dict per run with its recipe, steps,
    generator updates, learning rates, betas, D steps, seed, FID / precision / recall at ``eval_n`` samples
    (the recipe's own evaluation), training seconds, hardware, command and the first 16 hex digits of its
    tensors' SHA-256; some runs also store their logged D / critic loss (``history``: ``steps``, ``d_loss``,
    ``gp``) and their FID over training (``curve``: one dict per point, ``benchmarks/gan_curve.py``)."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "assets" / "gan_trials.json"
    return json.loads(path.read_text())["rows"]


def _optimizers(modules, cfg):
    betas = tuple(float(b) for b in cfg["betas"])  # --set betas=[0,0.9] parses 0 as an int
    return {"g": adam(modules["generator"].parameters(), lr=cfg["lr_g"], betas=betas),
            "d": adam(modules["discriminator"].parameters(), lr=cfg["lr_d"], betas=betas)}


def _data_fn(cfg, device, rank=0, world_size=1):
    images, labels = _data.load(cfg["dataset"], "train")
    if cfg["n_train"]:
        images, labels = images[: cfg["n_train"]], labels[: cfg["n_train"]]
    to_signed = lambda x: x.unsqueeze(1).float().div_(127.5).sub_(1.0)  # uint8 -> [-1, 1], (B, 1, 28, 28)  # noqa: E731
    if cfg["conditional"]:
        return recipes.batches(cfg, device, rank, world_size, images, labels, transform=lambda x, y: (to_signed(x), y))
    return recipes.batches(cfg, device, rank, world_size, images, transform=to_signed)


def _step(modules, opts, cfg):
    return gan_step(modules["generator"], modules["discriminator"], opts["g"], opts["d"],
                    latent_dim=cfg["latent_dim"], loss=cfg["loss"], d_steps=cfg["d_steps"], g_steps=cfg["g_steps"],
                    gp_weight=cfg["gp_weight"], real_smoothing=cfg["real_smoothing"], label_noise=cfg["label_noise"],
                    flip=cfg["flip"], r1_weight=cfg["r1_weight"], r1_every=cfg["r1_every"], snapshots=modules.get("snapshots"), ema=modules.get("generator_ema"),
                    ema_decay=cfg["ema_decay"])


@torch.no_grad()
def _sample(modules, cfg, n, device, generator=None):
    """Images in [0, 1] (n, 1, 28, 28) from z ~ N(0, I) (the weight-averaged generator when there is one);
    conditional recipes return ``(images, labels)`` with labels ``i % 10``."""
    G = sampler(modules)
    device = torch.device(device)
    labels = torch.arange(n, device=device) % 10 if cfg["conditional"] else None
    x = generate(G, n, labels=labels, device=device, generator_rng=generator)
    return (x, labels) if labels is not None else x


@torch.no_grad()
def _evaluate(modules, cfg, device):
    """Every metric of :func:`gencourse.metrics.evaluate` on ``eval_samples`` samples (seed 0), with the
    real-vs-real floor at the same n; class accuracy (overall and per class) for conditional recipes."""
    from ..metrics import protocol

    n = cfg["eval_samples"]
    out = _sample(modules, cfg, n, device, torch.Generator(device=torch.device(device)).manual_seed(0))
    images, labels = out if isinstance(out, tuple) else (out, None)
    rep = protocol.evaluate(images.cpu(), cfg["dataset"], labels=None if labels is None else labels.cpu(),
                            device=device)
    res = {k: float(v) for k, v in rep.as_dict().items()}
    if rep.floor is not None:
        res.update({f"floor_{k}": float(rep.floor[k]) for k in ("fid", "kid", "precision", "recall")
                    if k in rep.floor})
    if labels is not None:
        res["class_accuracy_per_class"] = [float(a) for a in rep["class_accuracy"].details["per_class"]]
    res["eval_n"] = n
    res["protocol"] = " | ".join(rep.protocols().values())
    return res


def _register(name: str, description: str, **overrides) -> None:
    recipes.register(recipes.Recipe(
        name=name, description=description, defaults=dict(GAN_DEFAULTS, **overrides), build=build_gan,
        optimizers=_optimizers, data=_data_fn, step=_step, evaluate=_evaluate, sample=_sample,
        datasets=("mnist", "fashion"),
        notes={"sample": "generator in eval mode (batch-norm running statistics), z ~ N(0, I); "
                         "conditional: labels i % 10"}))


# learning rates: the generator at 4e-4, the discriminator at 1e-4, instead of DCGAN's 2e-4 for both: over two
# seeds at 3000 steps, dcgan-mnist's FID (n = 5000) fell from 99.7 / 103.6 to 68.9 / 77.3, and the full runs
# improved every recipe that uses these defaults (gencourse/assets/gan_trials.json; Chapter 4 prints it)
# the unconditional recipes use the deeper networks (one more 3x3 convolution per resolution): with the
# shallow ones the digits had the right strokes but the wrong shapes far more often (MNIST FID 94.6 after
# 24,000 steps, against 32.3 after 12,000 steps with deep=True; n = 10,000, see the shipped metrics)
_register("dcgan-mnist", "DCGAN (non-saturating loss, deep=True) on MNIST (Chapter 4)", deep=True, steps=32_000)
_register("dcgan-fashion", "DCGAN (non-saturating loss, deep=True) on Fashion-MNIST (Chapter 4)", dataset="fashion",
          deep=True, steps=12_000)
_register("cgan-mnist", "class-conditional DCGAN (one-hot z, projection D) on MNIST (Chapter 4)", conditional=True)
_register("cgan-fashion", "class-conditional DCGAN on Fashion-MNIST (Chapter 4)", dataset="fashion",
          conditional=True)
_register("wgan-gp-mnist", "WGAN-GP: the DCGAN networks (deep=True), critic without batch norm, 5 critic steps "
          "(Chapter 4)", deep=True, loss="wgan-gp", d_norm="none", d_steps=5, lr_g=2e-4, lr_d=2e-4,
          betas=[0.0, 0.9], steps=24_000)
