"""The partition function of an RBM (Chapter 3): exact by enumerating the smaller layer (toy models), and
annealed importance sampling (Neal 2001; for RBMs Salakhutdinov & Murray 2008) with a standard error.
Log-likelihoods in nats per image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F_
from torch import Tensor

from .model import RBM, bernoulli, free_energy


# ---------------------------------------------------------------------------
# Exact partition function by enumeration (toy models)
# ---------------------------------------------------------------------------
def all_binary_states(n: int, start: int = 0, stop: int | None = None, *, dtype=torch.float64,
                      device=None) -> Tensor:
    """Rows ``start..stop-1`` of the 2^n binary vectors of length n (row i = the bits of i); (rows, n)."""
    stop = 2 ** n if stop is None else stop
    idx = torch.arange(start, stop, device=device)
    return ((idx[:, None] >> torch.arange(n, device=device)) & 1).to(dtype)


def log_partition_exact(rbm: RBM, *, max_units: int = 24, chunk: int = 2 ** 15) -> float:
    """log Z by summing over every state of the **smaller** layer (2^min(D, K) terms), in float64.

    Summing out the larger layer analytically:
    log Z = logsumexp_h [c^T h + sum_i softplus(b_i + W_i: h)]  (if K <= D),
    else    logsumexp_v [-F(v)].  Refuses layers larger than ``max_units``.
    """
    W, b, c = (p.detach().double() for p in (rbm.W, rbm.b, rbm.c))
    D, K = W.shape
    if min(D, K) > max_units:
        raise ValueError(f"exact log Z needs 2^{min(D, K)} terms; only layers of up to {max_units} units "
                         "are enumerated. Use ais_log_partition for larger models.")
    if K <= D:
        n, term = K, lambda h: h @ c + F_.softplus(h @ W.T + b).sum(-1)     # -F(h), summing out v
    else:
        n, term = D, lambda v: -free_energy(v, W, b, c)                      # -F(v), summing out h
    parts = [torch.logsumexp(term(all_binary_states(n, s, min(s + chunk, 2 ** n), device=W.device)), 0)
             for s in range(0, 2 ** n, chunk)]
    return float(torch.logsumexp(torch.stack(parts), 0))


def log_likelihood_exact(rbm: RBM, v: Tensor, log_z: float | None = None) -> Tensor:
    """log p(v) = -F(v) - log Z for each row, (B, D) -> (B,) float64, nats per image."""
    rbm._check(v, rbm.n_visible, "log_likelihood_exact: v", binary=True)  # p(v) is defined on {0, 1}^D only
    log_z = log_partition_exact(rbm) if log_z is None else log_z
    with torch.no_grad():
        return -free_energy(v.double(), rbm.W.double(), rbm.b.double(), rbm.c.double()) - log_z


# ---------------------------------------------------------------------------
# Annealed importance sampling (Neal 2001; for RBMs Salakhutdinov & Murray 2008)
# ---------------------------------------------------------------------------
def base_rate_bias(v: Tensor, pseudocount: float = 1.0) -> Tensor:
    """Visible biases of the AIS base model: logit of the smoothed pixel means of ``v`` (N, D) -> (D,)."""
    p = (v.double().sum(0) + pseudocount) / (v.shape[0] + 2 * pseudocount)
    return (p.log() - (-p).log1p()).float()


def beta_schedule(n: int = 14_500) -> Tensor:
    """``n + 1`` inverse temperatures from 0 to 1, spaced like Salakhutdinov & Murray (2008):
    500/14500 of the steps on [0, 0.5], 4000/14500 on [0.5, 0.9], 10000/14500 on [0.9, 1]."""
    if n < 3:
        raise ValueError(f"need at least 3 intermediate distributions, got {n}")
    n1, n2 = max(1, round(n * 500 / 14500)), max(1, round(n * 4000 / 14500))
    n3 = n - n1 - n2
    return torch.cat([torch.linspace(0, 0.5, n1 + 1, dtype=torch.float64)[:-1],
                      torch.linspace(0.5, 0.9, n2 + 1, dtype=torch.float64)[:-1],
                      torch.linspace(0.9, 1.0, n3 + 1, dtype=torch.float64)])


@dataclass
class AISResult:
    """An AIS estimate of log Z, nats.

    ``log_z``: log of the mean importance weight times Z_base (an unbiased estimate
    of Z; its log is biased low on average, so log-likelihoods come out slightly
    optimistic). ``stderr``: standard error of ``log_z`` by the delta method,
    std(w) / (mean(w) sqrt(M)). ``interval``: (log(Z - 3 se_Z), log(Z + 3 se_Z)),
    as reported by Salakhutdinov & Murray.
    """

    log_z: float
    stderr: float
    log_z_base: float
    log_weights: Tensor = field(repr=False)
    n_chains: int = 0
    n_betas: int = 0

    @property
    def interval(self) -> tuple[float, float]:
        r = 3 * self.stderr  # = 3 se_Z / Z
        low = self.log_z + math.log(1 - r) if r < 1 else -math.inf
        return low, self.log_z + math.log(1 + r)

    def log_likelihood(self, rbm: RBM, v: Tensor) -> Tensor:
        """Estimated log p(v) = -F(v) - log Z per row, nats per image (float64, (B,))."""
        with torch.no_grad():
            return -rbm.free_energy(v).double() - self.log_z


def ais_log_partition(rbm: RBM, n_chains: int = 100, betas: Tensor | int = 14_500, *,
                      base_bias: Tensor | None = None, generator: torch.Generator | None = None,
                      batch: int | None = None) -> AISResult:
    """Estimate log Z of ``rbm`` by annealed importance sampling.

    Base model A: the RBM with W = 0, c = 0 and visible biases ``base_bias`` (default
    zeros; :func:`base_rate_bias` of the training data is much better), whose
    log Z_A = sum_i softplus(bA_i) + K log 2 is known.  Intermediate distributions
    p_beta(v) ∝ exp((1-beta) bA^T v + beta b^T v) prod_j (1 + exp(beta (c_j + v^T W_:j)))
    go from A (beta=0) to the RBM (beta=1); each transition is one Gibbs sweep that
    leaves p_beta invariant.  ``betas`` is a schedule (increasing, 0 to 1) or a
    number of steps for :func:`beta_schedule`.  ``n_chains`` independent runs give
    the weights; ``batch`` runs them in groups to bound memory.
    """
    W, b, c = (p.detach() for p in (rbm.W, rbm.b, rbm.c))
    dev = W.device
    bA = torch.zeros_like(b) if base_bias is None else base_bias.to(dev, b.dtype)
    betas = beta_schedule(betas) if isinstance(betas, int) else torch.as_tensor(betas, dtype=torch.float64)
    if betas[0] != 0 or betas[-1] != 1 or (betas.diff() <= 0).any():
        raise ValueError("betas must increase strictly from 0 to 1")
    log_z_base = float(F_.softplus(bA.double()).sum() + rbm.n_hidden * math.log(2))
    bs = betas.tolist()
    log_w = []
    for start in range(0, n_chains, batch or n_chains):
        m = min(batch or n_chains, n_chains - start)
        v = bernoulli(torch.sigmoid(bA).expand(m, -1).contiguous(), generator)   # v_0 ~ p_A, (m, D)
        lw = torch.zeros(m, dtype=torch.float64, device=dev)
        for k in range(1, len(bs)):
            a = v @ W + c                                                        # (m, K)
            a64 = a.double()
            # log p*_k(v) - log p*_{k-1}(v), the weight update (both unnormalised)
            lw += (bs[k] - bs[k - 1]) * (v @ (b - bA)).double() \
                + (F_.softplus(bs[k] * a64) - F_.softplus(bs[k - 1] * a64)).sum(-1)
            if k < len(bs) - 1:  # Gibbs sweep at beta_k: h ~ p_k(h|v), v ~ p_k(v|h)
                h = bernoulli(torch.sigmoid(bs[k] * a), generator)
                v = bernoulli(torch.sigmoid((1 - bs[k]) * bA + bs[k] * (h @ W.T + b)), generator)
        log_w.append(lw)
    log_w = torch.cat(log_w).cpu()
    M = log_w.numel()
    log_mean_w = float(torch.logsumexp(log_w, 0) - math.log(M))
    w = (log_w - log_w.max()).exp()
    stderr = float(w.std(unbiased=True) / (w.mean() * math.sqrt(M))) if M > 1 else math.inf
    return AISResult(log_z=log_z_base + log_mean_w, stderr=stderr, log_z_base=log_z_base,
                     log_weights=log_w, n_chains=M, n_betas=len(bs) - 1)
