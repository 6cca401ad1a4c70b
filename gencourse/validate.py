"""Checks at the public boundary: one small helper for every function that takes tensors or settings.

Each check returns its (possibly converted) value or raises :class:`InputError`, a ``ValueError``
whose message is one line of the form ``NAME: expected X, got Y; fix: Z``::

    x = validate.tensor(x, "elbo: x", shape=("B", 1, 28, 28), dtype=model_dtype, values=(0, 1),
                        fix="pass images as floats in [0, 1], e.g. data.to_float(images)")
    k = validate.integer(k, "prdc: k", lo=1)

Shape, dtype and device checks are free.  Value checks (``values=`` ranges, ``finite=``, integer
valued) read the tensor once (one host sync on a GPU); inside :meth:`gencourse.train.Trainer.fit`
on a GPU they are skipped (:func:`device_values_unchecked`), so a training step never waits on the
host.
"""
from __future__ import annotations

import contextlib
import math
import numbers
from contextvars import ContextVar
from typing import Any, Sequence

import torch
from torch import Tensor

__all__ = ["InputError", "fail", "describe", "tensor", "integer", "number", "setting", "device_values_unchecked"]


class InputError(ValueError):
    """Input outside a function's contract: ``NAME: expected X, got Y; fix: Z`` (one line)."""


_SKIP_DEVICE_VALUES: ContextVar[bool] = ContextVar("gencourse_skip_device_values", default=False)


@contextlib.contextmanager
def device_values_unchecked():
    """Within this context, value checks of tensors that are not on the CPU are skipped (no host sync)."""
    token = _SKIP_DEVICE_VALUES.set(True)
    try:
        yield
    finally:
        _SKIP_DEVICE_VALUES.reset(token)


def fail(name: str, expected: str, got: str, fix: str | None = None):
    """Raise :class:`InputError` with the standard one-line message."""
    raise InputError(f"{name}: expected {expected}, got {got}" + (f"; fix: {fix}" if fix else ""))


def describe(x: Any) -> str:
    """A short description of a value for error messages (tensors: dtype, shape and device)."""
    if isinstance(x, Tensor):
        where = "meta device (no data)" if x.is_meta else str(x.device)
        name = str(x.dtype).replace("torch.", "")
        return f"{'an' if name[0] in 'aeiou' else 'a'} {name} tensor of shape {tuple(x.shape)} on {where}"
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def _shape_text(shape: Sequence) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _dtype_ok(t: Tensor, dtype) -> bool:
    if dtype == "float":
        return t.is_floating_point()
    if dtype == "int":
        return not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool
    if isinstance(dtype, (tuple, list)):
        return any(_dtype_ok(t, d) for d in dtype)
    return t.dtype == dtype


def _dtype_text(dtype) -> str:
    if dtype == "float":
        return "a floating-point tensor"
    if dtype == "int":
        return "an integer tensor"
    if isinstance(dtype, (tuple, list)):
        return " or ".join(_dtype_text(d) for d in dtype)
    return f"a {str(dtype).replace('torch.', '')} tensor"


def tensor(x: Any, name: str, *, shape: Sequence | None = None, ndim: int | Sequence[int] | None = None,
           dtype=None, device: torch.device | str | None = None, values: tuple | None = None,
           finite: bool = False, integral: bool = False, nonempty: bool = False, fix: str | None = None) -> Tensor:
    """Check a tensor argument; returns it unchanged.

    ``shape``: a sequence of ints (must match) and names/None (any size, e.g. ``("B", 1, 28, 28)``);
    ``ndim``: allowed numbers of dimensions; ``dtype``: a torch dtype, a tuple of them, ``"float"`` or
    ``"int"``; ``device``: the device it must be on; ``values=(lo, hi)``: every entry in ``[lo, hi]``
    (``None`` for no bound); ``finite``: no NaN or inf; ``integral``: whole numbers only (e.g.
    time steps given as floats); ``nonempty``: at least one entry along the first dimension.
    """
    if not isinstance(x, Tensor):
        fail(name, "a torch.Tensor", f"{type(x).__name__} {describe(x)}", fix or "convert it with torch.as_tensor(...)")
    if x.is_meta:
        fail(name, "a tensor with data", describe(x), fix or "materialise it (e.g. .to('cpu')) before calling")
    if dtype is not None and not _dtype_ok(x, dtype):
        fail(name, _dtype_text(dtype), describe(x), fix)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.dim() not in allowed:
            fail(name, f"a tensor with {' or '.join(map(str, allowed))} dimension(s)", describe(x), fix)
    if shape is not None:
        if x.dim() != len(shape) or any(isinstance(d, int) and x.shape[i] != d for i, d in enumerate(shape)):
            fail(name, f"shape {_shape_text(shape)}", describe(x), fix)
    if device is not None and x.device != torch.device(device) and not (
            torch.device(device).type == x.device.type and torch.device(device).index is None):
        fail(name, f"a tensor on {device}", describe(x), fix or f"move it with .to({str(device)!r})")
    if nonempty and (x.dim() == 0 or x.shape[0] == 0):
        fail(name, "at least one entry along the first dimension", describe(x), fix)
    if (values is not None or finite or integral) and x.numel() > 0:
        if x.device.type != "cpu" and _SKIP_DEVICE_VALUES.get():
            return x
        data = x.detach()
        if finite or values is not None:
            if data.is_floating_point() and not bool(torch.isfinite(data).all()):
                n_bad = int((~torch.isfinite(data)).sum())
                fail(name, "finite values", f"{n_bad} NaN or infinite entries in {describe(x)}", fix)
        if values is not None:
            lo, hi = values
            vmin, vmax = (float(v) for v in torch.aminmax(data.float() if data.dtype == torch.bool else data))
            if (lo is not None and vmin < lo) or (hi is not None and vmax > hi):
                rng = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
                fail(name, f"values in {rng}", f"values from {vmin:g} to {vmax:g}", fix)
        if integral and data.is_floating_point() and not bool((data == data.round()).all()):
            bad = data[data != data.round()].flatten()[0].item()
            fail(name, "whole numbers", f"{bad:g} in {describe(x)}", fix)
    return x


def integer(value: Any, name: str, *, lo: int | None = None, hi: int | None = None, fix: str | None = None) -> int:
    """An ``int`` (not a bool, not a float) in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        fail(name, "an integer" + _range_text(lo, hi), describe(value), fix)
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        fail(name, "an integer" + _range_text(lo, hi), describe(value), fix)
    return value


def number(value: Any, name: str, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           hi_open: bool = False, fix: str | None = None) -> float:
    """A finite real number (int or float, not a bool) in the given range; ``*_open`` excludes the bound."""
    expected = "a number" + _range_text(lo, hi, lo_open, hi_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(name, expected, describe(value), fix)
    given, value = value, float(value)
    if (not math.isfinite(value) or (lo is not None and (value < lo or (lo_open and value == lo)))
            or (hi is not None and (value > hi or (hi_open and value == hi)))):
        fail(name, expected, describe(given), fix)
    return value


def _range_text(lo, hi, lo_open: bool = False, hi_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {hi}"
    return ""


# ---------------------------------------------------------------------------
# Recipe settings (``--set KEY=VALUE``): the type comes from the default value, the range from a rule.
# ---------------------------------------------------------------------------
#: Allowed ranges of settings, by name: (lo, hi, lo_open, hi_open); any recipe setting of that name obeys it.
SETTING_RANGES: dict[str, tuple] = {
    **{k: (0, None, True, False) for k in (
        "lr", "lr_g", "lr_d", "batch_size", "latent_dim", "steps", "timesteps", "sample_steps", "n_hidden",
        "num_classes", "width", "depth", "max_width", "c1", "c2", "c3", "eval_k", "ais_betas", "ais_chains",
        "n_chains", "snapshots", "d_steps", "g_steps", "k", "time_scale", "eval_samples", "n_test",
        "time_power", "init_std", "grad_clip", "num_res_blocks", "d_down")},
    **{k: (0, None, False, False) for k in (
        "n_train", "eval_n", "beta", "kl_warmup", "init_seed", "data_seed", "split_seed", "eval_seed",
        "weight_decay", "lam", "lambda_cycle", "lambda_identity", "gp_weight", "lr_final", "d_extra", "warmup",
        "noise_level", "sample_guidance", "d_width", "buffer", "x_sigma")},
    **{k: (0, 1, False, True) for k in ("dropout", "d_dropout", "real_smoothing", "momentum", "class_dropout")},
    **{k: (0, 1, False, False) for k in ("label_noise", "flip", "ema_decay", "edge_threshold")},
}


def _kind(default: Any) -> str | None:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, numbers.Integral):
        return "int"
    if isinstance(default, numbers.Real):
        return "float"
    if isinstance(default, str):
        return "str"
    if isinstance(default, (list, tuple)):
        return "list"
    return None  # None or anything else: no type to check against


_KIND_TEXT = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string",
              "list": "a list"}


def setting(name: str, value: Any, default: Any, *, where: str = "setting", optional: bool = False) -> Any:
    """Check one recipe setting against its default's type and :data:`SETTING_RANGES`; returns it
    (tuples as lists).  ``optional``: ``None`` is allowed as well (a setting whose default is None)."""
    label = f"{where} {name!r}"
    kind = _kind(default)
    if value is None and (optional or default is None):
        return None
    rng = SETTING_RANGES.get(name)
    fix_example = json_text(default if default is not None else 1.0)
    fix = (f"e.g. --set {name}={fix_example}" + (" (the default)" if default is not None else "")
           + f"; in Python {name}={default if default is not None else 1.0!r}")
    if kind in (None, "float", "int") and rng is not None:
        lo, hi, lo_open, hi_open = rng
        if kind == "int":
            return integer(value, label, lo=lo + (1 if lo_open else 0) if lo is not None else None, hi=hi, fix=fix)
        return number(value, label, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, fix=fix)
    if kind == "bool" and not isinstance(value, bool):
        fail(label, _KIND_TEXT[kind], describe(value), fix)
    if kind == "int":
        return integer(value, label, fix=fix)
    if kind == "float":
        return number(value, label, fix=fix)
    if kind == "str" and not isinstance(value, str):
        fail(label, _KIND_TEXT[kind], describe(value), fix)
    if kind == "list":
        if not isinstance(value, (list, tuple)):
            fail(label, f"a list like {fix_example}", describe(value), fix)
        kinds = {_kind(d) for d in default}
        # a list of numbers with any float in its default takes floats everywhere (betas [0, 0.9])
        inner = "float" if kinds == {"int", "float"} else _kind(default[0]) if len(default) else None
        for i, v in enumerate(value):
            if inner == "int":
                integer(v, f"{label}[{i}]", lo=1 if name in ("hidden", "channels", "channel_mults") else None, fix=fix)
            elif inner == "float":
                number(v, f"{label}[{i}]", fix=fix)
        return list(value)
    return value


def json_text(value: Any) -> str:
    import json

    return json.dumps(list(value) if isinstance(value, tuple) else value, separators=(",", ":"))
