"""torchrun with 2 gloo ranks on the CPU: every registered recipe trains, the ranks agree, and the
deterministic recipes equal one process with the global batch (issue 20, items 1 and 5).

Every recipe runs 2 steps at :func:`gencourse.recipes.smoke_settings` sizes, all in one torchrun
launch (``tests/ddp_recipes.py``), so the module costs one launch of two processes.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gencourse import checkpoint, recipes

HERE = Path(__file__).resolve().parent
ARGS = ["--steps", "2", "--device", "cpu", "--no-eval", "--log-every", "1"]
#: modules whose state is each rank's own by design: the RBM's persistent Gibbs chains
PER_RANK = {("rbm-mnist", "chains")}
#: recipes whose two steps draw no random numbers: W ranks must equal one process to rounding.
#: classifier-mnist has batch norm (GlobalBatchNorm under torchrun); pix2pix has two optimizers
DETERMINISTIC = ["ae-fashion-2d", "ae-fashion-conv", "classifier-mnist", "pix2pix-edges-fashion"]


def _args(name):
    return [*ARGS, "--set", *(f"{k}={json.dumps(v)}" for k, v in recipes.smoke_settings(name).items())]


def _torchrun(script, *args, timeout=400):
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, GENCOURSE_PROGRESS="off", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={port}", str(HERE / script), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    spec = out / "spec.json"
    spec.write_text(json.dumps([[name, _args(name)] for name in recipes.course_names()]))
    proc = _torchrun("ddp_recipes.py", spec, out)
    return proc, out


@pytest.mark.slow
def test_every_recipe_trains_under_torchrun(ddp_runs):
    proc, out = ddp_runs
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in recipes.course_names():
        assert (out / name / "rank0.pt").is_file() and (out / name / "rank1.pt").is_file(), name
        assert (out / name / "run" / f"{name}.pt").is_file(), name  # rank 0 wrote the checkpoint
        assert not (out / name / "run" / "rank1").exists()
    assert proc.stdout.count("done:") == len(recipes.course_names())  # only rank 0 reports
    assert "global batch 16 = 2 x 8" in proc.stdout


@pytest.mark.slow
def test_ranks_end_with_identical_weights(ddp_runs):
    """Averaged gradients and global batch statistics: both ranks hold the same weights and
    batch-norm buffers after two steps, although their batches and random draws differ (a rank
    that did not average would diverge at the first step)."""
    proc, out = ddp_runs
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in recipes.course_names():
        a, b = torch.load(out / name / "rank0.pt"), torch.load(out / name / "rank1.pt")
        for module in a:
            if (name, module) in PER_RANK:
                continue
            for key in a[module]:
                assert torch.equal(a[module][key], b[module][key]), (name, module, key)
    a, b = torch.load(out / "rbm-mnist" / "rank0.pt"), torch.load(out / "rbm-mnist" / "rank1.pt")
    assert not torch.equal(a["chains"]["v"], b["chains"]["v"])  # each rank's own chains


@pytest.mark.slow
@pytest.mark.parametrize("name", DETERMINISTIC)
def test_two_ranks_equal_one_process_with_the_global_batch(ddp_runs, name, tmp_path, monkeypatch):
    proc, out = ddp_runs
    assert proc.returncode == 0, proc.stderr[-3000:]
    from gencourse.__main__ import main

    monkeypatch.setenv("GENCOURSE_PROGRESS", "off")
    assert main(["train", name, "--out", str(tmp_path / "one"), *_args(name)]) == 0
    one = checkpoint.load(tmp_path / "one" / "state.pt").state["modules"]
    two = torch.load(out / name / "rank0.pt")
    assert set(one) == set(two)
    moved = 0.0
    for module in one:
        assert set(one[module]) == set(two[module])  # same keys: GlobalBatchNorm saves as BatchNorm
        for key, want in one[module].items():
            got, want = two[module][key].double(), want.double()
            # Adam divides each gradient by its running RMS + eps (1e-8): where a step's gradient is itself
            # of order eps, the last-bit difference between one batch of 16 and two averaged halves of 8
            # moves the update by up to lr * (rounding) / eps. Seen on an AVX-512 CPU: one weight of 25,088,
            # 7.7e-6 apart. A wrong reduction (unaveraged, or a rank's own batch) moves weights by ~lr = 1e-3.
            close = torch.isclose(got, want, rtol=1e-5, atol=1e-6)
            assert float((got - want).abs().max()) < 3e-5, (module, key)
            assert int((~close).sum()) <= max(1, close.numel() // 1000), (module, key, int((~close).sum()))
    # the check has teeth: two steps moved the weights far more than the tolerance
    first = recipes.get(name).build(recipes.get(name).config(**recipes.smoke_settings(name)))
    for module, m in first.items():
        for key, t in m.state_dict().items():
            if t.is_floating_point():
                moved = max(moved, float((t - one[module][key].float()).abs().max()))
    assert moved > 1e-4


@pytest.mark.slow
def test_distributed_pieces_against_one_process_in_float64():
    """GlobalBatchNorm (outputs, input and parameter gradients, running statistics), the WGAN-GP
    critic gradient with its double backward, broadcast and gradients left None: 2 ranks on
    halves == one process on the whole batch, to 1e-10 in float64 (tests/ddp_checks.py)."""
    proc = _torchrun("ddp_checks.py", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for check in ("check_batchnorm", "check_gradient_penalty", "check_broadcast_and_missing_grads"):
        assert f"ok {check}" in proc.stdout


@pytest.mark.slow
def test_torchrun_cli_evaluates_on_rank_zero_after_leaving_the_group(tmp_path):
    """`torchrun -m gencourse train` with the evaluation: rank 0 evaluates after the other ranks have
    left, outside the process group (torchmetrics inside a live group tried to gather from the
    departed rank: "Connection closed by peer")."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    name = "dcgan-mnist"
    args = [a for a in _args(name) if a != "--no-eval"]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={port}", "-m", "gencourse", "train", name, "--out", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, GENCOURSE_PROGRESS="off", OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and "fid" in metrics and metrics["steps"] == 2
