import random

import numpy as np
import pytest
import torch

import gencourse as gc
from gencourse import utils


def test_seed_everything_makes_all_generators_repeat():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    g1 = gc.seed_everything(7)
    a = draw() + (float(torch.rand(1, generator=g1)),)
    g2 = gc.seed_everything(7)
    b = draw() + (float(torch.rand(1, generator=g2)),)
    assert a == b
    gc.seed_everything(8)
    assert draw() != a[:3]


def test_seed_rejects_negative():
    with pytest.raises(ValueError, match="non-negative"):
        gc.seed_everything(-1)


def test_get_device_auto_and_explicit():
    dev = gc.get_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else dev.type)
    assert gc.get_device("cpu") == torch.device("cpu")
    assert gc.get_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised on a machine without CUDA")
def test_get_device_cuda_without_gpu_says_how_to_fix():
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        gc.get_device("cuda")


def test_run_mode_from_env(monkeypatch):
    monkeypatch.setenv("GENCOURSE_MODE", "FULL")
    assert gc.run_mode() == "full"
    monkeypatch.setenv("GENCOURSE_MODE", "fast")
    assert gc.run_mode() == "fast"
    monkeypatch.setenv("GENCOURSE_MODE", "medium")
    with pytest.raises(ValueError, match="fast.*full"):
        gc.run_mode()
    monkeypatch.delenv("GENCOURSE_MODE")
    assert gc.run_mode() == ("full" if torch.cuda.is_available() else "fast")


def test_budget_picks_mode_and_checks_keys(monkeypatch):
    monkeypatch.setenv("GENCOURSE_MODE", "fast")
    b = gc.budget(fast=dict(steps=10, n=5), full=dict(steps=1000, n=500))
    assert (b.steps, b["n"], b.mode, b.fast) == (10, 5, "fast", True)
    assert dict(b) == {"steps": 10, "n": 5}
    assert gc.budget(fast=dict(steps=1), full=dict(steps=2), mode="full").steps == 2
    with pytest.raises(AttributeError, match="has no setting 'epochs'"):
        b.epochs
    with pytest.raises(ValueError, match="only in full: \\['lr'\\]"):
        gc.budget(fast=dict(steps=1), full=dict(steps=2, lr=0.1))


def test_setup_prints_device_and_mode(capsys, monkeypatch):
    monkeypatch.setenv("GENCOURSE_MODE", "fast")
    dev = utils.setup(seed=3)
    out = capsys.readouterr().out
    assert "mode: FAST" in out and "seed: 3" in out and isinstance(dev, torch.device)


def test_import_has_no_side_effects():
    import subprocess
    import sys

    code = "import gencourse, gencourse.data, gencourse.train, gencourse.viz, gencourse.checkpoint"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout == "" and res.stderr == ""


def test_random_draws_follow_the_generator_rule():
    """Noise is drawn with the generator on the generator's own device, then moved: the same draws
    as torch's on that device, whatever the target device ("meta" stands in for a second device
    here; on a GPU the check in benchmarks/gpu_check.py calls every sampler with both generators)."""
    import torch

    from gencourse import utils

    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    ref = torch.randn(4, 5, generator=g())
    assert torch.equal(utils.randn((4, 5), generator=g()), ref)
    moved = utils.randn((4, 5), generator=g(), device="meta")
    assert moved.device.type == "meta" and moved.shape == (4, 5)
    assert torch.equal(utils.rand((3,), generator=g(), dtype=torch.float64), torch.rand(3, generator=g(), dtype=torch.float64))
    p = torch.rand(100, generator=g())
    assert torch.equal(utils.bernoulli(p, generator=g()), torch.bernoulli(p, generator=g()))
    assert utils.randn((2,), device="cpu").device.type == "cpu"  # no generator: the device's global RNG
    before = torch.backends.cudnn.benchmark
    utils.configure_device("cpu")  # nothing changes on the CPU
    assert torch.backends.cudnn.benchmark == before


def test_one_thread_sets_one_intra_op_thread_and_restores_the_count_even_after_an_error():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="inside"):
            with utils.one_thread():
                assert torch.get_num_threads() == 1
                raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _toy_jobs():
    import functools

    from gencourse import gan

    return {"sweep": functools.partial(gan.train_toy_sweep, {"slow D": dict(lr_d=5e-4), "2 D steps": dict(d_steps=2)},
                                       [0, 1], 60, snapshot_every=30),
            "wgan": functools.partial(gan.train_toy_gan, [0], 30, loss="wgan-gp", d_steps=5),
            "wide": functools.partial(gan.train_toy_gan, [0, 1], 60, d_hidden=[48, 48])}


def test_run_parallel_gives_in_worker_processes_what_the_calls_give_here_one_after_another():
    jobs = _toy_jobs()
    here = {}
    for name, job in jobs.items():            # the reference: each call right after torch.manual_seed(0), here
        torch.manual_seed(0)
        here[name] = job()
    par = utils.run_parallel(jobs, seed=0, workers=2)
    assert list(par) == list(jobs)
    for name in ("slow D", "2 D steps"):
        a, b = here["sweep"][name], par["sweep"][name]
        assert torch.equal(a.samples, b.samples) and a.covered == b.covered
        assert all(torch.equal(x, y) for (_, x), (_, y) in zip(a.snapshots, b.snapshots))
    for name in ("wgan", "wide"):
        assert torch.equal(here[name].samples, par[name].samples)
        assert here[name].history["d_loss"] == par[name].history["d_loss"]
    other = utils.run_parallel({"wide": jobs["wide"]}, seed=1, workers=1)["wide"]   # another seed, other draws
    assert not torch.equal(other.samples, here["wide"].samples)


def test_run_parallel_uses_other_processes_and_raises_a_jobs_error_here():
    import functools
    import os

    pids = utils.run_parallel({"a": os.getpid, "b": os.getpid}, workers=2)
    assert os.getpid() not in pids.values()
    assert utils.run_parallel({"a": os.getpid}, workers=1) == {"a": os.getpid()}
    with pytest.raises(ValueError, match="invalid literal"):
        utils.run_parallel({"fine": os.getpid, "bad": functools.partial(int, "x")}, workers=2)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        utils.run_parallel({"a": os.getpid}, workers=0)
    assert utils.parallel_workers(1) == 1 and utils.parallel_workers(100) <= len(os.sched_getaffinity(0))
