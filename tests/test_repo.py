"""One setting for where the course lives (issue 20, item 9): the book's launch buttons
(``_config.yml``) and every notebook's install cell agree, and ``python -m gencourse repo URL``
moves them all at once."""
import shutil
from pathlib import Path

import nbformat
import pytest

from gencourse import exercises, repo

ROOT = Path(__file__).resolve().parent.parent


def test_book_and_every_notebook_point_at_one_repository():
    url, branch = repo.current(ROOT)
    assert url.startswith("https://github.com/")
    assert repo.disagreements(ROOT) == []


def _copy_course(tmp_path):
    for d in ("notebooks", "solutions", "exercises"):
        shutil.copytree(ROOT / d, tmp_path / d)
    (tmp_path / "book").mkdir()
    shutil.copy(ROOT / "book" / "setup.md", tmp_path / "book")
    shutil.copy(ROOT / "_config.yml", tmp_path)
    return tmp_path


def test_repo_command_rewrites_config_notebooks_and_exercises(tmp_path):
    top = _copy_course(tmp_path)
    before = {p: nbformat.read(p, as_version=4) for p in sorted(top.glob("*/*.ipynb"))}
    changed = repo.set_repository("https://github.com/alice/genai-course.git", "fall26", top)
    assert repo.current(top) == ("https://github.com/alice/genai-course", "fall26")
    assert repo.disagreements(top) == []
    assert exercises.stale(top) == []  # exercises/ regenerated from the rewritten solutions
    names = {p.relative_to(top).as_posix() for p in changed}
    assert "_config.yml" in names and "book/setup.md" in names
    for path, old in before.items():
        new = nbformat.read(path, as_version=4)
        assert [c.id for c in new.cells] == [c.id for c in old.cells]
        edited = [(a.source, b.source) for a, b in zip(old.cells, new.cells) if a.source != b.source]
        assert len(edited) == 1, path  # the install cell, nothing else
        assert 'gencourse @ git+https://github.com/alice/genai-course@fall26"' in edited[0][1]
        assert path.relative_to(top).as_posix() in names
    config = (top / "_config.yml").read_text()
    assert "url: https://github.com/alice/genai-course" in config and "branch: fall26" in config
    assert "colab_url: https://colab.research.google.com" in config  # other urls untouched
    assert "git clone https://github.com/alice/genai-course " in (top / "book" / "setup.md").read_text()
    # back to main: no @branch suffix in the install cells
    repo.set_repository("https://github.com/alice/genai-course", "main", top)
    cell = next(c for c in nbformat.read(top / "notebooks" / "01_autoencoders.ipynb", as_version=4).cells
                if "git+" in c.source)
    assert 'gencourse @ git+https://github.com/alice/genai-course"' in cell.source


def test_disagreement_is_reported_and_bad_urls_rejected(tmp_path):
    top = _copy_course(tmp_path)
    path = top / "solutions" / "02_vae.ipynb"
    path.write_text(path.read_text().replace("github.com/gencourse/gencourse", "github.com/someone/else"))
    assert repo.disagreements(top) == ['solutions/02_vae.ipynb: gencourse @ git+https://github.com/someone/else']
    for bad in ("github.com/alice/x", "https://gitlab.com/alice/x", "https://github.com/alice"):
        with pytest.raises(ValueError, match="expected a GitHub repository URL"):
            repo.set_repository(bad, top=top)
