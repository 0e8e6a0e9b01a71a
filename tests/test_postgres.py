"""The gradebook in PostgreSQL: migration from SQLite, concurrent writers.

Runs against a real, throwaway PostgreSQL server (tests/pg.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gradingbatch as gbatch
import pytest
from pg import postgres_fixture  # noqa: F401  (the `postgres` fixture: a throwaway server)
from skips import need_sandbox

from grader import migrate
from grader.dbretry import normalize_url, open_gradebook

pytestmark = pytest.mark.xdist_group("cluster")

ROOT = Path(__file__).resolve().parents[1]


def _fill(gb, assignment: str, students: list[str], seed: int) -> None:
    """A small but complete course: cells of every kind, submissions with scores and comments."""
    gb.update_or_create_assignment(assignment)
    for nb in ("part1", "part2"):
        gb.update_or_create_notebook(nb, assignment)
        for k in range(3):
            gb.update_or_create_grade_cell(f"{nb}_test{k}", nb, assignment, max_score=k + 1,
                                           cell_type="code")
            gb.update_or_create_source_cell(f"{nb}_test{k}", nb, assignment, cell_type="code",
                                            locked=True, source=f"expect('t{k}', f({k}), {k})")
        gb.update_or_create_solution_cell(f"{nb}_sol", nb, assignment)
        gb.update_or_create_source_cell(f"{nb}_sol", nb, assignment, cell_type="code",
                                        source="def f(x):\n    return x")
    for i, student in enumerate(students):
        gb.update_or_create_student(student, first_name=f"First{i}", last_name="Ünïcode")
        gb.update_or_create_submission(assignment, student)
        for nb in ("part1", "part2"):
            for k in range(3):
                g = gb.find_grade(f"{nb}_test{k}", nb, assignment, student)
                g.auto_score = float((i + k + seed) % (k + 2) and k + 1)
            c = gb.find_comment(f"{nb}_sol", nb, assignment, student)
            c.auto_comment = f"comment {i}"
    gb.db.commit()


def _sqlite_course(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with open_gradebook(url) as gb:
        _fill(gb, "ex1_shapes", [f"s{i:02d}" for i in range(8)], seed=0)
        _fill(gb, "ex2_scatter", [f"s{i:02d}" for i in range(0, 8, 2)], seed=1)
    return url


def test_normalize_url():
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    assert normalize_url("/tmp/g.db") == "sqlite:////tmp/g.db"


def test_migrate_sqlite_to_postgres(postgres, tmp_path, capsys):
    src = _sqlite_course(tmp_path)
    dst = postgres.create_database("migrate_ok")
    assert migrate.main(["--from", src, "--to", dst]) == 0
    out = capsys.readouterr().out
    assert "check: identical" in out and "12 submissions" in out, out
    with open_gradebook(dst) as gb:
        sub = gb.find_submission("ex1_shapes", "s03")
        assert sorted(s.id for s in gb.students) == [f"s{i:02d}" for i in range(8)]
        assert gb.find_student("s03").last_name == "Ünïcode"
        with open_gradebook(src) as ref:
            assert sub.score == ref.find_submission("ex1_shapes", "s03").score
            assert sub.max_score == ref.find_submission("ex1_shapes", "s03").max_score == 12

    # the destination is no longer empty: a second migrate refuses and says why
    assert migrate.main(["--from", src, "--to", dst]) == 2
    assert "already holds a gradebook" in capsys.readouterr().err

    # a changed score on one side is found by --check-only through the Gradebook API
    with open_gradebook(dst) as gb:
        g = gb.find_grade("part2_test1", "part2", "ex1_shapes", "s05")
        g.manual_score = 0.5
        gb.db.commit()
    assert migrate.main(["--from", src, "--to", dst, "--check-only"]) == 1
    out = capsys.readouterr().out
    assert "2 DIFFERENCES" in out and "ex1_shapes/s05: score 8.0 != 8.5" in out, out
    assert "ex1_shapes/s05/part2/part2_test1: grade (0.0, None," in out, out


def test_migrate_refuses_a_missing_source(postgres, tmp_path, capsys):
    dst = postgres.create_database("migrate_missing")
    assert migrate.main(["--from", f"sqlite:///{tmp_path / 'nope.db'}", "--to", dst]) == 2
    assert "no such gradebook file" in capsys.readouterr().err


WRITER = textwrap.dedent("""
    import os, sys, time
    from grader.dbretry import open_gradebook, retrying
    import nbgrader.api
    url, assignment, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    barrier = sys.argv[5]

    def one(student):
        def work(gb):
            # what a grader does for one submission: make sure the assignment's structure
            # exists (the same rows for every writer), then the student's own rows and scores
            gb.update_or_create_assignment(assignment)
            gb.update_or_create_notebook("nb", assignment)
            for k in range(4):
                gb.update_or_create_grade_cell(f"t{k}", "nb", assignment, max_score=1,
                                               cell_type="code")
            gb.update_or_create_student(student)
            gb.update_or_create_submission(assignment, student)
            for k in range(4):
                gb.find_grade(f"t{k}", "nb", assignment, student).auto_score = (k + first) % 2
            gb.db.commit()
        return work

    with open_gradebook(url) as gb:  # all writers race to create the schema ...
        open(os.path.join(barrier, f"ready{first}"), "w").close()
        while not os.path.exists(os.path.join(barrier, "go")):  # ... and the same rows
            time.sleep(0.005)
        for i in range(first, first + count):
            retrying(gb, one(f"w{i:03d}"))
    print("done", first)
""")


def test_concurrent_writers_lose_no_rows(postgres, tmp_path):
    """Three processes on a brand-new database race to create the schema, then (released
    together) the same assignment rows and their own students. Without :func:`retrying` one of
    them dies on a unique constraint ("Key (name)=(ex3_matrix) already exists")."""
    url = postgres.create_database("concurrent_writers")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, "ex3_matrix", str(8 * w), "8",
                               str(tmp_path)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(3)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready*"))) < 3 and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.05)
    (tmp_path / "go").touch()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
    with open_gradebook(url) as gb:
        assert len(gb.assignments) == 1
        assert sorted(s.id for s in gb.students) == [f"w{i:03d}" for i in range(24)]
        a = gb.find_assignment("ex3_matrix")
        assert len(a.notebooks) == 1 and len(a.notebooks[0].grade_cells) == 4
        for i in range(24):
            sub = gb.find_submission("ex3_matrix", f"w{i:03d}")
            assert sub.max_score == 4
            assert sub.score == 2  # (k + first) % 2 over k = 0..3, whatever first is


def test_two_graders_share_one_postgres_gradebook(postgres, tmp_path):
    """Two `tconv-grader autograde` processes, same course and assignment, different students,
    at the same time, into one new PostgreSQL gradebook: both finish and every row is right."""
    need_sandbox()
    mix = ["correct"] * 4 + ["triple"] * 3 + ["no_raise"] * 2 + ["not_done"] * 2 + ["os_exit"]
    deserved = gbatch.make_course(tmp_path, mix)
    students = sorted(deserved)
    halves = [students[0::2], students[1::2]]
    db = postgres.create_database("two_graders")
    # the first grader's URL carries a password (trust auth ignores it): it must never be printed
    with_password = db.replace("postgres@", "postgres:s3cret-pw@", 1)
    assert with_password != db
    procs = []
    for url, half in zip((with_password, db), halves, strict=True):
        args = [a for s in half for a in ("--student", s)]
        procs.append(subprocess.Popen(gbatch.autograde_cmd(tmp_path, url, "--jobs", "1", *args),
                                      cwd=ROOT, env=gbatch.env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out[-4000:]
        assert "graded 6 submission(s)" in out, out[-2000:]
        assert "s3cret-pw" not in out, out[-2000:]
    got = gbatch.scores(db)
    assert {s: v[0] for s, v in got.items()} == deserved, got
    assert all(v[1] == 3.0 and set(v[3]) == {"test_double", "test_raises"} for v in got.values())
    with open_gradebook(db, course_id="tconv") as gb:
        assert sorted(s.id for s in gb.students) == students
        a = gb.find_assignment(gbatch.ASSIGNMENT)
        assert len(a.submissions) == len(mix)
        assert len(a.notebooks) == 1 and len(a.notebooks[0].grade_cells) == 2


def test_two_graders_on_different_assignments_share_one_postgres_gradebook(postgres, tmp_path):
    """Two `tconv-grader autograde` processes at the same time, one per assignment (the same
    students), into one new PostgreSQL gradebook: both finish and each assignment has its rows."""
    import shutil

    need_sandbox()
    solutions = tmp_path / "solutions"
    second = "atk_tiny_b"
    shutil.copytree(gbatch.SOLUTIONS / gbatch.ASSIGNMENT, solutions / gbatch.ASSIGNMENT)
    (solutions / second).mkdir()
    shutil.copyfile(gbatch.SOLUTIONS / gbatch.ASSIGNMENT / f"{gbatch.ASSIGNMENT}.ipynb",
                    solutions / second / f"{second}.ipynb")
    mix = ["correct", "triple", "no_raise", "not_done", "os_exit", "correct"]
    deserved = gbatch.make_course(tmp_path, mix)
    for student in deserved:  # the same work handed in for the second assignment
        d = tmp_path / "submitted" / student
        (d / second).mkdir()
        shutil.copyfile(d / gbatch.ASSIGNMENT / f"{gbatch.ASSIGNMENT}.ipynb",
                        d / second / f"{second}.ipynb")
    db = postgres.create_database("two_assignments")
    procs = []
    for a in (gbatch.ASSIGNMENT, second):
        cmd = [sys.executable, "-m", "grader", "autograde", a, "--course", str(tmp_path),
               "--solutions", str(solutions), "--db", db, "--timeout", gbatch.TIMEOUT_S,
               "--jobs", "1", "--quiet"]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=gbatch.env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out[-4000:]
        assert f"graded {len(mix)} submission(s)" in out, out[-2000:]
    for a in (gbatch.ASSIGNMENT, second):
        got = gbatch.scores(db, a)
        assert {s: v[0] for s, v in got.items()} == deserved, (a, got)
        assert all(v[1] == 3.0 for v in got.values()), (a, got)
    with open_gradebook(db, course_id="tconv") as gb:
        assert sorted(a.name for a in gb.assignments) == sorted([gbatch.ASSIGNMENT, second])
        assert sorted(s.id for s in gb.students) == sorted(deserved)
        for a in gb.assignments:
            assert len(a.submissions) == len(mix)
            assert len(a.notebooks) == 1 and len(a.notebooks[0].grade_cells) == 2
