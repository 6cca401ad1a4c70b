"""Runs ``python -m gencourse train`` for several recipes in one ``torchrun`` launch (tests only).

Usage: ``torchrun --nproc_per_node=2 tests/ddp_recipes.py SPEC.json OUT``, where SPEC is a list of
``[name, [extra CLI arguments]]``.  Each rank saves the weights it ends with to
``OUT/NAME/rank{R}.pt``, so the test can compare the ranks with each other and with one process.
"""
import datetime
import json
import os
import sys
from pathlib import Path

import torch

from gencourse import __main__ as cli
from gencourse import recipes


def main() -> int:
    spec, out = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
    rank = int(os.environ.get("RANK", "0"))
    # one group for all the runs (train_cli reuses it); a short timeout so a failing rank cannot hang the test
    torch.distributed.init_process_group("gloo", timeout=datetime.timedelta(seconds=180))
    built = {}
    build_trainer = recipes.build_trainer

    def capture(*args, **kw):  # keep the trainer's modules to save them
        trainer, modules, cfg = build_trainer(*args, **kw)
        built["modules"] = modules
        return trainer, modules, cfg

    recipes.build_trainer = capture
    failed = []
    for name, extra in spec:
        code = cli.main(["train", name, "--out", str(out / name / "run"), *extra])
        if code != 0:
            failed.append((name, code))
            continue
        state = {k: {n: t.detach().cpu() for n, t in m.state_dict().items()} for k, m in built["modules"].items()}
        (out / name).mkdir(parents=True, exist_ok=True)
        torch.save(state, out / name / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()
    if failed:
        print(f"rank {rank}: failed {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
