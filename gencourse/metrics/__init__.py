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

The package, one concept a module: :mod:`~gencourse.metrics.features` (the classifier feature
space), :mod:`~gencourse.metrics.results` (:class:`Result`, :class:`Report`, :func:`table`),
:mod:`~gencourse.metrics.distances` (FID, KID, IS, precision/recall, density/coverage, class
accuracy; no model family), :mod:`~gencourse.metrics.protocol` (:func:`evaluate` and the floors),
:mod:`~gencourse.metrics.modes`, :mod:`~gencourse.metrics.sensitivity`,
:mod:`~gencourse.metrics.inception` and :mod:`~gencourse.metrics.board` (the leaderboard, above
the model families, and the command line).
"""
from __future__ import annotations

from .board import LEADERBOARD_PATH, LIKELIHOOD_KEYS, Leaderboard, leaderboard, main, write_leaderboard
from .distances import (IS_SPLITS, K_NEAREST, KID_BLOCKS, SEED, class_accuracy, density_coverage, fid,
                        frechet_distance, inception_score, kid, manifold_metrics, mmd2_unbiased, prdc,
                        precision_recall)
from .features import Embedding, classifier_sha256, embed, load_classifier, reference
from .inception import INCEPTION_WEIGHTS_ENV, InceptionUnavailable, inception_fid
from .modes import ModeCount, count_modes
from .protocol import FLOOR_PATH, FLOOR_SIZES, compute_floor, evaluate, real_floor, write_floors
from .results import METRICS, Report, Result, table
from .sensitivity import sensitivity_cases

__all__ = ["load_classifier", "embed", "Embedding", "Result", "Report", "fid", "kid", "inception_score",
           "precision_recall", "density_coverage", "prdc", "manifold_metrics", "class_accuracy", "evaluate", "frechet_distance",
           "count_modes", "ModeCount", "real_floor", "compute_floor", "write_floors", "leaderboard", "Leaderboard",
           "inception_fid", "InceptionUnavailable", "sensitivity_cases", "FLOOR_PATH", "LEADERBOARD_PATH",
           "K_NEAREST", "KID_BLOCKS", "mmd2_unbiased", "IS_SPLITS", "FLOOR_SIZES",
           "table", "reference", "classifier_sha256", "write_leaderboard", "main", "METRICS", "SEED",
           "LIKELIHOOD_KEYS", "INCEPTION_WEIGHTS_ENV"]
