"""A small U-Net for 28x28 images: the noise predictor epsilon_theta(x_t, t, y) of Chapter 6.

The network only maps (noisy image, time step, optional class) to an image of the
same shape; the diffusion process that uses it lives in :mod:`gencourse.diffusion`.

* **Time** enters as a sinusoidal embedding of the integer step ``t`` (the
  Transformer positional encoding, as in the DDPM paper), passed through a small
  MLP and injected into every residual block as a per-channel scale and shift.
* **Class conditioning** (optional, ``num_classes=K``) adds a learned embedding
  of the label.  Index ``K`` is the *null label* ("no class"); during training
  each label is replaced by it with probability ``class_dropout``, so one network
  learns both p(x) and p(x | y), which classifier-free guidance combines at
  sampling time.  ``y=None`` means "unconditional" (the null label).

Shapes for the default configuration (``channels=32, channel_mults=(1, 2, 2)``)::

    x (B, 1, 28, 28) -> (B, 32, 28, 28) -> (B, 64, 14, 14) -> (B, 64, 7, 7)   down
                        (B, 64, 7, 7) + self-attention                          middle
                     -> (B, 64, 14, 14) -> (B, 32, 28, 28) -> (B, 1, 28, 28)    up, with skips
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .train.amp import inference

__all__ = ["timestep_embedding", "UNet", "ResBlock", "SelfAttention"]


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding of time steps: ``(B,)`` -> ``(B, dim)``.

    Row ``b`` is ``[sin(t_b w_0), ..., sin(t_b w_{h-1}), cos(t_b w_0), ..., cos(t_b w_{h-1})]``
    with ``h = dim / 2`` frequencies ``w_k = max_period ** (-k / h)``, from 1 down
    to about ``1 / max_period``: nearby steps get similar vectors, distant ones
    differ in the slow components.  ``t`` may be integer or float.
    """
    if dim % 2:
        raise ValueError(f"the embedding dimension must be even, got {dim}")
    if t.dim() != 1:
        raise ValueError(f"t must have shape (B,), got {tuple(t.shape)}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]                      # (B, half)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)     # (B, dim)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the embedding as a per-channel scale and shift
    between the convolutions, plus a (1x1-projected) skip: (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity (through its skip)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))                       # (B, C_out, H, W)
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)  # (B, C_out, 1, 1) each
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions, with a residual connection."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W).unbind(1)
        # (B, heads, H*W, C/heads) each, attention over positions
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(h.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    """Noise predictor ``epsilon_theta(x_t, t, y)``: ``(B, C, H, W), (B,), (B,) -> (B, C, H, W)``.

    Parameters
    ----------
    in_channels:
        Image channels (1 for MNIST).
    channels:
        Width of the first level; level ``i`` has ``channels * channel_mults[i]``.
    channel_mults:
        One entry per resolution; each level after the first halves H and W
        (28 -> 14 -> 7 for three levels).
    num_res_blocks:
        Residual blocks per level on the way down (and again on the way up).
    attention:
        Put self-attention in the middle (lowest resolution) of the network.
    num_classes:
        ``None`` for an unconditional network, else the number of classes ``K``;
        label ``K`` is the null label.
    class_dropout:
        Probability, in training mode only, of replacing a label by the null
        label (what classifier-free guidance needs).
    """

    def __init__(self, in_channels: int = 1, channels: int = 32, channel_mults: Sequence[int] = (1, 2, 2),
                 num_res_blocks: int = 1, attention: bool = True, num_classes: int | None = None,
                 class_dropout: float = 0.1, dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= class_dropout <= 1.0:
            raise ValueError(f"class_dropout must be a probability, got {class_dropout}")
        self.in_channels, self.num_classes, self.class_dropout = in_channels, num_classes, class_dropout
        self.time_dim = channels
        emb_dim = 4 * channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None  # row K: null label

        widths = [channels * m for m in channel_mults]
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        c = channels
        for i, w in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(c, w, emb_dim, dropout))
                c = w
            self.down.append(blocks)
            last = i == len(widths) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid1 = ResBlock(c, c, emb_dim, dropout)
        self.mid_attn = SelfAttention(c) if attention else nn.Identity()
        self.mid2 = ResBlock(c, c, emb_dim, dropout)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for j in range(num_res_blocks):
                blocks.append(ResBlock(c + (w if j == 0 else 0), w, emb_dim, dropout))  # first one takes the skip
                c = w
            self.up.append(blocks)
            self.upsample.append(nn.Identity() if i == 0 else
                                 nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                               nn.Conv2d(c, widths[i - 1], 3, padding=1)))
            if i > 0:
                c = widths[i - 1]
        self.norm_out = _norm(c)
        self.conv_out = nn.Conv2d(c, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # predicts 0 noise at initialisation
        nn.init.zeros_(self.conv_out.bias)

    @property
    def null_label(self) -> int | None:
        """The label index meaning "no class" (``num_classes``), or None if unconditional."""
        return self.num_classes

    def check_labels(self, y: Tensor) -> None:
        """Raise ``ValueError`` unless every label is in ``0..num_classes`` (``num_classes``: the null
        label).  Reads the labels on the host (a sync on a GPU), so the samplers call it once per
        call rather than at every denoising step."""
        if y.numel() and (int(y.min()) < 0 or int(y.max()) > self.num_classes):
            raise ValueError(f"labels must be in 0..{self.num_classes} ({self.num_classes} = null label)")

    def embed(self, t: Tensor, y: Tensor | None) -> Tensor:
        """Time (+ label) embedding, ``(B, 4 * channels)``; applies label dropout in training mode."""
        emb = self.time_mlp(timestep_embedding(t, self.time_dim))            # (B, 4C)
        if self.label_emb is None:
            if y is not None:
                raise ValueError("this UNet is unconditional (num_classes=None) but got labels y")
            return emb
        if y is None:
            y = torch.full((t.shape[0],), self.num_classes, dtype=torch.long, device=t.device)
        if y.shape != t.shape:
            raise ValueError(f"labels must have shape {tuple(t.shape)} (one per image), got {tuple(y.shape)}")
        if y.device.type == "cpu":  # free there; on a GPU the samplers check once per call (a host sync)
            self.check_labels(y)
        if self.training and self.class_dropout > 0:
            drop = torch.rand(y.shape, device=y.device) < self.class_dropout
            y = torch.where(drop, torch.full_like(y, self.num_classes), y)
        return emb + self.label_emb(y)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """Predicted noise for noisy images ``x`` (B, C, H, W) at integer steps ``t`` (B,),
        classes ``y`` (B,) or None (null label)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        emb = self.embed(t, y)
        h = self.conv_in(x)                                  # (B, C, 28, 28)
        skips = []
        for blocks, down in zip(self.down, self.downsample):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)                                  # (B, C_i, H_i, W_i)
            h = down(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)  # (B, C_last, 7, 7)
        for blocks, up in zip(self.up, self.upsample):
            h = torch.cat([h, skips.pop()], dim=1)           # (B, C + C_i, H_i, W_i)
            for block in blocks:
                h = block(h, emb)
            h = up(h)
        return self.conv_out(F.silu(self.norm_out(h)))       # (B, C_in, 28, 28)


def guided(model: nn.Module, x: Tensor, time: Tensor, labels: Tensor | None, guidance_scale: float = 1.0) -> Tensor:
    """The output of a class-conditional ``model(x, time, y)`` (a :class:`UNet`) with classifier-free
    guidance (Ho & Salimans 2022): ``out = out(x, null) + s (out(x, y) - out(x, null))``; ``s = 0`` is
    unconditional, ``s = 1`` plain conditional, and both predictions of ``s > 1`` come from one batched
    call.  Chapter 6 guides noise predictions with it, Chapter 8 velocities.  The forward runs under
    :func:`gencourse.train.amp.inference` (half precision on CUDA) and returns float32."""
    with inference(x.device):       # bf16 / fp16 on CUDA (train.amp.inference); float32 on the CPU
        if labels is None:
            return model(x, time).float()
        if guidance_scale == 1.0:
            return model(x, time, labels).float()
        null = torch.full_like(labels, model.null_label)
        if guidance_scale == 0.0:
            return model(x, time, null).float()
        out_c, out_u = model(torch.cat([x, x]), torch.cat([time, time]), torch.cat([labels, null])).float().chunk(2)
    return out_u + guidance_scale * (out_c - out_u)
