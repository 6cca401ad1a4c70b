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

The package, one piece a module: :mod:`~gencourse.widgets.controls` (:class:`ImageControls`,
:func:`to_png`), :mod:`~gencourse.widgets.latent` (Chapters 1-2) and one module per chapter that
adds its own widgets: :mod:`~gencourse.widgets.rbm` (3), :mod:`~gencourse.widgets.gan` (4),
:mod:`~gencourse.widgets.diffusion` (6).
"""
from __future__ import annotations

from .controls import ImageControls, to_png
from .diffusion import denoising_animation, guidance_slider, schedule_explorer
from .gan import gan_interpolation, gan_interpolation_grid
from .latent import attribute_slider, interpolation_slider, latent_sliders, lerp, model_comparison, slerp, traversal
from .rbm import gibbs_animation, gibbs_stepper

__all__ = ["to_png", "ImageControls", "lerp", "slerp", "traversal", "latent_sliders", "interpolation_slider",
           "attribute_slider", "model_comparison"]
__all__ += ["schedule_explorer", "guidance_slider", "denoising_animation"]
__all__ += ["gibbs_stepper", "gibbs_animation"]
__all__ += ["gan_interpolation", "gan_interpolation_grid"]
