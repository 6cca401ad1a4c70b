"""Chapter 1: autoencoders (linear, MLP, convolutional, denoising) and PCA.

An autoencoder maps an image ``x`` to a code ``z = f(x)`` through a narrow
bottleneck and back to a reconstruction ``g(z)``. Images are float tensors in
[0, 1] of shape (B, 1, 28, 28); codes have shape (B, d).

Reconstruction losses are reported **per image: sum over pixels, mean over the
batch** (the course's convention, see ``book/notation.md``):

* ``bce``: binary cross-entropy between the decoder's sigmoid output and the
  pixels (the negative log-likelihood of independent Bernoulli pixels; on grey
  levels it is a cross-entropy, not a normalised likelihood);
* ``mse``: squared error (the negative log-likelihood of a Gaussian with fixed
  variance 1/2, up to a constant).

Recipes (``python -m gencourse train NAME``): ``ae-fashion-2d`` (MLP, 2-D code)
and ``ae-fashion-conv`` (convolutional, 16-D code); both accept
``noise="mask"`` or ``"gaussian"`` for a denoising autoencoder.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import data as _data
from . import recipes, utils

__all__ = ["bce_loss", "mse_loss", "corrupt", "Autoencoder", "LinearAutoencoder", "MLPAutoencoder",
           "ConvAutoencoder", "pca", "principal_angles", "encode_all", "fit_code_gaussian", "nearest_codes"]

IMAGE_SHAPE = (1, 28, 28)
D_PIXELS = 28 * 28


# --------------------------------------------------------------------------- losses
def bce_loss(logits: Tensor, x: Tensor) -> Tensor:
    """Binary cross-entropy in nats **per image** (sum over pixels), shape (B,).

    ``logits`` are the decoder's pre-sigmoid outputs, ``x`` the targets in [0, 1].
    """
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def mse_loss(recon: Tensor, x: Tensor) -> Tensor:
    """Squared error **per image** (sum over pixels), shape (B,)."""
    return (recon - x).pow(2).flatten(1).sum(1)


def corrupt(x: Tensor, kind: str = "mask", level: float = 0.5, *, generator: torch.Generator | None = None) -> Tensor:
    """Corrupted copy of images ``x`` in [0, 1] for a denoising autoencoder.

    ``mask``: each pixel is set to 0 with probability ``level``;
    ``gaussian``: add noise of standard deviation ``level``, clipped to [0, 1].
    """
    if kind == "none" or level == 0:
        return x
    if kind == "mask":
        keep = utils.rand(x.shape, generator=generator, device=x.device) >= level
        return x * keep
    if kind == "gaussian":
        return (x + level * utils.randn(x.shape, generator=generator, device=x.device)).clamp(0, 1)
    raise ValueError(f"noise kind must be 'none', 'mask' or 'gaussian', got {kind!r}")


# --------------------------------------------------------------------------- models
class Autoencoder(nn.Module):
    """Base class: ``encode`` (B, 1, 28, 28) -> (B, d), ``decode`` (B, d) -> decoder output (B, 1, 28, 28).

    The decoder output is a logit map (``output = "logits"``, images are its sigmoid)
    or the image itself (``output = "identity"``, used by the linear autoencoder).
    """

    output = "logits"
    latent_dim: int

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def to_image(self, out: Tensor) -> Tensor:
        return torch.sigmoid(out) if self.output == "logits" else out

    def images(self, z: Tensor) -> Tensor:
        """Decoded images for codes ``z`` (B, d), shape (B, 1, 28, 28)."""
        return self.to_image(self.decode(z))

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.to_image(self(x))

    def loss(self, x_in: Tensor, target: Tensor | None = None, kind: str = "bce") -> Tensor:
        """Reconstruction loss of ``target`` (default ``x_in``) from input ``x_in``, per image, shape (B,)."""
        target = x_in if target is None else target
        out = self(x_in)
        if kind == "bce":
            if self.output != "logits":
                raise ValueError("the bce loss needs a decoder that outputs logits")
            return bce_loss(out, target)
        if kind == "mse":
            return mse_loss(self.to_image(out), target)
        raise ValueError(f"loss kind must be 'bce' or 'mse', got {kind!r}")


class LinearAutoencoder(Autoencoder):
    """``z = W_e x + b_e``, ``x_hat = W_d z + b_d``: trained with MSE it spans the PCA subspace.

    Both weight matrices start small and of the same scale (entries N(0, ``init_std``^2),
    biases 0). With this balanced start, plain gradient descent on centred data moves
    steadily from the saddle at W = 0 to the PCA solution; PyTorch's default
    initialisation (a tiny encoder and a large decoder) makes the problem badly
    conditioned.
    """

    output = "identity"

    def __init__(self, latent_dim: int, in_dim: int = D_PIXELS, *, init_std: float = 0.01):
        super().__init__()
        self.latent_dim, self.in_dim = latent_dim, in_dim
        self.encoder = nn.Linear(in_dim, latent_dim)
        self.decoder = nn.Linear(latent_dim, in_dim)
        for layer in (self.encoder, self.decoder):
            nn.init.normal_(layer.weight, std=init_std)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x)).reshape(x.shape)     # same layout as the input

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x.flatten(1))                       # (B, d)

    def decode(self, z: Tensor) -> Tensor:
        out = self.decoder(z)                                   # (B, D)
        return out.view(-1, *IMAGE_SHAPE) if self.in_dim == D_PIXELS else out

    def decoder_basis(self) -> Tensor:
        """The decoder's columns (D, d): they span the subspace the reconstructions live in (plus b_d)."""
        return self.decoder.weight.detach()


def _mlp(sizes, final_act: bool = False) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_act:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPAutoencoder(Autoencoder):
    """Fully connected autoencoder 784 -> hidden -> d -> reversed(hidden) -> 784 (logits)."""

    def __init__(self, latent_dim: int = 2, hidden: tuple = (512, 256)):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = _mlp([D_PIXELS, *hidden, latent_dim])
        self.decoder = _mlp([latent_dim, *reversed(hidden), D_PIXELS])

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x.flatten(1))                       # (B, d)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z).view(-1, *IMAGE_SHAPE)           # (B, 1, 28, 28) logits


class ConvAutoencoder(Autoencoder):
    """Strided convolutions 28 -> 14 -> 7, a linear bottleneck, transposed convolutions back."""

    def __init__(self, latent_dim: int = 16, channels: tuple = (32, 64)):
        super().__init__()
        c1, c2 = channels
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 4, 2, 1), nn.ReLU(),               # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 4, 2, 1), nn.ReLU(),              # (B, c2, 7, 7)
            nn.Flatten(), nn.Linear(c2 * 49, latent_dim))       # (B, d)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, c2 * 49), nn.ReLU(), nn.Unflatten(1, (c2, 7, 7)),
            nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(),     # (B, c1, 14, 14)
            nn.ConvTranspose2d(c1, 1, 4, 2, 1))                 # (B, 1, 28, 28) logits

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)


# --------------------------------------------------------------------------- PCA and subspaces
def pca(x: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Top-``k`` principal components of data ``x`` (N, D) (images are flattened).

    Returns ``(mean (D,), components (k, D) with orthonormal rows, variances (k,))``,
    the variances being eigenvalues of the sample covariance (divided by N - 1).
    """
    x = x.flatten(1).double()
    if not 0 < k <= min(x.shape):
        raise ValueError(f"k must be in 1..{min(x.shape)}, got {k}")
    mean = x.mean(0)
    _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)  # x - mean = U S V^T
    return mean, vh[:k], s[:k] ** 2 / (x.shape[0] - 1)


def principal_angles(a: Tensor, b: Tensor) -> Tensor:
    """Principal angles (radians, ascending) between the column spaces of ``a`` (D, k) and ``b`` (D, l).

    Returns ``min(k, l)`` angles; all zero when one subspace contains the other.
    Small angles come from sines and large ones from cosines, so both are accurate.
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"expected two matrices (D, k) and (D, l) with the same D, got {tuple(a.shape)}, {tuple(b.shape)}")
    if a.shape[1] > b.shape[1]:
        a, b = b, a
    qa = torch.linalg.qr(a.double()).Q                           # orthonormal basis (D, k)
    qb = torch.linalg.qr(b.double()).Q                           # (D, l)
    cos = torch.linalg.svdvals(qa.T @ qb).clamp(0, 1)            # descending cosines, (k,)
    sin = torch.linalg.svdvals(qa - qb @ (qb.T @ qa)).clamp(0, 1).flip(0)  # ascending sines, (k,)
    small = torch.arcsin(sin)
    return torch.where(small < math.pi / 4, small, torch.arccos(cos))


# --------------------------------------------------------------------------- codes
@torch.no_grad()
def encode_all(model: nn.Module, images: Tensor, *, batch_size: int = 1000, device=None) -> Tensor:
    """Codes of uint8 (N, 28, 28) or float (N, 1, 28, 28) images, on the CPU, shape (N, d).

    For a VAE the code is the posterior mean ``mu``.
    """
    device = device if device is not None else next(model.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i: i + batch_size]
        x = _data.to_float(x, device) if x.dtype == torch.uint8 else x.to(device)
        z = model.encode(x)
        out.append((z[0] if isinstance(z, tuple) else z).float().cpu())
    return torch.cat(out)


def fit_code_gaussian(codes: Tensor) -> torch.distributions.MultivariateNormal:
    """A full-covariance Gaussian fitted to codes (N, d): the naive way to sample from an autoencoder."""
    codes = codes.double()
    cov = torch.cov(codes.T).reshape(codes.shape[1], codes.shape[1])
    cov = cov + 1e-6 * torch.eye(codes.shape[1], dtype=cov.dtype)
    return torch.distributions.MultivariateNormal(codes.mean(0), covariance_matrix=cov)


def nearest_codes(points: Tensor, codes: Tensor, *, exclude_self: bool = False, chunk: int = 1024
                  ) -> tuple[Tensor, Tensor]:
    """Euclidean distance from each point (M, d) to its nearest code (N, d), and that code's index; (M,) each.

    With ``exclude_self`` (``points`` is ``codes``) a point's own code is skipped, which gives
    the nearest-neighbour distances within a set of codes. Used to find the *holes* of a
    latent space: places farther from every training code than codes are from each other.
    """
    dists, idxs = [], []
    for i in range(0, len(points), chunk):
        d = torch.cdist(points[i: i + chunk].float(), codes.float())          # (m, N)
        if exclude_self:
            d[torch.arange(d.shape[0]), torch.arange(i, i + d.shape[0])] = float("inf")
        v, j = d.min(1)
        dists.append(v)
        idxs.append(j)
    return torch.cat(dists), torch.cat(idxs)


# --------------------------------------------------------------------------- recipes
def _build(cfg):
    torch.manual_seed(cfg["init_seed"])
    if cfg["arch"] == "mlp":
        model = MLPAutoencoder(cfg["latent_dim"], tuple(cfg["hidden"]))
    elif cfg["arch"] == "conv":
        model = ConvAutoencoder(cfg["latent_dim"], tuple(cfg["channels"]))
    else:
        raise ValueError(f"arch must be 'mlp' or 'conv', got {cfg['arch']!r}")
    return {"model": model}


def _data_fn(cfg, device, rank=0, world_size=1):
    images = recipes.train_images(cfg)
    return recipes.batches(cfg, device, rank, world_size, images, transform=lambda x: x.unsqueeze(1).float().div_(255))


def _step(modules, opts, cfg):
    model, opt = modules["model"], opts["opt"]

    def step(x, trainer):
        x_in = corrupt(x, cfg["noise"], cfg["noise_level"])
        loss = model.loss(x_in, x, cfg["loss"]).mean()          # per image, mean over the batch
        trainer.optimize(loss, opt)
        return {"loss": loss}
    return step


@torch.no_grad()
def _evaluate(modules, cfg, device):
    model = modules["model"]
    images, _ = _data.load(cfg["dataset"], "test")
    bce = mse = 0.0
    for i in range(0, len(images), 1000):
        x = _data.to_float(images[i: i + 1000], device)
        out = model(x)
        bce += float(bce_loss(out, x).sum())
        mse += float(mse_loss(torch.sigmoid(out), x).sum())
    n = len(images)
    return {"test_bce_per_image": bce / n, "test_mse_per_image": mse / n,
            "protocol": f"{cfg['dataset']} test set ({n} images), clean inputs, sum over pixels, mean over images"}


@torch.no_grad()
def _sample(modules, cfg, n, device, generator=None):
    """Decode codes drawn from a Gaussian fitted to the codes of 10,000 training images."""
    model = modules["model"]
    images, _ = _data.load(cfg["dataset"], "train")
    gauss = fit_code_gaussian(encode_all(model, images[:10_000], device=device))
    eps = utils.randn((n, model.latent_dim), generator=generator, device=gauss.loc.device, dtype=torch.float64)
    z = gauss.loc + eps @ gauss.scale_tril.T
    return model.images(z.float().to(device)).clamp(0, 1)


_DEFAULTS = dict(dataset="fashion", arch="mlp", latent_dim=2, hidden=[512, 256], channels=[32, 64], loss="bce",
                 noise="none", noise_level=0.5, lr=1e-3, batch_size=128, steps=20_000, n_train=0, init_seed=0)

recipes.register(recipes.Recipe(
    name="ae-fashion-2d", description="MLP autoencoder with a 2-D code on Fashion-MNIST (Chapter 1)",
    defaults=dict(_DEFAULTS), build=_build, optimizers=recipes.one_adam, data=_data_fn, step=_step,
    evaluate=_evaluate, sample=_sample, datasets=("fashion", "mnist"),
    notes={"sample": "codes from a Gaussian fitted to training codes (an autoencoder has no prior)"}))

recipes.register(recipes.Recipe(
    name="ae-fashion-conv", description="convolutional autoencoder with a 16-D code on Fashion-MNIST (Chapter 1)",
    defaults=dict(_DEFAULTS, arch="conv", latent_dim=16, steps=10_000),
    build=_build, optimizers=recipes.one_adam, data=_data_fn, step=_step,
    evaluate=_evaluate, sample=_sample, datasets=("fashion", "mnist"),
    notes={"sample": "codes from a Gaussian fitted to training codes (an autoencoder has no prior)"}))
