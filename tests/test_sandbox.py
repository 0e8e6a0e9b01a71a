"""grader.execute.run_notebook and grader.sandbox: the runner's protocol, with and without bwrap.

The unsandboxed runner (``sandbox=False``) is tested everywhere; the sandboxed one where
bubblewrap works (always in CI, where scripts/sysdeps.sh installs it).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from skips import need_sandbox

from grader import sandbox as sb
from grader.execute import Limits, decode_value, run_notebook
from grader.testing import Unserialisable, values_match

pytestmark = [pytest.mark.xdist_group("sandbox"),
              pytest.mark.usefixtures("light_interpreter")]



FAST = Limits(cell_timeout=3.0, notebook_timeout=30.0, memory_bytes=512 << 20,
              max_processes=32, max_output_bytes=64 << 10)


def grade_cell(src: str, gid: str):
    return new_code_cell(src, metadata={"nbgrader": {
        "grade": True, "solution": False, "locked": True, "points": 1, "grade_id": gid,
        "schema_version": 3}})


SETUP = "from grader.testing import expect, expect_raises\nimport numpy as np"


def nb_of(*cells):
    return new_notebook(cells=[new_code_cell(SETUP), *cells])


@pytest.fixture(params=[False, True], ids=["plain", "bwrap"])
def sandbox(request) -> bool:
    if request.param:
        need_sandbox()
    return request.param


def test_records_plain_values_round_trip(tmp_path: Path, sandbox: bool) -> None:
    nb = nb_of(new_markdown_cell("# title"), new_code_cell("import torch\ny = 2"), grade_cell(
        "expect('int', y + 1, 0)\n"
        "expect('arr', np.arange(6).reshape(2, 3) / 4, 0)\n"
        "expect('i32', np.arange(3, dtype=np.int32), 0)\n"
        "expect('bool', np.array([True, False]), 0)\n"
        "expect('t', torch.tensor([[1.5, 2.5]], dtype=torch.float32), 0)\n"
        "expect('nest', {'a': (1, 2.5, None, 'é\\n\"'), 'b': [np.float32(0.5), True]}, 0)\n"
        "expect('nan', [float('nan'), float('-inf')], 0)\n"
        "expect('obj', object(), 0)\n"
        "expect('str_arr', np.array(['a']), 0)\n"
        "expect('scalar0d', np.float64(3.25), 0)\n"
        "expect('empty', np.zeros((0, 2)), 0)\n"
        "expect_raises('raises', ValueError, int, 'x')\n"
        "expect_raises('none', ValueError, int, '3')", "t1"))
    slow_import = Limits(cell_timeout=120.0, notebook_timeout=240.0)  # torch is not preloaded
    ex = run_notebook(nb, workdir=tmp_path, limits=slow_import, sandbox=sandbox)
    assert [c.status for c in ex.cells] == ["ok", "ok", "ok"], ex.cells
    r = ex.records
    assert r["t1/int"] == 3 and type(r["t1/int"]) is int
    assert values_match(r["t1/arr"], np.arange(6).reshape(2, 3) / 4)
    assert r["t1/i32"].dtype == np.int64 and r["t1/i32"].tolist() == [0, 1, 2]
    assert r["t1/bool"].dtype == np.bool_ and r["t1/bool"].tolist() == [True, False]
    assert r["t1/t"].dtype == np.float32 and r["t1/t"].tolist() == [[1.5, 2.5]]  # its width
    assert r["t1/nest"] == {"a": (1, 2.5, None, 'é\n"'), "b": [0.5, True]}
    assert np.isnan(r["t1/nan"][0]) and r["t1/nan"][1] == float("-inf")
    assert isinstance(r["t1/obj"], Unserialisable) and isinstance(r["t1/str_arr"], Unserialisable)
    assert r["t1/scalar0d"] == 3.25 and r["t1/empty"].shape == (0, 2)
    assert r["t1/raises"] == "ValueError" and r["t1/none"] == "no exception"
    assert ex.flags == ["NaN in test value 't1/nan'", "not plain data (object) in test value "
                        "'t1/obj'", "not plain data (ndarray[<U1]) in test value 't1/str_arr'"]


def test_errors_continue_and_output_is_captured(tmp_path: Path, sandbox: bool) -> None:
    nb = nb_of(new_code_cell("print('hello')\nimport sys; print('warn', file=sys.stderr)"),
               new_code_cell("1 / 0"), new_code_cell("raise SystemExit(3)"),
               new_code_cell("%matplotlib inline\nz = 5"), new_code_cell("!ls /"),
               grade_cell("expect('z', z, 0)", "t"))
    ex = run_notebook(nb, workdir=tmp_path, limits=FAST, sandbox=sandbox)
    st = [(c.status, (c.error or "").split(":")[0]) for c in ex.cells]
    assert st == [("ok", ""), ("ok", ""), ("error", "ZeroDivisionError"),
                  ("error", "SystemExit"), ("ok", ""), ("error", "SyntaxError"), ("ok", "")]
    assert ex.cells[1].output == "hello\nwarn\n"
    assert ex.records == {"t/z": 5}


def test_records_of_a_stopped_test_cell_are_kept(tmp_path: Path, sandbox: bool) -> None:
    """What a test cell recorded before it stopped is kept (grading tells which of its tests
    passed, as `check` does); its status says it stopped, so it scores nothing (autograde)."""
    nb = nb_of(grade_cell("expect('a', 1, 1)\nexpect('b', 2, 3)\nraise ValueError('later')\n"
                          "expect('c', 3, 3)", "t"))
    ex = run_notebook(nb, workdir=tmp_path, limits=FAST, sandbox=sandbox)
    assert ex.cells[-1].status == "error" and ex.records == {"t/a": 1, "t/b": 2}


def test_recorders_only_in_test_cells(tmp_path: Path, sandbox: bool) -> None:
    nb = nb_of(grade_cell("keep = expect\nexpect('a', 1, 0)", "t"),
               new_code_cell("keep('b', 2, 0)\nexpect('c', 3, 3)"))
    ex = run_notebook(nb, workdir=tmp_path, limits=FAST, sandbox=sandbox)
    assert ex.records == {"t/a": 1}
    assert [c.status for c in ex.cells] == ["ok", "ok", "ok"]


def test_soft_timeout_then_next_cell_runs(tmp_path: Path, sandbox: bool) -> None:
    nb = nb_of(new_code_cell("while True:\n    pass"), grade_cell("expect('a', 1, 0)", "t"))
    ex = run_notebook(nb, workdir=tmp_path, limits=Limits(cell_timeout=1.0), sandbox=sandbox)
    assert [c.status for c in ex.cells] == ["ok", "timeout", "ok"]
    assert "timeout" in ex.flags and ex.records == {"t/a": 1}


def test_kernel_death_is_not_a_pass(tmp_path: Path, sandbox: bool) -> None:
    nb = nb_of(new_code_cell("import os\nos._exit(0)"), grade_cell("expect('a', 1, 0)", "t"))
    ex = run_notebook(nb, workdir=tmp_path, limits=FAST, sandbox=sandbox)
    assert [c.status for c in ex.cells] == ["ok", "killed", "not_run"]
    assert ex.records == {} and "kernel died (exit code 0)" in ex.flags


def test_writes_stay_in_the_scratch_copy(tmp_path: Path, sandbox: bool) -> None:
    (tmp_path / "data.txt").write_text("given")
    nb = nb_of(new_code_cell("print(open('data.txt').read())\n"
                             "open('data.txt', 'w').write('changed')\nopen('new.txt', 'w')"))
    ex = run_notebook(nb, workdir=tmp_path, limits=FAST, sandbox=sandbox)
    assert ex.cells[1].status == "ok" and ex.cells[1].output == "given\n"
    assert (tmp_path / "data.txt").read_text() == "given"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]


@pytest.mark.parametrize("bad", [{"cells": "x"}, {"no": "cells"}, [1, 2],
                                 {"cells": [{"cell_type": "code", "source": 3}]}])
def test_invalid_notebook_input_is_flagged_not_raised(tmp_path: Path, bad) -> None:
    ex = run_notebook(bad, workdir=tmp_path, limits=FAST, sandbox=False)
    assert ex.cells == [] and ex.records == {}
    assert len(ex.flags) == 1 and ex.flags[0].startswith("invalid notebook: nb:")


def test_decode_value_rejects_what_the_harness_never_sends() -> None:
    for bad in ({"$": "nd", "npy": "!!"}, {"$": "pickle"}, {"a": 1}, [1], {"$": "float", "v": "1"},
                {"$": "list", "v": {"a": 1}}):
        with pytest.raises(ValueError):
            decode_value(bad)
    import base64
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        decode_value({"$": "nd", "npy": base64.b64encode(buf.getvalue()).decode()})


def test_sandbox_mounts_expose_no_repository(tmp_path: Path) -> None:
    args = sb.base_mounts()
    sources = [args[i + 1] for i, a in enumerate(args) if a in ("--ro-bind", "--bind")]
    repo = Path(__file__).resolve().parents[1]
    for s in sources:
        assert Path(s).resolve() not in (repo, repo / "solutions", Path("/")), s
    assert str(repo / "solutions") not in " ".join(sources)
    assert "--unshare-net" in sb.namespace_args()


def test_sandboxed_view_of_the_machine(tmp_path: Path) -> None:
    need_sandbox()
    hidden = (str(Path(__file__).resolve().parents[1] / "solutions"), str(tmp_path))
    nb = nb_of(new_code_cell(
        "import os, socket\n"
        "print(sorted(os.listdir('/')))\n"
        "print(os.getcwd(), os.listdir('.'), os.getuid() != 0)\n"
        f"print(os.path.exists({hidden[0]!r}), os.path.exists({hidden[1]!r}))\n"
        "try:\n    socket.create_connection(('1.1.1.1', 80), timeout=1)\n"
        "except OSError as e:\n    print('net', type(e).__name__)\n"))
    (tmp_path / "mine.txt").write_text("x")
    ex = run_notebook(nb, workdir=tmp_path, limits=FAST, sandbox=True)
    out = ex.cells[1].output.splitlines()
    top = eval(out[0])  # noqa: S307 - our own printed list
    assert "work" in top and "opt" in top and "farm" not in top and "home" not in top
    assert out[1] == "/work ['mine.txt'] True"
    assert out[2] == "False False"
    assert out[3].startswith("net ")
    assert "network attempt" in ex.flags


def test_fixture_notebook_is_valid() -> None:
    here = Path(__file__).parent / "fixtures" / "attacks" / "solutions" / "atk_tiny"
    nbformat.validate(nbformat.read(here / "atk_tiny.ipynb", as_version=4))


def test_per_run_mode_for_unprivileged_users(tmp_path: Path, monkeypatch) -> None:
    """Without root: one bubblewrap per notebook in a user namespace (forced here as root)."""
    need_sandbox()
    monkeypatch.setenv("TCONV_SANDBOX_MODE", "per-run")
    (tmp_path / "given.txt").write_text("x")
    nb = nb_of(new_code_cell("import os\nprint(os.getcwd(), os.listdir('.'))\n"
                             "open('new.txt', 'w').write('y')"),
               grade_cell("expect('a', np.arange(3), 0)", "t"))
    ex = run_notebook(nb, workdir=tmp_path, limits=FAST, sandbox=True)
    assert [c.status for c in ex.cells] == ["ok", "ok", "ok"], ex.cells
    assert ex.cells[1].output == "/work ['given.txt']\n"
    assert ex.records["t/a"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["given.txt"]


def test_notebook_timeout_alone_stops_many_short_cells(tmp_path: Path, sandbox: bool) -> None:
    """Each cell is far under its own limit; together they pass the notebook's."""
    naps = [new_code_cell("import time\ntime.sleep(0.3)") for _ in range(15)]
    lim = Limits(cell_timeout=3.0, notebook_timeout=1.5, memory_bytes=512 << 20)
    ex = run_notebook(nb_of(*naps, grade_cell("expect('a', 1, 0)", "t")), workdir=tmp_path,
                      limits=lim, sandbox=sandbox)
    st = [c.status for c in ex.cells]
    k = st.index("timeout")
    assert k >= 1 and st[:k] == ["ok"] * k and st[k + 1:] == ["not_run"] * (len(st) - k - 1), st
    assert ex.cells[k].error == "notebook timed out"
    assert "notebook timeout" in ex.flags and "timeout" in ex.flags
    assert ex.records == {}


# ---- refusing to grade without a sandbox ----------
ATK = Path(__file__).parent / "fixtures" / "attacks" / "solutions"


def _course_with_a_submission(tmp_path: Path) -> Path:
    course = tmp_path / "course"
    d = course / "submitted" / "alice" / "atk_tiny"
    d.mkdir(parents=True)
    (d / "atk_tiny.ipynb").write_text((ATK / "atk_tiny" / "atk_tiny.ipynb").read_text())
    return course


@pytest.mark.parametrize("ci", [None, "1", "true", "YES"])
def test_autograde_refuses_when_bwrap_cannot_run(tmp_path: Path, monkeypatch, capsys,
                                                  ci: str | None) -> None:
    """No sandbox: exit 2 naming the reason and --unsafe-no-sandbox, nothing graded; in CI (any
    spelling of CI) even --unsafe-no-sandbox is refused."""
    from grader.cli import main

    why = "fake: bubblewrap cannot create namespaces here"
    monkeypatch.setattr(sb, "available", lambda: (False, why))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    course = _course_with_a_submission(tmp_path)
    argv = ["autograde", "--course", str(course), "--solutions", str(ATK), "--quiet"]
    rc = main(argv + (["--unsafe-no-sandbox"] if ci else []))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert why in err and "--unsafe-no-sandbox" in err, err
    if ci:
        assert "refused in CI" in err, err
    assert not (course / "gradebook.db").exists() and not (course / "autograded").exists()
    assert sorted(p.name for p in course.iterdir()) == ["submitted"]


@pytest.mark.parametrize(("value", "ci"), [("1", True), ("true", True), ("True", True),
                                           ("yes", True), (" YES ", True), ("", False),
                                           ("0", False), ("false", False), ("no", False)])
def test_in_ci_is_one_rule(monkeypatch, value: str, ci: bool) -> None:
    import skips

    monkeypatch.setenv("CI", value)
    assert sb.in_ci() is ci and skips.in_ci() is ci


# ---- the limits autograde uses ----------
def test_autograde_uses_the_default_limits_unless_told(monkeypatch) -> None:
    from grader import autograde
    from grader.cli import build_parser
    from grader.execute import Execution

    assert Limits().memory_bytes == 2 << 30  # 2 GiB per notebook, all its processes together
    assert autograde._limits(None) == Limits()
    five = autograde._limits(5.0)
    assert (five.cell_timeout, five.notebook_timeout, five.memory_bytes) == (5.0, 5.0, 2 << 30)
    assert autograde._limits(None, 512).memory_bytes == 512 << 20
    # --cell-timeout raises (or lowers) the per-cell limit, never past the notebook's
    assert autograde._limits(None, None, 60.0).cell_timeout == 60.0
    longer = autograde._limits(300.0, None, 60.0)
    assert (longer.cell_timeout, longer.notebook_timeout) == (60.0, 300.0)
    assert autograde._limits(20.0, None, 60.0).cell_timeout == 20.0
    assert build_parser().parse_args(["autograde", "--course", "c", "--cell-timeout", "45"]
                                     ).cell_timeout == 45.0
    args = build_parser().parse_args(["autograde", "--course", "c"])
    assert args.memory is None and args.timeout is None
    seen = []

    def fake_run(nb, *, workdir, limits, sandbox):
        seen.append(limits)
        return Execution({}, [], [], 0.0)

    monkeypatch.setattr("grader.execute.run_notebook", fake_run)
    task = {"key": ("s", "a"), "notebook": "n", "flags": [], "nb": nbformat.writes(nb_of()),
            "specs": {}, "expected": {}, "files": [], "timeout": None, "sandbox": False}
    autograde.grade_notebook(task)
    autograde.grade_notebook({**task, "memory_mib": 300})
    assert seen == [Limits(), Limits(memory_bytes=300 << 20)]


# ---- student mode of grader.testing ----------
def test_student_mode_failures_say_expected_got_and_hint() -> None:
    from grader.testing import expect, expect_raises

    expect("ok", np.array([1.0, 2.0]), [1.0, 2.0])  # a match says nothing
    with pytest.raises(AssertionError) as e:
        expect("pair", [1.0, 2.0], [2.0, 4.0], hint="double each element")
    assert str(e.value) == "[pair] expected [2.0, 4.0], got [1.0, 2.0]. Hint: double each element"
    with pytest.raises(AssertionError) as e:
        expect("arr", np.zeros(2), np.ones(2))
    assert str(e.value) == ("[arr] expected array of shape (2,): [1.0, 1.0], got array of shape "
                            "(2,): [0.0, 0.0].")
    with pytest.raises(AssertionError) as e:
        expect_raises("bad", ValueError, int, "3", hint="non-numbers raise")
    assert str(e.value) == "[bad] expected ValueError to be raised, got no exception. " \
                           "Hint: non-numbers raise"
    expect_raises("fine", ValueError, int, "x")
