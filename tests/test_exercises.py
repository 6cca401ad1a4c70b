"""The exercise mechanism: exercises/ is generated from solutions/, and untouched exercises fail their checks.

That the solutions pass their checks is proven by running solutions/ with nbval (part of the test command).
"""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from gencourse import exercises

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_exercises_are_up_to_date():
    assert exercises.stale(ROOT) == [], "run `python -m gencourse.exercises` to regenerate exercises/"


def test_every_chapter_has_solutions_and_exercises():
    sols = {p.name for p in (ROOT / "solutions").glob("*.ipynb")}
    assert sols == {p.name for p in CHAPTERS} == {p.name for p in EXERCISES}


@pytest.mark.parametrize("path", CHAPTERS + sorted((ROOT / "solutions").glob("*.ipynb")) + EXERCISES,
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebooks_are_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    assert not exercises.has_outputs(nb), f"{path} has outputs: run `python -m gencourse.exercises --strip`"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "every page needs a '# Title'"
    # the Colab install cell: hidden from the book and skipped by CI, but it must really install on Colab
    colab = [c for c in nb.cells if c.cell_type == "code" and "google.colab" in c.source]
    assert len(colab) == 1, "every notebook needs one Colab install cell (see CONTRIBUTING.md)"
    assert {"skip-execution", "nbval-skip", "remove-cell"} <= set(colab[0].metadata.get("tags", []))
    live = [ln.strip() for ln in colab[0].source.splitlines() if not ln.strip().startswith("#")]
    assert any(ln.startswith("%pip install") and "gencourse" in ln for ln in live), \
        "the Colab cell's %pip install line is commented out"


def test_make_exercise_replaces_marked_blocks():
    sol = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 9. Topic: solutions\nText."),
        nbformat.v4.new_code_cell("def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION"),
        nbformat.v4.new_markdown_cell("Why?\n<!-- BEGIN SOLUTION -->\nBecause.\n<!-- END SOLUTION -->"),
    ])
    ex = exercises.make_exercise(sol)
    assert ex.cells[0].source.startswith("# 9. Topic: exercises")
    assert ex.cells[1].source == f"def f(x):\n    y = 1\n    {exercises.STUB}"
    assert "Because" not in ex.cells[2].source and "Write your answer here" in ex.cells[2].source
    assert "BEGIN SOLUTION" in sol.cells[1].source  # the input is not modified


@pytest.mark.parametrize("src,msg", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("### BEGIN SOLUTION\n### END SOLUTION\n### END SOLUTION", "without"),
    ("x = 1", "no '### BEGIN SOLUTION' block"),
])
def test_make_exercise_rejects_bad_markers(src, msg):
    sol = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T: solutions"),
                                          nbformat.v4.new_code_cell(src)])
    with pytest.raises(exercises.ExerciseFormatError, match=msg):
        exercises.make_exercise(sol)


def test_title_is_required():
    sol = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Untitled"),
                                          nbformat.v4.new_code_cell("### BEGIN SOLUTION\n### END SOLUTION")])
    with pytest.raises(exercises.ExerciseFormatError, match="solutions"):
        exercises.make_exercise(sol)


@pytest.mark.slow
@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_untouched_exercises_fail_their_checks(path):
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if "skip-execution" not in c.metadata.get("tags", [])]
    NotebookClient(nb, timeout=300, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    checks = [c for c in nb.cells if c.cell_type == "code" and "check." in c.source]
    assert checks, f"{path.name} has no check cells"
    for cell in checks:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert errors and errors[0].ename == "CheckFailed", (
            f"{path.name}: `{cell.source.strip()}` should fail with CheckFailed on the untouched exercise, "
            f"got {[o.get('ename') for o in errors] or 'no error'}")
        assert "not written yet" in errors[0].evalue
