"""Figures with one consistent style: image grids, loss curves, latent scatters,
and animations that work without a kernel (the static counterparts of widgets)."""
from __future__ import annotations

import math
from typing import Callable, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

__all__ = ["set_style", "show_images", "image_grid", "plot_history", "latent_scatter",
           "animate_frames", "frame_strip", "CLASS_CMAP"]

CLASS_CMAP = "tab10"


def set_style() -> None:
    """The course's figure style (called by :func:`gencourse.setup`)."""
    matplotlib.rcParams.update({
        "figure.dpi": 90, "savefig.dpi": 90, "figure.figsize": (6.4, 4.0),
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
        "grid.alpha": 0.3, "font.size": 10, "axes.titlesize": 11, "legend.frameon": False,
        "image.cmap": "gray", "animation.embed_limit": 30.0,
    })


def _as_images(x: Tensor) -> Tensor:
    """Accept (N, 28, 28), (N, 784), (N, C, H, W); uint8 or float in [0, 1] (or [-1, 1] if ``signed``)."""
    x = x.detach().cpu()
    if x.dtype == torch.uint8:
        x = x.float() / 255
    x = x.float()
    if x.dim() == 2:
        side = int(math.isqrt(x.shape[1]))
        if side * side != x.shape[1]:
            raise ValueError(f"cannot reshape rows of length {x.shape[1]} into square images")
        x = x.view(-1, 1, side, side)
    elif x.dim() == 3:
        x = x.unsqueeze(1)
    elif x.dim() != 4:
        raise ValueError(f"expected images of shape (N, H, W), (N, H*W) or (N, C, H, W), got {tuple(x.shape)}")
    return x


def image_grid(x: Tensor, nrow: int = 8, *, value_range: tuple = (0.0, 1.0), padding: int = 2) -> np.ndarray:
    """Tile images into one (H, W, C) array in [0, 1] using torchvision's ``make_grid``."""
    from torchvision.utils import make_grid

    x = _as_images(x)
    lo, hi = value_range
    x = ((x - lo) / (hi - lo)).clamp(0, 1)
    grid = make_grid(x, nrow=nrow, padding=padding, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()


def show_images(x: Tensor, nrow: int = 8, *, title: str | None = None, ax=None,
                value_range: tuple = (0.0, 1.0), scale: float = 0.45):
    """Show a batch of images as a grid; returns the axes.  ``value_range=(-1, 1)`` for tanh outputs."""
    grid = image_grid(x, nrow, value_range=value_range)
    if ax is None:
        h, w = grid.shape[:2]
        _, ax = plt.subplots(figsize=(max(2.0, scale * w / 30), max(1.0, scale * h / 30)))
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def plot_history(history, names: Sequence[str] | None = None, ax=None, *, logy: bool = False, x: str = "steps"):
    """Logged values of a :class:`gencourse.train.History` against steps (or ``x="times"``)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    names = list(history.values) if names is None else list(names)
    xs = history.steps if x == "steps" else history.times
    for name in names:
        ax.plot(xs, history[name], label=name)
    ax.set_xlabel("training step" if x == "steps" else "seconds")
    if logy:
        ax.set_yscale("log")
    if len(names) > 1:
        ax.legend()
    elif names:
        ax.set_ylabel(names[0])
    return ax


def latent_scatter(z: Tensor, labels: Tensor | None = None, *, class_names: Sequence[str] | None = None,
                   ax=None, s: float = 3.0, alpha: float = 0.6, title: str | None = None):
    """Scatter of 2-D codes, coloured by class when ``labels`` is given (labels are only for colour)."""
    z = z.detach().cpu().numpy()
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"latent_scatter needs codes of shape (N, 2), got {z.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5))
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=s, alpha=alpha)
    else:
        labels = labels.detach().cpu().numpy()
        cmap = plt.get_cmap(CLASS_CMAP)
        for c in np.unique(labels):
            m = labels == c
            name = class_names[c] if class_names is not None else str(c)
            ax.scatter(z[m, 0], z[m, 1], s=s, alpha=alpha, color=cmap(int(c) % 10), label=name)
        ax.legend(markerscale=4, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    return ax


def animate_frames(frames: Sequence, *, titles: Sequence[str] | None = None, interval: int = 150,
                   figsize=(3.0, 3.0), value_range: tuple = (0.0, 1.0), draw: Callable | None = None):
    """A scrubbable HTML animation (``to_jshtml``) that needs no kernel.

    ``frames`` are images (tensors/arrays for ``imshow``) or, with ``draw``, any
    objects drawn by ``draw(ax, frame)``.  Returns an ``IPython.display.HTML``.
    """
    from IPython.display import HTML
    from matplotlib import animation

    if len(frames) == 0:
        raise ValueError("animate_frames needs at least one frame")
    fig, ax = plt.subplots(figsize=figsize)
    artists = {}

    def render(i):
        frame = frames[i]
        if draw is not None:
            ax.clear()
            draw(ax, frame)
        else:
            img = image_grid(frame, nrow=int(math.ceil(math.sqrt(len(frame)))), value_range=value_range) \
                if isinstance(frame, Tensor) and frame.dim() == 4 else _to_2d(frame, value_range)
            if "im" not in artists:
                ax.set_axis_off()
                artists["im"] = ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                artists["im"].set_data(img)
        if titles is not None:
            ax.set_title(titles[i])
        return []

    render(0)
    anim = animation.FuncAnimation(fig, render, frames=len(frames), interval=interval, blit=False)
    html = HTML(_self_contained(anim.to_jshtml(default_mode="once")))
    plt.close(fig)
    return html


# matplotlib's player links Font Awesome from a CDN for its button icons; a page
# that must work offline gets plain Unicode glyphs instead.
_GLYPHS = {"fa-minus": "\\2212", "fa-fast-backward": "\\23EE", "fa-step-backward": "\\23F4\\23F4",
           "fa-play": "\\25B6", "fa-pause": "\\23F8", "fa-step-forward": "\\23F5\\23F5",
           "fa-fast-forward": "\\23ED", "fa-plus": "+"}


def _self_contained(html: str) -> str:
    import re

    html = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">', "", html)
    css = "".join(f'.anim-buttons i.fa.{k}::before{{content:"{v}";font-family:sans-serif;font-style:normal}}'
                  for k, v in _GLYPHS.items())
    css += ".anim-buttons i.fa-flip-horizontal{display:inline-block;transform:scaleX(-1)}"
    return f"<style>{css}</style>" + html


def _to_2d(frame, value_range):
    if isinstance(frame, Tensor):
        frame = frame.detach().cpu().float()
        if frame.dim() == 3:  # (C, H, W)
            frame = frame.permute(1, 2, 0) if frame.shape[0] == 3 else frame[0]
        frame = frame.numpy()
    lo, hi = value_range
    return np.clip((np.asarray(frame, dtype=np.float32) - lo) / (hi - lo), 0, 1)


def frame_strip(frames: Sequence[Tensor], *, labels: Sequence[str] | None = None, value_range=(0.0, 1.0),
                title: str | None = None, size: float = 1.1, ncols: int | None = None):
    """Images with captions, ``ncols`` per row (default: all in one row): the static picture of a slider
    sweep.  ``size`` is the width of one panel in inches."""
    n = len(frames)
    ncols = n if ncols is None else max(1, min(int(ncols), n))
    nrows = -(-n // ncols)
    images = [_to_2d(f, value_range) for f in frames]
    aspect = max(im.shape[0] / im.shape[1] for im in images) if n else 1.0
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * aspect * nrows + 0.3 * nrows + 0.3),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        if labels is not None:
            ax.set_title(labels[i], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
