"""Flow matching on 2-D toys (Chapter 8): :class:`VelocityMLP` and :func:`train_toy_flow`."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from .coupling import COUPLINGS, pair
from .paths import cfm_loss, interpolate


class VelocityMLP(nn.Module):
    """``v(x, t)`` for points (B, dim): an MLP on ``[x, sin/cos features of t]`` -> (B, dim)."""

    def __init__(self, dim: int = 2, hidden: int = 128, layers: int = 3, time_features: int = 8):
        super().__init__()
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(time_features // 2).float())
        sizes = [dim + time_features] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            mods += [nn.Linear(a, b), nn.SiLU()]
        self.net = nn.Sequential(*mods, nn.Linear(hidden, dim))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        args = t.reshape(-1, 1).float() * self.freqs                   # (B, F/2)
        return self.net(torch.cat([x, torch.sin(args), torch.cos(args)], dim=1))


def train_toy_flow(sample_data: Callable[[int], Tensor], *, coupling: str = "independent", steps: int = 2000,
                   batch_size: int = 256, lr: float = 2e-3, seed: int = 0, hidden: int = 128,
                   log_every: int = 100):
    """Train a :class:`VelocityMLP` by conditional flow matching from N(0, I) to ``sample_data(n)``
    (points (n, 2)), pairing each batch by ``coupling``.  Returns ``(model, history)``."""
    from ..train import Trainer, adam

    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")
    torch.manual_seed(seed)
    model = VelocityMLP(hidden=hidden)
    opt = adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed + 1)

    def batch():
        x1 = sample_data(batch_size)
        return pair(torch.randn(x1.shape, generator=g), x1, coupling), x1, torch.rand(batch_size, generator=g)

    def step(b, trainer):
        x0, x1, t = b
        loss = cfm_loss(model(interpolate(x0, x1, t), t), x0, x1)
        trainer.optimize(loss, opt)
        return {"loss": loss}

    trainer = Trainer(step, batch, modules=model, optimizers=opt, log_every=log_every, progress="off")
    history = trainer.fit(steps=steps)
    return model.eval(), history
