"""Toy 2-D data: the ring of Gaussians (and its centres) and the two moons."""
from __future__ import annotations

import math

import torch
from torch import Tensor


def ring_modes(k: int = 8, radius: float = 2.0) -> Tensor:
    """Centres of the ``k`` Gaussians of :func:`ring_of_gaussians`, shape (k, 2)."""
    angle = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    return (radius * torch.stack([angle.cos(), angle.sin()], 1)).float()


def ring_of_gaussians(n: int, k: int = 8, radius: float = 2.0, std: float = 0.05, *,
                      generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``n`` points from an equal mixture of ``k`` isotropic Gaussians on a circle.

    Returns ``(x, mode)``: float32 (n, 2) and the int64 index (n,) of each point's Gaussian.
    """
    mode = torch.randint(k, (n,), generator=generator)
    x = ring_modes(k, radius)[mode] + std * torch.randn(n, 2, generator=generator)
    return x, mode


def two_moons(n: int, noise: float = 0.1, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Two interleaved half circles (the classic "moons"), with Gaussian noise of std ``noise``.

    Returns ``(x, y)``: float32 (n, 2) and int64 labels (n,) in {0, 1}.
    """
    y = torch.randint(2, (n,), generator=generator)
    t = math.pi * torch.rand(n, generator=generator)
    upper = torch.stack([t.cos(), t.sin()], 1)
    lower = torch.stack([1 - t.cos(), 0.5 - t.sin()], 1)
    x = torch.where(y[:, None] == 0, upper, lower)
    return x + noise * torch.randn(n, 2, generator=generator), y
