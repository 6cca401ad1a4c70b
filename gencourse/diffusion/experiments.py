"""The experiments of Chapter 6 (numbers for its tables), written once here instead of in cells: the loss by
timestep, samplers compared by FID and time, and the guidance sweep.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .process import GaussianDiffusion, epsilon_loss
from .schedules import _randn


@torch.no_grad()
def loss_by_timestep(diffusion: GaussianDiffusion, x0: Tensor, y: Tensor | None = None, *,
                     timesteps=(0, 10, 50, 100, 250, 500, 750, 900, 990, 999),
                     generator: torch.Generator | None = None) -> dict:
    """``{t: L_simple at step t}`` for images ``x0`` in [0, 1] (mean over pixels and images),
    all with the same noise: how hard denoising is at each noise level."""
    x = x0.to(diffusion.device) * 2 - 1
    eps = _randn(x.shape, generator, x.device)
    out = {}
    for t in timesteps:
        tt = torch.full((len(x),), int(t), device=x.device, dtype=torch.long)
        pred = diffusion.model(diffusion.scheduler.add_noise(x, eps, tt), tt, *(() if y is None else (y.to(x.device),)))
        out[int(t)] = float(epsilon_loss(pred, eps))
    return out


def _timed_sample(diffusion, n, seed, **kw):
    import time

    dev = diffusion.device
    g = torch.Generator(device=dev).manual_seed(seed)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    x = diffusion.sample(n, generator=g, **kw)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return x, time.perf_counter() - t0


def compare_samplers(diffusion: GaussianDiffusion, settings=(("ddpm", 1000), ("ddim", 100), ("ddim", 50),
                                                             ("ddim", 20), ("ddim", 10)), *,
                     n: int = 1000, dataset: str = "mnist", guidance_scale: float = 1.0, seed: int = 0,
                     batch_size: int = 500) -> list[dict]:
    """Quality and cost of samplers on the same model: for each ``(sampler, steps)`` (or
    ``(sampler, steps, eta)`` for DDIM with noise; default eta 0), ``n`` class-balanced samples
    (labels ``i % 10``, the same seed) scored with the domain-classifier FID of
    :func:`gencourse.metrics.fid` (against the test split), plus seconds per sample on this
    machine.  Rows: ``sampler, steps, fid, seconds_per_sample, protocol`` and, for DDIM, ``eta``."""
    from ..metrics import distances

    labels = torch.arange(n) % 10 if diffusion.model.null_label is not None else None
    rows = []
    for sampler, steps, *rest in settings:
        eta = float(rest[0]) if rest else 0.0
        x, sec = _timed_sample(diffusion, n, seed, labels=labels, guidance_scale=guidance_scale,
                               sampler=sampler, steps=steps, eta=eta, batch_size=batch_size)
        r = distances.fid(x.cpu(), dataset, device=diffusion.device)
        rows.append(dict(sampler=sampler, steps=steps, **({"eta": eta} if sampler == "ddim" else {}),
                         fid=round(r.value, 3), seconds_per_sample=round(sec / n, 5), protocol=r.protocol))
    return rows


def guidance_sweep(diffusion: GaussianDiffusion, scales=(0.0, 1.0, 2.0, 3.0, 5.0), *, n: int = 1000,
                   steps: int = 50, dataset: str = "mnist", seed: int = 0, batch_size: int = 500) -> list[dict]:
    """Classifier-free guidance traded against diversity: for each scale, ``n`` samples with labels
    ``i % 10`` (DDIM, ``steps``, same seed) scored by :func:`gencourse.metrics.evaluate`: the share
    the domain classifier assigns to the intended class, FID, recall and coverage (diversity),
    and the mean within-class feature spread (std of the classifier features around each class mean)."""
    from ..metrics import features, protocol

    labels = torch.arange(n) % 10
    rows = []
    for s in scales:
        x = diffusion.sample(n, labels=labels, guidance_scale=s, sampler="ddim", steps=steps,
                             generator=torch.Generator(device=diffusion.device).manual_seed(seed),
                             batch_size=batch_size).cpu()
        emb = features.embed(x, dataset, device=diffusion.device)
        rep = protocol.evaluate(emb, dataset, labels=labels, device=diffusion.device, floor=False).as_dict()
        spread = torch.stack([emb.features[labels == c].std(0).mean() for c in range(10)]).mean()
        rows.append(dict(scale=s, class_accuracy=round(rep["class_accuracy"], 4), fid=round(rep["fid"], 3),
                         recall=round(rep["recall"], 4), coverage=round(rep["coverage"], 4),
                         within_class_spread=round(float(spread), 4)))
    return rows
