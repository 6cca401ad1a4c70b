"""Checks for the Chapter 5 exercises (image-to-image translation).

Conventions checked: losses are means over every element (batch, channels, pixels); PSNR is
per image, in dB, for images in [0, 1]; layer lists are ``[(kernel, stride, padding), ...]``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import CheckFailed, expect, expect_close, expect_scalar, expect_tensor, passed, run, seeded

__all__ = ["cycle_loss", "patch_geometry", "psnr", "pix2pix_loss"]

_MEAN_ALL = "a mean over every element"  # the reduction of every loss of this chapter


def cycle_loss(fn) -> bool:
    """``fn(real_a, real_b, g_ab, g_ba) -> mean|g_ba(g_ab(a)) - a| + mean|g_ab(g_ba(b)) - b|``."""
    g = seeded(0)
    a = torch.rand(4, 3, 5, 5, generator=g, dtype=torch.float64)
    b = torch.rand(4, 3, 5, 5, generator=g, dtype=torch.float64)
    # two maps that are not each other's inverse and do not commute (a squared mirror image and a scaled
    # transpose: F(G(x)) != G(F(x))), so every mistake, including the order of composition, gives a
    # different number
    g_ab = lambda x: (0.9 * x.flip(-1)) ** 2 + 0.1  # noqa: E731
    g_ba = lambda x: 1.1 * x.transpose(-1, -2) - 0.1  # noqa: E731
    rec_a, rec_b = g_ba(g_ab(a)), g_ab(g_ba(b))
    expected = (rec_a - a).abs().mean() + (rec_b - b).abs().mean()
    got = expect_scalar(run(fn, a.clone(), b.clone(), g_ab, g_ba, name="cycle_loss"),
                        what="the cycle loss", reduction=_MEAN_ALL)
    expect_close(got, expected, what="the cycle loss", hints={
        "only the A -> B -> A round trip is there: add |G(F(b)) - b| for the B -> A -> B one":
            (rec_a - a).abs().mean(),
        "only the B -> A -> B round trip is there: add |F(G(a)) - a| for the A -> B -> A one":
            (rec_b - b).abs().mean(),
        "this compares one translation with its input (|G(a) - a|, |F(b) - b|); the cycle loss compares the "
        "round trip F(G(a)) with a": (g_ab(a) - a).abs().mean() + (g_ba(b) - b).abs().mean(),
        "squared errors: CycleGAN's cycle loss is an L1 (absolute) error":
            (rec_a - a).square().mean() + (rec_b - b).square().mean(),
        "you summed over the elements; take the mean (so the weight lambda does not depend on the image size)":
            (rec_a - a).abs().sum() + (rec_b - b).abs().sum(),
        "you averaged the two directions; the loss is their sum": expected / 2,
        "the maps are applied in the wrong order (G(G(a)), F(F(b)))":
            (g_ab(g_ab(a)) - a).abs().mean() + (g_ba(g_ba(b)) - b).abs().mean(),
        "the round trips are composed the wrong way round: an A image goes through G first and comes back "
        "through F, F(G(a)) = g_ba(g_ab(a)), and a B image G(F(b)) = g_ab(g_ba(b))":
            (g_ab(g_ba(a)) - a).abs().mean() + (g_ba(g_ab(b)) - b).abs().mean(),
        "the absolute value is missing: signed errors cancel; the L1 distance is mean |F(G(a)) - a|":
            (rec_a - a).mean().abs() + (rec_b - b).mean().abs(),
        "the absolute value is missing (signed errors cancel): the L1 distance is mean |F(G(a)) - a|":
            (rec_a - a).mean() + (rec_b - b).mean(),
    })
    ident = lambda x: x  # noqa: E731
    zero = expect_scalar(run(fn, a.clone(), b.clone(), ident, ident, name="cycle_loss"),
                         what="the cycle loss", reduction=_MEAN_ALL)
    expect(float(zero) == 0.0, f"with identity maps every round trip is exact, so the loss must be 0, got {float(zero):.3g}")
    return passed("|F(G(a)) - a| + |G(F(b)) - b|: zero when each map undoes the other, positive otherwise.")


def _torch_geometry(size: int, layers) -> tuple[int, int]:
    """Output side by running the convolutions, receptive field from the gradient of the central output."""
    convs = nn.Sequential(*[nn.Conv2d(1, 1, k, s, p, bias=False) for k, s, p in layers])
    for c in convs:
        nn.init.constant_(c.weight, 1.0)
    x = torch.zeros(1, 1, 96, 96, dtype=torch.float32, requires_grad=True)
    out_side = convs(torch.zeros(1, 1, size, size)).shape[-1]
    y = convs(x)
    c = y.shape[-1] // 2
    (grad,) = torch.autograd.grad(y[0, 0, c, c], x)
    cols = (grad[0, 0].abs().sum(0) > 0).nonzero()
    return out_side, int(cols.max() - cols.min() + 1)


def patch_geometry(fn) -> bool:
    """``fn(size, layers) -> (output_side, receptive_field)`` for convolutions [(kernel, stride, padding), ...]."""
    cases = [
        (28, [(4, 2, 1), (4, 2, 1), (4, 1, 1)]),               # the chapter's PatchGAN: 6x6 logits, 22-pixel patches
        (28, [(4, 2, 1), (4, 2, 1), (4, 1, 1), (4, 1, 1)]),    # one more stride-1 layer
        (32, [(3, 1, 0), (4, 2, 1), (5, 3, 2)]),              # odd kernels and strides
        (256, [(4, 2, 1)] * 3 + [(4, 1, 1)] * 2),              # pix2pix's 70x70 PatchGAN on 256x256 images
    ]
    for size, layers in cases:
        side, rf = _torch_geometry(size, layers)
        out = run(fn, size, list(layers), name="patch_geometry")
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise CheckFailed("return a pair (output_side, receptive_field)")
        got_side, got_rf = int(out[0]), int(out[1])
        if got_side != side:
            no_pad = size
            for k, s, _ in layers:
                no_pad = (no_pad - k) // s + 1
            hint = (" You left out the padding: each layer maps n to floor((n + 2p - k) / s) + 1."
                    if got_side == no_pad else
                    " Each layer maps n to floor((n + 2p - k) / s) + 1, applied one layer after the other.")
            raise CheckFailed(f"for a {size}x{size} input and layers {layers} the output is {side}x{side}, "
                              f"you returned {got_side}.{hint}")
        if got_rf != rf:
            summed = 1 + sum(k - 1 for k, _, _ in layers)
            own_stride, jump = 1, 1
            for k, s, _ in layers:
                own_stride += (k - 1) * jump * s
                jump *= s
            after = 1
            for i, (k, _, _) in enumerate(layers):
                later = 1
                for _, s_j, _ in layers[i + 1:]:
                    later *= s_j
                after += (k - 1) * later
            if got_rf == summed:
                hint = " You added (k - 1) per layer without scaling by the strides of the layers before it."
            elif got_rf == own_stride:
                hint = (" You included the layer's own stride in its factor; a layer's step in input pixels is the "
                        "product of the strides of the layers *before* it.")
            elif got_rf == after:
                hint = (" You scaled each layer by the strides of the layers *after* it (or ran the recursion "
                        "r <- (r - 1) s + k from the first layer); the factor of layer i is the product of the "
                        "strides *before* it, and the recursion runs from the last layer back to the first.")
            elif got_rf == rf + 2 * sum(p for _, _, p in layers):
                hint = " Padding adds zeros around the input; it does not change how many pixels one output sees."
            else:
                hint = " Use r = 1 + sum_i (k_i - 1) * prod_{j<i} s_j; padding does not change it."
            raise CheckFailed(f"for layers {layers} one output sees {rf}x{rf} input pixels, you returned {got_rf}.{hint}")
    return passed("the chapter's PatchGAN gives 6x6 logits on 28x28 digits, each judging a 22x22 patch; "
                  "pix2pix's gives 30x30 logits on 256x256 images, each judging a 70x70 patch.")


def psnr(fn) -> bool:
    """``fn(output, target) -> (N,)`` PSNR in dB per image, images in [0, 1]: 10 log10(1 / MSE_i)."""
    g = seeded(2)
    target = torch.rand(5, 3, 6, 6, generator=g, dtype=torch.float64)      # 3 channels: the mean covers them too
    scale = torch.tensor([0.02, 0.05, 0.1, 0.2, 0.3], dtype=torch.float64)[:, None, None, None]
    output = (target + scale * torch.randn(5, 3, 6, 6, generator=g, dtype=torch.float64)).clamp(0, 1)
    mse = (output - target).square().flatten(1).mean(1)
    expected = 10 * torch.log10(1 / mse)
    got = run(fn, output.clone(), target.clone(), name="psnr")
    t = expect_tensor(got, what="the PSNR")
    if t.numel() == 1:
        raise CheckFailed("return one PSNR per image, shape (N,): the MSE is a mean over each image's pixels only")
    expect_close(t.reshape(-1) if t.numel() == 5 else t, expected, what="the PSNR per image (dB)", hints={
        "you used the natural log; decibels use log10": 10 * torch.log(1 / mse),
        "20 log10 goes with the root-mean-square error (an amplitude); with the MSE (a power) it is 10 log10":
            20 * torch.log10(1 / mse),
        "the sign is flipped: PSNR = 10 log10(MAX^2 / MSE) grows as the error shrinks": -expected,
        "this is the MSE, not the PSNR": mse,
        "you used the mean absolute error; PSNR is built on the mean squared error":
            10 * torch.log10(1 / (output - target).abs().flatten(1).mean(1)),
        "the maximum value of images in [0, 1] is 1, not 255": 10 * torch.log10(255.0 ** 2 / mse),
        "10 log10 of the root-mean-square error: 10 log10 goes with the MSE itself (or 20 log10 with the RMSE)":
            10 * torch.log10(1 / mse.sqrt()),
        "the MSE is a mean over each image's channels *and* pixels; you summed over the channels":
            10 * torch.log10(1 / (output - target).square().sum(1).flatten(1).mean(1)),
        "the MSE of the whole batch was used for every image: compute one MSE per image":
            (10 * torch.log10(1 / mse.mean())).expand(5),
    }, rtol=1e-6)
    return passed(f"PSNR per image; here from {float(expected.max()):.1f} dB (small error) down to "
                  f"{float(expected.min()):.1f} dB (large error). Each 10 dB is 10x less squared error.")


def pix2pix_loss(fn) -> bool:
    """``fn(fake_logits, fake, target, lam) -> total`` = -mean log D(x, G(x)) + lam * mean|G(x) - y|."""
    g = seeded(3)
    logits = torch.randn(3, 1, 6, 6, generator=g, dtype=torch.float64)
    fake = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    target = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    lam = 7.0
    adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))     # -mean log sigmoid(l)
    l1 = (fake - target).abs().mean()
    expected = adv + lam * l1
    got = expect_scalar(run(fn, logits.clone(), fake.clone(), target.clone(), lam, name="pix2pix_loss"),
                        what="the loss", reduction=_MEAN_ALL)
    sat = -F.softplus(logits).mean()                                               # mean log(1 - D)
    expect_close(got, expected, what="the pix2pix generator loss", hints={
        "lambda is missing: the L1 term must be multiplied by lam": adv + l1,
        "lambda multiplies the adversarial term instead of the L1 term": lam * adv + l1,
        "the L1 term is missing": adv,
        "the adversarial term is missing": lam * l1,
        "squared error: pix2pix uses L1, which blurs less than L2": adv + lam * (fake - target).square().mean(),
        "the saturating loss mean log(1 - D): use the non-saturating -mean log D(x, G(x))": sat + lam * l1,
        "the target of the adversarial term is 0 (that is the discriminator's view); the generator wants D to "
        "say real (1)": F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits)) + lam * l1,
        "the logits went through log directly: D = sigmoid(logit) first (or BCE-with-logits)":
            -logits.clamp_min(1e-12).log().mean() + lam * l1,
        "the L1 term is a mean over every element; you summed it": adv + lam * (fake - target).abs().sum(),
        "the adversarial term is a mean over every logit of the grid; you summed it":
            F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="sum") + lam * l1,
    }, rtol=1e-6)
    # a discriminator that confidently rejects a fake (logit -800): -log D = 800, computed from the logit
    bad = torch.tensor([[-800.0, 0.0]], dtype=torch.float64)
    zero_img = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    val = torch.as_tensor(run(fn, bad, zero_img, zero_img, lam, name="pix2pix_loss")).detach().double().reshape(-1)
    want = (800.0 + math.log(2)) / 2
    if not (val.numel() == 1 and bool(torch.isfinite(val).all()) and abs(float(val[0]) - want) < 1e-6 * want):
        got_v = float(val[0]) if val.numel() else float("nan")
        why = ("F.binary_cross_entropy on probabilities clamps each log at -100; pass the logits to "
               "F.binary_cross_entropy_with_logits" if abs(got_v - (100.0 + math.log(2)) / 2) < 1e-3 else
               "sigmoid(-800) rounds to 0 and its log to -inf; compute -log D as softplus(-logit)")
        raise CheckFailed(f"for patch logits (-800, 0) and a perfect image the loss should be {want:.2f}, got "
                          f"{got_v:.4g}: {why}")
    return passed("L_G = -mean log D(x, G(x)) + lambda * mean |G(x) - y|: the adversarial term asks for realistic "
                  "patches, the L1 term for the right image.")
