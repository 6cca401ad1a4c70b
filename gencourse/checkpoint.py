"""Checkpoints with metadata, written atomically and loaded with ``weights_only=True``.

A checkpoint is one ``torch.save`` file holding ``{"format", "state", "meta"}``:

* ``state``: named state dicts (``{"model": model.state_dict(), ...}``) or any
  nesting of tensors, numbers, strings, lists and dicts (e.g. a Trainer state);
* ``meta``: ``config`` (how to rebuild the model), ``metrics``, ``command`` (how
  the file was produced), library and torch versions, creation time and the
  SHA-256 of the tensors, re-checked on load so a corrupt file is caught.

Next to it, ``<file>.json`` repeats the metadata plus the SHA-256 of the whole
file, readable without torch (e.g. on GitHub).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

__all__ = ["save", "load", "Checkpoint", "CheckpointError", "tensors_sha256", "FORMAT"]

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


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
    payload = {"format": FORMAT, "state": payload_state, "meta": meta}
    _atomic_write(path, lambda f: torch.save(payload, f))
    side = dict(meta, file=path.name, file_sha256=_file_sha256(path), file_bytes=path.stat().st_size)
    _atomic_write(Path(str(path) + ".json"), lambda f: f.write(json.dumps(side, indent=2).encode() + b"\n"))
    return meta


def load(path: str | os.PathLike, modules: Mapping[str, nn.Module] | nn.Module | None = None, *,
         map_location: str | torch.device = "cpu", strict: bool = True) -> Checkpoint:
    """Load a checkpoint written by :func:`save` (``weights_only=True``, so no code runs).

    If ``modules`` is given (a module, or a dict name -> module), their weights
    are loaded; a missing, unexpected or differently shaped tensor raises a
    :class:`CheckpointError` naming it and the config the file was saved with.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
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
    ckpt = Checkpoint(path, state, meta)
    if modules is not None:
        ckpt.load_into(modules, strict=strict)
    return ckpt


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
