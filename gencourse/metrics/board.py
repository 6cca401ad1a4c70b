"""The leaderboard (Chapter 7): every shipped model scored on one protocol, and the command line that
recomputes the recorded assets (``python -m gencourse.metrics floor | leaderboard``).

It sits above the model families: it samples every recipe with shipped weights (through
:mod:`gencourse.recipes`, which imports the modules that define them).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch

from .. import classifiers, data, recipes
from .distances import SEED
from .features import classifier_sha256
from .modes import count_modes
from .protocol import FLOOR_SIZES, evaluate, real_floor, write_floors
from .results import METRICS, table


ASSETS = Path(__file__).resolve().parent.parent / "assets"
LEADERBOARD_PATH = ASSETS / "leaderboard.json"
#: checkpoint metrics whose name contains one of these are likelihoods, shown on the leaderboard
LIKELIHOOD_KEYS = ("elbo", "iwae", "ais", "nll", "bits_per_dim", "bpd", "log_likelihood")


@dataclass(repr=False)
class Leaderboard:
    """Rows (dicts) of the cross-chapter table; ``print(board)`` shows it per dataset."""

    rows: list
    n: int
    skipped: dict = field(default_factory=dict)

    def as_dict(self) -> list:
        return [dict(r) for r in self.rows]

    def __str__(self) -> str:
        parts = [] if self.rows else ["no model scored yet"]
        for ds in dict.fromkeys(r["dataset"] for r in self.rows):
            rows = [r for r in self.rows if r["dataset"] == ds]
            rows.sort(key=lambda r: (not r["model"].startswith("real"), r.get("fid", math.inf)))
            cols = ["model"] + [k for k in METRICS if any(k in r for r in rows)]
            cols += sorted({k for r in rows for k in r if _is_likelihood(k)})
            if any("modes" in r for r in rows):
                cols += ["modes", "high_quality"]
            cols += [c for c in ("error",) if any(c in r for r in rows)]
            parts.append(f"{ds} (n = {self.n} samples per model)\n" + table(rows, cols))
        lines = "\n\n".join(parts)
        notes = [f"{r['model']}: {r['likelihood_protocol']}" for r in self.rows if r.get("likelihood_protocol")]
        if notes:
            lines += "\n\nlikelihoods (from the checkpoints):\n  " + "\n  ".join(notes)
        if self.skipped:
            lines += "\n\nnot on the board: " + "; ".join(f"{k} ({v})" for k, v in self.skipped.items())
        return lines

    __repr__ = __str__


def _is_likelihood(key: str) -> bool:
    """A test-set likelihood recorded in checkpoint metrics (training-log values ``final_*`` are not)."""
    return not key.startswith("final_") and any(s in key.lower() for s in LIKELIHOOD_KEYS)


def _likelihoods(meta: Mapping) -> dict:
    """The likelihood numbers (and their protocol) of a checkpoint's metadata."""
    metrics_ = meta.get("metrics", {})
    row = {k: v for k, v in metrics_.items() if _is_likelihood(k) and isinstance(v, (int, float))}
    if row and isinstance(metrics_.get("protocol"), str):
        row["likelihood_protocol"] = metrics_["protocol"]
    return row


def _load_board_cache() -> dict:
    return json.loads(LEADERBOARD_PATH.read_text()) if LEADERBOARD_PATH.is_file() else {}


def _score_model(name: str, n: int, device, seed: int) -> dict:
    recipe = recipes.get(name)
    modules, ck = recipes.load_pretrained(name, device)
    cfg = {k: v for k, v in ck.config.items() if k != "recipe"}
    generator = torch.Generator(device=torch.device(device)).manual_seed(seed)
    with torch.no_grad():
        out = recipe.sample(modules, cfg, n, torch.device(device), generator)
    images, labels = out if isinstance(out, tuple) else (out, None)
    images = images.detach().float().cpu()
    row = {"model": name, "dataset": cfg.get("dataset", "?")}
    if images.dim() == 2 and images.shape[1] == 2:  # a 2-D toy model: modes of the ring
        k, radius, std = cfg.get("modes", 8), cfg.get("radius", 2.0), cfg.get("std", 0.05)
        mc = count_modes(images, data.ring_modes(k, radius), std)
        row.update(modes=f"{mc.covered}/{mc.modes}", high_quality=mc.high_quality)
    else:
        row.update(evaluate(images, row["dataset"], labels=labels, device=device, floor=False).as_dict())
    row.update(_likelihoods(ck.meta))
    return row


def _board_key(name: str, meta: Mapping, n: int, seed: int) -> str:
    """Cache key of a leaderboard row: the model's *weights* (not its metadata, which may gain
    measurements later), the sample size and the seed."""
    return f"{name}|{(meta.get('tensors_sha256') or meta.get('file_sha256', ''))[:16]}|n={n}|seed={seed}"


def leaderboard(names: Sequence[str] | None = None, *, n: int = 10_000, device: torch.device | str = "cpu",
                seed: int = SEED, floors: bool = True, use_cache: bool = True, compute_missing: bool = True,
                verbose: bool = True) -> Leaderboard:
    """Score every recipe that has a ``sample`` function and shipped weights (or the given ``names``)
    on one protocol: ``n`` samples (generator seeded with ``seed``) through :func:`evaluate`, plus
    the likelihoods recorded in each checkpoint's metrics (keys containing elbo, iwae, ais, nll,
    bits_per_dim, ...).  With ``floors``, a "real data" row per dataset gives the floor at the same n.

    Rows already in ``gencourse/assets/leaderboard.json`` for the same weights file, classifier,
    n and seed are reused (``python -m gencourse.metrics leaderboard`` refreshes it); the others are
    scored now, or, with ``compute_missing=False`` (FAST mode: sampling a diffusion model on a CPU
    takes minutes), listed under ``skipped``.  So is a model that fails to load or sample, instead
    of breaking the table.
    """
    candidates = list(names) if names is not None else sorted(recipes._OWNERS)
    cache = _load_board_cache() if use_cache else {}
    rows, skipped = [], {}
    for name in candidates:
        if name.startswith("classifier-"):
            continue
        try:
            recipe = recipes.get(name)
        except Exception as err:
            skipped[name] = f"cannot import: {type(err).__name__}"
            continue
        path = recipes.weights_path(name)
        if recipe.sample is None or not path.is_file():
            if names is not None:
                skipped[name] = "no sampler" if recipe.sample is None else "no shipped weights"
            continue
        meta = recipes.shipped_meta(name)
        key = _board_key(name, meta, n, seed)
        row = cache.get(key)
        if row is not None and row.get("classifier_sha256") != classifier_sha256(row.get("dataset", "")):
            row = None
        if row is None and not compute_missing:
            skipped[name] = f"samples not scored at n = {n} yet (python -m gencourse.metrics leaderboard --n {n})"
            liks = _likelihoods(meta)
            if liks:  # its likelihoods still belong on the board
                rows.append(dict(model=name, dataset=meta.get("config", {}).get("dataset", "?"), **liks))
            continue
        if row is None:
            t0 = time.perf_counter()
            try:
                row = _score_model(name, n, device, seed)
            except Exception as err:
                skipped[name] = f"{type(err).__name__}: {str(err)[:120]}"
                continue
            row["classifier_sha256"] = classifier_sha256(row["dataset"]) if row["dataset"] in classifiers.DATASETS else ""
            if verbose:
                print(f"scored {name} in {time.perf_counter() - t0:.1f} s", flush=True)
        rows.append(dict(row, cache_key=key))
    if floors:
        for ds in dict.fromkeys(r["dataset"] for r in rows if r["dataset"] in classifiers.DATASETS):
            fl = real_floor(ds, n, device=device)[n]
            rows.append({"model": f"real data ({ds} train subset)", "dataset": ds,
                         **{k: v for k, v in fl.items() if k in METRICS}})
    return Leaderboard(rows, n, skipped)


def write_leaderboard(sizes: Iterable[int] = (1000, 10_000), *, names: Sequence[str] | None = None,
                      device: torch.device | str = "cpu") -> dict:
    """Score every shipped model (or ``names``) at each n; store the rows in ``gencourse/assets/leaderboard.json``."""
    cache = _load_board_cache()
    for n in sizes:
        board = leaderboard(names, n=n, device=device, floors=False, use_cache=False)
        for row in board.rows:
            cache[row.pop("cache_key")] = row
        if board.skipped:
            print("skipped:", board.skipped)
    cache = {k: row for k, row in cache.items() if _current(k)}  # rows of weights no longer shipped
    LEADERBOARD_PATH.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    return cache


def _current(key: str) -> bool:
    """Whether a leaderboard cache key belongs to the weights shipped now."""
    name, rest = key.split("|", 1)
    meta = recipes.shipped_meta(name)
    if not meta:
        return False
    n, seed = (int(part.split("=")[1]) for part in rest.split("|")[1:])
    return _board_key(name, meta, n, seed) == key


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gencourse.metrics floor | leaderboard``: recompute the recorded assets."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m gencourse.metrics", description=main.__doc__)
    parser.add_argument("what", choices=["floor", "leaderboard"])
    parser.add_argument("--n", type=int, nargs="*", default=None, help="sample sizes")
    parser.add_argument("--dataset", nargs="*", default=list(classifiers.DATASETS), help="floor: datasets")
    parser.add_argument("--models", nargs="*", default=None, help="leaderboard: models (default: every shipped one)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.what == "floor":
        write_floors(args.dataset, args.n or FLOOR_SIZES, device=args.device)
    else:
        write_leaderboard(args.n or (1000, 10_000), names=args.models, device=args.device)
    return 0
