"""End to end: a synthetic class of 12 students, collected, autograded, reported, fed back.

Every submission's expected score is computed from cell-level expectations (which autograded
cells it deserves to pass: all for a correct notebook, none for the released stub or a notebook
that raises at import, all but the ``fails`` list of a typical mistake from
``solutions/MISTAKES.md``), never from the grader's output. The gradebook is read back with
nbgrader's own ``Gradebook`` API and must agree with those expectations and with ``report``'s CSV.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from grader_class import (
    REPO,
    completed,
    deleted_cell,
    duplicated_cell,
    edited_cell,
    grade_cells,
    load_pair,
    mistakes,
    sandbox_args,
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

    Returns ``(tree, zip_path, deserved, flags)`` where ``deserved[(student, assignment)]`` maps
    every autograded cell to True/False and ``flags[(student, assignment)]`` is a substring the
    flags must contain (or None for no flags).
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

    def all_(a, ok=True):
        return {g: ok for g in cells[a]}

    def but(m):
        assert set(m.fails) <= set(cells[m.assignment]), m.fails
        return {g: g not in m.fails for g in cells[m.assignment]}

    tree, lms = tmp / "incoming", tmp / "lms"
    sub: dict[tuple[str, str], tuple[str, object]] = {}  # (s, a) -> (file name, content)
    deserved, flags = {}, {}

    def add(s, a, content, expect, flag=None, name=None):
        sub[(s, a)] = (name or f"{a}.ipynb", content)
        deserved[(s, a)] = expect
        flags[(s, a)] = flag

    e1, e2 = ASSIGNMENTS
    add("ana", e1, good(e1), all_(e1))
    add("ana", e2, good(e2), all_(e2))
    add("ben", e1, good(e1), all_(e1))                       # via the LMS zip
    add("ben", e2, good(e2), all_(e2))
    add("cara", e1, stub(e1), all_(e1, False))               # blank: the released stub
    add("cara", e2, stub(e2), all_(e2, False))
    add("dan", e1, good(e1), all_(e1))
    add("dan", e2, mistake(m1), but(m1))                     # forgot to crop padding
    add("eve", e1, stub(e1), all_(e1, False))
    add("eve", e2, mistake(m2), but(m2))                     # no kernel flip
    add("finn", e1, mistake(m4), but(m4))                    # output_padding off by one
    add("finn", e2, mistake(m3), but(m3))                    # weight layout swapped
    add("gus", e1, mistake(m4), but(m4))                     # via the LMS zip
    add("gus", e2, good(e2), all_(e2))
    first_test = next(iter(cells[e2]))
    add("hana", e2, deleted_cell(good(e2), first_test), all_(e2), "was deleted; restored")
    failing = m1.fails[0]
    add("ivo", e2, edited_cell(mistake(m1), failing, "pass  # tests are overrated"), but(m1),
        "was edited; restored")
    add("ivo", e1, edited_cell(stub(e1), next(iter(cells[e1])), "expect('x', 1, 1)"),
        all_(e1, False), "was edited; restored")
    add("jo", e1, completed(*pairs[e1], prefix=IMPORT_ERROR), all_(e1, False))
    add("jo", e2, completed(*pairs[e2], prefix=IMPORT_ERROR), all_(e2, False))
    add("kim", e1, '{"cells": [', all_(e1, False), "not valid JSON")
    add("kim", e2, duplicated_cell(good(e2), failing), all_(e2), "appears 2 times")
    add("leo", e1, good(e1), all_(e1, False), "wrong file name", name="shapes_final.ipynb")

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
    return tree, zpath, deserved, flags, cells


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
def test_synthetic_class_end_to_end(tmp_path, capsys):
    _need_sources()
    tree, zpath, deserved, flags, cells = build_class(tmp_path)
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
        # manually graded cells carry no auto score
        assert all(v is None for g, v in got.items() if g not in cells[a]), (key, got)
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
    assert "hidden test failed" in pages["dan/ex2_scatter"]
    assert "hidden test passed" in pages["ana/ex2_scatter"]


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
    import os
    import signal
    import subprocess

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
