"""Mode coverage on the toy ring of Gaussians (Chapters 4 and 7): :func:`count_modes`."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ModeCount:
    covered: int
    modes: int
    high_quality: float
    counts: list
    protocol: str

    def __str__(self) -> str:
        return (f"modes covered: {self.covered} / {self.modes}, high-quality samples: {self.high_quality:.1%}\n"
                f"  protocol: {self.protocol}")

    __repr__ = __str__


def count_modes(x: Tensor, centres: Tensor, std: float, *, threshold: float = 3.0,
                min_fraction: float = 0.1) -> ModeCount:
    """Mode coverage of 2-D samples ``x`` (N, 2) from a mixture with ``centres`` (K, 2) (e.g.
    :func:`gencourse.data.ring_modes`) and component standard deviation ``std``.

    A sample is **high quality** if it lies within ``threshold * std`` of its
    nearest centre.  A mode is **covered** if it receives at least
    ``max(1, min_fraction * N / K)`` high-quality samples, i.e. at least 10% (by
    default) of the share a perfect sampler would give it.
    """
    x, centres = torch.as_tensor(x).double(), torch.as_tensor(centres).double()
    if x.dim() != 2 or x.shape[1] != centres.shape[1]:
        raise ValueError(f"expected samples (N, {centres.shape[1]}), got {tuple(x.shape)}")
    d = torch.cdist(x, centres)                               # (N, K)
    dist, nearest = d.min(1)
    good = dist <= threshold * std
    counts = torch.bincount(nearest[good], minlength=len(centres))
    need = max(1.0, min_fraction * len(x) / len(centres))
    covered = int((counts >= need).sum())
    return ModeCount(covered, len(centres), float(good.float().mean()), counts.tolist(),
                     f"{len(x)} samples; high quality = within {threshold:g} std ({threshold * std:.3g}) of a centre; "
                     f"a mode is covered with >= {need:.3g} high-quality samples ({min_fraction:.0%} of N/K)")
