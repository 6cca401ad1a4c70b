"""The GAN training step (Chapter 4): :func:`gan_step` for :class:`gencourse.train.Trainer`, the weight
average of the generator (:func:`ema_update`), fixed-code snapshots saved with the weights, and
:func:`generate`.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from .. import utils

from .losses import (critic_loss, discriminator_loss, generator_loss, gradient_penalty, hinge_discriminator_loss,
                     hinge_generator_loss, label_targets, r1_penalty, wasserstein_generator_loss)
from .networks import to_unit


LOSSES = ("non-saturating", "saturating", "wgan-gp", "hinge")


# ---------------------------------------------------------------------------
# Fixed-code samples during training (saved with the weights)
# ---------------------------------------------------------------------------
def snapshot_schedule(total: int, k: int) -> list[int]:
    """``k`` step counts from 25 (fewer for short runs) to ``total``, geometrically spaced: more early on,
    when the samples change fastest."""
    if k <= 0 or total <= 0:
        return []
    lo = max(1, min(25, total // 4))
    pts = [round(lo * (total / lo) ** (i / max(1, k - 1))) for i in range(k)]
    return sorted(set(pts))


class Snapshots(nn.Module):
    """Samples of ``n`` fixed codes (and labels) recorded after the given numbers of updates.

    A module with buffers only, so the recipe's checkpoint carries the pictures of its
    own training run.  :meth:`frames` returns ``[(step, images in [0, 1]), ...]``.
    """

    def __init__(self, steps: Sequence[int], n: int, latent_dim: int, n_classes: int = 0, seed: int = 0,
                 image_shape: Sequence[int] = (1, 28, 28)):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("z", torch.randn(n, latent_dim, generator=g))
        self.register_buffer("labels", torch.arange(n) % n_classes if n_classes else torch.zeros(n, dtype=torch.long))
        self.register_buffer("at", torch.tensor(list(steps), dtype=torch.long))
        self.register_buffer("images", torch.zeros(len(steps), n, *image_shape, dtype=torch.uint8))
        self.register_buffer("done", torch.zeros(len(steps), dtype=torch.bool))
        self.n_classes = n_classes
        self._when = {int(s): i for i, s in enumerate(steps)}

    @torch.no_grad()
    def maybe_record(self, updates: int, generator: nn.Module) -> None:
        """Record samples if ``updates`` is one of the scheduled step counts (G in eval mode, then back)."""
        i = self._when.get(int(updates))
        if i is None:
            return
        was_training = generator.training
        generator.eval()
        x = generator(self.z, self.labels if self.n_classes else None)
        generator.train(was_training)
        self.images[i] = (to_unit(x.float()) * 255).round().to(torch.uint8)
        self.done[i] = True

    def frames(self) -> list[tuple[int, Tensor]]:
        return [(int(s), self.images[i].float().cpu() / 255) for i, s in enumerate(self.at.tolist())
                if bool(self.done[i])]


# ---------------------------------------------------------------------------
# The training step
# ---------------------------------------------------------------------------
@contextlib.contextmanager
def frozen(module: nn.Module):
    """Within the block, ``module``'s parameters do not require gradients (those that did are switched back
    after it, also after an error).  For the generator's update: the loss is backpropagated through the
    discriminator to the generator's output, and D's own weight gradients, which the next D update would
    discard (``zero_grad``) unused, are never computed.  G's gradients are unchanged: the gradient with
    respect to a layer's input does not depend on whether its weight gradient is computed."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p in params:
            p.requires_grad_(True)


def gan_step(generator: nn.Module, discriminator: nn.Module, opt_g: torch.optim.Optimizer,
             opt_d: torch.optim.Optimizer, *, latent_dim: int, loss: str = "non-saturating", d_steps: int = 1,
             g_steps: int = 1, gp_weight: float = 10.0, real_smoothing: float = 0.0, label_noise: float = 0.0,
             flip: float = 0.0, r1_weight: float = 0.0, r1_every: int = 1, batch_dims: int = 1, snapshots: Snapshots | None = None,
             ema: nn.Module | None = None, ema_decay: float = 0.999) -> Callable:
    """A step function ``step(batch, trainer) -> {"d_loss", "g_loss", ...}`` for the alternating game.

    Each call makes **one discriminator update** on ``batch`` (real images, or
    ``(images, labels)`` for conditional networks) against a fresh batch of fakes;
    on every ``d_steps``-th call (``trainer.step % d_steps == 0``) it then makes
    ``g_steps`` **generator updates**.  So ``d_steps=5`` is the WGAN-GP schedule of
    five critic updates per generator update.

    ``loss``: ``"non-saturating"`` or ``"saturating"`` generator loss with the BCE
    discriminator, or ``"wgan-gp"`` (critic loss + ``gp_weight`` x gradient
    penalty, generator ``-E f(G(z))``) or ``"hinge"`` (:func:`~gencourse.gan.losses.hinge_discriminator_loss`,
    generator ``-E l(G(z))``).  ``r1_weight`` = gamma adds ``gamma / 2`` times the R1
    penalty on real data to the discriminator's loss (any loss); with ``r1_every`` = k > 1 the penalty is
    "lazy" (as in StyleGAN2): computed only on every k-th discriminator update (``trainer.step % k == 0``),
    with weight ``k * gamma / 2``, so its average strength is unchanged at about 1/k of its cost.  Label tricks (BCE losses only):
    ``real_smoothing`` (one-sided), ``label_noise`` and ``flip`` (both sides), see
    :func:`gencourse.gan.losses.label_targets`.  ``batch_dims=2`` for stacked toy
    networks (inputs (S, B, ...)).  Logged: ``d_loss`` (critic loss *without* the
    penalty for WGAN-GP, so its negative estimates W1), ``g_loss`` (of the latest
    generator update), ``gp`` (WGAN-GP, the penalty *before* the weight ``gp_weight``),
    ``r1`` (the R1 penalty before ``r1_weight / 2``, when it is on; with ``r1_every`` > 1, its latest value) and ``d_real`` /
    ``d_fake``, the mean probability (BCE losses) or raw score (WGAN-GP, hinge) D gives
    real and fake samples.

    ``ema``: a copy of the generator that tracks the exponential moving average of its
    weights (:func:`ema_update`, after every generator update); ``snapshots`` then
    records the average, which is also what the recipes sample from.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if d_steps < 1 or g_steps < 1:
        raise ValueError(f"d_steps and g_steps must be >= 1, got {d_steps}, {g_steps}")
    if r1_weight < 0:
        raise ValueError(f"r1_weight must be >= 0 (0 turns the R1 penalty off), got {r1_weight}")
    if not isinstance(r1_every, int) or r1_every < 1:
        raise ValueError(f"r1_every must be an integer >= 1 (1: the R1 penalty on every D update), got {r1_every!r}")
    wasserstein, hinge = loss == "wgan-gp", loss == "hinge"
    tricks = bool(real_smoothing or label_noise or flip)
    if tricks and (wasserstein or hinge):
        raise ValueError(f"label smoothing, noise and flips apply to the cross-entropy losses only, not loss={loss!r}: "
                         "set real_smoothing=label_noise=flip=0")
    latest: dict = {}   # g_loss and r1 of the latest update that made them, logged on every step after it

    def step(batch, trainer):
        real, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
        cond = () if labels is None else (labels,)
        shape = real.shape[:batch_dims]

        # 1. discriminator / critic: one update against a fresh batch of fakes
        with torch.no_grad():
            fake = generator(torch.randn(*shape, latent_dim, device=real.device), *cond)
        with_r1 = bool(r1_weight) and trainer.step % r1_every == 0
        if with_r1:
            real = real.detach().requires_grad_(True)
        d_real, d_fake = discriminator(real, *cond), discriminator(fake, *cond)
        out = {}
        if hinge:
            d_loss = hinge_discriminator_loss(d_real, d_fake)
            out.update(d_loss=d_loss.detach(), d_real=d_real.detach().float().mean(),
                       d_fake=d_fake.detach().float().mean())
        elif wasserstein:
            w_loss = critic_loss(d_real, d_fake)                        # E f(G(z)) - E f(x)
            with torch.autocast(real.device.type, enabled=False):        # double backward in full precision
                gp = gradient_penalty(lambda x: discriminator(x, *cond).float(), real.float(), fake.float(),
                                      batch_dims=batch_dims)
            d_loss = w_loss + gp_weight * gp
            out.update(d_loss=w_loss.detach(), gp=gp.detach(), d_real=d_real.detach().mean(),
                       d_fake=d_fake.detach().mean())
        else:
            if tricks:
                t_real = label_targets(d_real.shape, 1.0, smoothing=real_smoothing, noise=label_noise, flip=flip,
                                       device=real.device)
                t_fake = label_targets(d_fake.shape, 0.0, noise=label_noise, flip=flip, device=real.device)
            else:
                t_real, t_fake = 1.0, 0.0
            d_loss = discriminator_loss(d_real, d_fake, real_target=t_real, fake_target=t_fake)
            out.update(d_loss=d_loss.detach(), d_real=torch.sigmoid(d_real.detach().float()).mean(),
                       d_fake=torch.sigmoid(d_fake.detach().float()).mean())
        if with_r1:
            with torch.autocast(real.device.type, enabled=False):        # double backward in full precision
                r1 = r1_penalty(d_real.float(), real, batch_dims=batch_dims)
            d_loss = d_loss + 0.5 * r1_weight * r1_every * r1
            latest["r1"] = r1.detach()
        trainer.optimize(d_loss, opt_d)

        # 2. generator: g_steps updates on every d_steps-th step
        if trainer.step % d_steps == 0:
            with frozen(discriminator):     # backward through D to G's output, without D's weight gradients
                for _ in range(g_steps):
                    fake = generator(torch.randn(*shape, latent_dim, device=real.device), *cond)
                    scores = discriminator(fake, *cond)
                    g_loss = (wasserstein_generator_loss(scores) if wasserstein else hinge_generator_loss(scores) if hinge
                              else generator_loss(scores, loss))
                    trainer.optimize(g_loss, opt_g)
                    if ema is not None:
                        ema_update(ema, generator, ema_decay, step=trainer.step // d_steps)
            latest["g_loss"] = g_loss.detach()
        out.update(latest)        # (a run resumed between two such updates logs them from the next one on)
        if snapshots is not None:
            snapshots.maybe_record(trainer.step + 1, ema if ema is not None else generator)
        return out

    return step


@torch.no_grad()
def generate(generator: nn.Module, n: int, *, labels: Tensor | None = None, device: torch.device | str | None = None,
             generator_rng: torch.Generator | None = None, batch_size: int = 1000) -> Tensor:
    """``n`` samples in [0, 1], (n, 1, 28, 28), from ``z ~ N(0, I)`` (drawn with ``generator_rng``, on any
    device: :func:`gencourse.utils.randn`), in eval mode."""
    device = torch.device(device) if device is not None else next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    out = []
    for i in range(0, n, batch_size):
        m = min(batch_size, n - i)
        z = utils.randn((m, generator.latent_dim), generator=generator_rng, device=device)
        y = labels[i:i + m].to(device) if labels is not None else None
        out.append(to_unit(generator(z, y).float()))
    generator.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float, step: int | None = None) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers (batch-norm statistics) are
    copied.  With ``step``, the decay is warmed up as ``min(decay, (1 + step) / (10 + step))`` so the
    average is not dominated by the random initial weights."""
    d = decay if step is None else min(decay, (1 + step) / (10 + step))
    # one foreach call each (a few kernel launches instead of two per tensor, every generator update)
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1 - d)
    buffers = list(ema.buffers())
    if buffers:  # batch-norm statistics (a generator without batch norm has none)
        torch._foreach_copy_(buffers, list(model.buffers()))
