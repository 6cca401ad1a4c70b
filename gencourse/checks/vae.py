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
    })
    return passed("zero exactly when mu = 0 and sigma = 1, positive otherwise; in nats, summed over dimensions.")


def reparameterize(fn) -> bool:
    """``fn(mu, log_var, eps) -> z = mu + sigma * eps`` with ``sigma = exp(log_var / 2)``, differentiable in mu, log_var."""
    g = seeded(1)
    mu = torch.randn(4, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    log_var = torch.randn(4, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    eps = torch.randn(4, 3, generator=g, dtype=torch.float64)
    got = run(fn, mu, log_var, eps.clone(), name="reparameterize")
    m, lv = mu.detach(), log_var.detach()
    sigma = (0.5 * lv).exp()
    expect_close(got.detach() if torch.is_tensor(got) else got, m + sigma * eps, what="z", hints={
        "you scaled eps by the variance sigma^2 = exp(log_var); the reparameterisation uses the standard "
        "deviation sigma = exp(log_var / 2) (some slides write sigma^2 here)": m + lv.exp() * eps,
        "log_var is not the standard deviation: sigma = exp(log_var / 2)": m + lv * eps,
        "sigma = exp(log_var / 2), not sqrt(log_var) or exp(log_var) ** 2": m + lv.exp() ** 2 * eps,
        "the mean mu is missing: z = mu + sigma * eps": sigma * eps,
        "mu and sigma are swapped": sigma + m * eps,
    })
    expect(torch.is_tensor(got) and got.requires_grad,
           "z does not depend on mu and log_var through autograd: compute it with torch operations on mu and "
           "log_var (no .detach(), .item(), numpy or torch.normal), so gradients reach the encoder")
    gm, gv = torch.autograd.grad(got.sum(), [mu, log_var])
    expect_close(gv, sigma * eps / 2, what="dz/dlog_var")
    expect_close(gm, torch.ones_like(m), what="dz/dmu")
    return passed("gradients flow to mu (dz/dmu = 1) and to log_var (dz/dlog_var = sigma * eps / 2).")


def iwae_from_log_weights(fn) -> bool:
    """``fn(log_w (K, B)) -> (B,)``: ``log (1/K) sum_k exp(log_w[k])``, computed stably."""
    g = seeded(2)
    log_w = -1000.0 + 3 * torch.randn(6, 4, generator=g, dtype=torch.float64)  # exp() underflows to 0
    k = log_w.shape[0]
    expected = torch.logsumexp(log_w, 0) - math.log(k)
    got = run(fn, log_w.clone(), name="iwae_from_log_weights")
    if torch.is_tensor(got) and not torch.isfinite(got).all():
        raise CheckFailed("the result is not finite: log-weights are around -1000 here and exp(-1000) underflows "
                          "to 0 in floating point. Subtract the maximum before exponentiating, or use torch.logsumexp")
    t = _per_item(got, "the bound", 4)
    expect_close(t, expected, what="the bound", hints={
        "this is the average of the log-weights, i.e. the ELBO estimate (Jensen's inequality puts the log "
        "outside the average in the IWAE bound)": log_w.mean(0),
        "the -log K is missing: the bound is the log of the *mean* of the weights": expected + math.log(k),
        "this is the largest log-weight; the bound averages all K weights": log_w.max(0).values,
    })
    return passed("log-mean-exp of the weights: >= their mean (the ELBO), and it tightens as K grows.")


def beta_vae_loss(fn) -> bool:
    """``fn(logits, x, mu, log_var, beta) -> scalar``: mean over the batch of [BCE summed over pixels + beta * KL]."""
    g = seeded(3)
    logits = torch.randn(4, 1, 28, 28, generator=g, dtype=torch.float64)
    x = torch.bernoulli(torch.full((4, 1, 28, 28), 0.3, dtype=torch.float64), generator=g)
    mu = torch.randn(4, 5, generator=g, dtype=torch.float64)
    log_var = torch.randn(4, 5, generator=g, dtype=torch.float64) * 0.5
    beta = 3.0
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))   # (B,)
    kl = 0.5 * (log_var.exp() + mu**2 - 1 - log_var).sum(-1)                              # (B,)
    expected = (rec + beta * kl).mean()
    got = run(fn, logits.clone(), x.clone(), mu.clone(), log_var.clone(), beta, name="beta_vae_loss")
    t = expect_tensor(got, what="the loss")
    if t.dim() != 0:
        raise CheckFailed(f"the loss has shape {tuple(t.shape)}: return one number, the mean over the batch")
    rec_mean = F.binary_cross_entropy_with_logits(logits, x, reduction="none").mean((1, 2, 3))
    expect_close(t, expected, what="the loss", hints={
        "the reconstruction term is a mean over pixels (F.binary_cross_entropy's default): that hides a "
        "weight of 1/784 on it, i.e. an effective beta 784 times larger. Sum over pixels":
            (rec_mean + beta * kl).mean(),
        "beta multiplies the KL term, not the reconstruction term": (beta * rec + kl).mean(),
        "the KL term should be added (the loss is the negative ELBO, up to beta)": (rec - beta * kl).mean(),
        "you summed over the batch; take the mean over images": (rec + beta * kl).sum(),
        "beta is missing": (rec + kl).mean(),
    })
    return passed("loss = reconstruction (sum over pixels) + beta * KL, averaged over images; beta = 1 gives "
                  "the negative ELBO in nats per image.")
