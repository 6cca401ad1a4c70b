"""Couplings of noise and data in a minibatch (Chapter 8): independent, exact minibatch optimal transport
(:func:`ot_pairing`, SciPy's assignment solver) and OT within each class (:func:`pair`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


COUPLINGS = ("independent", "ot", "class-ot")


def ot_pairing(x0: Tensor, x1: Tensor) -> Tensor:
    """Minibatch optimal transport (Tong et al. 2023): the permutation ``p`` of the noise rows that
    minimises ``sum_i ||x0[p[i]] - x1[i]||^2``, solved exactly by SciPy's
    ``linear_sum_assignment``.  Returns ``p`` (B,) on ``x0.device``; ``x0[p]`` is the paired noise.
    The assignment runs on the CPU (one host round trip per call)."""
    from scipy.optimize import linear_sum_assignment

    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    cost = torch.cdist(x1.reshape(len(x1), -1).float(), x0.reshape(len(x0), -1).float()).pow(2)  # (B data, B noise)
    rows, cols = linear_sum_assignment(cost.detach().cpu().double().numpy())
    perm = np.empty(len(rows), dtype=np.int64)
    perm[rows] = cols
    return torch.from_numpy(perm).to(x0.device)


def pair(x0: Tensor, x1: Tensor, coupling: str, labels: Tensor | None = None) -> Tensor:
    """The noise paired with each data row: ``x0`` itself (``"independent"``), ``x0`` reordered by
    :func:`ot_pairing` over the whole batch (``"ot"``), or reordered within each class (``"class-ot"``,
    ``labels`` (B,) required): the noise rows of the images of class c (i.i.d. draws, so still
    N(0, I)) are matched to those images only.  Class-blind OT would hand each class the noise
    that happens to lie closest to its images, so the noise a class-conditional model learns to
    start from would no longer be N(0, I)."""
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")
    if coupling == "independent":
        return x0
    if coupling == "ot":
        return x0[ot_pairing(x0, x1)]
    if labels is None or labels.shape != x1.shape[:1]:
        raise ValueError(f"coupling 'class-ot' needs one label per image, shape ({x1.shape[0]},)")
    out = x0.clone()
    for c in torch.unique(labels):
        idx = (labels == c).nonzero().squeeze(1)
        out[idx] = x0[idx][ot_pairing(x0[idx], x1[idx])]
    return out
