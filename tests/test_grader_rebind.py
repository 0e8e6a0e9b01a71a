"""An answer cell that rebinds a name a locked cell defines (grader.testing.LockedNames).

Before the fix an answer cell could swap a given helper or a test cell's own watcher for its own
and score full marks, in ``check`` and at grading: ex7's answer redefining the test's
``_with_own_calls`` (so the watcher never sees ``F.conv_transpose2d``) scored 8/8, ex5's
redefining the test's ``_run_conversion`` to return the test's own ``_jax_reference`` (while
``jax_to_torch`` only raises) 10/10. Now the tests run with the locked cell's object, the
submission scores what its own code deserves (6/8, 7/10), grading flags it and ``check`` warns.
A helper under a new name and an answer function defined twice keep full marks, unflagged.
Submissions go through the real ``autograde`` path (sandboxed where bubblewrap works) and
through ``check``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from grader_class import sandbox_args

pytestmark = [pytest.mark.xdist_group("grader_rebind")]

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"
RELEASED = REPO / "exercises"

EX7_REBIND = '''\
def _with_own_calls(fn, *a, **k):
    return fn(*a, **k), "no call"


def conv_transpose_subpixel(x, w, s):
    return F.conv_transpose2d(x, w, stride=s)
'''
EX5_REBIND = '''\
def jax_to_torch(k, stride, low, high, dilation=1):
    raise ValueError("not done yet")


def _run_conversion(convert, args, x, w, stride, dilation=1):
    return "mine", _jax_reference(x, w, stride, args[2], args[3], dilation)
'''
EX7_REBIND_FLAG = ("answer cell `subpixel` (#9) rebinds `_with_own_calls`, which the test cell "
                   "`test_pixel_shuffle` (#4) defines; the tests used the test one")
EX5_REBIND_FLAG = ("answer cell `jax_to_torch` (#8) rebinds `_run_conversion`, which the test "
                   "cell `test_tf_same` (#5) defines; the tests used the test one")


def _solution_cells(assignment: str) -> dict[str, str]:
    nb = nbformat.read(SOLUTIONS / assignment / f"{assignment}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}


def _own_helper() -> str:
    """ex7: the solution, its pixel shuffle through a helper of its own, under a new name."""
    return ("def _my_phase_calls(fn, *a, **k):  # a helper of the student's own\n"
            "    return fn(*a, **k)\n\n\n"
            + _solution_cells("ex7_subpixel")["subpixel"].replace(
                "def conv_transpose_subpixel(x, w, s):",
                "def _unused_draft(x, w, s):\n    return None\n\n\n"
                "def conv_transpose_subpixel(x, w, s):", 1))


def _redefined() -> str:
    """ex5: a first draft of the answer, then the answer again (as re-running a cell would)."""
    sol = _solution_cells("ex5_conventions")["jax_to_torch"]
    draft = "def jax_to_torch(k, stride, low, high, dilation=1):\n    return None\n\n\n"
    return draft + sol + "\n\n" + sol


CASES = {  # student -> (assignment, answer cell, its code)
    "ex7rebind": ("ex7_subpixel", "subpixel", EX7_REBIND),
    "ex5rebind": ("ex5_conventions", "jax_to_torch", EX5_REBIND),
    "ex7helper": ("ex7_subpixel", "subpixel", None),
    "ex5redefined": ("ex5_conventions", "jax_to_torch", None),
}


def _code(student: str) -> str:
    code = CASES[student][2]
    if code is None:
        code = _own_helper() if student == "ex7helper" else _redefined()
    return code


def _submission(base: Path, student: str) -> Path:
    """What the student hands in: the release with every answer cell the solution's, but one."""
    assignment, cell, _ = CASES[student]
    answers = _solution_cells(assignment) | {cell: _code(student)}
    nb = nbformat.read(RELEASED / assignment / f"{assignment}.ipynb", as_version=4)
    for c in nb.cells:
        md = c.metadata.get("nbgrader", {})
        if c.cell_type == "code" and md.get("solution"):
            c.source = answers[md["grade_id"]]
    path = base / assignment / f"{assignment}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, dict]:
    """Every case graded through autograde: student -> results.json."""
    from grader.autograde import autograde
    from grader.gradebook import Course

    tmp = tmp_path_factory.mktemp("rebind")
    course = Course.open(tmp / "course", solutions=SOLUTIONS)
    for student in CASES:
        _submission(course.submitted / student, student)
    summary = autograde(course, sorted({a for a, _, _ in CASES.values()}), None, jobs=1,
                        sandbox=not sandbox_args(), force=True, progress=False)
    assert not summary.errors, summary.errors
    return {s: json.loads(course.results_path(s, CASES[s][0]).read_text()) for s in CASES}


def _check(tmp_path: Path, student: str) -> dict:
    from grader.check import check, report

    res = check(_submission(tmp_path, student), progress=False)
    res["lines"] = report(res)
    shutil.rmtree(tmp_path / CASES[student][0], ignore_errors=True)
    return res


@pytest.mark.parametrize("student, score, top, flag", [
    ("ex7rebind", 6, 8, EX7_REBIND_FLAG), ("ex5rebind", 7, 10, EX5_REBIND_FLAG)])
def test_a_rebound_locked_name_is_put_back_and_flagged_at_grading(graded, student, score, top,
                                                                  flag) -> None:
    rec = graded[student]
    assert (rec["score"], rec["max_score"]) == (score, top), rec["notebooks"]
    assert any(f.endswith(flag) for f in rec["flags"]), rec["flags"]


@pytest.mark.parametrize("student", ["ex7helper", "ex5redefined"])
def test_own_helpers_and_redefined_answers_keep_full_marks_unflagged(graded, student) -> None:
    rec = graded[student]
    assert rec["score"] == rec["max_score"] > 0, rec["notebooks"]
    assert rec["flags"] == [], rec["flags"]


@pytest.mark.parametrize("student, score, top, name, given", [
    ("ex7rebind", 6, 8, "_with_own_calls", "test cell `test_pixel_shuffle`"),
    ("ex5rebind", 7, 10, "_run_conversion", "test cell `test_tf_same`")])
def test_check_puts_back_the_locked_name_and_warns(tmp_path, student, score, top, name,
                                                   given) -> None:
    res = _check(tmp_path, student)
    assert (res["earned"], res["total"]) == (score, top), res["lines"]
    warn = [line for line in res["lines"] if f"rebinds `{name}`" in line]
    assert warn and warn[0].startswith(f"WARNING  answer cell `{CASES[student][1]}`"), res["lines"]
    assert f"which the {given} defines" in warn[0] and "another name" in warn[0], warn


def test_check_keeps_full_marks_for_own_helpers_and_redefined_answers(tmp_path) -> None:
    for student in ("ex7helper", "ex5redefined"):
        res = _check(tmp_path, student)
        assert res["earned"] == res["total"] > 0, res["lines"]
        assert res["rebinds"] == [] and not any("rebinds" in x for x in res["lines"]), res["lines"]


def test_check_protects_expect_itself(tmp_path) -> None:
    """In ``check`` the tests' ``expect`` is the setup cell's: an answer cell's silent one is
    put back (grading rebinds it to its recorders anyway)."""
    CASES["ex7expect"] = ("ex7_subpixel", "pixel_shuffle", "def expect(*a, **k):\n    pass\n\n\n"
                          "def pixel_shuffle(t, s):\n    return t\n")
    try:
        res = _check(tmp_path, "ex7expect")
    finally:
        del CASES["ex7expect"]
    assert not next(t for t in res["tests"] if t["grade_id"] == "test_pixel_shuffle")["passed"]
    assert any("rebinds `expect`, which the given cell `setup` defines" in x
               for x in res["lines"]), res["lines"]


# ---- the mechanism itself ----------------------------------------------------------------------
def test_locked_names_by_identity() -> None:
    import math

    from grader.testing import LockedNames, top_level_stores

    ns: dict = {}
    guard = LockedNames(ns, skip=("skipped",))
    guard.before(True)
    exec("import math as m\ndef helper(): return 1\nx = 3\nskipped = 1", ns)  # noqa: S102
    guard.after(0, True)
    original = ns["helper"]
    guard.before(False)
    exec("import math as m\ndef mine(): return 2\ndef helper(): return 2\nx = 4\n"  # noqa: S102
         "skipped = 2", ns)
    guard.after(1, False)
    guard.before(False)
    exec("def mine(): return 3", ns)  # noqa: S102 - its own function again: untouched
    guard.after(2, False)
    stores = top_level_stores("x = 5\nprint(helper())")  # the test cell binds x itself
    assert [r for r in guard.restore() if r[0] not in stores] == [("helper", 1, 0)]
    assert ns["helper"] is original and ns["x"] == 3 and ns["m"] is math
    assert ns["mine"]() == 3 and ns["skipped"] == 2
    del ns["helper"]  # deleted: put back too, by a test cell that reads it
    assert guard.restore() == [("helper", -1, 0)] and ns["helper"] is original


def test_top_level_stores() -> None:
    from grader.testing import top_level_stores

    src = ("import numpy as np\nfrom a.b import c as d\nimport os.path\nx, (y, z) = 1, (2, 3)\n"
           "for i in range(2):\n    k = i\ndef f():\n    inner = 1\nclass C:\n    attr = 1\n"
           "[q for q in ()]\nwith open('f') as fh:\n    pass\n")
    assert top_level_stores(src) == {"np", "d", "os", "x", "y", "z", "i", "k", "f", "C", "fh"}
    assert top_level_stores("def (") == frozenset()
