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


def test_dense_peaks_by_device_and_dtype():
    """A T4 has fp16 tensor cores (65 TFLOP/s dense) and no bf16 peak; an L40S is not an L4."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import run

    assert run.dense_peak_tflops("Tesla T4", torch.float16) == 65.0
    assert run.dense_peak_tflops("Tesla T4", torch.bfloat16) is None
    assert run.dense_peak_tflops("NVIDIA L4", torch.bfloat16) == 121.0
    assert run.dense_peak_tflops("NVIDIA L40S", torch.float16) == 362.0
    assert run.dense_peak_tflops("NVIDIA H100 PCIe", torch.float16) == 756.0
    assert run.dense_peak_tflops("NVIDIA H100 80GB HBM3", torch.bfloat16) == 989.0
    assert run.dense_peak_tflops("NVIDIA A100-SXM4-80GB", None) is None  # fp32: no tensor-core figure


def test_flop_counted_step_then_fit_under_fp16():
    """The efficiency columns count one step's FLOPs and then call fit; under fp16 (every T4) that
    raised "No inf checks were recorded" / "step() has already been called" when the Trainer
    updated the scaler once per step. The fp16 CPU path runs the same code."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import run

    from gencourse import recipes

    cfg = recipes.get("dcgan-mnist").config(**recipes.smoke_settings("dcgan-mnist"))
    import torch

    out = run._gpu_efficiency("dcgan-mnist", cfg, torch.device("cpu"), 2, 1, amp="fp16", modes=("eager",))
    assert out["amp"] == "float16" and out["tflops_eager"] > 0 and "peak_frac_eager" not in out


def test_gan_curve_scores_the_state_as_the_run_scored_its_weights(tmp_path, monkeypatch):
    """benchmarks/gan_curve.py scores a run's state.pt with the recipe's own evaluation: at the run's last
    step it must give the FID the run itself recorded in its sidecar (same generator, same seed); and
    gan_trials.py stores that curve and the logged losses with the run."""
    import json

    from gencourse import checkpoint, recipes
    from gencourse.__main__ import main

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gan_curve
    import gan_trials

    monkeypatch.setenv("GENCOURSE_PROGRESS", "off")
    out = tmp_path / "run"
    settings = [f"{k}={json.dumps(v)}" for k, v in dict(recipes.smoke_settings("wgan-gp-mnist"), eval_samples=64).items()]
    assert main(["train", "wgan-gp-mnist", "--steps", "4", "--log-every", "2", "--out", str(out),
                 "--set", *settings]) == 0
    sidecar = json.loads((out / "wgan-gp-mnist.pt.json").read_text())["metrics"]
    assert gan_curve.main([str(out), "wgan-gp-mnist", "4", "--poll", "0"]) == 0
    (point,) = [json.loads(line) for line in (tmp_path / "run.curve.jsonl").read_text().splitlines()]
    assert point["step"] == 4 and point["generator_updates"] == 4 // recipes.get("wgan-gp-mnist").defaults["d_steps"]
    assert point["fid"] == sidecar["fid"] and point["precision"] == sidecar["precision"]
    row = gan_trials.row(out)
    state = checkpoint.load(out / "state.pt").state["history"]
    assert row["history"]["steps"] == state["steps"] == [2, 4]
    assert row["history"]["d_loss"] == [round(v, 4) for v in state["values"]["d_loss"]] and "gp" in row["history"]
    assert row["curve"] == [point]
