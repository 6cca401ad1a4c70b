"""Checks for the Chapter 2 exercises (variational autoencoders)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import CheckFailed, expect, expect_close, expect_tensor, passed, run, seeded

__all__ = ["kl_diag_gaussian", "reparameterize", "iwae_from_log_weights", "beta_vae_loss"]


def _per_item(got, what: str, n: int):
    t = expect_tensor(got, what=what)
    if t.dim() == 0 and n > 1:
        raise CheckFailed(f"{what} is a single number: return one value per image (shape ({n},)); "
                          "do not sum or average over the batch")
    return t


def kl_diag_gaussian(fn) -> bool:
    """``fn(mu (B, d), log_var (B, d)) -> (B,)``: KL(N(mu, sigma^2) || N(0, I)), ``log_var = log sigma^2``."""
    g = seeded(0)
    mu = torch.randn(5, 3, generator=g, dtype=torch.float64)
    log_var = torch.randn(5, 3, generator=g, dtype=torch.float64)
    var = log_var.exp()
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, var.sqrt()), torch.distributions.Normal(0.0, 1.0)).sum(-1)
    got = _per_item(run(fn, mu.clone(), log_var.clone(), name="kl_diag_gaussian"), "the KL", 5)
    s = lambda t: 0.5 * t.sum(-1)  # noqa: E731
    expect_close(got, expected, what="the KL", hints={
        "the sign is wrong: KL = 1/2 sum(sigma^2 + mu^2 - 1 - log sigma^2) is never negative "
        "(some slides print it with a minus in front)": -expected,
        "sigma/sigma^2 confusion: log_var is log sigma^2, so the variance is exp(log_var); you treated "
        "log_var as log sigma": s(torch.exp(2 * log_var) + mu**2 - 1 - 2 * log_var),
        "sigma/sigma^2 confusion: the first term is the variance sigma^2 = exp(log_var), not the standard "
        "deviation exp(log_var / 2)": s(torch.exp(0.5 * log_var) + mu**2 - 1 - log_var),
        "sigma/sigma^2 confusion: the last term is log sigma^2 = log_var itself, not log_var / 2":
            s(var + mu**2 - 1 - 0.5 * log_var),
        "sum over the latent dimensions, do not average": expected / 3,
        "the factor 1/2 is missing": 2 * expected,
        "the -1 is missing (it makes KL(N(0, 1) || N(0, 1)) zero)": expected + 1.5,
        "this is KL(N(0, I) || q), the other direction; the ELBO needs KL(q || N(0, I))":
            s((1 + mu**2) / var - 1 + log_var),
    })
    return passed("zero exactly when mu = 0 and sigma = 1, positive otherwise; in nats, summed over dimensions.")


def reparameterize(fn) -> bool:
    """``fn(mu, log_var, eps) -> z = mu + sigma * eps`` with ``sigma = exp(log_var / 2)``, differentiable in mu, log_var."""
    g = seeded(1)
    mu = torch.randn(4, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    log_var = torch.randn(4, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    eps = torch.randn(4, 3, generator=g, dtype=torch.float64)
    got = run(fn, mu, log_var, eps.clone(), name="reparameterize")
    again = run(fn, mu, log_var, eps.clone(), name="reparameterize")
    m, lv = mu.detach(), log_var.detach()
    sigma = (0.5 * lv).exp()
    value = lambda t: t.detach() if torch.is_tensor(t) else t  # noqa: E731
    first, second = expect_tensor(value(got), what="z"), expect_tensor(value(again), what="z")
    expect(first.shape != second.shape or torch.equal(first, second),
           "z changes between two calls with the same mu, log_var and eps: use the eps that is passed in "
           "(do not draw new noise with torch.randn_like or torch.normal)")
    expect_close(value(got), m + sigma * eps, what="z", hints={
        "you scaled eps by the variance sigma^2 = exp(log_var); the reparameterisation uses the standard "
        "deviation sigma = exp(log_var / 2) (some slides write sigma^2 here)": m + lv.exp() * eps,
        "log_var is not the standard deviation: sigma = exp(log_var / 2)": m + lv * eps,
        "sigma = exp(log_var / 2), not sqrt(log_var) or exp(log_var) ** 2": m + lv.exp() ** 2 * eps,
        "the mean mu is missing: z = mu + sigma * eps": sigma * eps,
        "mu and sigma are swapped": sigma + m * eps,
        "the noise is missing: z = mu + sigma * eps is a sample, not the mean plus the standard deviation":
            m + sigma,
    })
    no_grad = ("z does not depend on {} through autograd: compute it with torch operations on mu and log_var "
               "(no .detach(), .item(), .data, numpy or torch.normal), so gradients reach the encoder")
    expect(torch.is_tensor(got) and got.requires_grad, no_grad.format("mu and log_var"))
    gm, gv = torch.autograd.grad(got.sum(), [mu, log_var], allow_unused=True)
    expect(gm is not None, no_grad.format("mu"))
    expect(gv is not None, no_grad.format("log_var"))
    expect_close(gv, sigma * eps / 2, what="dz/dlog_var", hints={
        "dz/dlog_var is zero: sigma was cut off from the graph (.detach(), .data or a constant)":
            torch.zeros_like(sigma)})
    expect_close(gm, torch.ones_like(m), what="dz/dmu")
    return passed("gradients flow to mu (dz/dmu = 1) and to log_var (dz/dlog_var = sigma * eps / 2).")


def iwae_from_log_weights(fn) -> bool:
    """``fn(log_w (K, B)) -> (B,)``: ``log (1/K) sum_k exp(log_w[k])``, computed stably.

    Four images, K = 6: log-weights near -1000 (exp underflows to 0), near +800 (exp overflows: a Gaussian
    decoder's log-densities are positive), one spread over 1,500 nats (only subtracting the *maximum*
    keeps every exponent <= 0), and mild ones."""
    g = seeded(2)
    log_w = 3 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    log_w[:, 0] += -1000.0
    log_w[:, 1] += 800.0
    log_w[:, 2] = torch.tensor([-50.0, -300.0, -900.0, -1200.0, -1550.0, -1600.0], dtype=torch.float64)
    log_w[:, 3] += -5.0
    k = log_w.shape[0]
    expected = torch.logsumexp(log_w, 0) - math.log(k)
    got = run(fn, log_w.clone(), name="iwae_from_log_weights")
    if torch.is_tensor(got) and got.numel() == 4 and not torch.isfinite(got).all():
        bad = [i for i in range(4) if not torch.isfinite(got.reshape(-1)[i])]
        raise CheckFailed(
            f"the result is not finite for image(s) {bad}: exp() underflows to 0 below about -745 (image 0's "
            "log-weights are near -1000) and overflows to inf above about 709 (image 1's are near +800); image 2's "
            "spread over 1,500 nats, so subtracting their mean or minimum still overflows. Subtract the maximum "
            "before exponentiating, log_w.max(0) + log(mean(exp(log_w - max))), or use torch.logsumexp")
    t = _per_item(got, "the bound", 4)
    expect_close(t, expected, what="the bound", hints={
        "this is the average of the log-weights, i.e. the ELBO estimate (Jensen's inequality puts the log "
        "outside the average in the IWAE bound)": log_w.mean(0),
        "the -log K is missing: the bound is the log of the *mean* of the weights": expected + math.log(k),
        "this is the largest log-weight; the bound averages all K weights": log_w.max(0).values,
        "divide by K, the number of samples (the rows), not by B, the number of images":
            expected + math.log(k) - math.log(log_w.shape[1]),
    })
    return passed("log-mean-exp of the weights: >= their mean (the ELBO), and it tightens as K grows.")


def beta_vae_loss(fn) -> bool:
    """``fn(logits, x, mu, log_var, beta) -> scalar``: mean over the batch of [BCE summed over pixels + beta * KL]."""
    g = seeded(3)
    logits = torch.randn(4, 1, 28, 28, generator=g, dtype=torch.float64)
    x = torch.bernoulli(torch.full((4, 1, 28, 28), 0.3, dtype=torch.float64), generator=g)
    # image 3: a confident decoder (|logit| = 60), right on 95% of its pixels; sigmoid(60) is 1.0 in float64
    logits[3] = torch.where(torch.rand(1, 28, 28, generator=g, dtype=torch.float64) < 0.95, 60.0, -60.0) \
        * (2 * x[3] - 1)
    mu = torch.randn(4, 5, generator=g, dtype=torch.float64)
    log_var = torch.randn(4, 5, generator=g, dtype=torch.float64) * 0.5
    beta = 3.0
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))   # (B,)
    kl = 0.5 * (log_var.exp() + mu**2 - 1 - log_var).sum(-1)                              # (B,)
    expected = (rec + beta * kl).mean()
    got = run(fn, logits.clone(), x.clone(), mu.clone(), log_var.clone(), beta, name="beta_vae_loss")
    if torch.is_tensor(got) and got.numel() == 1 and not torch.isfinite(got).all():
        raise CheckFailed("the loss is inf or NaN: one image has confident logits (+-60), where sigmoid() is exactly "
                          "0 or 1 in floating point and log(sigmoid) is log(0). Compute the reconstruction term from "
                          "the logits: F.binary_cross_entropy_with_logits(logits, x, reduction='none')")
    t = expect_tensor(got, what="the loss")
    if t.dim() != 0:
        raise CheckFailed(f"the loss has shape {tuple(t.shape)}: return one number, the mean over the batch")
    p = torch.sigmoid(logits)
    rec_clamped = -(x * p.log().clamp_min(-100) + (1 - x) * (1 - p).log().clamp_min(-100)).sum((1, 2, 3))
    rec_mean = F.binary_cross_entropy_with_logits(logits, x, reduction="none").mean((1, 2, 3))
    expect_close(t, expected, what="the loss", hints={
        "the reconstruction term is a mean over pixels (F.binary_cross_entropy's default): that hides a "
        "weight of 1/784 on it, i.e. an effective beta 784 times larger. Sum over pixels":
            (rec_mean + beta * kl).mean(),
        "beta multiplies the KL term, not the reconstruction term": (beta * rec + kl).mean(),
        "the KL term should be added (the loss is the negative ELBO, up to beta)": (rec - beta * kl).mean(),
        "you summed over the batch; take the mean over images": (rec + beta * kl).sum(),
        "beta is missing": (rec + kl).mean(),
        "sum the KL over the latent dimensions (it is the KL of the whole d-dimensional Gaussian), do not average":
            (rec + beta * kl / mu.shape[1]).mean(),
        "the reconstruction term of the image with confident logits is wrong: F.binary_cross_entropy on "
        "sigmoid(logits) clamps each log at -100 (and sigmoid rounds to 0 or 1). Use "
        "F.binary_cross_entropy_with_logits": (rec_clamped + beta * kl).mean(),
    })
    return passed("loss = reconstruction (sum over pixels) + beta * KL, averaged over images; beta = 1 gives "
                  "the negative ELBO in nats per image.")
