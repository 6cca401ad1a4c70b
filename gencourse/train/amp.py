"""Mixed precision: which autocast dtype a device gets (:func:`amp_dtype`), and whether the CPU
computes bf16 natively (:func:`cpu_has_bf16`)."""
from __future__ import annotations

import torch


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
