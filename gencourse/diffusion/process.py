"""The diffusion process of Chapter 6: :class:`GaussianDiffusion` wraps a noise-prediction network;
``diffusion(x0, y)`` returns the training loss (:func:`epsilon_loss`, eq. 14) and
``diffusion.sample(...)`` draws images (DDPM or DDIM, with classifier-free guidance).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .schedulers import DDIMScheduler, DDPMScheduler
from .schedules import _randn, q_sample


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
        from ..unet import guided

        tt = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        return guided(self.model, x, tt, labels, guidance_scale)

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
            if hasattr(self.model, "check_labels"):
                self.model.check_labels(labels)  # once here, not in every network call (a host sync)
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
