"""Image-to-image translation (Chapter 5): pix2pix on paired data, CycleGAN on unpaired data.

Networks (images in [-1, 1], the convention of :mod:`gencourse.gan`; :func:`to_signed` and
:func:`to_unit` convert from and to [0, 1]):

* :class:`UNet`: the generator.  An encoder of strided 4x4 convolutions halves the
  resolution ``depth`` times, a decoder of transposed convolutions doubles it back, and
  each decoder level also receives the encoder's features of the same resolution
  (**skip connections**, concatenated along channels), so fine detail such as where an
  edge is does not have to squeeze through the bottleneck.  28x28 inputs are padded to
  32x32 (edge replication) so that four halvings give 2x2, and the output is cropped back.
* :class:`PatchDiscriminator`: a fully convolutional discriminator that outputs a *grid*
  of logits, one per overlapping patch of the input (:meth:`~PatchDiscriminator.receptive_field`
  pixels wide); the loss averages over the grid.  It judges local texture and sharpness,
  and leaves the global layout to the L1 or cycle loss.  For pix2pix it sees the input
  and the (real or generated) output stacked along channels: a conditional discriminator.

Losses as functions, weights explicit: :func:`l1_loss`, :func:`pix2pix_generator_loss`
(adversarial + ``lam`` x L1), :func:`cycle_consistency_loss`, :func:`identity_loss`,
:func:`cyclegan_generator_loss`, and the least-squares GAN losses :func:`lsgan_discriminator_loss`
/ :func:`lsgan_generator_loss` that CycleGAN uses (the cross-entropy ones are reused from
:mod:`gencourse.gan.losses`).  :class:`ImageBuffer` keeps past fakes for the discriminators.

Step functions for :class:`gencourse.train.Trainer`: :func:`pix2pix_step`, :func:`cyclegan_step`.
Recipes: ``pix2pix-edges-fashion`` (adversarial + L1), ``pix2pix-edges-fashion-l1`` (L1 only),
``cyclegan-mnist`` and its ablation ``cyclegan-mnist-nocycle`` (cycle and identity weights 0).

The tasks themselves (edge maps -> Fashion-MNIST, MNIST <-> coloured MNIST) are built by
:mod:`gencourse.img2img.tasks`.  The package, one concept a module: :mod:`~gencourse.img2img.tasks`,
:mod:`~gencourse.img2img.networks` (U-Net, PatchGAN), :mod:`~gencourse.img2img.losses`,
:mod:`~gencourse.img2img.buffer`, :mod:`~gencourse.img2img.steps`, :mod:`~gencourse.img2img.batches`,
:mod:`~gencourse.img2img.evaluation` and :mod:`~gencourse.img2img.recipes`.
"""
from __future__ import annotations

from . import tasks
from .batches import UnpairedBatches
from .buffer import ImageBuffer
from .evaluation import content_preservation, evaluate_cyclegan, evaluate_pix2pix, gradient_energy, translate
from .losses import (adversarial_d_loss, adversarial_g_loss, cycle_consistency_loss, cyclegan_generator_loss,
                     identity_loss, l1_loss, lsgan_discriminator_loss, lsgan_generator_loss, pix2pix_generator_loss,
                     psnr)
from .networks import PatchDiscriminator, UNet, conv_output_size, n_params, receptive_field, to_signed, to_unit
from .recipes import CYCLEGAN_DEFAULTS, PIX2PIX_DEFAULTS, build_cyclegan, build_pix2pix, load_or_train, pretrained_path
from .steps import cyclegan_step, pix2pix_step

__all__ = ["to_signed", "to_unit", "UNet", "PatchDiscriminator", "conv_output_size", "receptive_field",
           "l1_loss", "psnr", "pix2pix_generator_loss", "lsgan_discriminator_loss", "lsgan_generator_loss",
           "adversarial_d_loss", "adversarial_g_loss", "cycle_consistency_loss", "identity_loss",
           "cyclegan_generator_loss", "ImageBuffer", "pix2pix_step", "cyclegan_step", "translate",
           "gradient_energy", "content_preservation", "UnpairedBatches", "n_params", "PIX2PIX_DEFAULTS",
           "CYCLEGAN_DEFAULTS", "build_pix2pix", "build_cyclegan", "evaluate_pix2pix", "evaluate_cyclegan",
           "pretrained_path", "load_or_train", "tasks"]
