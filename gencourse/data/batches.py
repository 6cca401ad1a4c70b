"""GPU-resident mini-batches: :class:`BatchIterator` shuffles indices on the device, resumably."""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from torch import Tensor


class BatchIterator:
    """Mini-batches drawn from tensors that live on the training device.

    One pass over ``iter(batches)`` is one epoch.  Shuffling is a
    ``torch.randperm`` on the device, seeded by ``seed + epoch``, so there are no
    worker processes, no host-to-device copies and no per-sample Python work.
    ``transform`` (e.g. uint8 -> float) runs on each whole batch on the device.

    Data parallelism: with ``world_size`` W and ``rank`` r, each step's global
    batch of ``batch_size * W`` indices is the same on every rank and rank r
    takes rows ``[r * batch_size, (r + 1) * batch_size)`` of it, so W ranks
    together see exactly the images one process with batch ``batch_size * W`` sees.
    (What the *training* then equals, with batch norm and random draws, is in
    :mod:`gencourse.train.distributed`.)

    Yields a tensor when built from one tensor, else a tuple of tensors.
    """

    def __init__(self, *tensors: Tensor, batch_size: int, shuffle: bool = True, drop_last: bool = True,
                 device: torch.device | str | None = None, transform: Callable | None = None,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        from .. import validate

        if not tensors:
            raise ValueError("BatchIterator needs at least one tensor")
        for i, t in enumerate(tensors):
            validate.tensor(t, f"BatchIterator: tensor {i}", fix="pass tensors, e.g. BatchIterator(images, labels, ...)")
        batch_size = validate.integer(batch_size, "BatchIterator: batch_size", lo=1, fix="e.g. batch_size=128")
        world_size = validate.integer(world_size, "BatchIterator: world_size", lo=1)
        rank = validate.integer(rank, "BatchIterator: rank", lo=0)
        seed = validate.integer(seed, "BatchIterator: seed", lo=0)
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"all tensors need the same first dimension, got {[tuple(t.shape) for t in tensors]}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
        global_batch = batch_size * world_size
        if batch_size < 1 or (drop_last and global_batch > n):
            raise ValueError(f"batch_size * world_size = {global_batch} must be in 1..{n} (the number of examples)")
        self.device = torch.device(device) if device is not None else tensors[0].device
        self.tensors = tuple(t.to(self.device) for t in tensors)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.transform, self.seed = transform, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._gen = torch.Generator(device=self.device)

    @property
    def n(self) -> int:
        return self.tensors[0].shape[0]

    def __len__(self) -> int:
        """Number of batches per epoch."""
        gb = self.batch_size * self.world_size
        return self.n // gb if self.drop_last else math.ceil(self.n / gb)

    def _order(self, epoch: int) -> Tensor:
        if not self.shuffle:
            return torch.arange(self.n, device=self.device)
        self._gen.manual_seed(self.seed + epoch)
        return torch.randperm(self.n, device=self.device, generator=self._gen)

    def batches(self, epoch: int, start: int = 0) -> Iterator:
        """The batches of ``epoch``, from batch number ``start`` on."""
        order = self._order(epoch)
        gb, b = self.batch_size * self.world_size, self.batch_size
        for i in range(start, len(self)):
            lo = i * gb + self.rank * b
            idx = order[lo: min(lo + b, self.n)]
            out = tuple(t[idx] for t in self.tensors)
            if self.transform is not None:
                out = self.transform(*out)
                out = out if isinstance(out, tuple) else (out,)
            yield out[0] if len(out) == 1 else out

    def __iter__(self) -> Iterator:
        epoch = self.epoch
        self.epoch += 1
        return self.batches(epoch)
