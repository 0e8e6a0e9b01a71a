"""Faults and attacks by student code, each a synthetic submission of a tiny assignment.

Two levels:

* ``run_notebook`` in the sandbox, judged like the autograder does (records vs the solution's,
  :func:`grader.testing.values_match`): every attack scores zero and is flagged where the runner
  can tell why.
* End to end through ``tconv-grader autograde`` + ``report`` on one batch holding a correct
  submission beside every attack: the attacks score zero and are flagged, the correct one gets
  full marks, and no file outside the grader's own outputs changes.

Fixtures: tests/fixtures/attacks/ (``solutions/atk_tiny`` and one file per attack under
``submissions/``, each replacing the solution cell).
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import socket
import threading
from pathlib import Path

import nbformat
import pytest
from skips import need_sandbox

from grader.execute import Execution, Limits, run_notebook
from grader.testing import values_match

pytestmark = [pytest.mark.xdist_group("sandbox"),
              pytest.mark.usefixtures("light_interpreter")]



HERE = Path(__file__).parent / "fixtures" / "attacks"
SOLUTIONS = HERE / "solutions"
SOURCE = SOLUTIONS / "atk_tiny" / "atk_tiny.ipynb"
REPO = Path(__file__).resolve().parents[1]
LIMITS = Limits(cell_timeout=3.0, notebook_timeout=20.0, memory_bytes=512 << 20,
                max_processes=32, max_output_bytes=64 << 10)
GRADED = ("test_double", "test_raises")


@pytest.fixture(scope="module", autouse=True)
def need_bwrap() -> None:
    need_sandbox()


def attack_source(name: str, **subs: object) -> str:
    text = (HERE / "submissions" / f"{name}.py").read_text()
    for key, value in subs.items():
        text = f"{key} = {value!r}\n" + text
    return text


def student_nb(code: str):
    """The source notebook with its solution cell replaced by ``code`` (what a student sends)."""
    nb = nbformat.read(SOURCE, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = code
    return nb


def judge(ex: Execution, expected: dict) -> dict[str, bool]:
    """Per test cell: passed iff it ran ok, has the solution's keys and every value matches."""
    out = {}
    for gid in GRADED:
        cell = next((c for c in ex.cells if c.grade_id == gid), None)
        exp = {k: v for k, v in expected.items() if k.startswith(gid + "/")}
        got = {k: v for k, v in ex.records.items() if k.startswith(gid + "/")}
        out[gid] = (cell is not None and cell.status == "ok" and got.keys() == exp.keys()
                    and all(values_match(got[k], exp[k]) for k in exp))
    return out


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> dict:
    ex = run_notebook(nbformat.read(SOURCE, as_version=4),
                      workdir=tmp_path_factory.mktemp("sol"), limits=LIMITS)
    assert set(ex.records) == {"test_double/scalar", "test_double/vector", "test_double/hidden",
                               "test_raises/text"}, ex
    return ex.records


def run_attack(tmp_path: Path, name: str, limits: Limits = LIMITS, **subs) -> Execution:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return run_notebook(student_nb(attack_source(name, **subs)), workdir=work, limits=limits)


def cell_of(ex: Execution, gid: str):
    return next(c for c in ex.cells if c.grade_id == gid)


def status(ex: Execution, gid: str) -> str:
    return next(c.status for c in ex.cells if c.grade_id == gid)


def test_correct_submission_passes(tmp_path: Path, expected: dict) -> None:
    ex = run_attack(tmp_path, "correct")
    assert judge(ex, expected) == {"test_double": True, "test_raises": True}
    assert ex.flags == []


def test_infinite_loop(tmp_path: Path, expected: dict) -> None:
    ex = run_attack(tmp_path, "infinite_loop")
    assert status(ex, "test_double") == "timeout" and status(ex, "test_raises") == "timeout"
    assert judge(ex, expected) == {"test_double": False, "test_raises": False}
    assert "timeout" in ex.flags


def test_loop_that_ignores_the_alarm_is_killed(tmp_path: Path, expected: dict) -> None:
    ex = run_attack(tmp_path, "stubborn_loop")
    assert status(ex, "test_double") == "timeout" and status(ex, "test_raises") == "not_run"
    assert not any(judge(ex, expected).values())
    assert "timeout" in ex.flags


@pytest.mark.parametrize("name", ["memory_bomb", "memory_bomb_huge"])
def test_memory_bomb(tmp_path: Path, expected: dict, name: str) -> None:
    ex = run_attack(tmp_path, name, limits=Limits(cell_timeout=3.0, notebook_timeout=20.0,
                                                  memory_bytes=256 << 20))
    assert not judge(ex, expected)["test_double"]
    assert "memory limit" in ex.flags
    assert status(ex, "test_double") == "error"  # MemoryError inside, not a dead process


def test_fork_bomb(tmp_path: Path, expected: dict) -> None:
    ex = run_attack(tmp_path, "fork_bomb")
    assert not any(judge(ex, expected).values())
    assert "process limit" in ex.flags
    err = next(c.error for c in ex.cells if c.grade_id == "test_double")
    assert err.startswith("BlockingIOError")


def test_os_exit(tmp_path: Path, expected: dict) -> None:
    ex = run_attack(tmp_path, "os_exit")
    assert [c.status for c in ex.cells] == ["ok", "killed", "not_run", "not_run"]
    assert not any(judge(ex, expected).values())
    assert "kernel died (exit code 0)" in ex.flags


def test_segfault(tmp_path: Path, expected: dict) -> None:
    ex = run_attack(tmp_path, "segfault")
    assert [c.status for c in ex.cells] == ["ok", "killed", "not_run", "not_run"]
    assert not any(judge(ex, expected).values())
    assert "kernel died (signal 11)" in ex.flags


def test_solution_and_hidden_tests_are_invisible(tmp_path: Path, expected: dict) -> None:
    secrets = [str(SOURCE), str(REPO / "grader" / "autograde.py"), str(REPO / "solutions"),
               str(tmp_path / "course" / "gradebook.db")]
    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "gradebook.db").write_text("grades")
    ex = run_attack(tmp_path, "read_solution", SECRET_PATHS=secrets)
    out = cell_of(ex, "double_impl").output
    assert cell_of(ex, "double_impl").status == "ok", cell_of(ex, "double_impl")
    seen = eval(out[out.index("SEEN ") + 5:].strip())  # noqa: S307 - our own printed list
    for path in secrets:
        assert (path, "FileNotFoundError") in seen, (path, seen)
    assert not [p for p, how in seen if how == "READ"]
    listed = [p for p, how in seen if how == "LISTED"]
    assert listed == [], listed  # nothing but library code (not walked) anywhere
    assert not any(judge(ex, expected).values())
    assert any(f.startswith("file access outside the submission") for f in ex.flags), ex.flags


def test_monkeypatching_the_assertion_helpers(tmp_path: Path, expected: dict) -> None:
    ex = run_attack(tmp_path, "monkeypatch")
    assert status(ex, "test_double") == "ok"
    assert ex.records["test_double/scalar"] == 9.0  # the real answer came out regardless
    assert judge(ex, expected) == {"test_double": False, "test_raises": False}
    tamper = [f for f in ex.flags if f.startswith("monkeypatched before a test cell")]
    assert tamper and "builtins.isinstance" in tamper[0], ex.flags


def test_always_equal_objects(tmp_path: Path, expected: dict) -> None:
    ex = run_attack(tmp_path, "always_equal")
    assert status(ex, "test_double") == "ok"
    assert all(repr(ex.records[f"test_double/{k}"]).startswith("<unserialisable")
               for k in ("scalar", "vector", "hidden"))
    assert not judge(ex, expected)["test_double"]
    # test_double also runs hidden tests: neither the record name nor the (student's) type name
    assert "not plain data in a test value of cell 'test_double'" in ex.flags, ex.flags


def test_nan_tricks(tmp_path: Path, expected: dict) -> None:
    ex = run_attack(tmp_path, "nan_tricks")
    assert status(ex, "test_double") == "ok"
    assert not judge(ex, expected)["test_double"]
    assert "NaN in a test value of cell 'test_double'" in ex.flags, ex.flags


def test_writing_outside_the_submission_fails(tmp_path: Path, expected: dict) -> None:
    course = tmp_path / "course"
    (course / "submitted" / "bob" / "atk_tiny").mkdir(parents=True)
    targets = [course / "gradebook.db",
               course / "submitted" / "bob" / "atk_tiny" / "atk_tiny.ipynb"]
    for t in targets:
        t.write_text("original")
    ex = run_attack(tmp_path, "write_outside", TARGET_PATHS=[str(t) for t in targets])
    out = cell_of(ex, "double_impl").output
    results = eval(out[out.index("RESULTS ") + 8:].strip())  # noqa: S307
    assert not [r for r in results if r[1] in ("WROTE", "REMOVED")], results
    assert all(t.read_text() == "original" for t in targets)
    assert not (tmp_path / "work" / "scratch_note.txt").exists()  # scratch copy discarded
    assert not any(judge(ex, expected).values())


def test_network_is_unreachable(tmp_path: Path, expected: dict) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(0.1)
    port = srv.getsockname()[1]
    accepted = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(srv.accept())
            except OSError:
                pass

    t = threading.Thread(target=accept)
    t.start()
    try:
        ex = run_attack(tmp_path, "network", NET_TARGETS=[("127.0.0.1", port)])
    finally:
        stop.set()
        t.join()
        srv.close()
    assert accepted == []
    assert "CONNECTED" not in cell_of(ex, "double_impl").output
    assert "network attempt" in ex.flags
    assert not any(judge(ex, expected).values())


def test_printing_100_mb_is_truncated(tmp_path: Path, expected: dict) -> None:
    ex = run_attack(tmp_path, "print_flood")
    assert "output truncated" in ex.flags
    total = sum(len(c.output) for c in ex.cells)
    assert total <= 2 * LIMITS.max_output_bytes + 1024
    assert status(ex, "test_double") == "ok" and not judge(ex, expected)["test_double"]


def test_forged_record_frames_are_ignored(tmp_path: Path, expected: dict) -> None:
    ex = run_attack(tmp_path, "forge_records")
    assert "test_double/scalar" not in ex.records or ex.records["test_double/scalar"] is None
    assert not any(judge(ex, expected).values())


# ---- end to end: tconv-grader autograde + report ------------------------------------------------
def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


E2E_ATTACKS = ["infinite_loop", "memory_bomb_huge", "fork_bomb", "os_exit", "segfault",
               "read_solution", "monkeypatch", "always_equal", "nan_tricks", "write_outside",
               "network", "print_flood", "forge_records"]


def test_end_to_end_autograde_and_report(tmp_path: Path) -> None:
    from grader.cli import main


    course = tmp_path / "course"
    sub = course / "submitted"
    canary = tmp_path / "canary.txt"
    canary.write_text("untouched")
    subs = {
        "SECRET_PATHS": [str(SOURCE), str(course / "gradebook.db"),
                         str(sub / "alice" / "atk_tiny" / "atk_tiny.ipynb")],
        "TARGET_PATHS": [str(course / "gradebook.db"), str(canary),
                         str(sub / "alice" / "atk_tiny" / "atk_tiny.ipynb")],
        "NET_TARGETS": [("127.0.0.1", 9)],
    }

    def submit(student: str, nb_or_text, name: str = "atk_tiny.ipynb") -> None:
        d = sub / student / "atk_tiny"
        d.mkdir(parents=True)
        if nb_or_text is None:
            return
        if isinstance(nb_or_text, str):
            (d / name).write_text(nb_or_text)
        else:
            nbformat.write(nb_or_text, d / name)
        (d / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC\n")

    submit("alice", student_nb(attack_source("correct")))
    for name in E2E_ATTACKS:
        used = {k: v for k, v in subs.items() if k in attack_source(name)}
        submit(f"x_{name}", student_nb(attack_source(name, **used)))
    # tampering with locked cells: the grader restores them from the gradebook
    wrong = "def double(x):\n    return x\n"
    nb = student_nb(wrong)
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == "test_double":
            c.source = "pass"
    submit("x_edited_tests", nb)
    nb = student_nb(wrong)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") is not True]
    submit("x_deleted_tests", nb)
    nb = student_nb(wrong)
    dup = copy.deepcopy([c for c in nb.cells
                         if c.metadata.get("nbgrader", {}).get("grade_id") == "test_double"][0])
    dup.source = "expect('scalar', 6.0, 6.0)"
    nb.cells.insert(2, dup)
    for c in nb.cells:
        c.pop("id", None)
    nb.nbformat_minor = 4
    submit("x_duplicate_ids", nb)
    submit("x_not_json", "{ this is not json")
    submit("x_not_nbformat", json.dumps({"cells": "nope"}))
    submit("x_wrong_name", student_nb(attack_source("correct")), name="my_homework.ipynb")
    submit("x_missing", None)

    before_alice = _tree(sub / "alice")
    before_sub = _tree(sub)
    rc = main(["autograde", "--course", str(course), "--solutions", str(SOLUTIONS),
               "--jobs", "2", "--timeout", "5", "--quiet"])
    assert rc == 0
    assert main(["report", "--course", str(course), "--quiet"]) == 0
    assert _tree(sub) == before_sub and _tree(sub / "alice") == before_alice
    assert canary.read_text() == "untouched"

    with open(course / "reports" / "totals.csv") as f:
        totals = {r["student"]: r for r in csv.DictReader(f)}
    students = {p.name for p in sub.iterdir()}
    assert set(totals) == students, totals.keys()
    assert float(totals["alice"]["score"]) == 3.0, totals["alice"]
    assert not totals["alice"]["flags"].strip(), totals["alice"]
    for s in sorted(students - {"alice"}):
        assert float(totals[s]["score"]) == 0.0, (s, totals[s])
        assert totals[s]["flags"].strip(), (s, "not flagged")
    flags = {s: totals[s]["flags"] for s in totals}
    assert "timeout" in flags["x_infinite_loop"]
    assert "memory limit" in flags["x_memory_bomb_huge"]
    assert "process limit" in flags["x_fork_bomb"]
    assert "kernel died (exit code 0)" in flags["x_os_exit"]
    assert "kernel died (signal 11)" in flags["x_segfault"]
    assert "network attempt" in flags["x_network"]
    assert "output truncated" in flags["x_print_flood"]
    assert "monkeypatched before a test cell" in flags["x_monkeypatch"]
    assert "not plain data" in flags["x_always_equal"]
    assert "NaN in a test value" in flags["x_nan_tricks"]
    assert "file access outside the submission" in flags["x_read_solution"]
