"""The measured tables that Chapter 6 shows in FAST mode, stored with the shipped DDPM.

``python -m gencourse.diffusion_report RUN_DIR [--n 500] [--ship]`` reads a finished
``python -m gencourse train ddpm-mnist --out RUN_DIR`` run (``RUN_DIR/ddpm-mnist.pt`` and
the training history in ``RUN_DIR/state.pt``) and adds to its metrics:

* ``loss_curve``: the logged training loss (``steps``, ``loss``);
* ``sampler_table``: :func:`gencourse.diffusion.compare_samplers` with ``n`` samples per row
  (DDPM 1000 steps, DDIM 100/50/20/10), FID and seconds per sample on this machine;
* ``guidance_table``: :func:`gencourse.diffusion.guidance_sweep` with ``n`` samples per scale;
* ``schedule_table``: the FIDs stored with the shipped schedule-comparison models
  ``ddpm-mnist-{cosine,linear,quadratic}-2k`` (same protocol: DDIM 50 steps, labels i % 10);
* ``report_seconds`` and ``report_cpu_seconds``, the cost of measuring these tables.

``python -m gencourse.diffusion_report --large-n 2000 [--ship]`` instead adds to the shipped
checkpoint's metrics ``sampler_table_n2000``: DDIM 50 steps (with eta 0, 0.5 and 1) and DDPM 1000
steps at 2000 samples each, where FID's small-sample bias (Chapter 7) no longer hides the gap
between them.

With ``--ship`` the result is written to ``gencourse/assets/weights/ddpm-mnist.pt``. In FULL
mode the chapter recomputes every table live instead of reading these.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from . import checkpoint, diffusion, recipes
from .train_cli import describe_hardware

SCHEDULES = ("cosine", "linear", "quadratic")


def schedule_rows() -> list[dict]:
    """The schedule comparison from the shipped 2k-step models' own metrics."""
    rows = []
    for s in SCHEDULES:
        ck = checkpoint.load(recipes.weights_path(f"ddpm-mnist-{s}-2k"))
        rows.append(dict(schedule=s, steps=int(ck.metrics["steps"]), fid=ck.metrics["fid_ddim50"],
                         protocol=ck.metrics["protocol"]))
    return rows


def report(run_dir: Path, n: int = 500, device: str | torch.device = "cpu") -> tuple[dict, dict, dict, str | None]:
    """Load the run's final checkpoint and measure the tables.

    Returns ``(modules, config, metrics, command)``: the checkpoint's modules, config and reproducing
    command, and its metrics with the tables added."""
    path = run_dir / "ddpm-mnist.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: finish `python -m gencourse train ddpm-mnist "
                                f"--out {run_dir}` first")
    ck = checkpoint.load(path)
    recipe = recipes.get("ddpm-mnist")
    cfg = {k: v for k, v in ck.config.items() if k != "recipe"}
    modules = recipe.build(recipe.config(**cfg))
    ck.load_into(modules)
    device = torch.device(device)
    ema = modules["ema"].to(device).eval()
    m = dict(ck.metrics)
    hist = checkpoint.load(run_dir / "state.pt").state["history"]
    m["loss_curve"] = {"steps": list(hist["steps"]), "loss": [round(float(v), 5) for v in hist["values"]["loss"]]}
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        m["sampler_table"] = diffusion.compare_samplers(ema, n=n)
        m["guidance_table"] = diffusion.guidance_sweep(ema, n=n)
    m["sampler_n"] = m["guidance_n"] = n
    m["schedule_table"] = schedule_rows()
    m["report_seconds"] = round(time.perf_counter() - t0, 1)
    m["report_cpu_seconds"] = round(time.process_time() - c0, 1)
    m.setdefault("hardware", describe_hardware(device))
    if "resumed_from_step" in m:  # cpu_seconds then covers only the last segment of the run
        m["cpu_seconds_note"] = (f"the run was resumed at step {m['resumed_from_step']}: cpu_seconds counts only the "
                                 "last segment; train_seconds is the wall-clock training time of all segments")
    return modules, cfg, m, ck.meta.get("command")


#: the samplers of the large-n check: DDIM 50 steps (eta 0, 0.5, 1) and the full DDPM chain
LARGE_N_SETTINGS = (("ddim", 50), ("ddpm", 1000), ("ddim", 50, 0.5), ("ddim", 50, 1.0))


def large_n_rows(n: int, device: str | torch.device = "cpu") -> list[dict]:
    """:data:`LARGE_N_SETTINGS` at ``n`` samples each (labels i % 10, seed 0), on the shipped EMA model."""
    model, _ = diffusion.load_ema("ddpm-mnist", device)
    with torch.no_grad():
        return diffusion.compare_samplers(model, settings=LARGE_N_SETTINGS, n=n)


def add_large_n(n: int, rows: list[dict], *, ship: bool, out: Path | None = None) -> Path:
    """Store ``rows`` (from :func:`large_n_rows`) as ``sampler_table_n{n}`` in the shipped checkpoint's metrics
    (weights unchanged) and return the file written."""
    path = recipes.weights_path("ddpm-mnist")
    modules, ck = recipes.load_pretrained("ddpm-mnist", path=path)
    m = dict(ck.metrics, **{f"sampler_table_n{n}": rows})
    cfg = {k: v for k, v in ck.config.items() if k != "recipe"}
    suffix = f"; then python -m gencourse.diffusion_report --large-n {n}"
    command = ck.meta.get("command") or ""
    while command.endswith(suffix):  # a re-run replaces the earlier table, and says so once
        command = command[: -len(suffix)]
    command += suffix
    dest = path if ship else (out or Path(f"ddpm-mnist-n{n}.pt"))
    recipes.save_pretrained("ddpm-mnist", modules, cfg, metrics=m, command=command, path=dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gencourse.diffusion_report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, nargs="?", default=None)
    p.add_argument("--n", type=int, default=500, help="samples per table row (default 500)")
    p.add_argument("--large-n", type=int, default=None, metavar="N",
                   help="instead: DDIM-50 (eta 0, 0.5, 1) and DDPM-1000 at N samples on the shipped model, "
                        "stored as sampler_table_nN")
    p.add_argument("--device", default="cpu")
    p.add_argument("--ship", action="store_true", help="write gencourse/assets/weights/ddpm-mnist.pt")
    args = p.parse_args(argv)
    if args.large_n:
        rows = large_n_rows(args.large_n, args.device)
        for row in rows:
            print("  ", {k: v for k, v in row.items() if k != "protocol"})
        print(f"wrote {add_large_n(args.large_n, rows, ship=args.ship)}")
        return 0
    if args.run_dir is None:
        p.error("give RUN_DIR (a finished training run), or --large-n N")
    modules, cfg, m, command = report(args.run_dir, args.n, args.device)
    command = f"{command}; then python -m gencourse.diffusion_report {args.run_dir} --n {args.n}"
    dest = recipes.weights_path("ddpm-mnist") if args.ship else args.run_dir / "ddpm-mnist.pt"
    recipes.save_pretrained("ddpm-mnist", modules, cfg, metrics=m, command=command, path=dest)
    for key in ("sampler_table", "guidance_table", "schedule_table"):
        print(key)
        for row in m[key]:
            print("  ", {k: v for k, v in row.items() if k != "protocol"})
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
