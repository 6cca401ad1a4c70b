"""Learning an RBM by contrastive divergence (Chapter 3): :func:`cd_loss` (CD-k / persistent CD as the
autograd gradient of a free-energy difference) and :func:`cd_gradients` (the same update by hand).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .model import RBM


def cd_loss(rbm: RBM, v_data: Tensor, v_model: Tensor) -> Tensor:
    """mean_B F(v_data) - mean_B F(v_model), with the negative samples detached.

    The log-likelihood gradient is -dF(v_data)/dtheta + E_model[dF/dtheta]; with
    v_model from k Gibbs sweeps started at the data (CD-k) or from persistent chains
    (PCD), the gradient of this loss is the classic CD/PCD update with the sign for
    *descent* (see :func:`cd_gradients`).  Its value is not a log-likelihood (Z cancels).
    """
    v_data = rbm._check(v_data, rbm.n_visible, "cd_loss: v_data", binary=True)
    v_model = rbm._check(v_model, rbm.n_visible, "cd_loss: v_model", binary=True)
    return rbm.free_energy(v_data).mean() - rbm.free_energy(v_model.detach()).mean()


def cd_gradients(rbm: RBM, v_data: Tensor, v_model: Tensor) -> dict[str, Tensor]:
    """The CD/PCD update written out: <v p(h|v)^T>_model - <v p(h|v)^T>_data, etc. (gradient of :func:`cd_loss`).

    Returns ``{"W": (D, K), "b": (D,), "c": (K,)}``, means over the batch.  A
    learning step is ``theta <- theta - lr * grad``: it raises the probability of
    the data and lowers that of the model's own samples.
    """
    with torch.no_grad():
        ph_d, ph_m = rbm.hidden_probs(v_data), rbm.hidden_probs(v_model)   # (B, K)
        B_d, B_m = v_data.shape[0], v_model.shape[0]
        return {"W": v_model.T @ ph_m / B_m - v_data.T @ ph_d / B_d,
                "b": v_model.mean(0) - v_data.mean(0),
                "c": ph_m.mean(0) - ph_d.mean(0)}
