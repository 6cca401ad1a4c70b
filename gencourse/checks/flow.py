"""Checks for the Chapter 8 exercises (flow matching).

Convention of the chapter: ``t = 0`` is the noise ``x0``, ``t = 1`` the data ``x1``.  Every
reference is written out from the formula or found by brute force here, not taken from
:mod:`gencourse.flow`, so a bug there cannot hide one here.
"""
from __future__ import annotations

import itertools
import math

import torch

from . import CheckFailed, expect, expect_close, expect_tensor, passed, run, seeded

__all__ = ["interpolant", "euler_sample", "eps_to_velocity", "ot_pairing"]

_F64 = torch.float64


def interpolant(fn) -> bool:
    """``fn(x0 (B, D), x1 (B, D), t (B,)) -> (x_t, u)``: the linear path and its regression target."""
    g = seeded(80)
    x0, x1 = torch.randn(5, 4, generator=g, dtype=_F64), torch.randn(5, 4, generator=g, dtype=_F64) + 2
    t = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0], dtype=_F64)  # both ends and both sides of 1/2
    out = run(fn, x0.clone(), x1.clone(), t.clone(), name="interpolant")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("return a pair (x_t, u): the point on the path and the target velocity")
    xt, u = out
    tt = t[:, None]
    expect_close(xt, (1 - tt) * x0 + tt * x1, what="x_t", hints={
        "the ends are swapped: at t = 0 the path must be at the noise x0, at t = 1 at the data x1":
            tt * x0 + (1 - tt) * x1,
        "x_t = (1 - t) x0 + t x1 has no square roots (that is Chapter 6's variance-preserving path)":
            (1 - tt).sqrt() * x0 + tt.sqrt() * x1,
    })
    expect_close(u, (x1 - x0).expand_as(x0), what="u", hints={
        "the sign is flipped: the path moves from x0 to x1, so dx_t/dt = x1 - x0": x0 - x1,
        "u is the velocity of the path, dx_t/dt = x1 - x0, not the point x_t": (1 - tt) * x0 + tt * x1,
        "u does not depend on t on the linear path: it is x1 - x0 for every t": tt * (x1 - x0),
    })
    return passed("x_t moves from the noise (t = 0) to the data (t = 1) at the constant velocity x1 - x0.")


def _euler_ref(velocity, x, steps, t_of=lambda i, h: i * h):
    h = 1.0 / steps
    for i in range(steps):
        x = x + h * velocity(x, torch.full((x.shape[0],), t_of(i, h), dtype=x.dtype))
    return x


def euler_sample(fn) -> bool:
    """``fn(velocity, x0 (B, D), steps) -> x1``: Euler's method from t = 0 to t = 1 with ``steps``
    equal steps; ``velocity(x (B, D), t (B,))``."""
    # a field that depends on both x and t, so that the time grid and the order of updates matter
    def velocity(x, t):
        return torch.cos(3 * t)[:, None] * x + t[:, None] ** 2

    calls = []

    def counted(x, t):
        t = torch.as_tensor(t, dtype=_F64)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        calls.append(t.reshape(-1)[0].item())
        return velocity(x, t)

    x0 = torch.randn(3, 2, generator=seeded(81), dtype=_F64)
    for steps in (4, 1):
        calls.clear()
        got = run(fn, counted, x0.clone(), steps, name="euler_sample")
        expect_tensor(got, (3, 2), what="x1")
        expected = _euler_ref(velocity, x0, steps)
        expect_close(got, expected, what=f"x1 after {steps} Euler step(s)", hints={
            "the step size is 1/steps: steps equal steps cover t = 0 .. 1": _euler_ref(
                velocity, x0, steps, t_of=lambda i, h: i / max(steps - 1, 1)) if steps > 1 else None,
            "each step uses the velocity at the start of the step, t_i = i/steps; you used the end, (i+1)/steps":
                _euler_ref(velocity, x0, steps, t_of=lambda i, h: (i + 1) * h),
            "time runs backwards: integrate from t = 0 (noise) to t = 1 (data)":
                _euler_ref(velocity, x0, steps, t_of=lambda i, h: 1 - i * h),
        } if steps > 1 else {
            "each step uses the velocity at the start of the step, t_0 = 0; you used t = 1":
                _euler_ref(velocity, x0, steps, t_of=lambda i, h: 1.0),
        })
        expect(len(calls) == steps, f"{steps} Euler steps need {steps} velocity evaluations; yours made {len(calls)}")
    exact_t1 = math.exp(math.sin(3) / 3)  # dx/dt = cos(3t) x: x(1) = x(0) exp(sin(3) / 3)
    err = abs(run(fn, lambda x, t: torch.cos(3 * torch.as_tensor(t, dtype=_F64)).reshape(-1, 1) * x,
                  torch.ones(1, 1, dtype=_F64), 100, name="euler_sample").item() - exact_t1)
    return passed(f"one velocity evaluation per step; on dx/dt = cos(3t) x, 100 steps end {err:.1e} from the "
                  "exact solution (Euler's error shrinks like 1/steps).")


def eps_to_velocity(fn) -> bool:
    """``fn(x_t (B, D), eps (B, D), t (B,)) -> v``: the velocity implied by a noise prediction on
    ``x_t = (1 - t) eps + t x1`` (so ``v = x1 - eps``)."""
    g = seeded(82)
    x1, eps = torch.rand(4, 6, generator=g, dtype=_F64) * 2 - 1, torch.randn(4, 6, generator=g, dtype=_F64)
    t = torch.tensor([0.05, 0.3, 0.7, 0.99], dtype=_F64)  # near both ends, where the wrong divisor blows up
    tt = t[:, None]
    xt = (1 - tt) * eps + tt * x1
    got = run(fn, xt.clone(), eps.clone(), t.clone(), name="eps_to_velocity")
    expect_close(got, x1 - eps, what="v", rtol=1e-6, atol=1e-8, hints={
        "the sign is flipped: v = x1 - eps points from the noise to the data": eps - x1,
        "divide by t, not by 1 - t: x_t - eps = t (x1 - eps)": (xt - eps) / (1 - tt),
        "you returned the data estimate x1 = (x_t - (1 - t) eps) / t; the velocity is x1 - eps": x1,
        "v = (x_t - eps) / t: you forgot to divide by t": xt - eps,
    })
    return passed("v = (x_t - eps) / t: a noise prediction, a data prediction and a velocity say the same thing "
                  "on the same x_t (away from t = 0).")


def ot_pairing(fn) -> bool:
    """``fn(x0 (B, D), x1 (B, D)) -> perm (B,)`` (integers) such that ``x0[perm[i]]`` is paired with
    ``x1[i]`` and the total squared distance is the smallest over all permutations."""
    g = seeded(83)
    for trial in range(6):
        B = 6 if trial < 5 else 2
        x0, x1 = torch.randn(B, 3, generator=g, dtype=_F64), torch.randn(B, 3, generator=g, dtype=_F64)
        cost = torch.cdist(x1, x0) ** 2                                     # cost[i, j] = |x1_i - x0_j|^2
        total = lambda p: float(sum(cost[i, p[i]] for i in range(B)))  # noqa: E731
        best = min(itertools.permutations(range(B)), key=total)
        got = run(fn, x0.clone(), x1.clone(), name="ot_pairing")
        try:
            perm = [int(v) for v in torch.as_tensor(got).reshape(-1).tolist()]
        except Exception:
            raise CheckFailed(f"return a tensor of {B} integer indices, got {type(got).__name__}") from None
        expect(len(perm) == B, f"return one index per data point ({B}), got {len(perm)}")
        expect(sorted(perm) == list(range(B)),
               f"{perm} is not a permutation: each noise sample must be used exactly once (a nearest-neighbour "
               "match per row can reuse the same noise)")
        inverse = [perm.index(i) for i in range(B)]
        if abs(total(perm) - total(best)) > 1e-9:
            worst = max(itertools.permutations(range(B)), key=total)
            if abs(total(perm) - total(worst)) < 1e-9:
                raise CheckFailed("this pairing maximises the total squared distance: minimise it")
            if abs(total(inverse) - total(best)) < 1e-9:
                raise CheckFailed("the permutation is inverted: perm[i] must index the noise paired with x1[i] "
                                  "(with scipy's linear_sum_assignment on cost[i, j] = |x1_i - x0_j|^2, that is "
                                  "the column of row i)")
            if perm == list(range(B)):
                raise CheckFailed("this is the independent pairing (the identity): sort the pairs by cost")
            raise CheckFailed(f"the total squared distance is {total(perm):.4f}; the best pairing has "
                              f"{total(best):.4f} (checked against all {math.factorial(B)} permutations)")
    return passed("the pairing matches the best of all permutations: in a minibatch, each noise sample goes to "
                  "the data point it is cheapest to reach.")
