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
