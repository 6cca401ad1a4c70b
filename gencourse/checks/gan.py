"""Checks for the Chapter 4 exercises (generative adversarial networks).

Convention checked throughout: the discriminator returns **logits**, ``D = sigmoid(logit)``
is the probability that a sample is **real** (real = 1, fake = 0), and losses are means
over the batch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import CheckFailed, expect, expect_close, expect_scalar, passed, run, seeded

__all__ = ["discriminator_loss", "generator_losses", "gradient_penalty", "optimal_discriminator"]


def _log_sig(l):
    return -F.softplus(-l)   # log sigmoid(l) = log D


def _log_one_minus_sig(l):
    return -F.softplus(l)    # log (1 - sigmoid(l)) = log (1 - D)


def discriminator_loss(fn) -> bool:
    """``fn(real_logits (B,), fake_logits (B,)) -> L_D``: BCE(real, 1) + BCE(fake, 0), each a batch mean."""
    g = seeded(0)
    real = torch.randn(6, generator=g, dtype=torch.float64) + 1.0
    fake = torch.randn(6, generator=g, dtype=torch.float64) - 0.5
    expected = -_log_sig(real).mean() - _log_one_minus_sig(fake).mean()
    got = expect_scalar(run(fn, real.clone(), fake.clone(), name="discriminator_loss"), what="L_D")
    expect_close(got, expected, what="L_D", hints={
        "the labels are flipped: you treated real samples as 0 and fakes as 1. In the course's convention "
        "D(x) is the probability that x is REAL, so real data has target 1 and fakes target 0 "
        "(one of the slide decks uses the opposite labels; see the errata)":
            -_log_one_minus_sig(real).mean() - _log_sig(fake).mean(),
        "the sign is wrong: L_D = -V(D, G) is a cross-entropy, never negative":
            _log_sig(real).mean() + _log_one_minus_sig(fake).mean(),
        "only the real term is there: add BCE(D(G(z)), 0) = -mean log(1 - D(G(z)))": -_log_sig(real).mean(),
        "only the fake term is there: add BCE(D(x), 1) = -mean log D(x)": -_log_one_minus_sig(fake).mean(),
        "you averaged the two terms; the course's L_D is their sum, which equals -V(D, G)": expected / 2,
        "sum over the batch, not a mean: each term is a mean over its batch": expected * 6,
        "the inputs are logits: apply the sigmoid first (or use softplus / BCE-with-logits), not log(logit)":
            -(real.clamp_min(1e-12).log().mean()) - (1 - fake).clamp_min(1e-12).log().mean(),
    }, rtol=1e-5)
    # numerically stable when D is confidently wrong, on either side? (sigmoid(-800) underflows to 0 in float64)
    for side, real_bad, fake_bad in (("real", [-800.0, 0.0], [0.0, 0.0]), ("fake", [0.0, 0.0], [800.0, 0.0])):
        want = (800.0 + math.log(2)) / 2 + math.log(2)
        val = torch.as_tensor(run(fn, torch.tensor(real_bad, dtype=torch.float64),
                                  torch.tensor(fake_bad, dtype=torch.float64), name="discriminator_loss"))
        val = val.detach().double().reshape(-1)
        ok = val.numel() == 1 and bool(torch.isfinite(val).all()) and abs(float(val[0]) - want) < 1e-6 * want
        if ok:
            continue
        got_v = float(val[0]) if val.numel() else float("nan")
        clamped = (100.0 + math.log(2)) / 2 + math.log(2)
        logit, log_of = ("-800", "log D = log sigmoid(logit)") if side == "real" else \
            ("+800", "log(1 - D) = log(1 - sigmoid(logit))")
        if abs(got_v - clamped) < 1e-3:
            raise CheckFailed(f"for a {side} sample with logit {logit} the loss should be {want:.2f}, got "
                              f"{got_v:.4g}: F.binary_cross_entropy on probabilities clamps each log at -100; "
                              "pass the logits to F.binary_cross_entropy_with_logits (or use softplus) instead")
        stable = "-softplus(-logit)" if side == "real" else "-softplus(logit)"
        raise CheckFailed(f"for a {side} sample with logit {logit} the loss should be {want:.2f}, got {got_v:.4g}: "
                          f"{log_of} is computed from a probability that rounds to 0 or 1; compute it as "
                          f"{stable} (or use F.binary_cross_entropy_with_logits)")
    return passed("L_D = BCE(D(x), 1) + BCE(D(G(z)), 0) = -V(D, G), computed stably from logits.")


def generator_losses(fn) -> bool:
    """``fn(fake_logits (B,)) -> (saturating, non_saturating)`` generator losses (minimised), batch means."""
    g = seeded(1)
    fake = torch.randn(5, generator=g, dtype=torch.float64) * 2
    sat = _log_one_minus_sig(fake).mean()        # E log(1 - D(G(z)))
    ns = -_log_sig(fake).mean()                  # -E log D(G(z))
    out = run(fn, fake.clone(), name="generator_losses")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("return a pair (saturating, non_saturating)")
    got_sat = expect_scalar(out[0], what="the saturating loss")
    got_ns = expect_scalar(out[1], what="the non-saturating loss")
    if torch.allclose(got_sat, ns) and torch.allclose(got_ns, sat):
        raise CheckFailed("the two losses are swapped: the saturating one is E log(1 - D(G(z))) (L_G = -L_D "
                          "keeps only this term), the non-saturating one is -E log D(G(z))")
    expect_close(got_sat, sat, what="the saturating loss", hints={
        "sign: the generator MINIMISES E log(1 - D(G(z))); -E log(1 - D(G(z))) is the discriminator's "
        "fake term, which the generator would then be helping": -sat,
        "this is the non-saturating loss; the saturating one is E log(1 - D(G(z)))": ns,
        "the inputs are logits: D = sigmoid(logit)": (1 - fake).clamp_min(1e-12).log().mean(),
        "sum over the batch, not a mean: the losses are batch means": sat * len(fake),
    })
    expect_close(got_ns, ns, what="the non-saturating loss", hints={
        "sign: the generator wants D(G(z)) -> 1, so it minimises -E log D(G(z)) (you returned +E log D)": -ns,
        "this is the saturating loss; the non-saturating one is -E log D(G(z))": sat,
        "the labels are flipped: with D = P(real), the generator's target for its samples is 1 (real), "
        "so its BCE is -log D(G(z)), not -log(1 - D(G(z)))": -sat,
        "sum over the batch, not a mean: the losses are batch means": ns * len(fake),
    })
    # gradients where D confidently rejects the fakes (logit -8): one vanishes, the other does not
    logits = torch.full((4,), -8.0, dtype=torch.float64, requires_grad=True)
    s, n = run(fn, logits, name="generator_losses")
    if not (isinstance(s, torch.Tensor) and s.requires_grad and isinstance(n, torch.Tensor) and n.requires_grad):
        raise CheckFailed("the losses must be differentiable functions of the logits (use torch operations, "
                          "no .item() or .detach())")
    (gs,) = torch.autograd.grad(s, logits, retain_graph=True)
    (gn,) = torch.autograd.grad(n, logits)
    d = torch.sigmoid(logits.detach())
    expect_close(gs, -d / 4, what="the gradient of the saturating loss w.r.t. the logits at logit -8", rtol=1e-5,
                 atol=1e-12, hints={"the saturating loss is a batch *mean*: each logit's gradient is -D / B":
                                    -d})
    expect_close(gn, -(1 - d) / 4, what="the gradient of the non-saturating loss w.r.t. the logits at logit -8",
                 rtol=1e-5, atol=1e-12, hints={"the non-saturating loss is a batch *mean*: each logit's gradient is "
                                               "-(1 - D) / B": -(1 - d)})
    ratio = float(gn.abs().sum() / gs.abs().sum())
    return passed(f"at D(G(z)) = sigmoid(-8) = {torch.sigmoid(torch.tensor(-8.0)):.1e} the non-saturating "
                  f"gradient is {ratio:.0f} times larger than the saturating one.")


def _tiny_critic(seed: int):
    g = seeded(seed)
    W = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    return (lambda x: torch.tanh(x.reshape(x.shape[0], -1) @ W) @ v), (W, v)


def _reference_penalty(critic, real, fake, eps, h=1e-6):
    """(||grad f(x_hat)|| - 1)^2 averaged, the gradient from central finite differences (no autograd)."""
    x_hat = (eps.reshape(-1, *([1] * (real.dim() - 1))) * real + (1 - eps.reshape(-1, *([1] * (real.dim() - 1))))
             * fake).detach()
    flat = x_hat.reshape(len(x_hat), -1)
    grads = torch.zeros_like(flat)
    with torch.no_grad():
        for j in range(flat.shape[1]):
            e = torch.zeros_like(flat)
            e[:, j] = h
            grads[:, j] = (critic((flat + e).reshape(x_hat.shape)) - critic((flat - e).reshape(x_hat.shape))) / (2 * h)
    norms = grads.norm(dim=1)
    return norms, ((norms - 1) ** 2).mean(), grads


def gradient_penalty(fn) -> bool:
    """``fn(critic, real (B, ...), fake (B, ...), eps (B,)) -> E (||grad f(x_hat)||_2 - 1)^2`` with
    ``x_hat = eps * real + (1 - eps) * fake``, differentiable w.r.t. the critic's parameters."""
    g = seeded(2)
    critic, params = _tiny_critic(3)
    real = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    fake = torch.randn(4, 2, 3, generator=g, dtype=torch.float64) * 0.5
    eps = torch.rand(4, generator=g, dtype=torch.float64)
    norms, expected, grads = _reference_penalty(critic, real, fake, eps)
    try:
        out = run(fn, critic, real.clone(), fake.clone(), eps.clone(), name="gradient_penalty")
    except CheckFailed as err:
        text = str(err)
        if "does not require grad" in text or "One of the differentiated Tensors" in text:
            raise CheckFailed(f"{text}. torch.autograd.grad differentiates with respect to x_hat, so x_hat must "
                              "require grad: build it from detached real and fake, then x_hat.requires_grad_(True)"
                              ) from None
        if "must match the size" in text or "broadcast" in text:
            raise CheckFailed(f"{text}. eps has shape (B,): reshape it to (B, 1, ..., 1) so that it broadcasts "
                              "over each sample's entries (eps.reshape(-1, *[1] * (real.dim() - 1)))") from None
        raise
    got = expect_scalar(out, what="the penalty")
    _, swapped, _ = _reference_penalty(critic, fake, real, eps)
    _, at_real, _ = _reference_penalty(critic, real, fake, torch.ones_like(eps))
    _, at_fake, _ = _reference_penalty(critic, real, fake, torch.zeros_like(eps))
    whole = (grads.norm() - 1) ** 2
    expect_close(got, expected, what="the gradient penalty", rtol=1e-5, atol=1e-8, hints={
        "the interpolation is reversed: x_hat = eps * real + (1 - eps) * fake": swapped,
        "you used the squared norm ||g||^2; the penalty is (||g||_2 - 1)^2 with the Euclidean norm": 
            ((grads.square().sum(1) - 1) ** 2).mean(),
        "the norm must be taken per sample (over all pixels of one image), not over the whole batch": whole,
        "average over the batch, not a sum": expected * 4,
        "the 1 is missing: the target gradient norm is 1, (||g|| - 1)^2": (norms ** 2).mean(),
        "you penalised |  ||g|| - 1 | instead of its square": (norms - 1).abs().mean(),
        "the gradient was taken of critic(x_hat).mean(), which divides every sample's gradient by B: "
        "differentiate critic(x_hat).sum() (each score depends only on its own sample)":
            ((norms / 4 - 1) ** 2).mean(),
        "the penalty is taken at the real points; WGAN-GP takes it at the interpolates x_hat": at_real,
        "the penalty is taken at the fake points; WGAN-GP takes it at the interpolates x_hat": at_fake,
    })
    if not (isinstance(out, torch.Tensor) and out.requires_grad):
        raise CheckFailed("the penalty has no gradient w.r.t. the critic's parameters: call torch.autograd.grad "
                          "with create_graph=True (and make x_hat require grad), so the critic can be trained on it")
    gW, gv = torch.autograd.grad(out, params)
    # compare d(penalty)/dv with a finite difference of the reference penalty along v
    h = 1e-5
    W, v = params
    bump = torch.zeros_like(v)
    bump[0] = h
    plus_crit = lambda x: torch.tanh(x.reshape(x.shape[0], -1) @ W.detach()) @ (v.detach() + bump)  # noqa: E731
    minus_crit = lambda x: torch.tanh(x.reshape(x.shape[0], -1) @ W.detach()) @ (v.detach() - bump)  # noqa: E731
    fd = (_reference_penalty(plus_crit, real, fake, eps)[1] - _reference_penalty(minus_crit, real, fake, eps)[1]) / (2 * h)
    expect(abs(float(gv[0]) - float(fd)) < 1e-3 * max(1.0, abs(float(fd))),
           f"the penalty's gradient w.r.t. the critic is wrong (got {float(gv[0]):.5g}, finite differences "
           f"give {float(fd):.5g}): detach real and fake, but not x_hat's path to the critic")
    return passed(f"per-sample gradient norms {', '.join(f'{n:.3f}' for n in norms.tolist())}; penalty "
                  f"{float(expected):.4f}, and its gradient w.r.t. the critic matches finite differences.")


def optimal_discriminator(fn) -> bool:
    """``fn(p_data (K,), p_g (K,)) -> (d_star (K,), value)``: ``D*(x) = p_data / (p_data + p_g)`` and
    ``V(D*, G) = sum_x p_data log D*(x) + sum_x p_g log(1 - D*(x))`` for pmfs on K points."""
    # p_data is 0 at the last point and p_g at the first: both sums meet a 0 log 0 term
    p = torch.tensor([0.05, 0.25, 0.4, 0.2, 0.1, 0.0], dtype=torch.float64)
    q = torch.tensor([0.0, 0.3, 0.1, 0.2, 0.1, 0.3], dtype=torch.float64)
    d = p / (p + q)
    xlogy = torch.special.xlogy
    value = xlogy(p, d).sum() + xlogy(q, 1 - d).sum()
    out = run(fn, p.clone(), q.clone(), name="optimal_discriminator")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("return a pair (d_star, value)")
    raw_d = out[0]
    if isinstance(raw_d, torch.Tensor) and not bool(torch.isfinite(raw_d).all()):
        raise CheckFailed("D* contains inf or NaN: D* = p_data / (p_data + p_g) lies in [0, 1] wherever one of the "
                          "two is positive (a density ratio p_data / p_g is infinite where p_g = 0)")
    expect_close(out[0], d, what="D*", hints={
        "this is the probability of FAKE, p_g / (p_data + p_g): with the course's convention D(x) is the "
        "probability that x is real": q / (p + q),
        "D* is not p_data / p_g (a density ratio); divide by p_data + p_g so that D* lies in [0, 1]":
            p / q,
    })
    raw = out[1]
    if isinstance(raw, torch.Tensor) and bool(torch.isinf(raw).any()):
        raise CheckFailed("V(D*, G) is infinite: some term puts a positive probability on log 0. Weight each log by "
                          "its own distribution: p_data for log D*, p_g for log(1 - D*) (D* = 1 exactly where "
                          "p_g = 0, so log(1 - D*) is only ever weighted by p_g = 0 there)")
    if isinstance(raw, torch.Tensor) and not bool(torch.isfinite(raw).all()):
        raise CheckFailed("V(D*, G) is NaN or infinite: p_data is 0 at the last point and p_g at the first, where "
                          "0 log 0 must count as 0 (a term weighted by probability 0 contributes nothing): use "
                          "torch.special.xlogy for both sums")
    v = expect_scalar(raw, what="V(D*, G)")
    m = (p + q) / 2
    jsd = 0.5 * (xlogy(p, p / m).sum() + xlogy(q, q / m).sum())
    expect_close(v, value, what="V(D*, G)", hints={
        "this is L_D = -V; the value function itself is sum p_data log D* + sum p_g log(1 - D*)": -value,
        "weight each log by its own distribution: p_data for log D*, p_g for log(1 - D*)":
            xlogy(q, d).sum() + xlogy(p, 1 - d).sum(),
        "an expectation under a pmf is a weighted *sum* over the points, not a mean over them":
            value / len(p),
        "JSD is not the value: V(D*, G) = -log 4 + 2 JSD(p_data || p_g)": jsd,
    })
    return passed(f"V(D*, G) = {float(value):.4f} = -log 4 + 2 JSD(p_data || p_g) = {-math.log(4):.4f} + "
                  f"2 x {float(jsd):.4f}: the generator, facing D*, minimises a Jensen-Shannon divergence.")
