"""Chapter 2: variational autoencoders.

Generative model ``p(z) = N(0, I)``, ``p_theta(x | z)`` (a decoder); inference
model ``q_phi(z | x) = N(mu(x), diag sigma(x)^2)`` (an encoder that outputs
``mu`` and ``log_var = log sigma^2``; sigma is a *standard deviation*).

Units and reductions, everywhere in this module: log-likelihoods, KL terms and
ELBOs are in **nats per image: sum over pixels (and latent dimensions), mean
over the images of the batch** (``reduction="none"`` keeps one value per image).

* :func:`kl_diag_gaussian`: closed-form KL(q || N(0, I));
* :func:`reparameterize`: ``z = mu + sigma * eps``;
* :func:`elbo`: reconstruction, KL, ELBO and the beta-weighted loss;
* :func:`iwae_bound`: the importance-weighted bound with ``k`` samples, used to
  estimate test log-likelihoods;
* :func:`gradient_estimates`: reparameterised vs score-function gradients.

The recipes ``vae-mnist`` (Bernoulli decoder, dynamically binarised MNIST, 32-D
latent) and ``vae-fashion-2d`` (2-D latent, Fashion-MNIST grey levels) are in
:mod:`gencourse.vae_recipes`.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import data as _data
from . import utils, validate

__all__ = ["kl_diag_gaussian", "kl_monte_carlo", "reparameterize", "log_normal_diag", "binarize", "VAE", "ELBO",
           "elbo", "iwae_bound", "estimate_nll", "grid_log_likelihood", "gradient_estimates", "active_units"]

LOG_2PI = math.log(2 * math.pi)
IMAGE_SHAPE = (1, 28, 28)


# --------------------------------------------------------------------------- Gaussian pieces
def kl_diag_gaussian(mu: Tensor, log_var: Tensor) -> Tensor:
    """KL( N(mu, diag sigma^2) || N(0, I) ) in nats, summed over the last dimension.

    ``KL = 1/2 * sum_j (sigma_j^2 + mu_j^2 - 1 - log sigma_j^2) >= 0`` with ``log_var = log sigma^2``.
    Shapes (..., d) -> (...); ``mu`` and ``log_var`` must have the same shape (no broadcasting).
    """
    validate.tensor(mu, "kl_diag_gaussian: mu", dtype="float", fix="pass the encoder's means, shape (..., d)")
    if mu.dim() == 0:
        validate.fail("kl_diag_gaussian: mu", "at least one dimension (..., d)", validate.describe(mu),
                      "pass mu with its latent dimension last, e.g. shape (d,) or (B, d)")
    validate.tensor(log_var, "kl_diag_gaussian: log_var", shape=tuple(mu.shape), dtype="float",
                    fix="pass the log-variances that go with mu, one per entry (no broadcasting)")
    return 0.5 * (log_var.exp() + mu.pow(2) - 1.0 - log_var).sum(-1)


def log_normal_diag(z: Tensor, mu: Tensor, log_var: Tensor) -> Tensor:
    """log N(z; mu, diag sigma^2), summed over the last dimension (nats). Shapes broadcast, (..., d) -> (...)."""
    return -0.5 * ((z - mu).pow(2) / log_var.exp() + log_var + LOG_2PI).sum(-1)


def reparameterize(mu: Tensor, log_var: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """A sample ``z = mu + sigma * eps`` of N(mu, diag sigma^2), ``sigma = exp(log_var / 2)``, ``eps ~ N(0, I)``.

    Differentiable in ``mu`` and ``log_var`` (the randomness is in ``eps`` only).
    """
    eps = utils.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)  # any generator device
    return mu + torch.exp(0.5 * log_var) * eps


def kl_monte_carlo(mu: Tensor, log_var: Tensor, n: int, *, generator: torch.Generator | None = None
                   ) -> tuple[Tensor, Tensor]:
    """Monte Carlo estimate of KL(q || N(0, I)) = E_q[log q(z) - log p(z)] with ``n`` samples.

    Returns ``(estimate, standard error)``, each of shape ``mu.shape[:-1]``.
    """
    z = reparameterize(mu.expand(n, *mu.shape), log_var.expand(n, *log_var.shape), generator=generator)
    terms = log_normal_diag(z, mu, log_var) - log_normal_diag(z, torch.zeros_like(mu), torch.zeros_like(log_var))
    return terms.mean(0), terms.std(0) / math.sqrt(n)


def binarize(x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Dynamic binarisation: each pixel is 1 with probability equal to its grey level in [0, 1]."""
    return utils.bernoulli(x, generator=generator)


# --------------------------------------------------------------------------- networks
def _mlp(sizes) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


class VAE(nn.Module):
    """A VAE with an MLP or convolutional encoder/decoder.

    ``likelihood="bernoulli"``: the decoder outputs logits (B, 1, 28, 28) and
    ``p(x | z) = prod Bernoulli(x_i; sigmoid(logit_i))``.
    ``likelihood="gaussian"``: the decoder outputs the mean (sigmoid of its last
    layer) and ``p(x | z) = N(x; mean, x_sigma^2 I)`` with one standard
    deviation ``x_sigma`` for all pixels, learned when ``x_sigma`` is None.
    """

    def __init__(self, latent_dim: int = 32, hidden: tuple = (512, 256), *, arch: str = "mlp",
                 likelihood: str = "bernoulli", x_sigma: float | None = None, channels: tuple = (32, 64)):
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
        self.latent_dim, self.likelihood, self.arch = latent_dim, likelihood, arch
        d = latent_dim
        if arch == "mlp":
            self.encoder = nn.Sequential(nn.Flatten(), _mlp([784, *hidden, 2 * d]))
            self.decoder = nn.Sequential(_mlp([d, *reversed(hidden), 784]), nn.Unflatten(1, IMAGE_SHAPE))
        elif arch == "conv":
            c1, c2 = channels
            self.encoder = nn.Sequential(
                nn.Conv2d(1, c1, 4, 2, 1), nn.ReLU(), nn.Conv2d(c1, c2, 4, 2, 1), nn.ReLU(),  # (B, c2, 7, 7)
                nn.Flatten(), nn.Linear(c2 * 49, 2 * d))
            self.decoder = nn.Sequential(
                nn.Linear(d, c2 * 49), nn.ReLU(), nn.Unflatten(1, (c2, 7, 7)),
                nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(c1, 1, 4, 2, 1))
        else:
            raise ValueError(f"arch must be 'mlp' or 'conv', got {arch!r}")
        if likelihood == "gaussian":
            init = math.log(x_sigma) if x_sigma is not None else math.log(0.1)
            self.log_x_sigma = nn.Parameter(torch.tensor(init), requires_grad=x_sigma is None)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Parameters of q(z | x): ``(mu, log_var)``, each (B, d)."""
        h = self.encoder(x)                                   # (B, 2d)
        mu, log_var = h.chunk(2, dim=-1)
        return mu, log_var

    def decode(self, z: Tensor) -> Tensor:
        """Decoder output for codes (..., d): logits (Bernoulli) or pre-sigmoid means (Gaussian), (..., 1, 28, 28)."""
        lead = z.shape[:-1]
        return self.decoder(z.reshape(-1, self.latent_dim)).reshape(*lead, *IMAGE_SHAPE)

    def mean_image(self, out: Tensor) -> Tensor:
        """E[x | z] in [0, 1] from the decoder output."""
        return torch.sigmoid(out)

    def log_px_z(self, x: Tensor, out: Tensor) -> Tensor:
        """log p(x | z) in nats, summed over pixels; ``out`` (..., 1, 28, 28) broadcasts against ``x``."""
        if self.likelihood == "bernoulli":
            out, x = torch.broadcast_tensors(out, x)
            return -F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(-3).sum(-1)
        mean, log_sd = torch.sigmoid(out), self.log_x_sigma
        return (-0.5 * ((x - mean) / log_sd.exp()).pow(2) - log_sd - 0.5 * LOG_2PI).flatten(-3).sum(-1)

    def images(self, z: Tensor) -> Tensor:
        """Decoded mean images for codes ``z`` (B, d), shape (B, 1, 28, 28), in [0, 1]."""
        return self.mean_image(self.decode(z))

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, mean: bool = True) -> Tensor:
        """``n`` images from the model: z ~ N(0, I), then E[x | z] (``mean=True``) or x ~ p(x | z)."""
        dev = next(self.parameters()).device
        z = utils.randn((n, self.latent_dim), generator=generator, device=dev)
        out = self.decode(z)
        m = self.mean_image(out)
        if mean:
            return m
        if self.likelihood == "bernoulli":
            return utils.bernoulli(m, generator=generator)
        noise = utils.randn(m.shape, generator=generator, device=dev)
        return m + self.log_x_sigma.exp() * noise

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.encode(x)


# --------------------------------------------------------------------------- objectives
def _check_images(model: nn.Module, x: Tensor, name: str) -> Tensor:
    """A non-empty batch (B, 1, 28, 28) in [0, 1], with the model's dtype and on its device."""
    p = next(model.parameters())
    dtype = str(p.dtype).replace("torch.", "")
    return validate.tensor(
        x, name, shape=("B", *IMAGE_SHAPE), dtype=p.dtype, device=p.device, values=(0, 1), nonempty=True,
        fix=f"pass images (B, 1, 28, 28) as {dtype} in [0, 1] on {p.device}, e.g. data.to_float(images, device) "
            "(x.unsqueeze(1) adds the channel axis; divide 0..255 values by 255)")


class ELBO(NamedTuple):
    """Terms of the evidence lower bound, in nats per image (mean over the batch unless ``reduction="none"``).

    ``reconstruction = -E_q[log p(x | z)]`` (a loss, >= 0 for Bernoulli pixels),
    ``kl = KL(q(z | x) || p(z))``, ``elbo = -reconstruction - kl`` (a lower bound
    on log p(x)), ``loss = reconstruction + beta * kl`` (what training minimises).
    """

    elbo: Tensor
    reconstruction: Tensor
    kl: Tensor
    loss: Tensor


def elbo(model: VAE, x: Tensor, *, beta: float, n_samples: int = 1, generator: torch.Generator | None = None,
         reduction: str = "mean") -> ELBO:
    """ELBO of images ``x`` (B, 1, 28, 28), with the reconstruction term estimated from ``n_samples`` z's.

    ``ELBO(x) = E_{q(z|x)}[log p(x | z)] - KL(q(z | x) || N(0, I))`` (KL in closed form).
    ``beta`` weights the KL in ``loss`` only (beta = 1: the negative ELBO); it must be given
    explicitly. Nats per image: sum over pixels and latent dimensions, mean over the batch
    (``reduction="mean"``) or one value per image (``"none"``).
    """
    _check_images(model, x, "elbo: x")
    validate.integer(n_samples, "elbo: n_samples", lo=1, fix="e.g. n_samples=1")
    validate.number(beta, "elbo: beta", lo=0, fix="beta=1.0 for the ELBO itself")
    mu, log_var = model.encode(x)                                       # (B, d) each
    z = reparameterize(mu.expand(n_samples, *mu.shape), log_var.expand(n_samples, *log_var.shape),
                       generator=generator)                             # (S, B, d)
    rec = -model.log_px_z(x, model.decode(z)).mean(0)                   # (B,) -E_q log p(x|z)
    kl = kl_diag_gaussian(mu, log_var)                                  # (B,)
    terms = ELBO(-rec - kl, rec, kl, rec + beta * kl)
    if reduction == "none":
        return terms
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return ELBO(*(t.mean() for t in terms))


@torch.no_grad()
def iwae_bound(model: VAE, x: Tensor, k: int, *, generator: torch.Generator | None = None,
               chunk: int = 100) -> Tensor:
    """Importance-weighted lower bound on log p(x) with ``k`` samples, per image, shape (B,), nats.

    ``L_k(x) = log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x)``, ``z_i ~ q(z | x)``.
    ``L_1`` is the ELBO (in expectation); ``L_k`` increases with ``k`` towards log p(x).
    The k samples are processed ``chunk`` at a time.
    """
    _check_images(model, x, "iwae_bound: x")
    validate.integer(k, "iwae_bound: k", lo=1, fix="e.g. k=100")
    validate.integer(chunk, "iwae_bound: chunk", lo=1)
    mu, log_var = model.encode(x)
    log_w = []
    for start in range(0, k, chunk):
        s = min(chunk, k - start)
        z = reparameterize(mu.expand(s, *mu.shape), log_var.expand(s, *log_var.shape), generator=generator)
        log_w.append(model.log_px_z(x, model.decode(z))                  # (s, B) log p(x|z)
                     + log_normal_diag(z, torch.zeros_like(z), torch.zeros_like(z))   # + log p(z)
                     - log_normal_diag(z, mu, log_var))                  # - log q(z|x)
    return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)


@torch.no_grad()
def estimate_nll(model: VAE, images: Tensor, *, k: int, batch_size: int = 100, binarize_seed: int | None = 0,
                 seed: int = 0, device=None) -> dict:
    """Test negative log-likelihood (IWAE, ``k`` samples) and ELBO of uint8 images (N, 28, 28).

    With ``binarize_seed`` set, each image is binarised once with that seed (a fixed
    dynamically binarised test set); with None the grey levels are used as they are.
    Returns nats per image, mean over the N images: ``{"nll": ..., "elbo": ..., "kl": ...,
    "reconstruction": ..., "n": N, "k": k}``.
    """
    device = device if device is not None else next(model.parameters()).device
    g_bin = torch.Generator().manual_seed(binarize_seed) if binarize_seed is not None else None
    g = torch.Generator(device=device).manual_seed(seed)
    tot = {"nll": 0.0, "elbo": 0.0, "kl": 0.0, "reconstruction": 0.0}
    for i in range(0, len(images), batch_size):
        x = _data.to_float(images[i: i + batch_size])
        if g_bin is not None:
            x = binarize(x, generator=g_bin)
        x = x.to(device)
        tot["nll"] -= float(iwae_bound(model, x, k, generator=g).sum())
        t = elbo(model, x, beta=1.0, generator=g, reduction="none")
        for key in ("elbo", "kl", "reconstruction"):
            tot[key] += float(getattr(t, key).sum())
    n = len(images)
    return {**{key: v / n for key, v in tot.items()}, "n": n, "k": k}


@torch.no_grad()
def grid_log_likelihood(model: VAE, x: Tensor, *, lim: float = 5.0, n_grid: int = 201, chunk: int = 4096,
                        center: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Exact-by-quadrature log p(x) for a VAE with a 1-D or 2-D latent: only possible in low dimension.

    ``log p(x) = log sum_g p(x | z_g) p(z_g) * cell`` over a regular grid of ``n_grid`` points per
    axis on ``center + [-lim, lim]^d`` (``center`` default 0). Returns ``(log p(x) (B,), grid (G, d),
    log p(x, z_g) (G, B))``; the last, minus log p(x), is the true log posterior density on the grid.
    The sum is accurate when the grid covers the posterior and its cells are small next to it.
    """
    d = model.latent_dim
    if d not in (1, 2):
        raise ValueError(f"quadrature needs a 1-D or 2-D latent (n_grid^d points); this model has d = {d}")
    axis = torch.linspace(-lim, lim, n_grid)
    grid = axis[:, None] if d == 1 else torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    if center is not None:
        grid = grid + torch.as_tensor(center, dtype=grid.dtype).reshape(1, d).cpu()
    p = next(model.parameters())
    x = x.to(p.device, p.dtype)
    parts = []
    for i in range(0, len(grid), chunk):
        z = grid[i: i + chunk].to(p.device, p.dtype)
        out = model.decode(z)[:, None]                                              # (g, 1, 1, 28, 28)
        parts.append(model.log_px_z(x, out) + log_normal_diag(z, torch.zeros_like(z), torch.zeros_like(z))[:, None])
    log_joint = torch.cat(parts)                                                    # (G, B)
    cell = float(axis[1] - axis[0]) ** d
    return torch.logsumexp(log_joint, 0) + math.log(cell), grid, log_joint.cpu()


def gradient_estimates(f: Callable[[Tensor], Tensor], mu: Tensor, log_var: Tensor, n: int, *,
                       generator: torch.Generator | None = None, baseline: bool = False) -> dict:
    """Single-sample estimates of the gradient of ``E_{z ~ N(mu, diag sigma^2)}[f(z)]`` w.r.t. ``(mu, log_var)``.

    ``f`` maps (n, d) -> (n,) and must be differentiable for the reparameterised estimator.
    Returns ``{"reparameterized": (n, 2d), "score_function": (n, 2d)}``, each row one
    estimate ``[d/dmu, d/dlog_var]`` from one ``eps``; with ``baseline`` also
    ``"score_function_baseline"``: the score function with f(z) minus the mean of f over
    the other samples (leave-one-out, so it stays unbiased).
    """
    mu, log_var = mu.detach().reshape(-1), log_var.detach().reshape(-1)
    sigma = torch.exp(0.5 * log_var)
    eps = torch.randn(n, mu.numel(), generator=generator, dtype=mu.dtype).to(mu.device)
    z = (mu + sigma * eps).requires_grad_(True)                    # (n, d)
    fz = f(z)                                                      # (n,)
    (gz,) = torch.autograd.grad(fz.sum(), z)                       # per-sample grad_z f(z_i), (n, d)
    # reparameterisation: z = mu + exp(log_var / 2) eps  =>  dz/dmu = 1, dz/dlog_var = sigma eps / 2
    rep = torch.cat([gz, gz * sigma * eps / 2], 1)
    # score function: f(z) * grad log q(z); d/dmu log q = (z - mu)/sigma^2 = eps/sigma,
    # d/dlog_var log q = ((z - mu)^2 / sigma^2 - 1) / 2 = (eps^2 - 1) / 2
    score = torch.cat([eps / sigma, (eps.pow(2) - 1) / 2], 1)
    fz = fz.detach()[:, None]
    out = {"reparameterized": rep.detach(), "score_function": fz * score}
    if baseline:
        loo = (fz.sum() - fz) / (n - 1)                            # mean of f over the other samples
        out["score_function_baseline"] = (fz - loo) * score
    return out


@torch.no_grad()
def active_units(model: VAE, images: Tensor, *, threshold: float = 0.01, device=None) -> tuple[Tensor, Tensor]:
    """Per-dimension activity ``Var_x(E_q[z_j | x])`` over uint8 or float images, and the indices sorted by it.

    A dimension whose posterior mean does not change with x (activity < ``threshold``) is
    unused: its KL term is ~0 and the decoder ignores it. Returns ``(activity (d,), order (d,))``.
    """
    from .autoencoder import encode_all

    mu = encode_all(model, images, device=device)
    act = mu.var(0)
    return act, act.argsort(descending=True)
