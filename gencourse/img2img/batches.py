"""Mini-batches of the CycleGAN recipes (Chapter 5): two disjoint sets of MNIST digits, domain B restyled on
the device per batch (:class:`UnpairedBatches`).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import data as _data
from . import tasks
from .networks import to_signed


def _signed_u8(x: Tensor) -> Tensor:
    return x.unsqueeze(1).float().div_(127.5).sub_(1.0)                 # uint8 (B, 28, 28) -> (B, 1, 28, 28) in [-1, 1]


class UnpairedBatches:
    """Mini-batches ``(a, b)`` in [-1, 1], (B, 3, 28, 28) each, from two disjoint sets of MNIST digits.

    Holds the raw uint8 digits of each domain (and B's hues) on ``device``; each domain has
    its own :class:`gencourse.data.BatchIterator` (own shuffle, seeds ``seed`` and ``seed + 1``),
    and domain B is restyled on the device per batch.  One epoch ends with the shorter domain;
    ``batches(epoch, start)`` makes it resumable like a BatchIterator.

    ``transform(u8)`` maps *one* batch of raw MNIST digits (B, 28, 28) to both domains (A as
    is, B restyled with hues drawn on the device): the interface of ``benchmarks/run.py``'s
    reference loop, which reads a single MNIST stream.
    """

    def __init__(self, a_u8: Tensor, b_u8: Tensor, b_hue: Tensor, *, batch_size: int, device, seed: int = 0,
                 rank: int = 0, world_size: int = 1, rotate: bool = False):
        kw = dict(batch_size=batch_size, device=device, rank=rank, world_size=world_size)
        self.it_a = _data.BatchIterator(a_u8, seed=seed, **kw)
        self.it_b = _data.BatchIterator(b_u8, b_hue.float(), seed=seed + 1, **kw)
        self.rotate = rotate
        self.epoch = 0

    @staticmethod
    def domain_a(u8: Tensor) -> Tensor:
        return tasks.grey_to_rgb(_signed_u8(u8))

    def domain_b(self, u8: Tensor, hue: Tensor) -> Tensor:
        return to_signed(tasks.restyle(u8.unsqueeze(1).float() / 255, hue, rotate=self.rotate))

    def transform(self, u8: Tensor):
        hue = torch.rand(u8.shape[0], device=u8.device)
        return self.domain_a(u8), self.domain_b(u8, hue)

    def __len__(self) -> int:
        return min(len(self.it_a), len(self.it_b))

    def batches(self, epoch: int, start: int = 0):
        for i, (xa, (xb, hue)) in enumerate(zip(self.it_a.batches(epoch, start), self.it_b.batches(epoch, start))):
            if start + i >= len(self):
                return
            yield self.domain_a(xa), self.domain_b(xb, hue)

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        return self.batches(epoch)
