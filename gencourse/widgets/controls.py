"""The generic widget (Chapters 1-8): :class:`ImageControls`, a set of controls whose values go to a
``render(**values) -> images`` function, redrawn live as a PNG (:func:`to_png`), with
:meth:`ImageControls.sweep` for the static frames the book shows.
"""
from __future__ import annotations

import io
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor


Decoder = Callable[[Tensor], Tensor]  # codes (B, d) -> images (B, C, H, W) in [0, 1]


def to_png(images: Tensor, *, nrow: int = 8, scale: int = 3, value_range: tuple = (0.0, 1.0)) -> bytes:
    """PNG bytes of a grid of images (any layout :func:`gencourse.viz.image_grid` accepts), enlarged ``scale`` times."""
    from PIL import Image

    from ..viz import image_grid

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
        png = to_png(self.images, nrow=self.nrow, scale=self.scale, value_range=self.value_range)
        self.image.value = png
        self.image.width = str(int.from_bytes(png[16:20], "big"))   # the PNG's own width (IHDR), not the page's
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
