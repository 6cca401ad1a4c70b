"""Exercises are generated from the solutions: one source, no drift.

A solutions notebook (``solutions/NN_topic.ipynb``) marks each answer::

    def kl_divergence(mu, log_var):
        ### BEGIN SOLUTION
        return 0.5 * (log_var.exp() + mu**2 - 1 - log_var).sum(-1)
        ### END SOLUTION

and, in markdown, ``<!-- BEGIN SOLUTION -->`` ... ``<!-- END SOLUTION -->``.
The exercises notebook replaces each marked block with a stub (code:
``raise NotImplementedError(...)`` at the same indentation; markdown: a prompt)
and its title ``...: solutions`` with ``...: exercises``; outputs are stripped.

    python -m gencourse.exercises            # regenerate exercises/ from solutions/
    python -m gencourse.exercises --check    # exit 1 if exercises/ is stale
    python -m gencourse.exercises --strip    # remove outputs from notebooks/ and solutions/
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

__all__ = ["make_exercise", "generate", "stale", "strip_outputs", "normalise", "has_outputs", "STUB"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
MD_BEGIN, MD_END = "<!-- BEGIN SOLUTION -->", "<!-- END SOLUTION -->"
STUB = 'raise NotImplementedError("Exercise: replace this line with your code")'
MD_STUB = "*Write your answer here.*"


class ExerciseFormatError(ValueError):
    pass


def _replace_code(src: str, where: str) -> str:
    out, inside, n = [], False, 0
    for line in src.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ExerciseFormatError(f"{where}: nested {BEGIN}")
            inside, n = True, n + 1
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{STUB}")
        elif stripped == END:
            if not inside:
                raise ExerciseFormatError(f"{where}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ExerciseFormatError(f"{where}: {BEGIN} is never closed by {END}")
    return "\n".join(out)


def _replace_markdown(src: str, where: str) -> str:
    if src.count(MD_BEGIN) != src.count(MD_END):
        raise ExerciseFormatError(f"{where}: unbalanced {MD_BEGIN} / {MD_END}")
    return re.sub(re.escape(MD_BEGIN) + r".*?" + re.escape(MD_END), MD_STUB, src, flags=re.S)


def _clear(cell) -> None:
    if cell.cell_type == "code":
        cell.outputs = []
        cell.execution_count = None
    cell.metadata.pop("execution", None)


def make_exercise(solution: nbformat.NotebookNode, where: str = "notebook") -> nbformat.NotebookNode:
    """The exercises notebook for a solutions notebook (a new object; the input is not changed)."""
    nb = nbformat.from_dict(solution)
    first = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if first is None or not re.match(r"#\s.*:\s*solutions\s*$", first.source.splitlines()[0], re.I):
        raise ExerciseFormatError(f"{where}: the first markdown cell must start with a title '# ...: solutions'")
    lines = first.source.splitlines()
    lines[0] = re.sub(r":\s*solutions\s*$", ": exercises", lines[0], flags=re.I)
    first.source = "\n".join(lines)
    normalise(nb)
    n_blocks = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and BEGIN in cell.source:
            n_blocks += 1
            cell.source = _replace_code(cell.source, f"{where} cell {i}")
        elif cell.cell_type == "markdown" and MD_BEGIN in cell.source:
            cell.source = _replace_markdown(cell.source, f"{where} cell {i}")
    if n_blocks == 0:
        raise ExerciseFormatError(f"{where}: no '{BEGIN}' block found; a solutions notebook needs at least one")
    return nb


def _dump(nb) -> str:
    return nbformat.writes(nb) + ("" if nbformat.writes(nb).endswith("\n") else "\n")


def _pairs(root: Path):
    for sol in sorted((root / "solutions").glob("*.ipynb")):
        yield sol, root / "exercises" / sol.name


def generate(root: Path) -> list[Path]:
    """Write ``exercises/X.ipynb`` for every ``solutions/X.ipynb``; returns the files written."""
    written = []
    (root / "exercises").mkdir(exist_ok=True)
    for sol, ex in _pairs(root):
        text = _dump(make_exercise(nbformat.read(sol, as_version=4), str(sol)))
        if not ex.exists() or ex.read_text() != text:
            ex.write_text(text)
            written.append(ex)
    return written


def stale(root: Path) -> list[str]:
    """Problems that make ``exercises/`` differ from what :func:`generate` would write."""
    problems = []
    expected = set()
    for sol, ex in _pairs(root):
        expected.add(ex.name)
        text = _dump(make_exercise(nbformat.read(sol, as_version=4), str(sol)))
        if not ex.exists():
            problems.append(f"{ex} is missing")
        elif ex.read_text() != text:
            problems.append(f"{ex} differs from what {sol} generates (was it edited by hand?)")
    for ex in sorted((root / "exercises").glob("*.ipynb")):
        if ex.name not in expected:
            problems.append(f"{ex} has no solutions notebook")
    return problems


def has_outputs(nb) -> bool:
    return any(c.cell_type == "code" and (c.outputs or c.execution_count) for c in nb.cells)


KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def normalise(nb) -> None:
    """Strip outputs, execution counts and widget state; keep only the standard notebook metadata."""
    for c in nb.cells:
        _clear(c)
    nb.metadata = nbformat.from_dict({"kernelspec": KERNELSPEC, "language_info": {"name": "python"},
                                      **({"colab": nb.metadata["colab"]} if "colab" in nb.metadata else {})})


def strip_outputs(paths) -> list[Path]:
    """Normalise notebooks in place (see :func:`normalise`); returns the files changed."""
    changed = []
    for p in paths:
        before = Path(p).read_text()
        nb = nbformat.read(p, as_version=4)
        normalise(nb)
        after = _dump(nb)
        if after != before:
            Path(p).write_text(after)
            changed.append(Path(p))
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gencourse.exercises", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if exercises/ is stale")
    parser.add_argument("--strip", action="store_true", help="strip outputs from notebooks/ and solutions/")
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")
    args = parser.parse_args(argv)
    if args.strip:
        paths = sorted((args.root / "notebooks").glob("*.ipynb")) + sorted((args.root / "solutions").glob("*.ipynb"))
        for p in strip_outputs(paths):
            print(f"stripped {p}")
    if args.check:
        problems = stale(args.root)
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print("Run `python -m gencourse.exercises` to regenerate exercises/.", file=sys.stderr)
            return 1
        print("exercises/ is up to date")
        return 0
    for p in generate(args.root):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
