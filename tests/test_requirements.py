"""requirements.txt (what a student installs) and pyproject.toml (what pip installs with the
package) must state the same lower bounds for the packages they share, so neither can drift below
what the code needs (torch 2.4: ``is_bf16_supported(including_emulation=False)``, fused CPU Adam)."""
import re
import tomllib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SPEC = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9.]*)")


def _floors(lines):
    out = {}
    for line in lines:
        m = SPEC.match(line.split("#", 1)[0])
        if m:
            out[m.group(1).lower()] = tuple(int(x) for x in m.group(2).split("."))
    return out


def test_requirements_and_pyproject_share_floors():
    req = _floors((ROOT / "requirements.txt").read_text().splitlines())
    pyp = _floors(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    shared = sorted(set(req) & set(pyp))
    assert {"torch", "torchvision", "numpy", "scipy"} <= set(shared)
    assert {k: req[k] for k in shared} == {k: pyp[k] for k in shared}


def test_installed_torch_meets_the_floor():
    floor = _floors(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])["torch"]
    assert floor >= (2, 4)
    have = tuple(int(x) for x in re.match(r"(\d+)\.(\d+)", torch.__version__).groups())
    assert have >= floor[:2]
    # the calls the floor exists for
    assert "including_emulation" in torch.cuda.is_bf16_supported.__code__.co_varnames
    torch.amp.GradScaler("cpu")
