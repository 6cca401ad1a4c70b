"""Checks for the Chapter 1 exercises (autoencoders)."""
from __future__ import annotations

import math

import torch

from . import CheckFailed, expect_close, expect_tensor, passed, run, seeded

__all__ = ["reconstruction_bce", "pca_reconstruct", "principal_angles"]


def reconstruction_bce(fn) -> bool:
    """``fn(logits (B, 1, 28, 28), x (B, 1, 28, 28)) -> (B,)``: binary cross-entropy per image, sum over pixels."""
    g = seeded(0)
    logits = 2 * torch.randn(4, 1, 28, 28, generator=g, dtype=torch.float64)
    x = torch.rand(4, 1, 28, 28, generator=g, dtype=torch.float64)
    p = torch.sigmoid(logits)
    per_pixel = -(x * p.log() + (1 - x) * (1 - p).log())
    expected = per_pixel.sum((1, 2, 3))
    got = run(fn, logits.clone(), x.clone(), name="reconstruction_bce")
    t = expect_tensor(got, what="the loss")
    if t.dim() == 0:
        raise CheckFailed("the loss is a single number: return one value per image (shape (B,)), "
                          "summing over pixels but not over the batch")
    pq = torch.sigmoid(p)
    expect_close(t, expected, what="the BCE per image", hints={
        "you averaged over pixels; the loss of an image is a sum over its 784 pixels (nats per image)":
            per_pixel.mean((1, 2, 3)),
        "the sign is flipped: the cross-entropy -[x log p + (1 - x) log(1 - p)] is positive": -expected,
        "you applied the sigmoid twice: the inputs are already logits, apply it once (or use "
        "binary_cross_entropy_with_logits)": -(x * pq.log() + (1 - x) * (1 - pq).log()).sum((1, 2, 3)),
        "the arguments are swapped: x is the target and sigmoid(logits) the prediction":
            -(p * x.log() + (1 - p) * (1 - x).log()).sum((1, 2, 3)),
    })
    floor = -(x * x.log() + (1 - x) * (1 - x).log()).sum((1, 2, 3)).mean()
    return passed(f"note the floor: even a perfect reconstruction of these grey images scores {floor:.1f} nats "
                  "(the entropy of the pixel values), because BCE assumes binary pixels.")


def pca_reconstruct(fn) -> bool:
    """``fn(x (N, D), k) -> (N, D)``: project onto the top-k principal components and map back."""
    g = seeded(1)
    basis = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64)).Q
    scales = torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5, 0.3, 0.2, 0.1], dtype=torch.float64)
    x = (torch.randn(60, 8, generator=g, dtype=torch.float64) * scales) @ basis.T + 4.0  # a non-zero mean
    k = 3
    mean = x.mean(0)
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
    v = vh[:k].T                                     # (D, k) top components
    expected = (x - mean) @ v @ v.T + mean
    _, _, vh_raw = torch.linalg.svd(x, full_matrices=False)
    vr = vh_raw[:k].T
    vb = vh[-k:].T
    got = run(fn, x.clone(), k, name="pca_reconstruct")
    expect_close(got, expected, what="the reconstruction", rtol=1e-5, atol=1e-6, hints={
        "centre the data first: principal components are directions of the *centred* data, x - mean": x @ vr @ vr.T,
        "add the mean back after projecting: x_hat = mean + (x - mean) V V^T": (x - mean) @ v @ v.T,
        "these are the *last* k components; singular values come sorted largest first": (x - mean) @ vb @ vb.T + mean,
    })
    err = ((x - expected) ** 2).sum(1).mean()
    return passed(f"the mean squared error per point ({err:.3f}) is the variance left in the discarded "
                  "directions; no rank-k linear map does better.")


def principal_angles(fn) -> bool:
    """``fn(a (D, k), b (D, k)) -> (k,)``: principal angles in radians, ascending."""
    e = torch.eye(5, dtype=torch.float64)
    t = torch.tensor([0.2, 0.9], dtype=torch.float64)
    a = torch.stack([e[0] + 2 * e[1], 3 * e[1]], 1)  # spans e0, e1 but is not orthonormal
    b = torch.stack([t[0].cos() * e[0] + t[0].sin() * e[2], t[1].cos() * e[1] + t[1].sin() * e[3]], 1)
    got = run(fn, a.clone(), b.clone(), name="principal_angles")
    cos_raw = torch.linalg.svdvals(a.T @ b)
    expect_close(got, t, what="the vector of angles", atol=1e-6, hints={
        "the columns are not orthonormal: take Q from a QR decomposition (torch.linalg.qr) of each matrix first":
            torch.arccos(cos_raw.clamp(-1, 1)).sort().values,
        "these are degrees; return radians": t * 180 / math.pi,
        "these are the cosines of the angles (the singular values); take their arccos": t.cos().flip(0),
        "sort the angles in ascending order (the smallest first)": t.flip(0),
    })
    return passed("principal angles compare subspaces, not bases: any rotation of a basis gives the same angles.")
