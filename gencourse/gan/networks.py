"""The GAN networks (Chapter 4): fully connected (one network, or S stacked ones) and DCGAN for 28x28.

Convention: ``D(x) = sigmoid(logit)`` is the probability that ``x`` is **real**.  Generators output
``tanh`` images in [-1, 1] (:func:`to_unit` maps them to [0, 1]).  Every network takes integer labels,
or soft one-hot rows, when ``n_classes > 0``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F


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
    ``deep=True`` adds the bracketed 3x3 convolution.  ``spectral=True`` divides the
    weight of every convolution, the output layer and the class embedding by its
    largest singular value (spectral normalisation, Miyato et al. 2018; one power
    iteration per training forward pass), which bounds each layer's Lipschitz constant.
    """

    def __init__(self, width: int = 64, *, n_classes: int = 0, norm: str = "batch", dropout: float = 0.0,
                 deep: bool = False, spectral: bool = False):
        super().__init__()
        w = width
        norms = {"batch": nn.BatchNorm2d, "layer": lambda c: nn.GroupNorm(1, c), "none": lambda c: nn.Identity()}
        if norm not in norms:
            raise ValueError(f"norm must be one of {sorted(norms)}, got {norm!r}")
        drop = (lambda: nn.Dropout(dropout)) if dropout else nn.Identity
        self.width, self.n_classes, self.norm, self.deep, self.spectral = width, n_classes, norm, deep, spectral
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
        if spectral:  # after the initialisation: the parametrisation keeps the initial weight as "original"
            sn = nn.utils.parametrizations.spectral_norm
            for m in list(self.modules()):
                if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
                    sn(m)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        phi = self.features(x)                                          # (B, 2w * 49)
        logit = self.out(phi).squeeze(1)                                # (B,)
        if self.embed is not None:
            y = _one_hot(labels, self.n_classes, x.shape[:1], x.device)
            logit = logit + ((y @ self.embed.weight) * phi).sum(1)     # + <e_y, phi(x)>
        return logit
