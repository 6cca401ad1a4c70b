"""The recipes of Chapter 2: ``vae-mnist`` (Bernoulli decoder, dynamically binarised MNIST,
32-D latent) and ``vae-fashion-2d`` (2-D latent, Fashion-MNIST grey levels), trained on the
ELBO of :mod:`gencourse.vae` and evaluated by its IWAE bound."""
from __future__ import annotations

import torch

from . import data as _data
from . import recipes
from .vae import VAE, elbo, estimate_nll

def _build(cfg):
    torch.manual_seed(cfg["init_seed"])
    return {"model": VAE(cfg["latent_dim"], tuple(cfg["hidden"]), arch=cfg["arch"], likelihood=cfg["likelihood"],
                         x_sigma=cfg["x_sigma"], channels=tuple(cfg["channels"]))}


def _data_fn(cfg, device, rank=0, world_size=1):
    images = recipes.train_images(cfg)
    if cfg["binarize"]:
        tf = lambda x: torch.bernoulli(x.unsqueeze(1).float().div_(255))  # dynamic binarisation  # noqa: E731
    else:
        tf = lambda x: x.unsqueeze(1).float().div_(255)  # noqa: E731
    return recipes.batches(cfg, device, rank, world_size, images, transform=tf)


def _step(modules, opts, cfg):
    model, opt = modules["model"], opts["opt"]
    warmup = cfg["kl_warmup"]

    def step(x, trainer):
        # optional KL warm-up: beta grows linearly from 0 to cfg["beta"] over the first `warmup` steps
        beta = cfg["beta"] * min(1.0, (trainer.step + 1) / warmup) if warmup else cfg["beta"]
        t = elbo(model, x, beta=beta)
        trainer.optimize(t.loss, opt)
        return {"loss": t.loss, "elbo": t.elbo, "kl": t.kl}
    return step


@torch.no_grad()
def _evaluate(modules, cfg, device):
    images, _ = _data.load(cfg["dataset"], "test")
    n, k = cfg["eval_n"] or len(images), cfg["eval_k"]
    r = estimate_nll(modules["model"], images[:n], k=k, binarize_seed=0 if cfg["binarize"] else None,
                     device=device, batch_size=max(1, 20_000 // k))
    if cfg["binarize"]:
        data_desc = "dynamically binarised (one fixed binarisation, seed 0)"
    elif cfg["likelihood"] == "gaussian":
        data_desc = "grey levels, Gaussian decoder (log-densities, not comparable with probabilities of binary images)"
    else:
        data_desc = "grey levels with the Bernoulli cross-entropy (not a normalised likelihood)"
    return {"test_elbo_nats": r["elbo"], "test_reconstruction_nats": r["reconstruction"], "test_kl_nats": r["kl"],
            f"test_iwae_nll_nats_k{k}": r["nll"],
            "protocol": f"{cfg['dataset']} test set, first {n} images, {data_desc}; IWAE bound with k={k}; "
                        "nats per image (sum over pixels, mean over images)"}


@torch.no_grad()
def _sample(modules, cfg, n, device, generator=None):
    """Decoder means E[x | z] for z ~ N(0, I), in [0, 1]."""
    return modules["model"].sample(n, generator=generator).clamp(0, 1)


_DEFAULTS = dict(dataset="mnist", arch="mlp", latent_dim=32, hidden=[512, 256], channels=[32, 64],
                 likelihood="bernoulli", x_sigma=None, binarize=True, beta=1.0, kl_warmup=0, lr=1e-3,
                 batch_size=128, steps=30_000, n_train=0, init_seed=0, eval_k=1000, eval_n=0)

recipes.register(recipes.Recipe(
    name="vae-mnist", description="VAE, Bernoulli decoder, dynamically binarised MNIST, 32-D latent (Chapter 2)",
    defaults=dict(_DEFAULTS), build=_build, optimizers=recipes.one_adam, data=_data_fn, step=_step,
    evaluate=_evaluate, sample=_sample, datasets=("mnist", "fashion")))

recipes.register(recipes.Recipe(
    name="vae-fashion-2d", description="VAE with a 2-D latent on Fashion-MNIST grey levels (Chapter 2)",
    defaults=dict(_DEFAULTS, dataset="fashion", latent_dim=2, binarize=False, steps=20_000, eval_k=200),
    build=_build, optimizers=recipes.one_adam, data=_data_fn, step=_step,
    evaluate=_evaluate, sample=_sample, datasets=("fashion", "mnist")))
