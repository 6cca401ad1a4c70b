"""FID over a GAN run: evaluate a training run's ``state.pt`` as it passes given steps (issue 17).

    python benchmarks/gan_curve.py RUN_DIR RECIPE STEP [STEP ...]

Run it beside ``python -m gencourse train RECIPE --out RUN_DIR``: every 30 s it reads ``RUN_DIR/state.pt``
(written atomically every ``--save-every`` steps, so a read never sees half a file) and, once the run has
passed the next STEP, scores the generator the recipe samples from (the EMA one) with the recipe's own
evaluation (``eval_samples`` samples, seed 0, against the test split), appending one JSON line per point to
``RUN_DIR.curve.jsonl``: step, generator updates, training seconds, FID, precision, recall, the floor.  It
stops after the last STEP.  ``benchmarks/gan_trials.py RUN_DIR --write`` stores the curve with the run.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gencourse import checkpoint, recipes


def score(ck: checkpoint.Checkpoint, recipe) -> dict:
    """The recipe's evaluation of the generator in a run's saved state ``ck`` (a loaded ``state.pt``)."""
    cfg = {k: v for k, v in ck.config.items() if k != "recipe"}
    mods = recipe.build(cfg)
    for name, module in mods.items():
        if name in ck.state["modules"]:
            module.load_state_dict(ck.state["modules"][name])
        module.eval()
    with torch.no_grad():
        res = recipe.evaluate(mods, cfg, "cpu")
    step = ck.state["step"]
    return {"step": step, "generator_updates": step // cfg["d_steps"],
            "train_seconds": round(ck.state["seconds"], 1),
            **{k: res[k] for k in ("fid", "precision", "recall", "floor_fid", "eval_n")}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("recipe")
    p.add_argument("steps", nargs="+", type=int)
    p.add_argument("--poll", type=float, default=30.0, help="seconds between reads of state.pt")
    args = p.parse_args(argv)
    recipe = recipes.get(args.recipe)
    todo, out = sorted(args.steps), args.run.parent / f"{args.run.name}.curve.jsonl"
    torch.set_num_threads(1)  # beside a training run: take one core, not all of them
    while todo:
        path = args.run / "state.pt"
        # the .pt is replaced atomically and checked against its own SHA-256; its sidecar is rewritten just
        # after it, so a read between the two would see them disagree: the sidecar is not checked here
        ck = checkpoint.load(path, check_sidecar=False) if path.is_file() else None
        if ck is not None and ck.state["step"] >= todo[0]:
            row = score(ck, recipe)
            print(json.dumps(row), flush=True)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            todo = [s for s in todo if s > row["step"]]
        else:
            time.sleep(args.poll)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
