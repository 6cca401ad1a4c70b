"""The RBM of Chapter 3 with binary units: its equations as functions of explicit parameters (the AIS code
reuses them with scaled parameters, and the exercise checks compare against them) and :class:`RBM`,
the network (energy, free energy, conditionals, block Gibbs sampling).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F_
from torch import Tensor, nn

from .. import utils


def free_energy(v: Tensor, W: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """F(v) = -b^T v - sum_j softplus(c_j + v^T W_:j); v (B, D) -> (B,), in nats."""
    return -(v @ b) - F_.softplus(v @ W + c).sum(-1)


def hidden_probs(v: Tensor, W: Tensor, c: Tensor) -> Tensor:
    """p(h_j = 1 | v) = sigmoid(c_j + v^T W_:j); v (B, D) -> (B, K)."""
    return torch.sigmoid(torch.addmm(c, v, W))  # one fused c + v W


def visible_probs(h: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """p(v_i = 1 | h) = sigmoid(b_i + W_i: h); h (B, K) -> (B, D)."""
    return torch.sigmoid(torch.addmm(b, h, W.T))


def bernoulli(p: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Binary samples with probabilities ``p``, same shape and dtype; ``generator`` on any device
    (drawn there, then moved: :func:`gencourse.utils.bernoulli`)."""
    return utils.bernoulli(p, generator=generator)


class RBM(nn.Module):
    """A Bernoulli-Bernoulli RBM with ``n_visible`` D and ``n_hidden`` K units.

    Parameters: ``W`` (D, K), visible bias ``b`` (D,), hidden bias ``c`` (K,).
    Initialised with W ~ N(0, init_std^2) (drawn from ``generator``) and zero biases.
    Inputs are float tensors of shape (B, D) with values in {0, 1} (or in [0, 1]
    for the free energy and p(h | v)).
    """

    def __init__(self, n_visible: int, n_hidden: int, *, init_std: float = 0.01,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(f"an RBM needs at least one visible and one hidden unit, got {n_visible}, {n_hidden}")
        self.n_visible, self.n_hidden = int(n_visible), int(n_hidden)
        self.W = nn.Parameter(init_std * torch.randn(n_visible, n_hidden, generator=generator, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(n_visible, dtype=dtype))  # visible bias
        self.c = nn.Parameter(torch.zeros(n_hidden, dtype=dtype))   # hidden bias

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}"

    def _check(self, x: Tensor, n: int, what: str, *, binary: bool = False) -> Tensor:
        """``x`` (B, n) with values in [0, 1] (``binary``: in {0, 1}), converted to the weights' dtype."""
        from .. import validate

        kind = "binary (0 or 1)" if binary else "in [0, 1]"
        validate.tensor(x, what, shape=("B", n), values=(0, 1), integral=binary,
                        fix=f"pass units {kind}, one row per example (flatten images with x.flatten(1); "
                            "binarise 0..255 pixels with rbm.binarise)")
        return x.to(self.W.dtype)

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """E(v, h) = -v^T W h - b^T v - c^T h for each row; (B, D), (B, K) -> (B,)."""
        v, h = self._check(v, self.n_visible, "v"), self._check(h, self.n_hidden, "h")
        return -((v @ self.W) * h).sum(-1) - v @ self.b - h @ self.c

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = -log sum_h exp(-E(v, h)); (B, D) -> (B,). log p(v) = -F(v) - log Z."""
        return free_energy(self._check(v, self.n_visible, "free_energy: v"), self.W, self.b, self.c)

    def hidden_probs(self, v: Tensor) -> Tensor:
        """p(h = 1 | v), (B, D) -> (B, K)."""
        return hidden_probs(self._check(v, self.n_visible, "v"), self.W, self.c)

    def visible_probs(self, h: Tensor) -> Tensor:
        """p(v = 1 | h), (B, K) -> (B, D)."""
        return visible_probs(self._check(h, self.n_hidden, "h"), self.W, self.b)

    def sample_hidden(self, v: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """h ~ p(h | v), binary (B, K) in v's dtype."""
        return bernoulli(self.hidden_probs(v), generator)

    def sample_visible(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """v ~ p(v | h), binary (B, D)."""
        return bernoulli(self.visible_probs(h), generator)

    @torch.no_grad()
    def gibbs(self, v: Tensor, steps: int = 1, *, generator: torch.Generator | None = None,
              keep_every: int | None = None) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Run ``steps`` sweeps of block Gibbs sampling, v -> h ~ p(h|v) -> v' ~ p(v|h'), from ``v``.

        Returns the final binary visible state (B, D) (same dtype as ``v``); with
        ``keep_every=n`` also the list of the mean images p(v | h) after every
        n-th sweep (each (B, D)), for showing a chain as it runs.  Sampling uses
        ``generator`` (on v's device) if given, so a seeded generator reproduces
        the chain exactly.
        """
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        dtype = v.dtype
        v = self._check(v, self.n_visible, "gibbs: v", binary=True)
        W, b, c, frames = self.W, self.b, self.c, []
        for t in range(1, steps + 1):
            h = bernoulli(hidden_probs(v, W, c), generator)    # h ~ p(h | v), (B, K)
            p_v = visible_probs(h, W, b)                       # p(v = 1 | h), (B, D)
            v = bernoulli(p_v, generator)
            if keep_every and t % keep_every == 0:
                frames.append(p_v)
        v = v.to(dtype)
        return (v, frames) if keep_every else v

    @torch.no_grad()
    def reconstruction_error(self, v: Tensor) -> Tensor:
        """Mean over images of the squared error sum_i (v_i - p(v_i=1 | p(h|v)))^2, mean-field, in pixels^2.

        Cheap to monitor but **not** the training objective: it can fall while the likelihood gets worse.
        """
        p = self.visible_probs(self.hidden_probs(self._check(v, self.n_visible, "v")))
        return ((v - p) ** 2).sum(1).mean()


def binarise(images: Tensor) -> Tensor:
    """uint8 images (N, 28, 28) -> float32 (N, 784) in {0, 1}, pixel on when > 127 (as in Chapter 0)."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images from gencourse.data.load, got {images.dtype}")
    return (images.flatten(1) > 127).float()
