"""Evaluating generative models offline (Chapter 7).

Every sample metric here compares a set of generated images with real ones in
the feature space of a **domain classifier** the course trains itself
(:mod:`gencourse.classifiers`; shipped weights, no download):

* :func:`fid` (Fréchet distance of Gaussians fitted to the features:
  torchmetrics' FID with the classifier as a custom feature module),
  :func:`inception_score` (torchmetrics, the classifier's logits in place of
  Inception's), :func:`kid` (unbiased polynomial-kernel MMD² over all samples,
  written here because torchmetrics' 100 random subsets cost 25x more on a CPU);
* :func:`precision_recall` and :func:`density_coverage` (k-nearest-neighbour
  manifolds, written here: torchmetrics has neither; :func:`prdc` for any points);
* :func:`class_accuracy` of class-conditional samples, :func:`count_modes` on
  the toy ring; :func:`evaluate` runs them all and prints a table.

**The protocol** is part of every result (its ``protocol`` string): features are
the classifier's 128-d ``fc1+ReLU`` layer (logits for IS and accuracy); the
reference is the dataset's **test split** (10,000 images) for FID and KID, and
for precision/recall/density/coverage a subset of it of the same size as the
generated set (the first n of a fixed permutation), with k = 5 neighbours. FID
is biased upwards for small sample sizes, so numbers are comparable only at
the same n; :func:`real_floor` gives the real-vs-real value of every metric at
that n (a random subset of the *training* split scored as if it were generated).

Also here: :func:`real_floor` / :func:`write_floors` (the recorded floors,
``python -m gencourse.metrics floor``), :func:`leaderboard` (every shipped model
on one protocol, ``python -m gencourse.metrics leaderboard``),
:func:`sensitivity_cases` (damaged real images) and the optional
:func:`inception_fid`.

Images everywhere: float tensors in [0, 1] of shape (N, 1, 28, 28) (or (N, 28, 28)).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from . import classifiers, data, recipes
from .classifiers import FEATURE_LAYER, as_images

__all__ = ["load_classifier", "embed", "Embedding", "Result", "Report", "fid", "kid", "inception_score",
           "precision_recall", "density_coverage", "prdc", "manifold_metrics", "class_accuracy", "evaluate", "frechet_distance",
           "count_modes", "ModeCount", "real_floor", "compute_floor", "write_floors", "leaderboard", "Leaderboard",
           "inception_fid", "InceptionUnavailable", "sensitivity_cases", "FLOOR_PATH", "LEADERBOARD_PATH",
           "K_NEAREST", "KID_BLOCKS", "mmd2_unbiased", "IS_SPLITS", "FLOOR_SIZES"]

ASSETS = Path(__file__).resolve().parent / "assets"
FLOOR_PATH = ASSETS / "metrics_floor.json"
LEADERBOARD_PATH = ASSETS / "leaderboard.json"
K_NEAREST = 5           # neighbours for precision/recall/density/coverage
KID_BLOCKS = 10        # disjoint subset pairs for the spread of KID
IS_SPLITS = 10
FLOOR_SIZES = (500, 1000, 2000, 5000, 10_000)
SEED = 0                # every random choice of a protocol (reference subsets, KID subsets, IS splits)
#: checkpoint metrics whose name contains one of these are likelihoods, shown on the leaderboard
LIKELIHOOD_KEYS = ("elbo", "iwae", "ais", "nll", "bits_per_dim", "bpd", "log_likelihood")
#: metric -> (short name, which values are better); the order of the printed tables
METRICS = {"fid": ("FID", "lower"), "kid": ("KID", "lower"), "is": ("IS", "higher"),
           "precision": ("precision", "higher"), "recall": ("recall", "higher"),
           "density": ("density", "~1 (real data)"), "coverage": ("coverage", "higher"),
           "class_accuracy": ("class accuracy", "higher")}


# ---------------------------------------------------------------------------
# Classifier and features
# ---------------------------------------------------------------------------
_CLASSIFIERS: dict = {}
_REFERENCES: dict = {}


def load_classifier(dataset: str, device: torch.device | str = "cpu") -> classifiers.DomainClassifier:
    """The shipped domain classifier for ``"mnist"`` or ``"fashion"``, in eval mode on ``device``.

    ``model(x)`` gives logits (B, 10); ``model.features(x)`` the feature layer
    of every metric here: fc1 after its ReLU, (B, 128).  ``model.checkpoint``
    holds the file's metadata (test accuracy, the command that made it).  The
    model is cached per device and shared: do not train it.
    """
    key = (dataset, str(torch.device(device)))
    if key not in _CLASSIFIERS:
        modules, ck = recipes.load_pretrained(classifiers.recipe_name(dataset), device)
        model = modules["model"].requires_grad_(False)
        model.checkpoint = ck
        _CLASSIFIERS[key] = model
    return _CLASSIFIERS[key]


def classifier_sha256(dataset: str) -> str:
    """SHA-256 of the shipped classifier file (from its ``.json`` sidecar)."""
    return recipes.shipped_meta(classifiers.recipe_name(dataset)).get("file_sha256", "missing")


@dataclass
class Embedding:
    """Features (N, 128) and logits (N, 10) of a set of images under one dataset's classifier (on the CPU)."""

    features: Tensor
    logits: Tensor
    dataset: str
    source: str

    def __len__(self) -> int:
        return self.features.shape[0]

    def take(self, n: int, *, shuffle_seed: int | None = None, source: str | None = None) -> "Embedding":
        """The first ``n`` rows (of a permutation seeded with ``shuffle_seed``, if given)."""
        if not 0 < n <= len(self):
            raise ValueError(f"cannot take {n} of {len(self)} embedded images")
        idx = (torch.randperm(len(self), generator=torch.Generator().manual_seed(shuffle_seed))[:n]
               if shuffle_seed is not None else slice(0, n))
        return Embedding(self.features[idx], self.logits[idx], self.dataset, source or self.source)


@torch.no_grad()
def embed(images: Tensor, dataset: str, *, device: torch.device | str = "cpu", batch_size: int = 2000,
          source: str | None = None) -> Embedding:
    """Run ``images`` (N, 1, 28, 28) in [0, 1] through the classifier of ``dataset`` once, in batches."""
    images = as_images(images)
    if images.shape[0] < 2:
        raise ValueError(f"need at least 2 images to compare distributions, got {images.shape[0]}")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                         "map [-1, 1] outputs with (x + 1) / 2")
    model = load_classifier(dataset, device)
    feats, logits = [], []
    for i in range(0, images.shape[0], batch_size):
        f = model.features(images[i:i + batch_size].to(device))
        feats.append(f.float().cpu())
        logits.append(model.fc2(f).float().cpu())
    return Embedding(torch.cat(feats), torch.cat(logits), dataset, source or f"{images.shape[0]} generated images")


def _embedding(x, dataset: str, device) -> Embedding:
    if isinstance(x, Embedding):
        if x.dataset != dataset:
            raise ValueError(f"this embedding was made with the {x.dataset!r} classifier, not {dataset!r}")
        return x
    return embed(x, dataset, device=device)


def reference(dataset: str, real: Any = "test", device: torch.device | str = "cpu") -> Embedding:
    """The real images compared against: ``"test"`` / ``"train"`` (a whole split, embedded once and
    cached), real images (a tensor) or an :class:`Embedding`."""
    if isinstance(real, str):
        if real not in ("test", "train"):
            raise ValueError(f"real must be 'test', 'train', images or an Embedding, got {real!r}")
        key = (dataset, real, classifier_sha256(dataset))
        if key not in _REFERENCES:
            images, _ = data.load(dataset, real)
            _REFERENCES[key] = embed(data.to_float(images), dataset, device=device,
                                     source=f"{dataset} {real} split, {len(images)} images")
        return _REFERENCES[key]
    if isinstance(real, Embedding):
        return _embedding(real, dataset, device)
    return embed(real, dataset, device=device, source=f"{len(real)} given real images")


def _space(dataset: str) -> str:
    return f"{classifiers.recipe_name(dataset)} {FEATURE_LAYER}"


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------
@dataclass
class Result:
    """A metric's value(s) and the protocol that produced them: ``r.value`` (the main number),
    ``r.values`` (all), attribute access by name (``r.fid``, ``r.kid_se``), ``float(r)``."""

    name: str
    values: dict
    protocol: str
    details: dict = field(default_factory=dict)

    @property
    def value(self) -> float:
        return next(iter(self.values.values()))

    def __getattr__(self, key: str) -> Any:
        values = self.__dict__.get("values", {})
        if key in values:
            return values[key]
        raise AttributeError(f"{self.__dict__.get('name', 'result')} has no value {key!r}; it has {sorted(values)}")

    def __float__(self) -> float:
        return float(self.value)

    def __str__(self) -> str:
        shown = ", ".join(f"{k} = {v:.4g}" for k, v in self.values.items())
        return f"{self.name}: {shown}\n  protocol: {self.protocol}"

    __repr__ = __str__


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Plain-text table of ``rows`` (dicts), one column per key (or the given ``columns``)."""
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = lambda items: "  ".join(s.rjust(w) if i else s.ljust(w) for i, (s, w) in enumerate(zip(items, widths)))
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


@dataclass(repr=False)
class Report:
    """All sample metrics of one set of images; ``print(report)`` shows a table (with the recorded
    real-vs-real floor at the same n when there is one), ``report.as_dict()`` the numbers."""

    dataset: str
    n: int
    results: dict
    floor: dict | None = None

    def as_dict(self) -> dict:
        """Flat ``{metric: value}``: fid, kid, kid_se, is, is_std, precision, recall, density, coverage
        and class_accuracy (when intended labels were given)."""
        out = {}
        for r in self.results.values():
            out.update(r.values)
        return out

    def protocols(self) -> dict:
        return {k: r.protocol for k, r in self.results.items()}

    def __getitem__(self, key: str) -> Result:
        return self.results[key]

    def __str__(self) -> str:
        values = self.as_dict()
        rows = []
        for key, (label, better) in METRICS.items():
            if key in values:
                row = {"metric": label, "value": values[key], "better": better}
                if self.floor is not None:
                    row["real floor"] = self.floor.get(key)
                rows.append(row)
        head = f"{self.dataset}, n = {self.n} generated images"
        prot = "\n".join(f"  {r.name}: {r.protocol}" for r in self.results.values())
        return f"{head}\n{table(rows)}\nprotocols:\n{prot}"

    __repr__ = __str__


# ---------------------------------------------------------------------------
# The metrics
# ---------------------------------------------------------------------------
class _Precomputed(nn.Module):
    """Identity "feature extractor": lets torchmetrics work on features we computed once."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, f: Tensor) -> Tensor:
        return f


@contextlib.contextmanager
def _seeded(seed: int = SEED):
    """torchmetrics draws the IS splits from the global RNG: fix it, then restore it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            warnings.filterwarnings("ignore", message=".*degrees of freedom is <= 0.*")  # std of 1 split
            yield


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2):
    ``|mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1^{1/2} sigma2 sigma1^{1/2})^{1/2})``, in float64.

    (``tr (sigma1 sigma2)^{1/2}`` equals the trace of the symmetric square root used here.)
    """
    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64) for m in (mu1, mu2))
    s1, s2 = (torch.as_tensor(s, dtype=torch.float64) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.shape[-1],) * 2:
        raise ValueError(f"shapes do not match: mu {tuple(mu1.shape)}, {tuple(mu2.shape)}; "
                         f"sigma {tuple(s1.shape)}, {tuple(s2.shape)} (expected (d,) and (d, d))")
    evals, evecs = torch.linalg.eigh((s1 + s1.T) / 2)
    root1 = evecs @ torch.diag(evals.clamp_min(0).sqrt()) @ evecs.T          # sigma1^{1/2}
    middle = root1 @ s2 @ root1
    tr_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * tr_root)


def _fid_value(f_fake: Tensor, f_real: Tensor) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=_Precomputed(f_fake.shape[1]))
    metric.update(f_real.double(), real=True)
    metric.update(f_fake.double(), real=False)
    return float(metric.compute())


def fid(fake, dataset: str, *, real: Any = "test", device: torch.device | str = "cpu") -> Result:
    """Fréchet distance between Gaussians fitted to the classifier features of ``fake`` and ``real``.

    torchmetrics' ``FrechetInceptionDistance`` with the domain classifier's
    fc1+ReLU layer (128-d) as its feature module; ``real`` defaults to the whole
    test split.  Lower is better; 0 only for identical feature means and
    covariances.  Biased upwards for small n: compare at the same n only.
    """
    f, r = _embedding(fake, dataset, device), reference(dataset, real, device)
    value = _fid_value(f.features, r.features)
    return Result("FID", {"fid": value},
                  f"FID (Fréchet distance, lower is better) in {_space(dataset)}; {len(f)} generated vs {r.source}")


def _poly_kernel_sum(x: Tensor, y: Tensor | None = None, chunk: int = 2048) -> float:
    """Sum of ``k(a, b) = (a.b / d + 1)^3`` over all pairs of rows (a of x, b of y), without the diagonal
    when ``y`` is None (then pairs of x with itself); accumulated in float64, chunk by chunk."""
    d, total = x.shape[1], 0.0
    other = x if y is None else y
    for i in range(0, len(x), chunk):
        k = (x[i:i + chunk] @ other.T / d + 1) ** 3                # (chunk, len(other))
        total += float(k.sum(dtype=torch.float64))
        if y is None:
            total -= float(torch.diagonal(k, offset=i).sum(dtype=torch.float64))  # k(a, a)
    return total


_KERNEL_SUMS: dict = {}


def mmd2_unbiased(x: Tensor, y: Tensor, *, reuse_y: bool = False) -> float:
    """Unbiased MMD² between samples ``x`` (m, d) and ``y`` (n, d) with the cubic polynomial kernel:
    ``sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (n(n-1)) - 2 sum_ij k(x_i, y_j) / (mn)``.

    ``reuse_y`` keeps the y-y sum for the next call with the same tensor ``y`` (a cached reference).
    """
    m, n = len(x), len(y)
    if reuse_y:
        if id(y) not in _KERNEL_SUMS or _KERNEL_SUMS[id(y)][0] is not y:
            _KERNEL_SUMS[id(y)] = (y, _poly_kernel_sum(y))
        yy = _KERNEL_SUMS[id(y)][1]
    else:
        yy = _poly_kernel_sum(y)
    return _poly_kernel_sum(x) / (m * (m - 1)) + yy / (n * (n - 1)) - 2 * _poly_kernel_sum(x, y) / (m * n)


def kid(fake, dataset: str, *, real: Any = "test", blocks: int = KID_BLOCKS,
        device: torch.device | str = "cpu") -> Result:
    """Kernel distance: the unbiased MMD² between classifier features (128-d fc1+ReLU) with the kernel
    ``k(a, b) = (a.b / d + 1)^3``, estimated from *all* generated and reference images.

    ``kid_se``: its standard error, from the spread of the same estimate over
    ``blocks`` disjoint pairs of subsets (each 1/blocks of both sets, seed 0):
    ``std(block estimates) / sqrt(blocks)``.  torchmetrics'
    ``KernelInceptionDistance`` averages 100 random subsets of 1000 instead: the
    same expectation, at 25x the work for 1,000 samples on a CPU.  Unbiased, so
    it can be slightly negative, and far less dependent on n than FID.  Its scale
    follows the feature magnitudes: compare it only within one feature space.
    """
    f, r = _embedding(fake, dataset, device), reference(dataset, real, device)
    value = mmd2_unbiased(f.features, r.features, reuse_y=isinstance(real, str))
    size = min(len(f), len(r)) // blocks
    se = math.nan
    if size >= 2 and blocks >= 2:
        pf = torch.randperm(len(f), generator=torch.Generator().manual_seed(SEED))
        pr = torch.randperm(len(r), generator=torch.Generator().manual_seed(SEED + 1))
        parts = [mmd2_unbiased(f.features[pf[i * size:(i + 1) * size]], r.features[pr[i * size:(i + 1) * size]])
                 for i in range(blocks)]
        se = float(torch.tensor(parts, dtype=torch.float64).std()) / math.sqrt(blocks)
    return Result("KID", {"kid": value, "kid_se": se},
                  f"KID (unbiased MMD^2, cubic polynomial kernel, lower is better) in {_space(dataset)}; "
                  f"all {len(f)} generated vs {r.source}; standard error from {blocks} disjoint subset pairs of {size}")


def inception_score(fake, dataset: str, *, splits: int = IS_SPLITS, device: torch.device | str = "cpu") -> Result:
    """Classifier Inception Score ``exp E_x KL(p(y|x) || p(y))`` with the domain classifier's logits.

    torchmetrics' ``InceptionScore`` (mean and std over ``splits`` splits, seed 0).
    Between 1 and 10 (the number of classes); higher means confident *and*
    varied predictions.  It never looks at real images.
    """
    from torchmetrics.image.inception import InceptionScore

    f = _embedding(fake, dataset, device)
    with _seeded():
        metric = InceptionScore(feature=_Precomputed(f.logits.shape[1]), splits=splits)
        metric.update(f.logits.double())
        mean, std = metric.compute()
    return Result("IS", {"is": float(mean), "is_std": float(std)},
                  f"classifier Inception Score (higher is better, at most 10) from {classifiers.recipe_name(dataset)} "
                  f"logits; {len(f)} generated images, {splits} splits, seed {SEED}")


_RADII: dict = {}


def _knn_radii(x: Tensor, k: int, chunk: int = 2048) -> Tensor:
    """Distance from each row of ``x`` to its k-th nearest *other* row, (N,)."""
    if len(x) <= k:
        raise ValueError(f"need more than k = {k} points for k-nearest-neighbour radii, got {len(x)}")
    out = []
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i:i + chunk], x)                     # (chunk, N)
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])  # index 0 is the point itself
    return torch.cat(out)


def manifold_metrics(fake, dataset: str, *, real: Any = "test", k: int = K_NEAREST,
                     device: torch.device | str = "cpu", chunk: int = 2048) -> dict:
    """Precision, recall, density and coverage in one pass (see :func:`precision_recall`,
    :func:`density_coverage`); returns ``{"values": {...}, "n_real": N, "n_fake": M, "source": ...}``."""
    f, r = _embedding(fake, dataset, device), reference(dataset, real, device)
    key = (id(r.features), len(f), k)
    if isinstance(real, str) and key in _RADII and _RADII[key][0] is r.features:
        _, r, real_f, r_real = _RADII[key]                     # a cached reference: reuse its subset and radii
    else:
        full = r.features
        if len(r) > len(f):  # equal sizes: the first len(f) of a fixed permutation of the reference
            r = r.take(len(f), shuffle_seed=SEED, source=f"{len(f)} of the {r.source} (random subset, seed {SEED})")
        real_f = r.features.double()
        r_real = _knn_radii(real_f, k)
        if isinstance(real, str):
            _RADII[key] = (full, r, real_f, r_real)
    values = prdc(real_f, f.features, k, real_radii=r_real, chunk=chunk)
    return {"values": values, "n_fake": len(f), "n_real": len(r), "source": r.source, "k": k}


def prdc(real: Tensor, fake: Tensor, k: int = K_NEAREST, *, real_radii: Tensor | None = None,
         chunk: int = 2048) -> dict:
    """Precision, recall, density and coverage of points ``fake`` (M, d) against ``real`` (N, d), any
    feature space (e.g. 2-D toy data); the k-NN radii exclude each point itself."""
    real_f, fake_f = real.double(), fake.double()
    r_real = _knn_radii(real_f, k) if real_radii is None else real_radii
    r_fake = _knn_radii(fake_f, k)
    inside = torch.zeros(len(fake_f), dtype=torch.float64)    # per fake: number of real balls containing it
    recalled = torch.zeros(len(real_f), dtype=torch.bool)     # per real: inside some fake ball
    nearest = torch.full((len(real_f),), math.inf, dtype=torch.float64)  # per real: distance to nearest fake
    for i in range(0, len(fake_f), chunk):
        d = torch.cdist(fake_f[i:i + chunk], real_f)           # (chunk, N)
        inside[i:i + chunk] = (d <= r_real[None, :]).sum(1).double()
        recalled |= (d <= r_fake[i:i + chunk, None]).any(0)
        nearest = torch.minimum(nearest, d.min(0).values)
    return {"precision": float((inside > 0).double().mean()), "recall": float(recalled.double().mean()),
            "density": float(inside.sum() / (k * len(fake_f))), "coverage": float((nearest <= r_real).double().mean())}


def _manifold_protocol(m: dict, dataset: str, what: str) -> str:
    return (f"{what} with k = {m['k']} nearest-neighbour balls in {_space(dataset)}; "
            f"{m['n_fake']} generated vs {m['source']}")


def precision_recall(fake, dataset: str, *, real: Any = "test", k: int = K_NEAREST,
                     device: torch.device | str = "cpu") -> Result:
    """Improved precision and recall (k-NN manifolds).

    The real manifold is the union of balls around each real feature vector with
    radius the distance to its k-th nearest real neighbour; likewise for fakes.
    *Precision*: share of fakes inside the real manifold (quality).  *Recall*:
    share of reals inside the fake manifold (diversity).  Reals: a random subset
    of the reference the size of the fake set.
    """
    m = manifold_metrics(fake, dataset, real=real, k=k, device=device)
    return Result("precision/recall", {key: m["values"][key] for key in ("precision", "recall")},
                  _manifold_protocol(m, dataset, "improved precision/recall (higher is better)"))


def density_coverage(fake, dataset: str, *, real: Any = "test", k: int = K_NEAREST,
                     device: torch.device | str = "cpu") -> Result:
    """Density and coverage (k-NN balls around *real* points only, so robust to fake outliers).

    *Density*: mean number of real balls containing each fake, divided by k
    (about 1 for real data; above 1 when fakes crowd dense regions).
    *Coverage*: share of real balls that contain at least one fake.
    """
    m = manifold_metrics(fake, dataset, real=real, k=k, device=device)
    return Result("density/coverage", {key: m["values"][key] for key in ("density", "coverage")},
                  _manifold_protocol(m, dataset, "density/coverage (coverage: higher is better; density ~1 for real)"))


def class_accuracy(fake, intended_labels: Tensor, dataset: str, *, device: torch.device | str = "cpu") -> Result:
    """Share of class-conditional samples that the domain classifier assigns to the intended class.

    ``values["class_accuracy"]`` overall; ``details["per_class"]`` a list of 10
    accuracies (NaN for classes with no sample).
    """
    f = _embedding(fake, dataset, device)
    labels = torch.as_tensor(intended_labels).long().cpu().reshape(-1)
    if labels.shape[0] != len(f):
        raise ValueError(f"got {labels.shape[0]} intended labels for {len(f)} images")
    if labels.min() < 0 or labels.max() >= f.logits.shape[1]:
        raise ValueError(f"intended labels must be in 0..{f.logits.shape[1] - 1}")
    correct = (f.logits.argmax(1) == labels).float()
    per_class = [float(correct[labels == c].mean()) if (labels == c).any() else math.nan
                 for c in range(f.logits.shape[1])]
    return Result("class accuracy", {"class_accuracy": float(correct.mean())},
                  f"share of {len(f)} conditional samples that {classifiers.recipe_name(dataset)} "
                  "assigns to the intended class (higher is better)", {"per_class": per_class})


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
        fake = fake.take(n) if isinstance(fake, Embedding) else fake[:n]
        labels = labels[:n] if labels is not None else None
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


# ---------------------------------------------------------------------------
# The toy ring: counting modes
# ---------------------------------------------------------------------------
@dataclass
class ModeCount:
    covered: int
    modes: int
    high_quality: float
    counts: list
    protocol: str

    def __str__(self) -> str:
        return (f"modes covered: {self.covered} / {self.modes}, high-quality samples: {self.high_quality:.1%}\n"
                f"  protocol: {self.protocol}")

    __repr__ = __str__


def count_modes(x: Tensor, centres: Tensor, std: float, *, threshold: float = 3.0,
                min_fraction: float = 0.1) -> ModeCount:
    """Mode coverage of 2-D samples ``x`` (N, 2) from a mixture with ``centres`` (K, 2) (e.g.
    :func:`gencourse.data.ring_modes`) and component standard deviation ``std``.

    A sample is **high quality** if it lies within ``threshold * std`` of its
    nearest centre.  A mode is **covered** if it receives at least
    ``max(1, min_fraction * N / K)`` high-quality samples, i.e. at least 10% (by
    default) of the share a perfect sampler would give it.
    """
    x, centres = torch.as_tensor(x).double(), torch.as_tensor(centres).double()
    if x.dim() != 2 or x.shape[1] != centres.shape[1]:
        raise ValueError(f"expected samples (N, {centres.shape[1]}), got {tuple(x.shape)}")
    d = torch.cdist(x, centres)                               # (N, K)
    dist, nearest = d.min(1)
    good = dist <= threshold * std
    counts = torch.bincount(nearest[good], minlength=len(centres))
    need = max(1.0, min_fraction * len(x) / len(centres))
    covered = int((counts >= need).sum())
    return ModeCount(covered, len(centres), float(good.float().mean()), counts.tolist(),
                     f"{len(x)} samples; high quality = within {threshold:g} std ({threshold * std:.3g}) of a centre; "
                     f"a mode is covered with >= {need:.3g} high-quality samples ({min_fraction:.0%} of N/K)")


# ---------------------------------------------------------------------------
# Real-vs-real floors
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# What each metric catches: corrupted real images
# ---------------------------------------------------------------------------
def _blur(x: Tensor, sigma: float) -> Tensor:
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    w = (w / w.sum()).to(x.dtype)
    x = torch.nn.functional.conv2d(x, w.view(1, 1, 1, -1), padding=(0, r))   # rows
    return torch.nn.functional.conv2d(x, w.view(1, 1, -1, 1), padding=(r, 0))  # columns


def sensitivity_cases(dataset: str, n: int, *, seed: int = SEED, split: str = "train") -> dict:
    """Real images and systematically damaged copies, each ``(images (n, 1, 28, 28), labels (n,))``.

    ``real``; ``blur`` (Gaussian, std 1 pixel); ``noise`` (additive Gaussian, std
    0.25, clipped); ``half the classes`` (classes 5-9 replaced by more images of
    classes 0-4); ``one class`` (all class 0: mode collapse); ``copies`` (10
    distinct images repeated: memorisation); ``pure noise`` (uniform pixels).
    Drawn from ``split`` (default train, disjoint from the test reference).
    """
    images, labels = data.load(dataset, split)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(labels), generator=g)
    x, y = data.to_float(images[perm[:n]]), labels[perm[:n]]

    def from_classes(keep: Sequence[int]) -> tuple[Tensor, Tensor]:
        pool = perm[torch.isin(labels[perm], torch.tensor(list(keep)))]
        idx = pool[torch.arange(n) % len(pool)]  # repeats only if n exceeds what these classes have
        return data.to_float(images[idx]), labels[idx]

    noisy = (x + 0.25 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    copies = x[torch.arange(n) % 10]
    return {"real": (x, y), "blur": (_blur(x, 1.0), y), "noise": (noisy, y),
            "half the classes": from_classes(range(5)), "one class": from_classes([0]),
            "copies": (copies, y[torch.arange(n) % 10]), "pure noise": (torch.rand(x.shape, generator=g), y)}


# ---------------------------------------------------------------------------
# Inception-FID (optional: needs torch-fidelity and the Inception weights)
# ---------------------------------------------------------------------------
class InceptionUnavailable(RuntimeError):
    """Inception-v3 features cannot be loaded here (no torch-fidelity, no weights, offline)."""


INCEPTION_WEIGHTS_ENV = "GENCOURSE_INCEPTION_WEIGHTS"


def inception_fid(fake: Tensor, dataset: str, *, real: str | Tensor = "test", n_real: int | None = None,
                  weights_path: str | os.PathLike | None = None, device: torch.device | str = "cpu",
                  batch_size: int = 100) -> Result:
    """The classic FID: Inception-v3 pool3 features (2048-d) of the images resized to 299x299, grey
    repeated to RGB (torchmetrics, which needs ``torch-fidelity`` and the FID Inception weights:
    downloaded on first use, or a local file via ``weights_path`` / ``$GENCOURSE_INCEPTION_WEIGHTS``).

    Raises :class:`InceptionUnavailable` with a one-line reason when it cannot run.
    Slow on a CPU (about 10 images/s/core); use a GPU or a few hundred images.
    """
    weights_path = weights_path or os.environ.get(INCEPTION_WEIGHTS_ENV) or None
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        raise InceptionUnavailable("Inception-FID needs torch-fidelity (pip install torch-fidelity) and, on first "
                                   "use, internet access or a local weights file; using the offline "
                                   "domain-classifier FID instead") from None
    from torchmetrics.image.fid import FrechetInceptionDistance

    kw = {"feature_extractor_weights_path": str(weights_path)} if weights_path else {}
    try:
        metric = FrechetInceptionDistance(feature=2048, normalize=True, **kw).to(device)
    except Exception as err:  # no network, bad file, ...
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise InceptionUnavailable(f"could not load the Inception-v3 weights ({type(err).__name__}: {first}); "
                                   f"set {INCEPTION_WEIGHTS_ENV} to a local weights file or go online") from None
    if isinstance(real, str):
        images, _ = data.load(dataset, real)
        real = data.to_float(images[: n_real or len(images)])
    with torch.no_grad():
        for imgs, is_real in ((as_images(real), True), (as_images(fake), False)):
            for i in range(0, len(imgs), batch_size):
                metric.update(imgs[i:i + batch_size].to(device).repeat(1, 3, 1, 1), real=is_real)
    return Result("Inception-FID", {"inception_fid": float(metric.compute())},
                  f"FID in Inception-v3 pool3 (2048-d, ImageNet weights), images resized to 299x299 and repeated "
                  f"to RGB; {len(fake)} generated vs {len(real)} real {dataset} images")


# ---------------------------------------------------------------------------
# The leaderboard: every shipped model on one protocol
# ---------------------------------------------------------------------------
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


if __name__ == "__main__":
    raise SystemExit(main())
