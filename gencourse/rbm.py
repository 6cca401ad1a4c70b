"""Chapter 3: restricted Boltzmann machines (RBMs) with binary units.

The model: visible units v in {0,1}^D, hidden units h in {0,1}^K, parameters
W (D, K), visible bias b (D,) and hidden bias c (K,), with

    E(v, h) = -v^T W h - b^T v - c^T h,        p(v, h) = exp(-E(v, h)) / Z,
    F(v)    = -log sum_h exp(-E(v, h)) = -b^T v - sum_j softplus(c_j + v^T W_:j),
    p(h_j = 1 | v) = sigmoid(c_j + v^T W_:j),   p(v_i = 1 | h) = sigmoid(b_i + W_i: h).

The pieces, each small and separately tested:

* :class:`RBM`, the network: energy, free energy, conditionals, block Gibbs sampling;
* :func:`cd_loss` (CD-k / persistent CD as the autograd gradient of a free-energy
  difference) and :func:`cd_gradients` (the same update written out by hand);
* :func:`log_partition_exact` and :func:`log_likelihood_exact`: log Z by enumerating
  the smaller layer, for toy models;
* :func:`ais_log_partition`: annealed importance sampling estimate of log Z with a
  standard error, and so of test log-likelihoods in nats;
* the ``rbm-mnist`` training recipe (at the end).

Every log-likelihood is in **nats per image** (natural log, summed over the D
pixels); averages over images are stated where they are taken.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F_
from torch import Tensor, nn

__all__ = ["RBM", "free_energy", "hidden_probs", "visible_probs", "bernoulli", "cd_loss", "cd_gradients",
           "all_binary_states", "log_partition_exact", "log_likelihood_exact", "base_rate_bias",
           "beta_schedule", "AISResult", "ais_log_partition", "binarise"]


# ---------------------------------------------------------------------------
# The equations as functions of explicit parameters (the AIS code reuses them
# with scaled parameters, and the exercise checks compare against them).
# ---------------------------------------------------------------------------
def free_energy(v: Tensor, W: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """F(v) = -b^T v - sum_j softplus(c_j + v^T W_:j); v (B, D) -> (B,), in nats."""
    return -(v @ b) - F_.softplus(v @ W + c).sum(-1)


def hidden_probs(v: Tensor, W: Tensor, c: Tensor) -> Tensor:
    """p(h_j = 1 | v) = sigmoid(c_j + v^T W_:j); v (B, D) -> (B, K)."""
    return torch.sigmoid(torch.addmm(c, v, W))  # one fused c + v W


def visible_probs(h: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """p(v_i = 1 | h) = sigmoid(b_i + W_i: h); h (B, K) -> (B, D)."""
    return torch.sigmoid(torch.addmm(b, h, W.T))


def bernoulli(p: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Binary samples with probabilities ``p``, same shape and dtype; ``generator`` must live on p's device."""
    if generator is not None and generator.device.type != p.device.type:
        raise ValueError(f"the generator is on {generator.device} but the tensors are on {p.device}: "
                         f"create it with torch.Generator(device={str(p.device)!r}).manual_seed(...)")
    return torch.bernoulli(p, generator=generator)


class RBM(nn.Module):
    """A Bernoulli-Bernoulli RBM with ``n_visible`` D and ``n_hidden`` K units.

    Parameters: ``W`` (D, K), visible bias ``b`` (D,), hidden bias ``c`` (K,).
    Initialised with W ~ N(0, init_std^2) (drawn from ``generator``) and zero biases.
    Inputs are float tensors of shape (B, D) with values in {0, 1} (or in [0, 1]
    for the free energy and p(h | v)).
    """

    def __init__(self, n_visible: int, n_hidden: int, *, init_std: float = 0.01,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(f"an RBM needs at least one visible and one hidden unit, got {n_visible}, {n_hidden}")
        self.n_visible, self.n_hidden = int(n_visible), int(n_hidden)
        self.W = nn.Parameter(init_std * torch.randn(n_visible, n_hidden, generator=generator, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(n_visible, dtype=dtype))  # visible bias
        self.c = nn.Parameter(torch.zeros(n_hidden, dtype=dtype))   # hidden bias

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}"

    def _check(self, x: Tensor, n: int, what: str) -> Tensor:
        if x.dim() != 2 or x.shape[1] != n:
            raise ValueError(f"{what} should have shape (B, {n}), got {tuple(x.shape)}; "
                             "flatten images with x.flatten(1)")
        return x.to(self.W.dtype)

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """E(v, h) = -v^T W h - b^T v - c^T h for each row; (B, D), (B, K) -> (B,)."""
        v, h = self._check(v, self.n_visible, "v"), self._check(h, self.n_hidden, "h")
        return -((v @ self.W) * h).sum(-1) - v @ self.b - h @ self.c

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = -log sum_h exp(-E(v, h)); (B, D) -> (B,). log p(v) = -F(v) - log Z."""
        return free_energy(self._check(v, self.n_visible, "v"), self.W, self.b, self.c)

    def hidden_probs(self, v: Tensor) -> Tensor:
        """p(h = 1 | v), (B, D) -> (B, K)."""
        return hidden_probs(self._check(v, self.n_visible, "v"), self.W, self.c)

    def visible_probs(self, h: Tensor) -> Tensor:
        """p(v = 1 | h), (B, K) -> (B, D)."""
        return visible_probs(self._check(h, self.n_hidden, "h"), self.W, self.b)

    def sample_hidden(self, v: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """h ~ p(h | v), binary (B, K) in v's dtype."""
        return bernoulli(self.hidden_probs(v), generator)

    def sample_visible(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """v ~ p(v | h), binary (B, D)."""
        return bernoulli(self.visible_probs(h), generator)

    @torch.no_grad()
    def gibbs(self, v: Tensor, steps: int = 1, *, generator: torch.Generator | None = None,
              keep_every: int | None = None) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Run ``steps`` sweeps of block Gibbs sampling, v -> h ~ p(h|v) -> v' ~ p(v|h'), from ``v``.

        Returns the final binary visible state (B, D) (same dtype as ``v``); with
        ``keep_every=n`` also the list of the mean images p(v | h) after every
        n-th sweep (each (B, D)), for showing a chain as it runs.  Sampling uses
        ``generator`` (on v's device) if given, so a seeded generator reproduces
        the chain exactly.
        """
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        dtype = v.dtype
        v = self._check(v, self.n_visible, "v")
        W, b, c, frames = self.W, self.b, self.c, []
        for t in range(1, steps + 1):
            h = bernoulli(hidden_probs(v, W, c), generator)    # h ~ p(h | v), (B, K)
            p_v = visible_probs(h, W, b)                       # p(v = 1 | h), (B, D)
            v = bernoulli(p_v, generator)
            if keep_every and t % keep_every == 0:
                frames.append(p_v)
        v = v.to(dtype)
        return (v, frames) if keep_every else v

    @torch.no_grad()
    def reconstruction_error(self, v: Tensor) -> Tensor:
        """Mean over images of the squared error sum_i (v_i - p(v_i=1 | p(h|v)))^2, mean-field, in pixels^2.

        Cheap to monitor but **not** the training objective: it can fall while the likelihood gets worse.
        """
        p = self.visible_probs(self.hidden_probs(self._check(v, self.n_visible, "v")))
        return ((v - p) ** 2).sum(1).mean()


def binarise(images: Tensor) -> Tensor:
    """uint8 images (N, 28, 28) -> float32 (N, 784) in {0, 1}, pixel on when > 127 (as in Chapter 0)."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images from gencourse.data.load, got {images.dtype}")
    return (images.flatten(1) > 127).float()


# ---------------------------------------------------------------------------
# Learning: contrastive divergence
# ---------------------------------------------------------------------------
def cd_loss(rbm: RBM, v_data: Tensor, v_model: Tensor) -> Tensor:
    """mean_B F(v_data) - mean_B F(v_model), with the negative samples detached.

    The log-likelihood gradient is -dF(v_data)/dtheta + E_model[dF/dtheta]; with
    v_model from k Gibbs sweeps started at the data (CD-k) or from persistent chains
    (PCD), the gradient of this loss is the classic CD/PCD update with the sign for
    *descent* (see :func:`cd_gradients`).  Its value is not a log-likelihood (Z cancels).
    """
    return rbm.free_energy(v_data).mean() - rbm.free_energy(v_model.detach()).mean()


def cd_gradients(rbm: RBM, v_data: Tensor, v_model: Tensor) -> dict[str, Tensor]:
    """The CD/PCD update written out: <v p(h|v)^T>_model - <v p(h|v)^T>_data, etc. (gradient of :func:`cd_loss`).

    Returns ``{"W": (D, K), "b": (D,), "c": (K,)}``, means over the batch.  A
    learning step is ``theta <- theta - lr * grad``: it raises the probability of
    the data and lowers that of the model's own samples.
    """
    with torch.no_grad():
        ph_d, ph_m = rbm.hidden_probs(v_data), rbm.hidden_probs(v_model)   # (B, K)
        B_d, B_m = v_data.shape[0], v_model.shape[0]
        return {"W": v_model.T @ ph_m / B_m - v_data.T @ ph_d / B_d,
                "b": v_model.mean(0) - v_data.mean(0),
                "c": ph_m.mean(0) - ph_d.mean(0)}


# ---------------------------------------------------------------------------
# Exact partition function by enumeration (toy models)
# ---------------------------------------------------------------------------
def all_binary_states(n: int, start: int = 0, stop: int | None = None, *, dtype=torch.float64,
                      device=None) -> Tensor:
    """Rows ``start..stop-1`` of the 2^n binary vectors of length n (row i = the bits of i); (rows, n)."""
    stop = 2 ** n if stop is None else stop
    idx = torch.arange(start, stop, device=device)
    return ((idx[:, None] >> torch.arange(n, device=device)) & 1).to(dtype)


def log_partition_exact(rbm: RBM, *, max_units: int = 24, chunk: int = 2 ** 15) -> float:
    """log Z by summing over every state of the **smaller** layer (2^min(D, K) terms), in float64.

    Summing out the larger layer analytically:
    log Z = logsumexp_h [c^T h + sum_i softplus(b_i + W_i: h)]  (if K <= D),
    else    logsumexp_v [-F(v)].  Refuses layers larger than ``max_units``.
    """
    W, b, c = (p.detach().double() for p in (rbm.W, rbm.b, rbm.c))
    D, K = W.shape
    if min(D, K) > max_units:
        raise ValueError(f"exact log Z needs 2^{min(D, K)} terms; only layers of up to {max_units} units "
                         "are enumerated. Use ais_log_partition for larger models.")
    if K <= D:
        n, term = K, lambda h: h @ c + F_.softplus(h @ W.T + b).sum(-1)     # -F(h), summing out v
    else:
        n, term = D, lambda v: -free_energy(v, W, b, c)                      # -F(v), summing out h
    parts = [torch.logsumexp(term(all_binary_states(n, s, min(s + chunk, 2 ** n), device=W.device)), 0)
             for s in range(0, 2 ** n, chunk)]
    return float(torch.logsumexp(torch.stack(parts), 0))


def log_likelihood_exact(rbm: RBM, v: Tensor, log_z: float | None = None) -> Tensor:
    """log p(v) = -F(v) - log Z for each row, (B, D) -> (B,) float64, nats per image."""
    log_z = log_partition_exact(rbm) if log_z is None else log_z
    with torch.no_grad():
        return -free_energy(v.double(), rbm.W.double(), rbm.b.double(), rbm.c.double()) - log_z


# ---------------------------------------------------------------------------
# Annealed importance sampling (Neal 2001; for RBMs Salakhutdinov & Murray 2008)
# ---------------------------------------------------------------------------
def base_rate_bias(v: Tensor, pseudocount: float = 1.0) -> Tensor:
    """Visible biases of the AIS base model: logit of the smoothed pixel means of ``v`` (N, D) -> (D,)."""
    p = (v.double().sum(0) + pseudocount) / (v.shape[0] + 2 * pseudocount)
    return (p.log() - (-p).log1p()).float()


def beta_schedule(n: int = 14_500) -> Tensor:
    """``n + 1`` inverse temperatures from 0 to 1, spaced like Salakhutdinov & Murray (2008):
    500/14500 of the steps on [0, 0.5], 4000/14500 on [0.5, 0.9], 10000/14500 on [0.9, 1]."""
    if n < 3:
        raise ValueError(f"need at least 3 intermediate distributions, got {n}")
    n1, n2 = max(1, round(n * 500 / 14500)), max(1, round(n * 4000 / 14500))
    n3 = n - n1 - n2
    return torch.cat([torch.linspace(0, 0.5, n1 + 1, dtype=torch.float64)[:-1],
                      torch.linspace(0.5, 0.9, n2 + 1, dtype=torch.float64)[:-1],
                      torch.linspace(0.9, 1.0, n3 + 1, dtype=torch.float64)])


@dataclass
class AISResult:
    """An AIS estimate of log Z, nats.

    ``log_z``: log of the mean importance weight times Z_base (an unbiased estimate
    of Z; its log is biased low on average, so log-likelihoods come out slightly
    optimistic). ``stderr``: standard error of ``log_z`` by the delta method,
    std(w) / (mean(w) sqrt(M)). ``interval``: (log(Z - 3 se_Z), log(Z + 3 se_Z)),
    as reported by Salakhutdinov & Murray.
    """

    log_z: float
    stderr: float
    log_z_base: float
    log_weights: Tensor = field(repr=False)
    n_chains: int = 0
    n_betas: int = 0

    @property
    def interval(self) -> tuple[float, float]:
        r = 3 * self.stderr  # = 3 se_Z / Z
        low = self.log_z + math.log(1 - r) if r < 1 else -math.inf
        return low, self.log_z + math.log(1 + r)

    def log_likelihood(self, rbm: RBM, v: Tensor) -> Tensor:
        """Estimated log p(v) = -F(v) - log Z per row, nats per image (float64, (B,))."""
        with torch.no_grad():
            return -rbm.free_energy(v).double() - self.log_z


def ais_log_partition(rbm: RBM, n_chains: int = 100, betas: Tensor | int = 14_500, *,
                      base_bias: Tensor | None = None, generator: torch.Generator | None = None,
                      batch: int | None = None) -> AISResult:
    """Estimate log Z of ``rbm`` by annealed importance sampling.

    Base model A: the RBM with W = 0, c = 0 and visible biases ``base_bias`` (default
    zeros; :func:`base_rate_bias` of the training data is much better), whose
    log Z_A = sum_i softplus(bA_i) + K log 2 is known.  Intermediate distributions
    p_beta(v) ∝ exp((1-beta) bA^T v + beta b^T v) prod_j (1 + exp(beta (c_j + v^T W_:j)))
    go from A (beta=0) to the RBM (beta=1); each transition is one Gibbs sweep that
    leaves p_beta invariant.  ``betas`` is a schedule (increasing, 0 to 1) or a
    number of steps for :func:`beta_schedule`.  ``n_chains`` independent runs give
    the weights; ``batch`` runs them in groups to bound memory.
    """
    W, b, c = (p.detach() for p in (rbm.W, rbm.b, rbm.c))
    dev = W.device
    bA = torch.zeros_like(b) if base_bias is None else base_bias.to(dev, b.dtype)
    betas = beta_schedule(betas) if isinstance(betas, int) else torch.as_tensor(betas, dtype=torch.float64)
    if betas[0] != 0 or betas[-1] != 1 or (betas.diff() <= 0).any():
        raise ValueError("betas must increase strictly from 0 to 1")
    log_z_base = float(F_.softplus(bA.double()).sum() + rbm.n_hidden * math.log(2))
    bs = betas.tolist()
    log_w = []
    for start in range(0, n_chains, batch or n_chains):
        m = min(batch or n_chains, n_chains - start)
        v = bernoulli(torch.sigmoid(bA).expand(m, -1).contiguous(), generator)   # v_0 ~ p_A, (m, D)
        lw = torch.zeros(m, dtype=torch.float64, device=dev)
        for k in range(1, len(bs)):
            a = v @ W + c                                                        # (m, K)
            a64 = a.double()
            # log p*_k(v) - log p*_{k-1}(v), the weight update (both unnormalised)
            lw += (bs[k] - bs[k - 1]) * (v @ (b - bA)).double() \
                + (F_.softplus(bs[k] * a64) - F_.softplus(bs[k - 1] * a64)).sum(-1)
            if k < len(bs) - 1:  # Gibbs sweep at beta_k: h ~ p_k(h|v), v ~ p_k(v|h)
                h = bernoulli(torch.sigmoid(bs[k] * a), generator)
                v = bernoulli(torch.sigmoid((1 - bs[k]) * bA + bs[k] * (h @ W.T + b)), generator)
        log_w.append(lw)
    log_w = torch.cat(log_w).cpu()
    M = log_w.numel()
    log_mean_w = float(torch.logsumexp(log_w, 0) - math.log(M))
    w = (log_w - log_w.max()).exp()
    stderr = float(w.std(unbiased=True) / (w.mean() * math.sqrt(M))) if M > 1 else math.inf
    return AISResult(log_z=log_z_base + log_mean_w, stderr=stderr, log_z_base=log_z_base,
                     log_weights=log_w, n_chains=M, n_betas=len(bs) - 1)


# ---------------------------------------------------------------------------
# The training recipe: rbm-mnist
# ---------------------------------------------------------------------------
class PersistentChains(nn.Module):
    """The fantasy particles of persistent CD: ``v`` (n_chains, D), a buffer.

    They are state of the *training procedure*, but living in a module means
    :meth:`gencourse.train.Trainer.state_dict` saves them with the weights, so a
    resumed run continues the same chains (re-initialising them would be a small
    jolt to training), and the NaN roll-back of the Trainer restores them too.
    """

    def __init__(self, n_chains: int, n_visible: int):
        super().__init__()
        self.register_buffer("v", torch.zeros(n_chains, n_visible))


def _mnist_binary(split: str, n: int | None = None) -> Tensor:
    from . import data

    x = data.load("mnist", split)[0]
    return binarise(x[:n] if n else x)                             # (n or N, 784) in {0, 1}


def _build(cfg: dict) -> dict:
    g = torch.Generator().manual_seed(cfg["init_seed"])
    return {"rbm": RBM(784, cfg["n_hidden"], init_std=cfg["init_std"], generator=g),
            "chains": PersistentChains(cfg["n_chains"], 784)}


def _optimizers(modules: dict, cfg: dict) -> dict:
    rbm = modules["rbm"]
    groups = [{"params": [rbm.W], "weight_decay": cfg["weight_decay"]}, {"params": [rbm.b, rbm.c], "weight_decay": 0.0}]
    return {"opt": torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"])}


def _data(cfg: dict, device, rank: int = 0, world_size: int = 1):
    from . import recipes

    x = _mnist_binary("train", cfg["n_train"])                      # (N, 784) in {0, 1}
    return recipes.batches(cfg, device, rank, world_size, x)  # batch_size is global: split over the ranks


def _step(modules: dict, opts: dict, cfg: dict):
    rbm, chains, opt = modules["rbm"], modules["chains"], opts["opt"]
    if cfg["method"] not in ("cd", "pcd"):
        raise ValueError(f"method must be 'cd' or 'pcd', got {cfg['method']!r}")
    # Start from the base rates: visible biases = logit(pixel means), chains = samples of that
    # independent-pixel model.  (On --resume, Trainer.load_state_dict then overwrites both.)
    with torch.no_grad():
        rbm.b.copy_(base_rate_bias(_mnist_binary("train", cfg["n_train"])))
        chains.v.copy_(bernoulli(torch.sigmoid(rbm.b).expand_as(chains.v).contiguous()))
    k, total = cfg["k"], cfg["steps"]

    def step(v_data: Tensor, trainer) -> dict:
        # learning rate: linear decay from lr to lr * lr_final over the recipe's `steps`
        frac = min(trainer.step / total, 1.0)
        for group in opt.param_groups:
            group["lr"] = cfg["lr"] * (1 - frac * (1 - cfg["lr_final"]))
        with torch.autocast(v_data.device.type, enabled=False):   # sampling and F in float32
            if cfg["method"] == "pcd":
                chains.v.copy_(rbm.gibbs(chains.v, k))                 # continue the persistent chains
                v_model = chains.v
            else:
                v_model = rbm.gibbs(v_data, k)                         # CD-k: k sweeps from the data
            loss = cd_loss(rbm, v_data, v_model)                       # mean F(data) - mean F(model)
            trainer.optimize(loss, opt)
        return {"free_energy_gap": loss.detach()}

    return step


def _evaluate(modules: dict, cfg: dict, device) -> dict:
    """AIS estimate of the test log-likelihood, nats per image (mean over ``n_test`` test images)."""
    rbm = modules["rbm"]
    device = torch.device(device)
    x_train = _mnist_binary("train", cfg["n_train"])
    x_test = _mnist_binary("test", cfg["n_test"]).to(device)
    g = torch.Generator(device=device).manual_seed(cfg["eval_seed"])
    res = ais_log_partition(rbm, cfg["ais_chains"], cfg["ais_betas"], base_bias=base_rate_bias(x_train), generator=g)
    ll_test = res.log_likelihood(rbm, x_test)
    ll_train = res.log_likelihood(rbm, x_train[: len(x_test)].to(device))
    lo, hi = res.interval
    return {
        "ais_test_ll": round(float(ll_test.mean()), 3),
        "ais_test_ll_stderr": round(res.stderr, 4),
        "ais_test_ll_3se_interval": [round(float(ll_test.mean()) + res.log_z - hi, 3),
                                     round(float(ll_test.mean()) + res.log_z - lo, 3) if math.isfinite(lo) else None],
        "ais_train_ll": round(float(ll_train.mean()), 3),
        "ais_log_z": round(res.log_z, 4),
        "test_reconstruction_error": round(float(rbm.reconstruction_error(x_test)), 3),
        "ais_protocol": (f"AIS, {res.n_chains} chains, {res.n_betas} intermediate distributions "
                         f"(Salakhutdinov-Murray spacing), base model: independent pixels with the smoothed "
                         f"training-set base rates (W=0, c=0); test log-likelihood = mean over "
                         f"{len(x_test)} thresholded (>127) MNIST test images of -F(v) - log Z, nats per image"),
    }


def _sample(modules: dict, cfg: dict, n: int, device, generator: torch.Generator | None = None) -> Tensor:
    """``n`` images (n, 1, 28, 28) in [0, 1]: the mean p(v | h) after ``sample_steps`` Gibbs sweeps
    of independent chains started from the base-rate model."""
    rbm, steps = modules["rbm"], max(1, int(cfg["sample_steps"]))
    with torch.no_grad():
        v0 = bernoulli(torch.sigmoid(rbm.b).expand(n, -1).contiguous(), generator)
        _, frames = rbm.gibbs(v0, steps, generator=generator, keep_every=steps)
    return frames[-1].reshape(n, 1, 28, 28).clamp(0, 1)


def _register() -> None:
    """Config keys: ``n_hidden``; ``method`` "pcd" or "cd" with ``k`` Gibbs sweeps per update and
    ``n_chains`` persistent chains; SGD ``lr`` (decaying linearly to ``lr * lr_final`` over ``steps``),
    ``momentum``, ``weight_decay`` (on W only); ``n_train`` training images (0 = all 60,000);
    evaluation: ``ais_chains`` runs x ``ais_betas`` distributions on ``n_test`` test images;
    ``sample_steps`` Gibbs sweeps per sample."""
    from . import recipes

    recipes.register(recipes.Recipe(
        name="rbm-mnist",
        description="Bernoulli RBM, 784-500, persistent CD on thresholded MNIST; AIS test log-likelihood",
        defaults=dict(dataset="mnist", n_hidden=500, method="pcd", k=1, n_chains=100, batch_size=100,
                      lr=0.01, lr_final=0.0, momentum=0.9, weight_decay=1e-4, init_std=0.01, n_train=0,
                      steps=20_000, init_seed=0, ais_chains=100, ais_betas=14_500, n_test=10_000,
                      sample_steps=1000, eval_seed=0),
        build=_build, optimizers=_optimizers, data=_data, step=_step, evaluate=_evaluate, sample=_sample,
        datasets=("mnist",),
        notes={"train": "OMP_NUM_THREADS=1 python -m gencourse train rbm-mnist --out runs/rbm-mnist "
                        "(then copy rbm-mnist.pt* into gencourse/assets/weights)",
               "longer": "change the length with --set steps=N (the learning rate decays over `steps`)"},
    ))


_register()
