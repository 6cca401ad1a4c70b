"""Training recipes: one definition of each model the course trains, shared by the
notebooks, the command line (``python -m gencourse train NAME``) and the shipped
checkpoints.

A :class:`Recipe` names the pieces a training run needs, each a function of a
plain ``config`` dict (so a checkpoint's config rebuilds the same model):

* ``build(config) -> {name: module}``
* ``optimizers(modules, config) -> {name: optimizer}``
* ``data(config, device, rank, world_size) -> iterable or callable`` of batches
* ``step(modules, optimizers, config) -> step(batch, trainer) -> dict``
* ``evaluate(modules, config, device) -> {metric: number}`` (optional)
* ``sample(modules, config, n, device, generator) -> images`` (optional): float
  images in [0, 1] of shape (n, 1, 28, 28) (labels too for class-conditional
  models: ``(images, labels)``), used by the evaluation chapter's leaderboard

Model modules register their recipes at import time; :func:`get` imports the
module that owns a name on demand, so ``import gencourse`` stays cheap.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

__all__ = ["Recipe", "register", "get", "names", "build_trainer", "batches", "smoke_settings", "weights_path",
           "load_pretrained", "save_pretrained", "shipped_meta", "WEIGHTS_DIR"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "assets" / "weights"

#: recipe name -> module that registers it (imported lazily by :func:`get`); one line per recipe
_OWNERS: dict[str, str] = {
    "rbm-mnist": "gencourse.rbm.recipes",
    "classifier-mnist": "gencourse.classifiers",
    "classifier-fashion": "gencourse.classifiers",
    "ae-fashion-2d": "gencourse.autoencoder",
    "ae-fashion-conv": "gencourse.autoencoder",
    "vae-mnist": "gencourse.vae_recipes",
    "vae-fashion-2d": "gencourse.vae_recipes",
    "ddpm-mnist": "gencourse.diffusion.recipes",
    "fm-mnist": "gencourse.flow.recipes",
    "fm-mnist-class-ot-2k": "gencourse.flow.recipes",
    "fm-mnist-indep-2k": "gencourse.flow.recipes",
    "dcgan-mnist": "gencourse.gan.recipes",
    "dcgan-fashion": "gencourse.gan.recipes",
    "cgan-mnist": "gencourse.gan.recipes",
    "cgan-fashion": "gencourse.gan.recipes",
    "wgan-gp-mnist": "gencourse.gan.recipes",
    "pix2pix-edges-fashion": "gencourse.img2img.recipes",
    "pix2pix-edges-fashion-l1": "gencourse.img2img.recipes",
    "cyclegan-mnist": "gencourse.img2img.recipes",
    "cyclegan-mnist-nocycle": "gencourse.img2img.recipes",
}
_RECIPES: dict[str, "Recipe"] = {}

#: Settings every recipe accepts (``--set grad_clip=1.0``), with their defaults; ``None`` means off.
#: ``grad_clip`` is the Trainer's gradient-norm clipping (:meth:`gencourse.train.Trainer.optimize`).
COMMON_SETTINGS: dict[str, Any] = {"grad_clip": None}


def resume_changeable(key: str) -> bool:
    """Whether a resumed run may change setting ``key`` when asked to (learning rates and ``grad_clip``)."""
    return key in COMMON_SETTINGS or key == "lr" or key.startswith("lr_") or key.endswith("_lr")


@dataclass
class Recipe:
    name: str
    description: str
    defaults: dict
    build: Callable[[dict], dict]
    optimizers: Callable[[dict, dict], dict]
    data: Callable[..., Any]
    step: Callable[[dict, dict, dict], Callable]
    evaluate: Callable[..., dict] | None = None
    sample: Callable[..., Any] | None = None
    datasets: tuple = ()  # datasets the recipe accepts for config["dataset"]
    notes: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.sample is not None and not getattr(self.sample, "_under_inference", False):
            self.sample = _under_inference(self.sample)

    def config(self, **overrides) -> dict:
        """The default config updated with ``overrides``.

        Unknown keys are an error; so is a value of the wrong type (the default's) or outside the
        setting's range (:data:`gencourse.validate.SETTING_RANGES`), with a one-line message naming
        the setting.  The :data:`COMMON_SETTINGS` (e.g. ``grad_clip``) are accepted by every recipe and
        appear in the config only when set.
        """
        from . import validate

        unknown = sorted(set(overrides) - set(self.defaults) - set(COMMON_SETTINGS))
        if unknown:
            raise ValueError(f"recipe {self.name!r} has no setting(s) {unknown}; it has "
                             f"{sorted(set(self.defaults) | set(COMMON_SETTINGS))}")
        checked = {}
        for k, v in overrides.items():
            default = self.defaults[k] if k in self.defaults else COMMON_SETTINGS[k]
            checked[k] = validate.setting(k, v, default, where=f"recipe {self.name!r}: setting")
        cfg = dict(self.defaults, **checked)
        for k in COMMON_SETTINGS:
            if cfg.get(k, None) is None:
                cfg.pop(k, None)  # an unset common setting is not recorded (old configs stay as they were)
        if self.datasets and cfg.get("dataset") not in self.datasets:
            raise ValueError(f"recipe {self.name!r} trains on {list(self.datasets)}, not {cfg.get('dataset')!r}")
        return cfg


def _under_inference(sample: Callable) -> Callable:
    """``sample(modules, cfg, n, device, generator)`` with its forwards under
    :func:`gencourse.train.amp.inference` (bf16 / fp16 on CUDA, float32 on the CPU) and its floating
    outputs returned in float32: the one rule for every recipe's sampler."""
    import functools

    from .train.amp import inference

    @functools.wraps(sample)
    def wrapped(modules, cfg, n, device, generator=None, *args, **kwargs):
        with inference(device):
            out = sample(modules, cfg, n, device, generator, *args, **kwargs)
        as32 = lambda t: t.float() if torch.is_tensor(t) and t.is_floating_point() else t  # noqa: E731
        return tuple(as32(t) for t in out) if isinstance(out, tuple) else as32(out)

    wrapped._under_inference = True
    return wrapped


def register(recipe: Recipe) -> Recipe:
    _RECIPES[recipe.name] = recipe
    return recipe


def declare(name: str, module: str) -> None:
    """Record that ``module`` (e.g. ``"gencourse.vae"``) registers recipe ``name``."""
    _OWNERS[name] = module


PLUGINS_ENV = "GENCOURSE_PLUGINS"  # extra modules that register recipes, comma-separated


def _load_plugins() -> None:
    for mod in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        importlib.import_module(mod)


def names() -> list[str]:
    """Every known recipe name (imports the modules that define them, and ``$GENCOURSE_PLUGINS``)."""
    for module in sorted(set(_OWNERS.values())):
        importlib.import_module(module)
    _load_plugins()
    return sorted(_RECIPES)


def course_names() -> list[str]:
    """The recipes of the course's own modules (what ``python -m gencourse models`` lists in a fresh
    process without ``$GENCOURSE_PLUGINS``): recipes registered at run time, e.g. by a test, are left out."""
    names()
    return sorted(n for n in _RECIPES if n in _OWNERS)


def get(name: str) -> Recipe:
    if name not in _RECIPES:
        _load_plugins()
    if name not in _RECIPES and name in _OWNERS:
        importlib.import_module(_OWNERS[name])
    if name not in _RECIPES:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(names()) or 'none'}")
    return _RECIPES[name]


def one_adam(modules: Mapping[str, nn.Module], cfg: Mapping[str, Any]) -> dict:
    """``{"opt": Adam}`` over ``modules["model"]`` with ``cfg["lr"]``: the optimizer of every one-network recipe."""
    from .train import adam

    return {"opt": adam(modules["model"].parameters(), lr=cfg["lr"])}


def train_images(cfg: Mapping[str, Any]) -> torch.Tensor:
    """The uint8 training images of ``cfg["dataset"]``, the first ``cfg["n_train"]`` of them if that is set."""
    from . import data

    from . import validate

    images, _ = data.load(cfg["dataset"], "train")
    validate.integer(cfg["n_train"], "setting 'n_train'", lo=0, hi=len(images),
                     fix=f"at most the {len(images)} training images; 0 means all of them")
    return images[: cfg["n_train"]] if cfg["n_train"] else images


def batches(cfg: Mapping[str, Any], device, rank: int, world_size: int, *tensors, transform=None,
            seed: int | None = None):
    """A recipe's training batches: a :class:`~gencourse.data.BatchIterator` over ``tensors`` on ``device``.

    ``cfg["batch_size"]`` is the *global* batch: each of the ``world_size`` ranks
    gets ``batch_size // world_size`` rows of every step's global batch, so any
    number of processes sees what one process sees.  Shuffling is seeded by
    ``seed`` (default ``cfg["init_seed"]``, else 0).
    """
    from .data import BatchIterator

    if cfg["batch_size"] % world_size:
        raise ValueError(f"batch_size {cfg['batch_size']} is not divisible by the {world_size} processes")
    seed = cfg.get("init_seed", 0) if seed is None else seed
    return BatchIterator(*tensors, batch_size=cfg["batch_size"] // world_size, device=device, transform=transform,
                         seed=seed, rank=rank, world_size=world_size)


def build_trainer(name: str, config: Mapping[str, Any] | None = None, *, device: torch.device | str = "cpu",
                  rank: int = 0, world_size: int = 1, **trainer_kw):
    """Modules, optimizers, data and a :class:`~gencourse.train.Trainer` for recipe ``name``.

    With ``world_size > 1`` (under ``torchrun``, the process group initialised) batch norm
    layers become :class:`~gencourse.train.distributed.GlobalBatchNorm` (statistics of the
    global batch) and the Trainer averages gradients over the ranks; the step function
    uses the plain modules either way.  Returns ``(trainer, modules, config)``.
    """
    from .train import Trainer
    from .train.distributed import convert_batchnorm

    recipe = get(name)
    cfg = recipe.config(**dict(config or {}))
    device = torch.device(device)
    modules = {k: m.to(device) for k, m in recipe.build(cfg).items()}
    if world_size > 1:
        modules = {k: convert_batchnorm(m) for k, m in modules.items()}
    opts = recipe.optimizers(modules, cfg)
    batches = recipe.data(cfg, device, rank, world_size)
    trainer_kw.setdefault("grad_clip", cfg.get("grad_clip"))
    trainer = Trainer(recipe.step(modules, opts, cfg), batches, modules=modules, optimizers=opts,
                      device=device, desc=name, **trainer_kw)
    return trainer, modules, cfg


#: tiny sizes for smoke runs, by setting name (a list value: one entry per layer)
_SMOKE = {"n_train": 256, "batch_size": 16, "hidden": [32, 16], "channels": [4, 8], "channel_mults": [1, 2],
          "width": 8, "d_width": 8, "max_width": 8, "c1": 4, "c2": 8, "c3": 8, "n_hidden": 16, "n_chains": 8,
          "eval_samples": 64, "eval_n": 64, "n_test": 64, "ais_chains": 4, "ais_betas": 20, "eval_k": 4,
          "sample_steps": 2, "buffer": 4}


def smoke_settings(name: str) -> dict:
    """Overrides that make recipe ``name`` tiny (a few hundred images, a few channels a layer) for
    smoke runs: the test suite's torchrun and fp16 runs and the GPU check's ``--dry-run``.  Only
    sizes change, never the code path (losses, couplings, norms and schedules stay)."""
    defaults = get(name).defaults
    out = {}
    for key, value in _SMOKE.items():
        if key not in defaults:
            continue
        if isinstance(defaults[key], list) != isinstance(value, list):  # e.g. a U-Net's int channel count
            value = value[-1] if isinstance(value, list) else [value]
        out[key] = value
    return out


def weights_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.pt"


def save_pretrained(name: str, modules: Mapping[str, nn.Module], config: Mapping, *, metrics: Mapping | None = None,
                    command: str | None = None, path: Path | None = None) -> Path:
    """Write shipped weights (float16, with config, metrics and the reproducing command)."""
    from . import checkpoint

    path = Path(path) if path is not None else weights_path(name)
    checkpoint.save(path, dict(modules), config=dict(config, recipe=name), metrics=metrics, command=command, half=True)
    return path


def shipped_meta(name: str) -> dict:
    """The ``.json`` sidecar of the shipped checkpoint ``name`` (config, metrics, command, checksums),
    or ``{}`` if none is shipped."""
    import json

    side = Path(str(weights_path(name)) + ".json")
    return json.loads(side.read_text()) if side.is_file() else {}


def load_pretrained(name: str, device: torch.device | str = "cpu", *, path: Path | None = None,
                    dataset: str | None = None, transfer: bool = False) -> tuple[dict, Any]:
    """Rebuild recipe ``name`` from its shipped checkpoint (or the file ``path``); returns ``(modules, checkpoint)``.

    The modules are in eval mode on ``device``; ``checkpoint.metrics`` holds the
    numbers measured when the file was made, ``checkpoint.meta["command"]`` how.

    The file must have been written for recipe ``name`` and trained on ``dataset`` (default: the
    recipe's default dataset for the shipped file, any dataset for an explicit ``path``); anything
    else is an error unless ``transfer=True`` (deliberately loading another recipe's weights into
    this recipe's architecture, built from the file's config).
    """
    from . import checkpoint

    explicit = path
    path = Path(path) if path is not None else weights_path(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"no shipped weights for {name!r} at {path}. Train them with "
            f"`python -m gencourse train {name} --out {path.parent}` or run the notebook in FULL mode."
        )
    ck = checkpoint.load(path, map_location="cpu")
    cfg = {k: v for k, v in ck.config.items() if k != "recipe"}  # the config builds the right architecture
    recipe = get(name)
    saved_recipe, saved_data = ck.config.get("recipe"), ck.config.get("dataset")
    want_data = dataset if dataset is not None else (recipe.defaults.get("dataset") if explicit is None else None)
    if not transfer and saved_recipe is not None and saved_recipe != name:
        raise ValueError(f"load_pretrained: expected weights of recipe {name!r}, got {path.name} which was saved by "
                         f"recipe {saved_recipe!r} (dataset {saved_data!r}); fix: "
                         f"load_pretrained({saved_recipe!r}, path=...), or transfer=True to load it into "
                         f"{name!r} deliberately")
    if not transfer and want_data is not None and saved_data is not None and saved_data != want_data:
        raise ValueError(f"load_pretrained: expected weights trained on {want_data!r}, got {path.name} trained on "
                         f"{saved_data!r}; fix: pass dataset={saved_data!r} if that is the model you want, or "
                         "transfer=True")
    if transfer:
        cfg = {k: v for k, v in cfg.items() if k in recipe.defaults or k in COMMON_SETTINGS}
    modules = recipe.build(recipe.config(**cfg))
    ck.load_into(modules)
    for m in modules.values():
        m.to(device).eval()
    return modules, ck
