"""Chapter 3's widgets: the Gibbs-chain stepper and its static animation."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .. import utils
from .controls import ImageControls


class _GibbsTape:
    """The states of block-Gibbs chains, computed one sweep at a time on demand and kept, so
    moving a slider back and forth always shows the same chain."""

    def __init__(self, rbm, v0: Tensor, generator: torch.Generator | None):
        self.rbm, self.generator = rbm, generator
        v0 = v0.flatten(1).to(rbm.W.dtype)
        self.v = [v0]                 # binary states after each sweep, (B, D)
        self.mean = [v0]              # p(v | h) of each sweep (sweep 0: the start itself)

    @torch.no_grad()
    def at(self, t: int) -> tuple[Tensor, Tensor]:
        while len(self.v) <= t:
            h = self.rbm.sample_hidden(self.v[-1], self.generator)
            p = self.rbm.visible_probs(h)
            self.v.append(utils.bernoulli(p, generator=self.generator))
            self.mean.append(p)
        return self.v[t], self.mean[t]


def gibbs_stepper(rbm, v0: Tensor, *, max_sweeps: int = 1000, generator: torch.Generator | None = None,
                  image_shape: tuple = (1, 28, 28), nrow: int = 8, scale: int = 2) -> ImageControls:
    """Step block-Gibbs chains of an RBM (:class:`gencourse.rbm.RBM`) started at ``v0`` (B, D).

    Controls: a ``sweep`` slider (0 .. ``max_sweeps``), buttons that add 1, 10 or 100 sweeps,
    and ``show``: the mean image p(v | h) of the sweep or the binary sample v.  Each sweep is
    computed once with ``generator`` and kept, so the slider can go back.  ``sweep("sweep",
    values)`` gives frames for :func:`gibbs_animation` (the static counterpart).
    """
    import ipywidgets as w

    tape = _GibbsTape(rbm, v0, generator)

    def render(sweep, show):
        v, mean = tape.at(int(sweep))
        x = mean if show == "mean p(v|h)" else v
        return x.reshape(-1, *image_shape).float().clamp(0, 1)

    def caption(values):
        v, _ = tape.at(int(values["sweep"]))
        f = float(rbm.free_energy(v).mean())
        return (f"sweep {int(values['sweep'])} of v -> h ~ p(h|v) -> v ~ p(v|h); "
                f"mean free energy F(v) of the chains = {f:.1f} nats")

    slider = w.IntSlider(value=0, min=0, max=max_sweeps, description="sweep", continuous_update=False,
                         layout=w.Layout(width="420px"))
    show = w.ToggleButtons(options=["mean p(v|h)", "binary sample v"], value="mean p(v|h)", description="show")
    controls = ImageControls(render, {"sweep": slider, "show": show}, nrow=nrow, scale=scale, caption=caption,
                             title="Gibbs chains of an RBM")
    buttons = []
    for n in (1, 10, 100):
        b = w.Button(description=f"+{n} sweep{'s' if n > 1 else ''}", layout=w.Layout(width="110px"))
        b.on_click(lambda _, n=n: setattr(slider, "value", min(slider.value + n, max_sweeps)))
        buttons.append(b)
    controls.buttons = buttons
    controls.widget.children = (w.HBox(buttons),) + tuple(controls.widget.children)
    return controls


def gibbs_animation(rbm, v0: Tensor, sweeps: Sequence[int], *, generator: torch.Generator | None = None,
                    image_shape: tuple = (1, 28, 28), interval: int = 300, figsize=(4.0, 4.0)):
    """The static counterpart of :func:`gibbs_stepper`: a kernel-free animation of the chains'
    mean images p(v | h) at the given sweep numbers (sweep 0 shows ``v0``)."""
    from ..viz import animate_frames

    stepper = gibbs_stepper(rbm, v0, max_sweeps=max(sweeps), generator=generator, image_shape=image_shape)
    frames = stepper.sweep("sweep", list(sweeps))
    return animate_frames(frames, titles=[f"Gibbs sweep {s}" for s in sweeps], interval=interval, figsize=figsize)
