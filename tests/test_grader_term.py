"""A course term as an instructor runs it through the command line: a resubmission collected
over a download's file time, extensions for single students, the late penalty as nbgrader's
own export sees it, and scores.csv saying why a student is flagged."""

from __future__ import annotations

import csv
import datetime as dt
import os
import zipfile
from pathlib import Path

import pytest
from test_grader_report import _late_class, _totals, unreadable_bo

from grader.cli import main

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "grader" / "solutions"
NB = (FIXTURES / "fx_scatter" / "fx_scatter.ipynb").read_text()


def _version(n: int) -> str:
    """fx_scatter's notebook, told apart by ``n`` (a student's n-th version)."""
    return NB.replace('"cells": [', f'"cells": [{{"cell_type": "markdown", "id": "v{n}", '
                      f'"metadata": {{}}, "source": "version {n}"}}, ', 1)


def _zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(zipfile.ZipInfo(name, (2026, 12, 8, 9, 0, 0)), text)
    return path


# -- 3. a resubmission over a copy whose time was a file's modification time ----------------------

def test_a_resubmission_replaces_a_copy_timed_by_its_download(tmp_path, capsys):
    """amy's first hand-in came from a shared drive without timestamp.txt: collect recorded the
    file's modification time, the morning the instructor copied it (Dec 8). Her resubmission
    then came from the LMS with its hand-in time (Dec 3): collect refused it as 'older' than the
    download's time and kept the first version. Now a file's time is not compared with a
    hand-in time: the resubmission replaces it, named, timestamp.txt holds its hand-in time, and
    collecting either download again changes nothing."""
    tree = tmp_path / "drive"
    first = tree / "amy" / "fx_scatter" / "fx_scatter.ipynb"
    first.parent.mkdir(parents=True)
    first.write_text(_version(1))
    copied = dt.datetime(2026, 12, 8, 9, 0, tzinfo=dt.timezone.utc).timestamp()
    os.utime(first, (copied, copied))
    lms = _zip(tmp_path / "lms.zip", {
        "amy_fx_scatter_attempt_2026-12-03-10-00-00_fx_scatter.ipynb": _version(2)})
    course = tmp_path / "course"
    common = ["--course", str(course), "--solutions", str(FIXTURES), "-q"]
    stored = course / "submitted" / "amy" / "fx_scatter"

    assert main(["collect", str(tree), *common]) == 0
    assert (stored / "timestamp.txt").read_text() == "2026-12-08 09:00:00.000000 UTC\n"
    capsys.readouterr()
    assert main(["collect", str(lms), *common]) == 0
    out = capsys.readouterr().out
    assert (stored / "fx_scatter.ipynb").read_text() == _version(2), out
    assert (stored / "timestamp.txt").read_text() == "2026-12-03 10:00:00.000000 UTC\n"
    assert "imported 1 notebook(s) from 1 student(s)" in out, out
    assert ("1 file(s) imported over a copy collected earlier whose time was a file's, not a "
            "hand-in time:\n  amy_fx_scatter_attempt_2026-12-03-10-00-00_fx_scatter.ipynb: "
            "replaces amy/fx_scatter/fx_scatter.ipynb collected earlier: its time (2026-12-08 "
            "09:00:00.000000 UTC) was a file's modification time (perhaps the download's), not a "
            "hand-in time, so this copy, collected later, is taken as the newer; timestamp.txt "
            "now holds its hand-in time 2026-12-03 10:00:00.000000 UTC (if it is the earlier "
            f"attempt after all, delete {stored} and collect the other copy again)") in out, out
    assert "older" not in out, out

    # the first download collected again: its file time is later than the hand-in time, but it
    # is the copy the resubmission replaced
    assert main(["collect", str(tree), *common]) == 0
    out = capsys.readouterr().out
    assert (stored / "fx_scatter.ipynb").read_text() == _version(2), out
    assert ("amy/fx_scatter/fx_scatter.ipynb: replaced on an earlier collect by the copy of "
            "amy/fx_scatter/fx_scatter.ipynb now kept (2026-12-03 10:00:00.000000 UTC)") in out
    assert main(["collect", str(lms), *common]) == 0
    assert "1 more unchanged" in capsys.readouterr().out
    assert (stored / "timestamp.txt").read_text() == "2026-12-03 10:00:00.000000 UTC\n"


def test_an_older_hand_in_still_never_replaces_a_newer_one(tmp_path, capsys):
    """Both copies with hand-in times (LMS attempts): the earlier one collected later is still
    refused as older, as before."""
    course = tmp_path / "course"
    common = ["--course", str(course), "--solutions", str(FIXTURES), "-q"]
    new = _zip(tmp_path / "new.zip", {
        "amy_fx_scatter_attempt_2026-12-03-10-00-00_fx_scatter.ipynb": _version(2)})
    old = _zip(tmp_path / "old.zip", {
        "amy_fx_scatter_attempt_2026-12-01-10-00-00_fx_scatter.ipynb": _version(1)})
    assert main(["collect", str(new), *common]) == 0
    assert main(["collect", str(old), *common]) == 0
    out = capsys.readouterr().out
    stored = course / "submitted" / "amy" / "fx_scatter"
    assert (stored / "fx_scatter.ipynb").read_text() == _version(2)
    assert "older (2026-12-01 10:00:00.000000 UTC) than amy/fx_scatter/fx_scatter.ipynb" in out


def test_hand_in_times_written_another_way_compare_as_times(tmp_path, capsys):
    """A timestamp.txt beside the first copy says 10:00 at UTC+01:00 (09:00 UTC) in ISO form;
    the resubmission's attempt is 09:30 UTC. Compared as text ('T' sorts after ' '), the
    resubmission was 'older' and refused; compared as times it is the newer."""
    tree = tmp_path / "drive"
    first = tree / "amy" / "fx_scatter"
    first.mkdir(parents=True)
    (first / "fx_scatter.ipynb").write_text(_version(1))
    (first / "timestamp.txt").write_text("2026-12-03T10:00:00+01:00\n")
    lms = _zip(tmp_path / "lms.zip", {
        "amy_fx_scatter_attempt_2026-12-03-09-30-00_fx_scatter.ipynb": _version(2)})
    common = ["--course", str(tmp_path / "course"), "--solutions", str(FIXTURES), "-q"]
    assert main(["collect", str(tree), *common]) == 0
    assert main(["collect", str(lms), *common]) == 0
    out = capsys.readouterr().out
    stored = tmp_path / "course" / "submitted" / "amy" / "fx_scatter"
    assert (stored / "fx_scatter.ipynb").read_text() == _version(2), out
    assert (stored / "timestamp.txt").read_text() == "2026-12-03 09:30:00.000000 UTC\n"


# -- 4. scores.csv's flagged column says why ------------------------------------------------------

def test_scores_csv_says_what_each_student_is_flagged_for(tmp_path):
    """scores.csv said 'yes' for any flag: a late hand-in (amy, already penalised) and an
    unreadable notebook scored 0 (bo) read alike. Now it names the reasons, with the
    assignments, as flags.txt counts them."""
    course = unreadable_bo(_late_class(tmp_path / "course"))
    assert main(["report", "--course", str(course.root), "-q"]) == 0
    with (course.reports / "scores.csv").open() as fh:
        flagged = {r["student"]: r["flagged"] for r in csv.DictReader(fh)}
    assert flagged == {"amy": "late (ex)", "bo": "flagged by the autograder (ex)", "cy": "no"}


# -- 1. the late penalty in the gradebook: nbgrader export agrees with scores.csv -----------------

def _export(course) -> dict[tuple[str, str], dict]:
    """nbgrader's own CSV export of the gradebook (what `nbgrader export` writes)."""
    from nbgrader.plugins.export import CsvExportPlugin

    out = course.root / "export.csv"
    with course.gradebook() as gb:
        CsvExportPlugin(to=str(out)).export(gb)
    with out.open() as fh:
        return {(r["student_id"], r["assignment"]): r for r in csv.DictReader(fh)}


def test_nbgrader_export_gives_the_score_after_the_late_penalty(tmp_path):
    """report took the late penalty in totals.csv and scores.csv only: nbgrader's export (and
    its API's late_submission_penalty) said amy's late ex scored 2 with no penalty. Now report
    writes the points taken into the gradebook (nbgrader's late_submission_penalty), so the
    export's score is scores.csv's, and a rule dropped puts it back to 0."""
    course = _late_class(tmp_path / "course")            # amy: 2 of 5, 2 h 30 min late
    root = str(course.root)
    assert main(["report", "--course", root, "-q", "--late-penalty", "10%/hour"]) == 0
    amy = _export(course)[("amy", "ex")]
    assert (amy["raw_score"], amy["late_submission_penalty"], amy["score"]) == (
        "2.0", "1.5", "0.5"), amy
    assert _totals(course.reports)[("amy", "ex")]["score"] == "0.5"
    assert _export(course)[("bo", "ex")]["late_submission_penalty"] == "0.0"   # on time
    with course.gradebook() as gb:
        assert gb.find_submission("ex", "amy").late_submission_penalty == 1.5
    assert main(["report", "--course", root, "-q", "--late-penalty", "zero"]) == 0
    assert _export(course)[("amy", "ex")]["score"] == "0.0"
    assert main(["report", "--course", root, "-q", "--late-penalty", "none"]) == 0
    amy = _export(course)[("amy", "ex")]
    assert (amy["late_submission_penalty"], amy["score"]) == ("0.0", "2.0"), amy


# -- 2. an extension for one student --------------------------------------------------------------

def test_an_extension_moves_one_students_due_date_in_report_and_export(tmp_path, capsys):
    """There was no command for an extension: an instructor had to write nbgrader's
    ``extension`` through its Python API. `tconv-grader extension` grants one (nbgrader's own
    field), report measures lateness from the later due date, a new one replaces the earlier,
    and --remove takes it back."""
    course = _late_class(tmp_path / "course")            # amy: 2 h 30 min late
    root = str(course.root)
    assert main(["report", "--course", root, "-q", "--late-penalty", "10%/hour"]) == 0
    capsys.readouterr()
    # 'ex' is an assignment of the gradebook, not of solutions/: known all the same
    assert main(["extension", "ex", "--student", "amy", "--hours", "3", "--course", root]) == 0
    out = capsys.readouterr().out
    assert ("extension: ex extension of 3 h 0 min granted (due 2026-12-01 13:00:00 UTC) for "
            "amy; saved in") in out, out
    assert "in the gradebook now: amy" in out and "next: tconv-grader report" in out, out
    with course.gradebook() as gb:
        assert gb.find_submission("ex", "amy").extension == dt.timedelta(hours=3)
    assert main(["report", "--course", root, "-q"]) == 0
    amy = _totals(course.reports)[("amy", "ex")]
    assert (amy["score"], amy["late_penalty"], amy["flags"]) == ("2", "0", ""), amy
    assert _export(course)[("amy", "ex")]["late_submission_penalty"] == "0.0"

    assert main(["extension", "ex", "--student", "amy", "--hours", "2", "--course", root]) == 0
    assert main(["report", "--course", root, "-q"]) == 0
    amy = _totals(course.reports)[("amy", "ex")]
    assert amy["flags"].startswith(
        "late: handed in 2026-12-01 12:30:00 UTC, 30 min after the due date 2026-12-01 "
        "12:00:00 UTC (the assignment's plus an extension of 2 h 0 min); late penalty "
        "10%/hour"), amy
    assert (amy["score"], amy["late_penalty"]) == ("1.5", "0.5"), amy
    capsys.readouterr()
    assert main(["extension", "--course", root]) == 0
    assert "1 extension(s) in" in (out := capsys.readouterr().out), out
    assert "  amy/ex: 2 h 0 min; due 2026-12-01 12:00:00 UTC" in out, out

    assert main(["extension", "ex", "--student", "amy", "--remove", "--course", root]) == 0
    assert main(["report", "--course", root, "-q"]) == 0
    assert _totals(course.reports)[("amy", "ex")]["late_penalty"] == "1.5"
    assert not (course.root / "extensions.json").exists()


def test_an_extension_granted_before_the_hand_in_reaches_the_gradebook_at_autograde(tmp_path,
                                                                                       capsys):
    """An extension is granted before the student hands anything in (nbgrader keeps it on the
    submission, which does not exist yet): autograde writes it when it grades the submission,
    and the submission, late against the assignment's due date, is on time."""
    from gradingbatch import ASSIGNMENT, SOLUTIONS, make_course

    from grader.autograde import autograde
    from grader.gradebook import Course

    make_course(tmp_path, ["correct", "correct"])         # handed in 2026-11-20 10:00, 10:01
    course = Course.open(tmp_path, None, SOLUTIONS)
    with course.gradebook() as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate=dt.datetime(2026, 11, 20, 9, 0))
    root = str(tmp_path)
    assert main(["extension", ASSIGNMENT, "--student", "st000_correct", "--days", "1",
                 "--course", root, "--solutions", str(SOLUTIONS)]) == 0
    out = capsys.readouterr().out
    assert ("no submission yet: st000_correct (autograde writes it into the gradebook when it "
            "grades the submission)") in out, out
    autograde(course, jobs=1, sandbox=False, progress=False)
    with course.gradebook() as gb:
        sub = gb.find_submission(ASSIGNMENT, "st000_correct")
        assert sub.extension == dt.timedelta(days=1) and not sub.total_seconds_late
        other = gb.find_submission(ASSIGNMENT, "st001_correct")
        assert other.extension is None and other.total_seconds_late == 3660


@pytest.mark.parametrize("argv,needle", [
    (["--student", "amy", "--days", "0"],
     "argument --days: must be a number of days above 0 (at most 366 days); got '0'"),
    (["--student", "amy", "--days", "x"],
     "argument --days: must be a number of days above 0 (at most 366 days); got 'x'"),
    (["--student", "amy", "--hours", "nan"],
     "argument --hours: must be a number of hours above 0 (at most 366 days); got 'nan'"),
    (["--student", "amy", "--days", "366", "--hours", "5"],
     "--days and --hours must add up to at most 366 days; got 366 d 5 h"),
    (["--student", "amy"], "--days or --hours must give the extension (or --remove take it "
     "back); got neither"),
    (["--days", "2"], "--student must be given at least once"),
    (["--student", "a my", "--days", "2"], "--student must be a student id (ASCII letters, "
     "digits and . _ @ + -, starting with a letter or digit); got 'a my'"),
    (["--student", "amy", "--remove", "--hours", "2"],
     "--remove takes no --days or --hours (it takes the extension back); got --remove with "
     "--hours 2"),
])
def test_a_bad_extension_names_the_argument_the_rule_and_the_value(tmp_path, capsys, argv,
                                                                    needle):
    try:
        code = main(["extension", "ex1_shapes", *argv, "--course", str(tmp_path)])
    except SystemExit as exc:       # argparse's own errors (a --days that is no number)
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert needle in err, err
    assert sorted(tmp_path.iterdir()) == []      # nothing written, no gradebook created


def test_an_extension_for_an_unknown_assignment_names_the_known_ones(tmp_path, capsys):
    course = _late_class(tmp_path / "course")
    assert main(["extension", "ex9", "--student", "amy", "--days", "1", "--course",
                 str(course.root)]) == 2
    err = capsys.readouterr().err
    assert "error: ASSIGNMENT must name an assignment of the gradebook or under " in err, err
    assert "(ex, ex1_shapes, " in err and ", hw); got 'ex9'" in err, err


@pytest.mark.parametrize("argv,needle", [
    (["autograde", "--course", "{tmp}", "--cell-timeout", "abc"],
     "argument --cell-timeout: must be a number of seconds; got 'abc'"),
    (["autograde", "--course", "{tmp}", "--timeout", "nan"],
     "argument --timeout: must be a number of seconds; got 'nan'"),
    (["autograde", "--course", "{tmp}", "--jobs", "1.5"],
     "argument --jobs/-j: must be a whole number; got '1.5'"),
    (["autograde", "--course", "{tmp}", "--memory", "2GB"],
     "argument --memory: must be a whole number of MiB; got '2GB'"),
    (["check", "{tmp}/x.ipynb", "--timeout", "inf"],
     "argument --timeout: must be a number of seconds; got 'inf'"),
])
def test_a_number_option_that_is_no_number_says_the_rule(tmp_path, capsys, argv, needle):
    """argparse said `argument --cell-timeout: invalid float value: 'abc'` (no rule), and took
    `--timeout nan`, a limit no cell ever reaches. Now both name the option, the rule and the
    value."""
    with pytest.raises(SystemExit) as exc:
        main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err


def test_a_damaged_extensions_file_stops_autograde_before_it_starts(tmp_path, capsys):
    """extensions.json is read for each submission autograde commits: one edited by hand into
    no table is a usage error naming the file before any notebook runs, not an error mid-batch."""
    (tmp_path / "extensions.json").write_text('{"ex1_shapes": ["amy"]}')
    from grader_class import sandbox_args

    assert main(["autograde", "--course", str(tmp_path), *sandbox_args()]) == 2
    err = capsys.readouterr().err
    assert (f"error: {tmp_path / 'extensions.json'} must map each assignment to "
            "{student: seconds}; got ") in err, err


def test_an_extension_before_any_gradebook_is_kept_and_listed_without_creating_one(tmp_path,
                                                                                    capsys):
    """Granted before anything was graded (no gradebook yet): kept in extensions.json and
    listed, and no empty gradebook.db is left behind (nbgrader would create one on opening)."""
    root = str(tmp_path)
    assert main(["extension", "ex1_shapes", "--student", "amy", "--days", "2",
                 "--course", root]) == 0
    assert main(["extension", "--course", root]) == 0
    out = capsys.readouterr().out
    assert "no submission yet: amy" in out, out
    assert ("  amy/ex1_shapes: 2 d 0 h; the assignment has no due date in the gradebook"
            in out), out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["extensions.json"]
