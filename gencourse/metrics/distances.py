"""The sample metrics (Chapter 7): distances between generated and real images in the classifier's
feature space.

:func:`fid` (Fréchet distance of Gaussians fitted to the features, torchmetrics' FID with the
classifier as a custom feature module, :func:`frechet_distance` for any Gaussians),
:func:`inception_score` (torchmetrics, the classifier's logits in place of Inception's), :func:`kid`
(unbiased polynomial-kernel MMD² over all samples, :func:`mmd2_unbiased`), :func:`precision_recall`
and :func:`density_coverage` (k-nearest-neighbour manifolds, :func:`prdc` for any points) and
:func:`class_accuracy` of class-conditional samples.  No model family is imported here.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from .. import classifiers, validate
from .features import _embedding, _space, reference
from .results import Result


K_NEAREST = 5           # neighbours for precision/recall/density/coverage
KID_BLOCKS = 10        # disjoint subset pairs for the spread of KID
IS_SPLITS = 10
SEED = 0                # every random choice of a protocol (reference subsets, KID subsets, IS splits)


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
    validate.integer(blocks, "kid: blocks", lo=1, fix=f"e.g. blocks={KID_BLOCKS} (the standard error needs >= 2)")
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


#: relative tolerance under which a distance counts as equal to a ball's radius (a tie: outside an open ball)
TIE_RTOL = 1e-9


def _inside(d: Tensor, radius: Tensor) -> Tensor:
    """``d < radius`` for open balls, with ties decided the same whichever way they were computed: the
    matrix-product distances of ``torch.cdist`` round d(a, b) and d(b, a) differently (about 1e-14 relative
    in float64 near the radius), so a point at exactly the k-th distance would otherwise land inside or
    outside at random.  Distances within ``TIE_RTOL`` of the radius count as on the sphere, hence outside."""
    return d < radius * (1 - TIE_RTOL)


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
    feature space (e.g. 2-D toy data); the k-NN radii exclude each point itself.

    The balls are *open* (a point counts as inside when its distance is strictly less than the radius), as in
    the authors' reference code (Naeem et al., 2020, ``clovaai/generative-evaluation-prdc``).  It matters only
    with ties: with open balls (a tie within rounding counts as outside, :func:`_inside`) two identical sets
    give density exactly 1 (each real ball holds its own centre and k - 1 neighbours); closed balls also
    count the k-th neighbour on the sphere, (k + 1) / k."""
    fix = "pass feature vectors as float tensors (N, d) and (M, d), without NaN, with more than k rows each"
    validate.tensor(real, "prdc: real", ndim=2, dtype="float", finite=True, fix=fix)
    validate.tensor(fake, "prdc: fake", ndim=2, dtype="float", finite=True, fix=fix)
    if fake.shape[1] != real.shape[1]:
        validate.fail("prdc: fake", f"{real.shape[1]} features per row, like real", validate.describe(fake),
                      "compute both sets in the same feature space")
    validate.integer(k, "prdc: k", lo=1, hi=min(len(real), len(fake)) - 1,
                     fix=f"e.g. k={K_NEAREST}, fewer than the number of points in each set")
    if real_radii is not None:
        validate.tensor(real_radii, "prdc: real_radii", shape=(len(real),), dtype="float", finite=True)
    real_f, fake_f = real.double(), fake.double()
    r_real = _knn_radii(real_f, k) if real_radii is None else real_radii
    r_fake = _knn_radii(fake_f, k)
    inside = torch.zeros(len(fake_f), dtype=torch.float64)    # per fake: number of real balls containing it
    recalled = torch.zeros(len(real_f), dtype=torch.bool)     # per real: inside some fake ball
    nearest = torch.full((len(real_f),), math.inf, dtype=torch.float64)  # per real: distance to nearest fake
    for i in range(0, len(fake_f), chunk):
        d = torch.cdist(fake_f[i:i + chunk], real_f)           # (chunk, N)
        inside[i:i + chunk] = _inside(d, r_real[None, :]).sum(1).double()
        recalled |= _inside(d, r_fake[i:i + chunk, None]).any(0)
        nearest = torch.minimum(nearest, d.min(0).values)
    return {"precision": float((inside > 0).double().mean()), "recall": float(recalled.double().mean()),
            "density": float(inside.sum() / (k * len(fake_f))),
            "coverage": float(_inside(nearest, r_real).double().mean())}


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


def check_labels(labels: Any, n: int, num_classes: int = 10, name: str = "labels") -> Tensor:
    """Intended classes of ``n`` samples: whole numbers in 0..num_classes-1, shape (n,); returned as int64 on the CPU."""
    validate.tensor(labels, name, shape=(n,), values=(0, num_classes - 1), integral=True,
                    fix=f"pass one class index (0..{num_classes - 1}) per image, e.g. an int64 tensor of shape ({n},)")
    return labels.long().cpu()


def class_accuracy(fake, intended_labels: Tensor, dataset: str, *, device: torch.device | str = "cpu") -> Result:
    """Share of class-conditional samples that the domain classifier assigns to the intended class.

    ``values["class_accuracy"]`` overall; ``details["per_class"]`` a list of 10
    accuracies (NaN for classes with no sample).
    """
    f = _embedding(fake, dataset, device)
    labels = check_labels(intended_labels, len(f), f.logits.shape[1], "class_accuracy: intended labels")
    correct = (f.logits.argmax(1) == labels).float()
    per_class = [float(correct[labels == c].mean()) if (labels == c).any() else math.nan
                 for c in range(f.logits.shape[1])]
    return Result("class accuracy", {"class_accuracy": float(correct.mean())},
                  f"share of {len(f)} conditional samples that {classifiers.recipe_name(dataset)} "
                  "assigns to the intended class (higher is better)", {"per_class": per_class})
