"""Noise schedules (Chapter 6), pure functions of the number of steps ``T`` (float64, shape (T,)), with
:func:`alphas_cumprod`, :func:`snr` and the closed-form forward process :func:`q_sample` (eq. 4).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from .. import utils


def linear_beta_schedule(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """``beta_t`` rising linearly from ``beta_start`` to ``beta_end`` (the DDPM paper's choice for T = 1000)."""
    _check_T(timesteps)
    return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)


def quadratic_beta_schedule(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """``sqrt(beta_t)`` linear between ``sqrt(beta_start)`` and ``sqrt(beta_end)``: same end points
    as the linear schedule, but small betas for longer, so noise is added later."""
    _check_T(timesteps)
    return torch.linspace(beta_start ** 0.5, beta_end ** 0.5, timesteps, dtype=torch.float64) ** 2


def cosine_beta_schedule(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """IDDPM eq. 17: ``alpha_bar(t) = f(t) / f(0)`` with ``f(t) = cos^2(pi/2 (t/T + s) / (1 + s))``,
    and ``beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}`` clipped at ``max_beta`` (the last step would be 1)."""
    _check_T(timesteps)
    u = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps                 # (T+1,) from 0 to 1
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    return (1 - abar[1:] / abar[:-1]).clamp(max=max_beta)


SCHEDULES: dict[str, Callable[..., Tensor]] = {
    "linear": linear_beta_schedule, "quadratic": quadratic_beta_schedule, "cosine": cosine_beta_schedule,
}


def make_betas(schedule: str, timesteps: int) -> Tensor:
    """``betas`` of a named schedule (``"linear"``, ``"quadratic"`` or ``"cosine"``), float64 (T,)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {sorted(SCHEDULES)}")
    return SCHEDULES[schedule](timesteps)


def _check_T(timesteps: int) -> None:
    if not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive int, got {timesteps!r}")


def alphas_cumprod(betas: Tensor) -> Tensor:
    """``alpha_bar_t = prod_{s <= t} (1 - beta_s)`` (the product before eq. 4), same shape as ``betas``."""
    if betas.min() <= 0 or betas.max() >= 1:
        raise ValueError("every beta_t must be in (0, 1)")
    return torch.cumprod(1 - betas, dim=0)


def snr(alpha_bar: Tensor) -> Tensor:
    """Signal-to-noise ratio of ``q(x_t | x_0)``: ``alpha_bar_t / (1 - alpha_bar_t)`` (signal power over noise power)."""
    return alpha_bar / (1 - alpha_bar)


def _per_image(values: Tensor, t: Tensor, ndim: int) -> Tensor:
    """``values[t]`` reshaped to (B, 1, 1, ...) so it broadcasts against (B, C, H, W)."""
    out = values.gather(0, t.reshape(-1).to(values.device).long())
    return out.reshape(-1, *([1] * (ndim - 1)))


def q_sample(x0: Tensor, t: Tensor, noise: Tensor, alpha_bar: Tensor) -> Tensor:
    """Eq. 4 by reparameterisation: ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``.

    ``x0`` and ``noise`` (B, ...), ``t`` (B,) integer steps in 0..T-1, ``alpha_bar`` (T,).
    """
    from .. import validate

    validate.tensor(alpha_bar, "q_sample: alpha_bar", ndim=1, dtype="float", nonempty=True,
                    fix="pass the cumulative products of the schedule, shape (T,)")
    validate.tensor(x0, "q_sample: x0", dtype="float", nonempty=True, fix="pass a batch of images (B, ...)")
    validate.tensor(noise, "q_sample: noise", shape=tuple(x0.shape), dtype="float",
                    fix="draw noise of the shape of x0, e.g. torch.randn_like(x0)")
    T = alpha_bar.shape[0]
    validate.tensor(t, "q_sample: t", shape=(x0.shape[0],), values=(0, T - 1), integral=True,
                    fix=f"pass one integer step per image, in 0..{T - 1} (T = {T}), e.g. torch.randint(0, {T}, (B,))")
    a = _per_image(alpha_bar, t, x0.dim()).to(x0.dtype)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def _randn(shape, generator: torch.Generator | None, device, dtype=torch.float32) -> Tensor:
    """Standard normal noise drawn with ``generator`` on its own device, then moved to ``device``
    (the course's one rule: :func:`gencourse.utils.randn`)."""
    return utils.randn(shape, generator=generator, device=device, dtype=dtype)
