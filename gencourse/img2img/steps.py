"""The step functions of Chapter 5 for :class:`gencourse.train.Trainer`: :func:`pix2pix_step` (paired
batches) and :func:`cyclegan_step` (unpaired batches, with the buffers of past fakes).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .buffer import ImageBuffer
from ..gan.losses import discriminator_loss
from .losses import adversarial_d_loss, cyclegan_generator_loss, l1_loss, pix2pix_generator_loss


def pix2pix_step(generator: nn.Module, discriminator: nn.Module | None, opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer | None, *, lam: float = 100.0, adversarial: bool = True) -> Callable:
    """Step function for paired batches ``(source, target)`` in [-1, 1].

    With ``adversarial``: one update of the conditional PatchGAN ``D(source, image)``
    (BCE, real pairs 1, generated pairs 0, a mean over patches), then one generator update
    on :func:`pix2pix_generator_loss` with weight ``lam``.  Without: the generator minimises
    ``lam * L1`` alone (no discriminator).  Logs ``l1`` (mean |G(x) - y| in [-1, 1] units),
    and ``d_loss`` / ``g_adv`` when adversarial.
    """
    if adversarial and (discriminator is None or opt_d is None):
        raise ValueError("the adversarial pix2pix step needs a discriminator and its optimizer")

    def step(batch, trainer):
        source, target = batch
        fake = generator(source)                                                 # (B, C_out, 28, 28)
        out = {}
        if adversarial:
            d_real = discriminator(torch.cat([source, target], 1))              # (B, 1, h, w) logits
            d_fake = discriminator(torch.cat([source, fake.detach()], 1))
            d_loss = discriminator_loss(d_real, d_fake)
            trainer.optimize(d_loss, opt_d)
            total, adv, l1 = pix2pix_generator_loss(discriminator(torch.cat([source, fake], 1)), fake, target, lam)
            out.update(d_loss=d_loss.detach(), g_adv=adv.detach())
        else:
            l1 = l1_loss(fake, target)
            total = lam * l1
        trainer.optimize(total, opt_g)
        out["l1"] = l1.detach()
        return out

    return step


def cyclegan_step(g_ab: nn.Module, g_ba: nn.Module, d_a: nn.Module, d_b: nn.Module, opt_g: torch.optim.Optimizer,
                  opt_d: torch.optim.Optimizer, *, lambda_cycle: float = 10.0, lambda_identity: float = 0.0,
                  adversarial: str = "lsgan", buffer_a: ImageBuffer | None = None,
                  buffer_b: ImageBuffer | None = None) -> Callable:
    """Step function for unpaired batches ``(a, b)`` in [-1, 1] (no relation between the two).

    1. Generators (one optimizer over both): :func:`cyclegan_generator_loss`, with
       ``fake_b = G(a)``, ``fake_a = F(b)``, ``rec_a = F(fake_b)``, ``rec_b = G(fake_a)``.
    2. Discriminators (one optimizer over both): ``D_A`` on real a vs a fake from ``buffer_a``,
       ``D_B`` likewise, each with :func:`adversarial_d_loss`.

    Logs ``g_loss`` (total), ``adv_ab``, ``adv_ba``, ``cycle_a``, ``cycle_b`` (unweighted, in
    [-1, 1] units), ``identity_a``/``identity_b`` when used, and ``d_a``, ``d_b``.
    ``lambda_cycle=0`` (and ``lambda_identity=0``) is the ablation: nothing ties an output to its input.
    """
    buffer_a = buffer_a if buffer_a is not None else ImageBuffer(0)
    buffer_b = buffer_b if buffer_b is not None else ImageBuffer(0)

    def step(batch, trainer):
        real_a, real_b = batch
        fake_b, fake_a = g_ab(real_a), g_ba(real_b)
        rec_a, rec_b = g_ba(fake_b), g_ab(fake_a)
        idt_a = idt_b = None
        if lambda_identity:
            idt_a, idt_b = g_ba(real_a), g_ab(real_b)
        g_loss, parts = cyclegan_generator_loss(d_b(fake_b), d_a(fake_a), real_a, real_b, rec_a, rec_b,
                                                lambda_cycle=lambda_cycle, lambda_identity=lambda_identity,
                                                idt_a=idt_a, idt_b=idt_b, adversarial=adversarial)
        trainer.optimize(g_loss, opt_g)              # (the D gradients this leaves are cleared by opt_d below)
        pool_a, pool_b = buffer_a.query(fake_a), buffer_b.query(fake_b)
        loss_da = adversarial_d_loss(d_a(real_a), d_a(pool_a), adversarial)
        loss_db = adversarial_d_loss(d_b(real_b), d_b(pool_b), adversarial)
        trainer.optimize(loss_da + loss_db, opt_d)
        return {"g_loss": g_loss.detach(), **{k: v.detach() for k, v in parts.items()},
                "d_a": loss_da.detach(), "d_b": loss_db.detach()}

    return step
