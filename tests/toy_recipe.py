"""A tiny recipe for testing the training command (registered via GENCOURSE_PLUGINS=toy_recipe)."""
import torch
from torch import nn

from gencourse import data, recipes


def _build(cfg):
    torch.manual_seed(cfg["init_seed"])
    return {"model": nn.Sequential(nn.Linear(4, cfg["width"]), nn.Dropout(cfg["dropout"]), nn.Linear(cfg["width"], 1))}


def _optimizers(modules, cfg):
    return {"opt": torch.optim.Adam(modules["model"].parameters(), lr=cfg["lr"])}


def _data(cfg, device, rank=0, world_size=1):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 4, generator=g)
    y = x.sum(1, keepdim=True) + 0.1 * torch.randn(512, 1, generator=g)
    return data.BatchIterator(x, y, batch_size=cfg["batch_size"] // world_size, device=device, seed=1,
                              rank=rank, world_size=world_size)


def _step(modules, opts, cfg):
    model, opt = modules["model"], opts["opt"]

    def step(batch, trainer):
        x, y = batch
        loss = ((model(x) - y) ** 2).mean()
        trainer.optimize(loss, opt)
        return {"loss": loss}
    return step


def _evaluate(modules, cfg, device):
    x = torch.ones(1, 4, device=device)
    return {"prediction_at_ones": float(modules["model"](x))}


recipes.register(recipes.Recipe(
    name="toy-regression", description="linear-ish regression on random data (tests only)",
    defaults=dict(width=8, dropout=0.1, lr=0.01, batch_size=32, init_seed=0, steps=40, dataset="synthetic"),
    build=_build, optimizers=_optimizers, data=_data, step=_step, evaluate=_evaluate, datasets=("synthetic",)))
