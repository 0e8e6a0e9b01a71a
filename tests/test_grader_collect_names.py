"""``tconv-grader collect`` and the file names it meets: a browser's or LMS's re-download
(``fx_scatter (1).ipynb``) is stored under the expected name, visibly; a student id with ``_``
is skipped with a hint at ``--regexp`` that works; a failed collect leaves no empty course."""

from __future__ import annotations

import os
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


def _snapshot(course: Path) -> dict[str, bytes]:
    sub = course / "submitted"
    return {p.relative_to(sub).as_posix(): p.read_bytes() for p in sub.rglob("*") if p.is_file()}


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


def test_a_re_download_in_a_folder_tree_collected_twice_changes_nothing(tmp_path, capsys):
    tree = tmp_path / "tree"
    (tree / "amy" / "fx_scatter").mkdir(parents=True)
    (tree / "amy" / "fx_scatter" / "fx_scatter (1).ipynb").write_text(NB)
    course = tmp_path / "course"
    out = _collect(capsys, tree, course)
    assert "amy/fx_scatter/fx_scatter (1).ipynb: renamed to amy/fx_scatter/fx_scatter.ipynb" \
        in out, out
    assert _submitted(course) == ["amy/fx_scatter/fx_scatter.ipynb"]
    # collected again: the same file under the same name, nothing changes (no stray copy
    # under the re-download's name that would make autograde regrade it as a resubmission)
    before = _snapshot(course)
    out = _collect(capsys, tree, course)
    assert "imported 0 notebook(s) from 0 student(s) into " in out, out
    assert "; 1 more unchanged (already collected, nothing to regrade)" in out, out
    assert _snapshot(course) == before
    # downloaded again later (a newer modification time): still the same submission, same time
    os.utime(tree / "amy" / "fx_scatter" / "fx_scatter (1).ipynb", (2e9, 2e9))
    out = _collect(capsys, tree, course)
    assert "imported 0 notebook(s) from 0 student(s) into " in out, out
    assert "; 1 more unchanged (already collected, nothing to regrade)" in out, out
    assert _snapshot(course) == before


def test_a_student_id_with_an_underscore_gets_a_regexp_that_reads_it(tmp_path, capsys):
    z = _zip(tmp_path / "lms.zip", ["mary_jane_fx_scatter_fx_scatter.ipynb",
                                    "ann_fx_scatter_fx_scatter.ipynb"])
    course = tmp_path / "course"
    out = _collect(capsys, z, course)
    assert _submitted(course) == ["ann/fx_scatter/fx_scatter.ipynb"]
    assert ("mary_jane_fx_scatter_fx_scatter.ipynb: file name matches no "
            "<student>_<assignment>_<notebook>.ipynb pattern: the student id 'mary_jane' "
            "contains '_', which the pattern does not allow; pass --regexp") in out, out
    assert "1 file name(s) did not match the pattern for LMS names; if your LMS names files " \
           "another way, pass --regexp (the pattern now: ^(?:.*/)?(?P<student_id>[^_/]+?)_" \
           in out, out
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


def test_of_several_attempts_the_latest_is_kept_and_the_others_are_listed(tmp_path, capsys):
    z = tmp_path / "lms.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("amy_fx_scatter_attempt_2026-01-02-03-04-05_fx_scatter.ipynb", NB)
        zf.writestr("amy_fx_scatter_attempt_2026-01-03-03-04-05_fx_scatter.ipynb", NB + " ")
    course = tmp_path / "course"
    out = _collect(capsys, z, course)
    stored = course / "submitted" / "amy" / "fx_scatter"
    assert (stored / "fx_scatter.ipynb").read_text() == NB + " "
    assert (stored / "timestamp.txt").read_text().startswith("2026-01-03 03:04:05")
    assert ("1 older file(s) not imported (a newer copy is kept):\n"
            "  amy_fx_scatter_attempt_2026-01-02-03-04-05_fx_scatter.ipynb: an earlier attempt "
            "(2026-01-02 03:04:05.000000 UTC) of amy/fx_scatter/fx_scatter.ipynb; the later "
            "amy_fx_scatter_attempt_2026-01-03-03-04-05_fx_scatter.ipynb") in out, out


def test_an_older_download_collected_later_never_replaces_a_newer_submission(tmp_path, capsys):
    course = tmp_path / "course"
    new = _zip(tmp_path / "new.zip",
               ["amy_fx_scatter_attempt_2026-01-03-00-00-00_fx_scatter.ipynb"])
    _collect(capsys, new, course)
    stored = course / "submitted" / "amy" / "fx_scatter"
    before = _snapshot(course)
    old = tmp_path / "old.zip"
    with zipfile.ZipFile(old, "w") as zf:
        zf.writestr("amy_fx_scatter_attempt_2026-01-01-00-00-00_fx_scatter.ipynb", NB + " ")
    out = _collect(capsys, old, course)
    assert _snapshot(course) == before  # the newer notebook and its timestamp are kept
    assert ("amy_fx_scatter_attempt_2026-01-01-00-00-00_fx_scatter.ipynb: older "
            "(2026-01-01 00:00:00.000000 UTC) than amy/fx_scatter/fx_scatter.ipynb already "
            f"collected (2026-01-03 00:00:00.000000 UTC), which is kept (to grade this file "
            f"instead, delete {stored} and collect again)") in out, out
    assert "imported 0 notebook(s)" in out and "next:" not in out, out
    # a newer one does replace it
    newer = tmp_path / "newer.zip"
    with zipfile.ZipFile(newer, "w") as zf:
        zf.writestr("amy_fx_scatter_attempt_2026-01-04-00-00-00_fx_scatter.ipynb", NB + "  ")
    out = _collect(capsys, newer, course)
    assert (stored / "fx_scatter.ipynb").read_text() == NB + "  "
    assert (stored / "timestamp.txt").read_text().startswith("2026-01-04 00:00:00")


def test_collect_names_the_next_command_and_unknown_assignments(tmp_path, capsys):
    z = _zip(tmp_path / "lms.zip", ["amy_fx_scatter_fx_scatter.ipynb", "bo_hw9_hw9.ipynb"])
    out = _collect(capsys, z, tmp_path / "my course")
    assert "bo_hw9_hw9.ipynb: file name matches no <student>_<assignment>_<notebook>.ipynb " \
           "pattern with a known assignment (fx_" in out, out
    assert out.rstrip().splitlines()[-1] == \
        f"next: tconv-grader autograde --course '{tmp_path / 'my course'}' --solutions {FIXTURES}"


def test_a_regexp_is_matched_inside_path_and_may_leave_out_the_assignment(tmp_path, capsys):
    """A Canvas-style download (``<name>_<late_>?<user id>_<file id>_<original name>``): the
    --regexp starts with '^' (matched against the name inside the zip, not a temporary path)
    and has no assignment_id: the released notebook's name says which assignment it is."""
    z = _zip(tmp_path / "canvas.zip", ["smithjo_12345_67890_fx_scatter.ipynb",
                                       "doeja_late_12346_67891_fx_scatter (1).ipynb",
                                       "roeri_12347_67892_notes.ipynb"])
    course = tmp_path / "course"
    out = _collect(capsys, z, course, "--regexp",
                   r"^(?P<student_id>[a-z]+)_(?:late_)?\d+_\d+_(?P<file_id>.+)$")
    assert _submitted(course) == ["doeja/fx_scatter/fx_scatter.ipynb",
                                  "smithjo/fx_scatter/fx_scatter.ipynb"], out
    assert ("roeri_12347_67892_notes.ipynb: --regexp has no (?P<assignment_id>...) group and "
            "the notebook 'notes' is none of the released ones") in out, out


def test_a_timestamp_in_another_form_is_read_and_a_bad_one_is_listed(tmp_path, capsys):
    z = _zip(tmp_path / "lms.zip", ["amy__2026-01-02T03:04:05Z__fx_scatter.ipynb",
                                    "bo__yesterday__fx_scatter.ipynb"])
    course = tmp_path / "course"
    out = _collect(capsys, z, course, "--regexp",
                   r"^(?P<student_id>\w+?)__(?P<timestamp>[^_]+)__(?P<file_id>.+)$")
    assert _submitted(course) == ["amy/fx_scatter/fx_scatter.ipynb"], out
    assert (course / "submitted" / "amy" / "fx_scatter" / "timestamp.txt").read_text() == \
        "2026-01-02 03:04:05.000000 UTC\n"
    assert "bo__yesterday__fx_scatter.ipynb: timestamp 'yesterday' from the file name is not " \
           "a date and time" in out, out


def test_a_zipped_tree_in_a_wrapping_folder_and_student_folders_without_assignment(tmp_path,
                                                                                   capsys):
    z = _zip(tmp_path / "submissions.zip", ["submissions/amy/fx_scatter/fx_scatter.ipynb",
                                            "submissions/bo/fx_scatter/fx_scatter.ipynb"])
    course = tmp_path / "course"
    out = _collect(capsys, z, course)
    assert _submitted(course) == ["amy/fx_scatter/fx_scatter.ipynb",
                                  "bo/fx_scatter/fx_scatter.ipynb"], out
    tree = tmp_path / "drive"
    (tree / "cy").mkdir(parents=True)
    (tree / "cy" / "fx_scatter.ipynb").write_text(NB)   # the notebook names the assignment
    (tree / "dee").mkdir()
    (tree / "dee" / "homework.ipynb").write_text(NB)    # this one does not: listed
    out = _collect(capsys, tree, course)
    assert _submitted(course) == ["amy/fx_scatter/fx_scatter.ipynb",
                                  "bo/fx_scatter/fx_scatter.ipynb",
                                  "cy/fx_scatter/fx_scatter.ipynb"], out
    assert "dee/homework.ipynb: file name matches no" in out, out


def test_a_collect_that_imports_nothing_warns_and_leaves_no_course(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    course = tmp_path / "course"
    assert main(["collect", str(empty), "--course", str(course), "--solutions", str(FIXTURES),
                 "-q"]) == 0
    assert capsys.readouterr().err == f"warning: nothing imported from {empty} (no files)\n"
    assert not course.exists()
    z = tmp_path / "lms.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("README.txt", "from the LMS")
    assert main(["collect", str(z), "--course", str(course), "--solutions", str(FIXTURES),
                 "-q"]) == 0
    out, err = capsys.readouterr()
    assert "README.txt: not a notebook (.ipynb)" in out and "next:" not in out
    assert err == (f"warning: nothing imported from {z} (none of its 1 file(s) could be "
                   "imported; see above)\n")
    assert not course.exists()


def test_student_ids_that_differ_only_in_case_are_pointed_out(tmp_path, capsys):
    course = tmp_path / "course"
    _collect(capsys, _zip(tmp_path / "a.zip", ["Amy_fx_scatter_fx_scatter.ipynb"]), course)
    out = _collect(capsys, _zip(tmp_path / "b.zip", ["amy_fx_scatter_fx_scatter.ipynb",
                                                     "bo_fx_scatter_fx_scatter.ipynb"]), course)
    assert ("1 student id(s) differ from another only in case (the same student? rename the "
            "files and collect again, or merge the folders under "
            f"{course / 'submitted'}):\n  Amy, amy\n") in out, out
    out = _collect(capsys, _zip(tmp_path / "c.zip", ["bo_fx_scatter_fx_scatter.ipynb"]), course)
    assert "only in case" not in out, out  # said for the ids just imported


def test_an_empty_file_never_replaces_a_notebook_and_is_pointed_out(tmp_path, capsys):
    """An LMS's 0-byte entry (a failed upload) is newer than the student's real notebook: the
    notebook is kept, in the same zip or collected before; an empty file alone is imported (it
    scores 0) and said to need a new upload."""
    z = tmp_path / "lms.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("amy_fx_scatter_attempt_2026-01-01-00-00-00_fx_scatter.ipynb", NB)
        zf.writestr("amy_fx_scatter_attempt_2026-01-02-00-00-00_fx_scatter.ipynb", "")
        zf.writestr("bo_fx_scatter_fx_scatter.ipynb", "")
        zf.writestr("cy_fx_scatter_fx_scatter.ipynb", NB)
    course = tmp_path / "course"
    out = _collect(capsys, z, course)
    sub = course / "submitted"
    assert (sub / "amy" / "fx_scatter" / "fx_scatter.ipynb").read_text() == NB
    assert ("amy_fx_scatter_attempt_2026-01-02-00-00-00_fx_scatter.ipynb: empty file (0 bytes); "
            "the notebook in amy_fx_scatter_attempt_2026-01-01-00-00-00_fx_scatter.ipynb") in out
    assert (sub / "bo" / "fx_scatter" / "fx_scatter.ipynb").read_bytes() == b""
    assert ("bo_fx_scatter_fx_scatter.ipynb: empty file (0 bytes): imported, it scores 0 "
            "(nothing to grade); ask the student to upload the notebook again") in out, out
    later = tmp_path / "later.zip"
    with zipfile.ZipFile(later, "w") as zf:
        info = zipfile.ZipInfo("cy_fx_scatter_fx_scatter.ipynb", (2030, 1, 1, 0, 0, 0))
        zf.writestr(info, "")
    out = _collect(capsys, later, course)
    assert (sub / "cy" / "fx_scatter" / "fx_scatter.ipynb").read_text() == NB
    assert "cy_fx_scatter_fx_scatter.ipynb: empty file (0 bytes); cy/fx_scatter/fx_scatter" \
        ".ipynb already collected" in out, out


def test_an_empty_file_not_imported_is_not_listed_as_an_older_copy(tmp_path, capsys):
    """A newer 0-byte entry kept out beside an older attempt kept out: each under a heading
    that says why (the empty one was listed under 'older file(s) ... a newer copy is kept',
    while it was the newer one)."""
    z = tmp_path / "lms.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("amy_fx_scatter_attempt_2026-01-01-00-00-00_fx_scatter.ipynb", NB)
        zf.writestr("amy_fx_scatter_attempt_2026-01-02-00-00-00_fx_scatter.ipynb", NB + " ")
        zf.writestr("bo_fx_scatter_attempt_2026-01-01-00-00-00_fx_scatter.ipynb", NB)
        zf.writestr("bo_fx_scatter_attempt_2026-01-02-00-00-00_fx_scatter.ipynb", "")
    out = _collect(capsys, z, tmp_path / "course")
    assert ("1 older file(s) not imported (a newer copy is kept):\n"
            "  amy_fx_scatter_attempt_2026-01-01-00-00-00_fx_scatter.ipynb: an earlier attempt"
            ) in out, out
    assert ("1 empty file(s) not imported (the notebook with content is kept):\n"
            "  bo_fx_scatter_attempt_2026-01-02-00-00-00_fx_scatter.ipynb: empty file (0 bytes)"
            ) in out, out


def test_a_time_taken_from_the_files_modification_time_is_pointed_out(tmp_path, capsys):
    """amy's LMS name carries no hand-in time, so timestamp.txt holds the zip entry's time
    (often the download's): with a due date, report would flag her late, and a late penalty
    would take points. collect said nothing of where the time came from; now it names the
    submissions so timed. bo's name carries his attempt time: not named."""
    z = tmp_path / "lms.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("amy_fx_scatter_fx_scatter.ipynb", NB)
        zf.writestr("bo_fx_scatter_attempt_2026-01-03-03-04-05_fx_scatter.ipynb", NB)
    out = _collect(capsys, z, tmp_path / "course")
    assert ("note: 1 submission(s) had no hand-in time in their file names (no "
            "_attempt_<YYYY-MM-DD-HH-MM-SS>_, no timestamp.txt beside them): their timestamp.txt, "
            "which lateness is measured against, holds the file's modification time") in out, out
    assert out.rstrip().splitlines()[-2].endswith("late penalty counts it: amy/fx_scatter"), out
    assert "note:" not in _collect(capsys, z, tmp_path / "course")   # nothing new: no note


def test_a_tree_folder_with_an_odd_student_id_is_named_with_the_fix_for_a_tree(tmp_path,
                                                                               capsys):
    """A folder tree `amy smith/fx_scatter/fx_scatter.ipynb`: the id is refused, and the advice
    was 'rename the file or pass --regexp', though in a tree the folder names the student and
    --regexp reads LMS file names only. Now it says to rename the folder."""
    for who in ("amy smith", "zoë", "bo"):
        d = tmp_path / "tree" / who / "fx_scatter"
        d.mkdir(parents=True)
        (d / "fx_scatter.ipynb").write_text(NB)
    out = _collect(capsys, tmp_path / "tree", tmp_path / "course")
    assert ("  amy smith/fx_scatter/fx_scatter.ipynb: student id 'amy smith' is not a plain "
            "identifier (ASCII letters, digits and . _ @ + -, starting with a letter or digit); "
            "rename the folder 'amy smith' (the student id the gradebook, the reports and the "
            "feedback folder will use)") in out, out
    assert "zoë/fx_scatter/fx_scatter.ipynb: student id 'zoë'" in out, out
    assert _submitted(tmp_path / "course") == ["bo/fx_scatter/fx_scatter.ipynb"]
