"""Synthetic classes for the grader tests: submissions built from a source notebook, each with the
score it deserves computed from cell-level expectations (never from the grader's output).

A *variant* is a function ``(source_nb, released_nb) -> (submission_nb_or_raw_text, expected)``
where ``expected`` maps each autograded grade_id to True (deserves its points) or False. The
expected score is then ``sum(points of True cells)``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path

import nbformat

SOLUTION_RE = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION[ \t]*\n?",
                         re.S | re.M)


def grade_cells(nb) -> dict[str, float]:
    """Autograded (code) grade cells of a notebook: ``{grade_id: points}``."""
    return {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"])
            for c in nb.cells if c.cell_type == "code"
            and c.metadata.get("nbgrader", {}).get("grade")}


def student_from_source(source, released, replace: dict[str, str] | None = None):
    """The released notebook with each solution cell filled in from the source.

    ``replace`` maps a solution cell's grade_id to replacement code for its solution region
    (a typical mistake); other solution cells get the instructor's code.
    """
    nb = copy.deepcopy(released)
    src = {c.metadata["nbgrader"]["grade_id"]: c for c in source.cells
           if c.metadata.get("nbgrader", {}).get("grade_id")}
    for cell in nb.cells:
        md = cell.metadata.get("nbgrader", {})
        if md.get("solution") and cell.cell_type == "code":
            text = src[md["grade_id"]].source
            if replace and md["grade_id"] in replace:
                text = apply_mistake(text, replace[md["grade_id"]])
            cell.source = strip_markers(text)
    return nb


def strip_markers(text: str) -> str:
    return "\n".join(line for line in text.splitlines()
                     if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)


def apply_mistake(text: str, code: str) -> str:
    """Replace the BEGIN/END SOLUTION region with ``code`` (indented like the region)."""
    m = SOLUTION_RE.search(text)
    assert m, "no solution region to replace"
    indent = m.group(1)
    body = "\n".join(indent + line if line.strip() else line
                     for line in code.strip("\n").splitlines())
    return text[:m.start()] + indent + "### BEGIN SOLUTION\n" + body + "\n" + indent + \
        "### END SOLUTION\n" + text[m.end():]


def write_submission(course_submitted: Path, student: str, assignment: str, notebook: str,
                     content) -> None:
    d = course_submitted / student / assignment
    d.mkdir(parents=True, exist_ok=True)
    if content is None:
        return
    if isinstance(content, tuple):  # (file name, raw text)
        (d / content[0]).write_text(content[1])
        return
    if isinstance(content, str):
        (d / f"{notebook}.ipynb").write_text(content)
        return
    nbformat.write(content, d / f"{notebook}.ipynb")
    (d / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC\n")


Variant = Callable[..., tuple[object, dict[str, bool]]]


def deleted_cell(nb, grade_id: str):
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != grade_id]
    return nb


def edited_cell(nb, grade_id: str, new_source: str):
    nb = copy.deepcopy(nb)
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            c.source = new_source
    return nb


def duplicated_cell(nb, grade_id: str):
    nb = copy.deepcopy(nb)
    for i, c in enumerate(nb.cells):
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            dup = copy.deepcopy(c)
            dup.pop("id", None)
            nb.cells.insert(i + 1, nbformat.from_dict(dup))
            break
    for c in nb.cells:
        c.pop("id", None)
    nb.nbformat_minor = 4
    return nb


def raw_json(obj) -> str:
    return json.dumps(obj)
