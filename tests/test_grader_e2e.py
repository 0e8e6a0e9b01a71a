"""End to end: a synthetic class of 12 students, collected, autograded, reported, fed back.

Every submission's expected score is computed from cell-level expectations (which autograded
cells it deserves to pass: all for a correct notebook, none for the released stub or a notebook
that raises at import, all but the ``fails`` list of a typical mistake from
``solutions/MISTAKES.md``), never from the grader's output. The gradebook is read back with
nbgrader's own ``Gradebook`` API and must agree with those expectations and with ``report``'s CSV.

Restoring locked cells is proven by scores that differ from what an unrestored notebook would
get: ``ivo`` forges a test cell (it redefines the correct function before the tests, so unrestored
it would pass) next to wrong code and must still fail it; ``hana`` has correct code with one test
cell deleted and another replaced by ``raise``, and must get full marks (unrestored, those cells
would score 0). ``eve`` silences ``expect`` in her solution cell next to wrong code (nbgrader's own
"no error means full marks" would pass her). Written answers: ``ana`` answers hers (formgrader must
show "needs manual grade"); everyone else leaves it as released (nbgrader scores that 0).
"""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from grader_class import (
    REPO,
    completed,
    deleted_cell,
    duplicated_cell,
    edited_cell,
    gid,
    grade_cells,
    load_pair,
    mistakes,
    sandbox_args,
    strip_markers,
    write,
)

from grader.cli import main

pytestmark = [pytest.mark.xdist_group("grader_e2e")]

SOLUTIONS = REPO / "solutions"
ASSIGNMENTS = ("ex1_shapes", "ex2_scatter")
IMPORT_ERROR = "import tconv_no_such_module  # raises at import\n"


def _need_sources() -> None:
    missing = [a for a in ASSIGNMENTS if not (SOLUTIONS / a / f"{a}.ipynb").exists()]
    if missing:
        pytest.fail(f"solutions missing for the end-to-end test: {missing}")


def build_class(tmp: Path):
    """Write the class (a folder tree and an LMS zip); return expectations per submission.

    Returns ``(tree, zip_path, deserved, flags, cells, written)`` where
    ``deserved[(student, assignment)]`` maps every autograded cell to True/False,
    ``flags[(student, assignment)]`` is a substring the flags must contain (or None for no flags)
    and ``written[(student, assignment)]`` is the written answer's auto score as nbgrader's
    SaveAutoGrades sets it: 0 when left as released, None (graded by hand) when answered or when
    the notebook cannot be read.
    """
    by_name = {m.title.split(".")[0]: m for m in mistakes()}
    for key in ("M1", "M2", "M3", "M4"):
        assert key in by_name, f"solutions/MISTAKES.md lacks {key}"
    m1, m2, m3, m4 = by_name["M1"], by_name["M2"], by_name["M3"], by_name["M4"]
    pairs = {a: load_pair(SOLUTIONS, REPO / "exercises", a, f"sqlite:///{tmp / 'rel.db'}")
             for a in ASSIGNMENTS}
    cells = {a: grade_cells(pairs[a][0]) for a in ASSIGNMENTS}

    def good(a):
        return completed(*pairs[a])

    def stub(a):
        return pairs[a][1]

    def mistake(m):
        return completed(*pairs[m.assignment], replace={m.cell: m.code})

    def forged(nb, a, test_id, solution_id):
        """Test cell ``test_id`` edited to define the correct ``solution_id`` first and then run
        every test of the source (hidden ones included): unrestored, it records exactly the
        solution's values whatever the student's own code does."""
        src = {gid(c): c for c in pairs[a][0].cells if gid(c)}
        return edited_cell(nb, test_id, strip_markers(src[solution_id].source) + "\n\n"
                           + src[test_id].source)

    def answered(nb, text="The floor discards the remainder; output_padding puts it back."):
        nb = copy.deepcopy(nb)
        for c in nb.cells:
            md = c.metadata.get("nbgrader", {})
            if c.cell_type == "markdown" and md.get("grade") and md.get("solution"):
                c.source = text
        return nb

    def all_(a, ok=True):
        return {g: ok for g in cells[a]}

    def but(m):
        assert set(m.fails) <= set(cells[m.assignment]), m.fails
        return {g: g not in m.fails for g in cells[m.assignment]}

    tree, lms = tmp / "incoming", tmp / "lms"
    sub: dict[tuple[str, str], tuple[str, object]] = {}  # (s, a) -> (file name, content)
    deserved, flags, written = {}, {}, {}

    def add(s, a, content, expect, flag=None, name=None, answer=0.0):
        sub[(s, a)] = (name or f"{a}.ipynb", content)
        deserved[(s, a)] = expect
        flags[(s, a)] = flag
        written[(s, a)] = answer

    e1, e2 = ASSIGNMENTS
    add("ana", e1, answered(good(e1)), all_(e1), answer=None)  # written answer: by hand
    add("ana", e2, good(e2), all_(e2))
    add("ben", e1, good(e1), all_(e1))                       # via the LMS zip
    add("ben", e2, good(e2), all_(e2))
    add("cara", e1, stub(e1), all_(e1, False))               # blank: the released stub
    add("cara", e2, stub(e2), all_(e2, False))
    add("dan", e1, good(e1), all_(e1))
    add("dan", e2, mistake(m1), but(m1))                     # forgot to crop padding
    silenced = m4.code + "\n\nexpect = expect_raises = lambda *a, **k: None  # all agree\n"
    add("eve", e1, completed(*pairs[e1], replace={m4.cell: silenced}), but(m4))
    add("eve", e2, mistake(m2), but(m2))                     # no kernel flip
    add("finn", e1, mistake(m4), but(m4))                    # output_padding off by one
    add("finn", e2, mistake(m3), but(m3))                    # weight layout swapped
    add("gus", e1, mistake(m4), but(m4))                     # via the LMS zip
    add("gus", e2, good(e2), all_(e2))
    first_test = next(iter(cells[e2]))
    # correct code, tests deleted or broken: full marks only if the tests are restored and run
    add("hana", e2, deleted_cell(good(e2), first_test), all_(e2), "was deleted; restored")
    add("hana", e1, edited_cell(deleted_cell(good(e1), m4.fails[0]), next(iter(cells[e1])),
                                "raise AssertionError('I give up')"), all_(e1),
        "was edited; restored")
    # wrong code, tests forged or emptied: zero for them only if they are restored and trusted
    failing = m1.fails[0]
    add("ivo", e2, forged(mistake(m1), e2, failing, m1.cell), but(m1), "was edited; restored")
    emptied = mistake(m4)
    for g in cells[e1]:
        emptied = edited_cell(emptied, g, "pass  # tests are overrated")
    add("ivo", e1, emptied, but(m4), "was edited; restored")
    add("jo", e1, completed(*pairs[e1], prefix=IMPORT_ERROR), all_(e1, False))
    add("jo", e2, completed(*pairs[e2], prefix=IMPORT_ERROR), all_(e2, False))
    add("kim", e1, '{"cells": [', all_(e1, False), "not valid JSON", answer=None)
    add("kim", e2, duplicated_cell(good(e2), failing), all_(e2), "appears 2 times")
    add("leo", e1, good(e1), all_(e1, False), "wrong file name", name="shapes_final.ipynb",
        answer=None)

    zipped = {"ben", "gus"}
    for (s, a), (name, content) in sub.items():
        if s in zipped:
            continue
        write(tree, s, a, name, content)
    (tree / "leo" / e2).mkdir(parents=True)
    (tree / "leo" / e2 / "notes.txt").write_text("I ran out of time")
    lms.mkdir()
    zpath = tmp / "lms.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for (s, a), (name, content) in sub.items():
            if s in zipped:
                zf.writestr(f"{s}_{a}_attempt_2026-11-20-09-30-00_{name}",
                            nbformat.writes(content))
        zf.writestr("readme_from_the_lms.txt", "not a submission")
        zf.writestr("zed_ex9_unknown_ex9_unknown.ipynb", "{}")
    return tree, zpath, deserved, flags, cells, written


def expected_score(deserved: dict[str, bool], points: dict[str, float]) -> float:
    return sum(points[g] for g, ok in deserved.items() if ok)


def read_gradebook(db_url: str) -> dict:
    """``{(student, assignment): {grade_cell: auto_score}}`` via nbgrader's Gradebook API."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(db_url, "tconv") as gb:
        for a in gb.assignments:
            for sub in a.submissions:
                out[(sub.student.id, a.name)] = {
                    g.cell.name: g.auto_score for nb in sub.notebooks for g in nb.grades}
    return out


@pytest.mark.slow
def test_synthetic_class_end_to_end(tmp_path, capsys, monkeypatch):
    _need_sources()
    tree, zpath, deserved, flags, cells, written = build_class(tmp_path)
    course = tmp_path / "course"
    sb = sandbox_args()

    assert main(["collect", str(tree), "--course", str(course), "-q"]) == 0
    out = capsys.readouterr().out
    assert "notes.txt" in out  # a file that matches no notebook is listed
    assert main(["collect", str(zpath), "--course", str(course), "-q"]) == 0
    out = capsys.readouterr().out
    assert "readme_from_the_lms.txt" in out and "ex9_unknown" in out
    assert (course / "submitted" / "ben" / "ex2_scatter" / "ex2_scatter.ipynb").exists()
    assert "2026-11-20 09:30:00" in (course / "submitted" / "gus" / "ex1_shapes" /
                                     "timestamp.txt").read_text()

    t0 = time.perf_counter()
    rc = main(["autograde", "--course", str(course), "--jobs", "2", "-q", *sb])
    seconds = time.perf_counter() - t0
    out = capsys.readouterr().out
    assert rc == 0, out
    n = len(deserved)
    print(f"\nautograde of {n} submissions (--jobs 2): {seconds:.1f} s", file=sys.stderr)
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    (REPO / "test-artifacts" / "grader_e2e_timing.txt").write_text(
        f"autograde --jobs 2, {n} submissions, sandbox={'off' if sb else 'on'}: {seconds:.1f} s\n")

    db_url = f"sqlite:///{course / 'gradebook.db'}"
    book = read_gradebook(db_url)
    assert set(book) == set(deserved)
    for key, want in deserved.items():
        a = key[1]
        got = book[key]
        for g, ok in want.items():
            assert got[g] == (cells[a][g] if ok else 0.0), (key, g, got[g], ok)
        # written answers: 0 when left as released, else no auto score (nbgrader's rule)
        manual = {g: v for g, v in got.items() if g not in cells[a]}
        assert manual and all(v == written[key] for v in manual.values()), (key, got)
        rec = json.loads((course / "autograded" / key[0] / a / "results.json").read_text())
        assert rec["score"] == expected_score(want, cells[a]), (key, rec["score"])
        if flags[key]:
            assert any(flags[key] in f for f in rec["flags"]), (key, rec["flags"])
        else:
            assert rec["flags"] == [], (key, rec["flags"])

    # idempotent: a second run grades nothing and changes nothing
    assert main(["autograde", "--course", str(course), "--jobs", "2", "-q", *sb]) == 0
    assert "graded 0 submission(s)" in capsys.readouterr().out
    assert read_gradebook(db_url) == book

    # report: CSV agrees with the gradebook read through nbgrader's API
    assert main(["report", "--course", str(course), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "Tests that fail most" in printed and "Flagged submissions" in printed
    rows = list(csv.DictReader((course / "reports" / "grades.csv").open()))
    assert len(rows) == sum(len(v) for v in book.values())
    for r in rows:
        auto = book[(r["student"], r["assignment"])][r["grade_cell"]]
        assert (r["auto_score"] == "" if auto is None else float(r["auto_score"]) == auto), r
    totals = {(r["student"], r["assignment"]): r for r in
              csv.DictReader((course / "reports" / "totals.csv").open())}
    for key, want in deserved.items():
        assert float(totals[key]["score"]) == expected_score(want, cells[key[1]]), key
        assert bool(totals[key]["flags"]) == bool(flags[key]), key
    for a in ASSIGNMENTS:
        assert (course / "reports" / f"hist_{a}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    most = (course / "reports" / "most_failed.txt").read_text()
    assert "ex2_scatter/ex2_scatter/" + m1_first_fail() in most
    # written answers are not tests: their own file counts what waits for a hand grade
    for r in rows:
        assert r["kind"] == ("test" if r["grade_cell"] in cells[r["assignment"]]
                             else "written"), r
    unread = {k for k, f in flags.items() if f in ("not valid JSON", "wrong file name")}
    assert len(unread) == 2, unread
    answers = expected_written(book, cells, written, unread)
    assert answers and read_written(course) == answers
    assert not any(cell in most for cell in answers)
    assert "Written answers (graded by hand in formgrader): " in printed

    # --force regrades (here the students whose cells were restored, plus a written answer) and
    # changes nothing: the same gradebook, the same results and the same CSV
    before = {f: (course / "reports" / f).read_bytes() for f in ("grades.csv", "totals.csv")}
    results = {p: _results(p) for p in (course / "autograded").rglob("results.json")}
    again = ["ana", "eve", "hana", "ivo", "kim"]
    assert main(["autograde", "--course", str(course), "--jobs", "2", "--force", "-q", *sb,
                 *[x for s in again for x in ("--student", s)]]) == 0
    n_again = sum(1 for s, _ in deserved if s in again)
    assert f"graded {n_again} submission(s), skipped 0 already graded" in capsys.readouterr().out
    assert read_gradebook(db_url) == book
    changed = {p.parent.parent.name + "/" + p.parent.name: _diff(_results(p), r)
               for p, r in results.items() if _results(p) != r}
    assert not changed, changed
    assert main(["report", "--course", str(course), "-q"]) == 0
    capsys.readouterr()
    assert {f: (course / "reports" / f).read_bytes() for f in before} == before

    # formgrader's view: nbgrader's own NbGraderAPI, configured by the repository's
    # nbgrader_config.py, reads the same scores, and "needs manual grade" exactly where a written
    # answer was given (or the notebook was unreadable, so nobody could check it)
    api = formgrader_api(course, monkeypatch)
    for a in ASSIGNMENTS:
        mine = {s for s, x in deserved if x == a}
        subs = {x["student"]: x for x in api.get_submissions(a)}
        assert set(subs) == mine
        for s in mine:
            x = subs[s]
            assert x["autograded"] and x["submitted"], x
            assert x["score"] == expected_score(deserved[(s, a)], cells[a]), (s, a, x)
            assert x["needs_manual_grade"] == (written[(s, a)] is None), (s, a, x)
        readable = {s for s in mine if (course / "autograded" / s / a / f"{a}.ipynb").exists()}
        assert len(api.get_notebook_submission_indices(a, a)) == len(readable)
        nbs = {x["student"]: x for x in api.get_notebook_submissions(a, a)}
        assert set(nbs) == readable
        for s in readable:
            assert nbs[s]["needs_manual_grade"] == (written[(s, a)] is None), (s, a, nbs[s])
            assert nbs[s]["flagged"] == bool(flags[(s, a)]), (s, a, nbs[s])
    assert subs_need_manual(api, "ex1_shapes") == ["ana", "kim", "leo"]
    # and nbgrader's own command line lists the class from the same gradebook
    nbgrader = Path(sys.executable).with_name("nbgrader")
    res = subprocess.run([str(nbgrader), "db", "student", "list", "--db", db_url], cwd=REPO,
                         env={**os.environ, "TCONV_COURSE": str(course),
                              "PATH": f"{nbgrader.parent}{os.pathsep}{os.environ['PATH']}"},
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    students = sorted({s for s, _ in deserved})
    assert f"There are {len(students)} students in the database" in res.stdout, res.stdout
    listed = [line.split()[0] for line in res.stdout.splitlines()[1:] if line.strip()]
    assert listed == students, res.stdout

    # feedback: one page per submission, hidden tests only as passed/failed
    assert main(["feedback", "--course", str(course), "-q"]) == 0
    capsys.readouterr()
    pages = {p.parent.parent.name + "/" + p.parent.name: p.read_text()
             for p in (course / "feedback").glob("*/*/feedback.html")}
    assert set(pages) == {f"{s}/{a}" for s, a in deserved}
    hidden = hidden_lines()
    for page in pages.values():
        for line in hidden:
            assert line not in page, line
    assert "hidden tests failed" in pages["dan/ex2_scatter"]      # one line per test cell
    assert "3 of 3 hidden tests passed" in pages["ana/ex2_scatter"]
    # a written answer left as released reads as 0 points, one given waits for a hand grade
    for key, w in written.items():
        page = pages["/".join(key)]
        assert ("left as released" in page) == (w == 0), (key, w)
    assert "awaiting manual grading" in pages["ana/ex1_shapes"]
    # each student's index lists every assignment with its score, "not final" while a written
    # answer waits for a hand grade (an unreadable notebook has none to wait for: its 0 is final)
    for (s, a), want in deserved.items():
        index = (course / "feedback" / s / "index.html").read_text()
        line = f'<a href="{a}/feedback.html">{a}</a>: {expected_score(want, cells[a]):g} / '
        assert line in index, (s, a, index)
        item = index[index.index(line):].split("</li>")[0]
        assert ("not final" in item) == (written[(s, a)] is None and (s, a) not in unread), \
            (s, a, item)

    # a hand grade (what formgrader writes) moves ana's answer from "to grade" to "graded"
    from nbgrader.api import Gradebook

    cell = next(g for g in book[("ana", "ex1_shapes")] if g not in cells["ex1_shapes"])
    with Gradebook(db_url, "tconv") as gb:
        g = gb.find_grade(cell, "ex1_shapes", "ex1_shapes", "ana")
        g.manual_score, g.needs_manual_grade = 1.0, False   # as formgrader saves it
        gb.db.commit()
    assert main(["report", "--course", str(course), "-q"]) == 0
    capsys.readouterr()
    key = f"ex1_shapes/ex1_shapes/{cell}"
    answers[key]["to grade"] -= 1
    answers[key]["graded"] += 1
    assert read_written(course) == answers


def expected_written(book: dict, cells: dict, written: dict, unread=frozenset()) -> dict:
    """``{assignment/notebook/cell: Counter}`` of every written answer's states, from the
    class's own expectations: answered (auto score None) is "to grade", left as released is
    "blank"; nothing is "graded" before an instructor grades by hand. An answer in a
    submission whose notebook could not be read (``unread``) has nothing to grade: it counts
    as "unread", not "to grade"."""
    out: dict = {}
    for (s, a), got in book.items():
        for g in got:
            if g not in cells[a]:
                c = out.setdefault(f"{a}/{a}/{g}", Counter(**{"to grade": 0, "blank": 0,
                                                              "graded": 0, "unread": 0}))
                c["unread" if (s, a) in unread else
                  "to grade" if written[(s, a)] is None else "blank"] += 1
    return out


def read_written(course: Path) -> dict:
    """``written.txt``'s per-answer lines, parsed back into Counters."""
    out = {}
    for line in (course / "reports" / "written.txt").read_text().splitlines()[1:]:
        m = re.fullmatch(r"\s*(\d+) to grade\s+(\d+) blank\s+(\d+) graded"
                         r"(?:\s+(\d+) unread)?\s+(\S+)", line)
        assert m, line
        out[m[5]] = Counter(**{"to grade": int(m[1]), "blank": int(m[2]), "graded": int(m[3]),
                               "unread": int(m[4] or 0)})
    return out


def _results(path: Path) -> dict:
    """results.json with each cell's tests in name order (a first run lists them in the order
    the solution recorded them, later runs in the cached records' sorted order)."""
    rec = json.loads(path.read_text())
    for nb in rec["notebooks"].values():
        for cell in nb["cells"].values():
            cell["tests"] = sorted(cell["tests"], key=lambda t: t["name"])
    return rec


def _diff(a, b, path="") -> list[str]:
    """Where two JSON values differ (for assertion messages)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k),
                                                                 f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r:.300} != {b!r:.300}"]


def formgrader_api(course: Path, monkeypatch):
    """nbgrader's ``NbGraderAPI`` (what formgrader calls) with the repository's config."""
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from grader.release import nbgrader_config

    monkeypatch.setenv("TCONV_COURSE", str(course))
    cfg = nbgrader_config()
    cfg.Exchange.root = str(course / "no-exchange")  # not /srv/nbgrader/exchange
    return NbGraderAPI(CourseDirectory(config=cfg), config=cfg)


def subs_need_manual(api, assignment: str) -> list[str]:
    return sorted(x["student"] for x in api.get_submissions(assignment)
                  if x["needs_manual_grade"])


def test_tampered_cells_would_change_the_score_unrestored(tmp_path, monkeypatch):
    """The forgery above is decisive: run as handed in (a Jupyter kernel, nothing restored),
    ivo's forged test cells run clean; graded, they fail. ``tconv-grader check`` restores them
    as grading does, so the student's estimate is the grade, not the forgery's. (hana's ``raise``
    cell and deleted cell would plainly score 0 unrestored.)"""
    from types import SimpleNamespace

    from grader import check as student_check

    _need_sources()
    tree, _, deserved, _, _, _ = build_class(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    m1 = next(m for m in mistakes() if m.title.startswith("M1"))
    path = tree / "ivo" / "ex2_scatter" / "ex2_scatter.ipynb"
    as_handed_in = nbformat.read(path, as_version=4)
    ran = student_check._run(as_handed_in, path.parent, 30.0, 120.0,
                             SimpleNamespace(update=lambda *a, **k: None))
    clean = {gid(as_handed_in.cells[i]) for i, r in ran["runs"].items() if r["status"] == "ok"}
    assert set(m1.fails) <= clean  # unrestored, the forged cells raise nothing
    assert not all(deserved[("ivo", "ex2_scatter")][g] for g in m1.fails)  # graded: they fail
    estimate = student_check.check(path, progress=False)
    passed = {t["grade_id"] for t in estimate["tests"] if t["passed"]}
    for g in m1.fails:
        assert (g in passed) == bool(deserved[("ivo", "ex2_scatter")][g]), g
    assert estimate["changes"], "check names the edited cells"


def m1_first_fail() -> str:
    return next(m for m in mistakes() if m.title.startswith("M1")).fails[0]


def hidden_lines() -> list[str]:
    """Distinctive lines that exist only inside hidden-test regions of the two assignments."""
    import html

    from grader.release import load_source

    lines = []
    for a in ASSIGNMENTS:
        nb = load_source(SOLUTIONS / a / f"{a}.ipynb")
        visible = set()
        for c in nb.cells:
            inside = False
            for line in c.source.splitlines():
                if "BEGIN HIDDEN TESTS" in line:
                    inside = True
                elif "END HIDDEN TESTS" in line:
                    inside = False
                elif inside and len(line.strip()) >= 20:
                    lines.append(line.strip())
                else:
                    visible.add(line.strip())
        lines = [x for x in lines if x not in visible]
    assert lines, "the assignments have hidden tests"
    return lines + [html.escape(x) for x in lines]


def test_kill_minus_9_mid_batch_then_rerun_matches_uninterrupted(tmp_path):
    """A batch killed with SIGKILL finishes on re-run with exactly an uninterrupted run's grades."""
    import signal

    fixtures = REPO / "tests" / "fixtures" / "grader" / "solutions"
    a = "fx_scatter"
    source, released = load_pair(fixtures, None, a, f"sqlite:///{tmp_path / 'rel.db'}")
    good = completed(source, released)
    wrong = completed(source, released, replace={"scatter_1d": "def scatter_1d(x, w, stride):\n"
                                                  "    return np.convolve(x, w)"})
    courses = [tmp_path / "uninterrupted", tmp_path / "killed"]
    for c in courses:
        for i in range(8):
            write(c / "submitted", f"s{i:02d}", a, f"{a}.ipynb", [good, released, wrong][i % 3])
        write(c / "submitted", "x_notnb", a, f"{a}.ipynb", '{"nbformat": 4, "cells": [{"x": 1}]}')
        write(c / "submitted", "x_missing", a, "notes.txt", "I forgot to upload the notebook")
        greedy = completed(source, released)
        for cell in greedy.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "test_basic":
                cell.metadata["nbgrader"]["points"] = 100  # restored to 2 from the gradebook
        write(c / "submitted", "x_points", a, f"{a}.ipynb", greedy)
    sb = sandbox_args()
    common = ["--solutions", str(fixtures), "-q", *sb]
    other_db = f"sqlite:///{tmp_path / 'elsewhere.db'}"  # --db: any SQLAlchemy URL
    assert main(["autograde", "--course", str(courses[0]), "--jobs", "1", "--db", other_db,
                 *common]) == 0
    assert not (courses[0] / "gradebook.db").exists()

    shutil.copytree(courses[0] / ".cache", courses[1] / ".cache")  # solution records: cached
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "grader", "autograde", "--course",
                             str(courses[1]), "--jobs", "1", *common], cwd=REPO, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    results = courses[1] / "autograded"
    try:
        while proc.poll() is None and not list(results.glob("*/*/results.json")):
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = len(list(results.glob("*/*/results.json")))
    assert proc.returncode == -signal.SIGKILL, "the batch finished before it could be killed"
    assert done < 11
    assert main(["autograde", "--course", str(courses[1]), "--jobs", "1", *common]) == 0
    books = [read_gradebook(other_db), read_gradebook(f"sqlite:///{courses[1] / 'gradebook.db'}")]
    assert books[0] == books[1]
    assert len(books[0]) == 11
    scores = {s: sum(v for v in g.values() if v is not None) for (s, _), g in books[0].items()}
    assert scores == {f"s{i:02d}": [5.0, 0.0, 0.0][i % 3] for i in range(8)} | {
        "x_notnb": 0.0, "x_missing": 0.0, "x_points": 5.0}
    for who, why in (("x_notnb", "not a valid nbformat 4 notebook"),
                     ("x_missing", "missing notebook fx_scatter.ipynb"),
                     ("x_points", "points of cell 'test_basic' were changed to 100")):
        rec = json.loads((courses[0] / "autograded" / who / a / "results.json").read_text())
        assert any(why in f for f in rec["flags"]), rec["flags"]
    assert main(["report", "--course", str(courses[0]), "--db", other_db, "-q"]) == 0
    rows = list(csv.DictReader((courses[0] / "reports" / "grades.csv").open()))
    assert {(r["student"], r["grade_cell"]): r["auto_score"] for r in rows} == {
        (s, g): "" if v is None else f"{v:g}" for (s, _), cells in books[0].items()
        for g, v in cells.items()}
