"""Checks for the Chapter 0 exercises (probability and generative modelling)."""
from __future__ import annotations

import math

import torch

from . import expect_close, passed, run, seeded

__all__ = ["posterior", "bigram_from_counts", "gaussian_log_density", "bernoulli_log_likelihood"]


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
        "the shape is transposed: return rows indexed by x, columns by y": expected.T,
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
    expect_close(got, expected, what="the conditional pmf", hints={
        "you normalised columns; row a must be the distribution of the next symbol given a":
            (counts + k) / (counts + k).sum(0, keepdim=True),
        "you normalised the whole matrix (a joint pmf), not each row (conditional pmfs)":
            (counts + k) / (counts + k).sum(),
    })
    return passed("each row is a conditional pmf p(next | previous) and unseen pairs keep probability > 0.")


def gaussian_log_density(fn) -> bool:
    """``fn(x, mu, sigma) -> log N(x; mu, sigma^2)`` elementwise, ``sigma`` the standard deviation."""
    x = torch.tensor([-1.0, 0.0, 0.3, 2.5], dtype=torch.float64)
    mu, sigma = torch.tensor(0.2, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64)
    expected = torch.distributions.Normal(mu, sigma).log_prob(x)
    var = sigma**2
    got = run(fn, x.clone(), mu, sigma, name="gaussian_log_density")
    expect_close(got, expected, what="log N(x; mu, sigma^2)", hints={
        "sigma is the standard deviation, but your formula used it as the variance":
            torch.distributions.Normal(mu, sigma.sqrt()).log_prob(x),
        "this is the density itself; return its logarithm": expected.exp(),
        "the normalising constant -log(sigma) - log(2 pi)/2 is missing": -0.5 * (x - mu) ** 2 / var,
    })
    peak = math.exp(float(torch.distributions.Normal(mu, sigma).log_prob(mu)))
    return passed(f"at its peak this density is {peak:.2f} > 1: a density is not a probability.")


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
    })
    return passed("log-likelihoods of independent pixels add up: nats per image = sum over pixels.")
