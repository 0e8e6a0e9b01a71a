"""Synthetic classes for the grader tests.

Each submission is built from the instructor source (``solutions/``) and the student release, and
carries the score it *deserves*, computed from cell-level expectations (which autograded cells it
should pass), never from the grader's output. Typical mistakes come from ``solutions/MISTAKES.md``
(a replacement for one solution cell, with the list of autograded cells it must fail).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from skips import in_ci

REPO = Path(__file__).resolve().parent.parent


def sandbox_args() -> list[str]:
    """``[]`` where the sandbox works (always in CI), else ``["--unsafe-no-sandbox"]``."""
    from grader.sandbox import available

    ok, _ = available()
    if ok or in_ci():
        return []
    return ["--unsafe-no-sandbox"]


def gid(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def grade_cells(nb) -> dict[str, float]:
    """Autograded (code) grade cells: ``{grade_id: points}``."""
    return {gid(c): float(c.metadata["nbgrader"]["points"]) for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}


def strip_markers(text: str) -> str:
    return "\n".join(line for line in text.splitlines()
                     if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)


def completed(source, released, replace: dict[str, str] | None = None,
              prefix: str = ""):
    """The released notebook with every solution code cell filled in from the source.

    ``replace`` maps a solution cell's grade_id to its whole replacement source (a mistake);
    ``prefix`` is prepended to every solution code cell (e.g. a failing import).
    """
    nb = copy.deepcopy(released)
    src = {gid(c): c for c in source.cells if gid(c)}
    for cell in nb.cells:
        md = cell.metadata.get("nbgrader", {})
        if md.get("solution") and cell.cell_type == "code":
            text = (replace or {}).get(md["grade_id"]) or strip_markers(src[md["grade_id"]].source)
            cell.source = prefix + text
    return nb


def deleted_cell(nb, grade_id: str):
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if gid(c) != grade_id]
    return nb


def edited_cell(nb, grade_id: str, new_source: str):
    nb = copy.deepcopy(nb)
    for c in nb.cells:
        if gid(c) == grade_id:
            c.source = new_source
    return nb


def duplicated_cell(nb, grade_id: str):
    nb = copy.deepcopy(nb)
    for i, c in enumerate(nb.cells):
        if gid(c) == grade_id:
            dup = copy.deepcopy(c)
            dup["id"] = (dup.get("id") or "dup") + "-copy"
            nb.cells.insert(i + 1, dup)
            break
    return nb


@dataclass
class Mistake:
    title: str
    assignment: str
    cell: str
    fails: list[str]
    code: str


def mistakes(path: Path = REPO / "solutions" / "MISTAKES.md") -> list[Mistake]:
    """The entries of ``solutions/MISTAKES.md``."""
    if not path.exists():
        return []
    out = []
    for sec in re.split(r"^## ", path.read_text(), flags=re.M)[1:]:
        title = sec.splitlines()[0].strip()
        a = re.search(r"^- assignment: `([^`]+)`", sec, re.M)
        c = re.search(r"^- replace cell: `([^`]+)`", sec, re.M)
        f = re.search(r"^- fails: (.+)$", sec, re.M)
        code = re.search(r"```python\n(.*?)```", sec, re.S)
        if a and c and f and code:
            out.append(Mistake(title, a.group(1), c.group(1), re.findall(r"`([^`]+)`", f.group(1)),
                               code.group(1).rstrip("\n")))
    return out


def load_pair(solutions: Path, released_dir: Path | None, assignment: str, db_url: str):
    """(source, released) notebooks of a one-notebook assignment; released regenerated if needed."""
    from grader.release import load_source, release_notebook

    source = load_source(solutions / assignment / f"{assignment}.ipynb")
    rel_path = (released_dir / assignment / f"{assignment}.ipynb") if released_dir else None
    if rel_path and rel_path.exists():
        released = nbformat.read(rel_path, as_version=4)
    else:
        released = release_notebook(source, assignment, assignment, db_url)
    return source, released


def write(submitted: Path, student: str, assignment: str, name: str, content) -> None:
    """Write a submission: a notebook, raw text, or nothing (``None``: folder only)."""
    d = submitted / student / assignment
    d.mkdir(parents=True, exist_ok=True)
    if content is None:
        return
    target = d / name
    if isinstance(content, str):
        target.write_text(content)
    else:
        nbformat.write(content, target)
