"""Execute the book's notebooks in parallel into Jupyter Book's execution cache.

    python book/execute.py [--jobs N] [NOTEBOOK ...]

Jupyter Book 1 (``execute_notebooks: cache``) executes the notebooks one after the
other. This script runs the same executions ``--jobs`` at a time (default: the
number of CPU cores) and stores each result in the cache that ``jupyter-book build``
reads (``_build/.jupyter_cache``), so the build that follows finds every notebook
already executed and only renders. A notebook whose code has not changed since its
cached run is skipped. A notebook that fails is *not* cached: the build then runs it
again and reports the error with its traceback, exactly as without this script.

Each kernel gets one torch thread (``OMP_NUM_THREADS=1``) unless the environment
says otherwise, so that N kernels on N cores do not oversubscribe them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _config() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "_config.yml").read_text())


def toc_notebooks() -> list[Path]:
    """The .ipynb files of ``_toc.yml`` that the build executes (not those in ``exclude_patterns``)."""
    import yaml

    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    excluded = _config().get("execute", {}).get("exclude_patterns", [])
    out = []
    for f in files:
        path = ROOT / f"{f}.ipynb"
        if path.is_file() and not any(fnmatch(f"{f}.ipynb", pat) for pat in excluded):
            out.append(path)
    return out


def _cache():
    from jupyter_cache import get_cache

    return get_cache(str(ROOT / "_build" / ".jupyter_cache"))


def _run(path: str, timeout: int) -> tuple[str, object, float, str | None]:
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    nb = nbformat.read(path, as_version=4)
    res = single_nb_execution(nb, cwd=str(Path(path).parent), allow_errors=False, timeout=timeout,
                              meta_override=True)
    return path, nb, res.time, (res.exc_string if res.err is not None else None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("notebooks", nargs="*", type=Path, help="only these notebooks of the book (default: all)")
    args = p.parse_args(argv)
    only = {n.resolve() for n in args.notebooks}
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import nbformat
    from jupyter_cache.base import CacheBundleIn

    timeout = int(_config().get("execute", {}).get("timeout", 900))
    cache = _cache()
    todo = []
    for path in toc_notebooks():
        if only and path not in only:
            continue
        nb = nbformat.read(path, as_version=4)
        try:
            cache.match_cache_notebook(nb)
        except KeyError:
            todo.append(path)
    print(f"book/execute.py: {len(todo)} notebook(s) to execute, {args.jobs} at a time", flush=True)
    failed = 0
    t0 = time.perf_counter()
    # heaviest first, so that the pool does not end on one long notebook
    todo.sort(key=lambda p: -p.stat().st_size)
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for path, nb, seconds, err in pool.map(_run, [str(p) for p in todo], [timeout] * len(todo)):
            rel = Path(path).relative_to(ROOT)
            if err is None:
                cache.cache_notebook_bundle(CacheBundleIn(nb, path, data={"execution_seconds": seconds}),
                                            check_validity=False, overwrite=True)
                print(f"  {rel}: {seconds:.0f} s", flush=True)
            else:
                failed += 1
                print(f"  {rel}: FAILED after {seconds:.0f} s (the book build will rerun it and show the error)",
                      flush=True)
    print(f"book/execute.py: done in {time.perf_counter() - t0:.0f} s, {failed} failed", flush=True)
    return 0  # failures are reported by the build itself


if __name__ == "__main__":
    sys.exit(main())
