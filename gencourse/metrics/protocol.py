"""The evaluation protocol (Chapter 7): :func:`evaluate` runs every sample metric on one set of images, with
the real-vs-real floor at the same n (:func:`real_floor`: a random subset of the *training* split
scored as if it were generated; recorded by :func:`write_floors`, ``python -m gencourse.metrics floor``).
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import Tensor

from .. import classifiers, data, validate
from .distances import (K_NEAREST, SEED, _manifold_protocol, check_labels, class_accuracy, fid, inception_score, kid,
                        manifold_metrics)
from .features import Embedding, _embedding, _space, classifier_sha256, embed
from .results import Report, Result


ASSETS = Path(__file__).resolve().parent.parent / "assets"
FLOOR_PATH = ASSETS / "metrics_floor.json"
FLOOR_SIZES = (500, 1000, 2000, 5000, 10_000)


def evaluate(fake, dataset: str, *, labels: Tensor | None = None, n: int | None = None, real: Any = "test",
             device: torch.device | str = "cpu", floor: bool = True) -> Report:
    """Every sample metric of ``fake`` (images, or an :class:`Embedding`) against ``dataset``.

    ``n`` keeps the first n images; ``labels`` (the intended classes of
    class-conditional samples) adds :func:`class_accuracy`.  With ``floor`` the
    report shows the real-vs-real floor at the same n (recorded, or computed
    once and cached when n is not among :data:`FLOOR_SIZES`); only for the
    default reference ``real="test"``.
    """
    if n is not None:
        validate.integer(n, "evaluate: n", lo=1, fix="e.g. n=1000, or leave it out to use every image")
        fake = fake.take(n) if isinstance(fake, Embedding) else fake[:n]
        labels = labels[:n] if labels is not None else None
    if labels is not None:  # checked before any feature is computed
        check_labels(labels, len(fake), name="evaluate: labels")
    f = _embedding(fake, dataset, device)
    m = manifold_metrics(f, dataset, real=real, device=device)
    results = {
        "fid": fid(f, dataset, real=real, device=device),
        "kid": kid(f, dataset, real=real, device=device),
        "is": inception_score(f, dataset, device=device),
        "precision_recall": Result("precision/recall", {k: m["values"][k] for k in ("precision", "recall")},
                                   _manifold_protocol(m, dataset, "improved precision/recall")),
        "density_coverage": Result("density/coverage", {k: m["values"][k] for k in ("density", "coverage")},
                                   _manifold_protocol(m, dataset, "density/coverage")),
    }
    if labels is not None:
        results["class_accuracy"] = class_accuracy(f, labels, dataset, device=device)
    floor_values = None
    if floor and isinstance(real, str) and real == "test":
        floor_values = real_floor(dataset, len(f), device=device)[len(f)]
    return Report(dataset, len(f), results, floor_values)


_FLOORS_LIVE: dict = {}


def compute_floor(dataset: str, n: int, *, device: torch.device | str = "cpu", seed: int = SEED) -> Report:
    """Score ``n`` random *training* images (seed ``seed``) as if generated, with the standard protocol
    (against the test split, which they never overlap): what a perfect generator would get at this n."""
    images, labels = data.load(dataset, "train")
    x, y = data.subset(images, labels, n, seed=seed, balanced=False)
    emb = embed(data.to_float(x), dataset, device=device,
                source=f"{n} {dataset} training images (random, seed {seed})")
    return evaluate(emb, dataset, labels=y, device=device, floor=False)


def _load_floors() -> dict:
    return json.loads(FLOOR_PATH.read_text()) if FLOOR_PATH.is_file() else {"datasets": {}}


def real_floor(dataset: str, n: int | None = None, *, device: torch.device | str = "cpu") -> dict:
    """Real-vs-real floors of ``dataset``: ``{n: {metric: value, ..., "protocol": ...}}``.

    Without ``n``: every recorded n (``gencourse/assets/metrics_floor.json``).
    With ``n``: that n, recorded or, if absent (or made with other classifier
    weights), computed now by :func:`compute_floor` and cached for the session.
    """
    rec = _load_floors()["datasets"].get(dataset, {})
    fresh = rec.get("classifier_sha256") == classifier_sha256(dataset)
    floors = {int(k): v for k, v in rec.get("floors", {}).items()} if fresh else {}
    if rec and not fresh:
        warnings.warn(f"{FLOOR_PATH.name} was made with other {dataset} classifier weights; "
                      "recompute it with `python -m gencourse.metrics floor`", stacklevel=2)
    if n is None:
        return floors
    if n not in floors:
        key = (dataset, n, classifier_sha256(dataset))
        if key not in _FLOORS_LIVE:
            rep = compute_floor(dataset, n, device=device)
            _FLOORS_LIVE[key] = dict(rep.as_dict(), protocol=_floor_protocol(dataset, n), recorded=False)
        floors[n] = _FLOORS_LIVE[key]
    return {n: floors[n]}


def _floor_protocol(dataset: str, n: int) -> str:
    return (f"{n} random {dataset} training images scored as generated, against the test split: FID/KID vs all "
            f"10000 test images, precision/recall/density/coverage vs {n} of them (k = {K_NEAREST}); "
            f"features {_space(dataset)}; class accuracy with the true labels")


def write_floors(datasets: Iterable[str] = classifiers.DATASETS, sizes: Iterable[int] = FLOOR_SIZES, *,
                 path: Path | None = None, device: torch.device | str = "cpu") -> dict:
    """Compute and record the floors in ``path`` (default :data:`FLOOR_PATH`; ``python -m gencourse.metrics
    floor``), merged with the datasets already recorded there."""
    path = Path(path) if path is not None else FLOOR_PATH
    old = json.loads(path.read_text()) if path.is_file() else {}
    out = {"format": "gencourse-metrics-floor/1", "command": "python -m gencourse.metrics floor",
           "seed": SEED, "k": K_NEAREST, "datasets": old.get("datasets", {})}
    for ds in datasets:
        floors = {}
        for n in sizes:
            t0 = time.perf_counter()
            floors[str(n)] = dict({k: round(v, 6) for k, v in compute_floor(ds, n, device=device).as_dict().items()},
                                  protocol=_floor_protocol(ds, n))
            print(f"{ds} n={n}: {time.perf_counter() - t0:.1f} s  {floors[str(n)]}", flush=True)
        out["datasets"][ds] = {"classifier_sha256": classifier_sha256(ds), "floors": floors}
    path.write_text(json.dumps(out, indent=1) + "\n")
    return out
