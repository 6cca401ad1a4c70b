"""Chapter 6's widgets: the schedule explorer, the guidance-scale slider and the denoising animation."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from .. import utils
from .controls import ImageControls


def _noised(x0: Tensor, eps: Tensor, abar: float) -> Tensor:
    """q(x_t | x_0) for images in [0, 1] (mapped to [-1, 1]), shown back in [0, 1] (clamped)."""
    x_t = abar ** 0.5 * (2 * x0 - 1) + (1 - abar) ** 0.5 * eps
    return ((x_t + 1) / 2).clamp(0, 1)


def schedule_explorer(x0: Tensor, alpha_bars: Mapping[str, Tensor], *, noise: Tensor | None = None,
                      t: int = 250, scale: int = 3, generator: torch.Generator | None = None) -> ImageControls:
    """A slider over the step ``t``: images ``x0`` (N, 1, H, W) in [0, 1] noised to step t by
    ``q(x_t | x_0)`` under each schedule (one row per entry of ``alpha_bars``, name -> (T,)), all
    with the same noise; the caption gives alpha-bar_t and the SNR of each schedule.

    ``explorer.sweep("t", [0, 100, ...])`` gives the frames of the static counterpart.
    """
    import ipywidgets as w

    x0 = x0.detach().float().cpu()
    names = list(alpha_bars)
    abars = {k: torch.as_tensor(v).double().cpu() for k, v in alpha_bars.items()}
    T = len(abars[names[0]])
    eps = (utils.randn(x0.shape, generator=generator, device="cpu") if noise is None
           else noise.detach().float().cpu())

    def render(t):
        return torch.cat([_noised(x0, eps, float(abars[k][int(t)])) for k in names])   # (len(names) * N, 1, H, W)

    def caption(values):
        t_ = int(values["t"])
        parts = []
        for k in names:
            a = float(abars[k][t_])
            snr = a / (1 - a) if a < 1 else float("inf")
            parts.append(f"<b>{k}</b>: &#x101;<sub>t</sub> = {a:.3f}, SNR = {snr:.3g} ({10 * np.log10(max(snr, 1e-12)):.1f} dB)")
        return f"t = {t_} (rows: {', '.join(names)})<br>" + "<br>".join(parts)

    slider = w.IntSlider(value=t, min=0, max=T - 1, step=1, description="t", continuous_update=True,
                         layout=w.Layout(width="420px"))
    return ImageControls(render, {"t": slider}, nrow=len(x0), scale=scale, caption=caption,
                         title="forward process: x_t ~ q(x_t | x_0) per schedule")


def guidance_slider(diffusion, labels: Tensor, scales: Sequence[float] = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0), *,
                    steps: int = 20, x_T: Tensor | None = None, generator: torch.Generator | None = None,
                    nrow: int = 10, scale: int = 2) -> ImageControls:
    """A selection slider over classifier-free guidance scales: samples of ``diffusion``
    (a :class:`gencourse.diffusion.GaussianDiffusion`) for ``labels`` with DDIM (``steps``, eta 0)
    from the *same* starting noise, so only the scale changes.  Renders are cached.
    ``sweep("scale")`` gives one frame per scale (the static counterpart)."""
    import ipywidgets as w

    labels = torch.as_tensor(labels).long()
    if x_T is None:
        x_T = utils.randn((len(labels), *diffusion.image_shape), generator=generator, device="cpu")
    cache: dict = {}

    def render(scale):
        s = float(scale)
        if s not in cache:
            cache[s] = diffusion.sample(len(labels), labels=labels, guidance_scale=s, sampler="ddim",
                                        steps=steps, x_T=x_T).cpu()
        return cache[s]

    control = w.SelectionSlider(options=[float(s) for s in scales], value=float(scales[0]),
                                description="guidance", continuous_update=False)
    return ImageControls(render, {"scale": control}, nrow=nrow, scale=scale,
                         caption=lambda v: f"eps = eps(x, null) + {v['scale']:g} (eps(x, y) - eps(x, null)); "
                                           f"labels {labels.tolist()[:nrow]}{' ...' if len(labels) > nrow else ''}")


def denoising_animation(frames: Sequence, *, interval: int = 200, figsize=(7.0, 1.9)):
    """Kernel-free animation of the reverse process from ``sample(..., frames=k)`` snapshots
    ``(t, x_t, x0_hat)``: the top row is x_t, the bottom row the current prediction of x_0."""
    from ..viz import animate_frames, image_grid

    if not frames:
        raise ValueError("no frames: call diffusion.sample(..., frames=k) with k > 0")

    def draw(ax, frame):
        t, x_t, x0 = frame
        ax.imshow(image_grid(torch.cat([x_t, x0]), nrow=len(x_t)), interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"step t = {t}: x_t (top), predicted x_0 (bottom)", fontsize=9)

    return animate_frames(list(frames), draw=draw, interval=interval, figsize=figsize)
