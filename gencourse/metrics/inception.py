"""Inception-FID (Chapter 7), optional: needs torch-fidelity and the Inception weights."""
from __future__ import annotations

import os

import torch
from torch import Tensor

from .. import data
from ..classifiers import as_images
from .results import Result


class InceptionUnavailable(RuntimeError):
    """Inception-v3 features cannot be loaded here (no torch-fidelity, no weights, offline)."""


INCEPTION_WEIGHTS_ENV = "GENCOURSE_INCEPTION_WEIGHTS"


def inception_fid(fake: Tensor, dataset: str, *, real: str | Tensor = "test", n_real: int | None = None,
                  weights_path: str | os.PathLike | None = None, device: torch.device | str = "cpu",
                  batch_size: int = 100) -> Result:
    """The classic FID: Inception-v3 pool3 features (2048-d) of the images resized to 299x299, grey
    repeated to RGB (torchmetrics, which needs ``torch-fidelity`` and the FID Inception weights:
    downloaded on first use, or a local file via ``weights_path`` / ``$GENCOURSE_INCEPTION_WEIGHTS``).

    Raises :class:`InceptionUnavailable` with a one-line reason when it cannot run.
    Slow on a CPU (about 10 images/s/core); use a GPU or a few hundred images.
    """
    weights_path = weights_path or os.environ.get(INCEPTION_WEIGHTS_ENV) or None
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        raise InceptionUnavailable("Inception-FID needs torch-fidelity (pip install torch-fidelity) and, on first "
                                   "use, internet access or a local weights file; using the offline "
                                   "domain-classifier FID instead") from None
    from torchmetrics.image.fid import FrechetInceptionDistance

    kw = {"feature_extractor_weights_path": str(weights_path)} if weights_path else {}
    try:
        metric = FrechetInceptionDistance(feature=2048, normalize=True, **kw).to(device)
    except Exception as err:  # no network, bad file, ...
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise InceptionUnavailable(f"could not load the Inception-v3 weights ({type(err).__name__}: {first}); "
                                   f"set {INCEPTION_WEIGHTS_ENV} to a local weights file or go online") from None
    if isinstance(real, str):
        images, _ = data.load(dataset, real)
        real = data.to_float(images[: n_real or len(images)])
    with torch.no_grad():
        for imgs, is_real in ((as_images(real), True), (as_images(fake), False)):
            for i in range(0, len(imgs), batch_size):
                metric.update(imgs[i:i + batch_size].to(device).repeat(1, 3, 1, 1), real=is_real)
    return Result("Inception-FID", {"inception_fid": float(metric.compute())},
                  f"FID in Inception-v3 pool3 (2048-d, ImageNet weights), images resized to 299x299 and repeated "
                  f"to RGB; {len(fake)} generated vs {len(real)} real {dataset} images")
