"""Where the course lives: one setting for the book's launch buttons and every notebook's install cell.

``python -m gencourse repo URL [--branch B]`` (for instructors who fork the course) rewrites

* ``_config.yml``: ``repository.url`` and ``repository.branch`` (the book's Colab and repository buttons);
* the install cell of every notebook in ``notebooks/`` and ``solutions/``
  (``%pip install "gencourse @ git+URL@B"``), cell ids and everything else kept;
* ``book/setup.md``'s clone command;

and then regenerates ``exercises/`` from the solutions (:mod:`gencourse.exercises`), so the
exercises' install cells follow.  ``python -m gencourse repo`` without a URL prints the current
setting and every place that disagrees with it (:func:`disagreements`; a test runs it).
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

NOTEBOOK_DIRS = ("notebooks", "solutions", "exercises")
_URL = r"https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?"
#: the install cell's requirement: gencourse @ git+URL[@BRANCH]
_INSTALL = re.compile(rf'gencourse @ git\+(?P<url>{_URL})(?:\.git)?(?:@(?P<branch>[A-Za-z0-9_./-]+))?(?=["\'\s])')
_CONFIG_URL = re.compile(r"^(?P<lead>\s+url:\s*)(?P<url>\S+)\s*$", re.M)
_CONFIG_BRANCH = re.compile(r"^(?P<lead>\s+branch:\s*)(?P<branch>\S+)\s*$", re.M)
_CLONE = re.compile(rf"git clone (?P<url>{_URL})(?:\.git)?(?=\s)")


def root() -> Path:
    """The course checkout this package was installed from (the folder holding ``_config.yml``)."""
    top = Path(__file__).resolve().parent.parent
    if not (top / "_config.yml").is_file():
        raise FileNotFoundError(f"{top} has no _config.yml: run this from an editable install of a course "
                                "clone (pip install -e .)")
    return top


def _repository_block(text: str) -> tuple[int, int]:
    m = re.search(r"^repository:\s*\n((?:[ \t]+.*\n?|\s*\n)*)", text, re.M)
    if m is None:
        raise ValueError("_config.yml has no repository: block")
    return m.start(1), m.end(1)


def current(top: Path | None = None) -> tuple[str, str]:
    """``(url, branch)`` of ``_config.yml``'s ``repository`` block."""
    text = ((top or root()) / "_config.yml").read_text()
    a, b = _repository_block(text)
    url, branch = _CONFIG_URL.search(text[a:b]), _CONFIG_BRANCH.search(text[a:b])
    if url is None:
        raise ValueError("_config.yml's repository block has no url:")
    return url["url"], branch["branch"] if branch else "main"


def _requirement(url: str, branch: str) -> str:
    return f"gencourse @ git+{url}" + ("" if branch == "main" else f"@{branch}")


def _notebooks(top: Path, dirs=NOTEBOOK_DIRS):
    for d in dirs:
        yield from sorted((top / d).glob("*.ipynb"))


def disagreements(top: Path | None = None) -> list[str]:
    """Every install cell and clone command that does not point at ``_config.yml``'s repository
    (``"path: what it says"``), and notebooks with no install cell at all; empty when all agree."""
    top = top or root()
    url, branch = current(top)
    want = _requirement(url, branch)
    bad = []
    for path in _notebooks(top):
        found = [m for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"
                 for m in _INSTALL.finditer(c.source)]
        if not found:
            bad.append(f"{path.relative_to(top)}: no install cell (gencourse @ git+URL)")
        bad += [f"{path.relative_to(top)}: {m[0]}" for m in found if m[0] != want]
    setup = top / "book" / "setup.md"
    if setup.is_file():
        bad += [f"book/setup.md: {m[0]}" for m in _CLONE.finditer(setup.read_text()) if m["url"] != url]
    return bad


def set_repository(url: str, branch: str = "main", top: Path | None = None, *, regenerate: bool = True) -> list[Path]:
    """Point the book and every notebook at ``url`` (``https://github.com/OWNER/NAME``) and ``branch``;
    returns the files changed.  ``regenerate``: rebuild ``exercises/`` from the solutions."""
    url = url.rstrip("/").removesuffix(".git")
    if not re.fullmatch(_URL, url):
        raise ValueError(f"expected a GitHub repository URL such as https://github.com/OWNER/NAME, got {url!r}")
    if not re.fullmatch(r"[A-Za-z0-9_./-]+", branch):
        raise ValueError(f"expected a branch name such as main, got {branch!r}")
    top = top or root()
    changed = []
    cfg = top / "_config.yml"
    text = cfg.read_text()
    a, b = _repository_block(text)
    block = _CONFIG_URL.sub(lambda m: m["lead"] + url, text[a:b], count=1)
    block = _CONFIG_BRANCH.sub(lambda m: m["lead"] + branch, block, count=1)
    if text[a:b] != block:
        cfg.write_text(text[:a] + block + text[b:])
        changed.append(cfg)
    want = _requirement(url, branch)
    for path in _notebooks(top, ("notebooks", "solutions")):
        nb = nbformat.read(path, as_version=4)
        edited = False
        for cell in nb.cells:
            if cell.cell_type == "code" and _INSTALL.search(cell.source):
                cell.source = _INSTALL.sub(want, cell.source)
                edited = True
        if edited:
            from .exercises import _dump  # the course's notebook format (as committed)

            text = _dump(nb)
            if text != path.read_text():
                path.write_text(text)
                changed.append(path)
    setup = top / "book" / "setup.md"
    if setup.is_file():
        text = setup.read_text()
        new = _CLONE.sub(f"git clone {url}", text)
        if new != text:
            setup.write_text(new)
            changed.append(setup)
    if regenerate:
        from . import exercises

        changed += exercises.generate(top)
    return changed
