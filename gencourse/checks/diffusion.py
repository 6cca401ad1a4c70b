"""Checks for the Chapter 6 exercises (diffusion models).

Every reference below is written out from the formula (not taken from
:mod:`gencourse.diffusion`), so a bug there cannot hide one here.
"""
from __future__ import annotations

import torch

from . import CheckFailed, expect, expect_close, expect_tensor, passed, run

__all__ = ["alpha_bar", "q_sample", "posterior_mean", "ddpm_step", "ddim_step", "guided_noise"]

_F64 = torch.float64


def _betas(T: int = 12) -> torch.Tensor:
    return torch.linspace(0.02, 0.3, T, dtype=_F64)  # large betas so that mistakes show in every entry


def _cumprod_loop(values: torch.Tensor) -> torch.Tensor:
    out, acc = [], 1.0
    for v in values.tolist():
        acc *= v
        out.append(acc)
    return torch.tensor(out, dtype=_F64)


def alpha_bar(fn) -> bool:
    """``fn(betas (T,)) -> alpha_bar (T,)`` with ``alpha_bar[t] = prod_{s <= t} (1 - betas[s])``."""
    betas = _betas()
    expected = _cumprod_loop(1 - betas)
    got = run(fn, betas.clone(), name="alpha_bar")
    expect_close(got, expected, what="alpha_bar", hints={
        "this is the cumulative product of the betas; multiply the alphas = 1 - betas": _cumprod_loop(betas),
        "this is 1 - beta_t (alpha_t) for each step; alpha_bar multiplies all alphas up to t": 1 - betas,
        "you added instead of multiplying: alpha_bar is a product": torch.cumsum(1 - betas, 0),
        "off by one: alpha_bar[0] must already include step 0, alpha_bar[0] = 1 - betas[0]":
            torch.cat([torch.ones(1, dtype=_F64), _cumprod_loop(1 - betas)[:-1]]),
        "this is 1 - alpha_bar (the noise variance), not alpha_bar": 1 - expected,
    })
    return passed(f"after {len(betas)} steps only {expected[-1]:.3f} of the signal variance is left "
                  "(alpha_bar decreases towards 0).")


def q_sample(fn) -> bool:
    """``fn(x0 (B, D), t (B,), noise (B, D), alpha_bar (T,)) -> x_t (B, D)`` (one jump to step t)."""
    g = torch.Generator().manual_seed(6)
    abar = _cumprod_loop(1 - _betas())
    x0 = torch.rand(5, 7, generator=g, dtype=_F64) * 2 - 1
    noise = torch.randn(5, 7, generator=g, dtype=_F64)
    t = torch.tensor([0, 3, 6, 9, 11])
    a = abar[t][:, None]
    expected = a.sqrt() * x0 + (1 - a).sqrt() * noise
    got = _run_q_sample(fn, x0.clone(), t.clone(), noise.clone(), abar.clone())
    prev = torch.cat([torch.ones(1, dtype=_F64), abar[:-1]])[t][:, None]
    expect_close(got, expected, what="x_t", hints={
        "both coefficients are missing their square roots: the mean is sqrt(alpha_bar) x0 and the noise is "
        "scaled by the standard deviation sqrt(1 - alpha_bar), not the variance": a * x0 + (1 - a) * noise,
        "the noise is scaled by the variance 1 - alpha_bar; scale it by the standard deviation "
        "sqrt(1 - alpha_bar)": a.sqrt() * x0 + (1 - a) * noise,
        "x0 is scaled by alpha_bar; its coefficient is sqrt(alpha_bar)": a * x0 + (1 - a).sqrt() * noise,
        "the two coefficients are swapped: x0 gets sqrt(alpha_bar), the noise sqrt(1 - alpha_bar)":
            (1 - a).sqrt() * x0 + a.sqrt() * noise,
        "off by one: use alpha_bar[t], the product up to and including step t":
            prev.sqrt() * x0 + (1 - prev).sqrt() * noise,
        "every image has its own step: use alpha_bar[t] (one value per image), not alpha_bar[t[0]]":
            a[:1].sqrt() * x0 + (1 - a[:1]).sqrt() * noise,
    })
    # as many images as pixels: a per-image coefficient broadcast along the pixels no longer crashes
    x0_sq, noise_sq = x0[:, :5].clone(), noise[:, :5].clone()
    got = _run_q_sample(fn, x0_sq.clone(), t.clone(), noise_sq.clone(), abar.clone())
    expect_close(got, a.sqrt() * x0_sq + (1 - a).sqrt() * noise_sq, what="x_t for 5 images of 5 pixels", hints={
        "alpha_bar[t] has shape (B,) and was broadcast along the pixels (each *column* got a step): index it as "
        "alpha_bar[t][:, None] so that each image (row) gets its own":
            a.T.sqrt() * x0_sq + (1 - a.T).sqrt() * noise_sq,
    })
    # the moments, empirically, on a larger draw
    x0_big = torch.full((20_000, 1), 0.7, dtype=_F64)
    tb = torch.full((20_000,), 6)
    xt = expect_tensor(run(fn, x0_big, tb, torch.randn(20_000, 1, generator=g, dtype=_F64), abar,
                           name="q_sample"), (20_000, 1), what="x_t for 20,000 copies of one pixel")
    m, v = xt.mean().item(), xt.var().item()
    expect(abs(m - abar[6].sqrt().item() * 0.7) < 0.02 and abs(v - (1 - abar[6].item())) < 0.03,
           f"over 20,000 draws x_t has mean {m:.3f} and variance {v:.3f}; q(x_t | x_0) has mean "
           f"{abar[6].sqrt().item() * 0.7:.3f} and variance {1 - abar[6].item():.3f}")
    return passed("x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps: the coefficients are standard "
                  "deviations, and their squares add up to 1 for unit-variance data.")


def _run_q_sample(fn, *args):
    try:
        return run(fn, *args, name="q_sample")
    except CheckFailed as err:
        if "must match the size" in str(err):
            raise CheckFailed(f"{err}. alpha_bar[t] has shape (B,) and x0 (B, D): index it as alpha_bar[t][:, None] "
                              "(shape (B, 1)) so that it broadcasts over each image's pixels") from None
        raise


def posterior_mean(fn) -> bool:
    """``fn(x0 (B, D), x_t (B, D), t: int, betas (T,)) -> mean of q(x_{t-1} | x_t, x0)`` (B, D) (DDPM eq. 7).
    For t = 0 the product up to t - 1 is empty: alpha_bar_{-1} = 1."""
    g = torch.Generator().manual_seed(7)
    betas = _betas()
    alphas = 1 - betas
    abar = _cumprod_loop(alphas)
    x0, xt = torch.randn(4, 6, generator=g, dtype=_F64), torch.randn(4, 6, generator=g, dtype=_F64)

    def ref(t, ab_prev=None, swap=False, no_sqrt=False, beta_shift=0):
        a_prev = (abar[t - 1] if t > 0 else torch.tensor(1.0, dtype=_F64)) if ab_prev is None else ab_prev
        beta = betas[max(t + beta_shift, 0)]
        c0 = (a_prev if no_sqrt else a_prev.sqrt()) * beta / (1 - abar[t])
        ct = (alphas[t] if no_sqrt else alphas[t].sqrt()) * (1 - a_prev) / (1 - abar[t])
        return (c0 * xt + ct * x0) if swap else (c0 * x0 + ct * xt)

    for t in (7, 0):
        got = run(fn, x0.clone(), xt.clone(), t, betas.clone(), name="posterior_mean")
        hints = {
            "the coefficients of x0 and x_t are swapped": ref(t, swap=True),
            "the square roots are missing: the coefficients use sqrt(alpha_bar_{t-1}) and sqrt(alpha_t)":
                ref(t, no_sqrt=True),
            "use alpha_bar_{t-1} (one step earlier) where the formula has alpha_bar_{t-1}; you used alpha_bar_t":
                ref(t, ab_prev=abar[t]),
        }
        if t == 0:
            hints["at t = 0, alpha_bar[t - 1] is alpha_bar[-1], Python's *last* entry: there is no earlier step, "
                  "so use alpha_bar_{-1} = 1 (an empty product)"] = ref(0, ab_prev=abar[-1])
        else:
            hints["beta_t is betas[t], the beta of the same step as alpha_bar_t; you used betas[t - 1]"] = \
                ref(t, beta_shift=-1)
        expect_close(got, ref(t), what=f"the posterior mean at t = {t}", hints=hints)
    c0, ct = (abar[6].sqrt() * betas[7] / (1 - abar[7])).item(), (alphas[7].sqrt() * (1 - abar[6]) / (1 - abar[7])).item()
    return passed(f"at t = 7 the mean is {c0:.3f} x0 + {ct:.3f} x_t; at t = 0 it is exactly x0 "
                  "(the last step lands on the prediction).")


def _ddpm_reference(x_t, eps, t, betas, z, *, clip=True, variance="posterior", noise=True, std=True,
                    a_prev_last=None, a_t_prev=False):
    """One ancestral step written out from DDPM eqs. 6-7 (float64): x0 from eps, clipped to [-1, 1], the posterior
    mean and the posterior variance beta_tilde (the variants are the usual mistakes)."""
    alphas = 1 - betas
    abar = _cumprod_loop(alphas)
    a_prev = (abar[t - 1] if t > 0 else torch.tensor(1.0, dtype=_F64)) if a_prev_last is None else a_prev_last
    a_t = a_prev if a_t_prev else abar[t]
    x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    if clip:
        x0 = x0.clamp(-1, 1)
    mean = a_prev.sqrt() * betas[t] / (1 - a_t) * x0 + alphas[t].sqrt() * (1 - a_prev) / (1 - a_t) * x_t
    var = (1 - a_prev) / (1 - a_t) * betas[t] if variance == "posterior" else betas[t]
    if not noise:
        return mean
    return mean + (var.sqrt() if std else var) * z


def ddpm_step(fn) -> bool:
    """``fn(x_t (B, D), eps (B, D), t: int, betas (T,), z (B, D)) -> x_{t-1} (B, D)``: one ancestral DDPM step,
    x0 predicted from eps and clipped to [-1, 1], then the posterior mean plus sqrt(beta_tilde_t) z."""
    g = torch.Generator().manual_seed(10)
    betas = _betas()
    abar = _cumprod_loop(1 - betas)
    x_t = 1.5 * torch.randn(4, 6, generator=g, dtype=_F64)          # wide enough that many x0 predictions exceed 1
    eps, z = torch.randn(4, 6, generator=g, dtype=_F64), torch.randn(4, 6, generator=g, dtype=_F64)
    for t in (7, 11, 0):                                             # a middle step, the first step, the last step
        want = _ddpm_reference(x_t, eps, t, betas, z)
        got = run(fn, x_t.clone(), eps.clone(), t, betas.clone(), z.clone(), name="ddpm_step")
        hints = {
            "x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) must be clipped to [-1, 1] before it enters the "
            "posterior mean (the data lie in [-1, 1])": _ddpm_reference(x_t, eps, t, betas, z, clip=False),
            "sigma_t^2 = beta_t is the paper's other choice; this step uses the posterior variance "
            "beta_tilde_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t": _ddpm_reference(x_t, eps, t, betas, z,
                                                                                   variance="beta"),
            "the noise is scaled by the variance beta_tilde_t; scale it by the standard deviation "
            "sqrt(beta_tilde_t)": _ddpm_reference(x_t, eps, t, betas, z, std=False),
            "the fresh noise sqrt(beta_tilde_t) z is missing: this is the posterior mean alone":
                _ddpm_reference(x_t, eps, t, betas, z, noise=False),
            "use alpha_bar_t = alpha_bar[t] for x0 and the denominators; you used alpha_bar[t - 1]":
                _ddpm_reference(x_t, eps, t, betas, z, a_t_prev=True) if t > 0 else None,
        }
        if t == 0:
            hints["at t = 0, alpha_bar[t - 1] is alpha_bar[-1], Python's *last* entry: use alpha_bar_{-1} = 1 "
                  "(an empty product)"] = _ddpm_reference(x_t, eps, 0, betas, z, a_prev_last=abar[-1])
            hints["sigma_t^2 = beta_t adds noise even at the last step; with beta_tilde_0 = 0 the last step "
                  "returns the clipped x0 prediction"] = hints.pop(
                "sigma_t^2 = beta_t is the paper's other choice; this step uses the posterior variance "
                "beta_tilde_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t")
        expect_close(got, want, what=f"x_(t-1) at t = {t}", hints={k: v for k, v in hints.items() if v is not None})
    # without clipping, the posterior mean is the paper's eps form 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps)
    t = 7
    small = 0.3 * x_t
    eps_form = (small - betas[t] / (1 - abar[t]).sqrt() * eps) / (1 - betas[t]).sqrt()
    sd_post = ((1 - abar[t - 1]) / (1 - abar[t]) * betas[t]).sqrt().item()
    return passed(f"x_(t-1) = mu_tilde(x_t, clip(x0)) + sqrt(beta_tilde_t) z; at t = 7 the noise has standard deviation "
                  f"{sd_post:.3f} (sqrt(beta_t) would be {betas[t].sqrt().item():.3f}); at t = 0, beta_tilde = 0 "
                  f"and the step lands on x0. (Unclipped, mu_tilde is the paper's eps form, max difference "
                  f"{(_ddpm_reference(small, eps, t, betas, z, clip=False, noise=False) - eps_form).abs().max():.1e}.)")


def ddim_step(fn) -> bool:
    """``fn(x_t, eps, abar_t, abar_prev) -> x_prev``: the deterministic DDIM update (eta = 0, no clipping)."""
    g = torch.Generator().manual_seed(8)
    xt, eps = torch.randn(3, 5, generator=g, dtype=_F64), torch.randn(3, 5, generator=g, dtype=_F64)
    a_t, a_p = torch.tensor(0.3, dtype=_F64), torch.tensor(0.8, dtype=_F64)
    x0 = (xt - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    expected = a_p.sqrt() * x0 + (1 - a_p).sqrt() * eps
    got = run(fn, xt.clone(), eps.clone(), a_t, a_p, name="ddim_step")
    expect_close(got, expected, what="x_prev", hints={
        "first predict x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t); you used x_t in its place":
            a_p.sqrt() * xt + (1 - a_p).sqrt() * eps,
        "the noise direction uses sqrt(1 - abar_prev), the noise level of the step you jump to":
            a_p.sqrt() * x0 + (1 - a_t).sqrt() * eps,
        "the square roots are missing (alpha_bar is a variance fraction)": a_p * x0 + (1 - a_p) * eps,
        "x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t): subtract the noise, then divide":
            a_p.sqrt() * ((xt + (1 - a_t).sqrt() * eps) / a_t.sqrt()) + (1 - a_p).sqrt() * eps,
        "x0 was clipped to [-1, 1]; this exercise asks for the update without clipping":
            a_p.sqrt() * x0.clamp(-1, 1) + (1 - a_p).sqrt() * eps,
        "the noise direction must be the predicted eps itself; you recomputed it from the clipped x0":
            a_p.sqrt() * x0.clamp(-1, 1) + (1 - a_p).sqrt() * (xt - a_t.sqrt() * x0.clamp(-1, 1)) / (1 - a_t).sqrt(),
    })
    # with a perfect noise prediction the step lands exactly on q(x_prev | x0) with the same eps
    x0_true = torch.rand(3, 5, generator=g, dtype=_F64)
    xt2 = a_t.sqrt() * x0_true + (1 - a_t).sqrt() * eps
    again = run(fn, xt2, eps.clone(), a_t, a_p, name="ddim_step")
    expect_close(again, a_p.sqrt() * x0_true + (1 - a_p).sqrt() * eps, what="x_prev for a perfect prediction")
    return passed("DDIM re-noises the x0 prediction to the previous level with the *same* predicted noise: "
                  "no randomness, so it can take big jumps.")


def guided_noise(fn) -> bool:
    """``fn(eps_cond, eps_uncond, scale) -> eps`` (classifier-free guidance, scale 0 = unconditional)."""
    g = torch.Generator().manual_seed(9)
    c, u = torch.randn(2, 4, generator=g, dtype=_F64), torch.randn(2, 4, generator=g, dtype=_F64)
    for s in (3.0, 0.0, 1.0):
        got = run(fn, c.clone(), u.clone(), s, name="guided_noise")
        expect_close(got, u + s * (c - u), what=f"the guided noise at scale {s:g}", hints={
            "conditional and unconditional are swapped: start from eps_uncond and move towards eps_cond":
                c + s * (u - c),
            "this is the other convention, (1 + w) eps_cond - w eps_uncond; here scale 1 must give eps_cond":
                (1 + s) * c - s * u,
            "the difference is not scaled by the guidance scale": u + (c - u),
        })
    return passed(f"scale 0 is unconditional, 1 is plain conditional, and scale {3:g} extrapolates "
                  "past the conditional prediction, away from the unconditional one.")
