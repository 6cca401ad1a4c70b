"""The linear path of Chapter 8, its velocity and the loss, and the conversions between velocity, noise
(epsilon) and data (x_1) predictions on the same x_t, with the map onto Chapter 6's process.

Time runs from noise (``t = 0``) to data (``t = 1``): ``x_t = (1 - t) x_0 + t x_1``, ``u = x_1 - x_0``.
"""
from __future__ import annotations

import torch
from torch import Tensor


def _per_sample(t: Tensor, like: Tensor) -> Tensor:
    """Times (B,) -> (B, 1, ..., 1) so they broadcast against ``like`` (B, ...)."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.dim() == 0:
        t = t.expand(like.shape[0])
    if t.shape != like.shape[:1]:
        raise ValueError(f"t must be a number or have shape ({like.shape[0]},), got {tuple(t.shape)}")
    return t.reshape(-1, *([1] * (like.dim() - 1)))


def interpolate(x0: Tensor, x1: Tensor, t: Tensor | float) -> Tensor:
    """The linear path ``x_t = (1 - t) x_0 + t x_1`` (noise ``x_0``, data ``x_1``, both (B, ...); t (B,))."""
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    tt = _per_sample(t, x1)
    return (1 - tt) * x0 + tt * x1


def target_velocity(x0: Tensor, x1: Tensor) -> Tensor:
    """The regression target of the linear path: ``u = x_1 - x_0`` (constant along the path)."""
    return x1 - x0


def cfm_loss(v_pred: Tensor, x0: Tensor, x1: Tensor) -> Tensor:
    """Conditional flow-matching loss ``mean ||v_pred - (x_1 - x_0)||^2``: the mean over every
    coordinate and every sample (multiply by the number of coordinates for a per-sample sum)."""
    return (v_pred.float() - target_velocity(x0, x1).float()).pow(2).mean()


# ---------------------------------------------------------------------------------------------
# Velocity, noise and data predictions on the same x_t, and the map onto Chapter 6's process
# ---------------------------------------------------------------------------------------------
def velocity_to_x1(x_t: Tensor, v: Tensor, t) -> Tensor:
    """The data end implied by a velocity: ``x_1 = x_t + (1 - t) v``."""
    return x_t + (1 - _per_sample(t, x_t)) * v


def velocity_to_eps(x_t: Tensor, v: Tensor, t) -> Tensor:
    """The noise end implied by a velocity: ``x_0 = eps = x_t - t v``."""
    return x_t - _per_sample(t, x_t) * v


def eps_to_velocity(x_t: Tensor, eps: Tensor, t) -> Tensor:
    """A noise prediction as a velocity: ``v = (x_t - eps) / t`` (undefined at t = 0, where x_t is the noise)."""
    tt = _per_sample(t, x_t)
    if bool((tt <= 0).any()):
        raise ValueError("eps_to_velocity needs t > 0: at t = 0 the image is pure noise and carries no data")
    return (x_t - eps) / tt


def fm_to_ddpm(t) -> tuple[Tensor, Tensor]:
    """The flow-matching time ``t`` in Chapter 6's terms: ``(alpha_bar, scale)`` such that
    ``x_t / scale = sqrt(alpha_bar) x_1 + sqrt(1 - alpha_bar) eps`` is a Chapter 6 noisy image.
    ``scale = sqrt(t^2 + (1 - t)^2)`` and ``alpha_bar = t^2 / scale^2`` (same signal-to-noise ratio
    ``t^2 / (1 - t)^2``)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    scale = (t ** 2 + (1 - t) ** 2).sqrt()
    return (t / scale) ** 2, scale
