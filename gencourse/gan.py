"""Generative adversarial networks (Chapter 4): networks, the training step, toy experiments, recipes.

The losses are plain functions in :mod:`gencourse.gan_losses` (re-exported here).
Convention: ``D(x) = sigmoid(logit)`` is the probability that ``x`` is **real**
(real = 1, fake = 0).  Generators output ``tanh`` images in [-1, 1]; use
:func:`to_unit` (``(x + 1) / 2``) before showing or scoring them.

Networks (all take integer labels, or soft one-hot rows, when ``n_classes > 0``):

* :class:`MLPGenerator` / :class:`MLPDiscriminator`: fully connected, for the toy
  2-D data and MNIST.  With ``n_models=S`` they hold ``S`` independent networks
  (weights with a leading "seed" dimension, inputs (S, B, ...)): used to train one
  GAN per seed in a single vectorised run (Adam is elementwise and the losses are
  means per network, summed over networks, so the runs never interact).
* :class:`DCGenerator` / :class:`DCDiscriminator`: the DCGAN guidelines for 28x28
  images (strided and fractionally strided convolutions, batch norm, ReLU + tanh in
  G, LeakyReLU in D, no fully connected hidden layers).  ``n_classes`` makes them
  class-conditional: the one-hot label is appended to z in G, and D is a projection
  discriminator (one extra weight vector per class in its last layer).  With
  ``norm="none"`` / ``"layer"`` the discriminator can be a WGAN-GP critic.

:func:`gan_step` is the step function for :class:`gencourse.train.Trainer`: one
discriminator (critic) update per step and ``g_steps`` generator updates on every
``d_steps``-th step, with the losses of :mod:`gencourse.gan_losses` and the label
tricks of the slides (smoothing, noise, flips).

Recipes: ``dcgan-mnist``, ``dcgan-fashion``, ``cgan-mnist``, ``cgan-fashion``,
``wgan-gp-mnist``.  Their ``sample`` gives images in [0, 1] (and the labels, for the
conditional ones), their ``evaluate`` the metrics of :mod:`gencourse.metrics`.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from . import data as _data
from . import recipes
from .train import adam
from .gan_losses import (critic_loss, discriminator_loss, generator_loss, generator_loss_nonsaturating,  # noqa: F401
                         generator_loss_saturating, gradient_penalty, label_targets, optimal_discriminator,
                         value_function, wasserstein_generator_loss)

__all__ = ["StackedLinear", "MLP", "MLPGenerator", "MLPDiscriminator", "DCGenerator", "DCDiscriminator",
           "Snapshots", "snapshot_schedule", "gan_step", "ema_update", "to_unit", "generate", "sampler", "LOSSES", "n_params",
           "train_discriminator", "ToyRun", "train_toy_gan", "TOY_DEFAULTS", "summarize_runs", "GAN_DEFAULTS",
           "build_gan"]

LOSSES = ("non-saturating", "saturating", "wgan-gp")


def to_unit(x: Tensor) -> Tensor:
    """tanh images in [-1, 1] -> [0, 1] (what :mod:`gencourse.metrics` and the figures expect)."""
    return ((x + 1) / 2).clamp(0, 1)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _one_hot(labels: Tensor | None, n_classes: int, batch_shape, device) -> Tensor | None:
    """Integer labels (B,) -> one-hot (B, K); float rows (B, K) (e.g. a blend of two classes) pass through."""
    if not n_classes:
        return None
    if labels is None:
        raise ValueError(f"this network is class-conditional ({n_classes} classes): pass labels")
    if labels.is_floating_point():
        if labels.shape[-1] != n_classes:
            raise ValueError(f"soft labels need {n_classes} columns, got shape {tuple(labels.shape)}")
        return labels.to(device)
    if labels.shape != tuple(batch_shape):
        raise ValueError(f"expected labels of shape {tuple(batch_shape)}, got {tuple(labels.shape)}")
    return F.one_hot(labels.to(device).long(), n_classes).float()


# ---------------------------------------------------------------------------
# Fully connected networks (one network, or S independent ones side by side)
# ---------------------------------------------------------------------------
class StackedLinear(nn.Module):
    """``n`` independent linear layers: (n, B, in) -> (n, B, out) with one batched matmul.

    Initialised like ``nn.Linear`` (uniform in +-1/sqrt(in)); network ``s`` draws its
    weights from ``generators[s]``, so it does not depend on the other networks.
    """

    def __init__(self, n: int, in_features: int, out_features: int, generators: Sequence[torch.Generator]):
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        w = torch.stack([torch.empty(in_features, out_features).uniform_(-bound, bound, generator=g) for g in generators])
        b = torch.stack([torch.empty(1, out_features).uniform_(-bound, bound, generator=g) for g in generators])
        self.weight, self.bias = nn.Parameter(w), nn.Parameter(b)        # (n, in, out), (n, 1, out)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)                 # (n, B, out)


class MLP(nn.Module):
    """Linear layers of ``sizes`` with ``act`` between them (and dropout after each hidden activation).

    ``n_models=None``: an ordinary MLP on (B, sizes[0]).  ``n_models=S``: S independent
    MLPs on (S, B, sizes[0]), network s initialised from ``seeds[s]``.
    """

    def __init__(self, sizes: Sequence[int], *, act: str = "relu", dropout: float = 0.0, n_models: int | None = None,
                 seeds: Sequence[int] | None = None):
        super().__init__()
        acts = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2)}
        if act not in acts:
            raise ValueError(f"act must be one of {sorted(acts)}, got {act!r}")
        gens = None
        if n_models is not None:
            seeds = list(range(n_models)) if seeds is None else list(seeds)
            if len(seeds) != n_models:
                raise ValueError(f"need {n_models} seeds, got {len(seeds)}")
            gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b) if gens is None else StackedLinear(n_models, a, b, gens))
            if i < len(sizes) - 2:
                layers.append(acts[act]())
                if dropout:
                    layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)
        self.n_models = n_models

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class MLPGenerator(nn.Module):
    """``z (B, latent_dim)`` (or (S, B, latent_dim)) -> samples of ``out_shape``.

    ``tanh=True`` for images in [-1, 1]; the toy generators have a linear output.
    """

    def __init__(self, latent_dim: int, out_shape: Sequence[int] = (2,), hidden: Sequence[int] = (128, 128), *,
                 n_classes: int = 0, tanh: bool = False, n_models: int | None = None,
                 seeds: Sequence[int] | None = None):
        super().__init__()
        self.latent_dim, self.out_shape, self.n_classes, self.tanh = latent_dim, tuple(out_shape), n_classes, tanh
        self.net = MLP([latent_dim + n_classes, *hidden, math.prod(self.out_shape)], act="relu",
                       n_models=n_models, seeds=seeds)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        y = _one_hot(labels, self.n_classes, z.shape[:-1], z.device)
        h = self.net(z if y is None else torch.cat([z, y], -1))
        h = torch.tanh(h) if self.tanh else h
        return h.reshape(*z.shape[:-1], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """Samples of ``in_shape`` -> logits, one per sample: (B,) (or (S, B) for S stacked networks)."""

    def __init__(self, in_shape: Sequence[int] = (2,), hidden: Sequence[int] = (128, 128), *, n_classes: int = 0,
                 dropout: float = 0.0, n_models: int | None = None, seeds: Sequence[int] | None = None):
        super().__init__()
        self.in_shape, self.n_classes = tuple(in_shape), n_classes
        self.net = MLP([math.prod(self.in_shape) + n_classes, *hidden, 1], act="leaky_relu", dropout=dropout,
                       n_models=n_models, seeds=seeds)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        lead = x.shape[: x.dim() - len(self.in_shape)]
        h = x.reshape(*lead, -1)
        y = _one_hot(labels, self.n_classes, lead, x.device)
        return self.net(h if y is None else torch.cat([h, y], -1)).squeeze(-1)


# ---------------------------------------------------------------------------
# DCGAN for 28x28 images
# ---------------------------------------------------------------------------
def _dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02); batch-norm scales N(1, 0.02), shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGenerator(nn.Module):
    """DCGAN generator: ``z (B, latent_dim)`` [+ labels] -> images (B, 1, 28, 28) in [-1, 1].

    =====================================================  ================
    z (and one-hot label) as a (B, d, 1, 1) "image"
    ConvTranspose 7x7 (projection), BN, ReLU               (B, 2w, 7, 7)
    [deep: Conv 3x3, BN, ReLU]                             (B, 2w, 7, 7)
    ConvTranspose 4x4 stride 2, BN, ReLU                   (B, w, 14, 14)
    [deep: Conv 3x3, BN, ReLU]                             (B, w, 14, 14)
    ConvTranspose 4x4 stride 2, tanh                       (B, 1, 28, 28)
    =====================================================  ================

    ``deep=True`` adds the bracketed 3x3 convolutions, one per resolution: more layers
    to turn strokes into whole digits, at about twice the cost of a step.
    """

    def __init__(self, latent_dim: int = 64, width: int = 64, *, n_classes: int = 0, deep: bool = False):
        super().__init__()
        self.latent_dim, self.width, self.n_classes, self.deep = latent_dim, width, n_classes, deep
        w = width

        def refine(c):  # a 3x3 convolution that keeps the resolution
            return [nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)] if deep else []

        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim + n_classes, 2 * w, 7, 1, 0, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(True),
            *refine(2 * w),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True),
            *refine(w),
            nn.ConvTranspose2d(w, 1, 4, 2, 1), nn.Tanh(),
        )
        _dcgan_init(self)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        y = _one_hot(labels, self.n_classes, z.shape[:1], z.device)
        h = z if y is None else torch.cat([z, y], 1)                    # (B, d + K)
        return self.net(h[:, :, None, None])                           # (B, 1, 28, 28)


class DCDiscriminator(nn.Module):
    """DCGAN discriminator: images (B, 1, 28, 28) in [-1, 1] [+ labels] -> logits (B,).

    ===================================================  ================
    Conv 4x4 stride 2, LeakyReLU(0.2) (no norm here)     (B, w, 14, 14)
    [deep: Conv 3x3, norm, LeakyReLU(0.2)]               (B, w, 14, 14)
    Conv 4x4 stride 2, norm, LeakyReLU(0.2)              (B, 2w, 7, 7)
    flatten = features phi(x)                            (B, 2w * 49)
    logit = <v, phi(x)> + b [+ <e_y, phi(x)>]            (B,)
    ===================================================  ================

    The last layer is a 7x7 convolution written as a dot product.  With ``n_classes``
    each class adds its own vector ``e_y`` (projection discriminator).  ``norm``:
    ``"batch"`` (DCGAN), ``"layer"`` or ``"none"`` (WGAN-GP critics: the penalty is
    per sample, which batch norm would mix).  ``dropout`` after each LeakyReLU.
    ``deep=True`` adds the bracketed 3x3 convolution.
    """

    def __init__(self, width: int = 64, *, n_classes: int = 0, norm: str = "batch", dropout: float = 0.0,
                 deep: bool = False):
        super().__init__()
        w = width
        norms = {"batch": nn.BatchNorm2d, "layer": lambda c: nn.GroupNorm(1, c), "none": lambda c: nn.Identity()}
        if norm not in norms:
            raise ValueError(f"norm must be one of {sorted(norms)}, got {norm!r}")
        drop = (lambda: nn.Dropout(dropout)) if dropout else nn.Identity
        self.width, self.n_classes, self.norm, self.deep = width, n_classes, norm, deep
        # built only when used: constructing layers draws from the RNG, which would change the initial
        # weights of deep=False networks for a given seed
        refine = ([nn.Conv2d(w, w, 3, 1, 1, bias=norm == "none"), norms[norm](w), nn.LeakyReLU(0.2, True), drop()]
                  if deep else [])
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 4, 2, 1), nn.LeakyReLU(0.2, True), drop(),
            *refine,
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=norm == "none"), norms[norm](2 * w), nn.LeakyReLU(0.2, True), drop(),
            nn.Flatten(),
        )
        self.out = nn.Linear(2 * w * 49, 1)
        self.embed = nn.Embedding(n_classes, 2 * w * 49) if n_classes else None
        _dcgan_init(self)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        phi = self.features(x)                                          # (B, 2w * 49)
        logit = self.out(phi).squeeze(1)                                # (B,)
        if self.embed is not None:
            y = _one_hot(labels, self.n_classes, x.shape[:1], x.device)
            logit = logit + ((y @ self.embed.weight) * phi).sum(1)     # + <e_y, phi(x)>
        return logit


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
def gan_step(generator: nn.Module, discriminator: nn.Module, opt_g: torch.optim.Optimizer,
             opt_d: torch.optim.Optimizer, *, latent_dim: int, loss: str = "non-saturating", d_steps: int = 1,
             g_steps: int = 1, gp_weight: float = 10.0, real_smoothing: float = 0.0, label_noise: float = 0.0,
             flip: float = 0.0, batch_dims: int = 1, snapshots: Snapshots | None = None,
             ema: nn.Module | None = None, ema_decay: float = 0.999) -> Callable:
    """A step function ``step(batch, trainer) -> {"d_loss", "g_loss", ...}`` for the alternating game.

    Each call makes **one discriminator update** on ``batch`` (real images, or
    ``(images, labels)`` for conditional networks) against a fresh batch of fakes;
    on every ``d_steps``-th call (``trainer.step % d_steps == 0``) it then makes
    ``g_steps`` **generator updates**.  So ``d_steps=5`` is the WGAN-GP schedule of
    five critic updates per generator update.

    ``loss``: ``"non-saturating"`` or ``"saturating"`` generator loss with the BCE
    discriminator, or ``"wgan-gp"`` (critic loss + ``gp_weight`` x gradient
    penalty, generator ``-E f(G(z))``).  Label tricks (BCE losses only):
    ``real_smoothing`` (one-sided), ``label_noise`` and ``flip`` (both sides), see
    :func:`gencourse.gan_losses.label_targets`.  ``batch_dims=2`` for stacked toy
    networks (inputs (S, B, ...)).  Logged: ``d_loss`` (critic loss *without* the
    penalty for WGAN-GP, so its negative estimates W1), ``g_loss`` (of the latest
    generator update), ``gp`` (WGAN-GP) and ``d_real`` / ``d_fake``, the mean
    probability (BCE) or score (WGAN-GP) D gives real and fake samples.

    ``ema``: a copy of the generator that tracks the exponential moving average of its
    weights (:func:`ema_update`, after every generator update); ``snapshots`` then
    records the average, which is also what the recipes sample from.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if d_steps < 1 or g_steps < 1:
        raise ValueError(f"d_steps and g_steps must be >= 1, got {d_steps}, {g_steps}")
    wasserstein = loss == "wgan-gp"
    tricks = bool(real_smoothing or label_noise or flip)
    last_g: dict = {}

    def step(batch, trainer):
        real, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
        cond = () if labels is None else (labels,)
        shape = real.shape[:batch_dims]

        # 1. discriminator / critic: one update against a fresh batch of fakes
        with torch.no_grad():
            fake = generator(torch.randn(*shape, latent_dim, device=real.device), *cond)
        d_real, d_fake = discriminator(real, *cond), discriminator(fake, *cond)
        out = {}
        if wasserstein:
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
        trainer.optimize(d_loss, opt_d)

        # 2. generator: g_steps updates on every d_steps-th step
        if trainer.step % d_steps == 0:
            for _ in range(g_steps):
                fake = generator(torch.randn(*shape, latent_dim, device=real.device), *cond)
                scores = discriminator(fake, *cond)
                g_loss = wasserstein_generator_loss(scores) if wasserstein else generator_loss(scores, loss)
                trainer.optimize(g_loss, opt_g)
                if ema is not None:
                    ema_update(ema, generator, ema_decay, step=trainer.step // d_steps)
            last_g["loss"] = g_loss.detach()
        out["g_loss"] = last_g["loss"]
        if snapshots is not None:
            snapshots.maybe_record(trainer.step + 1, ema if ema is not None else generator)
        return out

    return step


@torch.no_grad()
def generate(generator: nn.Module, n: int, *, labels: Tensor | None = None, device: torch.device | str | None = None,
             generator_rng: torch.Generator | None = None, batch_size: int = 1000) -> Tensor:
    """``n`` samples in [0, 1], (n, 1, 28, 28), from ``z ~ N(0, I)`` (drawn with ``generator_rng``), in eval mode."""
    device = torch.device(device) if device is not None else next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    out = []
    for i in range(0, n, batch_size):
        m = min(batch_size, n - i)
        z = torch.randn(m, generator.latent_dim, device=device, generator=generator_rng)
        y = labels[i:i + m].to(device) if labels is not None else None
        out.append(to_unit(generator(z, y).float()))
    generator.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float, step: int | None = None) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers (batch-norm statistics) are
    copied.  With ``step``, the decay is warmed up as ``min(decay, (1 + step) / (10 + step))`` so the
    average is not dominated by the random initial weights."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    d = decay if step is None else min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1 - d)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


# ---------------------------------------------------------------------------
# Toy experiments: the optimal discriminator in 1-D and the ring of Gaussians in 2-D
# ---------------------------------------------------------------------------
def train_discriminator(discriminator: nn.Module, sample_real: Callable[[int], Tensor],
                        sample_fake: Callable[[int], Tensor], *, steps: int, batch_size: int = 512,
                        lr: float = 1e-3, log_every: int = 100):
    """Train only a discriminator (the generator is frozen: ``sample_fake`` draws from a fixed p_g)
    with the BCE :func:`discriminator_loss` via :class:`~gencourse.train.Trainer`; returns the history."""
    from .train import Trainer

    opt = torch.optim.Adam(discriminator.parameters(), lr=lr)

    def step(batch, trainer):
        real, fake = batch
        loss = discriminator_loss(discriminator(real), discriminator(fake))
        trainer.optimize(loss, opt)
        return {"d_loss": loss}

    trainer = Trainer(step, lambda: (sample_real(batch_size), sample_fake(batch_size)), modules=discriminator,
                      optimizers=opt, log_every=log_every, progress="off")
    return trainer.fit(steps=steps)


TOY_DEFAULTS = dict(latent_dim=2, hidden=[64, 64], lr_g=2e-3, lr_d=2e-3, betas=[0.5, 0.9], batch_size=128,
                    loss="non-saturating", d_steps=1, g_steps=1, gp_weight=1.0, real_smoothing=0.0,
                    label_noise=0.0, flip=0.0, dropout=0.0, modes=8, radius=2.0, std=0.05)


@dataclass
class ToyRun:
    """One toy configuration trained with several seeds at once."""

    config: dict
    seeds: list
    samples: Tensor                     # (S, n_eval, 2) final samples, one set per seed
    modes: list                         # a metrics.ModeCount per seed
    history: object                     # the Trainer history (losses summed over seeds' means)
    snapshots: list = field(default_factory=list)   # [(step, samples (S, m, 2))]
    seconds: float = 0.0

    @property
    def covered(self) -> list[int]:
        return [m.covered for m in self.modes]

    @property
    def high_quality(self) -> list[float]:
        return [m.high_quality for m in self.modes]


def train_toy_gan(seeds: Sequence[int], steps: int, *, n_eval: int = 2000, snapshot_every: int | None = None,
                  log_every: int = 100, **config) -> ToyRun:
    """Train one GAN per seed on the ring of Gaussians (:func:`gencourse.data.ring_of_gaussians`), vectorised.

    ``config`` overrides :data:`TOY_DEFAULTS` (e.g. ``real_smoothing=0.1``,
    ``dropout=0.3``, ``lr_d=2.5e-4``, ``batch_size=1024``, ``loss="wgan-gp", d_steps=5``).
    All seeds share the data stream and the latent noise draws but nothing else; seed
    s fixes the initial weights of its networks.  Mode coverage of ``n_eval`` samples
    per seed with :func:`gencourse.metrics.count_modes`.
    """
    from . import metrics
    from .train import Trainer

    unknown = sorted(set(config) - set(TOY_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown toy setting(s) {unknown}; known: {sorted(TOY_DEFAULTS)}")
    cfg = dict(TOY_DEFAULTS, **config)
    seeds = [int(s) for s in seeds]
    S = len(seeds)
    G = MLPGenerator(cfg["latent_dim"], (2,), cfg["hidden"], n_models=S, seeds=[1000 + s for s in seeds])
    D = MLPDiscriminator((2,), cfg["hidden"], dropout=cfg["dropout"], n_models=S, seeds=[2000 + s for s in seeds])
    opt_g, opt_d = (adam(m.parameters(), cfg[lr], cfg["betas"]) for m, lr in ((G, "lr_g"), (D, "lr_d")))
    # each network's loss is a mean over its batch; summing over the S networks keeps their gradients separate
    step = gan_step(G, D, _Scaled(opt_g, S), _Scaled(opt_d, S), latent_dim=cfg["latent_dim"], loss=cfg["loss"],
                    d_steps=cfg["d_steps"], g_steps=cfg["g_steps"], gp_weight=cfg["gp_weight"],
                    real_smoothing=cfg["real_smoothing"], label_noise=cfg["label_noise"], flip=cfg["flip"],
                    batch_dims=2)
    B, k, r, std = cfg["batch_size"], cfg["modes"], cfg["radius"], cfg["std"]
    centres = _data.ring_modes(k, r)

    def sample():  # a fresh batch per step for every network: (S, B, 2), as data.ring_of_gaussians draws it
        return centres[torch.randint(k, (S, B))] + std * torch.randn(S, B, 2)
    trainer = Trainer(step, sample, modules={"generator": G, "discriminator": D},
                      optimizers={"g": opt_g, "d": opt_d}, log_every=log_every, progress="off")
    snaps = []

    def grab(tr):
        with torch.no_grad():
            snaps.append((tr.step, G(torch.randn(S, 500, cfg["latent_dim"])).clone()))

    t0 = time.perf_counter()
    trainer.fit(steps=steps, callback=grab if snapshot_every else None, callback_every=snapshot_every)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        x = G(torch.randn(S, n_eval, cfg["latent_dim"]))
    modes = [metrics.count_modes(x[s], centres, std) for s in range(S)]
    return ToyRun(cfg, seeds, x, modes, trainer.history, snaps, seconds)


class _Scaled:
    """An optimizer proxy that multiplies the loss by S before ``backward`` (via the trainer):
    the step function's loss is a mean over S stacked networks; S x mean = sum, so each
    network gets exactly the gradient of its own mean loss."""

    def __init__(self, opt: torch.optim.Optimizer, scale: int):
        self.opt, self.scale = opt, scale

    def zero_grad(self, set_to_none: bool = True):
        self.opt.zero_grad(set_to_none=set_to_none)

    def step(self):
        grads = [p.grad for g in self.opt.param_groups for p in g["params"] if p.grad is not None]
        torch._foreach_mul_(grads, float(self.scale))
        self.opt.step()

    @property
    def param_groups(self):
        return self.opt.param_groups


def summarize_runs(runs: dict) -> list[dict]:
    """Rows for :func:`gencourse.metrics.table`: per configuration, the modes covered and the share of
    high-quality samples over the seeds (mean, min and max)."""
    rows = []
    for name, run in runs.items():
        cov, hq = run.covered, run.high_quality
        rows.append({"configuration": name, "seeds": len(cov),
                     "modes covered (mean)": sum(cov) / len(cov), "min": min(cov), "max": max(cov),
                     "all 8 covered": f"{sum(c == run.modes[0].modes for c in cov)}/{len(cov)}",
                     "high quality (mean)": sum(hq) / len(hq), "seconds": round(run.seconds, 1)})
    return rows


# ---------------------------------------------------------------------------
# Recipes
# ---------------------------------------------------------------------------
GAN_DEFAULTS = dict(
    dataset="mnist", arch="dcgan", conditional=False, latent_dim=64, width=32, d_width=0, deep=False,
    hidden=[256, 512],
    d_norm="batch", d_dropout=0.0, loss="non-saturating", d_steps=1, g_steps=1, gp_weight=10.0,
    real_smoothing=0.0, label_noise=0.0, flip=0.0,
    lr_g=2e-4, lr_d=2e-4, betas=[0.5, 0.999], batch_size=64, steps=8000, n_train=0, init_seed=0,
    ema_decay=0.999, snapshots=8, eval_samples=10_000,
)


def build_gan(cfg: dict) -> dict:
    """``{"generator", "discriminator", "snapshots"}`` for a recipe config (see :data:`GAN_DEFAULTS`),
    plus ``"generator_ema"`` (the moving average of the generator's weights) when ``ema_decay > 0``."""
    torch.manual_seed(cfg["init_seed"])
    k = 10 if cfg["conditional"] else 0
    if cfg["arch"] == "dcgan":
        G = DCGenerator(cfg["latent_dim"], cfg["width"], n_classes=k, deep=cfg["deep"])
        D = DCDiscriminator(cfg["d_width"] or cfg["width"], n_classes=k, norm=cfg["d_norm"], dropout=cfg["d_dropout"],
                            deep=cfg["deep"])
    elif cfg["arch"] == "mlp":
        G = MLPGenerator(cfg["latent_dim"], (1, 28, 28), cfg["hidden"], n_classes=k, tanh=True)
        D = MLPDiscriminator((1, 28, 28), list(reversed(cfg["hidden"])), n_classes=k, dropout=cfg["d_dropout"])
    else:
        raise ValueError(f"arch must be 'dcgan' or 'mlp', got {cfg['arch']!r}")
    snaps = Snapshots(snapshot_schedule(cfg["steps"], cfg["snapshots"]), 16 if not k else 20, cfg["latent_dim"], k)
    mods = {"generator": G, "discriminator": D, "snapshots": snaps}
    if cfg["ema_decay"]:
        mods["generator_ema"] = copy.deepcopy(G).requires_grad_(False)
    return mods


def sampler(modules: dict) -> nn.Module:
    """The generator a recipe samples from: the weight average ``generator_ema`` if there is one."""
    return modules.get("generator_ema", modules["generator"])


def _optimizers(modules, cfg):
    betas = tuple(cfg["betas"])
    return {"g": adam(modules["generator"].parameters(), lr=cfg["lr_g"], betas=betas),
            "d": adam(modules["discriminator"].parameters(), lr=cfg["lr_d"], betas=betas)}


def _data_fn(cfg, device, rank=0, world_size=1):
    images, labels = _data.load(cfg["dataset"], "train")
    if cfg["n_train"]:
        images, labels = images[: cfg["n_train"]], labels[: cfg["n_train"]]
    to_signed = lambda x: x.unsqueeze(1).float().div_(127.5).sub_(1.0)  # uint8 -> [-1, 1], (B, 1, 28, 28)  # noqa: E731
    if cfg["conditional"]:
        return recipes.batches(cfg, device, rank, world_size, images, labels, transform=lambda x, y: (to_signed(x), y))
    return recipes.batches(cfg, device, rank, world_size, images, transform=to_signed)


def _step(modules, opts, cfg):
    return gan_step(modules["generator"], modules["discriminator"], opts["g"], opts["d"],
                    latent_dim=cfg["latent_dim"], loss=cfg["loss"], d_steps=cfg["d_steps"], g_steps=cfg["g_steps"],
                    gp_weight=cfg["gp_weight"], real_smoothing=cfg["real_smoothing"], label_noise=cfg["label_noise"],
                    flip=cfg["flip"], snapshots=modules.get("snapshots"), ema=modules.get("generator_ema"),
                    ema_decay=cfg["ema_decay"])


@torch.no_grad()
def _sample(modules, cfg, n, device, generator=None):
    """Images in [0, 1] (n, 1, 28, 28) from z ~ N(0, I) (the weight-averaged generator when there is one);
    conditional recipes return ``(images, labels)`` with labels ``i % 10``."""
    G = sampler(modules)
    device = torch.device(device)
    if generator is not None and generator.device != device:
        generator = torch.Generator(device=device).manual_seed(generator.initial_seed())
    labels = torch.arange(n, device=device) % 10 if cfg["conditional"] else None
    x = generate(G, n, labels=labels, device=device, generator_rng=generator)
    return (x, labels) if labels is not None else x


@torch.no_grad()
def _evaluate(modules, cfg, device):
    """Every metric of :func:`gencourse.metrics.evaluate` on ``eval_samples`` samples (seed 0), with the
    real-vs-real floor at the same n; class accuracy (overall and per class) for conditional recipes."""
    from . import metrics

    n = cfg["eval_samples"]
    out = _sample(modules, cfg, n, device, torch.Generator(device=torch.device(device)).manual_seed(0))
    images, labels = out if isinstance(out, tuple) else (out, None)
    rep = metrics.evaluate(images.cpu(), cfg["dataset"], labels=None if labels is None else labels.cpu(),
                           device=device)
    res = {k: float(v) for k, v in rep.as_dict().items()}
    if rep.floor is not None:
        res.update({f"floor_{k}": float(rep.floor[k]) for k in ("fid", "kid", "precision", "recall")
                    if k in rep.floor})
    if labels is not None:
        res["class_accuracy_per_class"] = [float(a) for a in rep["class_accuracy"].details["per_class"]]
    res["eval_n"] = n
    res["protocol"] = " | ".join(rep.protocols().values())
    return res


def _register(name: str, description: str, **overrides) -> None:
    recipes.register(recipes.Recipe(
        name=name, description=description, defaults=dict(GAN_DEFAULTS, **overrides), build=build_gan,
        optimizers=_optimizers, data=_data_fn, step=_step, evaluate=_evaluate, sample=_sample,
        datasets=("mnist", "fashion"),
        notes={"sample": "generator in eval mode (batch-norm running statistics), z ~ N(0, I); "
                         "conditional: labels i % 10"}))


# the unconditional recipes use the deeper networks (one more 3x3 convolution per resolution): with the
# shallow ones the digits had the right strokes but the wrong shapes far more often (MNIST FID 94.6 after
# 24,000 steps, against 32.3 after 12,000 steps with deep=True; n = 10,000, see the shipped metrics)
_register("dcgan-mnist", "DCGAN (non-saturating loss, deep=True) on MNIST (Chapter 4)", deep=True, steps=12_000)
_register("dcgan-fashion", "DCGAN (non-saturating loss, deep=True) on Fashion-MNIST (Chapter 4)", dataset="fashion",
          deep=True, steps=12_000)
_register("cgan-mnist", "class-conditional DCGAN (one-hot z, projection D) on MNIST (Chapter 4)", conditional=True)
_register("cgan-fashion", "class-conditional DCGAN on Fashion-MNIST (Chapter 4)", dataset="fashion",
          conditional=True)
_register("wgan-gp-mnist", "WGAN-GP: the DCGAN networks (deep=True), critic without batch norm, 5 critic steps "
          "(Chapter 4)", deep=True, loss="wgan-gp", d_norm="none", d_steps=5, lr_g=1e-4, lr_d=1e-4,
          betas=[0.5, 0.9], steps=12_000)
