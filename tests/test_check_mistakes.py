"""Every exercise check rejects the mistakes a student makes, each with the check's own hint,
and accepts a correct answer.  One block per chapter: a correct implementation, then wrong ones
with the message (a regex) the check must give."""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from gencourse.checks import CheckFailed
from gencourse.checks import flow as check_flow


def _accepts(check, fn):
    assert check(fn) is True


def _rejects(check, fn, message):
    with pytest.raises(CheckFailed, match=message):
        check(fn)


# ----------------------------------------------------------------------------- Chapter 8
def _euler(velocity, x, steps, grid=lambda i, n: i / n):
    for i in range(steps):
        x = x + velocity(x, torch.full((x.shape[0],), grid(i, steps), dtype=x.dtype)) / steps
    return x


def _ot(x0, x1, sign=1.0, inverse=False):
    rows, cols = linear_sum_assignment(sign * (torch.cdist(x1, x0) ** 2).numpy())
    perm = np.empty(len(rows), dtype=np.int64)
    perm[rows] = cols
    if inverse:
        perm = np.argsort(perm)
    return torch.from_numpy(perm)


FLOW_CASES = {
    "interpolant": (lambda x0, x1, t: ((1 - t[:, None]) * x0 + t[:, None] * x1, x1 - x0), [
        (lambda x0, x1, t: (t[:, None] * x0 + (1 - t[:, None]) * x1, x1 - x0), "ends are swapped"),
        (lambda x0, x1, t: ((1 - t[:, None]) * x0 + t[:, None] * x1, x0 - x1), "sign is flipped"),
        (lambda x0, x1, t: ((1 - t[:, None]).sqrt() * x0 + t[:, None].sqrt() * x1, x1 - x0), "no square roots"),
        (lambda x0, x1, t: ((1 - t[:, None]) * x0 + t[:, None] * x1, t[:, None] * (x1 - x0)), "does not depend on t"),
        (lambda x0, x1, t: (1 - t[:, None]) * x0 + t[:, None] * x1, "return a pair"),
    ]),
    "euler_sample": (_euler, [
        (lambda v, x, n: _euler(v, x, n, grid=lambda i, m: (i + 1) / m), "start of the step"),
        (lambda v, x, n: _euler(v, x, n, grid=lambda i, m: 1 - i / m), "time runs backwards"),
        (lambda v, x, n: _euler(v, x, n, grid=lambda i, m: i / max(m - 1, 1)), "step size is 1/steps"),
        (lambda v, x, n: x + v(x, torch.zeros(x.shape[0], dtype=x.dtype)), "not right"),
    ]),
    "eps_to_velocity": (lambda xt, eps, t: (xt - eps) / t[:, None], [
        (lambda xt, eps, t: (eps - xt) / t[:, None], "sign is flipped"),
        (lambda xt, eps, t: (xt - eps) / (1 - t[:, None]), "divide by t, not by 1 - t"),
        (lambda xt, eps, t: (xt - (1 - t[:, None]) * eps) / t[:, None], "data estimate"),
        (lambda xt, eps, t: xt - eps, "forgot to divide"),
    ]),
    "ot_pairing": (_ot, [
        (lambda x0, x1: torch.arange(len(x0)), "independent pairing|best pairing"),
        (lambda x0, x1: _ot(x0, x1, sign=-1.0), "maximises"),
        (lambda x0, x1: torch.cdist(x1, x0).argmin(1), "not a permutation|best pairing"),
        (lambda x0, x1: _ot(x0, x1, inverse=True), "inverted"),
    ]),
}


@pytest.mark.parametrize("name", sorted(FLOW_CASES))
def test_flow_checks(name):
    check = getattr(check_flow, name)
    right, wrongs = FLOW_CASES[name]
    _accepts(check, right)
    for fn, message in wrongs:
        _rejects(check, fn, message)


# ----------------------------------------------------------------------------- Chapter 0
from gencourse.checks import probability as check_probability  # noqa: E402


def _posterior(prior, lik):
    joint = prior[:, None] * lik
    return (joint / joint.sum(0, keepdim=True)).T


def _bigram(counts, k):
    return (counts + k) / (counts + k).sum(1, keepdim=True)


def _gauss(x, mu, sigma):
    return -0.5 * ((x - mu) / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)


def _bern(x, p):
    return (x * p.log() + (1 - x) * torch.log1p(-p)).sum(1)


PROBABILITY_CASES = {
    "posterior": (_posterior, [
        (lambda prior, lik: (prior[:, None] * lik).T, "joint p\\(x, y\\)"),
        (lambda prior, lik: (lik / lik.sum(0, keepdim=True)).T, "prior p\\(y\\) is missing"),
        (lambda prior, lik: (prior[:, None] * lik / lik.sum(0, keepdim=True)).T, "needs the prior too"),
        (lambda prior, lik: ((prior[:, None] * lik) / (prior[:, None] * lik).sum(1, keepdim=True)).T,
         "normalised over x instead of y"),
        (lambda prior, lik: _posterior(prior, lik).T, "has shape \\(3, 4\\), expected \\(4, 3\\)"),
    ]),
    "bigram_from_counts": (_bigram, [
        (lambda counts, k: counts / counts.sum(1, keepdim=True), "no counts at all.*Add k"),
        (lambda counts, k: (counts + k) / (counts + k).sum(0, keepdim=True), "normalised columns"),
        (lambda counts, k: (counts + k) / (counts + k).sum(), "whole matrix"),
        (lambda counts, k: (counts + k) / (counts.sum(1, keepdim=True) + k), "k for every one of the S"),
        (lambda counts, k: _bigram(counts, 1.0), "add-one smoothing"),
    ]),
    "gaussian_log_density": (_gauss, [
        (lambda x, mu, s: -0.5 * (x - mu) ** 2 / s - 0.5 * torch.log(2 * math.pi * s), "used it as the variance"),
        (lambda x, mu, s: torch.log(torch.exp(-0.5 * ((x - mu) / s) ** 2) / (s * math.sqrt(2 * math.pi))),
         "underflows to 0"),
        (lambda x, mu, s: _gauss(x, mu, s) - torch.log(s), "not -log\\(sigma\\^2\\)"),
        (lambda x, mu, s: -((x - mu) / s) ** 2 - torch.log(s) - 0.5 * math.log(2 * math.pi), "factor 1/2"),
        (lambda x, mu, s: -0.5 * ((x - mu) / s) ** 2, "normalising constant"),
        (lambda x, mu, s: -_gauss(x, mu, s), "sign is flipped"),
    ]),
    "bernoulli_log_likelihood": (_bern, [
        (lambda x, p: _bern(x, p) / x.shape[1], "averaged over pixels"),
        (lambda x, p: _bern(x, p) / math.log(2), "bits"),
        (lambda x, p: ((1 - x) * p.log() + x * torch.log1p(-p)).sum(1), "swapped"),
        (lambda x, p: (x * p.log()).sum(1), "pixels that are off"),
        (lambda x, p: -_bern(x, p), "sign is flipped"),
        (lambda x, p: _bern(x, p).sum().expand(len(x)), "summed over images"),
        (lambda x, p: _bern(x, p).mean(), "has shape \\(\\), expected \\(5,\\)"),
    ]),
}


@pytest.mark.parametrize("name", sorted(PROBABILITY_CASES))
def test_probability_checks(name):
    check = getattr(check_probability, name)
    right, wrongs = PROBABILITY_CASES[name]
    _accepts(check, right)
    for fn, message in wrongs:
        _rejects(check, fn, message)


# ----------------------------------------------------------------------------- Chapter 1
import torch.nn.functional as F  # noqa: E402

from gencourse.checks import autoencoders as check_autoencoders  # noqa: E402


def _bce(logits, x):
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def _pca(x, k, rows=True, centre=True, add_back=True, last=False):
    mean = x.mean(0) if centre else torch.zeros(x.shape[1], dtype=x.dtype)
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
    v = (vh[-k:] if last else vh[:k]).T if rows else vh[:, :k]
    return (x - mean) @ v @ v.T + (mean if add_back else 0)


def _angles(a, b, qr_a=True, qr_b=True):
    qa = torch.linalg.qr(a).Q if qr_a else a
    qb = torch.linalg.qr(b).Q if qr_b else b
    return torch.arccos(torch.linalg.svdvals(qa.T @ qb).clamp(-1, 1))


AUTOENCODER_CASES = {
    "reconstruction_bce": (_bce, [
        (lambda logits, x: -(x * torch.sigmoid(logits).log() + (1 - x) * (1 - torch.sigmoid(logits)).log()
                             ).flatten(1).sum(1), "inf or NaN.*confident logits"),
        (lambda logits, x: F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none").flatten(1).sum(1),
         "clamps each log at -100"),
        (lambda logits, x: _bce(logits, x) / 784, "averaged over pixels"),
        (lambda logits, x: -_bce(logits, x), "sign is flipped"),
        (lambda logits, x: _bce(torch.sigmoid(logits), x), "sigmoid twice"),
        (lambda logits, x: _bce(logits, x).mean(), "single number"),
    ]),
    "pca_reconstruct": (_pca, [
        (lambda x, k: _pca(x, k, centre=False), "centre the data first"),
        (lambda x, k: _pca(x, k, add_back=False), "add the mean back"),
        (lambda x, k: _pca(x, k, last=True), "last\\* k components"),
        (lambda x, k: _pca(x, k, rows=False), "rows\\* of Vh"),
        (lambda x, k: _pca(x, x.shape[1]), "kept every component"),
    ]),
    "principal_angles": (_angles, [
        (lambda a, b: _angles(a, b, qr_b=False), "only a was orthonormalised"),
        (lambda a, b: _angles(a, b, qr_a=False), "only b was orthonormalised"),
        (lambda a, b: _angles(a, b, qr_a=False, qr_b=False), "columns are not orthonormal"),
        (lambda a, b: _angles(a, b) * 180 / math.pi, "degrees"),
        (lambda a, b: torch.linalg.svdvals(torch.linalg.qr(a).Q.T @ torch.linalg.qr(b).Q), "cosines"),
        (lambda a, b: _angles(a, b).flip(0), "ascending order"),
    ]),
}


@pytest.mark.parametrize("name", sorted(AUTOENCODER_CASES))
def test_autoencoder_checks(name):
    check = getattr(check_autoencoders, name)
    right, wrongs = AUTOENCODER_CASES[name]
    _accepts(check, right)
    for fn, message in wrongs:
        _rejects(check, fn, message)


# ----------------------------------------------------------------------------- Chapter 2
from gencourse.checks import vae as check_vae  # noqa: E402


def _kl(mu, lv):
    return 0.5 * (lv.exp() + mu**2 - 1 - lv).sum(-1)


def _beta_loss(logits, x, mu, lv, beta, pixels="sum", kl_reduce="sum", stable=True, sign=1.0):
    if stable:
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1)
    else:
        p = torch.sigmoid(logits)
        rec = -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1)
    rec = rec.sum(1) if pixels == "sum" else rec.mean(1)
    kl = 0.5 * (lv.exp() + mu**2 - 1 - lv)
    kl = kl.sum(-1) if kl_reduce == "sum" else kl.mean(-1)
    return (rec + sign * beta * kl).mean()


VAE_CASES = {
    "kl_diag_gaussian": (_kl, [
        (lambda mu, lv: -_kl(mu, lv), "sign is wrong"),
        (lambda mu, lv: _kl(mu, 2 * lv), "treated log_var as log sigma"),
        (lambda mu, lv: 0.5 * ((0.5 * lv).exp() + mu**2 - 1 - lv).sum(-1), "not the standard deviation"),
        (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 - 0.5 * lv).sum(-1), "not log_var / 2"),
        (lambda mu, lv: _kl(mu, lv) / mu.shape[1], "do not average"),
        (lambda mu, lv: 2 * _kl(mu, lv), "factor 1/2"),
        (lambda mu, lv: _kl(mu, lv).sum(), "single number"),
        (lambda mu, lv: 0.5 * ((1 + mu**2) / lv.exp() - 1 + lv).sum(-1), "other direction"),
    ]),
    "reparameterize": (lambda mu, lv, eps: mu + torch.exp(0.5 * lv) * eps, [
        (lambda mu, lv, eps: mu + lv.exp() * eps, "variance sigma\\^2"),
        (lambda mu, lv, eps: mu + lv * eps, "log_var is not the standard deviation"),
        (lambda mu, lv, eps: torch.exp(0.5 * lv) * eps, "mean mu is missing"),
        (lambda mu, lv, eps: mu + torch.exp(0.5 * lv), "noise is missing"),
        (lambda mu, lv, eps: mu + torch.exp(0.5 * lv) * torch.randn_like(mu), "use the eps that is passed in"),
        (lambda mu, lv, eps: torch.normal(mu, torch.exp(0.5 * lv)), "use the eps that is passed in"),
        (lambda mu, lv, eps: mu + torch.exp(0.5 * lv).detach() * eps, "does not depend on log_var"),
        (lambda mu, lv, eps: mu.detach() + torch.exp(0.5 * lv) * eps, "does not depend on mu"),
        (lambda mu, lv, eps: (mu + torch.exp(0.5 * lv) * eps).detach(), "does not depend on mu and log_var"),
        (lambda mu, lv, eps: torch.from_numpy((mu + torch.exp(0.5 * lv) * eps).detach().numpy()),
         "does not depend on mu and log_var"),
    ]),
    "iwae_from_log_weights": (lambda lw: torch.logsumexp(lw, 0) - math.log(lw.shape[0]), [
        (lambda lw: lw.exp().mean(0).log(), "underflows.*overflows"),
        (lambda lw: lw.mean(0) + (lw - lw.mean(0)).exp().mean(0).log(), "not finite for image\\(s\\) \\[2\\]"),
        (lambda lw: lw.min(0).values + (lw - lw.min(0).values).exp().mean(0).log(), "Subtract the maximum"),
        (lambda lw: lw.mean(0), "ELBO"),
        (lambda lw: torch.logsumexp(lw, 0), "-log K is missing"),
        (lambda lw: lw.max(0).values, "largest log-weight"),
        (lambda lw: torch.logsumexp(lw, 0) - math.log(lw.shape[1]), "divide by K"),
        (lambda lw: (torch.logsumexp(lw, 0) - math.log(lw.shape[0])).mean(), "single number"),
    ]),
    "beta_vae_loss": (_beta_loss, [
        (lambda *a: _beta_loss(*a, stable=False), "inf or NaN.*confident logits"),
        (lambda logits, x, mu, lv, beta: (F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none")
                                          .flatten(1).sum(1) + beta * _kl(mu, lv)).mean(), "clamps each log"),
        (lambda *a: _beta_loss(*a, pixels="mean"), "784 times"),
        (lambda *a: _beta_loss(*a, kl_reduce="mean"), "sum the KL over the latent dimensions"),
        (lambda logits, x, mu, lv, beta: _beta_loss(logits, x, mu, lv, 1.0), "beta is missing"),
        (lambda *a: _beta_loss(*a, sign=-1.0), "should be added"),
        (lambda logits, x, mu, lv, beta: _beta_loss(logits, x, mu, lv, beta) * len(x), "summed over the batch"),
        (lambda logits, x, mu, lv, beta: (beta * F.binary_cross_entropy_with_logits(logits, x, reduction="none")
                                          .flatten(1).sum(1) + _kl(mu, lv)).mean(), "not the reconstruction"),
    ]),
}


@pytest.mark.parametrize("name", sorted(VAE_CASES))
def test_vae_checks(name):
    check = getattr(check_vae, name)
    right, wrongs = VAE_CASES[name]
    _accepts(check, right)
    for fn, message in wrongs:
        _rejects(check, fn, message)


# ----------------------------------------------------------------------------- Chapter 3
from gencourse.checks import rbm as check_rbm  # noqa: E402


def _cond(v, h, W, b, c):
    return torch.sigmoid(v @ W + c), torch.sigmoid(h @ W.T + b)


def _free(v, W, b, c):
    return -(v @ b) - F.softplus(v @ W + c).sum(1)


def _cd(vd, vm, W, b, c, reduce="mean"):
    pd, pm = torch.sigmoid(vd @ W + c), torch.sigmoid(vm @ W + c)
    if reduce == "mean":
        return vd.T @ pd / len(vd) - vm.T @ pm / len(vm), vd.mean(0) - vm.mean(0), pd.mean(0) - pm.mean(0)
    return vd.T @ pd - vm.T @ pm, vd.sum(0) - vm.sum(0), pd.sum(0) - pm.sum(0)


def _hidden_states(K, dtype):
    return ((torch.arange(2**K)[:, None] >> torch.arange(K)) & 1).to(dtype)


def _log_z(W, b, c, naive_softplus=False, naive_sum=False):
    H = _hidden_states(W.shape[1], W.dtype)
    a = H @ W.T + b
    terms = H @ c + (torch.log(1 + torch.exp(a)) if naive_softplus else F.softplus(a)).sum(1)
    return torch.log(torch.exp(terms).sum()) if naive_sum else torch.logsumexp(terms, 0)


RBM_CASES = {
    "conditionals": (_cond, [
        (lambda v, h, W, b, c: (torch.sigmoid(v @ W + b), torch.sigmoid(h @ W.T + c)), "bias names are swapped"),
        (lambda *a: _cond(*a)[::-1], "wrong order"),
        (lambda v, h, W, b, c: (v @ W + c, torch.sigmoid(h @ W.T + b)), "forgot the sigmoid"),
        (lambda v, h, W, b, c: (torch.sigmoid(-(v @ W + c)), torch.sigmoid(h @ W.T + b)), "sign is flipped"),
        (lambda v, h, W, b, c: (torch.sigmoid(v @ W + c), torch.sigmoid(h @ W + b)), "wrong way round"),
        (lambda *a: tuple(torch.bernoulli(t) for t in _cond(*a)), "sampled states"),
        (lambda *a: _cond(*a)[0], "tuple of 2"),
    ]),
    "free_energy": (_free, [
        (lambda v, W, b, c: -(v @ b) - torch.log(1 + torch.exp(v @ W + c)).sum(1), "overflows above 709"),
        (lambda v, W, b, c: -_free(v, W, b, c), "sign is flipped"),
        (lambda v, W, b, c: -F.softplus(v @ W + c).sum(1), "-b\\^T v is missing"),
        (lambda v, W, b, c: -(v @ c) - F.softplus(v @ W + b).sum(1), "names are swapped"),
        (lambda v, W, b, c: -(v @ b) - (v @ W + c).sum(1), "softplus"),
        (lambda v, W, b, c: _free(v, W, b, c) + torch.logsumexp(-_free(v, W, b, c), 0), "no log Z"),
    ]),
    "cd_update": (_cd, [
        (lambda *a: tuple(-t for t in _cd(*a)), "sign is flipped"),
        (lambda *a: _cd(*a, reduce="sum"), "summed over the batch"),
        (lambda *a: (_cd(*a)[0], _cd(*a)[2], _cd(*a)[1]), "b and c are swapped"),
        (lambda *a: (_cd(*a)[0].T, *_cd(*a)[1:]), "outer product"),
        (lambda vd, vm, W, b, c: _cd(vd, vm, W, b, b), "hidden bias c"),
    ]),
    "log_partition": (_log_z, [
        (lambda *a: _log_z(*a, naive_sum=True), "overflows above 709"),
        (lambda *a: _log_z(*a, naive_softplus=True), "overflows above 709"),
        (lambda *a: _log_z(*a).exp(), "returned Z itself"),
        (lambda W, b, c: torch.logsumexp(F.softplus(_hidden_states(W.shape[1], W.dtype) @ W.T + b).sum(1), 0),
         "c\\^T h is missing"),
        (lambda W, b, c: torch.logsumexp(_hidden_states(W.shape[1], W.dtype) @ c
                                         + (_hidden_states(W.shape[1], W.dtype) @ W.T + b).sum(1), 0), "softplus"),
        (lambda W, b, c: _log_z(W, b, c) - W.shape[1] * math.log(2), "averaged over the hidden states"),
    ]),
}


@pytest.mark.parametrize("name", sorted(RBM_CASES))
def test_rbm_checks(name):
    check = getattr(check_rbm, name)
    right, wrongs = RBM_CASES[name]
    _accepts(check, right)
    for fn, message in wrongs:
        _rejects(check, fn, message)


# ----------------------------------------------------------------------------- Chapter 4
from gencourse.checks import gan as check_gan  # noqa: E402


def _d_loss(real, fake):
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def _g_losses(fake):
    return (-F.softplus(fake)).mean(), F.softplus(-fake).mean()


def _gp(critic, real, fake, eps, reduce="sum", squared=False, at=None, per_sample=True, create_graph=True,
        requires_grad=True, reshape=True, power=2):
    e = eps.reshape(-1, *([1] * (real.dim() - 1))) if reshape else eps
    x_hat = e * real + (1 - e) * fake if at is None else at
    x_hat = x_hat.detach().requires_grad_(requires_grad)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum() if reduce == "sum" else scores.mean(), x_hat, create_graph=create_graph)
    norms = grad.flatten(1).norm(dim=1) if per_sample else grad.norm()
    if squared:
        norms = norms**2
    return ((norms - 1).abs() ** power).mean()


def _opt_d(p, q, xlogy_p=True, xlogy_q=True):
    d = p / (p + q)
    lp = torch.special.xlogy(p, d) if xlogy_p else p * d.log()
    lq = torch.special.xlogy(q, 1 - d) if xlogy_q else q * (1 - d).log()
    return d, lp.sum() + lq.sum()


GAN_CASES = {
    "discriminator_loss": (_d_loss, [
        (lambda r, f: F.softplus(r).mean() + F.softplus(-f).mean(), "labels are flipped"),
        (lambda r, f: -_d_loss(r, f), "sign is wrong"),
        (lambda r, f: F.softplus(-r).mean(), "only the real term"),
        (lambda r, f: F.softplus(f).mean(), "only the fake term"),
        (lambda r, f: _d_loss(r, f) / 2, "averaged the two terms"),
        (lambda r, f: F.softplus(-r).sum() + F.softplus(f).sum(), "sum over the batch"),
        (lambda r, f: -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean(),
         "real sample with logit -800.*-softplus\\(-logit\\)"),
        (lambda r, f: F.softplus(-r).mean() - torch.log(1 - torch.sigmoid(f)).mean(),
         "fake sample with logit \\+800.*-softplus\\(logit\\)"),
        (lambda r, f: F.binary_cross_entropy(torch.sigmoid(r), torch.ones_like(r))
         + F.binary_cross_entropy(torch.sigmoid(f), torch.zeros_like(f)), "clamps each log at -100"),
    ]),
    "generator_losses": (_g_losses, [
        (lambda f: _g_losses(f)[::-1], "swapped"),
        (lambda f: (F.softplus(f).mean(), _g_losses(f)[1]), "sign: the generator MINIMISES"),
        (lambda f: (_g_losses(f)[0], -F.softplus(-f).mean()), "sign: the generator wants"),
        (lambda f: (_g_losses(f)[0], F.softplus(f).mean()), "labels are flipped"),
        (lambda f: tuple(t.detach() for t in _g_losses(f)), "differentiable"),
        (lambda f: ((-F.softplus(f)).sum(), _g_losses(f)[1]), "saturating loss is not right: sum over the batch"),
        (lambda f: (_g_losses(f)[0], F.softplus(-f).sum()), "non-saturating loss is not right: sum over the batch"),
        (lambda f: _g_losses(f)[0], "return a pair"),
    ]),
    "gradient_penalty": (_gp, [
        (lambda c, r, f, e: _gp(c, f, r, e), "interpolation is reversed"),
        (lambda c, r, f, e: _gp(c, r, f, e, squared=True), "squared norm"),
        (lambda c, r, f, e: _gp(c, r, f, e, per_sample=False), "per sample"),
        (lambda c, r, f, e: _gp(c, r, f, e) * len(e), "not a sum"),
        (lambda c, r, f, e: _gp(c, r, f, e, power=1), "instead of its square"),
        (lambda c, r, f, e: _gp(c, r, f, e, reduce="mean"), "critic\\(x_hat\\).sum\\(\\)"),
        (lambda c, r, f, e: _gp(c, r, f, e, at=r), "at the real points"),
        (lambda c, r, f, e: _gp(c, r, f, e, at=f), "at the fake points"),
        (lambda c, r, f, e: _gp(c, r, f, e, create_graph=False), "create_graph=True"),
        (lambda c, r, f, e: _gp(c, r, f, e, requires_grad=False), "x_hat must require grad"),
        (lambda c, r, f, e: _gp(c, r, f, e, reshape=False), "reshape it to \\(B, 1, ..., 1\\)"),
    ]),
    "optimal_discriminator": (_opt_d, [
        (lambda p, q: (q / (p + q), _opt_d(p, q)[1]), "probability of FAKE"),
        (lambda p, q: (p / q, _opt_d(p, q)[1]), "inf or NaN.*density ratio"),
        (lambda p, q: _opt_d(p, q, xlogy_p=False), "0 log 0 must count as 0"),
        (lambda p, q: _opt_d(p, q, xlogy_q=False), "0 log 0 must count as 0"),
        (lambda p, q: (_opt_d(p, q)[0], -_opt_d(p, q)[1]), "this is L_D = -V"),
        (lambda p, q: (_opt_d(p, q)[0], torch.special.xlogy(q, _opt_d(p, q)[0]).sum()
                       + torch.special.xlogy(p, 1 - _opt_d(p, q)[0]).sum()), "(?i)weight each log by its own"),
        (lambda p, q: (_opt_d(p, q)[0], _opt_d(p, q)[1] / len(p)), "weighted \\*sum\\*"),
        (lambda p, q: _opt_d(p, q)[0], "return a pair"),
    ]),
}


@pytest.mark.parametrize("name", sorted(GAN_CASES))
def test_gan_checks(name):
    check = getattr(check_gan, name)
    right, wrongs = GAN_CASES[name]
    _accepts(check, right)
    for fn, message in wrongs:
        _rejects(check, fn, message)


# ----------------------------------------------------------------------------- Chapter 5
from gencourse.checks import img2img as check_img2img  # noqa: E402


def _cycle(a, b, g_ab, g_ba):
    return (g_ba(g_ab(a)) - a).abs().mean() + (g_ab(g_ba(b)) - b).abs().mean()


def _geometry(size, layers, pad=True, scale="before", ceil=False):
    side, field, jump = size, 1, 1
    for k, s, p in layers:
        num = side + (2 * p if pad else 0) - k
        side = -(-num // s) + 1 if ceil else num // s + 1
        if scale == "before":
            field += (k - 1) * jump
        elif scale == "own":
            field += (k - 1) * jump * s
        elif scale == "none":
            field += k - 1
        jump *= s
    if scale == "after":
        field = 1
        for k, s, p in layers:                      # the recursion r <- (r - 1) s + k, run from the first layer
            field = (field - 1) * s + k
    return side, field


def _psnr(out, target):
    return 10 * torch.log10(1 / (out - target).square().flatten(1).mean(1))


def _p2p(logits, fake, target, lam):
    return F.softplus(-logits).mean() + lam * (fake - target).abs().mean()


IMG2IMG_CASES = {
    "cycle_loss": (_cycle, [
        (lambda a, b, g, f: (f(g(a)) - a).abs().mean(), "only the A -> B -> A"),
        (lambda a, b, g, f: (g(f(b)) - b).abs().mean(), "only the B -> A -> B"),
        (lambda a, b, g, f: (g(a) - a).abs().mean() + (f(b) - b).abs().mean(), "one translation with its input"),
        (lambda a, b, g, f: (f(g(a)) - a).square().mean() + (g(f(b)) - b).square().mean(), "squared errors"),
        (lambda a, b, g, f: (f(g(a)) - a).abs().sum() + (g(f(b)) - b).abs().sum(), "summed over the elements"),
        (lambda a, b, g, f: _cycle(a, b, g, f) / 2, "averaged the two directions"),
        (lambda a, b, g, f: (g(g(a)) - a).abs().mean() + (f(f(b)) - b).abs().mean(), "G\\(G\\(a\\)\\)"),
        (lambda a, b, g, f: _cycle(a, b, f, g), "composed the wrong way round"),
        (lambda a, b, g, f: (f(g(a)) - a).mean() + (g(f(b)) - b).mean(), "absolute value is missing"),
        (lambda a, b, g, f: (f(g(a)) - a).abs().mean(1).sum(0).mean() + (g(f(b)) - b).abs().mean(),
         "not right"),
    ]),
    "patch_geometry": (_geometry, [
        (lambda n, ls: _geometry(n, ls, pad=False), "left out the padding"),
        (lambda n, ls: _geometry(n, ls, scale="none"), "without scaling by the strides"),
        (lambda n, ls: _geometry(n, ls, scale="own"), "own stride"),
        (lambda n, ls: _geometry(n, ls, scale="after"), "layers \\*after\\* it"),
        (lambda n, ls: (_geometry(n, ls)[0], _geometry(n, ls)[1] + 2 * sum(p for _, _, p in ls)),
         "does not change how many pixels"),
        (lambda n, ls: _geometry(n, ls, ceil=True), "floor\\(\\(n \\+ 2p - k\\) / s\\) \\+ 1"),
        (lambda n, ls: _geometry(n, ls)[::-1], "output is|one output sees"),
        (lambda n, ls: _geometry(n, ls)[0], "return a pair"),
    ]),
    "psnr": (_psnr, [
        (lambda o, t: 10 * torch.log(1 / (o - t).square().flatten(1).mean(1)), "natural log"),
        (lambda o, t: 20 * torch.log10(1 / (o - t).square().flatten(1).mean(1)), "20 log10 goes with"),
        (lambda o, t: -_psnr(o, t), "sign is flipped"),
        (lambda o, t: (o - t).square().flatten(1).mean(1), "this is the MSE"),
        (lambda o, t: 10 * torch.log10(1 / (o - t).abs().flatten(1).mean(1)), "mean absolute error"),
        (lambda o, t: 10 * torch.log10(255**2 / (o - t).square().flatten(1).mean(1)), "not 255"),
        (lambda o, t: 10 * torch.log10(1 / (o - t).square().flatten(1).mean(1).sqrt()), "root-mean-square"),
        (lambda o, t: 10 * torch.log10(1 / (o - t).square().sum(1).flatten(1).mean(1)), "summed over the channels"),
        (lambda o, t: (10 * torch.log10(1 / (o - t).square().mean())).expand(len(o)), "whole batch"),
        (lambda o, t: 10 * torch.log10(1 / (o - t).square().mean()), "one PSNR per image"),
    ]),
    "pix2pix_loss": (_p2p, [
        (lambda lg, f, t, lam: _p2p(lg, f, t, 1.0), "lambda is missing"),
        (lambda lg, f, t, lam: lam * F.softplus(-lg).mean() + (f - t).abs().mean(), "multiplies the adversarial"),
        (lambda lg, f, t, lam: F.softplus(-lg).mean(), "L1 term is missing"),
        (lambda lg, f, t, lam: lam * (f - t).abs().mean(), "adversarial term is missing"),
        (lambda lg, f, t, lam: F.softplus(-lg).mean() + lam * (f - t).square().mean(), "squared error"),
        (lambda lg, f, t, lam: -F.softplus(lg).mean() + lam * (f - t).abs().mean(), "saturating loss"),
        (lambda lg, f, t, lam: F.softplus(lg).mean() + lam * (f - t).abs().mean(), "target of the adversarial"),
        (lambda lg, f, t, lam: F.softplus(-lg).mean() + lam * (f - t).abs().sum(), "you summed it"),
        (lambda lg, f, t, lam: F.softplus(-lg).sum() + lam * (f - t).abs().mean(), "every logit of the grid"),
        (lambda lg, f, t, lam: -torch.log(torch.sigmoid(lg)).mean() + lam * (f - t).abs().mean(),
         "logits \\(-800, 0\\).*softplus\\(-logit\\)"),
        (lambda lg, f, t, lam: F.binary_cross_entropy(torch.sigmoid(lg), torch.ones_like(lg))
         + lam * (f - t).abs().mean(), "clamps each log at -100"),
    ]),
}


@pytest.mark.parametrize("name", sorted(IMG2IMG_CASES))
def test_img2img_checks(name):
    check = getattr(check_img2img, name)
    right, wrongs = IMG2IMG_CASES[name]
    _accepts(check, right)
    for fn, message in wrongs:
        _rejects(check, fn, message)


# ----------------------------------------------------------------------------- Chapter 6
from gencourse.checks import diffusion as check_diffusion  # noqa: E402


def _q(x0, t, noise, abar, index="rows"):
    a = abar[t][:, None] if index == "rows" else abar[t]
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def _post_mean(x0, xt, t, betas, last="one", beta_shift=0, swap=False):
    abar = torch.cumprod(1 - betas, 0)
    prev = (abar[t - 1] if t > 0 else torch.ones((), dtype=betas.dtype)) if last == "one" else abar[t - 1]
    beta = betas[t + beta_shift] if t + beta_shift >= 0 else betas[t]
    c0 = prev.sqrt() * beta / (1 - abar[t])
    ct = (1 - betas[t]).sqrt() * (1 - prev) / (1 - abar[t])
    return c0 * xt + ct * x0 if swap else c0 * x0 + ct * xt


def _ddpm(xt, eps, t, betas, z, clip=True, var="posterior", std=True, noise=True, last="one"):
    abar = torch.cumprod(1 - betas, 0)
    a_t = abar[t]
    prev = (abar[t - 1] if t > 0 else torch.ones((), dtype=betas.dtype)) if last == "one" else abar[t - 1]
    x0 = (xt - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    x0 = x0.clamp(-1, 1) if clip else x0
    mean = prev.sqrt() * betas[t] / (1 - a_t) * x0 + (1 - betas[t]).sqrt() * (1 - prev) / (1 - a_t) * xt
    v = (1 - prev) / (1 - a_t) * betas[t] if var == "posterior" else betas[t]
    return mean + (v.sqrt() if std else v) * z if noise else mean


def _ddim(xt, eps, a_t, a_p, clip=False):
    x0 = (xt - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    x0 = x0.clamp(-1, 1) if clip else x0
    return a_p.sqrt() * x0 + (1 - a_p).sqrt() * eps


DIFFUSION_CASES = {
    "alpha_bar": (lambda b: torch.cumprod(1 - b, 0), [
        (lambda b: torch.cumprod(b, 0), "cumulative product of the betas"),
        (lambda b: 1 - b, "alpha_t"),
        (lambda b: torch.cumsum(1 - b, 0), "added instead of multiplying"),
        (lambda b: torch.cat([torch.ones(1, dtype=b.dtype), torch.cumprod(1 - b, 0)[:-1]]), "off by one"),
        (lambda b: 1 - torch.cumprod(1 - b, 0), "noise variance"),
        (lambda b: torch.prod(1 - b), "has shape"),
    ]),
    "q_sample": (_q, [
        (lambda x0, t, n, a: a[t][:, None] * x0 + (1 - a[t][:, None]) * n, "both coefficients"),
        (lambda x0, t, n, a: a[t][:, None].sqrt() * x0 + (1 - a[t][:, None]) * n, "scaled by the variance"),
        (lambda x0, t, n, a: a[t][:, None] * x0 + (1 - a[t][:, None]).sqrt() * n, "scaled by alpha_bar"),
        (lambda x0, t, n, a: (1 - a[t][:, None]).sqrt() * x0 + a[t][:, None].sqrt() * n, "swapped"),
        (lambda x0, t, n, a: _q(x0, t - 1, n, torch.cat([a, torch.ones(1, dtype=a.dtype)])), "off by one"),
        (lambda x0, t, n, a: _q(x0, t[:1].expand(len(t)), n, a), "own step"),
        (lambda x0, t, n, a: _q(x0, t, n, a, index="flat"), "alpha_bar\\[t\\]\\[:, None\\]"),
    ]),
    "posterior_mean": (_post_mean, [
        (lambda *a: _post_mean(*a, swap=True), "swapped"),
        (lambda x0, xt, t, b: _post_mean(x0, xt, t, b, last="wrap"), "alpha_bar\\[-1\\]"),
        (lambda x0, xt, t, b: _post_mean(x0, xt, t, b, beta_shift=-1), "betas\\[t - 1\\]"),
        (lambda x0, xt, t, b: x0, "not right"),
    ]),
    "ddpm_step": (_ddpm, [
        (lambda *a: _ddpm(*a, clip=False), "clipped to \\[-1, 1\\]"),
        (lambda *a: _ddpm(*a, var="beta"), "sigma_t\\^2 = beta_t"),
        (lambda *a: _ddpm(*a, std=False), "standard deviation"),
        (lambda *a: _ddpm(*a, noise=False), "fresh noise"),
        (lambda *a: _ddpm(*a, last="wrap"), "alpha_bar\\[-1\\]"),
        (lambda xt, eps, t, b, z: _ddpm(xt, eps, t, b, z) if t > 0 else _ddpm(xt, eps, t, b, z, var="beta"),
         "adds noise even at the last step"),
        (lambda xt, eps, t, b, z: _ddim(xt, eps, torch.cumprod(1 - b, 0)[t],
                                        torch.cumprod(1 - b, 0)[t - 1] if t else torch.ones((), dtype=b.dtype)),
         "not right"),
    ]),
    "ddim_step": (_ddim, [
        (lambda xt, eps, a_t, a_p: a_p.sqrt() * xt + (1 - a_p).sqrt() * eps, "first predict x0"),
        (lambda xt, eps, a_t, a_p: a_p.sqrt() * (xt - (1 - a_t).sqrt() * eps) / a_t.sqrt()
         + (1 - a_t).sqrt() * eps, "noise level of the step you jump to"),
        (lambda xt, eps, a_t, a_p: a_p * (xt - (1 - a_t).sqrt() * eps) / a_t.sqrt() + (1 - a_p) * eps,
         "square roots are missing"),
        (lambda xt, eps, a_t, a_p: a_p.sqrt() * (xt + (1 - a_t).sqrt() * eps) / a_t.sqrt() + (1 - a_p).sqrt() * eps,
         "subtract the noise"),
        (lambda *a: _ddim(*a, clip=True), "without clipping"),
    ]),
    "guided_noise": (lambda c, u, s: u + s * (c - u), [
        (lambda c, u, s: c + s * (u - c), "swapped"),
        (lambda c, u, s: (1 + s) * c - s * u, "other convention"),
        (lambda c, u, s: u + (c - u), "not scaled"),
        (lambda c, u, s: s * c, "not right"),
    ]),
}


@pytest.mark.parametrize("name", sorted(DIFFUSION_CASES))
def test_diffusion_checks(name):
    check = getattr(check_diffusion, name)
    right, wrongs = DIFFUSION_CASES[name]
    _accepts(check, right)
    for fn, message in wrongs:
        _rejects(check, fn, message)


# ----------------------------------------------------------------------------- Chapter 7
from gencourse.checks import evaluation as check_evaluation  # noqa: E402


def _fd(m1, s1, m2, s2, root="eigvals", square_mean=True, factor=2.0):
    if root == "eigvals":
        tr = torch.linalg.eigvals(s1 @ s2).sqrt().real.sum()
    elif root == "real_first":                         # sqrt of the real parts: NaN where they are -1e-15
        tr = torch.linalg.eigvals(s1 @ s2).real.sqrt().sum()
    elif root == "eigh":                               # assumes a symmetric matrix
        tr = torch.linalg.eigvalsh(s1 @ s2).clamp_min(0).sqrt().sum()
    elif root == "elementwise":
        tr = (s1 @ s2).sqrt().trace()
    elif root == "product_of_roots":
        def sq(s):
            w, v = torch.linalg.eigh(s)
            return v @ torch.diag(w.clamp_min(0).sqrt()) @ v.T
        tr = (sq(s1) @ sq(s2)).trace()
    mean = ((m1 - m2) ** 2).sum() if square_mean else (m1 - m2).norm()
    return mean + s1.trace() + s2.trace() - factor * tr


def _bpd(nats, dims, levels):
    return (nats + dims * math.log(levels)) / (dims * math.log(2))


def _pr(real, fake, k, self_index=1, swap=False):
    r_real = torch.cdist(real, real).sort(1).values[:, k - 1 + self_index]
    r_fake = torch.cdist(fake, fake).sort(1).values[:, k - 1 + self_index]
    d = torch.cdist(fake, real)
    p = float((d < r_real[None, :]).any(1).double().mean())
    r = float((d < r_fake[:, None]).any(0).double().mean())
    return (r, p) if swap else (p, r)


def _is(probs, reverse=False, exp=True, exp_first=False):
    py = probs.mean(0, keepdim=True)
    kl = ((py * (py.log() - probs.log())) if reverse else (probs * (probs.log() - py.log()))).sum(1)
    if exp_first:
        return kl.exp().mean()
    return kl.mean().exp() if exp else kl.mean()


EVALUATION_CASES = {
    "frechet_distance": (_fd, [
        (lambda *a: _fd(*a, root="elementwise"), "elementwise square root|NaN.*matrix square root"),
        (lambda *a: _fd(*a, factor=1.0), "factor 2 is missing"),
        (lambda *a: _fd(*a, square_mean=False), "\\*squared\\* distance"),
        (lambda *a: _fd(*a).sqrt(), "do not take a square root"),
        (lambda *a: _fd(*a, root="product_of_roots"), "do not commute"),
        (lambda *a: _fd(*a, root="eigh"), "eigh assumes a symmetric matrix"),
        (lambda *a: _fd(*a, root="real_first"), "singular covariances.*slightly negative"),
        (lambda m1, s1, m2, s2: ((m1 - m2) ** 2).sum(), "covariance term is missing"),
    ]),
    "bits_per_dim": (_bpd, [
        (lambda n, d, lv: n / (d * math.log(2)), "dequantisation term dims \\* log\\(levels\\) is missing"),
        (lambda n, d, lv: (n + d * math.log(lv)) / d, "divide by log\\(2\\)"),
        (lambda n, d, lv: (n + d * math.log2(lv)) / (d * math.log(2)), "must be in nats"),
        (lambda n, d, lv: (n + d * math.log(lv)) / math.log(2), "divide by the number of pixels"),
        (lambda n, d, lv: (-n + d * math.log(lv)) / (d * math.log(2)), "already the \\*negative\\*"),
        (lambda n, d, lv: (n + math.log(lv)) / (d * math.log(2)), "not log\\(levels\\) alone"),
    ]),
    "precision_recall": (_pr, [
        (lambda r, f, k: _pr(r, f, k, swap=True), "swapped"),
        (lambda r, f, k: _pr(r, f, k, self_index=0), "itself \\(distance 0\\)"),
        (lambda r, f, k: _pr(r, f, k)[0], "return two numbers"),
    ]),
    "inception_score": (_is, [
        (lambda p: _is(p, reverse=True), "wrong way round"),
        (lambda p: _is(p, exp=False), "exponential of the mean KL"),
        (lambda p: _is(p, exp_first=True), "average the KLs first"),
    ]),
}


@pytest.mark.parametrize("name", sorted(EVALUATION_CASES))
def test_evaluation_checks(name):
    check = getattr(check_evaluation, name)
    right, wrongs = EVALUATION_CASES[name]
    _accepts(check, right)
    for fn, message in wrongs:
        _rejects(check, fn, message)
