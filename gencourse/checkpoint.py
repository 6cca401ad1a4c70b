"""Checkpoints with metadata, written atomically and loaded with ``weights_only=True``.

A checkpoint is one ``torch.save`` file holding ``{"format", "state", "meta"}``:

* ``state``: named state dicts (``{"model": model.state_dict(), ...}``) or any
  nesting of tensors, numbers, strings, lists and dicts (e.g. a Trainer state);
* ``meta``: ``config`` (how to rebuild the model, including the ``recipe``), ``metrics``,
  ``command`` (how the file was produced), library and torch versions, creation time,
  the SHA-256 of the tensors and ``meta_sha256``, the SHA-256 of all the other metadata;
  both are re-checked on load, so a corrupt file or edited metadata is caught.  Files written
  before ``meta_sha256`` existed (every shipped checkpoint made before it) have none: their
  metadata is covered by the sidecar's SHA-256 of the whole file instead.

Next to it, ``<file>.json`` (the *sidecar*) repeats the metadata plus the SHA-256 of the
whole file, readable without torch (e.g. on GitHub).  When it is present, :func:`load`
checks that it describes the file (same SHA-256, size, tensors and config).
"""
from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

__all__ = ["save", "load", "write_sidecar", "Checkpoint", "CheckpointError", "tensors_sha256", "FORMAT"]

FORMAT = "gencourse-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, corrupt or does not match the model."""


@dataclass
class Checkpoint:
    path: Path
    state: dict
    meta: dict

    @property
    def config(self) -> dict:
        return self.meta.get("config", {})

    @property
    def metrics(self) -> dict:
        return self.meta.get("metrics", {})

    def load_into(self, modules: Mapping[str, nn.Module] | nn.Module, *, strict: bool = True) -> None:
        """Copy the saved weights into ``modules`` (a module, or a dict name -> module)."""
        if isinstance(modules, nn.Module):
            modules = {"model": modules}
        for name, module in modules.items():
            if name not in self.state:
                raise CheckpointError(f"{self.path} has no entry {name!r}; it has {sorted(self.state)}")
            _load_module(module, self.state[name], self.path, name, self.meta, strict)


def _plain(obj: Any, where: str = "meta") -> Any:
    """Check that metadata is JSON-like (weights_only loading accepts nothing else)."""
    if obj is None or isinstance(obj, bool):
        return obj
    for kind in (int, float, str):  # also turns subclasses (e.g. torch's TorchVersion) into plain values
        if isinstance(obj, kind):
            return kind(obj)
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, torch.dtype):
        return str(obj)
    raise TypeError(f"{where} has a {type(obj).__name__}; metadata may only hold numbers, strings, lists and dicts")


def _state_of(obj: Any, half: bool) -> Any:
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, Tensor):
        t = obj.detach().cpu()
        return t.half() if half and t.is_floating_point() else t
    if isinstance(obj, Mapping):
        return {k: _state_of(v, half) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_state_of(v, half) for v in obj]
    return obj


def tensors_sha256(state: Any) -> str:
    """SHA-256 over every tensor in ``state`` (names, dtypes, shapes and bytes, in a fixed order)."""
    h = hashlib.sha256()

    def visit(obj, name):
        if isinstance(obj, Tensor):
            t = obj.detach().cpu().contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(obj, Mapping):
            for k in sorted(obj, key=str):
                visit(obj[k], f"{name}.{k}")
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                visit(v, f"{name}[{i}]")

    visit(state, "")
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_failure(err: BaseException) -> OSError | None:
    """The OSError behind a failed write (torch wraps it in a RuntimeError from inline_container.cc)."""
    seen = err
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    if isinstance(err, RuntimeError) and ("file write failed" in str(err) or "inline_container" in str(err)):
        return OSError(errno.EIO, "file write failed")
    return None


def _atomic_write(path: Path, write) -> None:
    """Write ``path`` through a temporary file in the same folder, then rename it into place: a reader
    (or a later run) sees the old file or the new one, never half of one.  A failed write (disk full,
    no permission, ...) raises a one-line :class:`CheckpointError` naming ``path``."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one
    except BaseException as err:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        cause = _write_failure(err) if isinstance(err, Exception) else None
        if cause is None:
            raise
        reason = cause.strerror or str(cause)
        hint = " (the disk is full: free some space)" if cause.errno == errno.ENOSPC else ""
        raise CheckpointError(f"could not write {path}: {reason}{hint}; "
                              + ("the previous file is unchanged" if path.exists() else "nothing was written")
                              ) from None


def _meta_sha256(meta: Mapping) -> str:
    """SHA-256 of the metadata (all of it but this checksum), as canonical JSON."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _sidecar(path: Path, meta: Mapping) -> dict:
    return dict(meta, file=path.name, file_sha256=_file_sha256(path), file_bytes=path.stat().st_size)


def write_sidecar(path: str | os.PathLike) -> Path:
    """(Re)write ``<path>.json`` from the checkpoint itself (after checking the checkpoint's own checksums)."""
    path = Path(path)
    side = Path(str(path) + ".json")
    meta = load(path, check_sidecar=False).meta
    _atomic_write(side, lambda f: f.write(json.dumps(_sidecar(path, meta), indent=2).encode() + b"\n"))
    return side


def save(path: str | os.PathLike, state: Mapping[str, Any] | nn.Module, *, config: Mapping | None = None,
         metrics: Mapping | None = None, command: str | None = None, half: bool = False,
         extra: Mapping | None = None) -> dict:
    """Save ``state`` (a module, or named modules / state dicts) with metadata; returns the metadata.

    ``half=True`` stores floating-point tensors as float16 (for small shipped
    files); :func:`load` converts them back to the model's dtype.
    """
    from . import __version__

    path = Path(path)
    if isinstance(state, nn.Module):
        state = {"model": state}
    payload_state = _state_of(dict(state), half)
    meta = {
        "config": _plain(dict(config or {}), "config"),
        "metrics": _plain(dict(metrics or {}), "metrics"),
        "command": command,
        "gencourse_version": __version__,
        "torch_version": str(torch.__version__),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tensors_sha256": tensors_sha256(payload_state),
        **_plain(dict(extra or {}), "extra"),
    }
    meta["meta_sha256"] = _meta_sha256(meta)
    payload = {"format": FORMAT, "state": payload_state, "meta": meta}
    _atomic_write(path, lambda f: torch.save(payload, f))
    side = _sidecar(path, meta)
    _atomic_write(Path(str(path) + ".json"), lambda f: f.write(json.dumps(side, indent=2).encode() + b"\n"))
    return meta


def load(path: str | os.PathLike, modules: Mapping[str, nn.Module] | nn.Module | None = None, *,
         map_location: str | torch.device = "cpu", strict: bool = True, check_sidecar: bool = True) -> Checkpoint:
    """Load a checkpoint written by :func:`save` (``weights_only=True``, so no code runs).

    The tensors and the metadata are checked against the SHA-256 recorded when the file was
    saved, and (``check_sidecar``) the ``.json`` sidecar, when there is one, against the file.
    If ``modules`` is given (a module, or a dict name -> module), their weights
    are loaded; a missing, unexpected or differently shaped tensor raises a
    :class:`CheckpointError` naming it and the config the file was saved with.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only load failed" not in str(err).lower():
            raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt): "
                                  f"{str(err).strip().splitlines()[0][:200]}. Delete it and train again "
                                  "(or restore it from the repository).") from None
        found = next((ln.strip() for ln in str(err).splitlines() if "Unsupported" in ln), "")
        found = (found[found.find("Unsupported"):].split(" was not")[0].split(". ")[0] if found
                 else "objects other than tensors")
        if "Unsupported global" not in found:  # not a pickle of allowed types at all (or garbage)
            raise CheckpointError(
                f"{path} is not a readable checkpoint (truncated, corrupt, or not written by "
                f"gencourse.checkpoint.save; safe loading stopped at: {found}). It is not a gencourse checkpoint: "
                "do not trust it or open it any other way (e.g. torch.load with weights_only=False), which "
                "could run code hidden in the file. Delete it and train again (or restore it from the repository)."
            ) from None
        raise CheckpointError(
            f"{path} is not a gencourse checkpoint: it holds pickled Python objects ({found}) that safe "
            "loading refuses. Do not trust it: opening it any other way (e.g. torch.load with "
            "weights_only=False) could run code hidden in the file. Use only files written by "
            "gencourse.checkpoint.save, from a source you trust."
        ) from None
    except Exception as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "Unsupported global" in ln), lines[0] if lines else "")
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated, corrupt, or not written by gencourse.checkpoint.save): "
            f"{type(err).__name__}: {detail[:300]}. "
            "Delete it and train again (or restore it from the repository)."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} file (found keys {list(payload)[:5] if isinstance(payload, dict) else type(payload).__name__})")
    state, meta = payload["state"], payload["meta"]
    if tensors_sha256(state) != meta.get("tensors_sha256"):
        raise CheckpointError(f"{path} is corrupt: its tensors do not match the SHA-256 recorded when it was saved")
    if "meta_sha256" in meta and _meta_sha256(meta) != meta["meta_sha256"]:
        raise CheckpointError(f"{path} was altered: its metadata (config, recipe, metrics, command) does not match "
                              "the SHA-256 recorded when it was saved. Do not use it; train again or restore it "
                              "from the repository.")
    if check_sidecar:
        _check_sidecar(path, meta)
    ckpt = Checkpoint(path, state, meta)
    if modules is not None:
        ckpt.load_into(modules, strict=strict)
    return ckpt


def _check_sidecar(path: Path, meta: Mapping) -> None:
    side_path = Path(str(path) + ".json")
    if not side_path.is_file():
        return
    own = ("its tensors and metadata pass their own SHA-256 checks" if "meta_sha256" in meta
           else "its tensors pass their SHA-256 check")
    trust_pt = (f"{path} itself is intact ({own}), so trust the .pt: the sidecar is stale or was edited; "
                f"fix: rewrite it with gencourse.checkpoint.write_sidecar({str(path)!r}), or restore both files "
                "from where they came from")
    try:
        side = json.loads(side_path.read_text())
        if not isinstance(side, dict):
            raise ValueError(f"a {type(side).__name__}, not an object")
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{side_path} is not a readable sidecar ({err}); {trust_pt}") from None
    differ = []
    if side.get("file_sha256") != _file_sha256(path):
        differ.append(f"file SHA-256 {str(side.get('file_sha256'))[:12]}... in the sidecar vs "
                      f"{_file_sha256(path)[:12]}... of the file")
    if "file_bytes" in side and side["file_bytes"] != path.stat().st_size:
        differ.append(f"{side['file_bytes']} bytes in the sidecar vs {path.stat().st_size}")
    for key in ("tensors_sha256", "config"):
        if key in side and side[key] != meta.get(key):
            differ.append(f"a different {key}")
    if differ:
        raise CheckpointError(f"{side_path} does not describe {path.name} ({'; '.join(differ)}). {trust_pt}")


def _load_module(module: nn.Module, sd: Mapping[str, Tensor], path: Path, name: str, meta: dict, strict: bool):
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: {tuple(sd[k].shape)} in file vs {tuple(v.shape)} in model"
              for k, v in own.items() if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if shapes or (strict and (missing or unexpected)):
        parts = []
        if missing:
            parts.append(f"missing from file: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"not in model: {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append("shape mismatch: " + "; ".join(shapes[:5]))
        raise CheckpointError(
            f"{path} [{name}] does not fit this {type(module).__name__}: " + " | ".join(parts)
            + f". The file was saved with config {meta.get('config')}; build the model with that config."
        )
    module.load_state_dict(sd, strict=strict)
