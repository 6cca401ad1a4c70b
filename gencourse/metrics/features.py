"""The feature space of every sample metric (Chapter 7): the course's own domain classifiers.

:func:`load_classifier` loads the shipped classifier of a dataset; :func:`embed` runs images through
it once (features (N, 128) = fc1 after its ReLU, logits (N, 10)) into an :class:`Embedding`, which
every metric accepts in place of images; :func:`reference` embeds (and caches) the real images
compared against.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import classifiers, data, recipes
from ..classifiers import FEATURE_LAYER, as_images
from ..train.amp import inference, inference_dtype


_CLASSIFIERS: dict = {}
_REFERENCES: dict = {}


def load_classifier(dataset: str, device: torch.device | str = "cpu") -> classifiers.DomainClassifier:
    """The shipped domain classifier for ``"mnist"`` or ``"fashion"``, in eval mode on ``device``.

    ``model(x)`` gives logits (B, 10); ``model.features(x)`` the feature layer
    of every metric here: fc1 after its ReLU, (B, 128).  ``model.checkpoint``
    holds the file's metadata (test accuracy, the command that made it).  The
    model is cached per device and shared: do not train it.
    """
    key = (dataset, str(torch.device(device)))
    if key not in _CLASSIFIERS:
        modules, ck = recipes.load_pretrained(classifiers.recipe_name(dataset), device)
        model = modules["model"].requires_grad_(False)
        model.checkpoint = ck
        _CLASSIFIERS[key] = model
    return _CLASSIFIERS[key]


def classifier_sha256(dataset: str) -> str:
    """SHA-256 of the shipped classifier file (from its ``.json`` sidecar)."""
    return recipes.shipped_meta(classifiers.recipe_name(dataset)).get("file_sha256", "missing")


@dataclass
class Embedding:
    """Features (N, 128) and logits (N, 10) of a set of images under one dataset's classifier (on the CPU)."""

    features: Tensor
    logits: Tensor
    dataset: str
    source: str

    def __len__(self) -> int:
        return self.features.shape[0]

    def take(self, n: int, *, shuffle_seed: int | None = None, source: str | None = None) -> "Embedding":
        """The first ``n`` rows (of a permutation seeded with ``shuffle_seed``, if given)."""
        if not 0 < n <= len(self):
            raise ValueError(f"cannot take {n} of {len(self)} embedded images")
        idx = (torch.randperm(len(self), generator=torch.Generator().manual_seed(shuffle_seed))[:n]
               if shuffle_seed is not None else slice(0, n))
        return Embedding(self.features[idx], self.logits[idx], self.dataset, source or self.source)


@torch.no_grad()
def embed(images: Tensor, dataset: str, *, device: torch.device | str = "cpu", batch_size: int = 500,
          source: str | None = None) -> Embedding:
    """Run ``images`` (N, 1, 28, 28) in [0, 1] through the classifier of ``dataset`` once, in batches of
    ``batch_size`` (the features do not depend on it; on a CPU 500 was twice as fast as 2000), under
    :func:`gencourse.train.amp.inference` (half precision on CUDA; the statistics downstream are computed
    from the features in float64)."""
    images = as_images(images)
    if images.shape[0] < 2:
        raise ValueError(f"need at least 2 images to compare distributions, got {images.shape[0]}")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                         "map [-1, 1] outputs with (x + 1) / 2")
    model = load_classifier(dataset, device)
    feats, logits = [], []
    for i in range(0, images.shape[0], batch_size):
        with inference(device):     # bf16 / fp16 on CUDA, float32 on the CPU (train.amp.inference)
            f = model.features(images[i:i + batch_size].to(device))
            logit = model.fc2(f)
        feats.append(f.float().cpu())
        logits.append(logit.float().cpu())
    return Embedding(torch.cat(feats), torch.cat(logits), dataset, source or f"{images.shape[0]} generated images")


def _embedding(x, dataset: str, device) -> Embedding:
    if isinstance(x, Embedding):
        if x.dataset != dataset:
            raise ValueError(f"this embedding was made with the {x.dataset!r} classifier, not {dataset!r}")
        return x
    return embed(x, dataset, device=device)


def reference(dataset: str, real: Any = "test", device: torch.device | str = "cpu") -> Embedding:
    """The real images compared against: ``"test"`` / ``"train"`` (a whole split, embedded once and
    cached), real images (a tensor) or an :class:`Embedding`."""
    if isinstance(real, str):
        if real not in ("test", "train"):
            raise ValueError(f"real must be 'test', 'train', images or an Embedding, got {real!r}")
        key = (dataset, real, classifier_sha256(dataset), str(inference_dtype(device)))  # fp32 / half features differ
        if key not in _REFERENCES:
            images, _ = data.load(dataset, real)
            _REFERENCES[key] = embed(data.to_float(images), dataset, device=device,
                                     source=f"{dataset} {real} split, {len(images)} images")
        return _REFERENCES[key]
    if isinstance(real, Embedding):
        return _embedding(real, dataset, device)
    return embed(real, dataset, device=device, source=f"{len(real)} given real images")


def _space(dataset: str) -> str:
    return f"{classifiers.recipe_name(dataset)} {FEATURE_LAYER}"
