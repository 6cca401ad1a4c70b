"""The recipes of Chapter 8: class-conditional flow matching on MNIST with the ddpm-mnist U-Net and budget
(``fm-mnist``, shipped, and the 2,000-step comparison models); :func:`load_ema`.
"""
from __future__ import annotations

import torch

from .model import FlowMatching
from .samplers import nfe


FM_DEFAULTS = dict(
    dataset="mnist", n_train=60_000, data_seed=0, init_seed=0, coupling="class-ot", time_scale=1000.0, time_power=1.0,
    channels=16, channel_mults=[1, 2, 4], num_res_blocks=1, attention=True,
    num_classes=10, class_dropout=0.1,
    lr=2e-3, warmup=200, batch_size=64, ema_decay=0.999, steps=20_000,
    sample_method="euler", sample_steps=10, sample_guidance=1.5, eval_samples=2000,
)


def build_model(cfg: dict) -> FlowMatching:
    """The process + U-Net of a recipe config (the architecture of ``ddpm-mnist``)."""
    from ..unet import UNet

    unet = UNet(1, cfg["channels"], tuple(cfg["channel_mults"]), cfg["num_res_blocks"], cfg["attention"],
                num_classes=cfg["num_classes"], class_dropout=cfg["class_dropout"])
    return FlowMatching(unet, coupling=cfg["coupling"], time_scale=cfg["time_scale"],
                        time_power=cfg.get("time_power", 1.0))


def load_ema(name: str = "fm-mnist", device: torch.device | str = "cpu"):
    """The EMA model of the shipped checkpoint ``NAME`` in eval mode on ``device``: ``(model, checkpoint)``."""
    from .. import checkpoint, recipes

    path = recipes.weights_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"no shipped weights {path}; train them with `python -m gencourse train {name}`")
    ck = checkpoint.load(path)
    model = build_model(dict(FM_DEFAULTS, **{k: v for k, v in ck.config.items() if k != "recipe"}))
    ck.load_into({"ema": model})
    return model.to(device).eval(), ck


def _build(cfg):
    import copy

    torch.manual_seed(cfg["init_seed"])
    model = build_model(cfg)
    return {"model": model, "ema": copy.deepcopy(model).requires_grad_(False)}


def _data(cfg, device, rank=0, world_size=1):
    from .. import data, recipes

    images, labels = data.load(cfg["dataset"], "train")
    if cfg["n_train"] < len(labels):
        images, labels = data.subset(images, labels, cfg["n_train"], seed=cfg["data_seed"])
    return recipes.batches(cfg, device, rank, world_size, images, labels,
                           transform=lambda x, y: (data.to_float(x), y), seed=cfg["data_seed"])


def _step(modules, opts, cfg):
    from ..diffusion import ema_update

    model, ema, opt = modules["model"], modules["ema"], opts["opt"]
    net = getattr(model, "module", model)

    def step(batch, trainer):
        x, y = batch                                                  # (B, 1, 28, 28) in [0, 1], (B,)
        for g in opt.param_groups:                                    # linear warm-up of the learning rate
            g["lr"] = cfg["lr"] * min(1.0, (trainer.step + 1) / cfg["warmup"])
        loss = model(x, y if cfg["num_classes"] else None)
        trainer.optimize(loss, opt)
        ema_update(ema, net, min(cfg["ema_decay"], (1 + trainer.step) / (10 + trainer.step)))
        return {"loss": loss}
    return step


def _sample(modules, cfg, n, device, generator=None):
    """Class-balanced samples (labels 0..9 cycling) from the EMA weights with ``sample_method`` /
    ``sample_steps`` / ``sample_guidance``; returns ``(images, labels)``."""
    ema = modules["ema"]
    labels = torch.arange(n, device=device) % cfg["num_classes"] if cfg["num_classes"] else None
    x = ema.sample(n, labels=labels, guidance_scale=cfg["sample_guidance"], method=cfg["sample_method"],
                   steps=cfg["sample_steps"], generator=generator, batch_size=500)
    return (x, labels) if labels is not None else x


def _evaluate(modules, cfg, device):
    """Domain-classifier FID and class accuracy of ``eval_samples`` samples from :func:`_sample`."""
    from ..metrics import protocol

    g = torch.Generator(device=device).manual_seed(0)
    out = _sample(modules, cfg, cfg["eval_samples"], device, g)
    x, labels = out if isinstance(out, tuple) else (out, None)
    rep = protocol.evaluate(x.cpu(), cfg["dataset"], labels=None if labels is None else labels.cpu(), device=device,
                            floor=False)
    res = {k: round(float(v), 5) for k, v in rep.as_dict().items()}
    res["eval_samples"] = cfg["eval_samples"]
    res["protocol"] = (f"{cfg['eval_samples']} samples (labels i % 10, EMA weights, {cfg['sample_method']} "
                       f"{cfg['sample_steps']} steps = {nfe(cfg['sample_method'], cfg['sample_steps'])} network "
                       f"evaluations, guidance {cfg['sample_guidance']:g}, seed 0); "
                       + "; ".join(rep.protocols().values()))
    return res


def _register() -> None:
    from .. import recipes

    for name, desc, over in (
            ("fm-mnist", "class-conditional flow matching with OT pairs within each class (ddpm-mnist's U-Net) "
                         "on MNIST", {}),
            ("fm-mnist-class-ot-2k", "fm-mnist for 2,000 steps (Chapter 8's coupling comparison)", {"steps": 2000}),
            ("fm-mnist-indep-2k", "fm-mnist with independent pairs for 2,000 steps (Chapter 8's comparison)",
             {"steps": 2000, "coupling": "independent"})):
        recipes.register(recipes.Recipe(
            name=name, description=desc, defaults=dict(FM_DEFAULTS, **over), build=_build,
            optimizers=recipes.one_adam, data=_data, step=_step, evaluate=_evaluate, sample=_sample,
            datasets=("mnist", "fashion"),
            notes={"sample": "EMA weights, Euler 10 steps with guidance 1.5 (20 network evaluations), labels i % 10"}))


_register()
