"""Generative adversarial networks (Chapter 4): networks, the training step, toy experiments, recipes.

The losses are plain functions in :mod:`gencourse.gan.losses` (re-exported here).
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
``d_steps``-th step, with the losses of :mod:`gencourse.gan.losses` and the label
tricks of the slides (smoothing, noise, flips).

Recipes: ``dcgan-mnist``, ``dcgan-fashion``, ``cgan-mnist``, ``cgan-fashion``,
``wgan-gp-mnist``.  Their ``sample`` gives images in [0, 1] (and the labels, for the
conditional ones), their ``evaluate`` the metrics of :mod:`gencourse.metrics`.

The package, one concept a module: :mod:`~gencourse.gan.losses` (the objectives),
:mod:`~gencourse.gan.networks`, :mod:`~gencourse.gan.training` (the step, EMA, snapshots,
:func:`generate`), :mod:`~gencourse.gan.toy` (the 1-D and ring experiments) and
:mod:`~gencourse.gan.recipes`.
"""
from __future__ import annotations

from . import losses
from .losses import (GENERATOR_LOSSES, critic_loss, discriminator_loss, generator_loss,
                     generator_loss_nonsaturating, generator_loss_saturating, gradient_penalty,
                     hinge_discriminator_loss, hinge_generator_loss, label_targets, optimal_discriminator, r1_penalty,
                     value_function, wasserstein_generator_loss)
from .networks import (MLP, DCDiscriminator, DCGenerator, MLPDiscriminator, MLPGenerator, StackedLinear, n_params,
                       to_unit)
from .recipes import GAN_DEFAULTS, build_gan, sampler, stored_trials
from .toy import (SWEEP_SETTINGS, TOY_DEFAULTS, StackedAdam, ToyRun, summarize_runs, train_discriminator, train_toy_gan,
                  train_toy_sweep, wasserstein1)
from .training import LOSSES, Snapshots, ema_update, gan_step, generate, snapshot_schedule

__all__ = ["StackedLinear", "MLP", "MLPGenerator", "MLPDiscriminator", "DCGenerator", "DCDiscriminator",
           "Snapshots", "snapshot_schedule", "gan_step", "ema_update", "to_unit", "generate", "sampler", "LOSSES", "n_params",
           "train_discriminator", "ToyRun", "train_toy_gan", "TOY_DEFAULTS", "summarize_runs",
           "train_toy_sweep", "SWEEP_SETTINGS", "StackedAdam", "wasserstein1", "GAN_DEFAULTS", "stored_trials",
           "build_gan",
           "losses", *losses.__all__]
