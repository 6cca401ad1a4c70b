"""Every shipped checkpoint is real, verifiable and reproducible, and every model a notebook loads is shipped."""
import hashlib
import json
import re
from pathlib import Path

import pytest

from gencourse import checkpoint, recipes

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(recipes.WEIGHTS_DIR.glob("*.pt"))


def test_there_are_shipped_weights():
    assert len(SHIPPED) >= 20, [p.name for p in SHIPPED]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_checkpoint_is_verified_and_says_how_it_was_made(path):
    side = json.loads(path.with_name(path.name + ".json").read_text())
    ck = checkpoint.load(path)  # weights_only; the SHA-256 of the tensors is checked against the stored one
    assert side["tensors_sha256"] == ck.meta["tensors_sha256"]
    assert side["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), "sidecar and file disagree"
    assert "FAKE" not in json.dumps(side), f"{path.name} holds placeholder values"
    assert side.get("command") and "gencourse" in side["command"], f"{path.name}: no reproducing command"
    m = side["metrics"]
    assert m.get("hardware") or m.get("device"), f"{path.name}: no record of the hardware"
    assert path.stat().st_size < 5_000_000, "shipped weights stay small (float16)"


def _names_loaded_by_notebooks():
    names = set()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = nb.read_text()
        names |= set(re.findall(r'load_pretrained\(\\"([a-z0-9.-]+)\\"', text))
        names |= set(re.findall(r'load_ema\(\\"([a-z0-9.-]+)\\"', text))
    return names


def test_every_model_a_notebook_loads_is_shipped():
    names = _names_loaded_by_notebooks() | {"dcgan-mnist", "dcgan-fashion", "cgan-mnist", "cgan-fashion",
                                            "wgan-gp-mnist", "pix2pix-edges-fashion", "pix2pix-edges-fashion-l1",
                                            "cyclegan-mnist", "cyclegan-mnist-nocycle", "ddpm-mnist"}
    assert len(names) > 12
    missing = sorted(n for n in names if not recipes.weights_path(n).is_file())
    assert not missing, f"not shipped: {missing}"
    extra = [f"{n}-seed{s}" for n in ("cyclegan-mnist", "cyclegan-mnist-nocycle") for s in (1, 2)]
    assert all((recipes.WEIGHTS_DIR / f"{e}.pt").is_file() for e in extra), extra
