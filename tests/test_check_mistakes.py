"""Every exercise check rejects the mistakes a student makes, each with the check's own hint,
and accepts a correct answer.  One block per chapter: a correct implementation, then wrong ones
with the message (a regex) the check must give."""
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
