"""Mixed precision: which autocast dtype a device gets (:func:`amp_dtype`), whether the CPU
computes bf16 natively (:func:`cpu_has_bf16`), and the one rule for inference (:func:`inference`:
sampling and evaluation forwards in bf16/fp16 on CUDA, full precision on the CPU)."""
from __future__ import annotations

import contextlib

import torch

#: the precision of sampling and evaluation forwards (:func:`inference`): "auto" (bf16 or fp16 on CUDA,
#: float32 on the CPU), False (float32 everywhere), "bf16" / "fp16" (forced; on the CPU for tests)
_INFERENCE_AMP: bool | str = "auto"


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX), so that
    ``amp="bf16"`` speeds training up there rather than emulating bf16 slowly."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_dtype(device: torch.device, amp: bool | str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``device``.

    CUDA: ``"auto"`` (or True) gives bf16 on GPUs that support it and fp16 on older ones
    (e.g. the T4); ``"bf16"`` / ``"fp16"`` force one.  CPU: full precision (``None``) unless
    ``amp="bf16"`` or ``"fp16"`` is asked for explicitly.  bf16 roughly halves the time of matrix
    products on CPUs with native bf16 (:func:`cpu_has_bf16`); fp16 on the CPU is slow and exists
    to run the T4's code path (fp16 autocast with a gradient scaler) where there is no GPU.
    "auto" stays fp32 on the CPU so that results do not depend on the CPU model.  ``False``
    always means full precision."""
    device = torch.device(device)
    if amp not in (True, False, "auto", "bf16", "fp16", torch.bfloat16, torch.float16):
        raise ValueError(f"amp must be 'auto', True, False, 'bf16' or 'fp16', got {amp!r}")
    if amp is False:
        return None
    if device.type != "cuda":
        if device.type == "cpu" and amp in ("bf16", torch.bfloat16):
            return torch.bfloat16
        if device.type == "cpu" and amp in ("fp16", torch.float16):
            return torch.float16
        if amp in ("bf16", "fp16", torch.bfloat16, torch.float16):
            raise ValueError(f"amp={amp!r} is for CUDA or the CPU, not {device}; use amp=False")
        return None
    if amp in ("bf16", torch.bfloat16):
        return torch.bfloat16
    if amp in ("fp16", torch.float16):
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


def set_inference_amp(amp: bool | str = "auto") -> bool | str:
    """Set the precision of every sampling and evaluation forward (:func:`inference`); returns the
    previous setting.  ``False`` reproduces float32 results exactly on a GPU; ``"fp16"`` on the CPU runs
    the T4's inference path (slowly) for tests."""
    global _INFERENCE_AMP
    amp_dtype(torch.device("cpu"), amp)  # validates the value
    previous, _INFERENCE_AMP = _INFERENCE_AMP, amp
    return previous


def inference(device: torch.device | str):
    """The autocast context for a network forward made to sample or to evaluate on ``device``: the
    dtype :func:`amp_dtype` gives for the current :func:`set_inference_amp` setting (bf16 on GPUs that
    have it, fp16 on the T4, nothing on the CPU by default).  Callers cast the outputs back to float32
    before any arithmetic that accumulates (sampler updates, feature statistics)."""
    dtype = inference_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def inference_dtype(device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype :func:`inference` uses on ``device`` now (None: float32)."""
    return amp_dtype(torch.device(device), _INFERENCE_AMP)
