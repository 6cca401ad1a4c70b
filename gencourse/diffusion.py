"""Denoising diffusion (Chapter 6): noise schedules, the forward process, DDPM and DDIM
sampling, the epsilon-prediction loss and classifier-free guidance.

Three separate pieces, as in most diffusion code bases:

* **schedules**, pure functions of the number of steps ``T``:
  :func:`linear_beta_schedule`, :func:`quadratic_beta_schedule`,
  :func:`cosine_beta_schedule`, with :func:`alphas_cumprod` and :func:`snr`;
* **schedulers**, :class:`DDPMScheduler` and :class:`DDIMScheduler`, with the
  familiar ``add_noise`` / ``set_timesteps`` / ``step`` interface (``step``
  returns a :class:`StepOutput` with the previous sample and the predicted
  ``x_0``); their constants are buffers, so ``.to(device)`` moves them;
* the **process** :class:`GaussianDiffusion`, wrapping a noise-prediction
  network (:class:`gencourse.unet.UNet`): ``diffusion(x0, y)`` returns the
  training loss and ``diffusion.sample(...)`` draws images.

Notation (``book/notation.md``): ``beta_t`` the noise added at step t,
``alpha_t = 1 - beta_t``, ``alpha_bar_t = prod_{s <= t} alpha_s`` (``alphas_cumprod``).
Steps are 0-based in code: ``t = 0 .. T-1`` stands for the paper's ``1 .. T``.
Equation numbers refer to Ho et al. 2020 (DDPM, arXiv:2006.11239) unless they
say DDIM (Song et al. 2021, arXiv:2010.02502) or IDDPM (Nichol & Dhariwal 2021,
arXiv:2102.09672).  Images live in [-1, 1] inside the process; the public
``forward`` and ``sample`` take and return images in [0, 1].
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "linear_beta_schedule", "quadratic_beta_schedule", "cosine_beta_schedule", "SCHEDULES", "make_betas",
    "alphas_cumprod", "snr", "q_sample", "StepOutput", "DDPMScheduler", "DDIMScheduler",
    "epsilon_loss", "GaussianDiffusion", "loss_by_timestep", "compare_samplers", "guidance_sweep",
    "build_model", "load_ema", "ema_update", "DDPM_DEFAULTS",
]


# ---------------------------------------------------------------------------------------------
# Schedules: pure functions T -> betas (float64, shape (T,))
# ---------------------------------------------------------------------------------------------
def linear_beta_schedule(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """``beta_t`` rising linearly from ``beta_start`` to ``beta_end`` (the DDPM paper's choice for T = 1000)."""
    _check_T(timesteps)
    return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)


def quadratic_beta_schedule(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """``sqrt(beta_t)`` linear between ``sqrt(beta_start)`` and ``sqrt(beta_end)``: same end points
    as the linear schedule, but small betas for longer, so noise is added later."""
    _check_T(timesteps)
    return torch.linspace(beta_start ** 0.5, beta_end ** 0.5, timesteps, dtype=torch.float64) ** 2


def cosine_beta_schedule(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """IDDPM eq. 17: ``alpha_bar(t) = f(t) / f(0)`` with ``f(t) = cos^2(pi/2 (t/T + s) / (1 + s))``,
    and ``beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}`` clipped at ``max_beta`` (the last step would be 1)."""
    _check_T(timesteps)
    u = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps                 # (T+1,) from 0 to 1
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    return (1 - abar[1:] / abar[:-1]).clamp(max=max_beta)


SCHEDULES: dict[str, Callable[..., Tensor]] = {
    "linear": linear_beta_schedule, "quadratic": quadratic_beta_schedule, "cosine": cosine_beta_schedule,
}


def make_betas(schedule: str, timesteps: int) -> Tensor:
    """``betas`` of a named schedule (``"linear"``, ``"quadratic"`` or ``"cosine"``), float64 (T,)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {sorted(SCHEDULES)}")
    return SCHEDULES[schedule](timesteps)


def _check_T(timesteps: int) -> None:
    if not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive int, got {timesteps!r}")


def alphas_cumprod(betas: Tensor) -> Tensor:
    """``alpha_bar_t = prod_{s <= t} (1 - beta_s)`` (the product before eq. 4), same shape as ``betas``."""
    if betas.min() <= 0 or betas.max() >= 1:
        raise ValueError("every beta_t must be in (0, 1)")
    return torch.cumprod(1 - betas, dim=0)


def snr(alpha_bar: Tensor) -> Tensor:
    """Signal-to-noise ratio of ``q(x_t | x_0)``: ``alpha_bar_t / (1 - alpha_bar_t)`` (signal power over noise power)."""
    return alpha_bar / (1 - alpha_bar)


def _per_image(values: Tensor, t: Tensor, ndim: int) -> Tensor:
    """``values[t]`` reshaped to (B, 1, 1, ...) so it broadcasts against (B, C, H, W)."""
    out = values.gather(0, t.reshape(-1).to(values.device).long())
    return out.reshape(-1, *([1] * (ndim - 1)))


def q_sample(x0: Tensor, t: Tensor, noise: Tensor, alpha_bar: Tensor) -> Tensor:
    """Eq. 4 by reparameterisation: ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``.

    ``x0`` and ``noise`` (B, ...), ``t`` (B,) integer steps in 0..T-1, ``alpha_bar`` (T,).
    """
    a = _per_image(alpha_bar, t, x0.dim()).to(x0.dtype)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def _randn(shape, generator: torch.Generator | None, device, dtype=torch.float32) -> Tensor:
    """Standard normal noise drawn with ``generator`` on its own device, then moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device)


# ---------------------------------------------------------------------------------------------
# Schedulers
# ---------------------------------------------------------------------------------------------
@dataclass
class StepOutput:
    """Result of one reverse step: ``prev_sample`` is x_{t-1} (or x at the previous step of a
    shortened schedule), ``pred_original_sample`` the model's current estimate of x_0."""

    prev_sample: Tensor
    pred_original_sample: Tensor


class DDPMScheduler(nn.Module):
    """The DDPM forward process and its ancestral sampler.

    ``betas`` etc. are non-persistent buffers: they move with ``.to(device)`` but
    are not saved in checkpoints (the config rebuilds them exactly).

    >>> sched = DDPMScheduler(1000, "cosine")
    >>> x_t = sched.add_noise(x0, noise, t)                 # training: eq. 4
    >>> sched.set_timesteps(1000)                            # sampling: which steps to visit
    >>> for t in sched.timesteps:
    ...     x = sched.step(model(x, t), t, x, generator=g).prev_sample
    """

    def __init__(self, num_train_timesteps: int = 1000, schedule: str = "cosine", *,
                 betas: Tensor | None = None, clip_sample: bool = True):
        super().__init__()
        self.schedule = schedule if betas is None else (schedule or "custom")
        betas = make_betas(schedule, num_train_timesteps) if betas is None else betas.double()
        self.num_train_timesteps, self.clip_sample = len(betas), clip_sample
        abar = alphas_cumprod(betas)
        # computed in float64, stored in float32 (what the network sees); (T,) each
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas", (1 - betas).float(), persistent=False)
        self.register_buffer("alphas_cumprod", abar.float(), persistent=False)
        self.timesteps = torch.arange(self.num_train_timesteps - 1, -1, -1)
        self.num_inference_steps = self.num_train_timesteps

    def extra_repr(self) -> str:
        return f"T={self.num_train_timesteps}, schedule={self.schedule!r}, clip_sample={self.clip_sample}"

    # -- forward process ----------------------------------------------------------------------
    def add_noise(self, original_samples: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        """Sample ``q(x_t | x_0)`` (eq. 4): ``(B, ...)``, ``(B, ...)``, ``(B,)`` -> ``(B, ...)``."""
        if noise.shape != original_samples.shape:
            raise ValueError(f"noise {tuple(noise.shape)} must have the shape of the samples "
                             f"{tuple(original_samples.shape)}")
        timesteps = torch.as_tensor(timesteps, device=self.alphas_cumprod.device).reshape(-1)
        if timesteps.numel() == 1:
            timesteps = timesteps.expand(original_samples.shape[0])
        if timesteps.min() < 0 or timesteps.max() >= self.num_train_timesteps:
            raise ValueError(f"timesteps must be in 0..{self.num_train_timesteps - 1}")
        return q_sample(original_samples, timesteps, noise, self.alphas_cumprod)

    # -- reverse process ----------------------------------------------------------------------
    def set_timesteps(self, num_inference_steps: int) -> Tensor:
        """Choose the ``num_inference_steps`` steps that sampling visits, evenly spaced and
        always starting at ``T - 1`` (``"trailing"`` spacing): for T = 1000 and 10 steps,
        999, 899, ..., 99.  Returns and stores them in ``self.timesteps`` (descending)."""
        T = self.num_train_timesteps
        if not isinstance(num_inference_steps, int) or not 1 <= num_inference_steps <= T:
            raise ValueError(f"num_inference_steps must be an int in 1..{T}, got {num_inference_steps!r}")
        ts = torch.round(torch.arange(T, 0, -T / num_inference_steps, dtype=torch.float64)).long() - 1
        self.timesteps, self.num_inference_steps = ts[:num_inference_steps], num_inference_steps
        return self.timesteps

    def previous_timestep(self, t: int) -> int:
        """The step visited after ``t`` (``-1`` after the last one, where alpha_bar = 1)."""
        idx = (self.timesteps == int(t)).nonzero()
        if len(idx) == 0:
            raise ValueError(f"timestep {int(t)} is not one of the steps set by set_timesteps")
        i = int(idx[0, 0])
        return int(self.timesteps[i + 1]) if i + 1 < len(self.timesteps) else -1

    def _abar(self, t: int) -> Tensor:
        return self.alphas_cumprod[t] if t >= 0 else torch.ones((), device=self.alphas_cumprod.device)

    def predict_x0(self, model_output: Tensor, t: int, sample: Tensor) -> Tensor:
        """Eq. 15 solved for x_0: ``x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_bar_t)``,
        clipped to [-1, 1] if ``clip_sample``."""
        a = self._abar(t)
        x0 = (sample - (1 - a).sqrt() * model_output) / a.sqrt()
        return x0.clamp(-1, 1) if self.clip_sample else x0

    def posterior(self, x0: Tensor, t: int, sample: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance of ``q(x_prev | x_t, x_0)`` (eqs. 6-7), for the step from ``t`` to
        the previous *visited* step, so the formulas use ``beta = 1 - alpha_bar_t / alpha_bar_prev``
        (the usual beta_t when every step is visited)."""
        a_t, a_prev = self._abar(t), self._abar(self.previous_timestep(t))
        beta = 1 - a_t / a_prev
        coef_x0 = a_prev.sqrt() * beta / (1 - a_t)                     # eq. 7, first term
        coef_xt = (1 - beta).sqrt() * (1 - a_prev) / (1 - a_t)         # eq. 7, second term
        var = (1 - a_prev) / (1 - a_t) * beta                          # beta-tilde, eq. 7
        return coef_x0 * x0 + coef_xt * sample, var

    def step(self, model_output: Tensor, timestep: int | Tensor, sample: Tensor, *,
             generator: torch.Generator | None = None, noise: Tensor | None = None) -> StepOutput:
        """One ancestral step (Algorithm 2, line 4, in its x_0-parameterised form):
        predict x_0 (eq. 15), then draw ``x_prev ~ N(mu_tilde(x_t, x0_hat), beta_tilde I)`` (eq. 7).

        ``model_output`` is the predicted noise ``eps_hat`` (B, ...); ``noise`` (optional)
        replaces the fresh Gaussian draw.  No noise is added on the last step.
        """
        t = int(timestep)
        x0 = self.predict_x0(model_output, t, sample)
        mean, var = self.posterior(x0, t, sample)
        if self.previous_timestep(t) < 0:
            return StepOutput(mean, x0)
        if noise is None:
            noise = _randn(sample.shape, generator, sample.device, sample.dtype)
        return StepOutput(mean + var.sqrt() * noise, x0)


class DDIMScheduler(DDPMScheduler):
    """DDIM (Song et al. 2021): same training, same forward process, a different reverse step
    that can skip most of the steps.  ``eta = 0`` is deterministic; ``eta = 1`` adds the DDPM
    amount of noise (DDIM eq. 16)."""

    def __init__(self, num_train_timesteps: int = 1000, schedule: str = "cosine", *,
                 betas: Tensor | None = None, clip_sample: bool = True, eta: float = 0.0):
        super().__init__(num_train_timesteps, schedule, betas=betas, clip_sample=clip_sample)
        self.eta = eta

    def step(self, model_output: Tensor, timestep: int | Tensor, sample: Tensor, *,
             generator: torch.Generator | None = None, noise: Tensor | None = None,
             eta: float | None = None) -> StepOutput:
        """DDIM eq. 12: ``x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma z``
        with ``sigma = eta sqrt((1 - abar_prev)/(1 - abar_t)) sqrt(1 - abar_t/abar_prev)`` (eq. 16).

        When x0_hat is clipped, eps_hat is recomputed from it, so that the two agree."""
        eta = self.eta if eta is None else eta
        t = int(timestep)
        a_t, a_prev = self._abar(t), self._abar(self.previous_timestep(t))
        x0 = self.predict_x0(model_output, t, sample)
        eps = (sample - a_t.sqrt() * x0) / (1 - a_t).sqrt() if self.clip_sample else model_output
        sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        prev = a_prev.sqrt() * x0 + (1 - a_prev - sigma ** 2).clamp(min=0).sqrt() * eps  # "direction to x_t"
        if eta > 0 and self.previous_timestep(t) >= 0:
            if noise is None:
                noise = _randn(sample.shape, generator, sample.device, sample.dtype)
            prev = prev + sigma * noise
        return StepOutput(prev, x0)


# ---------------------------------------------------------------------------------------------
# Loss and the diffusion process
# ---------------------------------------------------------------------------------------------
def epsilon_loss(eps_pred: Tensor, eps: Tensor) -> Tensor:
    """The simplified objective L_simple (eq. 14): ``||eps - eps_theta(x_t, t)||^2``,
    **mean** over pixels and over the batch (so its scale is about 1 at initialisation)."""
    if eps_pred.shape != eps.shape:
        raise ValueError(f"predicted noise {tuple(eps_pred.shape)} and true noise {tuple(eps.shape)} differ in shape")
    return (eps_pred - eps).pow(2).mean()


class GaussianDiffusion(nn.Module):
    """The generative process around a noise-prediction network ``model(x_t, t, y) -> eps_hat``.

    ``diffusion(x0, y)`` returns the training loss for images ``x0`` in [0, 1] of
    shape (B, C, H, W) (Algorithm 1); ``diffusion.sample(n, ...)`` returns images
    in [0, 1] (Algorithm 2 with DDPM, or DDIM with few steps), optionally
    class-conditional with classifier-free guidance.
    """

    def __init__(self, model: nn.Module, *, timesteps: int = 1000, schedule: str = "cosine",
                 image_shape: tuple = (1, 28, 28)):
        super().__init__()
        self.model = model
        self.scheduler = DDPMScheduler(timesteps, schedule)
        self.image_shape = tuple(image_shape)

    @property
    def num_timesteps(self) -> int:
        return self.scheduler.num_train_timesteps

    @property
    def device(self) -> torch.device:
        return self.scheduler.alphas_cumprod.device

    def forward(self, x0: Tensor, y: Tensor | None = None, *, generator: torch.Generator | None = None) -> Tensor:
        """Algorithm 1: pick ``t ~ U{0..T-1}`` and ``eps ~ N(0, I)`` per image, build ``x_t`` (eq. 4),
        return ``epsilon_loss(model(x_t, t, y), eps)`` (mean over pixels and batch).
        ``x0`` (B, C, H, W) in [0, 1]; ``y`` (B,) labels or None."""
        x0 = x0 * 2 - 1                                                        # [0, 1] -> [-1, 1]
        B = x0.shape[0]
        gen_dev = generator.device if generator is not None else x0.device
        t = torch.randint(0, self.num_timesteps, (B,), generator=generator, device=gen_dev).to(x0.device)
        eps = _randn(x0.shape, generator, x0.device, x0.dtype)
        x_t = q_sample(x0, t, eps, self.scheduler.alphas_cumprod)            # eq. 4, (B, C, H, W)
        return epsilon_loss(self.model(x_t, t, y) if y is not None else self.model(x_t, t), eps)

    def predict_noise(self, x: Tensor, t: int, labels: Tensor | None = None,
                      guidance_scale: float = 1.0) -> Tensor:
        """``eps_hat`` at step ``t`` for images ``x`` (B, C, H, W).

        With labels, classifier-free guidance (Ho & Salimans 2022) mixes the
        conditional and unconditional predictions:
        ``eps = eps(x, t, null) + s * (eps(x, t, y) - eps(x, t, null))``;
        ``s = 0`` is unconditional, ``s = 1`` plain conditional, ``s > 1`` guided.
        Both predictions come from one batched call.
        """
        tt = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        if labels is None:
            return self.model(x, tt)
        if guidance_scale == 1.0:
            return self.model(x, tt, labels)
        null = torch.full_like(labels, self.model.null_label)
        if guidance_scale == 0.0:
            return self.model(x, tt, null)
        eps_c, eps_u = self.model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([labels, null])).chunk(2)
        return eps_u + guidance_scale * (eps_c - eps_u)

    @torch.no_grad()
    def sample(self, n: int, *, labels: Tensor | None = None, guidance_scale: float = 1.0,
               sampler: str = "ddim", steps: int = 50, eta: float = 0.0,
               generator: torch.Generator | None = None, x_T: Tensor | None = None,
               frames: int = 0, batch_size: int | None = None):
        """Draw ``n`` images in [0, 1], shape (n, C, H, W).

        ``sampler="ddpm"`` runs ancestral sampling over ``steps`` steps (1000 = the
        full chain of Algorithm 2); ``sampler="ddim"`` the DDIM update with ``eta``.
        ``labels`` (n,) makes the samples class-conditional with ``guidance_scale``.
        ``x_T`` gives the starting noise instead of drawing it with ``generator``.
        With ``frames > 0`` also returns a list of about ``frames`` snapshots
        ``(t, x_t, x0_hat)`` (each (n, C, H, W) in [0, 1]) for animations.
        ``batch_size`` splits large ``n`` into chunks (same result as one batch
        when ``x_T`` is drawn up front).
        """
        if sampler not in ("ddpm", "ddim"):
            raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")
        if labels is not None:
            labels = torch.as_tensor(labels, device=self.device).long().reshape(-1)
            if labels.numel() != n:
                raise ValueError(f"give one label per image: {n} images but {labels.numel()} labels")
        cls = DDPMScheduler if sampler == "ddpm" else DDIMScheduler
        sched = cls(self.num_timesteps, betas=self.scheduler.betas.double().cpu(),
                    schedule=self.scheduler.schedule, clip_sample=True).to(self.device)
        if sampler == "ddim":
            sched.eta = eta
        sched.set_timesteps(steps)
        x = _randn((n, *self.image_shape), generator, self.device) if x_T is None else x_T.to(self.device).clone()
        chunks = [slice(i, min(i + (batch_size or n), n)) for i in range(0, n, batch_size or n)]
        keep = set(torch.linspace(0, len(sched.timesteps) - 1, frames).round().long().tolist()) if frames else set()
        snaps = []
        for i, t in enumerate(sched.timesteps.tolist()):
            noise = _randn(x.shape, generator, self.device) if (sampler == "ddpm" or eta > 0) else None
            outs = [sched.step(self.predict_noise(x[c], t, None if labels is None else labels[c], guidance_scale),
                               t, x[c], noise=None if noise is None else noise[c]) for c in chunks]
            x0 = torch.cat([o.pred_original_sample for o in outs])
            x = torch.cat([o.prev_sample for o in outs])
            if i in keep:
                snaps.append((t, _to_unit(x), _to_unit(x0)))
        images = _to_unit(x)
        return (images, snaps) if frames else images


def _to_unit(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], clamped (what the metrics and the plots expect)."""
    return ((x + 1) / 2).clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# Experiments of the chapter (numbers for its tables), written once here instead of in cells
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def loss_by_timestep(diffusion: GaussianDiffusion, x0: Tensor, y: Tensor | None = None, *,
                     timesteps=(0, 10, 50, 100, 250, 500, 750, 900, 990, 999),
                     generator: torch.Generator | None = None) -> dict:
    """``{t: L_simple at step t}`` for images ``x0`` in [0, 1] (mean over pixels and images),
    all with the same noise: how hard denoising is at each noise level."""
    x = x0.to(diffusion.device) * 2 - 1
    eps = _randn(x.shape, generator, x.device)
    out = {}
    for t in timesteps:
        tt = torch.full((len(x),), int(t), device=x.device, dtype=torch.long)
        pred = diffusion.model(diffusion.scheduler.add_noise(x, eps, tt), tt, *(() if y is None else (y.to(x.device),)))
        out[int(t)] = float(epsilon_loss(pred, eps))
    return out


def _timed_sample(diffusion, n, seed, **kw):
    import time

    dev = diffusion.device
    g = torch.Generator(device=dev).manual_seed(seed)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    x = diffusion.sample(n, generator=g, **kw)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return x, time.perf_counter() - t0


def compare_samplers(diffusion: GaussianDiffusion, settings=(("ddpm", 1000), ("ddim", 100), ("ddim", 50),
                                                             ("ddim", 20), ("ddim", 10)), *,
                     n: int = 1000, dataset: str = "mnist", guidance_scale: float = 1.0, seed: int = 0,
                     batch_size: int = 500) -> list[dict]:
    """Quality and cost of samplers on the same model: for each ``(sampler, steps)`` (or
    ``(sampler, steps, eta)`` for DDIM with noise; default eta 0), ``n`` class-balanced samples
    (labels ``i % 10``, the same seed) scored with the domain-classifier FID of
    :func:`gencourse.metrics.fid` (against the test split), plus seconds per sample on this
    machine.  Rows: ``sampler, steps, fid, seconds_per_sample, protocol`` and, for DDIM, ``eta``."""
    from . import metrics

    labels = torch.arange(n) % 10 if diffusion.model.null_label is not None else None
    rows = []
    for sampler, steps, *rest in settings:
        eta = float(rest[0]) if rest else 0.0
        x, sec = _timed_sample(diffusion, n, seed, labels=labels, guidance_scale=guidance_scale,
                               sampler=sampler, steps=steps, eta=eta, batch_size=batch_size)
        r = metrics.fid(x.cpu(), dataset, device=diffusion.device)
        rows.append(dict(sampler=sampler, steps=steps, **({"eta": eta} if sampler == "ddim" else {}),
                         fid=round(r.value, 3), seconds_per_sample=round(sec / n, 5), protocol=r.protocol))
    return rows


def guidance_sweep(diffusion: GaussianDiffusion, scales=(0.0, 1.0, 2.0, 3.0, 5.0), *, n: int = 1000,
                   steps: int = 50, dataset: str = "mnist", seed: int = 0, batch_size: int = 500) -> list[dict]:
    """Classifier-free guidance traded against diversity: for each scale, ``n`` samples with labels
    ``i % 10`` (DDIM, ``steps``, same seed) scored by :func:`gencourse.metrics.evaluate`: the share
    the domain classifier assigns to the intended class, FID, recall and coverage (diversity),
    and the mean within-class feature spread (std of the classifier features around each class mean)."""
    from . import metrics

    labels = torch.arange(n) % 10
    rows = []
    for s in scales:
        x = diffusion.sample(n, labels=labels, guidance_scale=s, sampler="ddim", steps=steps,
                             generator=torch.Generator(device=diffusion.device).manual_seed(seed),
                             batch_size=batch_size).cpu()
        emb = metrics.embed(x, dataset, device=diffusion.device)
        rep = metrics.evaluate(emb, dataset, labels=labels, device=diffusion.device, floor=False).as_dict()
        spread = torch.stack([emb.features[labels == c].std(0).mean() for c in range(10)]).mean()
        rows.append(dict(scale=s, class_accuracy=round(rep["class_accuracy"], 4), fid=round(rep["fid"], 3),
                         recall=round(rep["recall"], 4), coverage=round(rep["coverage"], 4),
                         within_class_spread=round(float(spread), 4)))
    return rows


# ---------------------------------------------------------------------------------------------
# The recipe: class-conditional DDPM on MNIST (label dropout, so guidance and unconditional
# sampling with the null label both work).  Shipped as gencourse/assets/weights/ddpm-mnist.pt.
# ---------------------------------------------------------------------------------------------
def build_model(cfg: dict) -> GaussianDiffusion:
    """The process + U-Net described by a recipe config (see ``DDPM_DEFAULTS``)."""
    from .unet import UNet

    unet = UNet(1, cfg["channels"], tuple(cfg["channel_mults"]), cfg["num_res_blocks"], cfg["attention"],
                num_classes=cfg["num_classes"], class_dropout=cfg["class_dropout"])
    return GaussianDiffusion(unet, timesteps=cfg["timesteps"], schedule=cfg["schedule"])


def load_ema(name: str = "ddpm-mnist", device: torch.device | str = "cpu"):
    """The EMA model stored in ``gencourse/assets/weights/NAME.pt`` (a recipe checkpoint, or a
    file holding only the EMA weights, like the schedule-comparison models), in eval mode on
    ``device``.  Returns ``(model, checkpoint)``; ``checkpoint.metrics`` says how it was made."""
    from . import checkpoint, recipes

    path = recipes.weights_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"no shipped weights {path}; see the chapter for the command that makes them")
    ck = checkpoint.load(path)
    model = build_model(dict(DDPM_DEFAULTS, **{k: v for k, v in ck.config.items() if k != "recipe"}))
    ck.load_into({"ema": model})
    return model.to(device).eval(), ck


def _build(cfg):
    import copy

    torch.manual_seed(cfg["init_seed"])
    model = build_model(cfg)
    ema = copy.deepcopy(model).requires_grad_(False)  # exponential moving average of the weights
    return {"model": model, "ema": ema}


def _data(cfg, device, rank=0, world_size=1):
    from . import data

    images, labels = data.load(cfg["dataset"], "train")
    if cfg["n_train"] < len(labels):
        images, labels = data.subset(images, labels, cfg["n_train"], seed=cfg["data_seed"])
    from . import recipes

    return recipes.batches(cfg, device, rank, world_size, images, labels,
                           transform=lambda x, y: (data.to_float(x), y), seed=cfg["data_seed"])


def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model``, parameter by parameter."""
    with torch.no_grad():
        e, m = list(ema.parameters()), list(model.parameters())
        torch._foreach_lerp_(e, m, 1.0 - decay)


def _step(modules, opts, cfg):
    model, ema, opt = modules["model"], modules["ema"], opts["opt"]
    net = getattr(model, "module", model)  # unwrapped (DistributedDataParallel keeps it in .module)

    def step(batch, trainer):
        x, y = batch                                                  # (B, 1, 28, 28) in [0, 1], (B,)
        for g in opt.param_groups:                                    # linear warm-up of the learning rate
            g["lr"] = cfg["lr"] * min(1.0, (trainer.step + 1) / cfg["warmup"])
        loss = model(x, y if cfg["num_classes"] else None)
        trainer.optimize(loss, opt)
        # EMA with a short warm-up, so early weights are forgotten quickly in short runs
        ema_update(ema, net, min(cfg["ema_decay"], (1 + trainer.step) / (10 + trainer.step)))
        return {"loss": loss}
    return step


def _sample(modules, cfg, n, device, generator=None):
    """Class-balanced conditional samples (labels 0..9 cycling) from the EMA weights:
    deterministic DDIM (eta 0) with ``sample_steps`` steps and guidance ``sample_guidance``.  Returns
    (images, labels)."""
    ema = modules["ema"]
    labels = torch.arange(n, device=device) % cfg["num_classes"] if cfg["num_classes"] else None
    x = ema.sample(n, labels=labels, guidance_scale=cfg["sample_guidance"], sampler="ddim",
                   steps=cfg["sample_steps"], generator=generator, batch_size=500)
    return (x, labels) if labels is not None else x


def _evaluate(modules, cfg, device):
    """Domain-classifier FID (and class accuracy) of ``eval_samples`` samples from :func:`_sample`."""
    from . import metrics

    g = torch.Generator(device=device).manual_seed(0)
    out = _sample(modules, cfg, cfg["eval_samples"], device, g)
    x, labels = out if isinstance(out, tuple) else (out, None)
    rep = metrics.evaluate(x.cpu(), cfg["dataset"], labels=None if labels is None else labels.cpu(), device=device,
                           floor=False)
    out = {k: round(float(v), 5) for k, v in rep.as_dict().items()}
    out["eval_samples"] = cfg["eval_samples"]
    out["protocol"] = (f"{cfg['eval_samples']} samples (labels i % 10, EMA weights, DDIM {cfg['sample_steps']} steps "
                       f"with eta 0, guidance {cfg['sample_guidance']:g}, seed 0); " + "; ".join(rep.protocols().values()))
    return out


DDPM_DEFAULTS = dict(
    dataset="mnist", n_train=60_000, data_seed=0, init_seed=0,
    timesteps=1000, schedule="cosine",
    channels=16, channel_mults=[1, 2, 4], num_res_blocks=1, attention=True,
    num_classes=10, class_dropout=0.1,
    lr=2e-3, warmup=200, batch_size=128, ema_decay=0.999, steps=20_000,
    sample_steps=50, sample_guidance=1.0, eval_samples=2000,
)


def _register() -> None:
    from . import recipes

    recipes.register(recipes.Recipe(
        name="ddpm-mnist",
        description="class-conditional DDPM (small U-Net, cosine schedule, label dropout for guidance) on MNIST",
        defaults=dict(DDPM_DEFAULTS), build=_build, optimizers=recipes.one_adam, data=_data, step=_step,
        evaluate=_evaluate, sample=_sample, datasets=("mnist", "fashion"),
        notes={"sample": "EMA weights, DDIM 50 steps, guidance 1 (plain conditional), labels i % 10"}))


_register()
