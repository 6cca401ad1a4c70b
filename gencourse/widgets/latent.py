"""Latent-variable widgets (Chapters 1-2, reusable for any decoder ``z -> images``): :func:`latent_sliders`,
:func:`interpolation_slider`, :func:`attribute_slider`, :func:`model_comparison`, and the latent paths
:func:`lerp` / :func:`slerp` / :func:`traversal`.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

from .controls import Decoder, ImageControls


def lerp(z_a: Tensor, z_b: Tensor, t: float | Tensor) -> Tensor:
    """Straight line ``(1 - t) z_a + t z_b``."""
    return (1 - t) * z_a + t * z_b


def slerp(z_a: Tensor, z_b: Tensor, t: float | Tensor) -> Tensor:
    """Spherical interpolation along the last dimension: keeps the norm typical of Gaussian codes."""
    a, b = z_a / z_a.norm(dim=-1, keepdim=True), z_b / z_b.norm(dim=-1, keepdim=True)
    omega = torch.arccos((a * b).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * z_a + (torch.sin(t * omega) / so) * z_b


def traversal(z0: Tensor, dim: int, values: Sequence[float]) -> Tensor:
    """Copies of the code ``z0`` (d,) with coordinate ``dim`` set to each value: shape (len(values), d)."""
    z = z0.reshape(1, -1).repeat(len(values), 1)
    z[:, dim] = torch.as_tensor(list(values), dtype=z.dtype)
    return z


def _slider(name, lo, hi, step, value):
    import ipywidgets as w

    return w.FloatSlider(value=value, min=lo, max=hi, step=step, description=name, continuous_update=True,
                         readout_format=".2f", layout=w.Layout(width="340px"))


def latent_sliders(decode: Decoder, z0: Tensor, dims: Sequence[int] | None = None, *, lim: float = 3.0,
                   names: Sequence[str] | None = None, scale: int = 5) -> ImageControls:
    """One slider per latent dimension in ``dims`` (default all), starting at ``z0`` (d,); decodes live.

    The sweep of control ``"z<j>"`` is a traversal of dimension j.
    """
    z0 = z0.detach().reshape(-1).cpu().float()
    dims = list(range(z0.numel())) if dims is None else [int(d) for d in dims]
    keys = [f"z{j}" for j in dims]
    labels = list(names) if names is not None else keys
    controls = {k: _slider(lab, -lim, lim, 0.05, float(z0[j])) for k, lab, j in zip(keys, labels, dims)}

    def render(**vals):
        z = z0.clone()
        for k, j in zip(keys, dims):
            z[j] = vals[k]
        return decode(z[None])

    return ImageControls(render, controls, nrow=1, scale=scale, title="latent sliders")


def interpolation_slider(decode: Decoder, z_a: Tensor, z_b: Tensor, *, spherical: bool = False,
                         steps: int = 20, scale: int = 5) -> ImageControls:
    """Slider ``t`` in [0, 1] morphing from code ``z_a`` (t = 0) to ``z_b`` (t = 1), with the endpoints shown."""
    z_a, z_b = z_a.detach().reshape(-1).cpu().float(), z_b.detach().reshape(-1).cpu().float()
    path = slerp if spherical else lerp
    ends = None

    def render(t):
        nonlocal ends
        if ends is None:
            ends = decode(torch.stack([z_a, z_b]))
        return torch.cat([ends[:1], decode(path(z_a, z_b, float(t))[None]), ends[1:]])

    return ImageControls(render, {"t": _slider("t", 0.0, 1.0, 1.0 / steps, 0.0)}, nrow=3, scale=scale,
                         title="interpolation (start, z(t), end)")


def attribute_slider(decode: Decoder, z: Tensor, v: Tensor, *, lim: float = 2.0, scale: int = 4,
                     name: str = "alpha") -> ImageControls:
    """Slider ``alpha`` decoding ``z + alpha * v`` for a batch of codes ``z`` (B, d) and a direction ``v`` (d,)."""
    z, v = z.detach().reshape(-1, v.numel()).cpu().float(), v.detach().reshape(1, -1).cpu().float()
    return ImageControls(lambda alpha: decode(z + alpha * v), {"alpha": _slider(name, -lim, lim, 0.1, 0.0)},
                         nrow=min(len(z), 8), scale=scale, title="z + alpha * v")


def model_comparison(renders: Mapping[str, Callable[[], Tensor]], *, label: str = "model", nrow: int = 8,
                     scale: int = 2, caption: Mapping[str, str] | None = None) -> ImageControls:
    """A selection slider over named models; ``renders[name]()`` returns that model's images.

    Used for the beta comparison of Chapter 2 (one VAE per beta). Renders are cached.
    """
    import ipywidgets as w

    names = list(renders)
    cache: dict = {}

    def render(**vals):
        key = vals[label]
        if key not in cache:
            cache[key] = renders[key]()
        return cache[key]

    control = w.SelectionSlider(options=names, value=names[0], description=label, continuous_update=True)
    cap = (lambda vals: caption.get(vals[label], "")) if caption is not None else None
    return ImageControls(render, {label: control}, nrow=nrow, scale=scale, caption=cap)
