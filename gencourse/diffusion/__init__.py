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

The package, one concept a module: :mod:`~gencourse.diffusion.schedules`,
:mod:`~gencourse.diffusion.schedulers`, :mod:`~gencourse.diffusion.process`,
:mod:`~gencourse.diffusion.experiments` and :mod:`~gencourse.diffusion.recipes`.
"""
from __future__ import annotations

from .experiments import compare_samplers, guidance_sweep, loss_by_timestep
from .process import GaussianDiffusion, epsilon_loss
from .recipes import DDPM_DEFAULTS, build_model, ema_update, load_ema
from .schedulers import DDIMScheduler, DDPMScheduler, StepOutput
from .schedules import (SCHEDULES, alphas_cumprod, cosine_beta_schedule, linear_beta_schedule, make_betas, q_sample,
                        quadratic_beta_schedule, snr)

__all__ = [
    "linear_beta_schedule", "quadratic_beta_schedule", "cosine_beta_schedule", "SCHEDULES", "make_betas",
    "alphas_cumprod", "snr", "q_sample", "StepOutput", "DDPMScheduler", "DDIMScheduler",
    "epsilon_loss", "GaussianDiffusion", "loss_by_timestep", "compare_samplers", "guidance_sweep",
    "build_model", "load_ema", "ema_update", "DDPM_DEFAULTS",
]
