"""The book's table of contents and what its build executes (no browser needed)."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("book_execute", ROOT / "book" / "execute.py")
book_execute = importlib.util.module_from_spec(spec)
spec.loader.exec_module(book_execute)


def test_every_chapter_and_its_solutions_are_executed_and_exercises_are_not():
    run = book_execute.toc_notebooks()
    chapters = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert [p for p in run if p.parent.name == "notebooks"] == chapters  # all of them, in chapter order
    assert {p.name for p in run if p.parent.name == "solutions"} == {p.name for p in chapters}
    assert not [p for p in run if p.parent.name == "exercises"]  # stubs that fail until a student fills them in


def test_each_chapter_is_followed_by_its_exercises_and_solutions():
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    chapters = next(p for p in toc["parts"] if p["caption"] == "Chapters")["chapters"]
    for entry in chapters:
        name = Path(entry["file"]).name
        assert [s["file"] for s in entry["sections"]] == [f"exercises/{name}", f"solutions/{name}"]
