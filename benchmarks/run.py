"""Training throughput of the gencourse loop against the usual tutorial loop, side by side.

    python benchmarks/run.py                     # every model family, CPU or GPU, prints one table
    python benchmarks/run.py --families VAE RBM  # a subset
    python benchmarks/run.py --notebooks         # also time every chapter notebook in FAST mode
    python benchmarks/run.py --targets           # also the quality targets met by the shipped checkpoints
    python benchmarks/run.py --record            # append the tables to benchmarks/RESULTS.md

For each family the *same* model (the recipe's architecture, built twice from the
same seed), batch size, data and device run through two loops in this one
invocation:

* **gencourse**: :class:`gencourse.train.Trainer` over a GPU-resident
  :class:`gencourse.data.BatchIterator` (index shuffling on the device, whole-batch
  preprocessing, logged values copied to the host every ``log_every`` steps,
  mixed precision on CUDA);
* **reference**: the loop most tutorials write (pytorch/examples' ``vae/main.py``
  style): a torchvision ``MNIST`` dataset with a per-sample ``ToTensor()``
  transform, a ``DataLoader`` (``num_workers=1, pin_memory=True`` on CUDA, none
  on the CPU), ``.to(device)`` per batch, and ``loss.item()`` every step, in fp32.

On a CPU with native bf16 instructions (AVX512-BF16 or AMX) the table adds the
gencourse loop with ``amp="bf16"`` (autocast; opt-in on the CPU, ``--amp bf16``
in ``python -m gencourse train``), alternated with the other two.

Both apply the recipe's own per-batch preprocessing and step function, so the
difference is the loop, not the model.  Times exclude warm-up steps; on a GPU
the clock is read after ``torch.cuda.synchronize()``.  On a GPU the table adds
achieved TFLOP/s of the training step (FLOPs counted by
``torch.utils.flop_counter``) against the device's dense peak for the autocast
dtype (fp16 on a T4, bf16 where supported; :func:`dense_peak_tflops`), with and
without ``torch.compile`` / channels_last.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gencourse import data, rbm, recipes, utils  # noqa: E402
from gencourse.train import cpu_has_bf16  # noqa: E402
from gencourse.train_cli import describe_hardware  # noqa: E402

# family -> (recipe, overrides for the benchmark). Batch sizes are the recipes' own.
FAMILIES = {
    "VAE": ("vae-mnist", {}),
    "RBM": ("rbm-mnist", {}),
    "DCGAN": ("dcgan-mnist", {}),
    "CycleGAN": ("cyclegan-mnist", {}),
    "DDPM U-Net": ("ddpm-mnist", {}),
}
#: dense tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets: (name pattern, fp16, bf16).
#: The first pattern that matches the device name wins; None: the dtype has no tensor-core path there
#: (the T4 and V100 have fp16 tensor cores but no bf16). "L4" must not match an L40S.
DENSE_PEAK_TFLOPS = [
    (r"H100 PCIe", 756.0, 756.0), (r"H100|H200|GH200", 989.0, 989.0), (r"A100", 312.0, 312.0),
    (r"L40S", 362.0, 362.0), (r"\bL4\b", 121.0, 121.0), (r"\bA10\b", 125.0, 125.0),
    (r"\bT4\b", 65.0, None), (r"V100", 125.0, None),
]


def dense_peak_tflops(gpu_name: str, dtype: torch.dtype | None) -> float | None:
    """The dense tensor-core peak of GPU ``gpu_name`` for autocast ``dtype`` (fp16 or bf16), or None
    when the device or the dtype is not in :data:`DENSE_PEAK_TFLOPS` (fp32 runs get None too)."""
    import re

    column = {torch.float16: 1, torch.bfloat16: 2}.get(dtype)
    if column is None:
        return None
    for row in DENSE_PEAK_TFLOPS:
        if re.search(row[0], gpu_name):
            return row[column]
    return None


class _PlainTrainer:
    """What a tutorial loop does in place of Trainer: zero_grad, backward, step; full precision."""

    def __init__(self):
        self.step = 0

    def autocast(self):
        return contextlib.nullcontext()

    def optimize(self, loss, optimizer, *, retain_graph=False):
        optimizer.zero_grad()
        loss.backward(retain_graph=retain_graph)
        optimizer.step()


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _mnist_root() -> str:
    """A torchvision-style root whose MNIST/raw holds the verified IDX files of gencourse's cache."""
    data.load("mnist", "train")  # make sure the verified copy is in the cache
    root = Path(tempfile.mkdtemp(prefix="bench-mnist-"))
    (root / "MNIST").mkdir()
    (root / "MNIST" / "raw").symlink_to(data.data_root() / "mnist" / "raw")
    return str(root)


#: recipes whose data function preprocesses the whole dataset up front (no per-batch transform): the same
#: preprocessing, applied per batch in the reference loop
_PREPROCESS = {"rbm-mnist": rbm.binarise}


def _reference_batches(batches, cfg, device, batch_size, prep=None):
    """A DataLoader over torchvision's MNIST with ToTensor, feeding the recipe's per-batch transform
    (or ``prep``, the recipe's whole-dataset preprocessing applied to each batch)."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    ds = datasets.MNIST(_mnist_root(), train=True, download=False, transform=transforms.ToTensor())
    kw = {"num_workers": 1, "pin_memory": True} if device.type == "cuda" else {}
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True, **kw)
    transform = prep or getattr(batches, "transform", None)
    n_tensors = len(getattr(batches, "tensors", (None,)))

    def gen():
        while True:
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                u8 = (x.squeeze(1) * 255).round().to(torch.uint8)  # the recipe's transforms take raw uint8
                args = (u8, y) if n_tensors == 2 else (u8,)
                out = transform(*args) if transform is not None else (args if len(args) > 1 else args[0])
                yield out
    return gen()


def _time_loop(run_steps, device, steps, warmup):
    run_steps(warmup)
    _sync(device)
    t0 = time.perf_counter()
    run_steps(steps)
    _sync(device)
    return time.perf_counter() - t0


def bench_family(family: str, device: torch.device, steps: int, warmup: int, rounds: int = 3) -> dict:
    name, overrides = FAMILIES[family]
    try:
        recipe = recipes.get(name)
    except KeyError:
        return {"family": family, "model": name, "skipped": "recipe not available"}
    cfg = recipe.config(**overrides)
    bs = cfg.get("batch_size", 128)
    if cfg.get("dataset", "mnist") != "mnist":
        return {"family": family, "model": name, "skipped": "benchmark uses MNIST recipes"}
    row = {"family": family, "model": name, "batch": bs}

    # gencourse loop (its defaults: fp32 on the CPU, bf16/fp16 autocast on CUDA)
    utils.seed_everything(0)
    trainer, modules, cfg = recipes.build_trainer(name, cfg, device=device, progress=False, log_every=50)
    row["params"] = sum(p.numel() for m in modules.values() for p in m.parameters())
    # on a CPU with native bf16, also the gencourse loop with amp="bf16" (opt-in there: `--amp bf16`)
    trainer_bf16 = None
    if device.type == "cpu" and cpu_has_bf16():
        utils.seed_everything(0)
        trainer_bf16, _, _ = recipes.build_trainer(name, cfg, device=device, progress=False, log_every=50, amp="bf16")

    # reference loop: same recipe, fresh copy of the model, DataLoader + ToTensor + loss.item() each step
    utils.seed_everything(0)
    mods = {k: m.to(device) for k, m in recipe.build(cfg).items()}
    opts = recipe.optimizers(mods, cfg)
    step_fn = recipe.step(mods, opts, cfg)
    for m in mods.values():
        m.train()
    plain = _PlainTrainer()
    source = _reference_batches(recipe.data(cfg, device, 0, 1), cfg, device, bs, _PREPROCESS.get(name))

    def run_ref(n):
        for _ in range(n):
            out = step_fn(next(source), plain)
            plain.step += 1
            float(next(iter(out.values())).item())  # logging every step, as tutorials do

    # alternate the two loops for a few rounds so that load from other processes hits both alike;
    # report the median round of each
    ours, ours_bf16, ref = [], [], []
    for r in range(rounds):
        w = warmup if r == 0 else 0
        ours.append(_time_loop(lambda n: trainer.fit(steps=n), device, steps, w))
        if trainer_bf16 is not None:
            ours_bf16.append(_time_loop(lambda n: trainer_bf16.fit(steps=n), device, steps, w))
        ref.append(_time_loop(run_ref, device, steps, w))
    med = lambda ts: sorted(ts)[len(ts) // 2]  # noqa: E731
    row["gencourse_img_s"] = steps * bs / med(ours)
    row["reference_img_s"] = steps * bs / med(ref)
    row["ratio"] = row["gencourse_img_s"] / row["reference_img_s"]
    if ours_bf16:
        row["gencourse_bf16_img_s"] = steps * bs / med(ours_bf16)
        row["ratio_bf16"] = row["gencourse_bf16_img_s"] / row["reference_img_s"]
    if device.type == "cuda":
        row.update(_gpu_efficiency(name, cfg, device, steps, warmup))
    return row


def compile_in_place(modules: dict) -> None:
    """``torch.compile`` every module and each of its direct children, in place (state-dict keys unchanged).
    The children matter: step functions often call methods such as ``vae.encode`` that reach the
    children without going through the top module's ``forward``."""
    for m in modules.values():
        m.compile()
        for child in m.children():
            child.compile()


def _gpu_efficiency(name, cfg, device, steps, warmup, *, amp="auto", modes=("eager", "compiled")) -> dict:
    """Achieved TFLOP/s of the gencourse training step, eager and/or with torch.compile, against the
    dense peak for the device and the autocast dtype (``amp``: the Trainer's setting). Also runs on
    the CPU (no peak there), which is how the tests and the GPU check's dry run exercise it."""
    from torch.utils.flop_counter import FlopCounterMode

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    out = {}
    for label in modes:
        compile_ = label == "compiled"
        utils.seed_everything(0)
        trainer, modules, cfg2 = recipes.build_trainer(name, cfg, device=device, progress=False, log_every=50,
                                                       amp=amp)
        if compile_:
            compile_in_place(modules)
        peak = dense_peak_tflops(gpu, trainer.dtype)
        out["amp"] = str(trainer.dtype).replace("torch.", "") if trainer.dtype else "float32"
        batch = trainer._next_batch()
        # one counted step; each Trainer.optimize is a complete (scaled) update, so fit can follow
        with FlopCounterMode(display=False) as fc:
            with trainer.autocast():
                trainer.step_fn(batch, trainer)
        flops = fc.get_total_flops()
        t_warm = time.perf_counter()
        trainer.fit(steps=warmup)
        _sync(device)
        out[f"warmup_s_{label}"] = time.perf_counter() - t_warm
        t = _time_loop(lambda n: trainer.fit(steps=n), device, steps, 0)
        tflops = flops * steps / t / 1e12
        out[f"tflops_{label}"] = tflops
        if peak:
            out[f"peak_frac_{label}"] = tflops / peak
    return out


def time_notebooks() -> list[dict]:
    """Wall time of every chapter notebook executed in FAST mode (nbclient, fresh kernel each)."""
    import nbformat
    from nbclient import NotebookClient

    rows = []
    env_mode = os.environ.get("GENCOURSE_MODE")
    os.environ["GENCOURSE_MODE"] = "fast"
    os.environ.setdefault("GENCOURSE_PROGRESS", "summary")
    try:
        for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            nb.cells = [c for c in nb.cells if "skip-execution" not in c.metadata.get("tags", [])]
            t0 = time.perf_counter()
            NotebookClient(nb, timeout=1200, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            rows.append({"notebook": path.name, "seconds": time.perf_counter() - t0})
    finally:
        if env_mode is None:
            os.environ.pop("GENCOURSE_MODE", None)
        else:
            os.environ["GENCOURSE_MODE"] = env_mode
    return rows


def _sampler_table(m: dict) -> tuple[list[dict], int, float]:
    """The largest sampler table stored with the DDPM checkpoint: ``(rows, n, DDPM-1000 FID)``."""
    rows, n = (m["sampler_table_n2000"], 2000) if "sampler_table_n2000" in m else (m["sampler_table"], m["sampler_n"])
    return rows, n, next(r["fid"] for r in rows if r["sampler"] == "ddpm" and r["steps"] == 1000)


def _ddpm_row(m: dict) -> tuple:
    """DDPM-1000 against the floor, from the largest sampler table stored with the checkpoint."""
    from gencourse import metrics

    _, n, ddpm = _sampler_table(m)
    floor = metrics.real_floor("mnist", n)[n]["fid"]
    return ddpm / floor, f"DDPM-1000 FID {ddpm:.2f} / floor {floor:.2f} (n = {n})"


def _ddim_row(m: dict) -> tuple:
    """DDIM-50 against DDPM-1000 at the largest stored n, for each stored eta (the best one decides)."""
    rows, n, ddpm = _sampler_table(m)
    ddim = {r.get("eta", 0.0): r["fid"] for r in rows if r["sampler"] == "ddim" and r["steps"] == 50}
    shown = "; ".join(f"eta {eta:g}: {fid:.2f} = {fid / ddpm:.2f}x" for eta, fid in sorted(ddim.items()))
    return min(ddim.values()) / ddpm, f"DDIM-50 {shown} DDPM-1000 ({ddpm:.2f}; n = {n})"


#: (chapter, checkpoint, target, how to read the value from its metrics -> (value, shown), met(value))
TARGETS = [
    ("2 VAE", "vae-mnist", "IWAE test NLL <= 95 nats",
     lambda m: (m["test_iwae_nll_nats_k1000"], f"{m['test_iwae_nll_nats_k1000']:.1f} nats (k = 1000)"), lambda v: v <= 95),
    ("3 RBM", "rbm-mnist", "AIS test log-likelihood >= -100 nats",
     lambda m: (m["ais_test_ll"], f"{m['ais_test_ll']:.1f} nats"), lambda v: v >= -100),
    ("4 GAN", "dcgan-mnist", "DCGAN FID <= 3x real-vs-real floor",
     lambda m: (m["fid"] / m["floor_fid"], f"{m['fid']:.1f} / floor {m['floor_fid']:.2f} (n = {m['eval_n']})"),
     lambda v: v <= 3),
    ("4 GAN", "cgan-mnist", "conditional samples of the intended class >= 95%",
     lambda m: (m["class_accuracy"], f"{100 * m['class_accuracy']:.1f}%"), lambda v: v >= 0.95),
    ("5 img2img", "cyclegan-mnist", "CycleGAN keeps the digit >= 95% (both directions)",
     lambda m: (min(m["content_ab"], m["content_ba"]),
                f"A->B {100 * m['content_ab']:.1f}%, B->A {100 * m['content_ba']:.1f}% (n = {m['eval_n']})"),
     lambda v: v >= 0.95),
    ("6 diffusion", "ddpm-mnist", "DDPM FID <= 2x real-vs-real floor", lambda m: _ddpm_row(m), lambda v: v <= 2),
    ("6 diffusion", "ddpm-mnist", "DDIM-50 FID <= 1.5x DDPM-1000 (best eta)", lambda m: _ddim_row(m),
     lambda v: v <= 1.5),
    ("7 evaluation", "classifier-mnist", "test accuracy >= 99%",
     lambda m: (m["test_accuracy"], f"{100 * m['test_accuracy']:.2f}%"), lambda v: v >= 0.99),
    ("7 evaluation", "classifier-fashion", "test accuracy >= 91%",
     lambda m: (m["test_accuracy"], f"{100 * m['test_accuracy']:.2f}%"), lambda v: v >= 0.91),
]


def quality_targets() -> str:
    """The chapters' quality targets against the shipped checkpoints: value, met or not, and the training
    time and hardware recorded with each (the issues' targets are for FULL mode on a GPU; these runs name theirs)."""
    lines = ["| chapter | checkpoint | target | measured | met | training | hardware |",
             "| --- | --- | --- | --- | --- | ---: | --- |"]
    for chapter, name, target, read, ok in TARGETS:
        m = recipes.shipped_meta(name)["metrics"]
        value, shown = read(m)
        secs = m.get("train_seconds")
        train = f"{m['steps']:,} steps, {secs / 60:.1f} min" if secs is not None else f"{m.get('steps', '?')} steps"
        lines.append(f"| {chapter} | {name} | {target} | {shown} | {'yes' if ok(value) else '**no**'} | {train} | "
                     f"{m.get('hardware', m.get('device', '?'))} |")
    return "\n".join(lines) + "\n"


def machine() -> str:
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return describe_hardware(dev) + (f", {os.cpu_count()} CPU cores" if dev.type == "cuda" else "")


def format_tables(rows, nb_rows, device, args) -> str:
    cuda = device.type == "cuda"
    bf16 = any("ratio_bf16" in r for r in rows)
    cols = ["family", "model", "params", "batch", "gencourse (img/s)", "reference (img/s)", "ratio"]
    if bf16:
        cols += ["gencourse, amp=bf16 (img/s)", "ratio, amp=bf16"]
    if cuda:
        cols += ["autocast", "TFLOP/s eager", "TFLOP/s compiled", "of the dtype's dense peak"]
    lines = [f"### {dt.date.today().isoformat()}: {machine()}",
             "",
             f"torch {torch.__version__}, Python {platform.python_version()}, device `{device}`, "
             f"median of {args.rounds} alternating rounds of {args.steps} timed steps per loop, after {args.warmup} "
             "warm-up steps. "
             f"Command: `python benchmarks/run.py {' '.join(sys.argv[1:])}`",
             "",
             "| " + " | ".join(cols) + " |",
             "| --- | --- |" + " ---: |" * (len(cols) - 2)]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['family']} | {r['model']} | | | {r['skipped']} |" + " |" * (len(cols) - 5))
            continue
        cells = [r["family"], r["model"], f"{r['params']:,}", str(r["batch"]), f"{r['gencourse_img_s']:,.0f}",
                 f"{r['reference_img_s']:,.0f}", f"{r['ratio']:.2f}x"]
        if bf16:
            cells += [f"{r['gencourse_bf16_img_s']:,.0f}", f"{r['ratio_bf16']:.2f}x"] if "ratio_bf16" in r else ["", ""]
        if cuda:
            best = max(r.get("peak_frac_eager", 0), r.get("peak_frac_compiled", 0))
            cells += [r.get("amp", ""), f"{r.get('tflops_eager', 0):.1f}", f"{r.get('tflops_compiled', 0):.1f}",
                      f"{100 * best:.1f}%" if "peak_frac_eager" in r else "peak unknown"]
        lines.append("| " + " | ".join(cells) + " |")
    if getattr(args, "targets", False):
        lines += ["", "Quality targets against the shipped checkpoints (`gencourse/assets/weights/*.json`):", "",
                  quality_targets().rstrip("\n")]
    if nb_rows:
        lines += ["", "| notebook (FAST mode) | seconds |", "| --- | ---: |"]
        lines += [f"| {r['notebook']} | {r['seconds']:.1f} |" for r in nb_rows]
    return "\n".join(lines) + "\n"


def record(table: str) -> None:
    """Append a result table to ``benchmarks/RESULTS.md`` (the ``--record`` of the benchmark scripts)."""
    with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
        f.write("\n" + table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--steps", type=int, default=50, help="timed steps per loop")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds per loop (median kept)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--notebooks", action="store_true", help="also time each notebook in FAST mode")
    parser.add_argument("--targets", action="store_true",
                        help="also print the chapters' quality targets against the shipped checkpoints")
    parser.add_argument("--record", action="store_true", help="append the result to benchmarks/RESULTS.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw rows as JSON")
    args = parser.parse_args(argv)
    device = utils.get_device(args.device)
    rows = [bench_family(f, device, args.steps, args.warmup, args.rounds) for f in args.families]
    nb_rows = time_notebooks() if args.notebooks else []
    table = format_tables(rows, nb_rows, device, args)
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "notebooks": nb_rows, "machine": machine()}, indent=2))
    if args.record:
        record(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
