"""The official MNIST and Fashion-MNIST files: the SHA-256 and size of each, the class names,
the check every copy passes (:func:`_verify`), and where the verified copies are cached
(:func:`data_root`)."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


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


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where datasets are cached: ``root``, else ``$GENCOURSE_DATA``, else ``~/.cache/gencourse``."""
    if root is None:
        root = os.environ.get("GENCOURSE_DATA") or Path.home() / ".cache" / "gencourse"
    return Path(root).expanduser()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _spec(name: str) -> _Spec:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _SPECS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(_SPECS)}")
    return _SPECS[key]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _SourceFailed(Exception):
    pass


def _verify(spec: _Spec, fname: str, data: bytes, where: str) -> bytes:
    """``data`` if it is the official file, else raise _SourceFailed saying how it differs."""
    sha, size = spec.files[fname]
    if len(data) != size:
        raise _SourceFailed(f"{where}: {fname} has {len(data)} bytes, expected {size} (not the official file)")
    got = _sha256(data)
    if got != sha:
        raise _SourceFailed(f"{where}: {fname} has sha256 {got[:16]}..., expected {sha[:16]}... (not the official file)")
    return data
