"""One prepared check of the course on a CUDA GPU, writing one markdown report (``make gpu-check``).

    python benchmarks/gpu_check.py [--out benchmarks/gpu_check.md] [--budget 470]
    python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_check.md   # the same list on the CPU, tiny

On one GPU it finishes within ``--budget`` seconds (default 470, under 8 minutes; items that would
start after the budget is spent are reported as skipped).  What it checks, in order:

1. **training**: every registered recipe trains ``--steps`` steps (default 30) in fp16 with the
   gradient scaler (the T4's path) and, where the GPU has native bf16, in bf16: finite losses, ms/step;
2. **host syncs**: syncs per training step, counted with ``torch.cuda.set_sync_debug_mode("warn")``
   over steps between log points (the Trainer's one sync per log interval excluded);
3. **samplers**: every recipe's ``sample`` with a CPU and a CUDA generator (shape, finite, the same
   images for the same seed), in the half precision of :func:`gencourse.train.amp.inference` and the
   largest pixel difference from the same draw in float32; then Chapter 4's toy GANs on the device;
4. **benchmark**: the GPU columns of ``benchmarks/run.py`` (achieved TFLOP/s eager and compiled,
   against the dense peak for the device and autocast dtype);
5. **FULL time**: the first ``--full-steps`` (default 200) steps of the slowest recipes at their
   FULL settings, timed, times their default step counts: each chapter's training time;
6. **notebooks**: every chapter notebook executed in FAST mode on CUDA with ``--nb-timeout``.

``--dry-run`` walks the same list on the CPU at :func:`gencourse.recipes.smoke_settings` sizes in
under a minute (fp16 and bf16 autocast on the CPU, 3 steps, no CUDA generator, eager only, the
notebooks listed but not executed), so the test suite can run it and the script cannot rot.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("GENCOURSE_PROGRESS", "off")

import torch  # noqa: E402

from gencourse import recipes, utils  # noqa: E402
from gencourse.train.amp import inference_dtype, set_inference_amp  # noqa: E402

#: recipes timed for the FULL estimate (the slowest of their chapters) and the chapter they train for
FULL_RECIPES = {"rbm-mnist": 3, "dcgan-mnist": 4, "wgan-gp-mnist": 4, "cyclegan-mnist": 5,
                "pix2pix-edges-fashion": 5, "ddpm-mnist": 6, "fm-mnist": 8, "vae-mnist": 2, "ae-fashion-conv": 1}
COMPILED_FAMILIES = ("DCGAN", "DDPM U-Net")  # torch.compile costs ~30 s a model: two of the five families


class Budget:
    def __init__(self, seconds: float):
        self.t0, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.t0)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _config(name: str, dry: bool, **extra) -> dict:
    return recipes.get(name).config(**(recipes.smoke_settings(name) if dry else {}), **extra)


def _finite_losses(trainer) -> tuple[bool, str]:
    last = {k: v[-1] for k, v in trainer.history.values.items() if v}
    ok = bool(last) and all(math.isfinite(v) for v in last.values())
    return ok, ", ".join(f"{k} {v:.3g}" for k, v in list(last.items())[:3])


def check_training(device, dry, steps, budget) -> list[dict]:
    """Every recipe ``steps`` steps under fp16 + GradScaler, and bf16 where native."""
    amps = ["fp16"]
    if device.type == "cpu" or torch.cuda.is_bf16_supported(including_emulation=False):
        amps.append("bf16")
    rows = []
    for name in recipes.names():
        for amp in amps:
            if budget.left() <= 0:
                rows.append({"recipe": name, "amp": amp, "skipped": "time budget spent"})
                continue
            row = {"recipe": name, "amp": amp}
            try:
                utils.seed_everything(0)
                trainer, _, _ = recipes.build_trainer(name, _config(name, dry), device=device, amp=amp,
                                                      progress=False, log_every=max(steps // 2, 1))
                trainer.fit(steps=1 if dry else 2)  # warm-up (allocations, cudnn.benchmark's search)
                _sync(device)
                t0 = time.perf_counter()
                trainer.fit(steps=steps)
                _sync(device)
                row["ms_per_step"] = 1000 * (time.perf_counter() - t0) / steps
                row["finite"], row["losses"] = _finite_losses(trainer)
                row["scale"] = trainer.scaler.get_scale() if trainer.scaler is not None else None
            except Exception as err:  # reported, not raised: the report is the product
                row["error"] = f"{type(err).__name__}: {err}"[:300]
            rows.append(row)
    return rows


def check_syncs(device, dry, budget) -> list[dict]:
    """Host syncs per training step between log points (fp16), counted by the sync debug mode."""
    rows = []
    for name in recipes.names():
        if budget.left() <= 0:
            rows.append({"recipe": name, "skipped": "time budget spent"})
            continue
        row = {"recipe": name}
        if device.type != "cuda":
            row["syncs_per_step"] = None  # the sync debug mode is CUDA's (the training rows ran the steps)
            rows.append(row)
            continue
        try:
            utils.seed_everything(0)
            n = 10
            trainer, _, _ = recipes.build_trainer(name, _config(name, dry), device=device, amp="fp16",
                                                  progress=False, log_every=10 * n)
            trainer.fit(steps=2)
            counts, where = [], set()
            for steps in (n, 2 * n):  # the difference cancels each fit's own end-of-fit flush
                _sync(device)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    torch.cuda.set_sync_debug_mode("warn")
                    try:
                        trainer.fit(steps=steps)  # no log point inside: log_every = 10 n
                    finally:
                        torch.cuda.set_sync_debug_mode("default")
                syncs = [w for w in caught if "synchroniz" in str(w.message)]
                counts.append(len(syncs))
                where |= {f"{Path(w.filename).name}:{w.lineno}" for w in syncs}
            row["syncs_per_step"] = (counts[1] - counts[0]) / n
            row["per_fit"] = counts[0] - row["syncs_per_step"] * n
            row["where"] = sorted(where)[:4]
        except Exception as err:
            row["error"] = f"{type(err).__name__}: {err}"[:300]
        rows.append(row)
    return rows


def check_samplers(device, dry, budget) -> list[dict]:
    """Every recipe's sample() with a CPU and (on a GPU) a CUDA generator: (n, 1, 28, 28) in [0, 1],
    finite, and the same images from the same seed."""
    rows = []
    gen_devices = ["cpu"] + (["cuda"] if device.type == "cuda" else [])
    for name in recipes.names():
        recipe = recipes.get(name)
        if recipe.sample is None:
            continue
        for gdev in gen_devices:
            if budget.left() <= 0:
                rows.append({"recipe": name, "generator": gdev, "skipped": "time budget spent"})
                continue
            row = {"recipe": name, "generator": gdev}
            try:
                cfg = _config(name, dry)
                utils.seed_everything(0)
                modules = {k: m.to(device).eval() for k, m in recipe.build(cfg).items()}
                outs = []
                previous = set_inference_amp("fp16" if dry else "auto")   # the dry run walks the T4's path
                try:
                    for _ in range(2):
                        g = torch.Generator(device=gdev).manual_seed(0)
                        out = recipe.sample(modules, cfg, 8, device, g)
                        outs.append(out[0] if isinstance(out, tuple) else out)
                    dtype = inference_dtype(device)
                finally:
                    set_inference_amp(previous)
                x = outs[0]
                # the same draw with float32 forwards: how far half-precision inference moves the images
                previous = set_inference_amp(False)
                try:
                    ref = recipe.sample(modules, cfg, 8, device, torch.Generator(device=gdev).manual_seed(0))
                finally:
                    set_inference_amp(previous)
                ref = ref[0] if isinstance(ref, tuple) else ref
                row["precision"] = str(dtype).replace("torch.", "") if dtype else "float32"
                row["max_diff_fp32"] = float((x - ref).abs().max())
                # reproducible up to the GPU's nondeterministic kernels (cudnn.benchmark may pick others)
                row["ok"] = (tuple(x.shape) == (8, 1, 28, 28) and bool(torch.isfinite(x).all())
                             and float(x.min()) >= 0 and float(x.max()) <= 1
                             and torch.allclose(outs[0], outs[1], atol=1e-3))
                row["device"] = str(x.device)
            except Exception as err:
                row["ok"], row["error"] = False, f"{type(err).__name__}: {err}"[:300]
            rows.append(row)
    return rows


def check_toys(device, dry, budget) -> list[dict]:
    """Chapter 4's ring GANs trained on ``device`` (train_toy_gan, WGAN-GP, and a two-configuration
    train_toy_sweep): seconds and modes covered, so the chapter's FULL time on a GPU is measured."""
    from gencourse import gan

    steps = 20 if dry else 1000
    rows = []
    jobs = {"train_toy_gan (non-saturating)": lambda: {"": gan.train_toy_gan([0, 1, 2], steps, device=device)},
            "train_toy_gan (WGAN-GP, 5 critic steps)": lambda: {"": gan.train_toy_gan(
                [0, 1, 2], steps, device=device, loss="wgan-gp", d_steps=5)},
            "train_toy_sweep (2 configurations)": lambda: gan.train_toy_sweep(
                {"a": {}, "b": {"d_steps": 4}}, [0, 1, 2], steps, device=device)}
    for label, job in jobs.items():
        if budget.left() <= 0:
            rows.append({"run": label, "steps": steps, "skipped": "time budget spent"})
            continue
        row = {"run": label, "steps": steps}
        try:
            t0 = time.perf_counter()
            runs = job()
            row["seconds"] = time.perf_counter() - t0
            row["covered"] = [r.covered for r in runs.values()]
            row["finite"] = all(bool(torch.isfinite(r.samples).all()) for r in runs.values())
        except Exception as err:
            row["error"] = f"{type(err).__name__}: {err}"[:300]
        rows.append(row)
    return rows


def check_benchmark(device, dry, budget) -> list[dict]:
    """The benchmark's GPU columns: TFLOP/s eager (every family) and compiled (COMPILED_FAMILIES)."""
    import run

    rows = []
    for family, (name, overrides) in run.FAMILIES.items():
        if budget.left() <= 0:
            rows.append({"family": family, "skipped": "time budget spent"})
            continue
        modes = ("eager",) if dry or family not in COMPILED_FAMILIES else ("eager", "compiled")
        row = {"family": family, "recipe": name}
        try:
            cfg = _config(name, dry, **overrides)
            row.update(run._gpu_efficiency(name, cfg, device, 2 if dry else 20, 1 if dry else 3, modes=modes))
            if device.type == "cuda":
                dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(row.get("amp"))
                row["peak"] = run.dense_peak_tflops(torch.cuda.get_device_name(device), dtype)
        except Exception as err:
            row["error"] = f"{type(err).__name__}: {err}"[:300]
        rows.append(row)
    return rows


def check_full_time(device, dry, full_steps, budget) -> list[dict]:
    """ms/step of the first ``full_steps`` FULL-size steps (after 5 warm-up steps), times the recipe's steps."""
    rows = []
    for name, chapter in FULL_RECIPES.items():
        if budget.left() <= 0:
            rows.append({"recipe": name, "chapter": chapter, "skipped": "time budget spent"})
            continue
        row = {"recipe": name, "chapter": chapter}
        try:
            cfg = _config(name, dry)
            utils.seed_everything(0)
            trainer, _, cfg = recipes.build_trainer(name, cfg, device=device, progress=False, log_every=50)
            trainer.fit(steps=2 if dry else 5)
            _sync(device)
            t0 = time.perf_counter()
            n = 2 if dry else full_steps
            trainer.fit(steps=n)
            _sync(device)
            row["ms_per_step"] = 1000 * (time.perf_counter() - t0) / n
            row["amp"] = str(trainer.dtype).replace("torch.", "") if trainer.dtype else "float32"
            row["steps"] = int(recipes.get(name).defaults["steps"])
            row["minutes"] = row["ms_per_step"] * row["steps"] / 60_000
        except Exception as err:
            row["error"] = f"{type(err).__name__}: {err}"[:300]
        rows.append(row)
    return rows


def check_notebooks(device, dry, timeout, budget) -> list[dict]:
    """Every chapter notebook in FAST mode on this device (nbclient, a fresh kernel each)."""
    rows = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        row = {"notebook": path.name}
        if dry:
            import nbformat

            nbformat.validate(nbformat.read(path, as_version=4))
            row["skipped"] = "dry run: listed, not executed"
        elif budget.left() < 30:
            row["skipped"] = "time budget spent"
        else:
            import nbformat
            from nbclient import NotebookClient

            nb = nbformat.read(path, as_version=4)
            nb.cells = [c for c in nb.cells if "skip-execution" not in c.metadata.get("tags", [])]
            env_mode = os.environ.get("GENCOURSE_MODE")
            os.environ["GENCOURSE_MODE"] = "fast"
            t0 = time.perf_counter()
            try:
                NotebookClient(nb, timeout=int(min(timeout, budget.left())), kernel_name="python3",
                               resources={"metadata": {"path": str(path.parent)}}).execute()
                row["ok"] = True
            except Exception as err:
                row["ok"], row["error"] = False, f"{type(err).__name__}: {str(err)[-300:]}"
            finally:
                if env_mode is None:
                    os.environ.pop("GENCOURSE_MODE")
                else:
                    os.environ["GENCOURSE_MODE"] = env_mode
            row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    return rows


# -- the report ---------------------------------------------------------------------------------
def _fmt(v, spec=".1f"):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    return format(v, spec) if isinstance(v, (int, float)) else str(v)


def _table(cols, rows, cells) -> list[str]:
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for r in rows:
        if "skipped" in r or "error" in r:
            first = cells(r)[:1] if "recipe" in r or "family" in r or "notebook" in r or "run" in r else []
            note = f"skipped: {r['skipped']}" if "skipped" in r else f"**error** {r['error']}"
            lines.append("| " + " | ".join(first + [note] + [""] * (len(cols) - len(first) - 1)) + " |")
        else:
            lines.append("| " + " | ".join(cells(r)) + " |")
    return lines


def report(device, dry, sections, seconds) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"
    lines = [f"### GPU check, {dt.date.today().isoformat()}: {name}" + (" -- dry run, tiny sizes" if dry else ""), "",
             f"torch {torch.__version__}, CUDA {torch.version.cuda}, Python {platform.python_version()}, "
             f"{os.cpu_count()} CPU cores; {seconds:.0f} s in all. Command: `python benchmarks/gpu_check.py "
             f"{' '.join(sys.argv[1:])}`", ""]
    train = sections["training"]
    lines += ["**Training** (every recipe, fp16 with the gradient scaler; bf16 where native):", ""]
    lines += _table(["recipe", "autocast", "ms/step", "finite", "last logged values", "loss scale"], train,
                    lambda r: [r["recipe"], r["amp"], _fmt(r.get("ms_per_step")), _fmt(r.get("finite")),
                               r.get("losses", ""), _fmt(r.get("scale"), ".0f")])
    lines += ["", "**Host syncs per training step** (fp16, between log points; `set_sync_debug_mode`; "
              "fits of 10 and 20 steps, the difference / 10, so each fit's own end-of-fit sync cancels):", ""]
    lines += _table(["recipe", "syncs/step", "per fit", "where (first 4)"], sections["syncs"],
                    lambda r: [r["recipe"], "n/a on the CPU" if r.get("syncs_per_step") is None
                               else _fmt(r["syncs_per_step"], ".2f"), _fmt(r.get("per_fit"), ".0f"),
                               ", ".join(r.get("where", []))])
    lines += ["", "**Samplers** with a CPU and a CUDA generator (8 images, shape, range, finite, reproducible):", ""]
    lines += _table(["recipe", "generator", "ok", "images on", "inference", "max |x - x_fp32|"], sections["samplers"],
                    lambda r: [r["recipe"], r["generator"], _fmt(r.get("ok")), r.get("device", ""),
                               r.get("precision", ""), _fmt(r.get("max_diff_fp32"), ".4f")])
    lines += ["", "**Chapter 4's toy GANs** on this device (float32; 3 seeds, one vectorised run each):", ""]
    lines += _table(["run", "steps", "seconds", "modes covered"], sections["toys"],
                    lambda r: [r["run"], str(r["steps"]), _fmt(r.get("seconds"), ".1f"), str(r.get("covered", ""))])
    lines += ["", "**Benchmark, GPU columns** (FLOPs of one step by `torch.utils.flop_counter`):", ""]
    lines += _table(["family", "recipe", "autocast", "TFLOP/s eager", "TFLOP/s compiled", "dense peak", "of peak"],
                    sections["benchmark"],
                    lambda r: [r["family"], r["recipe"], r.get("amp", ""), _fmt(r.get("tflops_eager"), ".2f"),
                               _fmt(r.get("tflops_compiled"), ".2f"), _fmt(r.get("peak"), ".0f"),
                               _fmt(100 * max(r.get("peak_frac_eager", 0), r.get("peak_frac_compiled", 0)), ".1f")
                               + "%" if r.get("peak") else "unknown"])
    full = sections["full"]
    lines += ["", "**FULL-mode training time, estimated** (ms/step of the first steps at the recipe's own "
              "settings x its default steps; training only, no evaluation):", ""]
    lines += _table(["recipe", "chapter", "autocast", "ms/step", "default steps", "estimated minutes"], full,
                    lambda r: [r["recipe"], str(r["chapter"]), r.get("amp", ""), _fmt(r.get("ms_per_step")),
                               _fmt(r.get("steps"), ",d"), _fmt(r.get("minutes"))])
    per_chapter: dict[int, float] = {}
    for r in full:
        if "minutes" in r:
            per_chapter[r["chapter"]] = per_chapter.get(r["chapter"], 0.0) + r["minutes"]
    if per_chapter:
        lines += ["", "Per chapter (sum of the timed recipes): " + "; ".join(
            f"Chapter {c}: {m:.1f} min" for c, m in sorted(per_chapter.items()))]
    lines += ["", "**Notebooks** in FAST mode on this device:", ""]
    lines += _table(["notebook", "ok", "seconds"], sections["notebooks"],
                    lambda r: [r["notebook"], _fmt(r.get("ok")), _fmt(r.get("seconds"))])
    return "\n".join(lines) + "\n"


def failures(sections) -> list[str]:
    """What the check found wrong (errors, non-finite losses, samplers failing); empty when all passed."""
    bad = []
    for key, rows in sections.items():
        for r in rows:
            label = r.get("recipe") or r.get("family") or r.get("notebook") or r.get("run")
            if "error" in r:
                bad.append(f"{key}: {label}: {r['error']}")
            elif r.get("finite") is False or r.get("ok") is False:
                bad.append(f"{key}: {label} ({r.get('amp') or r.get('generator') or ''}) failed")
    return bad


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="the same list on the CPU at tiny sizes (< 1 min)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "gpu_check.md", help="markdown report")
    parser.add_argument("--budget", type=float, default=470.0, help="seconds; later items are skipped")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per recipe and dtype")
    parser.add_argument("--full-steps", type=int, default=200, help="timed FULL-size steps per slow recipe")
    parser.add_argument("--nb-timeout", type=int, default=120, help="seconds per notebook")
    args = parser.parse_args(argv)
    dry = args.dry_run
    if dry:
        device = torch.device("cpu")
        steps = 2
    else:
        if not torch.cuda.is_available():
            print("error: no CUDA GPU; use --dry-run to walk the check on the CPU", file=sys.stderr)
            return 2
        device = torch.device("cuda")
        steps = args.steps
    utils.configure_device(device)
    budget = Budget(args.budget)
    sections = {}
    for key, fn in (("training", lambda: check_training(device, dry, steps, budget)),
                    ("syncs", lambda: check_syncs(device, dry, budget)),
                    ("samplers", lambda: check_samplers(device, dry, budget)),
                    ("toys", lambda: check_toys(device, dry, budget)),
                    ("benchmark", lambda: check_benchmark(device, dry, budget)),
                    ("full", lambda: check_full_time(device, dry, args.full_steps, budget)),
                    ("notebooks", lambda: check_notebooks(device, dry, args.nb_timeout, budget))):
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            sections[key] = fn()
        print(f"{key}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    text = report(device, dry, sections, time.perf_counter() - budget.t0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    bad = failures(sections)
    for line in bad:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
