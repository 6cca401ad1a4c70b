"""Offline tasks for image-to-image translation (Chapter 5), built from MNIST and Fashion-MNIST.

Every builder is deterministic given its arguments (and ``seed``); nothing is downloaded
beyond :func:`gencourse.data.load`.  Images are float32 in [0, 1], channels first.

**Paired task** (pix2pix), :func:`edges_to_images`: the *source* is a binary edge map
(N, 1, 28, 28) with values in {0, 1}, made by :func:`edge_map` (Sobel gradient
magnitude of the image, thresholded); the *target* is the image itself (N, 1, 28, 28).
The map from edges to image is many-to-one in reverse: the edges fix the outline, not
the shading or texture inside it, which is what the generator has to invent.

**Unpaired task** (CycleGAN), :func:`unpaired_mnist`: two domains of MNIST digits that
use **disjoint** images of the split (a seeded permutation, first half A, second half B):

* domain **A**: the digits as they are, grey, stored with **3 equal channels**
  (N, 3, 28, 28), so that both generators map 3 channels to 3 channels and the identity
  loss is defined;
* domain **B** (:func:`restyle`): the digits drawn in a saturated colour, one hue per
  image drawn uniformly (HSV with S = V = 1), on black: ``b = x * rgb(hue)``, (N, 3, 28, 28).
  With ``rotate=True`` the B digits also lie on their side (turned 90 degrees
  anticlockwise): a global change of layout, for experiments.

The digit labels of both domains are returned for **evaluation only** (training never
sees them, and never sees an A image next to "its" B image: there is none).

**Back to the classifier's input.**  The MNIST domain classifier of
:mod:`gencourse.metrics` takes grey (N, 1, 28, 28) upright digits.  :func:`to_classifier`
converts an image of either domain: the grey value is the **maximum over the three
channels** (exact for both domains: a saturated colour has a largest channel of 1, and
A's channels are equal); for a rotated domain B the rotation is undone (clockwise).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from .. import data


__all__ = ["edge_map", "PairedSet", "edges_to_images", "hue_to_rgb", "restyle", "UnpairedSet", "unpaired_mnist",
           "to_classifier", "grey_to_rgb", "DOMAIN_B"]

#: how domain B differs from MNIST (for captions)
DOMAIN_B = "coloured strokes (a random hue per image) on black"


def _float(images: Tensor) -> Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1]; float (N, 1, H, W) passes through."""
    if images.dtype == torch.uint8:
        return images.unsqueeze(-3).float() / 255
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"expected uint8 (N, 28, 28) or float (N, 1, H, W) images, got {tuple(images.shape)}")
    return images.float()


def edge_map(images: Tensor, threshold: float = 0.5) -> Tensor:
    """Binary edge maps: 1 where the Sobel gradient magnitude of the image exceeds ``threshold``.

    ``images``: uint8 (N, 28, 28) or float (N, 1, H, W) in [0, 1].  The Sobel kernels
    ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] / 4`` (and transpose) estimate the intensity
    change per pixel (zero padding: a stroke touching the border gets an edge there);
    a step from 0 to 1 gives magnitude 0.5 to 1.  Returns float (N, 1, H, W) in {0, 1}.
    """
    x = _float(images)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device) / 4
    k = torch.stack([kx, kx.T])[:, None]                           # (2, 1, 3, 3): d/dx, d/dy
    g = F.conv2d(x, k, padding=1)                                  # (N, 2, H, W)
    return (g.square().sum(1, keepdim=True).sqrt() > threshold).float()


@dataclass
class PairedSet:
    """Aligned pairs: ``source[i]`` is the input for ``target[i]``; ``labels[i]`` the class of the image
    (evaluation only); ``indices[i]`` its position in the split of ``dataset``."""

    source: Tensor    # (N, 1, 28, 28) in {0, 1}: edge maps
    target: Tensor    # (N, 1, 28, 28) in [0, 1]: the images
    labels: Tensor    # (N,) int64
    indices: Tensor   # (N,) int64
    dataset: str
    split: str

    def __len__(self) -> int:
        return self.labels.shape[0]


def _choose(n_total: int, n: int | None, seed: int) -> Tensor:
    """The first ``n`` of a permutation of ``range(n_total)`` seeded with ``seed`` (all, in order, if n is None)."""
    if n is None:
        return torch.arange(n_total)
    if not 0 < n <= n_total:
        raise ValueError(f"n must be in 1..{n_total}, got {n}")
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n]


def edges_to_images(dataset: str = "fashion", split: str = "train", n: int | None = None, *, seed: int = 0,
                    threshold: float = 0.5) -> PairedSet:
    """The paired task edge map -> image on ``dataset`` (``"fashion"`` or ``"mnist"``).

    ``n`` images of the split (a random subset chosen by ``seed``; all of them, in the
    official order, when ``n`` is None).  Train on ``split="train"``, evaluate on the
    held-out ``"test"`` split.  See :class:`PairedSet` for shapes and ranges.
    """
    images, labels = data.load(dataset, split)
    idx = _choose(labels.shape[0], n, seed)
    target = _float(images[idx])
    return PairedSet(edge_map(target, threshold), target, labels[idx].clone(), idx, dataset, split)


def hue_to_rgb(hue: Tensor) -> Tensor:
    """Fully saturated, full-value colours: hue (N,) in [0, 1) -> RGB (N, 3) in [0, 1] (HSV with S = V = 1).

    0 is red, 1/3 green, 2/3 blue; every colour has its largest channel equal to 1.
    """
    k = (hue[:, None] * 6 + torch.arange(5.0, 0.0, -2.0, device=hue.device)) % 6   # (N, 3); offsets 5, 3, 1
    return 1 - torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def grey_to_rgb(x: Tensor) -> Tensor:
    """Grey (N, 1, H, W) -> 3 equal channels (N, 3, H, W): how domain A is stored."""
    return x.expand(-1, 3, -1, -1).contiguous()


def restyle(images: Tensor, hue: Tensor, *, rotate: bool = False) -> Tensor:
    """MNIST digits -> domain B: colour the strokes with ``hue`` (and, if ``rotate``, turn the digit
    90 degrees anticlockwise).

    ``images``: uint8 (N, 28, 28) or float (N, 1, 28, 28) in [0, 1]; ``hue`` (N,) in [0, 1).
    Returns float (N, 3, 28, 28) in [0, 1]: ``x * rgb(hue)`` (black background).
    """
    x = _float(images)
    if hue.shape != (x.shape[0],):
        raise ValueError(f"need one hue per image: hue of shape ({x.shape[0]},), got {tuple(hue.shape)}")
    if rotate:
        x = torch.rot90(x, 1, dims=(2, 3))                          # anticlockwise, (N, 1, 28, 28)
    return x * hue_to_rgb(hue.to(x.device))[:, :, None, None]     # (N, 3, 28, 28)


def to_classifier(images: Tensor, domain: str, *, rotate: bool = False) -> Tensor:
    """Images of ``domain`` (``"A"`` or ``"B"``), (N, 3, 28, 28) in [0, 1] -> what the MNIST classifier
    takes: grey upright digits (N, 1, 28, 28), grey = max over channels; with ``rotate``, B is turned
    back (clockwise)."""
    if domain not in ("A", "B"):
        raise ValueError(f"domain must be 'A' or 'B', got {domain!r}")
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images (N, 3, H, W) (or (N, 1, H, W)), got {tuple(images.shape)}")
    grey = images.amax(1, keepdim=True).clamp(0, 1)
    return torch.rot90(grey, -1, dims=(2, 3)) if domain == "B" and rotate else grey


@dataclass
class UnpairedSet:
    """Two domains built from disjoint images of one MNIST split (see the module docstring).

    ``a`` (Na, 3, 28, 28) grey digits (3 equal channels), ``b`` (Nb, 3, 28, 28) restyled
    digits, both in [0, 1]; ``a_labels``/``b_labels`` the digits (evaluation only);
    ``a_indices``/``b_indices`` positions in the split (disjoint); ``b_hue`` (Nb,).
    """

    a: Tensor
    b: Tensor
    a_labels: Tensor
    b_labels: Tensor
    a_indices: Tensor
    b_indices: Tensor
    b_hue: Tensor
    split: str

    def __len__(self) -> int:
        return min(self.a.shape[0], self.b.shape[0])


def unpaired_split(n_total: int, n: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """Indices of domain A and domain B: a permutation of ``range(n_total)`` seeded with ``seed``,
    first half A, second half B (``n`` per domain, at most ``n_total // 2``).  Disjoint by construction."""
    half = n_total // 2
    n = half if n is None else n
    if not 0 < n <= half:
        raise ValueError(f"n per domain must be in 1..{half} (the two domains share no image), got {n}")
    perm = torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))
    return perm[:n], perm[half:half + n]


def domain_b_hues(n: int, seed: int) -> Tensor:
    """The hues of domain B's images: uniform in [0, 1), drawn with ``seed + 1`` (independent of the split)."""
    return torch.rand(n, generator=torch.Generator().manual_seed(seed + 1))


def unpaired_mnist(split: str = "train", n: int | None = None, *, seed: int = 0, rotate: bool = False) -> UnpairedSet:
    """The unpaired task MNIST (A) <-> coloured MNIST (B), ``n`` images per domain (default: half the split
    each), from disjoint images chosen by ``seed``.  See :class:`UnpairedSet`."""
    images, labels = data.load("mnist", split)
    ia, ib = unpaired_split(labels.shape[0], n, seed)
    hue = domain_b_hues(ib.shape[0], seed)
    a = grey_to_rgb(_float(images[ia]))
    b = restyle(images[ib], hue, rotate=rotate)
    return UnpairedSet(a, b, labels[ia].clone(), labels[ib].clone(), ia, ib, hue, split)


__all__ += ["unpaired_split", "domain_b_hues"]
