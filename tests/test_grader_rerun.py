"""Re-running and stopping ``tconv-grader autograde``: a resubmission is regraded, Ctrl-C stops a
batch at once and keeps what was committed, and a grader killed outright leaves no workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from grader_class import sandbox_args
from gradingbatch import (
    ASSIGNMENT,
    ROOT,
    SOLUTIONS,
    VARIANTS,
    autograde_cmd,
    env,
    make_course,
    run_autograde,
    scores,
    submission,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="process groups, /proc")


def _wait_group_gone(pgid: int, seconds: float = 20.0) -> bool:
    """True once no process is left in process group ``pgid``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _start(course: Path, db: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(autograde_cmd(course, db, "--jobs", "2", *sandbox_args(), *extra),
                            cwd=ROOT, env=env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_results(course: Path, proc: subprocess.Popen, n: int = 1) -> int:
    results = course / "autograded"
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        done = len(list(results.glob(f"*/{ASSIGNMENT}/results.json")))
        if done >= n:
            return done
        time.sleep(0.05)
    return len(list(results.glob(f"*/{ASSIGNMENT}/results.json")))


def test_a_resubmission_is_regraded_and_the_rest_skipped(tmp_path):
    course = tmp_path / "course"
    make_course(course, ["not_done", "correct"])
    db = f"sqlite:///{course / 'gradebook.db'}"
    run_autograde(course, db, *sandbox_args())
    first = scores(db)
    assert first["st000_not_done"][0] == 0.0 and first["st001_correct"][0] == 3.0

    # the first student hands in corrected work; collect would overwrite the files like this
    late = course / "submitted" / "st000_not_done" / ASSIGNMENT
    nbformat.write(submission("correct"), late / f"{ASSIGNMENT}.ipynb")
    (late / "timestamp.txt").write_text("2026-11-21 09:00:00.000000 UTC\n")
    _, out = run_autograde(course, db, *sandbox_args())
    assert "graded 1 submission(s) (1 collected again since last graded: " \
           f"st000_not_done/{ASSIGNMENT}), skipped 1 already graded" in out, out
    assert scores(db)["st000_not_done"][0] == VARIANTS["correct"][1]
    assert scores(db)["st001_correct"] == first["st001_correct"]

    # nothing changed since: a third run grades nothing
    _, out = run_autograde(course, db, *sandbox_args())
    assert "graded 0 submission(s), skipped 2 already graded" in out, out
    # and says what comes next (the course's own gradebook needs no --db)
    assert [line for line in out.splitlines() if line.startswith("next: ")] == [
        f"next: tconv-grader feedback --course {course} --solutions {SOLUTIONS}",
        f"next: tconv-grader report --course {course}"], out


def test_ctrl_c_stops_the_batch_at_once_and_a_rerun_finishes_it(tmp_path):
    course = tmp_path / "course"
    mix = ["correct", "infinite_loop", "infinite_loop", "triple", "correct", "infinite_loop"]
    deserved = make_course(course, mix)
    db = f"sqlite:///{course / 'gradebook.db'}"
    proc = _start(course, db)
    try:
        _wait_for_results(course, proc)
    finally:
        err = _interrupt(proc)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted: stopped" in err and "re-run to grade the other " in err, err[-3000:]
    assert "Traceback" not in err, err[-3000:]      # no worker tracebacks
    # at once: a grader that waited for the running notebooks would have graded the infinite
    # loops (scored 0 at their time-out); they were killed instead, and nothing of them is kept
    looped = [p for p in (course / "autograded").glob(f"*infinite_loop/{ASSIGNMENT}/results.json")]
    assert looped == [], looped
    assert _wait_group_gone(proc.pid), "workers or sandboxes outlived the interrupted grader"

    run_autograde(course, db, *sandbox_args())
    assert {s: v[0] for s, v in scores(db).items()} == deserved


def _interrupt(proc: subprocess.Popen) -> str:
    """Ctrl-C to a running batch (SIGINT to its process group, as a terminal sends it); its
    stderr. A batch already finished fails the test; one that hangs is killed."""
    try:
        assert proc.poll() is None, "the batch finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)
        return proc.communicate(timeout=60)[1]      # a hang guard, not a timing
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_ctrl_c_counts_the_running_notebooks_and_says_force_leaves_the_rest_as_they_were(
        tmp_path):
    """Two workers, one still grading (an endless loop) when Ctrl-C comes: one running notebook
    was stopped, not two (the idle worker was counted as one); and under --force the other
    submission keeps its earlier grade, which a plain re-run does not redo (it said 're-run to
    grade the rest')."""
    course = tmp_path / "course"
    make_course(course, ["correct", "infinite_loop"])
    db = f"sqlite:///{course / 'gradebook.db'}"
    run_autograde(course, db, *sandbox_args())
    done = course / "autograded" / "st000_correct" / ASSIGNMENT / "results.json"
    before = done.stat().st_mtime_ns
    proc = _start(course, db, "--force")
    try:
        while proc.poll() is None and done.stat().st_mtime_ns == before:
            time.sleep(0.05)
    finally:
        err = _interrupt(proc)
    assert proc.returncode == 130, err[-3000:]
    assert ("interrupted: stopped 1 running notebook(s) (2 worker process(es)); 1 submission(s) "
            "graded and kept; the other 1 keep their earlier grade, if any (a re-run without "
            "--force grades only those never graded or changed since") in err, err[-3000:]


def test_a_grader_killed_outright_leaves_no_workers(tmp_path):
    course = tmp_path / "course"
    make_course(course, ["correct", "infinite_loop", "infinite_loop", "correct"])
    db = f"sqlite:///{course / 'gradebook.db'}"
    proc = _start(course, db)
    try:
        _wait_for_results(course, proc)
        assert proc.poll() is None, "the batch finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)           # the main process only, not its group
        proc.communicate(timeout=30)
        assert _wait_group_gone(proc.pid), "pool workers outlived the killed grader"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")  # submissions: no_autoflush
def test_a_submission_the_grader_failed_on_is_graded_again_by_the_next_run(tmp_path,
                                                                          monkeypatch, capsys):
    """A grader fault (not the student's) scores 0 with a flag, tells the student it was not
    their code, and the next plain run grades that submission again; the others are skipped."""
    import json

    import grader.execute
    from grader.autograde import autograde, main
    from grader.cli import build_parser
    from grader.gradebook import Course

    course_dir = tmp_path / "course"
    make_course(course_dir, ["correct", "correct"])
    broken = course_dir / "submitted" / "st001_correct" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nb = nbformat.read(broken, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source += "\n# the grader breaks on this one\n"
    nbformat.write(nb, broken)
    real = grader.execute.run_notebook

    def flaky(nb, **kw):
        if any("the grader breaks" in c.source for c in nb.cells):
            raise RuntimeError("worker lost")
        return real(nb, **kw)

    monkeypatch.setattr(grader.execute, "run_notebook", flaky)
    course = Course.open(course_dir, None, SOLUTIONS)
    first = autograde(course, jobs=1, sandbox=False, progress=False)
    key = ("st001_correct", ASSIGNMENT)
    assert first.flagged[key] == [f"{ASSIGNMENT}: grader error: RuntimeError: worker lost"]
    rec = json.loads(course.results_path(*key).read_text())
    messages = [t["message"] for c in rec["notebooks"][ASSIGNMENT]["cells"].values()
                for t in c["tests"]]
    assert messages and all("not graded" in m or "not your code" in m for m in messages), messages

    monkeypatch.setattr(grader.execute, "run_notebook", real)
    monkeypatch.setattr("grader.autograde.resolve_sandbox", lambda unsafe: False)
    args = build_parser().parse_args(["autograde", "--course", str(course_dir), "--solutions",
                                      str(SOLUTIONS), "-j", "1", "-q"])
    assert main(args) == 0
    out = capsys.readouterr().out
    assert (f"graded 1 submission(s) (1 retried after a grader error: st001_correct/"
            f"{ASSIGNMENT}), skipped 1 already graded") in out, out
    assert scores(f"sqlite:///{course_dir / 'gradebook.db'}")["st001_correct"][0] == \
        VARIANTS["correct"][1]


def test_ctrl_c_while_a_submission_is_committed_takes_effect_after_it():
    """A Ctrl-C that lands while one submission's grades and results.json are written, and it
    is counted as kept, stops the batch right after that (it said '0 graded and kept' of a
    submission whose grade was in, when the signal fell between the two)."""
    from grader.autograde import _ctrl_c_after

    steps = []
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)   # as in tconv-grader
    try:
        with pytest.raises(KeyboardInterrupt):
            with _ctrl_c_after():
                steps.append("grades written")
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)                # time for a signal to be handled, if it were
                steps.append("counted as kept")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)
    assert steps == ["grades written", "counted as kept"]


def test_a_worker_started_after_the_grader_was_killed_ends_at_once():
    """The fork server starts a pool worker when asked, so a grader killed with kill -9 while
    its pool starts leaves a request on its way: that worker found the grader gone and stayed,
    with its warm sandbox, forever (seen after `kill -9` of a real batch: the fork server, one
    worker and its bwrap sandbox still there minutes later). Now it ends at once."""
    gone = subprocess.Popen(["true"])
    gone.wait()                                       # a pid no process has any more
    code = ("import sys, time\nfrom grader.autograde import _worker_signals\n"
            f"_worker_signals({gone.pid})\ntime.sleep(20)\nprint('survived')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL and "survived" not in proc.stdout, proc
