"""GAN objectives as plain functions (Chapter 4).

Convention (the standard one): the discriminator outputs a **logit** ``l`` and
``D(x) = sigmoid(l)`` is the probability that ``x`` is **real**; real images have
target 1 and generated ("fake") images target 0.  (Some slides use the opposite
labels, fake = 1; that only swaps the roles of ``D`` and ``1 - D``.)  Working with
logits instead of probabilities keeps every log finite: ``log D = -softplus(-l)``
and ``log(1 - D) = -softplus(l)``.

Every loss is a scalar: a **mean over the batch** (over all leading dimensions,
e.g. (seeds, batch) for the toy ensembles), never a sum.

========================  =====================================================
:func:`value_function`     ``V(D, G) = E_x log D(x) + E_z log(1 - D(G(z)))``
:func:`discriminator_loss` ``L_D = -V``, i.e. BCE(real, 1) + BCE(fake, 0)
:func:`generator_loss`     saturating ``E_z log(1 - D(G(z)))`` (= the G-part of
                           ``V``; "L_G = -L_D") or non-saturating ``-E_z log D(G(z))``
:func:`critic_loss`        Wasserstein critic ``E f(G(z)) - E f(x)``
:func:`wasserstein_generator_loss`  ``-E f(G(z))``
:func:`gradient_penalty`   ``E (||grad f(x_hat)||_2 - 1)^2``, x_hat on real-fake lines
:func:`hinge_discriminator_loss`  ``E max(0, 1 - l(x)) + E max(0, 1 + l(G(z)))``
:func:`hinge_generator_loss`      ``-E l(G(z))``
:func:`r1_penalty`         ``E ||grad_x l(x)||_2^2`` on real data (times gamma / 2)
========================  =====================================================
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from .. import utils

__all__ = ["value_function", "discriminator_loss", "generator_loss", "generator_loss_saturating",
           "generator_loss_nonsaturating", "critic_loss", "wasserstein_generator_loss", "gradient_penalty",
           "label_targets", "optimal_discriminator", "GENERATOR_LOSSES", "hinge_discriminator_loss",
           "hinge_generator_loss", "r1_penalty"]

GENERATOR_LOSSES = ("non-saturating", "saturating")


def _target(logits: Tensor, target: float | Tensor) -> Tensor:
    if not isinstance(target, Tensor):  # a number: a fill on the device, no host-to-device copy (no sync)
        return torch.full_like(logits, float(target))
    t = target.to(logits.device, logits.dtype)
    return t.expand_as(logits) if t.dim() == 0 else t.reshape(logits.shape)


def value_function(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The minimax value ``V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]`` (nats; D maximises it).

    ``real_logits``: D's logits on real data, ``fake_logits`` on generated data, any shape;
    each expectation is a mean over its batch.  At most 0; ``-log 4`` when D = 1/2 everywhere.
    """
    return -F.softplus(-real_logits).mean() - F.softplus(fake_logits).mean()  # log sigmoid(l), log(1 - sigmoid(l))


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, *, real_target: float | Tensor = 1.0,
                       fake_target: float | Tensor = 0.0) -> Tensor:
    """Binary cross-entropy of the discriminator: ``BCE(D(x), 1) + BCE(D(G(z)), 0)``, each a batch mean.

    With the default targets this is ``-V(D, G)``.  ``real_target`` / ``fake_target``
    (a number or a tensor shaped like the logits) implement label smoothing, label
    noise and label flips (see :func:`label_targets`).  Units: nats.
    """
    bce = F.binary_cross_entropy_with_logits
    return (bce(real_logits, _target(real_logits, real_target))        # -E_x log D(x)
            + bce(fake_logits, _target(fake_logits, fake_target)))     # -E_z log(1 - D(G(z)))


def generator_loss_saturating(fake_logits: Tensor) -> Tensor:
    """``E_z[log(1 - D(G(z)))]``: the generator's part of ``V`` (minimised).  Its gradient w.r.t. the
    logit is ``-D(G(z))``, which vanishes when D confidently rejects the fakes (early training)."""
    return -F.softplus(fake_logits).mean()


def generator_loss_nonsaturating(fake_logits: Tensor) -> Tensor:
    """``-E_z[log D(G(z))]`` (minimised): the same fixed point, but gradient ``-(1 - D(G(z)))`` w.r.t.
    the logit, which is largest exactly when D rejects the fakes.  What practice uses."""
    return F.softplus(-fake_logits).mean()


def generator_loss(fake_logits: Tensor, kind: str = "non-saturating") -> Tensor:
    """Generator loss of ``kind`` ``"non-saturating"`` (default) or ``"saturating"``; a batch mean, nats."""
    if kind == "non-saturating":
        return generator_loss_nonsaturating(fake_logits)
    if kind == "saturating":
        return generator_loss_saturating(fake_logits)
    raise ValueError(f"generator loss kind must be one of {GENERATOR_LOSSES}, got {kind!r}")


def critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Wasserstein critic loss ``E[f(G(z))] - E[f(x)]`` (minimised by the critic ``f``; unbounded scores, no sigmoid).

    ``-critic_loss`` estimates the Wasserstein-1 distance when ``f`` is 1-Lipschitz.
    """
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: Tensor) -> Tensor:
    """``-E[f(G(z))]``: the generator raises the critic's score of its samples."""
    return -fake_scores.mean()


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, *, batch_dims: int = 1,
                     generator: torch.Generator | None = None, eps: Tensor | None = None) -> Tensor:
    """WGAN-GP penalty ``E[(||grad_x f(x_hat)||_2 - 1)^2]`` with ``x_hat = eps x + (1 - eps) G(z)``.

    ``real`` and ``fake`` have the same shape; the first ``batch_dims`` dimensions
    index samples (1 for images (B, C, H, W); 2 for toy ensembles (S, B, 2)), the
    gradient norm is taken over the rest.  ``eps ~ U[0, 1]`` is drawn per sample
    (or given, shaped like ``real.shape[:batch_dims]``).  The result is differentiable
    w.r.t. the critic's parameters (``create_graph=True``); multiply it by the
    weight lambda (10 in the paper) yourself.  Mean over samples, a scalar.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    lead = real.shape[:batch_dims]
    if eps is None:
        eps = utils.rand(lead, generator=generator, device=real.device)
    eps = eps.to(real.device, real.dtype).reshape(*lead, *([1] * (real.dim() - batch_dims)))
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)    # points on real-fake lines
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)           # per-sample grad_x f(x_hat)
    norms = grad.flatten(batch_dims).norm(2, dim=-1)                                   # shape lead
    return (norms - 1).square().mean()


def hinge_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Hinge loss of the discriminator: ``E_x max(0, 1 - l(x)) + E_z max(0, 1 + l(G(z)))``, each a batch mean.

    A real sample whose logit is already above 1, or a fake one below -1, contributes nothing: the
    discriminator stops pushing on samples it classifies with a margin (Lim & Ye 2017; Miyato et al. 2018).
    """
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_generator_loss(fake_logits: Tensor) -> Tensor:
    """``-E_z l(G(z))``: the generator of the hinge game raises the logit of its samples (a batch mean)."""
    return -fake_logits.mean()


def r1_penalty(real_logits: Tensor, real: Tensor, *, batch_dims: int = 1) -> Tensor:
    """R1 penalty ``E_x ||grad_x l(x)||_2^2`` on real data (Mescheder et al. 2018); the loss adds it times
    ``gamma / 2``.  ``real_logits`` must have been computed from ``real`` with ``real.requires_grad``.
    Differentiable w.r.t. the discriminator's parameters (``create_graph=True``).  Mean over samples."""
    if not real.requires_grad:
        raise ValueError("r1_penalty needs the logits of real.requires_grad_(True) inputs: call "
                         "real = real.detach().requires_grad_(True) before the discriminator")
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.flatten(batch_dims).square().sum(-1).mean()


def label_targets(shape, value: float, *, smoothing: float | Tensor = 0.0, noise: float | Tensor = 0.0,
                  flip: float | Tensor = 0.0, device: torch.device | str | None = None,
                  generator: torch.Generator | None = None) -> Tensor:
    """Discriminator targets of ``shape`` for data labelled ``value`` (1 real, 0 fake), with the tricks of the slides.

    * ``smoothing``: targets move towards 1/2 by this amount (``1 -> 1 - s``, ``0 -> s``);
      *one-sided* smoothing passes it for the real targets only;
    * ``noise``: add ``U[0, noise]`` towards 1/2 on each target (noisy labels);
    * ``flip``: each target is swapped (``t -> 1 - t``) with this probability.

    Each setting is a number or a tensor that broadcasts against ``shape``, e.g. one value
    per stacked network, shape (S, 1) for targets (S, B).
    """
    settings = {"smoothing": (smoothing, 0.5), "noise": (noise, 0.5), "flip": (flip, 1.0)}
    for name, (v, hi) in settings.items():
        t = torch.as_tensor(v, dtype=torch.float32)
        if not bool(((t >= 0) & (t <= hi)).all()):
            raise ValueError(f"need 0 <= {name} <= {hi:g} (every entry), got {v}")
    towards_half = 1.0 if value < 0.5 else -1.0
    as_t = lambda v: torch.as_tensor(v, dtype=torch.float32, device=device)  # noqa: E731
    t = torch.full(tuple(shape), float(value), device=device) + towards_half * as_t(smoothing)
    if bool(torch.as_tensor(noise).ne(0).any()):
        t = t + towards_half * as_t(noise) * utils.rand(t.shape, generator=generator, device=t.device)
    if bool(torch.as_tensor(flip).ne(0).any()):
        flips = utils.rand(t.shape, generator=generator, device=t.device) < as_t(flip)
        t = torch.where(flips, 1 - t, t)
    return t


def optimal_discriminator(p_data: Tensor, p_g: Tensor) -> Tensor:
    """``D*(x) = p_data(x) / (p_data(x) + p_g(x))``, the best discriminator for a fixed generator
    (densities evaluated at the same points; 1/2 where both vanish)."""
    total = p_data + p_g
    return torch.where(total > 0, p_data / total.clamp_min(torch.finfo(total.dtype).tiny), torch.full_like(total, 0.5))
