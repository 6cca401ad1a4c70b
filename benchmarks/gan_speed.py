"""Two speed levers of Chapter 4's FAST mode, each measured side by side in one run (ratios, not timings
to compare across machines).

1. The ring of Gaussians: the chapter's five toy jobs (the vectorised sweep of seven configurations, the
   wide-discriminator run and the three runs of other sizes, batch or loss; 3 seeds, 3000 steps) one after
   another in this process, then with ``gencourse.utils.run_parallel`` (one forked process per core, one
   torch thread each).  The results are checked to be identical.
2. The generator's update with the discriminator frozen (``gan.training.frozen``: no weight gradients for
   D) against the same update with D's weight gradients computed, alternating rounds of the ``dcgan-mnist``
   recipe's step (and of a toy ring job); the generators' weights are checked to be identical.

    python benchmarks/gan_speed.py [--steps 3000] [--record]
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import gencourse as gc  # noqa: E402
from gencourse import gan, recipes, utils  # noqa: E402
from gencourse.gan import toy, training  # noqa: E402
from run import record  # noqa: E402  (benchmarks/run.py)


def ring_jobs(steps: int, seeds=(0, 1, 2)) -> dict:
    """The jobs of Chapter 4's first ring cell, longest first."""
    lr = gan.TOY_DEFAULTS["lr_g"]
    base = dict(lr_d=lr / 4)
    together = {"plain": base, "balanced": dict(base, lr_d=lr), "4 D steps": dict(base, d_steps=4),
                "smoothing": dict(base, real_smoothing=0.2), "flips": dict(base, flip=0.05),
                "noisy labels": dict(base, label_noise=0.2), "dropout": dict(base, dropout=0.3)}
    seeds = list(seeds)
    return {"sweep": functools.partial(gan.train_toy_sweep, together, seeds, steps, snapshot_every=100),
            "wide D": functools.partial(gan.train_toy_gan, seeds, steps, snapshot_every=100, d_hidden=[128, 128],
                                        lr_g=lr / 4),
            "batch x4": functools.partial(gan.train_toy_gan, seeds, steps, batch_size=256, lr_g=lr / 2, lr_d=lr / 8),
            "WGAN-GP": functools.partial(gan.train_toy_gan, seeds, steps, loss="wgan-gp", d_steps=5, lr_d=lr / 4,
                                         snapshot_every=500),
            "fewer units": functools.partial(gan.train_toy_gan, seeds, steps, d_hidden=[16, 16], lr_d=lr / 4)}


def _samples(result) -> list:
    runs = result.values() if isinstance(result, dict) else [result]
    return [r.samples for r in runs]


def bench_ring(steps: int) -> dict:
    jobs = ring_jobs(steps)
    t0 = time.perf_counter()
    one = utils.run_parallel(jobs, workers=1)
    t1 = time.perf_counter()
    par = utils.run_parallel(jobs)
    t2 = time.perf_counter()
    same = all(torch.equal(a, b) for k in jobs for a, b in zip(_samples(one[k]), _samples(par[k])))
    return {"sequential_s": t1 - t0, "parallel_s": t2 - t1, "workers": utils.parallel_workers(len(jobs)),
            "identical": same}


@contextlib.contextmanager
def _unfrozen():
    """D's weight gradients computed in G's update, as before ``frozen`` existed."""
    saved = training.frozen, toy.frozen
    training.frozen = toy.frozen = lambda module: contextlib.nullcontext(module)
    try:
        yield
    finally:
        training.frozen, toy.frozen = saved


def _dcgan_run(steps: int):
    gc.seed_everything(0)
    trainer, mods, _ = recipes.build_trainer("dcgan-mnist", dict(n_train=2000), device="cpu", log_every=10,
                                             progress="off")
    t0 = time.perf_counter()
    trainer.fit(steps=steps)
    return time.perf_counter() - t0, torch.cat([p.detach().flatten() for p in mods["generator"].parameters()])


def bench_frozen(dcgan_steps: int, toy_steps: int, rounds: int = 3) -> dict:
    toy_job = ring_jobs(toy_steps)["wide D"]
    times = {"dcgan frozen": [], "dcgan unfrozen": [], "toy frozen": [], "toy unfrozen": []}
    same = True
    _dcgan_run(3)                                       # warm-up: imports, first-call allocations
    for _ in range(rounds):
        tf, wf = _dcgan_run(dcgan_steps)
        with _unfrozen():
            tu, wu = _dcgan_run(dcgan_steps)
        times["dcgan frozen"].append(tf)
        times["dcgan unfrozen"].append(tu)
        same &= torch.equal(wf, wu)
        for label, ctx in (("toy frozen", contextlib.nullcontext()), ("toy unfrozen", _unfrozen())):
            with ctx:
                torch.manual_seed(0)
                r = toy_job()
            times[label].append(r.seconds)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return dict(med, identical=same)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="ring steps (Chapter 4 FAST: 3000)")
    parser.add_argument("--dcgan-steps", type=int, default=100)
    parser.add_argument("--record", action="store_true", help="append the result to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    import os
    import platform

    cores = len(os.sched_getaffinity(0))
    ring = bench_ring(args.steps)
    frozen = bench_frozen(args.dcgan_steps, min(args.steps, 1000))
    lines = [
        f"### {time.strftime('%Y-%m-%d')}: Chapter 4 speed levers ({platform.processor() or platform.machine()}, "
        f"{cores} cores, torch {torch.__version__}, `python benchmarks/gan_speed.py --steps {args.steps}`)",
        "",
        "| lever | before (s) | after (s) | ratio | results identical |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| ring jobs of Chapter 4 ({args.steps} steps, 3 seeds): one after another -> run_parallel, "
        f"{ring['workers']} workers | {ring['sequential_s']:.1f} | {ring['parallel_s']:.1f} | "
        f"{ring['sequential_s'] / ring['parallel_s']:.2f}x | {ring['identical']} |",
        f"| dcgan-mnist, {args.dcgan_steps} steps (median of 3): D's weight gradients in G's update -> frozen D | "
        f"{frozen['dcgan unfrozen']:.2f} | {frozen['dcgan frozen']:.2f} | "
        f"{frozen['dcgan unfrozen'] / frozen['dcgan frozen']:.2f}x | {frozen['identical']} |",
        f"| toy wide-D run, {min(args.steps, 1000)} steps (median of 3): the same | {frozen['toy unfrozen']:.2f} | "
        f"{frozen['toy frozen']:.2f} | {frozen['toy unfrozen'] / frozen['toy frozen']:.2f}x | - |",
        "",
    ]
    table = "\n".join(lines)
    print(table)
    if args.record:
        record(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
