"""Image-to-image translation (Chapter 5): pix2pix on paired data, CycleGAN on unpaired data.

Networks (images in [-1, 1], the convention of :mod:`gencourse.gan`; :func:`to_signed` and
:func:`gencourse.gan.to_unit` convert from and to [0, 1]):

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
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from . import data as _data
from . import img2img_data as tasks
from . import recipes
from .train import adam
from .gan import n_params, to_unit  # noqa: F401  (re-exported: every chapter counts parameters the same way)
from .gan.losses import discriminator_loss, generator_loss_nonsaturating

__all__ = ["to_signed", "to_unit", "UNet", "PatchDiscriminator", "conv_output_size", "receptive_field",
           "l1_loss", "psnr", "pix2pix_generator_loss", "lsgan_discriminator_loss", "lsgan_generator_loss",
           "adversarial_d_loss", "adversarial_g_loss", "cycle_consistency_loss", "identity_loss",
           "cyclegan_generator_loss", "ImageBuffer", "pix2pix_step", "cyclegan_step", "translate",
           "gradient_energy", "content_preservation", "UnpairedBatches", "n_params", "PIX2PIX_DEFAULTS",
           "CYCLEGAN_DEFAULTS", "build_pix2pix", "build_cyclegan", "evaluate_pix2pix", "evaluate_cyclegan",
           "pretrained_path", "load_or_train"]


def to_signed(x: Tensor) -> Tensor:
    """[0, 1] -> [-1, 1] (what the networks take and give)."""
    return x * 2 - 1


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'instance', 'batch' or 'none', got {kind!r}")


def _init(module: nn.Module) -> None:
    """pix2pix/DCGAN initialisation: conv weights N(0, 0.02), biases 0, norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------
# Generator: U-Net
# ---------------------------------------------------------------------------
class UNet(nn.Module):
    """U-Net generator: (B, in_channels, 28, 28) in [-1, 1] -> (B, out_channels, 28, 28) in [-1, 1].

    Encoder level ``i`` (``i = 0 .. depth-1``) is a 4x4 stride-2 convolution to
    ``c_i = min(width * 2**i, max_width)`` channels, then norm (not on the first and the
    innermost level) and LeakyReLU(0.2).  Decoder level ``i`` is a 4x4 stride-2 transposed
    convolution, norm and ReLU; its input is the level below **concatenated with encoder
    level i's output** (the skip connection).  Default shapes (``width=16, depth=4``)::

        x (B, C, 28, 28) -> pad (B, C, 32, 32)
        down: (B, 16, 16, 16) -> (B, 32, 8, 8) -> (B, 64, 4, 4) -> (B, 64, 2, 2)
        up:   (B, 64, 4, 4) ++ skip (B, 64, 4, 4) -> (B, 32, 8, 8) ++ (B, 32, 8, 8)
              -> (B, 16, 16, 16) ++ (B, 16, 16, 16) -> (B, out, 32, 32) -> tanh, crop (B, out, 28, 28)

    ``skips=False`` drops the concatenations (a plain encoder-decoder), for comparison.
    ``dropout`` (in the decoder's inner levels) is pix2pix's source of noise.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, *, width: int = 16, depth: int = 4,
                 max_width: int = 64, norm: str = "instance", dropout: float = 0.0, skips: bool = True,
                 size: int = 28):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        padded = 2 ** math.ceil(math.log2(size))
        if padded % 2 ** depth:
            raise ValueError(f"{depth} halvings do not fit a {padded}x{padded} (padded) image")
        self.in_channels, self.out_channels, self.depth, self.skips = in_channels, out_channels, depth, skips
        self.size, self.pad = size, (padded - size) // 2
        self.channels = [min(width * 2 ** i, max_width) for i in range(depth)]          # c_0 .. c_{depth-1}
        self.downs = nn.ModuleList()
        for i, c in enumerate(self.channels):
            c_in = in_channels if i == 0 else self.channels[i - 1]
            use_norm = 0 < i < depth - 1
            self.downs.append(nn.Sequential(
                nn.Conv2d(c_in, c, 4, 2, 1, bias=not use_norm or norm == "none"),
                _norm(norm if use_norm else "none", c), nn.LeakyReLU(0.2)))
        self.ups = nn.ModuleList()
        for i in reversed(range(depth)):
            c_in = self.channels[i] * (2 if skips and i < depth - 1 else 1)               # ++ skip from level i
            if i == 0:
                self.ups.append(nn.ConvTranspose2d(c_in, out_channels, 4, 2, 1))
            else:
                c_out = self.channels[i - 1]
                self.ups.append(nn.Sequential(
                    nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=norm == "none"), _norm(norm, c_out), nn.ReLU(),
                    nn.Dropout(dropout) if dropout and i > 1 else nn.Identity()))
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.in_channels or x.shape[-1] != self.size or x.shape[-2] != self.size:
            raise ValueError(f"expected (B, {self.in_channels}, {self.size}, {self.size}) images, got {tuple(x.shape)}")
        p = self.pad
        h = F.pad(x, (p, p, p, p), mode="replicate") if p else x                      # (B, C, 32, 32)
        feats = []
        for down in self.downs:
            h = down(h)
            feats.append(h)                                                          # level i: (B, c_i, 32/2^(i+1), ..)
        for j, up in enumerate(self.ups):
            i = self.depth - 1 - j                                                   # the level being decoded
            if self.skips and j > 0:
                h = torch.cat([h, feats[i]], 1)                                      # skip connection
            h = up(h)
        h = torch.tanh(h)
        return h[..., p:p + self.size, p:p + self.size] if p else h                   # (B, out, 28, 28)


# ---------------------------------------------------------------------------
# Discriminator: PatchGAN
# ---------------------------------------------------------------------------
def conv_output_size(size: int, layers: Sequence[tuple[int, int, int]]) -> int:
    """Side of the output of convolutions ``layers`` = [(kernel, stride, padding), ...] on a ``size`` input:
    each layer maps n to floor((n + 2p - k) / s) + 1."""
    for k, s, p in layers:
        size = (size + 2 * p - k) // s + 1
    return size


def receptive_field(layers: Sequence[tuple[int, int, int]]) -> int:
    """Width in input pixels of what one output unit of ``layers`` = [(kernel, stride, padding), ...] sees:
    r = 1 + sum_i (k_i - 1) * prod_{j < i} s_j (padding does not change it)."""
    r, jump = 1, 1
    for k, s, _ in layers:
        r += (k - 1) * jump
        jump *= s
    return r


class PatchDiscriminator(nn.Module):
    """PatchGAN: (B, in_channels, H, W) in [-1, 1] -> logits (B, 1, h, w), one per input patch.

    Layers (4x4 kernels, padding 1): ``n_down`` stride-2 convolutions with ``width, 2 width, ...``
    channels, ``n_extra`` stride-1 ones, then a stride-1 convolution to one channel; norm on
    every hidden layer but the first, LeakyReLU(0.2).  Default (``n_down=2, n_extra=0``) on
    28x28: (B, w, 14, 14) -> (B, 2w, 7, 7) -> logits (B, 1, 6, 6), each seeing a 22x22 patch.
    ``layer_specs`` lists (kernel, stride, padding) for :func:`conv_output_size` and
    :func:`receptive_field`.
    """

    def __init__(self, in_channels: int = 2, *, width: int = 32, n_down: int = 2, n_extra: int = 0,
                 norm: str = "instance", max_width: int = 256):
        super().__init__()
        if n_down < 1 or n_extra < 0:
            raise ValueError(f"need n_down >= 1 and n_extra >= 0, got {n_down}, {n_extra}")
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        specs: list[tuple[int, int, int]] = []
        c_in = in_channels
        for i in range(n_down + n_extra):
            c = min(width * 2 ** i, max_width)
            stride = 2 if i < n_down else 1
            layers += [nn.Conv2d(c_in, c, 4, stride, 1, bias=i == 0 or norm == "none"),
                       _norm(norm if i > 0 else "none", c), nn.LeakyReLU(0.2)]
            specs.append((4, stride, 1))
            c_in = c
        layers.append(nn.Conv2d(c_in, 1, 4, 1, 1))
        specs.append((4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.layer_specs = specs
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {tuple(x.shape)}")
        return self.net(x)                                                           # (B, 1, h, w)

    def output_size(self, size: int = 28) -> int:
        return conv_output_size(size, self.layer_specs)

    def receptive_field(self) -> int:
        return receptive_field(self.layer_specs)


# ---------------------------------------------------------------------------
# Losses (scalars; each a mean over every element: batch, channels, pixels or patches)
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# The buffer of past fakes
# ---------------------------------------------------------------------------
class ImageBuffer:
    """A pool of up to ``capacity`` past generated images (Shrivastava et al., 2017; used by CycleGAN).

    :meth:`query` takes a batch of new fakes and returns a batch of the same shape for the
    discriminator: while the pool is filling, the new images themselves (and they are stored);
    afterwards each image is, with probability ``p``, swapped for a random stored one (which is
    returned, the new image taking its place), else returned as is.  The images of one batch
    draw different slots (when the batch is not larger than the pool), so a stored image is
    returned at most once per call.  The discriminator thus
    also sees what the generator produced a while ago, which damps the two networks chasing
    each other.  ``capacity=0`` turns it off.  Random draws use ``generator`` (on the images'
    device).  The pool holds detached copies.
    """

    def __init__(self, capacity: int = 50, *, p: float = 0.5, generator: torch.Generator | None = None):
        if capacity < 0 or not 0 <= p <= 1:
            raise ValueError(f"need capacity >= 0 and 0 <= p <= 1, got {capacity}, {p}")
        self.capacity, self.p, self.generator = capacity, p, generator
        self.images: Tensor | None = None
        self.count = 0

    def __len__(self) -> int:
        return self.count

    @torch.no_grad()
    def query(self, images: Tensor) -> Tensor:
        images = images.detach()
        if self.capacity == 0:
            return images
        if self.images is None:
            self.images = torch.empty(self.capacity, *images.shape[1:], dtype=images.dtype, device=images.device)
        out = images.clone()
        n_fill = min(self.capacity - self.count, images.shape[0])
        if n_fill:                                                   # filling: store and return the new images
            self.images[self.count:self.count + n_fill] = images[:n_fill]
            self.count += n_fill
        rest = images[n_fill:]
        if rest.shape[0]:
            g = self.generator
            dev = rest.device if g is None else g.device
            r = rest.shape[0]
            swap = (torch.rand(r, device=dev, generator=g) < self.p).to(rest.device)
            if r <= self.capacity:                                   # distinct slots: no stored image used twice
                slot = torch.randperm(self.capacity, device=dev, generator=g)[:r].to(rest.device)
            else:                                                    # more new images than slots: repeats possible
                slot = torch.randint(self.capacity, (r,), device=dev, generator=g).to(rest.device)
            old = self.images[slot]                                  # (R, C, H, W) past fakes
            out[n_fill:] = torch.where(swap[:, None, None, None], old, rest)
            keep = torch.where(swap[:, None, None, None], rest, old)  # swapped slots take the new image
            self.images[slot] = keep.to(self.images.dtype)
        return out


# ---------------------------------------------------------------------------
# Step functions
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# Using and measuring a translator
# ---------------------------------------------------------------------------
@torch.no_grad()
def translate(generator: nn.Module, images: Tensor, *, device: torch.device | str | None = None,
              batch_size: int = 1000) -> Tensor:
    """Run ``generator`` on images in [0, 1] (N, C, 28, 28), in eval mode; returns [0, 1] images on the CPU."""
    device = torch.device(device) if device is not None else next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    out = [to_unit(generator(to_signed(images[i:i + batch_size].to(device))).float()).cpu()
           for i in range(0, images.shape[0], batch_size)]
    generator.train(was_training)
    return torch.cat(out)


def gradient_energy(images: Tensor) -> Tensor:
    """Sharpness of each image: the mean squared difference between horizontally and vertically adjacent
    pixels (a finite-difference gradient energy).  Images (N, C, H, W) in [0, 1]; returns (N,).
    Blurring lowers it; compare a model's outputs with the real images of the same inputs."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).square().flatten(1).mean(1)
    dy = (images[..., 1:, :] - images[..., :-1, :]).square().flatten(1).mean(1)
    return dx + dy


def content_preservation(translated: Tensor, labels: Tensor, domain: str, *, rotate: bool = False,
                         device: torch.device | str = "cpu"):
    """Share of translated images whose digit the MNIST domain classifier reads as the input's label.

    ``translated``: images of ``domain`` ("A" or "B"), (N, 3, 28, 28) in [0, 1]; ``labels``:
    the digits of the *inputs*.  Converted with :func:`gencourse.img2img_data.to_classifier`
    (grey = max over channels; a rotated domain B, ``rotate=True``, is turned back), scored by
    :func:`gencourse.metrics.class_accuracy` (returns its :class:`~gencourse.metrics.Result`;
    chance is about 0.1).
    """
    from . import metrics

    return metrics.class_accuracy(tasks.to_classifier(translated, domain, rotate=rotate), labels, "mnist",
                                  device=device)


# ---------------------------------------------------------------------------
# Data for the recipes
# ---------------------------------------------------------------------------
def _signed_u8(x: Tensor) -> Tensor:
    return x.unsqueeze(1).float().div_(127.5).sub_(1.0)                 # uint8 (B, 28, 28) -> (B, 1, 28, 28) in [-1, 1]


class UnpairedBatches:
    """Mini-batches ``(a, b)`` in [-1, 1], (B, 3, 28, 28) each, from two disjoint sets of MNIST digits.

    Holds the raw uint8 digits of each domain (and B's hues) on ``device``; each domain has
    its own :class:`gencourse.data.BatchIterator` (own shuffle, seeds ``seed`` and ``seed + 1``),
    and domain B is restyled on the device per batch.  One epoch ends with the shorter domain;
    ``batches(epoch, start)`` makes it resumable like a BatchIterator.

    ``transform(u8)`` maps *one* batch of raw MNIST digits (B, 28, 28) to both domains (A as
    is, B restyled with hues drawn on the device): the interface of ``benchmarks/run.py``'s
    reference loop, which reads a single MNIST stream.
    """

    def __init__(self, a_u8: Tensor, b_u8: Tensor, b_hue: Tensor, *, batch_size: int, device, seed: int = 0,
                 rank: int = 0, world_size: int = 1, rotate: bool = False):
        kw = dict(batch_size=batch_size, device=device, rank=rank, world_size=world_size)
        self.it_a = _data.BatchIterator(a_u8, seed=seed, **kw)
        self.it_b = _data.BatchIterator(b_u8, b_hue.float(), seed=seed + 1, **kw)
        self.rotate = rotate
        self.epoch = 0

    @staticmethod
    def domain_a(u8: Tensor) -> Tensor:
        return tasks.grey_to_rgb(_signed_u8(u8))

    def domain_b(self, u8: Tensor, hue: Tensor) -> Tensor:
        return to_signed(tasks.restyle(u8.unsqueeze(1).float() / 255, hue, rotate=self.rotate))

    def transform(self, u8: Tensor):
        hue = torch.rand(u8.shape[0], device=u8.device)
        return self.domain_a(u8), self.domain_b(u8, hue)

    def __len__(self) -> int:
        return min(len(self.it_a), len(self.it_b))

    def batches(self, epoch: int, start: int = 0):
        for i, (xa, (xb, hue)) in enumerate(zip(self.it_a.batches(epoch, start), self.it_b.batches(epoch, start))):
            if start + i >= len(self):
                return
            yield self.domain_a(xa), self.domain_b(xb, hue)

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        return self.batches(epoch)


# ---------------------------------------------------------------------------
# Recipes
# ---------------------------------------------------------------------------
PIX2PIX_DEFAULTS = dict(
    dataset="fashion", adversarial=True, lam=100.0, width=16, depth=4, max_width=64, norm="instance", dropout=0.0,
    d_width=32, d_down=2, d_extra=0, lr_g=2e-4, lr_d=2e-4, betas=[0.5, 0.999], batch_size=64, steps=5000,
    n_train=0, init_seed=0, edge_threshold=0.5, eval_n=2000, eval_fid=True,
)

CYCLEGAN_DEFAULTS = dict(
    dataset="mnist", lambda_cycle=10.0, lambda_identity=0.0, adversarial="lsgan", width=16, depth=4, max_width=64,
    norm="instance", d_width=32, d_down=2, d_extra=0, lr_g=2e-4, lr_d=2e-4, betas=[0.5, 0.999], batch_size=64,
    steps=2500, buffer=50, n_train=0, init_seed=0, split_seed=0, rotate=False, eval_n=2000,
)


def build_pix2pix(cfg: dict) -> dict:
    """``{"generator"}`` (U-Net, 1 -> 1 channel) and, if adversarial, ``{"discriminator"}`` (PatchGAN on
    source ++ image, 2 channels)."""
    torch.manual_seed(cfg["init_seed"])
    mods = {"generator": UNet(1, 1, width=cfg["width"], depth=cfg["depth"], max_width=cfg["max_width"],
                              norm=cfg["norm"], dropout=cfg["dropout"])}
    if cfg["adversarial"]:
        mods["discriminator"] = PatchDiscriminator(2, width=cfg["d_width"], n_down=cfg["d_down"],
                                                   n_extra=cfg["d_extra"], norm=cfg["norm"])
    return mods


def _pix2pix_optimizers(mods, cfg):
    betas = tuple(cfg["betas"])
    opts = {"g": adam(mods["generator"].parameters(), lr=cfg["lr_g"], betas=betas)}
    if "discriminator" in mods:
        opts["d"] = adam(mods["discriminator"].parameters(), lr=cfg["lr_d"], betas=betas)
    return opts


def _pix2pix_data(cfg, device, rank=0, world_size=1):
    pairs = tasks.edges_to_images(cfg["dataset"], "train", cfg["n_train"] or None, seed=cfg["init_seed"],
                                  threshold=cfg["edge_threshold"])
    u8 = lambda x: (x[:, 0] * 255).round().to(torch.uint8)  # noqa: E731  (exact for these images)
    return recipes.batches(cfg, device, rank, world_size, u8(pairs.source), u8(pairs.target),
                           transform=lambda s, t: (_signed_u8(s), _signed_u8(t)))


def _pix2pix_step(mods, opts, cfg):
    return pix2pix_step(mods["generator"], mods.get("discriminator"), opts["g"], opts.get("d"), lam=cfg["lam"],
                        adversarial=cfg["adversarial"])


@torch.no_grad()
def evaluate_pix2pix(generator: nn.Module, pairs: tasks.PairedSet, *, fid: bool = True,
                     device: torch.device | str = "cpu") -> dict:
    """Held-out metrics of an edges -> image generator on ``pairs`` (use the test split):

    ``l1`` (mean |G(x) - y| over pixels and images, images in [0, 1]), ``psnr`` (dB, mean of the
    per-image PSNR), ``sharpness_ratio`` (mean :func:`gradient_energy` of the outputs over that of
    the true images: 1 is as sharp as real, blur gives < 1), and ``fid`` of the outputs against
    the dataset's test split in the domain classifier's feature space (:func:`gencourse.metrics.fid`)
    with its real-vs-real ``fid_floor`` at the same n (skipped with ``fid=False``: the test-set
    features take some seconds on a CPU the first time).  ``protocol`` says all this in one string.
    """
    from . import metrics

    out = translate(generator, pairs.source, device=device)
    target = pairs.target
    n = len(pairs)
    res = {"l1": float((out - target).abs().mean()), "psnr": float(psnr(out, target).mean()),
           "sharpness_ratio": float(gradient_energy(out).mean() / gradient_energy(target).mean()), "eval_n": n}
    protocol = (f"{n} held-out {pairs.dataset} {pairs.split} pairs (edges -> image), images in [0, 1]: L1 = mean "
                "|G(x) - y| over pixels and images; PSNR = mean over images of 10 log10(1 / MSE_i) dB; "
                "sharpness ratio = mean gradient energy of outputs / of true images")
    if fid:
        f = metrics.fid(out, pairs.dataset, device=device)
        res.update(fid=float(f), fid_floor=float(metrics.real_floor(pairs.dataset, n, device=device)[n]["fid"]))
        protocol += "; " + f.protocol
    res["protocol"] = protocol
    return res


def _pix2pix_evaluate(mods, cfg, device):
    pairs = tasks.edges_to_images(cfg["dataset"], "test", cfg["eval_n"], seed=0, threshold=cfg["edge_threshold"])
    return evaluate_pix2pix(mods["generator"], pairs, fid=cfg["eval_fid"], device=device)


def build_cyclegan(cfg: dict) -> dict:
    """``{"g_ab", "g_ba", "d_a", "d_b"}``: two U-Nets (3 -> 3 channels) and two PatchGANs (3 channels)."""
    torch.manual_seed(cfg["init_seed"])
    unet = lambda: UNet(3, 3, width=cfg["width"], depth=cfg["depth"], max_width=cfg["max_width"],  # noqa: E731
                        norm=cfg["norm"])
    patch = lambda: PatchDiscriminator(3, width=cfg["d_width"], n_down=cfg["d_down"],  # noqa: E731
                                       n_extra=cfg["d_extra"], norm=cfg["norm"])
    return {"g_ab": unet(), "g_ba": unet(), "d_a": patch(), "d_b": patch()}


def _cyclegan_optimizers(mods, cfg):
    betas = tuple(cfg["betas"])
    g = [p for k in ("g_ab", "g_ba") for p in mods[k].parameters()]
    d = [p for k in ("d_a", "d_b") for p in mods[k].parameters()]
    return {"g": adam(g, lr=cfg["lr_g"], betas=betas), "d": adam(d, lr=cfg["lr_d"], betas=betas)}


def _cyclegan_data(cfg, device, rank=0, world_size=1):
    images, _ = _data.load(cfg["dataset"], "train")
    ia, ib = tasks.unpaired_split(images.shape[0], cfg["n_train"] or None, cfg["split_seed"])
    hue = tasks.domain_b_hues(ib.shape[0], cfg["split_seed"])
    return UnpairedBatches(images[ia], images[ib], hue, batch_size=cfg["batch_size"] // world_size, device=device,
                           seed=cfg["init_seed"], rank=rank, world_size=world_size, rotate=cfg["rotate"])


def _cyclegan_step(mods, opts, cfg):
    dev = next(mods["g_ab"].parameters()).device
    gens = [torch.Generator(device=dev).manual_seed(cfg["init_seed"] + k) for k in (11, 12)]
    return cyclegan_step(mods["g_ab"], mods["g_ba"], mods["d_a"], mods["d_b"], opts["g"], opts["d"],
                         lambda_cycle=cfg["lambda_cycle"], lambda_identity=cfg["lambda_identity"],
                         adversarial=cfg["adversarial"], buffer_a=ImageBuffer(cfg["buffer"], generator=gens[0]),
                         buffer_b=ImageBuffer(cfg["buffer"], generator=gens[1]))


@torch.no_grad()
def evaluate_cyclegan(g_ab: nn.Module, g_ba: nn.Module, test: tasks.UnpairedSet, *, rotate: bool = False,
                      device: torch.device | str = "cpu") -> dict:
    """Content preservation on held-out digits (``test``: :func:`~gencourse.img2img_data.unpaired_mnist` of the
    test split): the share of translations whose digit the MNIST classifier reads as the input's label,
    A -> B (``content_ab``), B -> A (``content_ba``) and after the round trip A -> B -> A (``content_aba``),
    plus the round trip's L1 (``cycle_l1_a``, images in [0, 1]).  Chance is about 0.1."""
    fake_b = translate(g_ab, test.a, device=device)
    fake_a = translate(g_ba, test.b, device=device)
    rec_a = translate(g_ba, fake_b, device=device)
    acc = lambda x, y, d: float(content_preservation(x, y, d, rotate=rotate, device=device))  # noqa: E731
    n = len(test)
    return {
        "content_ab": acc(fake_b, test.a_labels, "B"), "content_ba": acc(fake_a, test.b_labels, "A"),
        "content_aba": acc(rec_a, test.a_labels, "A"), "cycle_l1_a": float((rec_a - test.a).abs().mean()),
        "eval_n": n,
        "protocol": (f"{n} held-out MNIST test digits per domain (disjoint halves of the test split); translated "
                     "images converted to grey (max over RGB)" + (" and domain B turned upright" if rotate else "")
                     + ", then scored by classifier-mnist: share read as the input's digit (chance ~0.1)"),
    }


def _cyclegan_evaluate(mods, cfg, device):
    test = tasks.unpaired_mnist("test", cfg["eval_n"], seed=cfg["split_seed"], rotate=cfg["rotate"])
    return evaluate_cyclegan(mods["g_ab"], mods["g_ba"], test, rotate=cfg["rotate"], device=device)


def pretrained_path(name: str, seed: int = 0):
    """Shipped weights of recipe ``name`` trained with ``init_seed=seed``: ``NAME.pt`` for seed 0, else
    ``NAME-seed{seed}.pt`` (the extra seeds of the chapter's table), in ``gencourse/assets/weights``."""
    return recipes.weights_path(name) if seed == 0 else recipes.WEIGHTS_DIR / f"{name}-seed{seed}.pt"


def load_or_train(name: str, seed: int = 0, *, train: bool = False, device: torch.device | str = "cpu",
                  **overrides) -> tuple[dict, dict, dict]:
    """The modules of recipe ``name`` (``init_seed=seed``), in eval mode on ``device``: trained now for the
    recipe's ``steps`` when ``train`` (FULL mode), else loaded from :func:`pretrained_path`.

    Returns ``(modules, config, info)``; ``info`` holds the checkpoint's metrics (``train_seconds``,
    ``device``, ``steps``, the evaluation) when loaded, or ``train_seconds``/``steps``/``device``
    of the run just made.
    """
    from . import utils

    if train:
        utils.seed_everything(seed)
        trainer, mods, cfg = recipes.build_trainer(name, dict(overrides, init_seed=seed), device=device)
        trainer.fit(steps=cfg["steps"])
        dev = torch.device(device)
        info = {"train_seconds": round(trainer.seconds, 1), "steps": trainer.step,
                "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type}
    else:
        mods, ck = recipes.load_pretrained(name, device, path=pretrained_path(name, seed))
        cfg = {k: v for k, v in ck.config.items() if k != "recipe"}
        info = dict(ck.metrics, command=ck.meta.get("command"))
    for m in mods.values():
        m.eval()
    return mods, cfg, info


def _register_pix2pix(name: str, description: str, **overrides) -> None:
    recipes.register(recipes.Recipe(
        name=name, description=description, defaults=dict(PIX2PIX_DEFAULTS, **overrides), build=build_pix2pix,
        optimizers=_pix2pix_optimizers, data=_pix2pix_data, step=_pix2pix_step, evaluate=_pix2pix_evaluate,
        datasets=("fashion", "mnist")))


def _register_cyclegan(name: str, description: str, **overrides) -> None:
    recipes.register(recipes.Recipe(
        name=name, description=description, defaults=dict(CYCLEGAN_DEFAULTS, **overrides), build=build_cyclegan,
        optimizers=_cyclegan_optimizers, data=_cyclegan_data, step=_cyclegan_step, evaluate=_cyclegan_evaluate,
        datasets=("mnist",)))


_register_pix2pix("pix2pix-edges-fashion", "pix2pix: edge map -> Fashion-MNIST image, adversarial + 100 x L1 (Chapter 5)")
_register_pix2pix("pix2pix-edges-fashion-l1", "the same U-Net trained with the L1 loss alone (Chapter 5)",
                  adversarial=False)
_register_cyclegan("cyclegan-mnist", "CycleGAN: MNIST <-> coloured MNIST, unpaired (Chapter 5)")
_register_cyclegan("cyclegan-mnist-nocycle", "the CycleGAN ablation: adversarial losses only, no cycle or identity "
                   "loss (Chapter 5)", lambda_cycle=0.0, lambda_identity=0.0)
