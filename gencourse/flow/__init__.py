"""Flow matching (Chapter 8): probability paths, the conditional flow-matching loss, minibatch
optimal-transport pairing, ODE samplers and the ``fm-mnist`` recipes.

**Convention, used everywhere in the chapter and in this module.**  Time runs from noise to
data: ``t = 0`` is the noise ``x_0 ~ N(0, I)``, ``t = 1`` is a data point ``x_1``.  The
linear (rectified-flow) path between a pair is

    x_t = (1 - t) x_0 + t x_1,        its velocity   u = dx_t/dt = x_1 - x_0,

and conditional flow matching (Lipman et al. 2023, Liu et al. 2023) regresses a network
``v_theta(x_t, t)`` onto ``u``: ``L = E_{t, x_0, x_1} ||v_theta(x_t, t) - (x_1 - x_0)||^2``
(here the **mean** over pixels and over the batch).  Chapter 6 runs time the other way
(its ``x_0`` is data, its ``t = T`` is noise); :func:`fm_to_ddpm` maps this path onto
Chapter 6's ``alpha_bar`` so the two can be compared on the same noisy image.

Pieces:

* paths and targets: :func:`interpolate`, :func:`target_velocity`, :func:`cfm_loss`;
* couplings: :func:`ot_pairing` (exact minibatch OT with SciPy's assignment solver);
* conversions between velocity, noise (epsilon) and data (x_1) predictions on the same x_t;
* ODE integration of any velocity field: :func:`integrate` (Euler, midpoint, Heun) and the
  straightness of the resulting paths (:func:`straightness`);
* :class:`VelocityMLP` for 2-D toys and :class:`FlowMatching`, the process that wraps the
  Chapter 6 U-Net (``fm(x, y)`` is the training loss, ``fm.sample(...)`` draws images);
* the recipes ``fm-mnist`` (OT pairs within each class, shipped) and the 2,000-step comparison models
  ``fm-mnist-class-ot-2k``, ``fm-mnist-ot-2k`` and ``fm-mnist-indep-2k``.

The package, one concept a module: :mod:`~gencourse.flow.paths` (the path, the loss, the
conversions), :mod:`~gencourse.flow.coupling`, :mod:`~gencourse.flow.samplers`,
:mod:`~gencourse.flow.toy`, :mod:`~gencourse.flow.model` (:class:`FlowMatching`,
:func:`compare_samplers`) and :mod:`~gencourse.flow.recipes`.
"""
from __future__ import annotations

from .coupling import COUPLINGS, ot_pairing, pair
from .model import FlowMatching, compare_samplers
from .paths import cfm_loss, eps_to_velocity, fm_to_ddpm, interpolate, target_velocity, velocity_to_eps, velocity_to_x1
from .recipes import FM_DEFAULTS, build_model, load_ema
from .samplers import METHODS, integrate, nfe, straightness
from .toy import VelocityMLP, train_toy_flow

__all__ = [
    "interpolate", "target_velocity", "cfm_loss", "ot_pairing", "pair", "COUPLINGS", "METHODS",
    "velocity_to_eps", "velocity_to_x1", "eps_to_velocity", "fm_to_ddpm", "nfe",
    "integrate", "straightness", "VelocityMLP", "train_toy_flow", "FlowMatching", "build_model",
    "load_ema", "compare_samplers", "FM_DEFAULTS",
]
