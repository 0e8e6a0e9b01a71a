"""``tconv-grader collect`` and the file names it meets: a browser's or LMS's re-download
(``fx_scatter (1).ipynb``) is stored under the expected name, visibly; a student id with ``_``
is skipped with a hint at ``--regexp`` that works; a failed collect leaves no empty course."""

from __future__ import annotations

import shlex
import zipfile
from pathlib import Path

import pytest

from grader.cli import main

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "grader" / "solutions"
NB = (FIXTURES / "fx_scatter" / "fx_scatter.ipynb").read_text()


def _zip(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(name, NB)
    return path


def _collect(capsys, source: Path, course: Path, *more: str) -> str:
    assert main(["collect", str(source), "--course", str(course), "--solutions", str(FIXTURES),
                 "-q", *more]) == 0
    return capsys.readouterr().out


def _submitted(course: Path) -> list[str]:
    sub = course / "submitted"
    return sorted(p.relative_to(sub).as_posix() for p in sub.rglob("*.ipynb"))


def test_a_lone_re_download_is_stored_under_the_expected_name_and_listed(tmp_path, capsys):
    z = _zip(tmp_path / "lms.zip", [
        "amy_fx_scatter_fx_scatter (1).ipynb",                     # renamed
        "bo_fx_scatter_attempt_2026-01-02-03-04-05_fx_scatter(2).ipynb",  # renamed
        "cy_fx_scatter_fx_scatter.ipynb", "cy_fx_scatter_fx_scatter (1).ipynb",  # both there
        "dee_fx_scatter_fx_scatter (1).ipynb", "dee_fx_scatter_fx_scatter (2).ipynb",  # which?
        "eve_fx_scatter_fx_scatter-1.ipynb"])                      # not a re-download name
    out = _collect(capsys, z, tmp_path / "course")
    assert _submitted(tmp_path / "course") == [
        "amy/fx_scatter/fx_scatter.ipynb", "bo/fx_scatter/fx_scatter.ipynb",
        "cy/fx_scatter/fx_scatter (1).ipynb", "cy/fx_scatter/fx_scatter.ipynb",
        "dee/fx_scatter/fx_scatter (1).ipynb", "dee/fx_scatter/fx_scatter (2).ipynb",
        "eve/fx_scatter/fx_scatter-1.ipynb"]
    assert ("2 re-download(s) stored under the expected notebook name:\n"
            "  amy_fx_scatter_fx_scatter (1).ipynb: renamed to amy/fx_scatter/fx_scatter.ipynb\n"
            "  bo_fx_scatter_attempt_2026-01-02-03-04-05_fx_scatter(2).ipynb: renamed to "
            "bo/fx_scatter/fx_scatter.ipynb\n") in out, out
    assert ("cy_fx_scatter_fx_scatter (1).ipynb: not renamed: fx_scatter.ipynb is there too, "
            "and only it is graded") in out, out
    assert ("dee_fx_scatter_fx_scatter (2).ipynb: not renamed to fx_scatter.ipynb: several "
            "re-downloads (fx_scatter (1).ipynb, fx_scatter (2).ipynb)") in out, out
    assert ("eve_fx_scatter_fx_scatter-1.ipynb: assignment fx_scatter has no notebook "
            "'fx_scatter-1'") in out, out
    assert "2026-01-02 03:04:05" in (tmp_path / "course" / "submitted" / "bo" / "fx_scatter" /
                                     "timestamp.txt").read_text()


def test_a_re_download_in_a_folder_tree_is_not_renamed_over_a_submitted_notebook(tmp_path,
                                                                              capsys):
    tree = tmp_path / "tree"
    (tree / "amy" / "fx_scatter").mkdir(parents=True)
    (tree / "amy" / "fx_scatter" / "fx_scatter (1).ipynb").write_text(NB)
    course = tmp_path / "course"
    out = _collect(capsys, tree, course)
    assert "amy/fx_scatter/fx_scatter (1).ipynb: renamed to amy/fx_scatter/fx_scatter.ipynb" \
        in out, out
    assert _submitted(course) == ["amy/fx_scatter/fx_scatter.ipynb"]
    # collected again: the expected notebook is there now, the re-download keeps its name
    out = _collect(capsys, tree, course)
    assert "not renamed: fx_scatter.ipynb is there too" in out, out
    assert _submitted(course) == ["amy/fx_scatter/fx_scatter (1).ipynb",
                                  "amy/fx_scatter/fx_scatter.ipynb"]


def test_a_student_id_with_an_underscore_gets_a_regexp_that_reads_it(tmp_path, capsys):
    z = _zip(tmp_path / "lms.zip", ["mary_jane_fx_scatter_fx_scatter.ipynb",
                                    "ann_fx_scatter_fx_scatter.ipynb"])
    course = tmp_path / "course"
    out = _collect(capsys, z, course)
    assert _submitted(course) == ["ann/fx_scatter/fx_scatter.ipynb"]
    assert ("mary_jane_fx_scatter_fx_scatter.ipynb: file name matches no "
            "<student>_<assignment>_<notebook>.ipynb pattern: the student id 'mary_jane' "
            "contains '_', which the pattern does not allow; pass --regexp") in out, out
    assert "--regexp: 1 file name(s) did not match the current pattern ^(?:.*/)?" \
           "(?P<student_id>[^_/]+?)_" in out, out
    suggested = out.split("collect again with --regexp ", 1)[1].splitlines()[0]
    out = _collect(capsys, z, course, "--regexp", *shlex.split(suggested))
    assert _submitted(course) == ["ann/fx_scatter/fx_scatter.ipynb",
                                  "mary_jane/fx_scatter/fx_scatter.ipynb"]
    assert "did not match" not in out, out


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_collect_leaves_the_course_as_it_was(tmp_path, capsys, existing):
    course = tmp_path / "course"
    if existing:
        (course / "submitted").mkdir(parents=True)
    truncated = tmp_path / "lms.zip"
    truncated.write_bytes(_zip(tmp_path / "whole.zip", ["a_fx_scatter_fx_scatter.ipynb"])
                          .read_bytes()[:200])
    assert main(["collect", str(truncated), "--course", str(course), "--solutions",
                 str(FIXTURES), "-q"]) == 2
    assert "(damaged zip (" in capsys.readouterr().err
    assert course.exists() == existing
    if existing:
        assert (course / "submitted").is_dir()
