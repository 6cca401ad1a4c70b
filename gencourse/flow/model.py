"""The flow-matching process around Chapter 6's U-Net (Chapter 8): :class:`FlowMatching` (``fm(x, y)`` is
the training loss, ``fm.sample(...)`` draws images) and :func:`compare_samplers`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .. import utils
from .coupling import COUPLINGS, pair
from .paths import cfm_loss, interpolate, velocity_to_x1
from .samplers import integrate, nfe


def _randn(shape, generator: torch.Generator | None, device) -> Tensor:
    """Standard normal noise drawn with ``generator`` on its own device, then moved to ``device``
    (the course's one rule: :func:`gencourse.utils.randn`)."""
    return utils.randn(shape, generator=generator, device=device)


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
        from ..unet import guided

        return guided(self.model, x, t * self.time_scale, labels, guidance_scale)

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
            if hasattr(self.model, "check_labels"):
                self.model.check_labels(labels)  # once here, not in every network call (a host sync)
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

    from ..metrics import distances

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
        r = distances.fid(x.cpu(), dataset, device=fm.device)
        evals = nfe(method, steps) * (2 if labels is not None and guidance_scale not in (0.0, 1.0) else 1)
        rows.append(dict(sampler=method, steps=steps, nfe=evals, fid=round(r.value, 3),
                         seconds_per_sample=round(sec / n, 5), guidance=guidance_scale, protocol=r.protocol))
    return rows
