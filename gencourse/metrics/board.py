"""The leaderboard (Chapter 7): every shipped model scored on one protocol, and the command line that
recomputes the recorded assets (``python -m gencourse.metrics floor | leaderboard``).

It sits above the model families: it samples every recipe with shipped weights (through
:mod:`gencourse.recipes`, which imports the modules that define them).
"""
from __future__ import annotations

import json
import math
import re
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
    """The cross-chapter table; ``print(board)`` shows it.

    ``rows``: sample metrics, one dict per model (and a real-data floor per dataset), all on one protocol
    (``n`` samples, generator seed 0, against the test split in the domain classifier's feature space).
    ``likelihoods``: one dict per recorded test-set likelihood, as a negative log-likelihood in nats per
    image (lower is better) with its estimator, the data variant it was measured on (``data``) and the
    checkpoint's own protocol; only rows with the same ``data`` are comparable.
    ``skipped``: every shipped model without a row of sample metrics, with the reason.
    """

    rows: list
    n: int
    skipped: dict = field(default_factory=dict)
    likelihoods: list = field(default_factory=list)

    def as_dict(self) -> list:
        return [dict(r) for r in self.rows]

    def __str__(self) -> str:
        parts = [] if self.rows or self.likelihoods else ["no model scored yet"]
        for ds in dict.fromkeys(r["dataset"] for r in self.rows):
            rows = [r for r in self.rows if r["dataset"] == ds]
            rows.sort(key=lambda r: (not r["model"].startswith("real"), r.get("fid", math.inf)))
            cols = ["model"] + [k for k in METRICS if any(k in r for r in rows)]
            if any("modes" in r for r in rows):
                cols += ["modes", "high_quality"]
            cols += [c for c in ("error",) if any(c in r for r in rows)]
            parts.append(f"{ds}: sample metrics (n = {self.n} samples per model, generator seed {SEED})\n"
                         + table(rows, cols) + "\n" + sample_protocol(ds, self.n))
        if self.likelihoods:
            text = ["likelihoods: negative log-likelihood of test images in nats per image (lower is better), "
                    "as recorded in each checkpoint; compare rows only within one data variant"]
            for data_ in dict.fromkeys(r["data"] for r in self.likelihoods):
                rows = [r for r in self.likelihoods if r["data"] == data_]
                best = {}
                for r in rows:
                    best[r["model"]] = min(best.get(r["model"], math.inf), r["nll_nats"])
                rows.sort(key=lambda r: (best[r["model"]], r["model"], r["nll_nats"]))
                shown = [{"model": r["model"], "estimate": r["estimate"],
                          "NLL (nats)": f"{r['nll_nats']:.2f}" + (f" +- {r['stderr']:.2f}" if r.get("stderr") else "")}
                         for r in rows]
                protocols = {}
                for r in rows:
                    protocols.setdefault(r["protocol"], []).append(r["model"])
                text.append(f"data: {data_}\n" + table(shown, ["model", "estimate", "NLL (nats)"]) + "\n" + "\n".join(
                    f"  protocol ({', '.join(dict.fromkeys(models))}): {proto}" for proto, models in protocols.items()))
            parts.append("\n\n".join(text))
        lines = "\n\n".join(parts)
        if self.skipped:
            lines += "\n\nno sample metrics on the board:\n" + "\n".join(
                f"  {k}: {v}" for k, v in self.skipped.items())
        return lines

    __repr__ = __str__


def sample_protocol(dataset: str, n: int) -> str:
    """The protocol shared by every row of one dataset's table of sample metrics."""
    return (f"protocol: {n} samples per model (generator seed {SEED}, each recipe's own sampler); FID and KID "
            f"(unbiased MMD^2 in the raw, unnormalised 128-d features, not rescaled) against the {dataset} test "
            "split (10,000 images); "
            f"precision, recall, density and coverage with k = 5 against {n} test images; IS and class accuracy "
            f"from the classifier's logits; all in {classifiers.recipe_name(dataset)}'s penultimate features. "
            "The real-data row: n training images, the floor at this n")


def _is_likelihood(key: str) -> bool:
    """A test-set likelihood recorded in checkpoint metrics (training-log values ``final_*`` are not)."""
    return not key.startswith("final_") and any(s in key.lower() for s in LIKELIHOOD_KEYS)


#: the data variants a likelihood can be measured on, recognised in a checkpoint's protocol text
_DATA_VARIANTS = (
    ("dynamically binarised", "binarised MNIST (each test image binarised once, seed 0)"),
    ("thresholded", "thresholded MNIST (pixel > 127)"),
    ("bernoulli cross-entropy", "grey levels scored with the Bernoulli cross-entropy (not a normalised likelihood)"),
    ("gaussian decoder", "grey levels, a Gaussian density (not comparable with probabilities of binary images)"),
)


def _data_variant(dataset: str, protocol: str) -> str:
    low = protocol.lower()
    variant = next((v for key, v in _DATA_VARIANTS if key in low), "see the protocol")
    if dataset == "fashion":
        variant = variant.replace("MNIST", "Fashion-MNIST")
    m = re.search(r"first (\d+) images", low) or re.search(r"mean over (\d+)", low)
    images = f", {int(m.group(1)):,} test images" if m else ""
    return f"{dataset}: {variant}{images}"


def likelihood_rows(name: str, meta: Mapping) -> list:
    """The test-set likelihoods of a checkpoint's metadata, each as a negative log-likelihood in nats per
    image (``nll_nats``, lower is better) with its estimator, data variant and protocol.

    Recognised keys: ``test_elbo_nats`` (an ELBO: NLL <= -ELBO), ``test_iwae_nll_nats_k{K}`` (an IWAE bound,
    already an NLL), ``ais_test_ll`` (AIS estimate of log p; its standard error ``ais_test_ll_stderr``; the
    protocol is ``ais_protocol``) and ``ais_test_ll_{N}_betas`` (the same with N distributions, described by
    ``ais_check_note``).  Training-set values, log Z and intervals are not test likelihoods and are left out.
    """
    m = meta.get("metrics", {})
    dataset = meta.get("config", {}).get("dataset", "?")
    out = []

    def add(estimate: str, nll: float, protocol: str, stderr: float | None = None, data_from: str = "") -> None:
        row = {"model": name, "data": _data_variant(dataset, data_from or protocol), "estimate": estimate,
               "nll_nats": float(nll), "protocol": protocol}
        if stderr is not None:
            row["stderr"] = float(stderr)
        out.append(row)

    protocol = m.get("protocol") if isinstance(m.get("protocol"), str) else ""
    for key, value in m.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if key == "test_elbo_nats":
            add("-ELBO (upper bound)", -value, protocol)
        elif (k := re.fullmatch(r"test_iwae_nll_nats_k(\d+)", key)):
            add(f"-IWAE, k = {k.group(1)} (upper bound)", value, protocol)
        elif key == "ais_test_ll" and not any(re.fullmatch(r"ais_test_ll_(\d+)_betas", k) for k in m):
            ais = m.get("ais_protocol", "")
            steps = re.search(r"(\d+) intermediate distributions", ais)
            label = f"AIS, {int(steps.group(1)):,} distributions" if steps else "AIS"
            add(label, -value, ais, m.get("ais_test_ll_stderr"))
        elif (k := re.fullmatch(r"ais_test_ll_(\d+)_betas", key)):
            # a longer AIS run recorded next to the recipe's own estimate: the more accurate one is shown, and
            # the recipe's figure is named in the protocol
            note = m.get("ais_check_note", "")
            se = re.search(r"log Z = [-\d.]+ \+- ([\d.]+)", note)     # the test LL's error is log Z's
            short, ais = m.get("ais_test_ll"), m.get("ais_protocol", "")
            steps = re.search(r"(\d+) intermediate distributions", ais)
            recipe_figure = (f"; the recipe's own estimate ({int(steps.group(1)):,} distributions) is NLL "
                             f"{-short:.2f} +- {m.get('ais_test_ll_stderr', math.nan):.2f}"
                             if isinstance(short, (int, float)) and steps else "")
            add(f"AIS, {int(k.group(1)):,} distributions", -value, note + recipe_figure,
                float(se.group(1)) if se else None, data_from=ais)
    return out


def _load_board_cache() -> dict:
    return json.loads(LEADERBOARD_PATH.read_text()) if LEADERBOARD_PATH.is_file() else {}


def _score_model(name: str, n: int, device, seed: int, recipe_name: str | None = None) -> dict:
    """Sample the shipped weights ``name`` (of recipe ``recipe_name``, default ``name``) and score them."""
    from .. import checkpoint

    recipe_name = recipe_name or name
    recipe = recipes.get(recipe_name)
    try:
        modules, ck = recipes.load_pretrained(recipe_name, device, path=recipes.weights_path(name))
    except checkpoint.CheckpointError:
        # a file that holds only the modules its sampler needs (e.g. the EMA weights of Chapter 6's schedule
        # comparison): build the recipe from the file's config and load what is there
        ck = checkpoint.load(recipes.weights_path(name), map_location="cpu")
        modules = recipe.build({k: v for k, v in ck.config.items() if k != "recipe"})
        ck.load_into({k: m for k, m in modules.items() if k in ck.state})
        modules = {k: m.to(device).eval() for k, m in modules.items()}
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
    return row


def _board_key(name: str, meta: Mapping, n: int, seed: int) -> str:
    """Cache key of a leaderboard row: the model's *weights* (not its metadata, which may gain
    measurements later), the sample size and the seed."""
    return f"{name}|{(meta.get('tensors_sha256') or meta.get('file_sha256', ''))[:16]}|n={n}|seed={seed}"


#: why a shipped model without a sampler of images is not scored on samples (by recipe name prefix)
NO_SAMPLES = {
    "classifier-": "a classifier: the feature space of the metrics, not a generative model",
    "cyclegan-": "an unpaired image-to-image translator with no sampler of p(x); Chapter 5 scores it by the "
                 "share of translations that keep the input's digit",
    "pix2pix-": "a paired image-to-image translator with no sampler of p(x); Chapter 5 scores its translations "
                "(L1, PSNR, sharpness, FID of outputs)",
}


def _shipped_names() -> list:
    return sorted(p.stem for p in recipes.WEIGHTS_DIR.glob("*.pt"))


def leaderboard(names: Sequence[str] | None = None, *, n: int = 10_000, device: torch.device | str = "cpu",
                seed: int = SEED, floors: bool = True, use_cache: bool = True, compute_missing: bool = True,
                verbose: bool = True) -> Leaderboard:
    """Score every shipped checkpoint (or the given ``names``) on one protocol.

    Sample metrics: ``n`` samples of the checkpoint's recipe sampler (generator seeded with ``seed``)
    through :func:`evaluate`; shipped variants of a recipe (other settings or seeds, e.g. ``vae-mnist-beta4``)
    are sampled with that recipe's sampler.  With ``floors``, a "real data" row per dataset gives the floor at
    the same n.  Likelihoods: every test-set likelihood recorded in a checkpoint (:func:`likelihood_rows`),
    in one convention (NLL in nats per image) and grouped by the data they were measured on.

    Rows already in ``gencourse/assets/leaderboard.json`` for the same weights, classifier, n and seed
    are reused (``python -m gencourse.metrics leaderboard`` refreshes it); the others are scored now, or,
    with ``compute_missing=False`` (FAST mode: sampling a diffusion model on a CPU takes minutes), listed
    under ``skipped`` with the reason, as is every shipped model that has no sampler of images and one that
    fails to load or sample.  A recipe with a sampler but no shipped weights is listed when named.
    """
    candidates = list(names) if names is not None else _shipped_names()
    cache = _load_board_cache() if use_cache else {}
    rows, skipped, likelihoods = [], {}, []
    for name in candidates:
        reason = next((why for prefix, why in NO_SAMPLES.items() if name.startswith(prefix)), None)
        meta = recipes.shipped_meta(name)
        recipe_name = meta.get("config", {}).get("recipe") or name
        likelihoods += likelihood_rows(name, meta)
        if reason is not None:
            skipped[name] = reason
            continue
        try:
            recipe = recipes.get(recipe_name)
        except Exception as err:
            skipped[name] = f"cannot import: {type(err).__name__}"
            continue
        if not recipes.weights_path(name).is_file():
            skipped[name] = "no shipped weights"
            continue
        if recipe.sample is None:
            skipped[name] = f"recipe {recipe_name} has no sampler of images"
            continue
        key = _board_key(name, meta, n, seed)
        row = cache.get(key)
        if row is not None and row.get("classifier_sha256") != classifier_sha256(row.get("dataset", "")):
            row = None
        if row is None and not compute_missing:
            skipped[name] = (f"samples not scored at n = {n} yet (python -m gencourse.metrics leaderboard --n {n}"
                             + (f" --models {name}" if names is None else "") + ")"
                             + ("; its likelihood is in the likelihood table" if likelihood_rows(name, meta) else ""))
            continue
        if row is None:
            t0 = time.perf_counter()
            try:
                row = _score_model(name, n, device, seed, recipe_name)
            except Exception as err:
                skipped[name] = f"{type(err).__name__}: {str(err)[:120]}"
                continue
            ds = row["dataset"]
            row["classifier_sha256"] = classifier_sha256(ds) if ds in classifiers.DATASETS else ""
            if verbose:
                print(f"scored {name} in {time.perf_counter() - t0:.1f} s", flush=True)
        row = {k: v for k, v in row.items() if not _is_likelihood(k) and k != "likelihood_protocol"}
        rows.append(dict(row, cache_key=key))
    if floors:
        for ds in dict.fromkeys(r["dataset"] for r in rows if r["dataset"] in classifiers.DATASETS):
            fl = real_floor(ds, n, device=device)[n]
            rows.append({"model": f"real data ({ds} train subset)", "dataset": ds,
                         **{k: v for k, v in fl.items() if k in METRICS}})
    return Leaderboard(rows, n, skipped, likelihoods)


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
