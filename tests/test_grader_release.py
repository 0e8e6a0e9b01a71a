"""``tconv-grader release``: exercises/ is exactly what nbgrader's machinery makes of solutions/,
deterministically, and no solution code or hidden test text reaches it."""

from __future__ import annotations

import filecmp
from pathlib import Path

import nbformat
import pytest

from grader.cli import main
from grader.gradebook import assignments_in
from grader.release import load_source, release, solution_snippets

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
EXERCISES = REPO / "exercises"
FIXTURES = REPO / "tests" / "fixtures" / "grader" / "solutions"

pytestmark = pytest.mark.xdist_group("grader_release")


def _files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


def test_committed_exercises_are_fresh(tmp_path):
    """Regenerate into a scratch folder: any difference from the committed exercises/ fails."""
    assert assignments_in(SOLUTIONS), "solutions/ holds no assignments"
    release(SOLUTIONS, tmp_path / "ex", progress=False)
    fresh, committed = _files(tmp_path / "ex"), _files(EXERCISES)
    assert sorted(fresh) == sorted(committed), (
        "exercises/ is stale: run `make release` (or `tconv-grader release`) and commit")
    stale = [k for k in fresh if not filecmp.cmp(fresh[k], committed[k], shallow=False)]
    assert not stale, f"exercises/ is stale ({stale}): run `make release` and commit"


def test_committed_solutions_are_what_the_builder_writes(tmp_path, monkeypatch):
    """solutions/_build_notebooks.py is the solutions' own source: building every notebook into
    a scratch folder gives the committed ones, byte for byte."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_build_notebooks",
                                                  SOLUTIONS / "_build_notebooks.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    monkeypatch.setattr(builder, "HERE", tmp_path)
    built = {make.__name__: make().write() for make in builder.ALL}
    assert sorted(built) == sorted(assignments_in(SOLUTIONS)), "an assignment has no builder"
    stale = [name for name, path in built.items() if path.read_bytes()
             != (SOLUTIONS / name / f"{name}.ipynb").read_bytes()]
    assert not stale, (f"solutions/ differs from its builder ({stale}): run "
                       "`python solutions/_build_notebooks.py`, then `make release`, and commit")


def _visible_lines(solutions: Path) -> set[str]:
    """Lines of the sources outside solution / hidden-test regions (legitimately released)."""
    out = set()
    for a in assignments_in(solutions):
        for nb_path in sorted((solutions / a).glob("*.ipynb")):
            for cell in load_source(nb_path).cells:
                inside = False
                for line in cell.source.splitlines():
                    if "BEGIN SOLUTION" in line or "BEGIN HIDDEN TESTS" in line:
                        inside = True
                    elif "END SOLUTION" in line or "END HIDDEN TESTS" in line:
                        inside = False
                    elif not inside:
                        out.add(line.strip())
    return out


@pytest.mark.parametrize("solutions,released", [(SOLUTIONS, EXERCISES), (FIXTURES, None)],
                         ids=["course", "fixture"])
def test_no_solution_or_hidden_test_text_is_released(tmp_path, solutions, released):
    if released is None:
        released = tmp_path / "rel"
        release(solutions, released, progress=False)
    visible = _visible_lines(solutions)
    secret = sorted({t for _, t in solution_snippets(solutions)
                     if t not in visible and len(t) >= 12 and not t.startswith("#")})
    assert secret, "no solution or hidden-test lines found to check"
    texts = {k: p.read_text(errors="replace") for k, p in _files(released).items()}
    assert texts, f"{released} is empty"
    leaks = [(k, line) for k, text in texts.items() for line in secret
             if line in text or line.replace('"', '\\"') in text]
    assert not leaks, f"solution / hidden test text released: {leaks[:5]}"


def test_release_is_deterministic_and_uses_nbgrader(tmp_path):
    release(FIXTURES, tmp_path / "a", progress=False)
    release(FIXTURES, tmp_path / "b", progress=False)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert sorted(a) == sorted(b) == ["fx_scatter/fx_scatter.ipynb"]
    assert a["fx_scatter/fx_scatter.ipynb"].read_bytes() == b["fx_scatter/fx_scatter.ipynb"] \
        .read_bytes()
    nb = nbformat.read(a["fx_scatter/fx_scatter.ipynb"], as_version=4)
    by_id = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}
    assert "raise NotImplementedError()" in by_id["scatter_1d"].source       # ClearSolutions
    assert "BEGIN HIDDEN TESTS" not in by_id["test_more"].source             # ClearHiddenTests
    assert by_id["test_more"].metadata["editable"] is False                  # LockCells
    assert by_id["explain"].source == "YOUR ANSWER HERE"
    assert all(c.metadata["nbgrader"].get("checksum") for c in by_id.values())  # Checksums
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_release_into_course_gradebook_records_cells(tmp_path, capsys):
    from nbgrader.api import Gradebook

    course = tmp_path / "course"
    assert main(["release", "--solutions", str(FIXTURES), "-o", str(tmp_path / "rel"),
                 "--course", str(course), "-q"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"next: tconv-grader validate --solutions {FIXTURES} --released {tmp_path / 'rel'}")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "tconv") as gb:
        nb = gb.find_notebook("fx_scatter", "fx_scatter")
        assert sorted(c.name for c in nb.grade_cells) == ["explain", "test_basic", "test_more"]
        assert "BEGIN HIDDEN TESTS" in gb.find_source_cell("test_more", "fx_scatter",
                                                           "fx_scatter").source


@pytest.mark.parametrize("as_url", [True, False])
def test_release_db_without_course_records_cells_there(tmp_path, as_url):
    """--db alone names the gradebook SaveCells writes to (it was ignored without --course), as
    a URL or a plain path to a SQLite file, as the other commands' --db."""
    from nbgrader.api import Gradebook

    db = tmp_path / "gb.db"
    assert main(["release", "--solutions", str(FIXTURES), "-o", str(tmp_path / "rel"),
                 "--db", f"sqlite:///{db}" if as_url else str(db), "-q"]) == 0
    with Gradebook(f"sqlite:///{db}", "tconv") as gb:
        nb = gb.find_notebook("fx_scatter", "fx_scatter")
        assert sorted(c.name for c in nb.grade_cells) == ["explain", "test_basic", "test_more"]


def test_release_help_gives_each_default_as_the_other_commands_do(capsys):
    """--db's default is a URL (sqlite:///DIR/gradebook.db), as autograde, feedback and report
    say it; every option with a default says it."""
    import re

    from test_grader_cli import _subparsers

    with pytest.raises(SystemExit):
        main(["release", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # as one line, whatever the terminal width
    assert "(default: sqlite:///DIR/gradebook.db with --course" in out, out
    assert not re.search(r"default: DIR/", out), out
    valued = [a for a in _subparsers()["release"]._actions if a.option_strings and a.nargs != 0]
    assert sorted(a.dest for a in valued) == ["course", "db", "output", "solutions"]
    for action in valued:
        assert "default: " in action.help, action.help


def test_release_unknown_assignment_is_a_usage_error(tmp_path, capsys):
    rc = main(["release", "ex99_nothing", "--solutions", str(FIXTURES), "-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "ASSIGNMENT" in err and "ex99_nothing" in err and "fx_scatter" in err


def test_nbgrader_config_maps_source_to_solutions_and_release_to_exercises(tmp_path, monkeypatch):
    """nbgrader's own CourseDirectory and NbGraderAPI, configured by the repository's
    nbgrader_config.py, find the instructor source in solutions/ and the release in exercises/,
    and keep the working state in the course directory ($TCONV_COURSE)."""
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from grader.release import nbgrader_config

    course = tmp_path / "course"
    monkeypatch.setenv("TCONV_COURSE", str(course))
    cfg = nbgrader_config()
    cfg.Exchange.root = str(tmp_path / "no-exchange")
    cd = CourseDirectory(config=cfg)
    assert Path(cd.root) == course and cd.course_id == "tconv"

    def where(directory, student="."):
        return Path(cd.format_path(directory, student, "ex1_shapes")).resolve()

    assert where(cd.source_directory) == SOLUTIONS / "ex1_shapes"
    assert where(cd.release_directory) == EXERCISES / "ex1_shapes"
    for directory in ("submitted", "autograded", "feedback"):
        assert where(getattr(cd, f"{directory}_directory"), "ana") == \
            course / directory / "ana" / "ex1_shapes"
    assert cd.db_url == f"sqlite:///{course / 'gradebook.db'}"
    api = NbGraderAPI(cd, config=cfg)
    assert api.get_source_assignments() == set(assignments_in(SOLUTIONS))


def test_nbgraders_own_generate_assignment_makes_the_committed_release(tmp_path):
    """`nbgrader generate_assignment`, run from the repository (so it reads nbgrader_config.py),
    writes exactly the committed exercises/ notebook (here into a scratch release folder)."""
    import os
    import subprocess
    import sys

    course, out = tmp_path / "course", tmp_path / "release"
    course.mkdir()
    bindir = Path(sys.executable).parent
    env = {**os.environ, "TCONV_COURSE": str(course),
           "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}  # nbgrader runs alembic
    res = subprocess.run([str(bindir / "nbgrader"), "generate_assignment", "ex1_shapes",
                          f"--CourseDirectory.release_directory={out}",
                          f"--db=sqlite:///{tmp_path / 'gradebook.db'}"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    made = out / "ex1_shapes" / "ex1_shapes.ipynb"
    assert made.read_text() == (EXERCISES / "ex1_shapes" / "ex1_shapes.ipynb").read_text()
