"""Likelihood-based evaluation, checked on models whose exact log-likelihood is known (Chapter 7).

* :func:`bits_per_dim`: nats per image -> bits per dimension, including the
  ``log 256`` per pixel that turns a density over dequantised pixels into a
  probability of 8-bit images;
* :func:`log_mean_exp`, :func:`importance_weights`: the ELBO (mean of the log
  weights) and the IWAE bound (log of their mean);
* :func:`ais`: annealed importance sampling from the prior to the posterior
  with Hamiltonian Monte Carlo moves, step sizes tuned on pilot chains so that
  the weights stay unbiased;
* :class:`PPCA` (probabilistic PCA: ``z ~ N(0, I)``, ``x | z ~ N(Wz + b,
  sigma^2 I)``, exact ``log p(x)`` and posterior) and a Gaussian kernel density
  estimate (:func:`kde_log_prob`, :func:`kde_sample`), the reference models of
  the chapter's "likelihood versus samples" experiment.

Log-likelihoods are in **nats per image** (sum over pixels), one value per image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

from . import utils

__all__ = ["bits_per_dim", "log_mean_exp", "dequantize", "importance_weights", "ais", "sigmoid_schedule",
           "PPCA", "kde_log_prob", "kde_sample", "log_standard_normal"]


def bits_per_dim(nats_per_image: Tensor | float, dims: int, *, levels: int | None = None) -> Tensor | float:
    """Negative log-likelihood in bits per dimension from ``-log p(x)`` in nats per image.

    ``levels=None``: a discrete model, ``nats / (dims ln 2)``.  ``levels=256``:
    a *density* over pixels dequantised to [0, 1] as ``(x + u) / 256``; the
    8-bit images then have ``-log P(x) <= nats + dims * ln 256`` (change of
    variables from [0, 1] to [0, 256] plus Jensen), so that term is added.
    """
    if dims <= 0:
        raise ValueError(f"dims must be positive, got {dims}")
    offset = dims * math.log(levels) if levels is not None else 0.0
    return (nats_per_image + offset) / (dims * math.log(2))


def log_mean_exp(x: Tensor, dim: int = 0) -> Tensor:
    """``log(mean(exp(x)))`` along ``dim`` without overflow or underflow (subtracts the max first)."""
    m = x.max(dim, keepdim=True).values
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    return (m + (x - m).exp().mean(dim, keepdim=True).log()).squeeze(dim)


def dequantize(images: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """uint8 images (N, 28, 28) -> float64 (N, 784) in [0, 1]: ``(x + u) / 256`` with ``u ~ U[0, 1)``."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    x = images.reshape(len(images), -1).double()
    return (x + torch.rand(x.shape, generator=generator, dtype=torch.float64)) / 256


def importance_weights(log_joint: Callable[[Tensor], Tensor], q_mean: Tensor, q_std: Tensor, k: int, *,
                       generator: torch.Generator | None = None) -> Tensor:
    """Log importance weights ``log p(x, z) - log q(z | x)`` for ``k`` draws of a diagonal Gaussian q.

    ``q_mean``, ``q_std``: (N, d); ``log_joint(z)`` maps (k, N, d) to (k, N).
    Returns (k, N). ``.mean(0)`` estimates the ELBO; ``log_mean_exp(w, 0)`` is
    the IWAE bound with k samples; both are <= log p(x) in expectation.
    """
    eps = torch.randn((k, *q_mean.shape), generator=generator, dtype=q_mean.dtype)
    z = q_mean + q_std * eps                                               # (k, N, d)
    log_q = (-0.5 * eps**2 - q_std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    return log_joint(z) - log_q


def sigmoid_schedule(steps: int, delta: float = 4.0) -> Tensor:
    """Inverse temperatures 0 = beta_0 < ... < beta_steps = 1, dense near both ends (float64)."""
    s = torch.sigmoid(torch.linspace(-delta, delta, steps + 1, dtype=torch.float64))
    return (s - s[0]) / (s[-1] - s[0])


def _value_and_grad(fn: Callable[[Tensor], Tensor], z: Tensor) -> tuple[Tensor, Tensor]:
    """``fn(z)`` and its gradient: from ``fn.grad`` when the function carries one, else autograd."""
    if hasattr(fn, "grad"):
        return fn(z), fn.grad(z)
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        value = fn(z)
        (g,) = torch.autograd.grad(value.sum(), z)
    return value.detach(), g


def ais(log_prior: Callable[[Tensor], Tensor], log_likelihood: Callable[[Tensor], Tensor], z0: Tensor,
        betas: Tensor, *, leapfrog: int = 5, step: float = 0.1, adapt: bool = True, target_accept: float = 0.65,
        generator: torch.Generator | None = None) -> Tensor:
    """Annealed importance sampling of ``log p(x) = log int p(z) p(x | z) dz``.

    Chains start at prior samples ``z0`` (C, N, d) and move through
    ``pi_t(z) ~ p(z) p(x | z)^beta_t``; each step adds
    ``(beta_t - beta_{t-1}) log p(x | z)`` to the chain's log weight, then makes
    one HMC move (``leapfrog`` steps) that leaves ``pi_t`` invariant.
    ``log_prior`` and ``log_likelihood`` map (C, N, d) to (C, N); gradients come
    from their ``.grad`` attribute when they have one, else from autograd.

    Step sizes.  ``adapt=False``: the step size ``step`` throughout.
    ``adapt=True`` (needs C >= 2): a *pilot* chain runs next to each chain, on
    the same temperatures, starting from the previous chain's prior sample
    (``z0`` rolled by one along the chain axis: a prior draw independent of
    this chain's start).  The pilot adapts its step size (from ``step``) to its
    own accept/reject history: x0.98 after a rejection, x0.98^(-(1 - a) / a)
    after an acceptance, which settles where a fraction a = ``target_accept``
    of its moves is accepted.  The chain moves at each temperature with the
    step size its pilot has reached there, so a chain's step size never
    depends on that chain's own start or moves: every transition leaves
    ``pi_t`` invariant and each weight ``exp(log_w)`` is an **unbiased**
    estimate of ``p(x)``.  (A chain that adapted to its own history would not
    be: its step size would carry information about where it is, and the
    estimate of ``log p(x)`` comes out biased.)  The pilots' weights are
    discarded; pilots and chains move as one batch.

    Returns the log weights (C, N), nats; ``log_mean_exp(w, 0)`` is a
    stochastic lower bound of ``log p(x)`` (the log of an unbiased estimate)
    that becomes exact as the number of temperatures grows.
    """
    if adapt and z0.shape[0] < 2:
        raise ValueError("adapt=True tunes each chain's step size on a pilot started from another chain's prior "
                         f"sample, so it needs at least 2 chains (z0 has shape {tuple(z0.shape)}); "
                         "pass more chains or adapt=False")
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
    with utils.one_thread():  # thousands of tiny operations: thread hand-offs would cost more than the maths
        return _ais(log_prior, log_likelihood, z0, betas, leapfrog, step, adapt, target_accept, generator)


def _ais(log_prior, log_likelihood, z0, betas, leapfrog, step, adapt, target_accept, generator) -> Tensor:
    C = z0.shape[0]
    # rows 0..C-1: the chains whose weights are returned; rows C..2C-1 (adapt only): their pilots,
    # pilot c starting from chain c-1's prior sample
    z = torch.cat([z0, z0.roll(1, 0)]) if adapt else z0.clone()
    log_w = torch.zeros(z0.shape[:-1], dtype=z0.dtype)
    eps_pilot = torch.full(z0.shape[:-1] + (1,), step, dtype=z0.dtype)   # (C, N, 1)
    # multiplicative steps up/down whose equilibrium acceptance rate is target_accept
    down = 0.98
    up = down ** (-(1 - target_accept) / target_accept)
    for b_prev, b in zip(betas[:-1].tolist(), betas[1:].tolist()):
        ll = log_likelihood(z)
        log_w += (b - b_prev) * ll[:C]

        def target(v, b=b):                                               # log pi_t(v) up to a constant
            (lp, gp), (ll, gl) = _value_and_grad(log_prior, v), _value_and_grad(log_likelihood, v)
            return lp + b * ll, gp + b * gl

        eps = torch.cat([eps_pilot, eps_pilot]) if adapt else eps_pilot  # a chain moves with its pilot's step
        logp, g = target(z)
        p0 = utils.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        zn, p = z, p0 + 0.5 * eps * g                                     # leapfrog: half step in momentum
        for i in range(leapfrog):
            zn = zn + eps * p
            logp_n, g_n = target(zn)
            p = p + (eps if i < leapfrog - 1 else 0.5 * eps) * g_n
        log_accept = logp_n - 0.5 * (p**2).sum(-1) - (logp - 0.5 * (p0**2).sum(-1))
        accept = utils.rand(log_accept.shape, generator=generator, device=z.device, dtype=z.dtype).log() < log_accept
        z = torch.where(accept[..., None], zn, z)
        if adapt:                                                         # only the pilots learn from their moves
            eps_pilot = eps_pilot * torch.where(accept[C:, ..., None], up, down)
    return log_w


@dataclass
class PPCA:
    """Probabilistic PCA: ``z ~ N(0, I_d)``, ``x | z ~ N(W z + b, sigma2 I_D)``; W (D, d), b (D,)."""

    W: Tensor
    b: Tensor
    sigma2: float

    @classmethod
    def fit(cls, x: Tensor, d: int | Sequence[int]) -> "PPCA | dict[int, PPCA]":
        """Maximum likelihood (Tipping & Bishop): top-d principal directions of ``x`` (N, D), with
        ``W = U (L - sigma2)^{1/2}`` and ``sigma2`` the mean of the discarded eigenvalues.
        A list of ``d`` gives ``{d: PPCA}`` from one eigendecomposition."""
        x = x.double()
        b = x.mean(0)
        cov = torch.cov((x - b).T, correction=0)
        evals, evecs = torch.linalg.eigh(cov)
        evals, evecs = evals.flip(0), evecs.flip(1)                        # largest first

        def one(k: int) -> "PPCA":
            if not 0 < k < len(evals):
                raise ValueError(f"latent dimension must be in 1..{len(evals) - 1}, got {k}")
            sigma2 = float(evals[k:].mean())
            return cls(evecs[:, :k] * (evals[:k] - sigma2).clamp_min(0).sqrt(), b, sigma2)
        return one(d) if isinstance(d, int) else {k: one(k) for k in d}

    @property
    def dist(self) -> torch.distributions.LowRankMultivariateNormal:
        """The exact marginal ``p(x) = N(b, W W^T + sigma2 I)``."""
        return torch.distributions.LowRankMultivariateNormal(
            self.b, self.W, torch.full_like(self.b, self.sigma2))

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)``, nats per image, (N,)."""
        return self.dist.log_prob(x.double())

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Exact ``p(z | x) = N(M^{-1} W^T (x - b), sigma2 M^{-1})``, ``M = W^T W + sigma2 I``: (mean (N, d), cov (d, d))."""
        d = self.W.shape[1]
        M = self.W.T @ self.W + self.sigma2 * torch.eye(d, dtype=self.W.dtype)
        Minv = torch.linalg.inv(M)
        return (x.double() - self.b) @ self.W @ Minv.T, self.sigma2 * Minv

    def log_likelihood_fn(self, x: Tensor) -> Callable[[Tensor], Tensor]:
        """``z (..., N, d) -> log p(x | z)`` (..., N) for the images ``x`` (N, D), from the expanded square
        ``|x - b - W z|^2 = |x - b|^2 - 2 z.W^T(x - b) + z^T W^T W z`` (cost O(d^2) per z, not O(D d))."""
        r = x.double() - self.b
        rr, Wr, WW = (r**2).sum(1), r @ self.W, self.W.T @ self.W          # (N,), (N, d), (d, d)
        D = r.shape[1]
        const = -0.5 * D * math.log(2 * math.pi * self.sigma2)

        def log_lik(z: Tensor) -> Tensor:
            sq = rr - 2 * (z * Wr).sum(-1) + ((z @ WW) * z).sum(-1)
            return const - 0.5 * sq / self.sigma2
        log_lik.grad = lambda z: (Wr - z @ WW) / self.sigma2             # d/dz, same shape as z
        return log_lik

    def sample(self, n: int, *, generator: torch.Generator | None = None, noise: bool = True) -> Tensor:
        """``n`` samples (n, D) float64: ``W z + b`` plus (if ``noise``) the observation noise."""
        z = torch.randn(n, self.W.shape[1], generator=generator, dtype=torch.float64)
        x = z @ self.W.T + self.b
        if noise:
            x = x + math.sqrt(self.sigma2) * torch.randn(x.shape, generator=generator, dtype=torch.float64)
        return x


def log_standard_normal(z: Tensor) -> Tensor:
    """``log N(z; 0, I)`` summed over the last dimension (its gradient ``-z`` is ``.grad``)."""
    return (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(-1)


log_standard_normal.grad = lambda z: -z


def kde_log_prob(x: Tensor, centres: Tensor, h: float | Sequence[float], *, chunk: int = 500) -> Tensor:
    """Gaussian kernel density ``log (1/N) sum_i N(x; c_i, h^2 I)`` of ``x`` (M, D) with ``centres`` (N, D):
    (M,) for one bandwidth ``h``, (H, M) for a list of H bandwidths (the distances are computed once)."""
    x, centres = x.double(), centres.double()
    hs = torch.tensor([h] if isinstance(h, (int, float)) else list(h), dtype=torch.float64)
    D, N = x.shape[1], centres.shape[0]
    out = []
    for i in range(0, len(x), chunk):
        sq = torch.cdist(x[i:i + chunk], centres) ** 2                     # (chunk, N)
        out.append(torch.logsumexp(-0.5 * sq[None] / hs[:, None, None] ** 2, 2))  # (H, chunk)
    lp = torch.cat(out, 1) - math.log(N) - 0.5 * D * torch.log(2 * math.pi * hs[:, None] ** 2)
    return lp[0] if isinstance(h, (int, float)) else lp


def kde_sample(centres: Tensor, h: float, n: int, *, generator: torch.Generator | None = None) -> Tensor:
    """``n`` samples of the kernel density: a random centre plus ``N(0, h^2 I)`` noise, (n, D) float64."""
    idx = torch.randint(len(centres), (n,), generator=generator)
    return centres[idx].double() + h * torch.randn((n, centres.shape[1]), generator=generator, dtype=torch.float64)
