"""Interactive widgets (``ipywidgets``) for exploring generative models, and their static counterparts.

The generic piece is :class:`ImageControls`: a set of controls (sliders,
dropdowns) whose values go to a ``render(**values) -> images`` function, the
images being redrawn live as a PNG. Everything a chapter needs is a ``render``
function plus controls, e.g. a guidance-scale slider for diffusion or a
latent-walk for a GAN. Widgets are built without a display (they are plain
Python objects until shown), so they can be tested.

A widget only moves in a live kernel; the book shows its saved state. Each
widget therefore has :meth:`ImageControls.sweep`, which renders a list of frames
along one control, for :func:`gencourse.viz.animate_frames` (a scrubbable
animation without a kernel) or :func:`gencourse.viz.frame_strip`.

Latent-variable helpers (Chapters 1-2, reusable for any decoder ``z -> images``):
:func:`latent_sliders`, :func:`interpolation_slider`, :func:`attribute_slider`,
:func:`model_comparison`, and :func:`lerp` / :func:`slerp` / :func:`traversal`.
"""
from __future__ import annotations

import io
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["to_png", "ImageControls", "lerp", "slerp", "traversal", "latent_sliders", "interpolation_slider",
           "attribute_slider", "model_comparison"]

Decoder = Callable[[Tensor], Tensor]  # codes (B, d) -> images (B, C, H, W) in [0, 1]


def to_png(images: Tensor, *, nrow: int = 8, scale: int = 3, value_range: tuple = (0.0, 1.0)) -> bytes:
    """PNG bytes of a grid of images (any layout :func:`gencourse.viz.image_grid` accepts), enlarged ``scale`` times."""
    from PIL import Image

    from .viz import image_grid

    grid = image_grid(images, nrow=nrow, value_range=value_range)          # (H, W, C) in [0, 1]
    arr = (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class ImageControls:
    """Controls whose values are passed to ``render(**values)``; the returned images are shown live.

    Parameters
    ----------
    render:
        Function of the controls' values (by name) returning images (N, C, H, W) in ``value_range``.
    controls:
        ``{name: ipywidget}`` with a ``.value`` (e.g. ``FloatSlider``, ``SelectionSlider``).
    caption:
        Optional function of the values returning a line of text shown under the images.

    ``widget`` is the ipywidgets container; displaying the object displays it.
    """

    def __init__(self, render: Callable[..., Tensor], controls: Mapping[str, object], *, nrow: int = 8,
                 scale: int = 3, value_range: tuple = (0.0, 1.0), title: str | None = None,
                 caption: Callable[[dict], str] | None = None):
        import ipywidgets as w

        if not controls:
            raise ValueError("ImageControls needs at least one control")
        self.render, self.controls = render, dict(controls)
        self.nrow, self.scale, self.value_range, self.caption = nrow, scale, value_range, caption
        self.image = w.Image(format="png")
        self.text = w.HTML()
        for c in self.controls.values():
            c.observe(self._changed, names="value")
        head = [w.HTML(f"<b>{title}</b>")] if title else []
        self.widget = w.VBox(head + [w.VBox(list(self.controls.values())), self.image, self.text])
        self.images: Tensor | None = None
        self.update()

    @property
    def values(self) -> dict:
        return {k: c.value for k, c in self.controls.items()}

    def _changed(self, change) -> None:
        self.update()

    @torch.no_grad()
    def update(self) -> Tensor:
        """Render with the current values and show the result; returns the images."""
        values = self.values
        self.images = self.render(**values).detach().cpu()
        self.image.value = to_png(self.images, nrow=self.nrow, scale=self.scale, value_range=self.value_range)
        if self.caption is not None:
            self.text.value = self.caption(values)
        return self.images

    def set(self, **values) -> Tensor:
        """Set controls by name (as a user would) and return the redrawn images."""
        unknown = sorted(set(values) - set(self.controls))
        if unknown:
            raise KeyError(f"no control(s) {unknown}; this widget has {sorted(self.controls)}")
        for k, v in values.items():
            self.controls[k].value = v
        return self.update()

    @torch.no_grad()
    def sweep(self, name: str, values: Sequence | None = None, **fixed) -> list[Tensor]:
        """Frames along control ``name`` (default: every option of a selection control), the
        others at their current values or ``fixed``: the static counterpart of the widget."""
        if name not in self.controls:
            raise KeyError(f"no control {name!r}; this widget has {sorted(self.controls)}")
        if values is None:
            options = getattr(self.controls[name], "options", None)
            if options is None:
                raise ValueError(f"give the values of {name!r} to sweep over")
            values = [o[1] if isinstance(o, tuple) else o for o in options]
        base = dict(self.values, **fixed)
        return [self.render(**dict(base, **{name: v})).detach().cpu() for v in values]

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


# --------------------------------------------------------------------------- latent paths
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
