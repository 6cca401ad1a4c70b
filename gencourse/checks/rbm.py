"""Checks for the Chapter 3 exercises (restricted Boltzmann machines).

Conventions (the corrected ones of the errata): E(v, h) = -v^T W h - b^T v - c^T h
with W (D, K), visible bias b (D,), hidden bias c (K,).  Every reference here is
computed from the energy by brute-force enumeration or by autograd, not with
``gencourse.rbm``.
"""
from __future__ import annotations

import itertools

import torch

from . import CheckFailed, expect, expect_close, expect_tensor, passed, run

__all__ = ["conditionals", "free_energy", "cd_update", "log_partition"]


def _params(D: int, K: int, seed: int, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    W = scale * torch.randn(D, K, generator=g, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    c = torch.randn(K, generator=g, dtype=torch.float64)
    return W, b, c, g


def _states(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def _energy(v, h, W, b, c):
    """E for every pair: v (N, D), h (M, K) -> (N, M)."""
    return -(v @ W @ h.T) - (v @ b)[:, None] - (h @ c)[None, :]


def _as_float64(x, what: str) -> torch.Tensor:
    """``x`` as a float64 tensor, without expect_tensor's finiteness test (the caller explains a NaN itself)."""
    if x is None:
        raise CheckFailed(f"{what} is None: did you forget to `return` it?")
    try:
        return torch.as_tensor(x).detach().to(torch.float64)
    except Exception:
        raise CheckFailed(f"{what} should be a tensor (or array), got {type(x).__name__}") from None


def _as_tuple(out, n: int, what: str):
    if not isinstance(out, (tuple, list)) or len(out) != n:
        raise CheckFailed(f"{what} should return a tuple of {n} tensors, got {type(out).__name__}"
                          + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
    return out


def conditionals(fn) -> bool:
    """``fn(v (B, D), h (B, K), W, b, c) -> (p(h=1|v) (B, K), p(v=1|h) (B, D))``."""
    sig = torch.sigmoid
    for D, K, seed in [(5, 5, 0), (7, 3, 1)]:  # D == K first, so swapped names still run and can be named
        W, b, c, g = _params(D, K, seed)
        v = torch.bernoulli(torch.full((4, D), 0.5, dtype=torch.float64), generator=g)
        h = torch.bernoulli(torch.full((4, K), 0.5, dtype=torch.float64), generator=g)
        # reference from the joint: p(h_j=1 | v) = sum over states with h_j = 1 of exp(-E), normalised
        H, V = _states(K), _states(D)
        pj_h = torch.softmax(-_energy(v, H, W, b, c), 1)              # p(h | v) for every h, (4, 2^K)
        ref_h = pj_h @ H                                               # E[h | v] = p(h=1 | v), (4, K)
        pj_v = torch.softmax(-_energy(V, h, W, b, c), 0)              # p(v | h), (2^D, 4)
        ref_v = pj_v.T @ V                                             # (4, D)
        ph, pv = _as_tuple(run(fn, v.clone(), h.clone(), W.clone(), b.clone(), c.clone(), name="conditionals"),
                           2, "conditionals")
        for t, what in ((ph, "p(h = 1 | v)"), (pv, "p(v = 1 | h)")):
            tt = expect_tensor(t, what=what)
            expect(not ((tt == 0) | (tt == 1)).all(),
                   f"{what} contains only 0s and 1s: those are sampled states; return the probabilities "
                   "(the sigmoids), not torch.bernoulli of them")
        if D == K:
            expect(not (torch.allclose(expect_tensor(ph), ref_v) and torch.allclose(expect_tensor(pv), ref_h)),
                   "the pair is in the wrong order: return (p(h = 1 | v), p(v = 1 | h)), hidden first")
        hints_h = {"p(h | v) must use the hidden bias c, and p(v | h) the visible bias b: the bias names are "
                   "swapped (a known erratum of the lecture slides)": sig(v @ W + b[:K]) if D == K else None,
                   "you forgot the sigmoid: return probabilities, not the activations c + v^T W": v @ W + c,
                   "the sign is flipped: the minus signs of E cancel, p(h_j=1|v) = sigmoid(+(c_j + v^T W_:j))":
                       sig(-(v @ W + c)),
                   "W is used the wrong way round: p(h|v) needs v @ W (shape (B, K))":
                       sig(v @ W.T + c) if D == K else None}
        hints_v = {"p(h | v) must use the hidden bias c, and p(v | h) the visible bias b: the bias names are "
                   "swapped (a known erratum of the lecture slides)": sig(h @ W.T + c) if D == K else None,
                   "you forgot the sigmoid: return probabilities, not the activations b + W h": h @ W.T + b,
                   "the sign is flipped: p(v_i=1|h) = sigmoid(+(b_i + W_i: h))": sig(-(h @ W.T + b)),
                   "W is used the wrong way round: p(v|h) needs h @ W.T (W_i: h for each visible unit i)":
                       sig(h @ W + b) if D == K else None}
        expect_close(ph, ref_h, what=f"p(h = 1 | v) (D={D}, K={K})",
                     hints={k: t for k, t in hints_h.items() if t is not None})
        expect_close(pv, ref_v, what=f"p(v = 1 | h) (D={D}, K={K})",
                     hints={k: t for k, t in hints_v.items() if t is not None})
    return passed("both conditionals factorise over units and match the enumerated joint distribution.")


def free_energy(fn) -> bool:
    """``fn(v (B, D), W, b, c) -> F(v)`` of shape (B,), F(v) = -log sum_h exp(-E(v, h)).

    Two models: a mild one (D = K = 6, so swapped bias names still run and can be named) and one with large
    weights, whose hidden activations c_j + v^T W_:j reach about +-1000 (exp overflows above 709), as the
    activations of a trained RBM can be large: log(1 + exp(a)) must be computed stably (softplus)."""
    sp = torch.nn.functional.softplus
    for D, K, seed, scale in [(6, 6, 2, 1.0), (8, 5, 8, 300.0)]:
        W, b, c, g = _params(D, K, seed, scale)
        v = torch.bernoulli(torch.full((5, D), 0.5, dtype=torch.float64), generator=g)
        ref = -torch.logsumexp(-_energy(v, _states(K), W, b, c), 1)     # sum over all 2^K hidden states
        got = run(fn, v.clone(), W.clone(), b.clone(), c.clone(), name="free_energy")
        what = f"F(v) (D={D}, K={K}, weights of scale {scale:g})"
        expect(scale == 1.0 or bool(torch.isfinite(_as_float64(got, what)).all()),
               f"{what} is inf or NaN: the activations c_j + v^T W_:j of this model reach about +-1000, and exp() "
               "overflows above 709, so log(1 + exp(a)) is log(inf). Use the stable softplus, F.softplus(a) "
               "(it returns a itself for large a)")
        hints = {
            "the sign is flipped: F(v) = -log sum_h exp(-E), so F is low for likely v": -ref,
            "the visible-bias term -b^T v is missing": -sp(v @ W + c).sum(1),
            "summing out h_j gives log(1 + exp(c_j + v^T W_:j)) (softplus), not c_j + v^T W_:j":
                -(v @ b) - (v @ W + c).sum(1),
            "F(v) has no log Z in it: do not normalise over the images of the batch": ref + torch.logsumexp(-ref, 0),
        }
        if D == K:
            hints["the hidden-bias/visible-bias names are swapped (b belongs to v, c to h)"] = \
                -(v @ c) - sp(v @ W + b).sum(1)
        expect_close(got, ref, what=what, hints=hints)
    return passed("F(v) = -b^T v - sum_j softplus(c_j + v^T W_:j) equals -log sum_h exp(-E(v, h)), "
                  "also where the activations are far beyond exp()'s range.")


def cd_update(fn) -> bool:
    """``fn(v_data (B, D), v_model (M, D), W, b, c) -> (dW, db, dc)``: the CD estimate of the gradient of
    the average log-likelihood, <v p(h|v)^T>_data - <v p(h|v)^T>_model (and likewise for b and c)."""
    W, b, c, g = _params(6, 6, 3, scale=0.5)
    v_data = torch.bernoulli(torch.full((8, 6), 0.3, dtype=torch.float64), generator=g)
    v_model = torch.bernoulli(torch.full((5, 6), 0.6, dtype=torch.float64), generator=g)  # a different count on purpose
    params = [W.clone().requires_grad_(), b.clone().requires_grad_(), c.clone().requires_grad_()]

    def F(v, W, b, c):  # written from the energy by enumeration, so no formula is shared with the answer
        return -torch.logsumexp(-_energy(v, _states(6), W, b, c), 1)

    loss = F(v_data, *params).mean() - F(v_model, *params).mean()
    ref = [-gr for gr in torch.autograd.grad(loss, params)]          # ascent direction of the log-likelihood
    sig = torch.sigmoid
    ph_d, ph_m = sig(v_data @ W + c), sig(v_model @ W + c)
    out = _as_tuple(run(fn, v_data.clone(), v_model.clone(), W.clone(), b.clone(), c.clone(), name="cd_update"),
                    3, "cd_update")
    wrong_sum = {"W": v_data.T @ ph_d - v_model.T @ ph_m, "b": v_data.sum(0) - v_model.sum(0),
                 "c": ph_d.sum(0) - ph_m.sum(0)}
    wrong_bias = sig(v_data @ W + b), sig(v_model @ W + b)
    wrong_bias = {"W": v_data.T @ wrong_bias[0] / 8 - v_model.T @ wrong_bias[1] / 5,
                  "b": ref[1], "c": wrong_bias[0].mean(0) - wrong_bias[1].mean(0)}
    if all(torch.is_tensor(o) for o in out):
        db_, dc_ = (o.detach().double() for o in out[1:])
        expect(not (db_.shape == dc_.shape and torch.allclose(db_, ref[2]) and torch.allclose(dc_, ref[1])),
               "the updates of b and c are swapped: return (dW, db, dc), the visible bias b second")
    for name, got, want in zip("Wbc", out, ref):
        hints = {"the sign is flipped: that is the gradient of the loss F(data) - F(model); the log-likelihood "
                 "gradient is the data term minus the model term": -want,
                 "you summed over the batch; average each term over its own batch (data and model batches "
                 "can differ in size)": wrong_sum[name]}
        if name != "b":
            hints["p(h|v) must use the hidden bias c (the bias names are swapped)"] = wrong_bias[name]
        if name == "W":
            hints["each term is an outer product v p(h|v)^T of shape (D, K): v.T @ p_h, not p_h.T @ v"] = want.T
        expect_close(got, want, what=f"the update of {name}", hints=hints)
    return passed("the classic CD update is exactly minus the autograd gradient of mean F(v_data) - mean F(v_model).")


def log_partition(fn) -> bool:
    """``fn(W (D, K), b, c) -> log Z`` (a float or 0-d tensor), exact, for small K."""
    results = []
    for D, K, seed, scale in [(9, 4, 4, 1.0), (10, 6, 5, 3.0), (8, 5, 6, 150.0)]:
        W, b, c, _ = _params(D, K, seed, scale)
        ref = torch.logsumexp(-_energy(_states(D), _states(K), W, b, c).flatten(), 0)
        got = run(fn, W.clone(), b.clone(), c.clone(), name="log_partition")
        try:
            got = torch.as_tensor(got, dtype=torch.float64).reshape(())
        except Exception:
            raise CheckFailed(f"log Z should be one number (a float or a 0-d tensor), got {got!r:.80}") from None
        H = _states(K)
        sp = torch.nn.functional.softplus
        expect(torch.isfinite(got), f"log Z is {float(got)} for D={D}, K={K}, scale={scale}: here log Z is about "
               f"{float(ref):.0f}, and exp() overflows above 709. Stay in log space: torch.logsumexp over the hidden "
               "states instead of summing exp(), and F.softplus(a) for log(1 + exp(a)), whose a reaches 736 here")
        expect_close(got, ref, what=f"log Z (D={D}, K={K})", rtol=1e-7, atol=1e-6, hints={
            "you returned Z itself; return its logarithm": ref.exp(),
            "the hidden-bias term c^T h is missing": torch.logsumexp(sp(H @ W.T + b).sum(1), 0),
            "summing out v gives sum_i softplus(b_i + W_i: h), not sum_i (b_i + W_i: h)":
                torch.logsumexp(H @ c + (H @ W.T + b).sum(1), 0),
            "you averaged over the hidden states instead of summing (logsumexp, not a mean)":
                torch.logsumexp(H @ c + sp(H @ W.T + b).sum(1), 0) - K * torch.log(torch.tensor(2.0)).double(),
        })
        results.append(float(ref))
    return passed(f"log Z by enumerating 2^K hidden states matches the sum over all (v, h) pairs "
                  f"(log Z = {results[0]:.3f}, {results[1]:.3f} and {results[2]:.1f} for the three test models; "
                  "the last one's Z is far beyond floating point, its log is not).")
