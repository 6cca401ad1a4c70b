"""The recipe of Chapter 6: class-conditional DDPM on MNIST (label dropout, so guidance and unconditional
sampling with the null label both work), shipped as ``gencourse/assets/weights/ddpm-mnist.pt``;
:func:`load_ema` loads its (or any shipped diffusion model's) EMA weights.
"""
from __future__ import annotations

import torch
from torch import nn

from .process import GaussianDiffusion


def build_model(cfg: dict) -> GaussianDiffusion:
    """The process + U-Net described by a recipe config (see ``DDPM_DEFAULTS``)."""
    from ..unet import UNet

    unet = UNet(1, cfg["channels"], tuple(cfg["channel_mults"]), cfg["num_res_blocks"], cfg["attention"],
                num_classes=cfg["num_classes"], class_dropout=cfg["class_dropout"])
    return GaussianDiffusion(unet, timesteps=cfg["timesteps"], schedule=cfg["schedule"])


def load_ema(name: str = "ddpm-mnist", device: torch.device | str = "cpu"):
    """The EMA model stored in ``gencourse/assets/weights/NAME.pt`` (a recipe checkpoint, or a
    file holding only the EMA weights, like the schedule-comparison models), in eval mode on
    ``device``.  Returns ``(model, checkpoint)``; ``checkpoint.metrics`` says how it was made."""
    from .. import checkpoint, recipes

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
    from .. import data

    images, labels = data.load(cfg["dataset"], "train")
    if cfg["n_train"] < len(labels):
        images, labels = data.subset(images, labels, cfg["n_train"], seed=cfg["data_seed"])
    from .. import recipes

    return recipes.batches(cfg, device, rank, world_size, images, labels,
                           transform=lambda x, y: (data.to_float(x), y), seed=cfg["data_seed"])


def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model``, parameter by parameter."""
    with torch.no_grad():
        e, m = list(ema.parameters()), list(model.parameters())
        torch._foreach_lerp_(e, m, 1.0 - decay)


def _step(modules, opts, cfg):
    model, ema, opt = modules["model"], modules["ema"], opts["opt"]
    net = model

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
    from ..metrics import protocol

    g = torch.Generator(device=device).manual_seed(0)
    out = _sample(modules, cfg, cfg["eval_samples"], device, g)
    x, labels = out if isinstance(out, tuple) else (out, None)
    rep = protocol.evaluate(x.cpu(), cfg["dataset"], labels=None if labels is None else labels.cpu(), device=device,
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
    from .. import recipes

    recipes.register(recipes.Recipe(
        name="ddpm-mnist",
        description="class-conditional DDPM (small U-Net, cosine schedule, label dropout for guidance) on MNIST",
        defaults=dict(DDPM_DEFAULTS), build=_build, optimizers=recipes.one_adam, data=_data, step=_step,
        evaluate=_evaluate, sample=_sample, datasets=("mnist", "fashion"),
        notes={"sample": "EMA weights, DDIM 50 steps, guidance 1 (plain conditional), labels i % 10"}))


_register()
