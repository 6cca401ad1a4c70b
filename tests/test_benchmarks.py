"""Smoke test of the benchmark command: it runs and prints its table (no timing assertions)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_command_prints_a_table():
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--families", "VAE", "--steps", "2",
                          "--warmup", "1", "--rounds", "1", "--device", "cpu"],
                         capture_output=True, text=True, timeout=300, env={"GENCOURSE_PROGRESS": "off",
                                                                          **__import__("os").environ})
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    assert "| family | model |" in out and "| VAE | vae-mnist |" in out
    row = next(line for line in out.splitlines() if line.startswith("| VAE"))
    assert row.rstrip().endswith("x |")  # a ratio was computed
