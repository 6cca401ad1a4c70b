"""The losses of pix2pix and CycleGAN (Chapter 5), as functions with explicit weights.

Every loss is a scalar: a mean over every element (batch, channels, pixels or patches).  The
cross-entropy GAN losses are reused from :mod:`gencourse.gan.losses`; the least-squares ones that
CycleGAN uses are here.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..gan.losses import discriminator_loss, generator_loss_nonsaturating


def l1_loss(output: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error ``mean |output - target|`` over batch, channels and pixels (in the images' units)."""
    if output.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(output.shape)} vs {tuple(target.shape)}")
    return (output - target).abs().mean()


def psnr(output: Tensor, target: Tensor, *, max_value: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio **per image** in dB: ``10 log10(max_value^2 / MSE_i)`` with MSE_i the mean
    squared error over image i's channels and pixels.  Images (N, C, H, W) in [0, max_value]; returns (N,).
    Report the mean over images (higher is better; identical images give +inf)."""
    if output.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(output.shape)} vs {tuple(target.shape)}")
    mse = (output.float() - target.float()).square().flatten(1).mean(1)
    return 10 * torch.log10(max_value ** 2 / mse)


def pix2pix_generator_loss(fake_logits: Tensor, fake: Tensor, target: Tensor, lam: float) -> tuple[Tensor, Tensor, Tensor]:
    """pix2pix generator objective ``L_adv + lam * L1``; returns ``(total, adversarial, l1)``.

    ``L_adv = -mean log D(x, G(x))`` (non-saturating, the mean over patches and batch) and
    ``L1 = mean |G(x) - y|``.  ``lam`` is explicit (the paper uses 100 for images in [-1, 1]);
    ``lam`` weighs one L1 unit against one nat of the adversarial loss.
    """
    adv = generator_loss_nonsaturating(fake_logits)
    l1 = l1_loss(fake, target)
    return adv + lam * l1, adv, l1


def lsgan_discriminator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Least-squares GAN (Mao et al., 2017) discriminator loss ``1/2 [mean (D(x) - 1)^2 + mean D(G(z))^2]``:
    real targets 1, fake 0, no sigmoid (the score is regressed onto the label).  CycleGAN's choice."""
    return 0.5 * ((real_scores - 1).square().mean() + fake_scores.square().mean())


def lsgan_generator_loss(fake_scores: Tensor) -> Tensor:
    """Least-squares generator loss ``mean (D(G(z)) - 1)^2``: push the scores of fakes to the real target."""
    return (fake_scores - 1).square().mean()


ADVERSARIAL = ("lsgan", "bce")


def adversarial_d_loss(real: Tensor, fake: Tensor, kind: str = "lsgan") -> Tensor:
    """Discriminator loss of ``kind``: ``"lsgan"`` or ``"bce"`` (:func:`gencourse.gan.losses.discriminator_loss`)."""
    if kind == "lsgan":
        return lsgan_discriminator_loss(real, fake)
    if kind == "bce":
        return discriminator_loss(real, fake)
    raise ValueError(f"adversarial loss must be one of {ADVERSARIAL}, got {kind!r}")


def adversarial_g_loss(fake: Tensor, kind: str = "lsgan") -> Tensor:
    """Generator loss of ``kind``: ``"lsgan"`` or ``"bce"`` (non-saturating)."""
    if kind == "lsgan":
        return lsgan_generator_loss(fake)
    if kind == "bce":
        return generator_loss_nonsaturating(fake)
    raise ValueError(f"adversarial loss must be one of {ADVERSARIAL}, got {kind!r}")


def cycle_consistency_loss(x: Tensor, reconstruction: Tensor) -> Tensor:
    """``mean |F(G(x)) - x|``: how far a round trip A -> B -> A (or B -> A -> B) lands from where it started.
    Zero exactly when the reconstruction equals the input (e.g. both maps are the identity)."""
    return l1_loss(reconstruction, x)


def identity_loss(x: Tensor, mapped: Tensor) -> Tensor:
    """``mean |G(y) - y|`` for ``y`` already in G's output domain: G should leave it alone."""
    return l1_loss(mapped, x)


def cyclegan_generator_loss(d_b_fake: Tensor, d_a_fake: Tensor, real_a: Tensor, real_b: Tensor, rec_a: Tensor,
                            rec_b: Tensor, *, lambda_cycle: float, lambda_identity: float = 0.0,
                            idt_a: Tensor | None = None, idt_b: Tensor | None = None,
                            adversarial: str = "lsgan") -> tuple[Tensor, dict]:
    """The CycleGAN objective for both generators ``G: A -> B`` and ``F: B -> A``::

        L = L_adv(D_B(G(a))) + L_adv(D_A(F(b)))
            + lambda_cycle * (|F(G(a)) - a| + |G(F(b)) - b|)
            + lambda_identity * (|F(a) - a| + |G(b) - b|)

    ``rec_a = F(G(a))``, ``rec_b = G(F(b))``; ``idt_a = F(a)``, ``idt_b = G(b)`` (needed when
    ``lambda_identity > 0``).  Returns ``(total, parts)`` with the unweighted terms in ``parts``.
    """
    parts = {"adv_ab": adversarial_g_loss(d_b_fake, adversarial), "adv_ba": adversarial_g_loss(d_a_fake, adversarial),
             "cycle_a": cycle_consistency_loss(real_a, rec_a), "cycle_b": cycle_consistency_loss(real_b, rec_b)}
    total = parts["adv_ab"] + parts["adv_ba"] + lambda_cycle * (parts["cycle_a"] + parts["cycle_b"])
    if lambda_identity:
        if idt_a is None or idt_b is None:
            raise ValueError("lambda_identity > 0 needs idt_a = F(a) and idt_b = G(b)")
        parts["identity_a"], parts["identity_b"] = identity_loss(real_a, idt_a), identity_loss(real_b, idt_b)
        total = total + lambda_identity * (parts["identity_a"] + parts["identity_b"])
    return total, parts
