"""``tconv-grader validate`` over the course: every solution scores full marks and every
released stub zero, through the real (sandboxed where possible) autograde path."""

from __future__ import annotations

from pathlib import Path

import pytest
from grader_class import sandbox_args

from grader.cli import main

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.xdist_group("grader_validate")


@pytest.mark.slow
def test_validate_course(capsys):
    # student mode (solutions vs their `expected` values in a kernel) is tests/test_solutions.py's
    rc = main(["validate", "--jobs", "2", "-q", "--no-student-mode", *sandbox_args()])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "valid: every solution scores full marks and every stub zero" in captured.out


def test_validate_fixture_and_detects_a_broken_solution(tmp_path, capsys, monkeypatch):
    import os
    import shutil

    import nbformat

    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    fixtures = REPO / "tests" / "fixtures" / "grader" / "solutions"
    assert main(["validate", "--solutions", str(fixtures), "--released", str(tmp_path / "none"),
                 "--jobs", "1", "-q", *sandbox_args()]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"next: tconv-grader release -o {tmp_path / 'none'} (there is no release there yet; the "
        "stubs validated here were generated in memory)")
    # a "solution" that is really the stub must be reported, naming the assignment
    broken = tmp_path / "solutions"
    shutil.copytree(fixtures, broken)
    path = broken / "fx_scatter" / "fx_scatter.ipynb"
    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == "scatter_1d":
            c.source = c.source.replace("return out", "return out[:-1]")
    nbformat.write(nb, path)
    assert main(["validate", "--solutions", str(broken), "--released", str(tmp_path / "none"),
                 "--jobs", "1", "-q", *sandbox_args()]) == 1
    err = capsys.readouterr().err
    assert "INVALID" in err and "fx_scatter" in err
