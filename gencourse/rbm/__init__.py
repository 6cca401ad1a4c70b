"""Chapter 3: restricted Boltzmann machines (RBMs) with binary units.

The model: visible units v in {0,1}^D, hidden units h in {0,1}^K, parameters
W (D, K), visible bias b (D,) and hidden bias c (K,), with

    E(v, h) = -v^T W h - b^T v - c^T h,        p(v, h) = exp(-E(v, h)) / Z,
    F(v)    = -log sum_h exp(-E(v, h)) = -b^T v - sum_j softplus(c_j + v^T W_:j),
    p(h_j = 1 | v) = sigmoid(c_j + v^T W_:j),   p(v_i = 1 | h) = sigmoid(b_i + W_i: h).

The pieces, each small and separately tested:

* :class:`RBM`, the network: energy, free energy, conditionals, block Gibbs sampling;
* :func:`cd_loss` (CD-k / persistent CD as the autograd gradient of a free-energy
  difference) and :func:`cd_gradients` (the same update written out by hand);
* :func:`log_partition_exact` and :func:`log_likelihood_exact`: log Z by enumerating
  the smaller layer, for toy models;
* :func:`ais_log_partition`: annealed importance sampling estimate of log Z with a
  standard error, and so of test log-likelihoods in nats;
* the ``rbm-mnist`` training recipe.

Every log-likelihood is in **nats per image** (natural log, summed over the D
pixels); averages over images are stated where they are taken.

The package, one concept a module: :mod:`~gencourse.rbm.model`, :mod:`~gencourse.rbm.cd`,
:mod:`~gencourse.rbm.partition` (exact and AIS) and :mod:`~gencourse.rbm.recipes`.
"""
from __future__ import annotations

from . import recipes  # noqa: F401  (importing it registers rbm-mnist)
from .cd import cd_gradients, cd_loss
from .model import RBM, bernoulli, binarise, free_energy, hidden_probs, visible_probs
from .partition import (AISResult, ais_log_partition, all_binary_states, base_rate_bias, beta_schedule,
                        log_likelihood_exact, log_partition_exact)

__all__ = ["RBM", "free_energy", "hidden_probs", "visible_probs", "bernoulli", "cd_loss", "cd_gradients",
           "all_binary_states", "log_partition_exact", "log_likelihood_exact", "base_rate_bias",
           "beta_schedule", "AISResult", "ais_log_partition", "binarise"]
