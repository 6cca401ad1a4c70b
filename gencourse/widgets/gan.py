"""Chapter 4's widgets: latent interpolation, with a class control for conditional generators."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from .controls import ImageControls
from .latent import lerp, slerp


def _gan_decoder(generator) -> Callable:
    """codes (N, d) [+ labels] -> images in [0, 1]: the generator in eval mode, tanh output mapped to [0, 1]."""

    @torch.no_grad()
    def decode(z: Tensor, labels: Tensor | None = None) -> Tensor:
        generator.eval()
        dev = next(generator.parameters()).device
        x = generator(z.to(dev), None if labels is None else labels.to(dev))
        return ((x.float().cpu() + 1) / 2).clamp(0, 1)

    return decode


def gan_interpolation_grid(generator, z_a: Tensor, z_b: Tensor, ts: Sequence[float], *, labels: Tensor | None = None,
                           spherical: bool = True) -> Tensor:
    """Images along the paths from ``z_a`` (N, d) to ``z_b`` (N, d) at the values ``ts`` in [0, 1]:
    shape (N * len(ts), 1, H, W), row i = pair i, column j = ``ts[j]`` (show with ``nrow=len(ts)``).
    ``labels`` (N,) for a class-conditional generator (each row keeps its class).  The static
    picture of :func:`gan_interpolation`."""
    decode, path = _gan_decoder(generator), (slerp if spherical else lerp)
    z_a, z_b = z_a.detach().float().cpu(), z_b.detach().float().cpu()
    ts_ = torch.as_tensor(list(ts), dtype=torch.float32)
    z = torch.stack([path(z_a, z_b, float(t)) for t in ts_], 1)              # (N, T, d)
    y = None if labels is None else torch.as_tensor(labels).long().repeat_interleave(len(ts_))
    return decode(z.reshape(-1, z.shape[-1]), y)


def gan_interpolation(generator, z_a: Tensor, z_b: Tensor, *, labels: Tensor | None = None,
                      class_names: Sequence[str] | None = None, spherical: bool = True, steps: int = 20,
                      scale: int = 3) -> ImageControls:
    """A slider ``t`` in [0, 1] walking ``N`` pairs of codes from ``z_a`` (N, d) to ``z_b`` (N, d) at once:
    one image per pair, ``G(slerp(z_a, z_b, t))`` (``lerp`` with ``spherical=False``).

    For a class-conditional generator (``generator.n_classes > 0``) a ``label`` control chooses
    the class of every image ("as given" keeps ``labels``, default ``i % n_classes``): the
    same walk through z then changes the style within one class.  ``sweep("t", ts)`` gives the
    frames of the static counterpart (:func:`gencourse.viz.animate_frames`), and
    :func:`gan_interpolation_grid` the whole path as one picture.
    """
    import ipywidgets as w

    decode, path = _gan_decoder(generator), (slerp if spherical else lerp)
    z_a, z_b = z_a.detach().float().cpu(), z_b.detach().float().cpu()
    if z_a.shape != z_b.shape or z_a.dim() != 2:
        raise ValueError(f"z_a and z_b must both be (N, d), got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    k = int(getattr(generator, "n_classes", 0) or 0)
    controls = {"t": w.FloatSlider(value=0.0, min=0.0, max=1.0, step=1.0 / steps, description="t",
                                   continuous_update=True, readout_format=".2f", layout=w.Layout(width="340px"))}
    given = None
    if k:
        given = (torch.arange(len(z_a)) % k) if labels is None else torch.as_tensor(labels).long().cpu()
        names = list(class_names) if class_names is not None else [str(c) for c in range(k)]
        controls["label"] = w.Dropdown(options=[("as given", -1)] + [(n, c) for c, n in enumerate(names)], value=-1,
                                       description="class")

    def render(t, label=-1):
        y = None if not k else (given if int(label) < 0 else torch.full((len(z_a),), int(label)))
        return decode(path(z_a, z_b, float(t)), y)

    return ImageControls(render, controls, nrow=min(len(z_a), 10), scale=scale,
                         title=f"latent interpolation: G({'slerp' if spherical else 'lerp'}(z_a, z_b, t))",
                         caption=lambda v: f"t = {float(v['t']):.2f}: t = 0 shows G(z_a), t = 1 shows G(z_b)")
