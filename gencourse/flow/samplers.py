"""ODE integration of any velocity field from t = 0 (noise) to t = 1 (data) (Chapter 8): :func:`integrate`
(Euler, midpoint, Heun), its network evaluations (:func:`nfe`) and the straightness of the paths.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor


METHODS = ("euler", "midpoint", "heun")
_EVALS_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2}


def nfe(method: str, steps: int) -> int:
    """Network evaluations of :func:`integrate`: Euler 1 per step, midpoint and Heun 2."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return _EVALS_PER_STEP[method] * steps


def integrate(velocity: Callable[[Tensor, Tensor], Tensor], x: Tensor, steps: int, method: str = "euler", *,
              t0: float = 0.0, t1: float = 1.0, trajectory: bool = False):
    """Solve ``dx/dt = velocity(x, t)`` from ``t0`` to ``t1`` with ``steps`` uniform steps of size h.

    * ``euler``:    ``x += h v(x, t)``
    * ``midpoint``: ``x += h v(x + h/2 v(x, t), t + h/2)``
    * ``heun``:     ``x' = x + h v(x, t)``; ``x += h/2 (v(x, t) + v(x', t + h))`` (the trapezoid rule)

    ``velocity`` receives ``x`` (B, ...) and times ``t`` (B,).  Returns the final ``x``, or with
    ``trajectory=True`` the list of the ``steps + 1`` states (the start included).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    h = (t1 - t0) / steps
    path = [x] if trajectory else None
    for i in range(int(steps)):
        t = torch.full((x.shape[0],), t0 + i * h, device=x.device, dtype=x.dtype)
        v = velocity(x, t)
        if method == "euler":
            x = x + h * v
        elif method == "midpoint":
            x = x + h * velocity(x + 0.5 * h * v, t + 0.5 * h)
        else:
            v_end = velocity(x + h * v, t + h)
            x = x + 0.5 * h * (v + v_end)
        if trajectory:
            path.append(x)
    return path if trajectory else x


def straightness(path: Sequence[Tensor]) -> Tensor:
    """How far ODE paths are from straight lines, per sample: ``1 - |x_end - x_start| / length``
    (0 for a straight path; the length is the sum of the segment lengths of ``path``, a list of
    states (B, ...) as :func:`integrate` returns with ``trajectory=True``).  Shape (B,)."""
    xs = torch.stack([p.reshape(p.shape[0], -1).double() for p in path])          # (K+1, B, D)
    length = (xs[1:] - xs[:-1]).norm(dim=-1).sum(0)
    chord = (xs[-1] - xs[0]).norm(dim=-1)
    return (1 - chord / length.clamp_min(1e-12)).float()
