"""The schedulers of Chapter 6: :class:`DDPMScheduler` and :class:`DDIMScheduler`, with the familiar
``add_noise`` / ``set_timesteps`` / ``step`` interface (``step`` returns a :class:`StepOutput`); their
constants are buffers, so ``.to(device)`` moves them.
"""
from __future__ import annotations

import math

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .schedules import _randn, alphas_cumprod, make_betas, q_sample


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
        self._abar64 = abar.cpu()          # float64 copy on the CPU for the posterior's coefficients (eq. 7)
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
        # the coefficients are computed in float64 from the float64 schedule and applied as Python numbers:
        # from float32 alpha-bars, 1 - alpha_bar near t = 0 and sqrt(1 - beta) = sqrt(1 - (1 - r)) for r ~ 1e-7
        # (the cosine schedule's first step when few steps are visited) both lose most of their digits
        prev = self.previous_timestep(t)
        a_t = float(self._abar64[t])
        a_prev = float(self._abar64[prev]) if prev >= 0 else 1.0
        ratio = a_t / a_prev                                           # alpha_t of this (possibly long) step
        beta = 1 - ratio
        coef_x0 = math.sqrt(a_prev) * beta / (1 - a_t)                 # eq. 7, first term
        coef_xt = math.sqrt(ratio) * (1 - a_prev) / (1 - a_t)          # eq. 7, second term: sqrt(alpha_t) directly
        var = (1 - a_prev) / (1 - a_t) * beta                          # beta-tilde, eq. 7
        return coef_x0 * x0 + coef_xt * sample, torch.tensor(var, dtype=sample.dtype, device=sample.device)

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
