"""The prepared GPU check (``benchmarks/gpu_check.py``) walked on the CPU with ``--dry-run``, so the
script cannot rot while no GPU runs it: every recipe trains in fp16 (with the gradient scaler) and
bf16, every sampler runs, the benchmark, FULL-time and notebook sections are filled."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gencourse import recipes

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_dry_run_walks_every_item(tmp_path):
    out = tmp_path / "report.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "GENCOURSE_PROGRESS": "off"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ")]
    for name in recipes.course_names():
        for amp in ("fp16", "bf16"):
            row = next((r for r in rows if r[0] == f"| {name}" and r[1] == amp), None)
            assert row is not None and row[3] == "yes", (name, amp, row)  # trained, finite losses
        if recipes.get(name).sample is not None:
            row = next((r for r in rows if r[0] == f"| {name}" and r[1] == "cpu"), None)
            assert row is not None and row[2] == "yes", (name, row)  # sampler: shape, range, reproducible
    for heading in ("**Host syncs per training step**", "**Benchmark, GPU columns**",
                    "**FULL-mode training time, estimated**", "**Notebooks**"):
        assert heading in text
    for family in ("VAE", "RBM", "DCGAN", "CycleGAN", "DDPM U-Net"):
        assert any(r[0] == f"| {family}" and "error" not in " ".join(r) for r in rows), family
    assert "error" not in text
    assert sum(1 for r in rows if r[0].endswith(".ipynb")) == len(list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
