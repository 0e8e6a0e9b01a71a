"""Faults and attacks by student code, each a synthetic submission of a tiny assignment.

Two levels:

* ``run_notebook`` in the sandbox, judged like the autograder does (records vs the solution's,
  :func:`grader.testing.values_match`): every attack scores zero and is flagged where the runner
  can tell why.
* End to end through ``tconv-grader autograde`` + ``report`` on one batch holding a correct
  submission beside every attack: the attacks score zero and are flagged, the correct one gets
  full marks, and no file outside the grader's own outputs changes.

An attack that answers wrongly proves little about scoring (a grader zeroing every flagged
notebook would pass), so the odd-but-harmless behaviours also come with the *correct* answer
appended (``odd_but_correct``): a print flood, a network attempt, reading a secret path, filling
/tmp, duplicated cell ids and monkeypatching the assertion helpers. Each keeps its full marks and
is flagged. Monkeypatching is cheating in intent, but the recorders the grader uses are private to
the harness, so the value recorded is what the student's code really returned: it is judged on
that (full marks for a correct answer) and flagged for a human to look at.

Hidden tests (``probe_source``: atk_tiny with a distinctive constant in its hidden block): a
student cell that searches its own process finds no hidden source before the hidden cell runs
(nor after it), and student code that reads it from its caller while a hidden test runs cannot
get it into the feedback pages, the reports, the flags or the gradebook.

Fixtures: tests/fixtures/attacks/ (``solutions/atk_tiny`` and one file per attack under
``submissions/``, each replacing the solution cell).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import html
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


def odd_but_correct(name: str, **subs) -> str:
    """The attack's code, then the correct ``double`` (which replaces the attack's)."""
    return attack_source(name, **subs) + "\n\n" + attack_source("correct")


def printed(ex: Execution, gid: str, tag: str):
    out = cell_of(ex, gid).output
    return eval(out[out.index(tag + " ") + len(tag) + 1:].splitlines()[0])  # noqa: S307


PROBE = "ORCHID-7731-HIDDEN-PROBE"
NEEDLES = ("BEGIN HIDDEN TESTS", PROBE, "ORCHID-7731", "np.arange(4.0) - 1.5")
RAISES_HINT = "strings that are not numbers must raise ValueError"
CASE_HINT = "each entry doubled"
ANSWER_HINT = "double(5.0) returned"


def probe_source():
    """atk_tiny with a distinctive constant in test_double's hidden block, and hints on the
    visible tests (same points: 2 + 1): test_double gets an f-string hint that names the case
    and one that names the answer; the visible-only test_raises a literal hint and one naming
    the answer."""
    nb = nbformat.read(SOURCE, as_version=4)
    for c in nb.cells:
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        if gid == "test_double":
            c.source = c.source.replace(
                "### END HIDDEN TESTS",
                f'expect("probe", double(len("{PROBE}")), 48.0)\n### END HIDDEN TESTS')
            c.source = c.source.replace(
                "np.array([2.0, 4.0, 6.0]))",
                'np.array([2.0, 4.0, 6.0]),\n       hint=f"for {[1.0, 2.0, 3.0]}: {CASE_HINT}")\n'
                'five = double(5.0)\n'
                'expect("five", five, 10.0, hint=f"{ANSWER_HINT} {float(five)!r}")')
            c.source = f"CASE_HINT = {CASE_HINT!r}\nANSWER_HINT = {ANSWER_HINT!r}\n" + c.source
        elif gid == "test_raises":
            c.source = (f'expect_raises("text", ValueError, double, "not a number", '
                        f'hint="{RAISES_HINT}")\n'
                        'two = double(2.0)\n'
                        'expect("two", two, 4.0, hint=f"double(2.0) returned {two!r}")')
    return nb


def with_solution(nb, code: str):
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = code
    return nb


def cell_of(ex: Execution, gid: str):
    return next(c for c in ex.cells if c.grade_id == gid)


def status(ex: Execution, gid: str) -> str:
    return next(c.status for c in ex.cells if c.grade_id == gid)


def test_correct_submission_passes(tmp_path: Path, expected: dict) -> None:
    ex = run_attack(tmp_path, "correct")
    assert judge(ex, expected) == {"test_double": True, "test_raises": True}
    assert ex.flags == []


def test_a_subclass_of_the_expected_error_passes(tmp_path: Path, expected: dict) -> None:
    """``class NotANumber(ValueError)`` raised where a test expects ``ValueError``: recorded as
    ``ValueError``, as the solution's run records it."""
    ex = run_attack(tmp_path, "own_error")
    assert judge(ex, expected) == {"test_double": True, "test_raises": True}, ex.cells
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
    # Either the allocation fails inside (MemoryError, "error") or the watcher kills the sandbox
    # first ("killed"); which one wins is a race. Both end the notebook there: whether later
    # cells could still run would depend on what the allocator gave back (the same notebook
    # scored 8/13 or 0/13 before), so the grade is the same either way.
    assert status(ex, "test_double") in ("error", "killed")
    assert status(ex, "test_raises") == "not_run"


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
    from grader.autograde import source_hash

    course = tmp_path / "course"
    graded = course / "autograded" / "alice" / "atk_tiny"
    cached = course / ".cache" / "expected" / "atk_tiny" / f"atk_tiny.{source_hash(SOURCE)}.json"
    secrets = [str(SOURCE), str(REPO / "grader" / "autograde.py"), str(REPO / "solutions"),
               str(course / "gradebook.db"), str(graded / "atk_tiny.ipynb"),
               str(graded / "results.json"), str(cached), str(course / "autograded"),
               str(cached.parent)]  # a visible folder would give IsADirectoryError
    graded.mkdir(parents=True)
    cached.parent.mkdir(parents=True)
    for f in (course / "gradebook.db", graded / "atk_tiny.ipynb", graded / "results.json", cached):
        f.write_text("secret")
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


ODD = {  # behaviour: the flag it must raise (the answer is correct: full marks)
    "print_flood": "output truncated",
    "network": "network attempt",
    "read_solution": "file access outside the submission: ",
    "monkeypatch": "monkeypatched before a test cell: ",
    "tmp_fill": "disk limit: /tmp is full",
}


@pytest.mark.parametrize("name", sorted(ODD))
def test_odd_but_correct_work_keeps_full_marks(tmp_path: Path, expected: dict, name: str) -> None:
    subs = {"SECRET_PATHS": [str(SOURCE)], "NET_TARGETS": [("127.0.0.1", 9)]}
    used = {k: v for k, v in subs.items() if k in attack_source(name)}
    (tmp_path / "work").mkdir()
    small = dataclasses.replace(LIMITS, tmp_bytes=8 << 20, work_bytes=8 << 20, shm_bytes=4 << 20)
    ex = run_notebook(student_nb(odd_but_correct(name, **used)), workdir=tmp_path / "work",
                      limits=small)
    assert judge(ex, expected) == {"test_double": True, "test_raises": True}, (ex.cells, ex.flags)
    assert any(f.startswith(ODD[name]) for f in ex.flags), ex.flags
    if name == "monkeypatch":
        assert "builtins.isinstance" in next(f for f in ex.flags if f.startswith(ODD[name]))


@pytest.mark.parametrize("mode", ["zygote", "per-run"])
def test_filling_tmp_work_and_shm_stops_at_their_caps(tmp_path: Path, expected: dict,
                                                      monkeypatch, mode: str) -> None:
    from grader import sandbox

    if mode == "per-run":
        monkeypatch.setenv("TCONV_SANDBOX_MODE", "per-run")
    elif sandbox.mode() != "zygote":
        pytest.skip("zygote mode needs root")
    caps = {"/tmp": 8 << 20, "/work": 12 << 20, "/dev/shm": 4 << 20}
    lim = dataclasses.replace(LIMITS, tmp_bytes=caps["/tmp"], work_bytes=caps["/work"],
                              shm_bytes=caps["/dev/shm"])
    ex = run_attack(tmp_path, "tmp_fill", limits=lim)
    filled = printed(ex, "double_impl", "FILLED")
    for d, cap in caps.items():
        wrote, err = filled[d]
        assert 0 < wrote <= cap and err == "OSError 28", (d, filled[d])  # ENOSPC at the cap
    assert filled["/dev"][0] == 0 and filled["/dev"][1] in ("OSError 30", "PermissionError 13")
    assert "disk limit: /tmp is full" in ex.flags and "disk limit: /dev/shm is full" in ex.flags
    assert "disk limit: /work is full" in ex.flags
    assert list((tmp_path / "work").iterdir()) == []  # the host's copy of /work got nothing
    assert not any(judge(ex, expected).values())


def test_fork_then_allocate_hits_the_notebook_memory_limit(tmp_path: Path, expected: dict) -> None:
    """8 children x 200 MB: each under the 512 MiB limit, together far over it."""
    ex = run_attack(tmp_path, "fork_allocate")  # LIMITS: 512 MiB per notebook, 3 s per cell
    impl = cell_of(ex, "double_impl")
    assert impl.status == "killed" and "MiB of memory" in impl.error, impl
    assert "memory limit" in ex.flags and "timeout" not in ex.flags, ex.flags
    assert status(ex, "test_double") == "not_run"
    assert not any(judge(ex, expected).values())
    # the next notebook of the batch is untouched
    (tmp_path / "next").mkdir()
    again = run_attack(tmp_path / "next", "correct")
    assert judge(again, expected) == {"test_double": True, "test_raises": True}
    assert again.flags == []


def test_forked_workers_sharing_memory_are_counted_once(tmp_path: Path, expected: dict) -> None:
    """A 200 MiB array read by 3 forked workers: 800 MiB resident in sum, 200 MiB real."""
    ex = run_attack(tmp_path, "fork_share")
    assert cell_of(ex, "double_impl").status == "ok", ex.cells
    assert judge(ex, expected) == {"test_double": True, "test_raises": True}
    assert "memory limit" not in ex.flags, ex.flags


@pytest.fixture(scope="module")
def probe_expected(tmp_path_factory) -> dict:
    ex = run_notebook(probe_source(), workdir=tmp_path_factory.mktemp("probe"), limits=LIMITS)
    assert "test_double/probe" in ex.records, ex
    return ex.records


def test_no_hidden_source_in_the_process_while_student_cells_run(tmp_path: Path,
                                                                 probe_expected: dict) -> None:
    scan = attack_source("hidden_scan", NEEDLES_REVERSED=[n[::-1] for n in NEEDLES])
    nb = with_solution(probe_source(), scan)
    # a student's own cells after every test cell: the same search, then a planted control
    nb.cells.append(nbformat.v4.new_code_cell("print('FOUND', _hidden_scan())"))
    nb.cells.append(nbformat.v4.new_code_cell(
        "planted = ' '.join(['BEGIN', 'HIDDEN', 'TESTS'])\nprint('FOUND', _hidden_scan())"))
    (tmp_path / "work").mkdir()
    ex = run_notebook(nb, workdir=tmp_path / "work", limits=LIMITS)
    assert [c.status for c in ex.cells] == ["ok"] * len(ex.cells), ex.cells
    assert printed(ex, "double_impl", "FOUND") == []        # before the hidden cell
    after, control = ex.cells[-2].output, ex.cells[-1].output
    assert after.startswith("FOUND ") and eval(after[6:]) == [], after  # noqa: S307
    assert eval(control[6:]) == ["BEGIN HIDDEN TESTS"], control  # noqa: S307 - the search works
    assert judge(ex, probe_expected) == {"test_double": True, "test_raises": True}


def test_hidden_grams_and_scrub() -> None:
    from grader.autograde import SCRUBBED, hidden_grams, scrub_hidden

    grams = hidden_grams(probe_source())
    assert PROBE[:12] in grams
    assert not any("2 * 3" in g for g in grams)  # the visible hint is public: never scrubbed
    text = f"got '{PROBE}' and '### BEGIN HIDDEN TESTS'. Hint: 2 * 3"
    clean = scrub_hidden(text, grams)
    assert not any(n in clean for n in NEEDLES) and clean.endswith("Hint: 2 * 3"), clean
    assert SCRUBBED in clean
    assert scrub_hidden("[scalar] expected 6.0, got 9.0.", grams) == \
        "[scalar] expected 6.0, got 9.0."


def test_feedback_page_is_scrubbed_even_from_an_old_results_file() -> None:
    from grader.autograde import hidden_grams
    from grader.feedback import render

    rec = {"student": "s", "assignment": "atk_tiny", "flags": [f"atk_tiny: odd {PROBE}"],
           "notebooks": {"atk_tiny": {"flags": [], "cells": {"test_raises": {
               "max": 1.0, "points": 0.0, "manual": False, "tests": [
                   {"name": "text", "hidden": False, "passed": False,
                    "message": f"[text] got '{PROBE}'"}]}}}}}
    page = render(rec, {}, {"atk_tiny": hidden_grams(probe_source())})
    assert not any(n in html.unescape(page) for n in NEEDLES), page


def test_duplicate_cell_ids_are_repaired_and_flagged(tmp_path: Path) -> None:
    from grader.autograde import _load_submission

    nb = student_nb(attack_source("correct"))
    nb.nbformat_minor = 5
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i}"
    nb.cells[3]["id"] = nb.cells[2]["id"] = "same-id"
    (tmp_path / "atk_tiny.ipynb").write_text(json.dumps(nb))
    got, flags = _load_submission(tmp_path, "atk_tiny", ["atk_tiny"])
    assert flags == ["duplicate cell id repaired: 'same-id' (nbformat gave the copies new ids)"]
    assert len({c["id"] for c in got.cells}) == len(got.cells)
    assert [c.source for c in got.cells] == [c.source for c in nb.cells]


# ---- end to end: tconv-grader autograde + report ------------------------------------------------
def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


E2E_ATTACKS = ["infinite_loop", "memory_bomb_huge", "fork_bomb", "os_exit", "segfault",
               "read_solution", "monkeypatch", "always_equal", "nan_tricks", "write_outside",
               "network", "print_flood", "forge_records", "tmp_fill", "fork_allocate"]
E2E_ODD = {**ODD, "duplicate_cell_ids": "duplicate cell id repaired: "}


def test_end_to_end_autograde_and_report(tmp_path: Path) -> None:
    from grader.autograde import source_hash
    from grader.cli import main

    course = tmp_path / "course"
    sub = course / "submitted"
    canary = tmp_path / "canary.txt"
    canary.write_text("untouched")
    earlier = course / "autograded" / "zz_earlier" / "atk_tiny" / "atk_tiny.ipynb"
    earlier.parent.mkdir(parents=True)  # a previous run's output (no results: not a submission)
    earlier.write_text("graded before")
    cached = course / ".cache" / "expected" / "atk_tiny" / f"atk_tiny.{source_hash(SOURCE)}.json"
    subs = {  # the solution's cached records exist by the time the students' notebooks run
        "SECRET_PATHS": [str(SOURCE), str(course / "gradebook.db"), str(cached), str(earlier),
                         str(course / "autograded"),
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
    # odd but harmless, with the right answer: full marks, flagged
    for name in ODD:
        used = {k: v for k, v in subs.items() if k in attack_source(name)}
        submit(f"ok_{name}", student_nb(odd_but_correct(name, **used)))
    nb = student_nb(attack_source("correct"))
    nb.nbformat_minor = 5
    for i, c in enumerate(nb.cells):
        c["id"] = "twin" if i in (2, 3) else f"c{i}"
    submit("ok_duplicate_cell_ids", json.dumps(nb))  # raw: nbformat.write would repair it

    before_alice = _tree(sub / "alice")
    before_sub = _tree(sub)
    rc = main(["autograde", "--course", str(course), "--solutions", str(SOLUTIONS),
               "--jobs", "2", "--timeout", "5", "--memory", "512", "--quiet"])
    assert rc == 0
    assert main(["report", "--course", str(course), "--quiet"]) == 0
    assert _tree(sub) == before_sub and _tree(sub / "alice") == before_alice
    assert canary.read_text() == "untouched" and earlier.read_text() == "graded before"

    with open(course / "reports" / "totals.csv") as f:
        totals = {r["student"]: r for r in csv.DictReader(f)}
    students = {p.name for p in sub.iterdir()}
    assert set(totals) == students, totals.keys()
    assert float(totals["alice"]["score"]) == 3.0, totals["alice"]
    assert not totals["alice"]["flags"].strip(), totals["alice"]
    for s in sorted(students - {"alice"}):
        deserved = 3.0 if s.startswith("ok_") else 0.0
        assert float(totals[s]["score"]) == deserved, (s, totals[s])
        assert totals[s]["flags"].strip(), (s, "not flagged")
    flags = {s: totals[s]["flags"] for s in totals}
    for name, why in E2E_ODD.items():
        assert why in flags[f"ok_{name}"], (name, flags[f"ok_{name}"])
    assert "disk limit" in flags["x_tmp_fill"]
    assert "memory limit" in flags["x_fork_allocate"]
    loop = flags["x_infinite_loop"].split(" | ")  # each time-out once, naming its cell
    assert all("timeout" not in f for f in loop), loop
    assert any(f.startswith("atk_tiny: cell ") and "timed out" in f and
               f.endswith("(limits: 5 s per cell, 5 s per notebook)") for f in loop), loop
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


def test_hidden_source_never_reaches_feedback_reports_or_gradebook(tmp_path: Path,
                                                                  capsys) -> None:
    """Student code reading its caller while a hidden test runs, every route out tried; and
    what a failing visible test says (expected, got, hint) against a hidden one (outcome only)."""
    from grader.cli import main
    from grader.dbretry import open_gradebook

    solutions = tmp_path / "solutions"
    (solutions / "atk_tiny").mkdir(parents=True)
    nbformat.write(probe_source(), solutions / "atk_tiny" / "atk_tiny.ipynb")
    course = tmp_path / "course"
    wrong = {"triple": "def double(x):\n    return np.asarray(x, dtype=float) * 3\n",
             "no_raise": "def double(x):\n    try:\n        return np.asarray(x, dtype=float) * 2"
                         "\n    except ValueError:\n        return None\n"}
    deserved = {"alice": 3.0, "triple": 0.0, "no_raise": 2.0, "leak_raise": 0.0,
                "leak_return": 0.0}
    for s in deserved:
        code = attack_source(s) if s.startswith("leak") else wrong.get(s, attack_source("correct"))
        d = course / "submitted" / s / "atk_tiny"
        d.mkdir(parents=True)
        nbformat.write(with_solution(probe_source(), code), d / "atk_tiny.ipynb")
    common = ["--course", str(course), "--quiet"]
    assert main(["autograde", *common, "--solutions", str(solutions), "--jobs", "2",
                 "--timeout", "5"]) == 0
    assert main(["feedback", *common, "--solutions", str(solutions)]) == 0
    assert main(["report", *common]) == 0
    cli = capsys.readouterr()

    # the attacks did reach the hidden source (so the test can fail): it is in the instructor's
    # autograded notebooks, which hold the hidden tests anyway
    graded = (course / "autograded" / "leak_raise" / "atk_tiny" / "atk_tiny.ipynb").read_text()
    assert "LEAK" in graded and PROBE in graded.split("LEAK", 1)[1]
    seen = {"autograde/feedback/report output": cli.out + cli.err}
    for p in sorted((course / "feedback").rglob("*.html")) + sorted(
            (course / "reports").glob("*.[ct][sx][vt]")) + sorted(
            (course / "autograded").glob("*/*/results.json")):
        seen[str(p.relative_to(course))] = html.unescape(p.read_text())
    with open_gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="tconv") as gb:
        for s in deserved:
            for snb in gb.find_submission("atk_tiny", s).notebooks:
                seen[f"gradebook comments of {s}"] = " ".join(
                    f"{c.auto_comment} {c.manual_comment}" for c in snb.comments)
    assert len([k for k in seen if k.endswith("feedback.html")]) == len(deserved)
    for where, text in seen.items():
        for needle in NEEDLES:
            assert needle not in text, (where, needle)

    with open(course / "reports" / "totals.csv") as f:
        totals = {r["student"]: float(r["score"]) for r in csv.DictReader(f)}
    assert totals == deserved

    def page(s: str) -> str:
        return html.unescape((course / "feedback" / s / "atk_tiny" / "feedback.html").read_text())

    # a visible-only cell: what was expected, what came back, and its hint, as the test cell
    # computed it in the student's run (an f-string may name the answer there)
    assert (f"[text] expected 'ValueError', got 'no exception'. Hint: {RAISES_HINT}"
            in page("no_raise"))
    tri = page("triple")
    assert "[two] expected 4.0, got 6.0. Hint: double(2.0) returned np.float64(6.0)" in tri
    # a cell that also runs hidden tests: expected and hint, not the student's answer; an
    # f-string hint only when it came out as in the solution's run (it names the case, not the
    # answer: neither the student's 15.0 nor the solution's 10.0); a hidden test shows its
    # outcome only (not its name, input or values)
    assert ("[scalar] expected 6.0; your answer is not shown (this cell also runs hidden "
            "tests). Hint: 2 * 3") in tri
    assert f"Hint: for [1.0, 2.0, 3.0]: {CASE_HINT}" in tri
    assert "[five] expected 10.0; your answer is not shown" in tri and ANSWER_HINT not in tri
    assert tri.count("2 of 2 hidden tests failed") == 1 and "9.0" not in tri and "probe" not in tri
    assert page("alice").count("2 of 2 hidden tests passed") == 1
    for s in ("leak_raise", "leak_return"):
        assert "[hidden]" in page(s) or "not shown" in page(s), page(s)
