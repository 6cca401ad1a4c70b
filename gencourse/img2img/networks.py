"""The networks of Chapter 5 (images in [-1, 1], the convention of :mod:`gencourse.gan`): the U-Net
generator and the PatchGAN discriminator, with the layer arithmetic (:func:`conv_output_size`,
:func:`receptive_field`) that sizes its patches.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..gan.networks import n_params, to_unit  # noqa: F401  (re-exported: every chapter counts parameters the same way)


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
