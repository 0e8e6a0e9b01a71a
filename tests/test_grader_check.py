"""``tconv-grader check`` as a student meets it: time limits that work (and are the grader's),
Ctrl-C and SIGTERM that stop the run and its kernel, errors in solution cells, short descriptions
of mismatched arrays, blank written answers, edited or deleted test cells, and a directory given
instead of a notebook.

The notebooks are built here (nbgrader metadata and checksums as ``release`` writes them), small
and numpy-only, so each check starts a kernel in a second or two."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from grader.cli import main
from grader.execute import Limits

REPO = Path(__file__).resolve().parent.parent
SETUP = "import numpy as np\nfrom grader.testing import expect, expect_raises"
SOLVE = "def double(x):\n    return 2 * np.asarray(x)"
TEST_A = 'expect("a", double([1, 2]), expected=np.array([2, 4]))'
TEST_B = 'expect("b", double(3), expected=6)'
ANSWER_PROMPT = "YOUR ANSWER HERE"


def _cell(kind: str, source: str, gid: str | None = None, points: float | None = None):
    """A cell with nbgrader metadata: ``kind`` is setup, solution, test, answer or plain."""
    from nbgrader.utils import compute_checksum

    cell = (nbformat.v4.new_markdown_cell(source) if kind in ("answer", "text")
            else nbformat.v4.new_code_cell(source))
    if kind in ("plain", "text"):
        return cell
    cell.metadata["nbgrader"] = {
        "grade": kind in ("test", "answer"), "grade_id": gid or kind,
        "locked": kind in ("setup", "test"), "schema_version": 3,
        "solution": kind in ("solution", "answer")}
    if points is not None:
        cell.metadata["nbgrader"]["points"] = points
    cell.metadata["nbgrader"]["checksum"] = compute_checksum(cell)
    return cell


def _released():
    """A released notebook: setup, a solution cell (the student's code), two tests (2 + 3
    points), a written answer (2 points) still blank, and a plain cell at the end."""
    return nbformat.v4.new_notebook(cells=[
        _cell("setup", SETUP, "setup"),
        _cell("solution", SOLVE, "double_impl"),
        _cell("test", TEST_A, "test_a", 2),
        _cell("test", TEST_B, "test_b", 3),
        _cell("text", "Why is it double?"),
        _cell("answer", ANSWER_PROMPT, "why_double", 2),
        _cell("plain", "open('after.txt', 'w').write('ran')"),
    ])


def _with(nb, gid: str, source: str):
    nb = copy.deepcopy(nb)
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == gid:
            c.source = source
    return nb


def _write(nb, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture(autouse=True)
def _kernel_imports_grader(monkeypatch):
    """The kernel imports ``grader.testing`` from this checkout."""
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _kernels_of(pid: int) -> list[int]:
    """Living ipykernel processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_text()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and "ipykernel" in cmd:
            out.append(int(stat.parent.name))
    return out


# ---- 1. time limits that work; Ctrl-C and SIGTERM stop the run and the kernel ------------------
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_an_endless_cell_is_interrupted_and_the_rest_runs(tmp_path, capfd):
    """As at grading: the cell over its limit is stopped, ``double`` (defined before the loop)
    exists, and the cells after it run and count."""
    nb = _with(_released(), "double_impl", SOLVE + "\nwhile True:\n    pass")
    path = _write(nb, tmp_path / "loop.ipynb")
    assert main(["check", str(path), "--timeout", "2", "-q"]) == 1   # a cell timed out
    out = capfd.readouterr().out
    assert "TIMEOUT  `double_impl`" in out, out
    assert "timed out: still running after 2 s" in out and "and interrupted, at `while True:`; " \
        "the cells after it still ran, as at grading" in out, out
    assert "PASS  test_a" in out and "PASS  test_b" in out, out
    assert "score estimate (visible tests only): 5 / 5" in out
    assert (tmp_path / "after.txt").exists()            # the cells after it ran
    assert _kernels_of(os.getpid()) == []               # the kernel was shut down


def test_an_interrupted_cell_says_where_it_was_running(tmp_path, capfd):
    """The time-out names the student's function and line the interrupt found running."""
    loop = "import time\ndef double(x):\n    while True:\n        time.sleep(0.01)"
    path = _write(_with(_released(), "double_impl", loop), tmp_path / "slow_double.ipynb")
    assert main(["check", str(path), "--timeout", "2", "-q"]) == 1
    out = capfd.readouterr().out
    assert "FAIL  test_a  (2 pt)\n      timed out: still running after 2 s, the limit per " \
        "cell (grading allows 30 s per cell), and interrupted in `double`, at " \
        "`time.sleep(0.01)`; the cells after it still ran" in out, out


def test_a_test_cell_with_hidden_tests_warns_from_a_quarter_of_the_limit(tmp_path, capfd):
    """Grading calls the student's code again in a cell that also runs hidden tests, so check
    warns there from a quarter of the cell limit, elsewhere from half."""
    from grader.check import HIDDEN_NOTICE

    nb = _released()
    slow = "import time\ntime.sleep(1.3)\n"
    nb.cells[2] = _cell("test", f"{slow}{TEST_A}\n# At grading this cell {HIDDEN_NOTICE} (edge "
                        "cases).", "test_a", 2)
    nb.cells[3] = _cell("test", slow + TEST_B, "test_b", 3)
    path = _write(nb, tmp_path / "hidden.ipynb")
    assert main(["check", str(path), "--timeout", "4", "-q"]) == 0   # all pass
    out = capfd.readouterr().out
    assert "WARNING  `test_a` took 1.3 s, more than a quarter of the 4 s limit per cell" in out \
        and "at grading it also runs hidden tests, which call your code again, so it may run " \
        "out of time there" in out, out
    assert "WARNING  `test_b`" not in out, out


STUBBORN = SOLVE + """
while True:
    try:
        while True:
            pass
    except BaseException:      # swallows the interrupt here, and grading's time-out
        pass"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_cell_that_ignores_the_interrupt_stops_the_notebook(tmp_path, capfd):
    """Grading kills a notebook whose cell does not stop when told to; so does check."""
    path = _write(_with(_released(), "double_impl", STUBBORN), tmp_path / "stubborn.ipynb")
    assert main(["check", str(path), "--timeout", "2", "-q"]) == 1
    out = capfd.readouterr().out
    assert "TIMEOUT  `double_impl`" in out and "did not stop when interrupted; the cells " \
        "after it did not run (grading stops the notebook there too)" in out, out
    assert "FAIL  test_a  (2 pt)\n      not run: `double_impl` above stopped the notebook" in out
    assert "score estimate (visible tests only): 0 / 5" in out
    assert not (tmp_path / "after.txt").exists()       # the cells after it did not run
    assert _kernels_of(os.getpid()) == []               # the kernel was killed


def test_a_slow_cell_is_stopped_at_the_cell_limit(tmp_path, capfd):
    """time.sleep is not a busy loop: it used to finish and pass whatever the limit."""
    nb = _released()
    nb.cells.insert(3, _cell("plain", "import time\ntime.sleep(15)\nopen('slept.txt', 'w')"))
    path = _write(nb, tmp_path / "sleepy.ipynb")
    assert main(["check", str(path), "--timeout", "2", "-q"]) == 1
    assert not (tmp_path / "slept.txt").exists()       # stopped mid-sleep, not waited for
    out = capfd.readouterr().out
    assert "PASS  test_a" in out and "TIMEOUT  cell 4 (`import time`)" in out, out
    assert "PASS  test_b" in out, out                  # the cell after it ran
    assert "score estimate (visible tests only): 5 / 5" in out


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_run_and_its_kernel(tmp_path, sig, code):
    nb = _with(_released(), "double_impl", SOLVE + "\nwhile True:\n    pass")
    path = _write(nb, tmp_path / "loop.ipynb")
    proc = subprocess.Popen([sys.executable, "-m", "grader", "check", str(path), "-q",
                             "--timeout", "300"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (kernels := _kernels_of(proc.pid)) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        assert kernels, "no kernel started"
        time.sleep(1)  # the kernel is busy in the endless cell by now
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, (out, err)
    deadline = time.monotonic() + 5
    while any(_alive(k) for k in kernels) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(k) for k in kernels), "the kernel outlived the check"


# ---- 2. the grader's limits, the run time, slow cells ------------------------------------------
def test_defaults_are_the_grading_limits_and_slow_cells_are_flagged(tmp_path, capfd):
    from grader.cli import build_parser

    limits = Limits()
    args = build_parser().parse_args(["check", "x.ipynb"])
    assert (args.timeout, args.notebook_timeout) == (limits.cell_timeout, limits.notebook_timeout)
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    helptext = " ".join(capfd.readouterr().out.split())
    assert f"default: {limits.cell_timeout:g}, the grading limit" in helptext, helptext
    assert f"default: {limits.notebook_timeout:g}, the grading limit" in helptext, helptext

    nb = _with(_released(), "double_impl", SOLVE + "\nimport time\ntime.sleep(1.3)")
    path = _write(nb, tmp_path / "slow.ipynb")
    assert main(["check", str(path), "--timeout", "2", "-q"]) == 0
    out = capfd.readouterr().out
    allows = f"grading allows {limits.cell_timeout:g} s per cell"
    assert "WARNING  `double_impl` took 1." in out, out
    assert f"more than half the 2 s limit per cell ({allows}" in out, out
    assert "ran in " in out and (f"s ({allows}, {limits.notebook_timeout:g} s per notebook)"
                                  in out), out
    # the notebook limit: every cell shares it
    nb = _released()
    nb.cells[2:2] = [_cell("plain", "import time; time.sleep(1)") for _ in range(2)]
    path = _write(nb, tmp_path / "slow_total.ipynb")
    assert main(["check", str(path), "--notebook-timeout", "1.5", "-q"]) == 1
    out = capfd.readouterr().out
    assert "(`import time; time.sleep(1)`)  (not a test cell)\n      the notebook reached its " \
        "time limit of 1.5 s here" in out, out
    assert "FAIL  test_a  (2 pt)\n      not run" in out
    assert main(["check", str(path), "--notebook-timeout", "0"]) == 2


# ---- 3. mismatched arrays in a few words ------------------------------------------------------
def _message(got, expected) -> str:
    from grader.testing import expect

    with pytest.raises(AssertionError) as exc:
        expect("big", got, expected, hint="h")
    return str(exc.value)


def test_mismatched_arrays_are_summarised_not_printed():
    expected = np.arange(10_000, dtype=float).reshape(100, 100)
    msg = _message(np.zeros((99, 100)), expected)
    assert msg == ("[big] expected an array of shape (100, 100) (float64), got an array of "
                   "shape (99, 100) (float64). Hint: h"), msg
    got = expected.copy()
    got[3, 7] += 0.5
    got[50, 50] -= 2.0
    msg = _message(got, expected)
    assert msg == ("[big] arrays of shape (100, 100) differ at 2 of 10000 entries; largest "
                   "difference 2; first at index (3, 7): expected 307.0, got 307.5. Hint: h"), msg
    msg = _message(np.linspace(0, 1, 50) + 1e-3, np.linspace(0, 1, 50))
    assert msg.startswith("[big] arrays of shape (50,) differ at 50 of 50 entries; largest "
                          "difference 0.001; first at index 0: expected 0.0, got 0.001"), msg
    # a small shape mismatch shows no values either; small arrays of one shape, numbers and
    # strings are shown whole, as before
    assert _message(np.zeros(3), np.ones(2)) == ("[big] expected an array of shape (2,) "
                                                 "(float64), got an array of shape (3,) "
                                                 "(float64). Hint: h")
    assert _message(np.zeros(2), np.ones(2)) == ("[big] expected array of shape (2,): [1.0, 1.0], "
                                                 "got array of shape (2,): [0.0, 0.0]. Hint: h")
    assert _message(4, 3) == "[big] expected 3, got 4. Hint: h"
    assert _message("x", "y") == "[big] expected 'y', got 'x'. Hint: h"
    nan = np.zeros(100)
    nan[[5, 7]] = np.nan
    assert "2 of your entries are NaN or infinite; first at index 5: expected 0.0, got nan" in \
        _message(nan, np.zeros(100))
    assert len(_message([got, 1], [expected, 1])) < 200
    # an answer of another kind (an error's text) beside a long array: its shape, not its numbers
    assert _message("RuntimeError: negative padding", expected) == (
        "[big] expected an array of shape (100, 100) (float64), got 'RuntimeError: negative "
        "padding'. Hint: h")
    assert _message(None, np.ones(2)) == ("[big] expected array of shape (2,): [1.0, 1.0], got "
                                          "None. Hint: h")


def test_describe_shows_a_long_array_by_its_shape_and_first_entries():
    """What the feedback pages show of a recorded array: never a cut-off wall of digits."""
    from grader.testing import describe

    assert describe(np.array([1.0, 2.5])) == "array of shape (2,): [1.0, 2.5]"
    text = describe(np.arange(1000, dtype=float).reshape(10, 100) / 3)
    assert text.startswith("an array of shape (10, 100) (float64) whose first entries are "
                           "[0.0, 0.333333, 0.666667, 1.0, 1.33333,"), text
    assert text.endswith(", ...]") and len(text) <= 300, text
    assert len(describe(np.arange(1000), 80)) <= 80
    assert describe(np.zeros((0, 500))) == "array of shape (0, 500): []"


# ---- 4. errors in solution cells ----------------------------------------------------------------
def test_an_error_in_a_solution_cell_is_shown_and_tests_point_at_it(tmp_path, capfd):
    nb = _with(_released(), "double_impl", "x = 1\ndef double(x:\n    return 2 * x")
    path = _write(nb, tmp_path / "syntax.ipynb")
    assert main(["check", str(path), "-q"]) == 1
    out = capfd.readouterr().out
    assert "ERROR  `double_impl`  (not a test cell)\n      SyntaxError: " in out, out
    assert "(line 2 of the cell): `def double(x:`" in out, out
    assert ("NameError: name 'double' is not defined (raised at line 1 of a cell); an earlier "
            "cell failed: `double_impl` (SyntaxError), fix it first") in out, out
    # a cell without an nbgrader id is named by its position and first line
    nb = _with(_released(), "double_impl", SOLVE)
    nb.cells.insert(2, _cell("plain", "helper = 1 / 0"))
    path = _write(nb, tmp_path / "zero.ipynb")
    assert main(["check", str(path), "-q"]) == 0
    out = capfd.readouterr().out
    assert ("ERROR  cell 3 (`helper = 1 / 0`)  (not a test cell)\n      ZeroDivisionError: "
            "division by zero (raised at line 1 of a cell): `helper = 1 / 0`") in out, out


def test_a_float32_answer_is_told_why_it_may_fail():
    import torch

    expected = np.array([1.0, 2.0])
    for got in (np.float32([1.00001, 2.0]), torch.tensor([1.00001, 2.0], dtype=torch.float32)):
        assert "Your answer is float32: the tests compare with float64 results" in \
            _message(got, expected)
    assert "Your answer" not in _message(np.array([1.1, 2.0]), expected)
    assert "Your answer" not in _message(torch.tensor([1.1, 2.0], dtype=torch.float64), expected)


def test_an_error_raised_in_the_students_function_names_the_tests_line(tmp_path, capfd):
    """A test cell stopped by the student's own exception says where it was raised and which
    line of the test called it (the case), not only the student's line."""
    nb = _with(_released(), "double_impl",
               "def double(x):\n    if np.ndim(x):\n        raise ValueError('no lists')\n"
               "    return 2 * x")
    path = _write(nb, tmp_path / "raises.ipynb")
    assert main(["check", str(path), "-q"]) == 1
    out = capfd.readouterr().out
    assert ("FAIL  test_a  (2 pt)\n      ValueError: no lists (raised in `double`, line 3 of its "
            "cell), at the test's line `expect(\"a\", double([1, 2]), expected=np.array([2, "
            "4]))`") in out, out
    assert "PASS  test_b  (3 pt)" in out, out


# ---- 5. blank written answers -------------------------------------------------------------------
def test_blank_written_answers_are_listed(tmp_path, capfd):
    path = _write(_released(), tmp_path / "blank.ipynb")
    assert main(["check", str(path), "-q"]) == 0
    out = capfd.readouterr().out
    assert "why_double (2 pt): still blank, graded by hand" in out, out
    assert "score estimate (visible tests only): 5 / 5" in out
    answered = _with(_released(), "why_double", "Because of the 2.")
    path = _write(answered, tmp_path / "answered.ipynb")
    assert main(["check", str(path), str(tmp_path / "blank.ipynb"), "-q"]) == 0
    out = capfd.readouterr().out
    assert "why_double (2 pt): answered, graded by hand" in out
    assert "== 1 written answer(s) still blank\n== all 2 notebooks: 10 / 10" in out, out


# ---- 6. edited and deleted test cells -----------------------------------------------------------
def test_an_edited_test_cell_is_not_counted_without_the_release(tmp_path, capfd, monkeypatch):
    import grader.check

    monkeypatch.setattr(grader.check, "RELEASED", tmp_path / "nothing")
    nb = _with(_with(_released(), "double_impl", "def double(x):\n    return x"), "test_a", "pass")
    path = _write(nb, tmp_path / "edited.ipynb")
    assert main(["check", str(path), "-q"]) == 1
    out = capfd.readouterr().out
    assert out.startswith("WARNING  test cell `test_a` was edited: grading restores the original "
                          "locked cells and counts the released tests"), out
    assert "FAIL  test_a  (2 pt)\n      edited: grading runs the released test" in out
    assert "score estimate (visible tests only): 0 / 5" in out


def test_edited_and_deleted_test_cells_are_restored_from_the_release(tmp_path, capfd,
                                                                      monkeypatch):
    import grader.check

    released = _released()
    _write(released, tmp_path / "exercises" / "ex_double" / "ex_double.ipynb")
    monkeypatch.setattr(grader.check, "RELEASED", tmp_path / "exercises")
    nb = _with(released, "double_impl", "def double(x):\n    return 2 * x")  # fails test_a
    nb = _with(nb, "test_a", "pass")
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_b"]
    path = _write(nb, tmp_path / "student" / "ex_double" / "ex_double.ipynb")
    assert main(["check", str(path), "-q"]) == 1
    out = capfd.readouterr().out
    assert "WARNING  test cell `test_a` was edited" in out and "this check ran the released " \
        "cell" in out, out
    assert "WARNING  test cell `test_b` was deleted" in out, out
    assert "FAIL  test_a  (2 pt)\n      AssertionError: [a] expected an array of shape (2,)" in out
    assert "PASS  test_b  (3 pt)" in out     # re-inserted and run
    assert "score estimate (visible tests only): 3 / 5" in out


def test_restore_ignores_another_release_and_untouched_cells():
    from grader.check import restore_locked

    released = _released()
    nb, changes = restore_locked(released, released)
    assert changes == [] and [c.source for c in nb.cells] == [c.source for c in released.cells]
    # a newer release (other checksums) is not this notebook's: only checksums count, nothing is
    # re-inserted
    newer = _with(released, "test_b", TEST_B + "\n# more")
    newer.cells[3].metadata["nbgrader"]["checksum"] = "0" * 32
    nb = copy.deepcopy(released)
    del nb.cells[2]
    assert restore_locked(nb, newer)[1] == []
    # points changed in the metadata are an edit too
    nb = copy.deepcopy(released)
    nb.cells[2].metadata["nbgrader"]["points"] = 20
    nb, changes = restore_locked(nb, released)
    assert changes == [{"grade_id": "test_a", "test": True, "change": "edited",
                        "restored": True}]
    assert nb.cells[2].metadata["nbgrader"]["points"] == 2
    # a duplicated test cell counts once, as in grading (nbgrader drops the copy's metadata)
    nb = copy.deepcopy(released)
    nb.cells.insert(4, copy.deepcopy(nb.cells[3]))
    nb, changes = restore_locked(nb, None)
    assert changes == [{"grade_id": "test_b", "test": True, "change": "duplicated",
                        "restored": True}]
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells[3:5]] == \
        ["test_b", None]


# ---- 7. a directory instead of a notebook ------------------------------------------------------
def test_a_directory_names_the_notebooks_inside(tmp_path, capsys):
    nbpath = _write(_released(), tmp_path / "ex_double" / "ex_double.ipynb")
    _write(_released(), tmp_path / "ex_double" / ".ipynb_checkpoints" / "ex_double-checkpoint"
           ".ipynb")
    assert main(["check", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"NOTEBOOK must be an existing .ipynb file; got {tmp_path}, a directory" in err, err
    assert f"`tconv-grader check {nbpath}`" in err and "checkpoint" not in err, err
    (tmp_path / "empty").mkdir()
    assert main(["check", str(tmp_path / "empty")]) == 2
    assert "a directory with no .ipynb notebook in it" in capsys.readouterr().err


def test_expect_raises_takes_a_subclass_of_the_expected_error() -> None:
    """Student mode, as grading records it: an exception that ``except ValueError`` would catch
    passes, another type fails naming both, and a class with a metaclass of its own is named by
    its own name (it does not get to decide)."""
    from grader.testing import expect_raises, raised_as

    class Unreachable(ValueError):
        pass

    def raise_(exc):
        raise exc

    expect_raises("sub", ValueError, raise_, Unreachable("7 is not reachable"))
    with pytest.raises(AssertionError, match=r"\[other\] expected ValueError to be raised, got "
                                             r"TypeError"):
        expect_raises("other", ValueError, raise_, TypeError("no"))

    class Meta(type):
        def __subclasscheck__(cls, sub):
            return True

    class Anything(Exception, metaclass=Meta):
        pass

    assert raised_as(Anything, raise_, KeyError("k")) == "KeyError"
    assert raised_as(ValueError, lambda: None) == "no exception"
