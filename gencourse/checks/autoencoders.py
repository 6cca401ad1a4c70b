"""Checks for the Chapter 1 exercises (autoencoders)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import CheckFailed, expect_close, expect_tensor, passed, run, seeded

__all__ = ["reconstruction_bce", "pca_reconstruct", "principal_angles"]


def reconstruction_bce(fn) -> bool:
    """``fn(logits (B, 1, 28, 28), x (B, 1, 28, 28)) -> (B,)``: binary cross-entropy per image, sum over pixels.

    The last image has confident logits (|logit| up to 150, as a trained decoder produces on background
    pixels), where sigmoid() rounds to exactly 0 or 1 in float64: log(sigmoid) then gives inf, and
    ``F.binary_cross_entropy`` on probabilities clamps each log at -100.  Only a loss computed from the
    logits (``F.binary_cross_entropy_with_logits``, or ``logsigmoid``) is right there."""
    g = seeded(0)
    logits = 2 * torch.randn(4, 1, 28, 28, generator=g, dtype=torch.float64)
    x = torch.rand(4, 1, 28, 28, generator=g, dtype=torch.float64)
    sign = torch.where(torch.rand(1, 28, 28, generator=g, dtype=torch.float64) < 0.5, -1.0, 1.0)
    logits[3] = sign * torch.linspace(5, 150, 784, dtype=torch.float64).view(1, 28, 28)
    x[3] = torch.where(torch.rand(1, 28, 28, generator=g, dtype=torch.float64) < 0.8, (sign > 0).double(),
                       (sign < 0).double())                    # mostly right, 20% confidently wrong pixels
    log_p, log_1mp = F.logsigmoid(logits), F.logsigmoid(-logits)  # log p and log(1 - p), exact for any logit
    per_pixel = -(x * log_p + (1 - x) * log_1mp)
    expected = per_pixel.sum((1, 2, 3))
    got = run(fn, logits.clone(), x.clone(), name="reconstruction_bce")
    t = _tensor_or_hint(got)
    if t.dim() == 0:
        raise CheckFailed("the loss is a single number: return one value per image (shape (B,)), "
                          "summing over pixels but not over the batch")
    if t.shape == expected.shape and not torch.isfinite(t).all():
        raise CheckFailed("the loss is inf or NaN for the image with confident logits (|logit| up to 150): "
                          "sigmoid(150) is exactly 1.0 in floating point, so log(1 - sigmoid) is log(0). Compute the "
                          "loss from the logits: F.binary_cross_entropy_with_logits(logits, x, reduction='none'), "
                          "or F.logsigmoid(logits) for log p and F.logsigmoid(-logits) for log(1 - p)")
    p = torch.sigmoid(logits)
    clamped = -(x * p.log().clamp_min(-100) + (1 - x) * (1 - p).log().clamp_min(-100)).sum((1, 2, 3))
    pq = torch.sigmoid(p)
    expect_close(t, expected, what="the BCE per image", hints={
        "you averaged over pixels; the loss of an image is a sum over its 784 pixels (nats per image)":
            per_pixel.mean((1, 2, 3)),
        "the sign is flipped: the cross-entropy -[x log p + (1 - x) log(1 - p)] is positive": -expected,
        "you applied the sigmoid twice: the inputs are already logits, apply it once (or use "
        "binary_cross_entropy_with_logits)": -(x * pq.log() + (1 - x) * (1 - pq).log()).sum((1, 2, 3)),
        "the arguments are swapped: x is the target and sigmoid(logits) the prediction":
            -(p * x.log() + (1 - p) * (1 - x).log()).sum((1, 2, 3)),
        "the image with confident logits is wrong: going through probabilities (sigmoid, then "
        "F.binary_cross_entropy, which clamps each log at -100) loses the confident wrong pixels. Use "
        "F.binary_cross_entropy_with_logits": clamped,
    })
    floor = -(x[:3] * x[:3].log() + (1 - x[:3]) * (1 - x[:3]).log()).sum((1, 2, 3)).mean()
    return passed(f"stable for any logit; and note the floor: even a perfect reconstruction of the grey images "
                  f"scores {floor:.1f} nats (the entropy of the pixel values), because BCE assumes binary pixels.")


def _tensor_or_hint(got):
    if got is None:
        raise CheckFailed("the loss is None: did you forget to `return` it?")
    try:
        return torch.as_tensor(got).detach().to(torch.float64)
    except Exception:
        raise CheckFailed(f"the loss should be a tensor (or array), got {type(got).__name__}") from None


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
        "the principal directions are the first k *rows* of Vh (vh[:k], transposed), not its first k columns":
            (x - mean) @ vh[:, :k] @ vh[:, :k].T + mean,
        "you kept every component, so the reconstruction is the input itself: keep only the top k": x,
    })
    err = ((x - expected) ** 2).sum(1).mean()
    return passed(f"the mean squared error per point ({err:.3f}) is the variance left in the discarded "
                  "directions; no rank-k linear map does better.")


def principal_angles(fn) -> bool:
    """``fn(a (D, k), b (D, k)) -> (k,)``: principal angles in radians, ascending.

    Neither basis is orthonormal (nor are its columns orthogonal), so an answer that orthonormalises only one
    of them, or neither, gets different numbers."""
    e = torch.eye(5, dtype=torch.float64)
    t = torch.tensor([0.2, 0.9], dtype=torch.float64)
    a = torch.stack([0.3 * e[0] + 0.6 * e[1], 0.5 * e[1]], 1)  # spans e0, e1; columns neither unit nor orthogonal
    b_orth = torch.stack([t[0].cos() * e[0] + t[0].sin() * e[2], t[1].cos() * e[1] + t[1].sin() * e[3]], 1)
    b = b_orth @ torch.tensor([[0.6, 0.2], [0.1, 0.7]], dtype=torch.float64)  # same span, skewed columns
    got = run(fn, a.clone(), b.clone(), name="principal_angles")
    qa, qb = torch.linalg.qr(a).Q, torch.linalg.qr(b).Q
    angles = lambda u, v: torch.arccos(torch.linalg.svdvals(u.T @ v).clamp(-1, 1)).sort().values  # noqa: E731
    expect_close(got, t, what="the vector of angles", atol=1e-6, hints={
        "the columns are not orthonormal: take Q from a QR decomposition (torch.linalg.qr) of each matrix first":
            angles(a, b),
        "only a was orthonormalised: b's columns are not orthonormal either, take the Q of its QR decomposition "
        "too": angles(qa, b),
        "only b was orthonormalised: a's columns are not orthonormal either, take the Q of its QR decomposition "
        "too": angles(a, qb),
        "these are degrees; return radians": t * 180 / math.pi,
        "these are the cosines of the angles (the singular values); take their arccos": t.cos(),
        "these are the cosines of the angles (the singular values), sorted; take their arccos": t.cos().flip(0),
        "sort the angles in ascending order (the smallest first)": t.flip(0),
    })
    return passed("principal angles compare subspaces, not bases: any invertible change of basis gives the same "
                  "angles. (arccos loses precision for tiny angles: cos(1e-8) rounds to 1.0 in float64, so angles "
                  "below about 1e-8 come out as 0; ae.principal_angles takes small angles from their sines.)")
