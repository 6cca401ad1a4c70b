"""Collect finished GAN training runs into ``gencourse/assets/gan_trials.json``, the stored experiment that
Chapter 4 prints (issue 17: the learning rates over seeds, and the WGAN-GP schedules).

    python benchmarks/gan_trials.py RUN_DIR [RUN_DIR ...] [--write]

Each RUN_DIR is the ``--out`` folder of one ``python -m gencourse train`` run, or a ``MODEL.pt.json``
sidecar itself (e.g. of weights shipped before); the sidecar holds the command, the configuration and the metrics, which are copied as they are (the
command without its ``--out``).  A run folder that still holds the run's ``state.pt`` adds its logged
discriminator (critic) loss, one mean per log interval (``history``), and one with a ``RUN_DIR.curve.jsonl``
beside it (``benchmarks/gan_curve.py``) adds its FID over training (``curve``).  Without ``--write`` the
rows are printed only; with ``--append`` they are added to the rows already stored (a run whose tensors are stored already is replaced, not repeated).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSET = ROOT / "gencourse" / "assets" / "gan_trials.json"
CONFIG_KEYS = ("lr_g", "lr_d", "betas", "d_steps", "loss", "init_seed", "batch_size")
METRIC_KEYS = ("fid", "floor_fid", "precision", "recall", "floor_precision", "floor_recall", "eval_n",
               "train_seconds", "hardware")


def row(run: Path) -> dict:
    sidecars = [run] if run.is_file() else sorted(p for p in run.glob("*.pt.json") if p.name != "state.pt.json")
    if len(sidecars) != 1:
        raise SystemExit(f"error: {run} should hold one MODEL.pt.json (a finished run), found {len(sidecars)}")
    meta = json.loads(sidecars[0].read_text())
    cfg, m = meta["config"], meta["metrics"]
    missing = [k for k in ("fid", "eval_n") if k not in m]
    if missing:
        raise SystemExit(f"error: {sidecars[0]} has no {missing}: train without --no-eval")
    command = re.sub(r" --out \S+", "", meta.get("command") or "")
    extra = {}
    if run.is_dir() and (run / "state.pt").is_file():
        from gencourse import checkpoint

        hist = checkpoint.load(run / "state.pt").state["history"]
        extra["history"] = {"steps": hist["steps"], **{k: [round(v, 4) for v in hist["values"][k]]
                                                       for k in ("d_loss", "gp") if k in hist["values"]}}
    curve = run.parent / f"{run.name}.curve.jsonl"
    if run.is_dir() and curve.is_file():
        extra["curve"] = [json.loads(line) for line in curve.read_text().splitlines() if line.strip()]
    return {"recipe": cfg["recipe"], "steps": m["steps"], "generator_updates": m["steps"] // cfg["d_steps"],
            **{k: cfg[k] for k in CONFIG_KEYS}, **{k: m[k] for k in METRIC_KEYS if k in m},
            "command": command, "tensors_sha256": meta.get("tensors_sha256", "")[:16], **extra}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--write", action="store_true", help=f"write {ASSET.relative_to(ROOT)}")
    p.add_argument("--append", action="store_true", help="with --write: keep the rows stored already")
    args = p.parse_args(argv)
    rows = [row(r) for r in args.runs]
    for r in rows:
        print(json.dumps({k: r[k] for k in ("recipe", "steps", "lr_g", "lr_d", "d_steps", "init_seed", "fid")}))
    if args.append and not args.write:
        raise SystemExit("error: --append only makes sense with --write")
    if args.append and ASSET.is_file():
        new = {r["tensors_sha256"] for r in rows}
        rows = [r for r in json.loads(ASSET.read_text())["rows"] if r["tensors_sha256"] not in new] + rows
    if args.write:
        ASSET.write_text(json.dumps({"about": "finished GAN training runs (issue 17), collected by "
                                              "benchmarks/gan_trials.py from their sidecars; FID etc. as "
                                              "the recipe's evaluate() measured them (eval_n samples, seed 0, "
                                              "domain-classifier features, test split)",
                                     "rows": rows}, indent=1) + "\n")
        print(f"wrote {ASSET}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
