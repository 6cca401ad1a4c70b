"""Domain classifiers for MNIST and Fashion-MNIST: the feature space of Chapter 7's metrics.

FID, KID, precision/recall and density/coverage compare *features* of real and
generated images.  The usual Inception-v3 features need downloaded ImageNet
weights and 299x299 colour inputs; for 28x28 grey digits and clothes a small
CNN trained on the dataset itself is both offline and more relevant.  The
course trains one per dataset with a fixed seed and ships the weights
(``gencourse/assets/weights/classifier-{mnist,fashion}.pt``).

Network (:class:`DomainClassifier`, input float (B, 1, 28, 28) in [0, 1]):

======================================  ===============
conv 3x3, 8 channels, ReLU, max-pool 2   (B, 8, 14, 14)
conv 3x3, 32 ch., batch norm, ReLU, pool (B, 32, 7, 7)
conv 3x3, 64 ch., batch norm, ReLU       (B, 64, 7, 7)
linear 3136 -> 128, ReLU  = **features** (B, 128)
linear 128 -> 10          = logits       (B, 10)
======================================  ===============

The **feature layer** is the 128-d output of the hidden linear layer after its
ReLU, i.e. the input of the final linear layer (the analogue of Inception's
2048-d pool3 layer).  The first layer is kept narrow (8 channels) because work at
full 28x28 resolution dominates the cost on a CPU; the whole net trains to
>= 99% (MNIST) / >= 91% (Fashion-MNIST) test accuracy in about two minutes on
two CPU cores (recipes ``classifier-mnist`` and ``classifier-fashion``).
"""
from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from . import data, recipes
from .train import adam

__all__ = ["DomainClassifier", "as_images", "FEATURE_LAYER", "DATASETS", "CLASS_NAMES", "recipe_name", "accuracy", "as_shipped", "lr_at"]

DATASETS = ("mnist", "fashion")
FEATURE_LAYER = "fc1+ReLU (128-d penultimate layer)"
CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                "Ankle boot"],
}


def recipe_name(dataset: str) -> str:
    """``"mnist"`` -> ``"classifier-mnist"`` (and ``"fashion"`` -> ``"classifier-fashion"``)."""
    if dataset not in DATASETS:
        raise ValueError(f"no domain classifier for dataset {dataset!r}; expected one of {DATASETS}")
    return f"classifier-{dataset}"


def as_images(x: Tensor) -> Tensor:
    """Check and reshape images to float (N, 1, 28, 28); accepts (N, 28, 28) and uint8 0..255 too."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a tensor of images, got {type(x).__name__}")
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"expected images of shape (N, 1, 28, 28) or (N, 28, 28), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"expected float images in [0, 1] (or uint8), got {x.dtype}")
    if x.shape[0] and (not torch.isfinite(x).all()):
        raise ValueError("the images contain NaN or inf")
    return x.float()


class DomainClassifier(nn.Module):
    """Small CNN classifier; ``forward`` gives logits (B, 10), :meth:`features` the 128-d feature layer.

    Inputs are float images (B, 1, 28, 28) in [0, 1] ((B, 28, 28) is accepted);
    they are centred to [-1, 1] inside the network.
    """

    feature_layer = FEATURE_LAYER

    def __init__(self, c1: int = 8, c2: int = 32, c3: int = 64, hidden: int = 128, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(c3)
        self.fc1 = nn.Linear(c3 * 7 * 7, hidden)
        self.fc2 = nn.Linear(hidden, classes)
        self.num_features = hidden

    def features(self, x: Tensor) -> Tensor:
        """The feature layer: fc1 output after ReLU, shape (B, hidden=128)."""
        x = as_images(x) * 2 - 1
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)              # (B, 8, 14, 14)
        h = F.max_pool2d(F.relu(self.bn2(self.conv2(h))), 2)    # (B, 32, 7, 7)
        h = F.relu(self.bn3(self.conv3(h)))                     # (B, 64, 7, 7)
        return F.relu(self.fc1(h.flatten(1)))                   # (B, 128)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, 10)."""
        return self.fc2(self.features(x))

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 1000) -> Tensor:
        """Predicted class of each image, int64 (N,), computed in batches."""
        return torch.cat([self(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def accuracy(model: DomainClassifier, images: Tensor, labels: Tensor) -> tuple[float, list[float]]:
    """(overall accuracy, per-class accuracy list) of ``model`` on ``images`` (any device of the model)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    pred = model.predict(as_images(images).to(device)).cpu()
    model.train(was_training)
    correct = (pred == labels.cpu()).float()
    per_class = [float(correct[labels == c].mean()) for c in range(int(labels.max()) + 1)]
    return float(correct.mean()), per_class


# ---------------------------------------------------------------------------
# Recipes: `python -m gencourse train classifier-mnist` (or classifier-fashion)
# ---------------------------------------------------------------------------
def _build(cfg: dict) -> dict:
    torch.manual_seed(cfg["init_seed"])
    return {"model": DomainClassifier(cfg["c1"], cfg["c2"], cfg["c3"], cfg["hidden"])}


def _optimizers(modules: dict, cfg: dict) -> dict:
    return {"opt": adam(modules["model"].parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"], decoupled=True)}


def _data(cfg: dict, device, rank: int = 0, world_size: int = 1):
    images, labels = data.load(cfg["dataset"], "train")
    return recipes.batches(cfg, device, rank, world_size, images, labels,
                           transform=lambda x, y: (data.to_float(x), y), seed=cfg["data_seed"])


def lr_at(step: int, cfg: dict) -> float:
    """One-cycle learning rate at ``step``: linear warm-up over ``warmup`` of ``steps``, then cosine to 0."""
    total, peak = max(int(cfg["steps"]), 1), cfg["lr"]
    warm = max(int(cfg["warmup"] * total), 1)
    if step < warm:
        return peak * (step + 1) / warm
    t = min((step - warm) / max(total - warm, 1), 1.0)
    return peak * 0.5 * (1 + math.cos(math.pi * t))


def _step(modules: dict, opts: dict, cfg: dict):
    model, opt = modules["model"], opts["opt"]

    def step(batch, trainer):
        x, y = batch
        for group in opt.param_groups:  # the schedule is a function of the step, so resuming keeps it
            group["lr"] = lr_at(trainer.step, cfg)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        trainer.optimize(loss, opt)
        return {"loss": loss, "acc": (logits.argmax(1) == y).float().mean()}
    return step


def as_shipped(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every floating-point tensor rounded through float16, as the shipped file
    stores it (so the recorded accuracy is that of the shipped weights)."""
    copy_ = copy.deepcopy(model)
    copy_.load_state_dict({k: v.half().to(v.dtype) if v.is_floating_point() else v
                           for k, v in model.state_dict().items()})
    return copy_


def _evaluate(modules: dict, cfg: dict, device) -> dict:
    images, labels = data.load(cfg["dataset"], "test")
    acc, per_class = accuracy(as_shipped(modules["model"]), images, labels)
    return {"test_accuracy": round(acc, 4), "test_per_class_accuracy": [round(a, 4) for a in per_class],
            "feature_layer": FEATURE_LAYER}


_DEFAULTS = dict(c1=8, c2=32, c3=64, hidden=128, lr=3e-3, weight_decay=5e-4, warmup=0.15, batch_size=256,
                 steps=940, init_seed=0, data_seed=0)

for _ds in DATASETS:
    recipes.register(recipes.Recipe(
        name=recipe_name(_ds),
        description=f"domain classifier for {_ds} (feature space of the Chapter 7 metrics)",
        defaults=dict(_DEFAULTS, dataset=_ds),
        build=_build, optimizers=_optimizers, data=_data, step=_step, evaluate=_evaluate,
        datasets=(_ds,),
        notes={"feature_layer": FEATURE_LAYER},
    ))
