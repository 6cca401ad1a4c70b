"""Checks for the Chapter 0 exercises (probability and generative modelling)."""
from __future__ import annotations

import math

import torch

from . import CheckFailed, expect_close, expect_tensor, passed, run, seeded

__all__ = ["posterior", "bigram_from_counts", "gaussian_log_density", "bernoulli_log_likelihood"]


def _finite(got, message: str):
    """Fail with ``message`` (the check's own explanation) when a tensor-like result has NaN or inf."""
    try:
        t = torch.as_tensor(got).detach().to(torch.float64)
    except Exception:
        return
    if not torch.isfinite(t).all():
        raise CheckFailed(message)


def posterior(fn) -> bool:
    """``fn(prior (K,), likelihood (K, M)) -> p(y | x)`` of shape (M, K)."""
    g = seeded(0)
    prior = torch.rand(3, generator=g, dtype=torch.float64) + 0.2
    prior /= prior.sum()
    lik = torch.rand(3, 4, generator=g, dtype=torch.float64) + 0.1
    lik /= lik.sum(1, keepdim=True)  # each row p(x | y) sums to 1
    joint = prior[:, None] * lik               # p(y, x), (K, M)
    expected = (joint / joint.sum(0, keepdim=True)).T
    got = run(fn, prior.clone(), lik.clone(), name="posterior")
    expect_close(got, expected, what="p(y | x)", hints={
        "this is the joint p(x, y); divide by the evidence p(x) = sum_y p(x, y)": joint.T,
        "you normalised over x instead of y: each row p(. | x) should sum to 1 over the classes":
            (joint / joint.sum(1, keepdim=True)).T,
        "the prior p(y) is missing: multiply the likelihood by it before normalising":
            (lik / lik.sum(0, keepdim=True)).T,
        "the evidence p(x) = sum_y p(x | y) p(y) needs the prior too: you divided by sum_y p(x | y)":
            (joint / lik.sum(0, keepdim=True)).T,
        "you divided by the sum of the whole table (which is 1); the evidence p(x) is a sum over y for each x":
            (joint / joint.sum()).T,
    })
    return passed("Bayes' rule: posterior = likelihood x prior / evidence, each row sums to 1.")


def bigram_from_counts(fn) -> bool:
    """``fn(counts (S, S), k) -> P`` with ``P[a, b] = (counts[a, b] + k) / sum_b' (counts[a, b'] + k)``."""
    g = seeded(1)
    counts = torch.randint(0, 6, (5, 5), generator=g).double()
    counts[2] = 0  # a symbol never seen as "previous": only smoothing can save this row
    k = 0.5
    expected = (counts + k) / (counts + k).sum(1, keepdim=True)
    got = run(fn, counts.clone(), k, name="bigram_from_counts")
    _finite(got, "the result has NaN or inf: row 2 has no counts at all, so without smoothing it is 0 / 0. "
            "Add k to every count (in the numerator and in the row sum), then normalise each row")
    expect_close(got, expected, what="the conditional pmf", hints={
        "you normalised columns; row a must be the distribution of the next symbol given a":
            (counts + k) / (counts + k).sum(0, keepdim=True),
        "you normalised the whole matrix (a joint pmf), not each row (conditional pmfs)":
            (counts + k) / (counts + k).sum(),
        "the denominator must add k for every one of the S possible next symbols (S k in all), not k once: "
        "normalise the smoothed counts":
            (counts + k) / (counts.sum(1, keepdim=True) + k),
        "you used add-one smoothing; use the pseudo-count k that is passed in (here k = 0.5)":
            (counts + 1) / (counts + 1).sum(1, keepdim=True),
    })
    return passed("each row is a conditional pmf p(next | previous) and unseen pairs keep probability > 0.")


def gaussian_log_density(fn) -> bool:
    """``fn(x, mu, sigma) -> log N(x; mu, sigma^2)`` elementwise, ``sigma`` the standard deviation.

    One point lies 48 standard deviations from the mean, where the density itself underflows to 0
    in float64: the log-density must be computed directly."""
    x = torch.tensor([-1.0, 0.0, 0.3, 2.5, 5.0], dtype=torch.float64)
    mu, sigma = torch.tensor(0.2, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64)
    expected = torch.distributions.Normal(mu, sigma).log_prob(x)
    var = sigma**2
    got = run(fn, x.clone(), mu, sigma, name="gaussian_log_density")
    _finite(got, "the result has NaN or inf: at x = 5.0, 48 standard deviations from mu, the density "
            "exp(-(x - mu)^2 / (2 sigma^2)) underflows to 0 and its log is -inf. Compute the log-density "
            "directly: -(x - mu)^2 / (2 sigma^2) - log(sigma) - log(2 pi) / 2")
    expect_close(got, expected, what="log N(x; mu, sigma^2)", hints={
        "sigma is the standard deviation, but your formula used it as the variance":
            torch.distributions.Normal(mu, sigma.sqrt()).log_prob(x),
        "this is the density itself; return its logarithm": expected.exp(),
        "the normalising constant -log(sigma) - log(2 pi)/2 is missing": -0.5 * (x - mu) ** 2 / var,
        "the normaliser is -log(sigma) (the log of the standard deviation), not -log(sigma^2)":
            expected - sigma.log(),
        "the exponent is -(x - mu)^2 / (2 sigma^2): the factor 1/2 is missing":
            expected - 0.5 * (x - mu) ** 2 / var,
        "the normaliser is -log(2 pi)/2 - log(sigma), i.e. log(1 / (sigma sqrt(2 pi))); you took "
        "-log(2 pi sigma)/2": -0.5 * (x - mu) ** 2 / var - 0.5 * torch.log(2 * math.pi * sigma),
        "the sign is flipped: the log-density is largest at x = mu": -expected,
    })
    peak = math.exp(float(torch.distributions.Normal(mu, sigma).log_prob(mu)))
    return passed(f"at its peak this density is {peak:.2f} > 1: a density is not a probability; and far from mu "
                  f"the log-density ({float(expected[-1]):.0f} at x = 5) stays finite where the density is 0.")


def bernoulli_log_likelihood(fn) -> bool:
    """``fn(x (N, D) binary, p (D,)) -> log p(x)`` per image, shape (N,), in nats (sum over pixels)."""
    g = seeded(2)
    p = torch.rand(12, generator=g, dtype=torch.float64) * 0.9 + 0.05
    x = torch.bernoulli(torch.full((5, 12), 0.4, dtype=torch.float64), generator=g)
    per_pixel = x * p.log() + (1 - x) * (1 - p).log()
    expected = per_pixel.sum(1)
    got = run(fn, x.clone(), p.clone(), name="bernoulli_log_likelihood")
    expect_close(got, expected, what="log p(x) per image", hints={
        "you averaged over pixels; a log-likelihood per image sums over pixels (nats per image)": per_pixel.mean(1),
        "these are bits (log base 2); use the natural log for nats": expected / math.log(2),
        "you returned the probability, not its log": expected.exp(),
        "you summed over images too: return one number per image": expected.sum().expand(5),
        "x and 1 - x are swapped: a pixel that is on (x = 1) contributes log p, one that is off log(1 - p)":
            ((1 - x) * p.log() + x * (1 - p).log()).sum(1),
        "the pixels that are off are missing: add (1 - x) log(1 - p)": (x * p.log()).sum(1),
        "the sign is flipped: a log-probability is <= 0 (this is the negative log-likelihood)": -expected,
    })
    return passed("log-likelihoods of independent pixels add up: nats per image = sum over pixels.")
