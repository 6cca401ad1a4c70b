"""The optimizers the recipes use: :func:`adam` (Adam/AdamW) and :func:`sgd`, fused where torch has them."""
from __future__ import annotations

import torch


def adam(params, lr: float, betas=(0.9, 0.999), *, weight_decay: float = 0.0, decoupled: bool = False
         ) -> torch.optim.Optimizer:
    """Adam (``decoupled=True``: AdamW) with the fused implementation where this torch has it
    for the parameters' device (one kernel for all parameters instead of a few per tensor:
    about 15% of a small model's step on a CPU); the same update as the default Adam up to
    floating-point rounding."""
    params = list(params)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    kw = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    try:
        return cls(params, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without a fused kernel
        return cls(params, **kw)


def sgd(params, lr: float, *, momentum: float = 0.0, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """SGD (with momentum) in its fused implementation where this torch has it. Besides speed this
    matters under fp16: ``GradScaler.step`` reads a non-fused optimizer's overflow flag on the host
    (``.item()``, a sync every update), while a fused one takes the flag on the device."""
    kw = dict(lr=lr, momentum=momentum, weight_decay=weight_decay)
    try:
        return torch.optim.SGD(params if isinstance(params, list) else list(params), fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.SGD(params if isinstance(params, list) else list(params), **kw)
