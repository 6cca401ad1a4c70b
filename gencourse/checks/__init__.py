"""Self-checking exercises.

Each chapter has a module here (``gencourse.checks.probability`` for Chapter 0,
...).  A check calls the student's function on inputs of its own, compares the
result with a reference computed independently, and either prints a short
confirmation or raises :class:`CheckFailed` with *what* is wrong: the shape,
the value that differs, or the usual mistake the numbers point to.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

__all__ = ["CheckFailed", "run", "passed", "expect_tensor", "expect_close", "expect"]


class CheckFailed(AssertionError):
    """The answer is not right yet; the message says what to look at."""


def passed(message: str) -> bool:
    print(f"Correct! {message}")
    return True


def run(fn: Callable, *args, name: str | None = None, **kwargs) -> Any:
    """Call the student's ``fn``, turning "not written yet" and crashes into clear feedback."""
    label = name or getattr(fn, "__name__", "your function")
    if not callable(fn):
        raise CheckFailed(f"expected a function, got {type(fn).__name__}: pass the function itself, without calling it")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailed(
            f"{label} is not written yet: replace the line `raise NotImplementedError(...)` with your code"
        ) from None
    except CheckFailed:
        raise
    except Exception as err:
        raise CheckFailed(f"{label} raised {type(err).__name__}: {err}") from err


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def seeded(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``: every check draws its test inputs reproducibly."""
    return torch.Generator().manual_seed(seed)


def expect_scalar(x: Any, *, what: str = "the result", reduction: str = "the mean over the batch") -> Tensor:
    """``x`` as a 0-d float64 tensor; a tensor of another shape fails with a message naming ``reduction``."""
    t = expect_tensor(x, what=what)
    if t.numel() != 1:
        raise CheckFailed(f"{what} has shape {tuple(t.shape)}: return one number, {reduction}")
    return t.reshape(())


def expect_tensor(x: Any, shape: tuple | None = None, *, what: str = "the result") -> Tensor:
    """``x`` as a float64 tensor, with a clear message if it is not tensor-like or has the wrong shape."""
    if x is None:
        raise CheckFailed(f"{what} is None: did you forget to `return` it?")
    try:
        t = torch.as_tensor(x).detach().to(torch.float64)
    except Exception:
        raise CheckFailed(f"{what} should be a tensor (or array), got {type(x).__name__}") from None
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise CheckFailed(f"{what} has shape {tuple(t.shape)}, expected {tuple(shape)}")
    if not torch.isfinite(t).all():
        raise CheckFailed(f"{what} contains NaN or inf")
    return t


def expect_close(actual: Any, expected: Tensor | float, *, what: str = "the result", rtol: float = 1e-4,
                 atol: float = 1e-6, hints: dict[str, Any] | None = None) -> None:
    """Fail unless ``actual`` matches ``expected``; ``hints`` maps a message to a tensor that a
    common mistake would produce, and the first one matched is reported."""
    expected = torch.as_tensor(expected, dtype=torch.float64)
    a = expect_tensor(actual, tuple(expected.shape), what=what)
    if torch.allclose(a, expected, rtol=rtol, atol=atol):
        return
    for message, wrong in (hints or {}).items():
        wrong = torch.as_tensor(wrong, dtype=torch.float64)
        if wrong.shape == a.shape and torch.allclose(a, wrong, rtol=rtol, atol=atol):
            raise CheckFailed(f"{what} is not right: {message}")
    diff = (a - expected).abs()
    i = int(diff.reshape(-1).argmax())
    got, want = a.reshape(-1)[i].item(), expected.reshape(-1)[i].item()
    where = "" if a.dim() == 0 else f" at index {tuple(int(v) for v in _unravel(i, a.shape))}"
    raise CheckFailed(f"{what} is not right{where}: got {got:.6g}, expected {want:.6g}")


def _unravel(i: int, shape) -> list[int]:
    out = []
    for s in reversed(shape):
        out.append(i % s)
        i //= s
    return list(reversed(out))
