"""Checks for the Chapter 7 exercises (evaluating generative models)."""
from __future__ import annotations

import math

import torch

from . import CheckFailed, expect, expect_close, passed, run, seeded

__all__ = ["frechet_distance", "bits_per_dim", "precision_recall", "inception_score"]


def _spd(d: int, g: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T + 0.5 * torch.eye(d, dtype=torch.float64)


def _sqrtm_psd(s: torch.Tensor) -> torch.Tensor:
    evals, evecs = torch.linalg.eigh(s)
    return evecs @ torch.diag(evals.clamp_min(0).sqrt()) @ evecs.T


def frechet_distance(fn) -> bool:
    """``fn(mu1 (d,), sigma1 (d, d), mu2, sigma2) -> d^2`` (a number or 0-d tensor)."""
    # 1. diagonal covariances: a closed form without matrix square roots
    mu1 = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    mu2 = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    v1, v2 = torch.tensor([1.0, 4.0, 0.25], dtype=torch.float64), torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64)
    expected = float(((mu1 - mu2) ** 2).sum() + ((v1.sqrt() - v2.sqrt()) ** 2).sum())  # = 7
    got = run(fn, mu1.clone(), torch.diag(v1), mu2.clone(), torch.diag(v2), name="frechet_distance")
    mean_term, trace_term = float(((mu1 - mu2) ** 2).sum()), expected - float(((mu1 - mu2) ** 2).sum())
    expect_close(got, expected, what="d^2 for diagonal covariances", hints={
        "the cross term is -2 tr((sigma1 sigma2)^{1/2}); the factor 2 is missing":
            mean_term + float(v1.sum() + v2.sum() - (v1 * v2).sqrt().sum()),
        "the mean term is the *squared* distance |mu1 - mu2|^2": float((mu1 - mu2).norm()) + trace_term,
        "FID is the squared distance d^2; do not take a square root at the end": math.sqrt(expected),
        "the covariance term is missing": mean_term,
    })
    # 2. general covariances, where sigma1 sigma2 is not symmetric and sqrt must be a matrix square root
    g = seeded(0)
    s1, s2 = _spd(4, g), _spd(4, g)
    m1, m2 = torch.randn(4, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)
    root = _sqrtm_psd(s1)
    expected = float(((m1 - m2) ** 2).sum() + s1.trace() + s2.trace() - 2 * _sqrtm_psd(root @ s2 @ root).trace())
    got = run(fn, m1.clone(), s1.clone(), m2.clone(), s2.clone(), name="frechet_distance")
    got_t = torch.as_tensor(got, dtype=torch.float64) if got is not None else None
    if got_t is not None and not torch.isfinite(got_t).all():
        raise CheckFailed("the result is NaN: torch.sqrt of a matrix is elementwise, and sigma1 @ sigma2 has "
                          "negative entries. Use a matrix square root (e.g. the eigenvalues of sigma1 @ sigma2, "
                          "whose square roots sum to tr((sigma1 sigma2)^{1/2}))")
    elementwise = float(((m1 - m2) ** 2).sum() + s1.trace() + s2.trace() - 2 * (s1 @ s2).abs().sqrt().trace())
    base = float(((m1 - m2) ** 2).sum() + s1.trace() + s2.trace())
    prod = s1 @ s2
    sym_lower = torch.tril(prod) + torch.tril(prod, -1).T                     # what eigh reads of a non-symmetric matrix
    expect_close(got, expected, what="d^2 for full covariances", rtol=1e-6, hints={
        "torch.sqrt(sigma1 @ sigma2) is an elementwise square root; FID needs the matrix square root": elementwise,
        "tr((sigma1 sigma2)^{1/2}) is not tr(sigma1^{1/2}) tr(sigma2^{1/2}) nor sqrt(tr(sigma1 sigma2))":
            base - 2 * float(prod.trace().sqrt()),
        "(sigma1 sigma2)^{1/2} is not sigma1^{1/2} sigma2^{1/2} (the two matrices do not commute)":
            base - 2 * float((_sqrtm_psd(s1) @ _sqrtm_psd(s2)).trace()),
        "torch.linalg.eigh assumes a symmetric matrix and reads only one triangle; sigma1 @ sigma2 is not "
        "symmetric: use torch.linalg.eigvals (or the symmetric sigma1^{1/2} sigma2 sigma1^{1/2})":
            base - 2 * float(torch.linalg.eigvalsh(sym_lower).clamp_min(0).sqrt().sum()),
    })
    # 3. singular covariances, as FID meets them with fewer samples than feature dimensions (n = 100 in 128-d):
    #    eigenvalues of sigma1 sigma2 that are 0 in exact arithmetic come out as +-1e-15
    #    (three pairs, so that some of those rounding errors are negative whatever the LAPACK build)
    g3 = seeded(4)
    for _ in range(3):
        a3 = torch.randn(6, 2, generator=g3, dtype=torch.float64)
        b3 = torch.randn(6, 3, generator=g3, dtype=torch.float64)
        s1, s2 = a3 @ a3.T, b3 @ b3.T                                          # ranks 2 and 3
        m1, m2 = torch.randn(6, generator=g3, dtype=torch.float64), torch.randn(6, generator=g3, dtype=torch.float64)
        root = _sqrtm_psd(s1)
        expected = float(((m1 - m2) ** 2).sum() + s1.trace() + s2.trace() - 2 * _sqrtm_psd(root @ s2 @ root).trace())
        got = run(fn, m1.clone(), s1.clone(), m2.clone(), s2.clone(), name="frechet_distance")
        got_t = torch.as_tensor(got, dtype=torch.float64) if got is not None else None
        if got_t is not None and not torch.isfinite(got_t).all():
            raise CheckFailed("the result is NaN for singular covariances (ranks 2 and 3 in 6-d, as with fewer samples "
                              "than features): eigenvalues of sigma1 @ sigma2 that should be 0 come out slightly "
                              "negative (about -1e-15), and the square root of a negative real number is NaN. Take the "
                              "square root of the complex eigenvalues and then the real part, or clamp them at 0 first")
        expect_close(got, expected, what="d^2 for singular covariances", rtol=1e-6, atol=1e-6)
    return passed("d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}): the FID formula on any two Gaussians.")


def bits_per_dim(fn) -> bool:
    """``fn(nats_per_image (N,), dims, levels) -> bits per dimension (N,)`` for a density over dequantised pixels."""
    nats = torch.tensor([-272.9, 10.0, 850.0], dtype=torch.float64)  # -log p(x); a density can make it negative
    dims, levels = 784, 256
    expected = (nats + dims * math.log(levels)) / (dims * math.log(2))
    got = run(fn, nats.clone(), dims, levels, name="bits_per_dim")
    expect_close(got, expected, what="bits per dimension", hints={
        "the dequantisation term dims * log(levels) is missing: a density over [0, 1] is not a probability of "
        "8-bit pixels": nats / (dims * math.log(2)),
        "these are nats per dimension; divide by log(2) to get bits": (nats + dims * math.log(levels)) / dims,
        "log(levels) must be in nats, like the NLL, before the total is converted to bits":
            (nats + dims * math.log2(levels)) / (dims * math.log(2)),
        "bits per *dimension*: divide by the number of pixels too": (nats + dims * math.log(levels)) / math.log(2),
        "nats is already the *negative* log-likelihood: add dims * log(levels) to it, do not subtract it from "
        "its negation": (-nats + dims * math.log(levels)) / (dims * math.log(2)),
        "the dequantisation term is dims * log(levels), not log(levels) alone: every pixel was divided by levels":
            (nats + math.log(levels)) / (dims * math.log(2)),
    })
    return passed(f"-log p = {nats[0]:.1f} nats per image is {float(expected[0]):.3f} bits per pixel of 8-bit data.")


def _pr_reference(real: torch.Tensor, fake: torch.Tensor, k: int, self_index: int = 1) -> tuple[float, float]:
    d_rr, d_ff, d_fr = torch.cdist(real, real), torch.cdist(fake, fake), torch.cdist(fake, real)
    r_real = d_rr.sort(1).values[:, k - 1 + self_index]
    r_fake = d_ff.sort(1).values[:, k - 1 + self_index]
    precision = (d_fr < r_real[None, :]).any(1).double().mean()               # open balls, as in the PRDC
    recall = (d_fr < r_fake[:, None]).any(0).double().mean()                  # reference code
    return float(precision), float(recall)


def precision_recall(fn) -> bool:
    """``fn(real (N, d), fake (M, d), k) -> (precision, recall)`` with k-nearest-neighbour balls."""
    g = seeded(2)
    real = torch.randn(80, 3, generator=g, dtype=torch.float64)
    fake = torch.cat([0.6 * torch.randn(50, 3, generator=g, dtype=torch.float64),
                      3 + torch.randn(30, 3, generator=g, dtype=torch.float64)])  # narrow, plus off-manifold fakes
    k = 3
    p, r = _pr_reference(real, fake, k)
    got = run(fn, real.clone(), fake.clone(), k, name="precision_recall")
    try:
        pair = [float(v) for v in got]
    except TypeError:
        raise CheckFailed("return two numbers: (precision, recall)") from None
    expect(len(pair) == 2, f"return two numbers, (precision, recall); got {len(pair)}")
    expect_close(torch.tensor(pair), torch.tensor([p, r]), what="(precision, recall)", hints={
        "precision and recall are swapped: precision asks whether *fakes* land in the real manifold":
            torch.tensor([r, p]),
        "the nearest neighbour of a point in its own set is itself (distance 0): skip it when taking the k-th":
            torch.tensor(_pr_reference(real, fake, k, self_index=0)),
    })
    return passed(f"precision {p:.2f} (30 of 80 fakes are off the real manifold), recall {r:.2f}.")


def inception_score(fn) -> bool:
    """``fn(probs (N, C)) -> exp(mean_x KL(p(y|x) || p(y)))`` with ``p(y)`` the mean of the rows."""
    g = seeded(3)
    probs = torch.softmax(2 * torch.randn(200, 10, generator=g, dtype=torch.float64), 1)
    py = probs.mean(0, keepdim=True)
    kl = (probs * (probs.log() - py.log())).sum(1)
    expected = float(kl.mean().exp())
    got = run(fn, probs.clone(), name="inception_score")
    expect_close(got, expected, what="the Inception Score", rtol=1e-8, hints={
        "the KL is the wrong way round: KL(p(y|x) || p(y)) weights by p(y|x)":
            float((py * (py.log() - probs.log())).sum(1).mean().exp()),
        "IS is the exponential of the mean KL": float(kl.mean()),
        "average the KLs first, then exponentiate (not the mean of exp(KL))": float(kl.exp().mean()),
    })
    onehot = torch.eye(10, dtype=torch.float64).repeat(5, 1) * 0.999 + 0.0001
    top = float(torch.as_tensor(run(fn, onehot, name="inception_score")))
    expect(abs(top - 10) < 0.1, f"confident predictions spread over 10 classes should score about 10, got {top:.3g}")
    return passed(f"IS = {expected:.2f} here; confident and evenly spread predictions approach the maximum, 10.")
