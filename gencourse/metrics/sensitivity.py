"""What each metric catches (Chapter 7): real images and systematically damaged copies of them."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from .. import data
from .distances import SEED


def _blur(x: Tensor, sigma: float) -> Tensor:
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    w = (w / w.sum()).to(x.dtype)
    x = torch.nn.functional.conv2d(x, w.view(1, 1, 1, -1), padding=(0, r))   # rows
    return torch.nn.functional.conv2d(x, w.view(1, 1, -1, 1), padding=(r, 0))  # columns


def sensitivity_cases(dataset: str, n: int, *, seed: int = SEED, split: str = "train") -> dict:
    """Real images and systematically damaged copies, each ``(images (n, 1, 28, 28), labels (n,))``.

    ``real``; ``blur`` (Gaussian, std 1 pixel); ``noise`` (additive Gaussian, std
    0.25, clipped); ``half the classes`` (classes 5-9 replaced by more images of
    classes 0-4); ``one class`` (all class 0: mode collapse); ``copies`` (10
    distinct images repeated: memorisation); ``pure noise`` (uniform pixels).
    Drawn from ``split`` (default train, disjoint from the test reference).
    """
    images, labels = data.load(dataset, split)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(labels), generator=g)
    x, y = data.to_float(images[perm[:n]]), labels[perm[:n]]

    def from_classes(keep: Sequence[int]) -> tuple[Tensor, Tensor]:
        pool = perm[torch.isin(labels[perm], torch.tensor(list(keep)))]
        idx = pool[torch.arange(n) % len(pool)]  # repeats only if n exceeds what these classes have
        return data.to_float(images[idx]), labels[idx]

    noisy = (x + 0.25 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    copies = x[torch.arange(n) % 10]
    return {"real": (x, y), "blur": (_blur(x, 1.0), y), "noise": (noisy, y),
            "half the classes": from_classes(range(5)), "one class": from_classes([0]),
            "copies": (copies, y[torch.arange(n) % 10]), "pure noise": (torch.rand(x.shape, generator=g), y)}
