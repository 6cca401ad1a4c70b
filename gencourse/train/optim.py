"""The optimizer every recipe uses: :func:`adam`, the fused Adam/AdamW where torch has it."""
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
