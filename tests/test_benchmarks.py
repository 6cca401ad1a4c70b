"""Smoke test of the benchmark command: every model family runs through both loops and the table is printed
(no timing assertions)."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ["VAE", "RBM", "DCGAN", "CycleGAN", "DDPM U-Net"]


def test_benchmark_command_prints_a_table():
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--steps", "2",
                          "--warmup", "1", "--rounds", "1", "--device", "cpu", "--targets"],
                         capture_output=True, text=True, timeout=900,
                         env={**os.environ, "GENCOURSE_PROGRESS": "off", "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    assert "| family | model |" in out
    for family in FAMILIES:
        row = next((line for line in out.splitlines() if line.startswith(f"| {family} |")), None)
        assert row is not None, f"no row for {family}:\n{out}"
        assert row.rstrip().endswith("x |")  # a ratio was computed
    # the quality targets, read from the shipped checkpoints' own metrics
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import run

    from gencourse import recipes

    for chapter, name, target, read, ok in run.TARGETS:
        row = next((line for line in out.splitlines() if line.startswith(f"| {chapter} | {name} | {target} |")), None)
        assert row is not None, f"no target row for {name}: {target}"
        value, _ = read(recipes.shipped_meta(name)["metrics"])
        assert row.split(" | ")[4] == ("yes" if ok(value) else "**no**")
