"""The recipes of Chapter 5: ``pix2pix-edges-fashion`` (adversarial + L1), ``pix2pix-edges-fashion-l1``
(L1 only), ``cyclegan-mnist`` and its ablation ``cyclegan-mnist-nocycle`` (cycle and identity weights
0); :func:`load_or_train` loads the shipped weights of a seed (or trains them in FULL mode).
"""
from __future__ import annotations

import torch

from .. import data as _data
from .. import recipes
from ..train import adam
from . import tasks
from .batches import UnpairedBatches, _signed_u8
from .buffer import ImageBuffer
from .evaluation import evaluate_cyclegan, evaluate_pix2pix
from .networks import PatchDiscriminator, UNet
from .steps import cyclegan_step, pix2pix_step


PIX2PIX_DEFAULTS = dict(
    dataset="fashion", adversarial=True, lam=100.0, width=16, depth=4, max_width=64, norm="instance", dropout=0.0,
    d_width=32, d_down=2, d_extra=0, lr_g=2e-4, lr_d=2e-4, betas=[0.5, 0.999], batch_size=64, steps=5000,
    n_train=0, init_seed=0, edge_threshold=0.5, eval_n=2000, eval_fid=True,
)

CYCLEGAN_DEFAULTS = dict(
    dataset="mnist", lambda_cycle=10.0, lambda_identity=0.0, adversarial="lsgan", width=16, depth=4, max_width=64,
    norm="instance", d_width=32, d_down=2, d_extra=0, lr_g=2e-4, lr_d=2e-4, betas=[0.5, 0.999], batch_size=64,
    steps=2500, buffer=50, n_train=0, init_seed=0, split_seed=0, rotate=False, eval_n=2000,
)


def build_pix2pix(cfg: dict) -> dict:
    """``{"generator"}`` (U-Net, 1 -> 1 channel) and, if adversarial, ``{"discriminator"}`` (PatchGAN on
    source ++ image, 2 channels)."""
    torch.manual_seed(cfg["init_seed"])
    mods = {"generator": UNet(1, 1, width=cfg["width"], depth=cfg["depth"], max_width=cfg["max_width"],
                              norm=cfg["norm"], dropout=cfg["dropout"])}
    if cfg["adversarial"]:
        mods["discriminator"] = PatchDiscriminator(2, width=cfg["d_width"], n_down=cfg["d_down"],
                                                   n_extra=cfg["d_extra"], norm=cfg["norm"])
    return mods


def _pix2pix_optimizers(mods, cfg):
    betas = tuple(cfg["betas"])
    opts = {"g": adam(mods["generator"].parameters(), lr=cfg["lr_g"], betas=betas)}
    if "discriminator" in mods:
        opts["d"] = adam(mods["discriminator"].parameters(), lr=cfg["lr_d"], betas=betas)
    return opts


def _pix2pix_data(cfg, device, rank=0, world_size=1):
    pairs = tasks.edges_to_images(cfg["dataset"], "train", cfg["n_train"] or None, seed=cfg["init_seed"],
                                  threshold=cfg["edge_threshold"])
    u8 = lambda x: (x[:, 0] * 255).round().to(torch.uint8)  # noqa: E731  (exact for these images)
    return recipes.batches(cfg, device, rank, world_size, u8(pairs.source), u8(pairs.target),
                           transform=lambda s, t: (_signed_u8(s), _signed_u8(t)))


def _pix2pix_step(mods, opts, cfg):
    return pix2pix_step(mods["generator"], mods.get("discriminator"), opts["g"], opts.get("d"), lam=cfg["lam"],
                        adversarial=cfg["adversarial"])


def _pix2pix_evaluate(mods, cfg, device):
    pairs = tasks.edges_to_images(cfg["dataset"], "test", cfg["eval_n"], seed=0, threshold=cfg["edge_threshold"])
    return evaluate_pix2pix(mods["generator"], pairs, fid=cfg["eval_fid"], device=device)


def build_cyclegan(cfg: dict) -> dict:
    """``{"g_ab", "g_ba", "d_a", "d_b"}``: two U-Nets (3 -> 3 channels) and two PatchGANs (3 channels)."""
    torch.manual_seed(cfg["init_seed"])
    unet = lambda: UNet(3, 3, width=cfg["width"], depth=cfg["depth"], max_width=cfg["max_width"],  # noqa: E731
                        norm=cfg["norm"])
    patch = lambda: PatchDiscriminator(3, width=cfg["d_width"], n_down=cfg["d_down"],  # noqa: E731
                                       n_extra=cfg["d_extra"], norm=cfg["norm"])
    return {"g_ab": unet(), "g_ba": unet(), "d_a": patch(), "d_b": patch()}


def _cyclegan_optimizers(mods, cfg):
    betas = tuple(cfg["betas"])
    g = [p for k in ("g_ab", "g_ba") for p in mods[k].parameters()]
    d = [p for k in ("d_a", "d_b") for p in mods[k].parameters()]
    return {"g": adam(g, lr=cfg["lr_g"], betas=betas), "d": adam(d, lr=cfg["lr_d"], betas=betas)}


def _cyclegan_data(cfg, device, rank=0, world_size=1):
    images, _ = _data.load(cfg["dataset"], "train")
    ia, ib = tasks.unpaired_split(images.shape[0], cfg["n_train"] or None, cfg["split_seed"])
    hue = tasks.domain_b_hues(ib.shape[0], cfg["split_seed"])
    return UnpairedBatches(images[ia], images[ib], hue, batch_size=cfg["batch_size"] // world_size, device=device,
                           seed=cfg["init_seed"], rank=rank, world_size=world_size, rotate=cfg["rotate"])


def _cyclegan_step(mods, opts, cfg):
    dev = next(mods["g_ab"].parameters()).device
    gens = [torch.Generator(device=dev).manual_seed(cfg["init_seed"] + k) for k in (11, 12)]
    return cyclegan_step(mods["g_ab"], mods["g_ba"], mods["d_a"], mods["d_b"], opts["g"], opts["d"],
                         lambda_cycle=cfg["lambda_cycle"], lambda_identity=cfg["lambda_identity"],
                         adversarial=cfg["adversarial"], buffer_a=ImageBuffer(cfg["buffer"], generator=gens[0]),
                         buffer_b=ImageBuffer(cfg["buffer"], generator=gens[1]))


def _cyclegan_evaluate(mods, cfg, device):
    test = tasks.unpaired_mnist("test", cfg["eval_n"], seed=cfg["split_seed"], rotate=cfg["rotate"])
    return evaluate_cyclegan(mods["g_ab"], mods["g_ba"], test, rotate=cfg["rotate"], device=device)


def pretrained_path(name: str, seed: int = 0):
    """Shipped weights of recipe ``name`` trained with ``init_seed=seed``: ``NAME.pt`` for seed 0, else
    ``NAME-seed{seed}.pt`` (the extra seeds of the chapter's table), in ``gencourse/assets/weights``."""
    return recipes.weights_path(name) if seed == 0 else recipes.WEIGHTS_DIR / f"{name}-seed{seed}.pt"


def load_or_train(name: str, seed: int = 0, *, train: bool = False, device: torch.device | str = "cpu",
                  **overrides) -> tuple[dict, dict, dict]:
    """The modules of recipe ``name`` (``init_seed=seed``), in eval mode on ``device``: trained now for the
    recipe's ``steps`` when ``train`` (FULL mode), else loaded from :func:`pretrained_path`.

    Returns ``(modules, config, info)``; ``info`` holds the checkpoint's metrics (``train_seconds``,
    ``device``, ``steps``, the evaluation) when loaded, or ``train_seconds``/``steps``/``device``
    of the run just made.
    """
    from .. import utils

    if train:
        utils.seed_everything(seed)
        trainer, mods, cfg = recipes.build_trainer(name, dict(overrides, init_seed=seed), device=device)
        trainer.fit(steps=cfg["steps"])
        dev = torch.device(device)
        info = {"train_seconds": round(trainer.seconds, 1), "steps": trainer.step,
                "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type}
    else:
        mods, ck = recipes.load_pretrained(name, device, path=pretrained_path(name, seed))
        cfg = {k: v for k, v in ck.config.items() if k != "recipe"}
        info = dict(ck.metrics, command=ck.meta.get("command"))
    for m in mods.values():
        m.eval()
    return mods, cfg, info


def _register_pix2pix(name: str, description: str, **overrides) -> None:
    recipes.register(recipes.Recipe(
        name=name, description=description, defaults=dict(PIX2PIX_DEFAULTS, **overrides), build=build_pix2pix,
        optimizers=_pix2pix_optimizers, data=_pix2pix_data, step=_pix2pix_step, evaluate=_pix2pix_evaluate,
        datasets=("fashion", "mnist")))


def _register_cyclegan(name: str, description: str, **overrides) -> None:
    recipes.register(recipes.Recipe(
        name=name, description=description, defaults=dict(CYCLEGAN_DEFAULTS, **overrides), build=build_cyclegan,
        optimizers=_cyclegan_optimizers, data=_cyclegan_data, step=_cyclegan_step, evaluate=_cyclegan_evaluate,
        datasets=("mnist",)))


_register_pix2pix("pix2pix-edges-fashion", "pix2pix: edge map -> Fashion-MNIST image, adversarial + 100 x L1 (Chapter 5)")
_register_pix2pix("pix2pix-edges-fashion-l1", "the same U-Net trained with the L1 loss alone (Chapter 5)",
                  adversarial=False)
_register_cyclegan("cyclegan-mnist", "CycleGAN: MNIST <-> coloured MNIST, unpaired (Chapter 5)")
_register_cyclegan("cyclegan-mnist-nocycle", "the CycleGAN ablation: adversarial losses only, no cycle or identity "
                   "loss (Chapter 5)", lambda_cycle=0.0, lambda_identity=0.0)
