"""The instructor's reports: the class histogram (whole points in their own bins, whole students
on the y axis, the median marked), every student in totals.csv (a missing submission scores 0
and says so) and which totals are provisional (written answers waiting for a hand grade)."""

from __future__ import annotations

import csv

import pytest

from grader.gradebook import Course, atomic_write_text, dump_json
from grader.report import TOTAL_FIELDS, histogram_bins, histogram_figure, report


@pytest.mark.parametrize("top", [1, 5, 11, 40])
def test_each_whole_score_has_a_bin_centred_on_it(top):
    edges = histogram_bins(top)
    assert len(edges) == top + 2
    for score in range(top + 1):
        (lo, hi), = [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if a <= score < b]
        assert (lo + hi) / 2 == score


def test_large_totals_get_twenty_equal_bins():
    edges = histogram_bins(100)
    assert len(edges) == 21 and edges[0] == 0 and edges[-1] == 100


def test_the_figure_counts_whole_students_and_marks_the_median():
    import matplotlib.pyplot as plt

    fig = histogram_figure([0, 9, 9, 10.5], 11, "ex: 4 submission(s)")
    ax = fig.axes[0]
    counts = {round(p.get_x() + p.get_width() / 2): p.get_height() for p in ax.patches}
    assert counts[9] == 2 and counts[0] == 1 and sum(counts.values()) == 4
    ticks = [t for t in ax.get_yticks() if t >= 0]
    assert all(float(t).is_integer() for t in ticks), ticks
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["median 9"]
    plt.close(fig)


def test_the_figure_counts_students_without_a_submission_apart():
    import matplotlib.pyplot as plt

    fig = histogram_figure([9, 9, 10.5], 11, "ex", missing=2)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == 5                          # every student, the missing ones too
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "no submission (2)" in legend and "median 9" in legend
    plt.close(fig)


def test_the_figure_draws_collected_but_not_graded_apart_from_no_submission():
    """A submission collected but not autograded yet is not 'no submission': the histogram
    stacks it apart, in its own colour and legend entry (before, both were one grey bar
    labelled 'no submission')."""
    import matplotlib.pyplot as plt

    fig = histogram_figure([9, 10.5], 11, "ex", missing=3, waiting=1)
    ax = fig.axes[0]
    at_zero = {p.get_facecolor()[:3]: p.get_height() for p in ax.patches
               if round(p.get_x() + p.get_width() / 2) == 0 and p.get_height()}
    assert sorted(at_zero.values()) == [1, 2], at_zero
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "collected, not graded yet (1)" in legend and "no submission (2)" in legend, legend
    plt.close(fig)


def test_the_histogram_counts_rows_not_graded_yet_in_title_and_figure(tmp_path, monkeypatch):
    import grader.report

    seen, real = {}, grader.report.histogram_figure

    def spy(scores, top, title, missing=0, waiting=0):
        seen.update(title=title, missing=missing, waiting=waiting)
        return real(scores, top, title, missing, waiting)

    monkeypatch.setattr(grader.report, "histogram_figure", spy)
    rows = [{"assignment": "ex", "score": sc, "max_score": "11", "status": st,
             "provisional": pr} for sc, st, pr in (("9", "submitted", "no"),
                                                   ("0", "not graded yet", "yes"),
                                                   ("0", "no submission", "no"))]
    grader.report.histogram(rows, "ex", tmp_path / "hist_ex.png")
    assert (seen["missing"], seen["waiting"]) == (2, 1), seen
    assert "1 with no submission, 1 collected but not autograded yet" in seen["title"], seen
    assert (tmp_path / "hist_ex.png").read_bytes()[:4] == b"\x89PNG"


# -- a small class straight in an nbgrader gradebook: ex (amy, bo; cy has no submission) and hw
#    (amy only); each notebook has a test (2 points) and a written answer (3 points)
SUBMISSIONS = {("amy", "ex"): (2.0, None),   # written answer given: waits for a hand grade
               ("bo", "ex"): (0.0, 0.0),     # written answer left as released: 0, final
               ("amy", "hw"): (2.0, 0.0)}


def small_class(root) -> Course:
    course = Course.open(root)
    with course.gradebook() as gb, gb.db.no_autoflush:  # as autograde adds submissions
        for a in ("ex", "hw"):
            gb.add_assignment(a)
            gb.add_notebook(a, a)
            gb.add_grade_cell("test_x", a, a, max_score=2, cell_type="code")
            gb.add_grade_cell("why", a, a, max_score=3, cell_type="markdown")
            gb.add_solution_cell("why", a, a)
        for s in ("amy", "bo", "cy"):
            gb.add_student(s)
        for (s, a), (test, why) in SUBMISSIONS.items():
            gb.add_submission(a, s)
            gb.find_grade("test_x", a, a, s).auto_score = test
            gb.find_grade("why", a, a, s).auto_score = why
        gb.db.commit()
    for (s, a), (test, _) in SUBMISSIONS.items():
        (course.submitted / s / a).mkdir(parents=True)   # as collected
        cells = {"test_x": {"points": test, "max": 2.0, "manual": False, "tests": [
                     {"name": "x", "passed": test > 0, "hidden": False,
                      "message": "[x] passed" if test else "[x] expected 1, got 2."}]},
                 "why": {"points": None, "max": 3.0, "manual": True, "tests": []}}
        atomic_write_text(course.results_path(s, a), dump_json(
            {"student": s, "assignment": a, "flags": [], "notebooks": {a: {"cells": cells}}}))
    return course


def unreadable_bo(course: Course, **notebook) -> Course:
    """``course`` after bo's ex notebook could not be read (not valid JSON), as autograde
    leaves it: no auto score for the written answer, the test cell not run, a flag;
    ``notebook`` adds entries to the notebook's record (``read=False``, say)."""
    with course.gradebook() as gb:
        gb.find_grade("why", "ex", "ex", "bo").auto_score = None
        gb.db.commit()
    cells = {"test_x": {"points": 0.0, "max": 2.0, "manual": False, "status": "not_run",
                        "tests": []},
             "why": {"points": None, "max": 3.0, "manual": True, "status": "manual",
                     "tests": []}}
    atomic_write_text(course.results_path("bo", "ex"), dump_json(
        {"student": "bo", "assignment": "ex", "flags": ["ex: ex.ipynb is not valid JSON"],
         "notebooks": {"ex": {"cells": cells, **notebook}}}))
    return course


def _totals(out) -> dict:
    with (out / "totals.csv").open() as fh:
        return {(r["student"], r["assignment"]): r for r in csv.DictReader(fh)}


def test_every_student_has_a_total_and_a_missing_submission_scores_0(tmp_path):
    res = report(small_class(tmp_path / "course"), progress=False)
    out = res["out"]
    header = (out / "totals.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["student", "assignment", "score", "max_score", "flags"]  # kept
    assert header == TOTAL_FIELDS
    totals = _totals(out)
    assert set(totals) == {(s, a) for s in ("amy", "bo", "cy") for a in ("ex", "hw")}
    for key in [("cy", "ex"), ("bo", "hw"), ("cy", "hw")]:
        assert totals[key]["status"] == "no submission", totals[key]
        assert (totals[key]["score"], totals[key]["max_score"]) == ("0", "5")
    assert totals[("bo", "ex")]["status"] == "submitted"
    most = (out / "most_failed.txt").read_text()
    assert "ex: 2 submission(s) of 3 student(s), 1 with no submission" in most, most
    assert "hw: 1 submission(s) of 3 student(s), 2 with no submission" in most, most
    assert "     1 / 2    ex/ex/test_x" in most, most
    flags = (out / "flags.txt").read_text()
    assert "No submission (3, scored 0 in totals.csv):\n  cy/ex\n  bo/hw\n  cy/hw" in flags


def test_totals_say_which_wait_for_a_hand_grade(tmp_path):
    res = report(small_class(tmp_path / "course"), progress=False)
    totals = _totals(res["out"])
    assert (totals[("amy", "ex")]["pending_manual"], totals[("amy", "ex")]["provisional"]) == \
        ("1", "yes")
    for key in [("bo", "ex"), ("amy", "hw"), ("cy", "ex")]:
        assert (totals[key]["pending_manual"], totals[key]["provisional"]) == ("0", "no"), key
    assert "1 provisional total(s)" in (res["out"] / "written.txt").read_text()


def test_grades_csv_says_the_extra_credit_its_score_counts(tmp_path):
    """amy's written answer graded 2 of 3 with 1 extra credit in formgrader: grades.csv said
    manual_score 2, score 3 (nbgrader's score counts the extra credit) and nothing explained the
    difference; now its extra_credit column says 1 (empty where none was given)."""
    course = small_class(tmp_path / "course")
    with course.gradebook() as gb:   # as formgrader's API saves a hand grade
        g = gb.find_grade("why", "ex", "ex", "amy")
        g.manual_score, g.extra_credit, g.needs_manual_grade = 2.0, 1.0, False
        gb.db.commit()
    out = report(course, progress=False)["out"]
    with (out / "grades.csv").open() as fh:
        rows = {(r["student"], r["assignment"], r["grade_cell"]): r for r in csv.DictReader(fh)}
    why = rows[("amy", "ex", "why")]
    assert (why["manual_score"], why["extra_credit"], why["score"]) == ("2", "1", "3")
    assert rows[("amy", "ex", "test_x")]["extra_credit"] == ""
    assert _totals(out)[("amy", "ex")]["score"] == "5"


def test_histogram_titles_count_students_missing_and_provisional(tmp_path, monkeypatch):
    import grader.report

    titles, real = {}, grader.report.histogram_figure

    def spy(scores, top, title, missing=0, **kw):
        titles[title.split(":")[0]] = (sorted(scores), missing, title)
        return real(scores, top, title, missing, **kw)

    monkeypatch.setattr(grader.report, "histogram_figure", spy)
    report(small_class(tmp_path / "course"), progress=False)
    assert titles["ex"][:2] == ([0.0, 2.0], 1)
    assert titles["ex"][2] == ("ex: 3 student(s), 2 submission(s)\n1 with no submission "
                               "(scored 0); 1 provisional (written answers to grade)")
    assert titles["hw"][:2] == ([2.0], 2)
    assert "0 provisional" in titles["hw"][2]


def test_a_damaged_results_file_is_flagged_and_the_others_are_reported(tmp_path):
    course = small_class(tmp_path / "course")
    course.results_path("bo", "ex").write_text('{"flags": [')
    res = report(course, progress=False)
    totals = _totals(res["out"])
    assert totals[("bo", "ex")]["flags"].startswith("results.json unreadable (JSONDecodeError")
    assert totals[("bo", "ex")]["score"] == "0" and totals[("amy", "ex")]["score"] == "2"
    assert totals[("amy", "hw")]["score"] == "2"


def test_scores_csv_has_one_row_per_student_for_an_lms(tmp_path):
    res = report(small_class(tmp_path / "course"), progress=False)
    assert (res["out"] / "scores.csv").read_text() == (
        "student,ex,hw,total,max_total,provisional,flagged\n"
        "amy,2,2,4,10,yes,no\n"      # amy's written answer in ex waits for a hand grade
        "bo,0,0,0,10,no,no\n"        # no submission of hw: 0
        "cy,0,0,0,10,no,no\n")       # no submission at all: still a row


def test_the_summary_says_what_to_do_next(tmp_path, capsys):
    from grader.cli import main

    course = small_class(tmp_path / "course")
    course.results_path("bo", "ex").write_text('{"flags": ["ex: timeout"]}')
    assert main(["report", "--course", str(course.root), "-q"]) == 0
    steps = [line for line in capsys.readouterr().out.splitlines() if line.startswith("next: ")]
    reports = course.root / "reports"
    roster = ("next: the gradebook knows only the students who submitted something: to give "
              "every student of the class a row (0 where nothing came in), import the class "
              "list (columns id, first_name, last_name, email) with `nbgrader db student import "
              f"--db sqlite:///{course.root / 'gradebook.db'} roster.csv`, then run report again")
    assert steps[0] == roster
    with course.gradebook() as gb:  # as `nbgrader db student import` leaves it
        gb.update_or_create_student("amy", first_name="Amy", email="amy@example.org")
    assert main(["report", "--course", str(course.root), "-q"]) == 0
    steps = [line for line in capsys.readouterr().out.splitlines() if line.startswith("next: ")]
    assert steps == [
        f"next: look at the 1 submission(s) the autograder flagged (time or memory limits, "
        f"edited test cells, unreadable notebooks, ...) in {reports / 'flags.txt'} (each executed "
        f"notebook is in {course.autograded}/<student>/<assignment>/)",
        "next: grade the 1 written answer(s) by hand in nbgrader's formgrader (from the "
        f"repository root with .venv active: TCONV_COURSE={course.root} jupyter lab "
        f"--ServerApp.root_dir={course.root}, menu Nbgrader > Formgrader), then run report and "
        "feedback again",
        f"next: upload {reports / 'scores.csv'} (one row per student) to your LMS; 1 student(s) "
        "in it have a provisional total (written answers still to grade)"]


def test_the_upload_step_counts_the_provisional_rows_of_scores_csv(tmp_path, capsys):
    """amy's written answers of ex and hw both wait for a hand grade: two provisional totals in
    totals.csv, but one student, one provisional row, in the scores.csv the step uploads."""
    from grader.cli import main

    course = small_class(tmp_path / "course")
    with course.gradebook() as gb:
        gb.find_grade("why", "hw", "hw", "amy").auto_score = None   # answered: to grade
        gb.update_or_create_student("amy", first_name="Amy", email="amy@example.org")
        gb.db.commit()
    assert main(["report", "--course", str(course.root), "-q"]) == 0
    out = capsys.readouterr().out
    totals = _totals(course.root / "reports")
    assert [k for k, r in totals.items() if r["provisional"] == "yes"] == [("amy", "ex"),
                                                                           ("amy", "hw")]
    with (course.root / "reports" / "scores.csv").open() as fh:
        rows = [r["student"] for r in csv.DictReader(fh) if r["provisional"] == "yes"]
    assert rows == ["amy"]
    assert "2 provisional total(s) in totals.csv" in out, out
    upload, = [line for line in out.splitlines() if line.startswith("next: upload ")]
    assert upload.endswith("to your LMS; 1 student(s) in it have a provisional total "
                           "(written answers still to grade)"), upload


def test_an_output_that_cannot_be_written_is_one_line_naming_it(tmp_path, capsys):
    from grader.cli import main

    course = small_class(tmp_path / "course")
    (tmp_path / "a_file").write_text("")
    assert main(["report", "--course", str(course.root), "-o", str(tmp_path / "a_file"),
                 "-q"]) == 2
    err = capsys.readouterr().err
    assert err == (f"tconv-grader report: error: --output must be a folder the reports can be "
                   f"written to; got {tmp_path / 'a_file'} (File exists)\n"), err


def test_a_notebook_that_never_ran_is_not_a_failed_test_nor_an_answer_to_grade(tmp_path,
                                                                             capsys):
    """bo's ex notebook could not be read: its 0 says nothing about the test, and there is no
    written answer to grade; the summary says to get the notebook again."""
    from collections import Counter

    from grader.cli import main

    course = unreadable_bo(small_class(tmp_path / "course"))
    res = report(course, progress=False)
    assert res["most_failed"] == [("ex/ex/test_x", 0, 1), ("hw/hw/test_x", 0, 1)]
    assert res["written"]["ex/ex/why"] == Counter({"to grade": 1, "unread": 1})
    assert ("Written answers (graded by hand in formgrader): 1 to grade, 1 left blank (scored "
            "0), 0 graded, 1 in notebooks that could not be read (see flags.txt);"
            ) in res["summary"], res["summary"]
    assert "_unread" not in (res["out"] / "grades.csv").read_text()
    assert "_unread" not in (res["out"] / "totals.csv").read_text()
    assert main(["report", "--course", str(course.root), "-q"]) == 0
    assert ("next: 1 submission(s) could not be graded at all (unreadable notebook or wrong "
            "file name, see flags.txt): get the notebook again, collect and autograde it, or "
            "give a hand grade in formgrader") in capsys.readouterr().out


def test_the_printed_summary_shortens_long_lists_and_the_file_keeps_all(tmp_path, monkeypatch):
    import grader.report

    monkeypatch.setattr(grader.report, "SHOWN", 2)
    res = report(small_class(tmp_path / "course"), progress=False)
    out = res["out"]
    assert "No submission (3, scored 0 in totals.csv):\n  cy/ex\n  bo/hw\n  ... and 1 more " \
           f"in {out / 'flags.txt'}" in res["summary"], res["summary"]
    assert "No submission (3, scored 0 in totals.csv):\n  cy/ex\n  bo/hw\n  cy/hw" in \
        (out / "flags.txt").read_text()


# -- each time-out is one flag (report printed a bare 'timeout' beside the cell's own flag)
def _graded_flags(*sources, timeout, cell_timeout):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from grader import autograde

    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    task = {"key": ("s", "a"), "notebook": "n", "flags": [], "nb": nbformat.writes(nb),
            "specs": {}, "expected": {}, "files": [], "timeout": timeout,
            "cell_timeout": cell_timeout, "sandbox": False}
    return autograde.grade_notebook(task)["flags"]


def test_a_cell_over_its_limit_is_flagged_once_naming_the_cell():
    flags = _graded_flags("x = 1", "while True:\n    pass", "y = 2", timeout=30.0,
                          cell_timeout=0.5)
    assert flags == ["cell #1 timed out (limits: 0.5 s per cell, 30 s per notebook)"], flags


def test_a_notebook_over_its_limit_is_flagged_once_naming_the_cell_it_stopped():
    naps = ["import time\ntime.sleep(0.3)"] * 15
    flags = _graded_flags(*naps, timeout=1.5, cell_timeout=3.0)
    assert len(flags) == 1, flags
    assert flags[0].startswith("cell #") and flags[0].endswith(
        " timed out: the notebook's time ran out (limits: 1.5 s per cell, 1.5 s per notebook)")


def test_time_out_flags_tell_each_event_once():
    from types import SimpleNamespace as Run

    from grader.autograde import timeout_flags
    from grader.execute import Limits

    lim = Limits(cell_timeout=2.0, notebook_timeout=9.0)
    said = "(limits: 2 s per cell, 9 s per notebook)"
    ok = Run(index=1, grade_id=None, status="ok", error=None)
    slow = Run(index=2, grade_id="t", status="timeout", error="cell exceeded 2 s")
    late = Run(index=3, grade_id=None, status="timeout", error="notebook timed out")
    assert timeout_flags(["network attempt"], [ok], lim) == ["network attempt"]
    assert timeout_flags(["timeout", "memory limit"], [ok, slow], lim) == [
        "memory limit", f"cell t timed out {said}"]
    assert timeout_flags(["timeout", "notebook timeout"], [slow, late], lim) == [
        f"cell t timed out {said}", f"cell #3 timed out: the notebook's time ran out {said}"]
    # the notebook's time ran out while no cell was running: no cell to name
    assert timeout_flags(["timeout", "notebook timeout"], [ok], lim) == [
        f"notebook timed out between cells {said}"]
    assert timeout_flags(["timeout", "notebook timeout"], [slow, ok], lim) == [
        f"cell t timed out {said}", f"notebook timed out between cells {said}"]


def test_running_out_of_memory_is_flagged_once_naming_the_cell_and_the_limit():
    from types import SimpleNamespace as Run

    from grader.autograde import memory_flags
    from grader.execute import Limits

    lim = Limits(memory_bytes=512 << 20)
    said = "(512 MiB per notebook, all its processes together)"
    ok = Run(index=1, grade_id="a", status="ok", error=None)
    oom = Run(index=2, grade_id=None, status="error", error="MemoryError: Unable to allocate")
    killed = Run(index=3, grade_id="t", status="killed", error="the notebook used more than")
    assert memory_flags(["output truncated"], [ok, oom], lim) == ["output truncated"]
    assert memory_flags(["memory limit", "x"], [ok, oom], lim) == [
        "x", f"cell #2 hit the memory limit {said}"]
    assert memory_flags(["memory limit"], [ok, oom, killed], lim) == [
        f"cell t hit the memory limit {said}"]
    assert memory_flags(["memory limit"], [ok], lim) == [f"memory limit {said}"]


def test_an_empty_notebook_is_flagged_as_empty(tmp_path):
    from grader.autograde import _load_submission

    (tmp_path / "ex.ipynb").write_bytes(b"")
    assert _load_submission(tmp_path, "ex", ["ex"]) == (
        None, ["ex.ipynb is empty (0 bytes): nothing to grade (scored 0)"])


def test_a_notebook_that_ran_but_stopped_before_its_first_test_is_not_unread(tmp_path):
    """Its first cell ran out of memory: no test ran, but the notebook was read and its written
    answer is there to grade (only a notebook the autograder could not read is 'unread')."""
    course = small_class(tmp_path / "course")
    cells = {"test_x": {"points": 0.0, "max": 2.0, "manual": False, "status": "not_run",
                        "tests": []},
             "why": {"points": None, "max": 3.0, "manual": True, "status": "manual",
                     "tests": []}}
    for read, who in ((False, "amy"), (True, "bo")):
        atomic_write_text(course.results_path(who, "ex"), dump_json(
            {"student": who, "assignment": "ex", "flags": ["ex: memory limit"],
             "notebooks": {"ex": {"cells": cells, "read": read}}}))
    res = report(course, progress=False)
    assert res["most_failed"][0] == ("ex/ex/test_x", 1, 1)  # bo's 0 counts, amy's does not
    assert res["written"]["ex/ex/why"]["unread"] == 1


@pytest.mark.parametrize("where", ["plain", "with space"])
def test_the_formgrader_command_is_one_formgrader_accepts(tmp_path, monkeypatch, where):
    """report's formgrader command: nbgrader's formgrader refuses a course directory outside the
    Jupyter root ("not a subdirectory of the notebook server root": the relative path starts
    with '..'), which `jupyter lab` from the repository root would be for a course kept
    outside it. Read back the way a shell reads it, the command's root contains the course."""
    import os
    import shlex

    from grader.release import nbgrader_config
    from grader.report import formgrader_command

    course = small_class(tmp_path / where / "course")
    words = shlex.split(formgrader_command(course).split(": ", 1)[1])
    env = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("--"))
    root = next(w.split("=", 1)[1] for w in words if w.startswith("--ServerApp.root_dir="))
    assert words[words.index("jupyter"):words.index("jupyter") + 2] == ["jupyter", "lab"]
    assert "TCONV_DB" not in env
    monkeypatch.setenv("TCONV_COURSE", env["TCONV_COURSE"])
    monkeypatch.delenv("TCONV_DB", raising=False)
    config = nbgrader_config().CourseDirectory
    assert config.root == str(course.root)
    assert not os.path.relpath(config.root, root).startswith(".."), (config.root, root)


def test_the_formgrader_command_names_a_db_gradebook(tmp_path, monkeypatch):
    """With --db, formgrader must read that gradebook, not DIR/gradebook.db: the command sets
    TCONV_DB (without printing the URL's password), which nbgrader_config.py passes on."""
    import shutil

    from grader.release import nbgrader_config
    from grader.report import formgrader_command

    small_class(tmp_path / "course")
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    shutil.copy(tmp_path / "course" / "gradebook.db", tmp_path / "elsewhere.db")
    course = Course.open(str(tmp_path / "course"), url)
    command = formgrader_command(course)
    assert "TCONV_DB='<the --db URL>'" in command and "elsewhere" not in command
    monkeypatch.setenv("TCONV_COURSE", str(course.root))
    monkeypatch.setenv("TCONV_DB", url)
    assert nbgrader_config().CourseDirectory.db_url == url
    monkeypatch.delenv("TCONV_DB")
    assert "db_url" not in nbgrader_config().CourseDirectory


def test_a_submission_withdrawn_after_autograde_scores_0_and_is_named(tmp_path, capsys):
    """amy's ex (2 points, a written answer to grade) was autograded, then its folder was
    removed from submitted/ (withdrawn, or collected by mistake). report counted it as if it
    stood: 2 in totals.csv and scores.csv, provisional, nothing said. Now it scores 0 with status
    withdrawn and its earlier score in the flags, is named with what to do, leaves grades.csv and
    the answers to grade, and its feedback page goes; collected again, it counts again."""
    import shutil

    from grader.cli import main

    course = small_class(tmp_path / "course")
    assert main(["feedback", "--course", str(course.root), "-q"]) == 0
    shutil.rmtree(course.submitted / "amy" / "ex")
    assert main(["report", "--course", str(course.root), "-q"]) == 0
    out = capsys.readouterr().out
    amy = _totals(course.root / "reports")[("amy", "ex")]
    assert (amy["score"], amy["status"], amy["pending_manual"], amy["provisional"]) == \
        ("0", "withdrawn", "0", "no"), amy
    assert amy["flags"] == (f"withdrawn: {course.submitted / 'amy' / 'ex'} is gone since it "
                            "was autograded (2 / 5 then); scored 0"), amy
    assert (course.root / "reports" / "scores.csv").read_text().splitlines()[1] == \
        "amy,0,2,2,10,no,withdrawn (ex)"
    assert "amy,ex," not in (course.root / "reports" / "grades.csv").read_text()
    assert "Written answers (graded by hand in formgrader): 0 to grade" in out, out
    assert "ex: 1 submission(s) of 3 student(s), 1 with no submission, 1 withdrawn, 0 " \
        "provisional" in out, out      # the count said '2 with no submission', the list 1
    assert ("next: 1 submission(s) autograded earlier are no longer under "
            f"{course.submitted} (withdrawn, or collected by mistake): they score 0 (status "
            "withdrawn in totals.csv, the earlier score in its flags) and their grades are left "
            "out of grades.csv: amy/ex. If one should stand, collect it again and run autograde"
            ) in out, out
    assert main(["feedback", "--course", str(course.root), "-q"]) == 0
    assert "1 page(s) removed" in capsys.readouterr().out
    assert not (course.feedback / "amy" / "ex").exists()
    assert "<li>ex: no submission received</li>" in \
        (course.feedback / "amy" / "index.html").read_text()

    (course.submitted / "amy" / "ex").mkdir()          # collected again (the same files)
    assert main(["report", "--course", str(course.root), "-q"]) == 0
    assert "no longer under" not in capsys.readouterr().out
    amy = _totals(course.root / "reports")[("amy", "ex")]
    assert (amy["score"], amy["status"], amy["provisional"]) == ("2", "submitted", "yes"), amy


def test_a_submission_with_both_folders_deleted_is_withdrawn_not_counted(tmp_path, capsys):
    """amy's ex: both DIR/submitted/amy/ex and DIR/autograded/amy/ex deleted (the gradebook
    keeps its grades). report counted it as a submission (2 points, provisional, no word) and
    her feedback index said 'not graded yet' while the summary counted her among those with
    nothing graded. Now it is withdrawn, as one whose submitted folder alone went: 0 points,
    named with its score in the gradebook; the index says no submission was received."""
    import shutil

    from grader.cli import main

    course = small_class(tmp_path / "course")
    shutil.rmtree(course.submitted / "amy" / "ex")
    shutil.rmtree(course.autograded / "amy" / "ex")
    assert main(["report", "--course", str(course.root), "-q"]) == 0
    out = capsys.readouterr().out
    amy = _totals(course.root / "reports")[("amy", "ex")]
    assert (amy["score"], amy["status"], amy["provisional"]) == ("0", "withdrawn", "no"), amy
    assert amy["flags"] == (f"withdrawn: {course.submitted / 'amy' / 'ex'} and its "
                            f"results.json under {course.autograded} are gone (2 / 5 in the "
                            "gradebook); scored 0"), amy
    assert "no longer under" in out and ": amy/ex. If one should stand" in out, out
    assert main(["feedback", "--course", str(course.root), "-q"]) == 0
    assert "<li>ex: no submission received</li>" in \
        (course.feedback / "amy" / "index.html").read_text()
    (course.submitted / "amy" / "ex").mkdir()      # collected again, not yet autograded
    assert main(["report", "--course", str(course.root), "-q"]) == 0
    assert _totals(course.root / "reports")[("amy", "ex")]["status"] == "submitted"


def test_autograde_names_the_submissions_withdrawn_since_and_what_to_do(tmp_path, capsys):
    """bo's submission was autograded, then its folder left DIR/submitted/. autograde's own
    summary said nothing ('graded 0 submission(s), skipped 0'), though report scores it 0 and
    feedback removes its page; now it names it, why, and what to do. Also once both its
    folders are gone (the gradebook keeps its grades)."""
    import shutil

    from grader_class import sandbox_args
    from test_grader_feedback import _bo_graded

    from grader.cli import main

    course, _, folder = _bo_graded(tmp_path)
    shutil.rmtree(folder)
    argv = ["autograde", "--course", str(tmp_path), "--solutions", str(course.solutions), "-q",
            *sandbox_args()]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (f"  withdrawn bo/fx_scatter: {folder} is gone since it was autograded; the "
            "gradebook keeps its grades") in out.splitlines(), out
    assert (f"next: the 1 withdrawn submission(s) above (graded earlier, no longer under "
            f"{course.submitted}: withdrawn, or deleted by mistake) score 0 in report (status "
            "withdrawn) and feedback removes their pages; if one should stand, collect it again "
            "and run autograde (its grades come back)") in out, out
    assert "warning: no submissions" not in out and "next: tconv-grader report" in out, out
    shutil.rmtree(course.autograded / "bo" / "fx_scatter")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (f"  withdrawn bo/fx_scatter: {folder} and its results.json under "
            f"{course.autograded} are gone; the gradebook keeps its grades") in out, out
    assert main([*argv, "--student", "bo"]) == 0            # a run for bo names it too
    assert "withdrawn bo/fx_scatter" in capsys.readouterr().out


def test_collected_but_not_autograded_is_provisional_and_named_not_missing(tmp_path, capsys):
    """zed (on the class list) hands in late and bo resubmits; both are collected, and report
    and feedback run before autograde. report said zed had 'no submission' (0, final) and gave
    bo his earlier submission's grades as final; zed's feedback index told him 'no submission
    received'. Now zed's row is 'not graded yet', bo's keeps the earlier grades but both are
    provisional and flagged, and both are named with the autograde command; zed's index says
    'not graded yet'. After autograde, both count as usual."""
    import csv

    import nbformat
    from test_grader_feedback import _bo_graded

    from grader.autograde import autograde
    from grader.cli import main

    course, nb, folder = _bo_graded(tmp_path)
    with course.gradebook() as gb:   # the class list, as `nbgrader db student import` leaves it
        gb.update_or_create_student("zed", first_name="Zed")
        g = gb.find_grade("explain", "fx_scatter", "fx_scatter", "bo")
        g.manual_score, g.needs_manual_grade = 1.0, False
        gb.db.commit()
    late = course.submitted / "zed" / "fx_scatter"
    late.mkdir(parents=True)
    nbformat.write(nb, late / "fx_scatter.ipynb")
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == "scatter_1d":
            c.source = "def scatter_1d(x, w, stride):\n    return None\n"
    nbformat.write(nb, folder / "fx_scatter.ipynb")        # bo's resubmission, collected

    assert main(["report", "--course", str(tmp_path), "-q"]) == 0
    out = capsys.readouterr().out
    with (tmp_path / "reports" / "totals.csv").open() as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert (rows["zed"]["status"], rows["zed"]["score"], rows["zed"]["provisional"]) == \
        ("not graded yet", "0", "yes"), rows["zed"]
    assert (rows["bo"]["status"], rows["bo"]["score"], rows["bo"]["provisional"]) == \
        ("submitted", "6", "yes"), rows["bo"]
    assert rows["bo"]["flags"].startswith("collected again since it was graded"), rows["bo"]
    assert ("next: 2 submission(s) collected are not autograded yet (new, or collected again "
            "since they were graded: their totals are 0 or the earlier submission's, "
            f"provisional): run `tconv-grader autograde --course {tmp_path}`, then report again "
            "(bo/fx_scatter, zed/fx_scatter)") in out, out
    assert "No submission (0, scored 0 in totals.csv)" in out, out
    assert ("fx_scatter: 1 submission(s) of 2 student(s), 0 with no submission, 1 collected but "
            "not autograded yet, 2 provisional") in out, out
    assert main(["feedback", "--course", str(tmp_path), "--solutions", str(course.solutions),
                 "-q"]) == 0
    out = capsys.readouterr().out
    assert "no submission was received: zed" not in out, out
    assert ("then feedback again: bo/fx_scatter (collected again), zed/fx_scatter (new)"
            ) in out, out
    assert "<li>fx_scatter: not graded yet</li>" in \
        (course.feedback / "zed" / "index.html").read_text()

    autograde(course, jobs=1, sandbox=False, progress=False)
    assert main(["report", "--course", str(tmp_path), "-q"]) == 0
    out = capsys.readouterr().out
    with (tmp_path / "reports" / "totals.csv").open() as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert "not autograded yet" not in out, out
    assert (rows["zed"]["status"], rows["zed"]["provisional"]) == ("submitted", "yes")
    assert rows["bo"]["score"] == "1" and "collected again" not in rows["bo"]["flags"], \
        rows["bo"]                                      # the tests' 0 and his hand-graded 1


def test_a_submission_after_the_due_date_is_flagged_with_how_late(tmp_path, capsys):
    """ex has a due date in the gradebook (`nbgrader db assignment add ex --duedate ...`, which
    formgrader shows), and amy's submission came in 2 h 30 min after it (collect records the
    time). report said nothing of it: an instructor grading by report alone lost it. Now its
    flags say how late (no penalty applied) and a next: line names it; bo, on time, and hw,
    without a due date, are not flagged."""
    from datetime import datetime

    from grader.cli import main

    course = small_class(tmp_path / "course")
    with course.gradebook() as gb:
        gb.update_or_create_assignment("ex", duedate=datetime(2026, 12, 1, 10, 0))
        gb.find_submission("ex", "amy").timestamp = datetime(2026, 12, 1, 12, 30)
        gb.find_submission("ex", "bo").timestamp = datetime(2026, 12, 1, 9, 59)
        gb.find_submission("hw", "amy").timestamp = datetime(2026, 12, 9)
        gb.db.commit()
    assert main(["report", "--course", str(course.root), "-q"]) == 0
    out = capsys.readouterr().out
    totals = _totals(course.root / "reports")
    assert totals[("amy", "ex")]["flags"] == (
        "late: handed in 2026-12-01 12:30:00 UTC, 2 h 30 min after the due date 2026-12-01 "
        "10:00:00 UTC (no penalty applied)")
    assert totals[("amy", "ex")]["score"] == "2"
    assert totals[("bo", "ex")]["flags"] == totals[("amy", "hw")]["flags"] == ""
    assert ("next: 1 submission(s) came in after their due date (flags.txt says how late); "
            "no late penalty is set, so none is taken: to take one, run report with "
            "--late-penalty (zero, or e.g. 10%/day: see `tconv-grader report --help`), or take "
            "it into account by hand (amy/ex)") in out, out


def _late_class(root) -> Course:
    """small_class with a due date on ex: amy hands it in 2 h 30 min late (2 of 5 points, her
    written answer waiting for a hand grade), bo on time."""
    from datetime import datetime

    course = small_class(root)
    with course.gradebook() as gb:
        gb.update_or_create_assignment("ex", duedate=datetime(2026, 12, 1, 10, 0))
        gb.find_submission("ex", "amy").timestamp = datetime(2026, 12, 1, 12, 30)
        gb.find_submission("ex", "bo").timestamp = datetime(2026, 12, 1, 9, 59)
        gb.db.commit()
    return course


def _amy(course) -> tuple[str, str, str]:
    """amy's ex: (page's score line, index's ex item, the page's late note or '')."""
    import re

    page = (course.feedback / "amy" / "ex" / "feedback.html").read_text()
    index = (course.feedback / "amy" / "index.html").read_text()
    note = re.search(r"<b>Late submission</b>: (.*?)</p>", page)
    return (re.search(r"Score: <b>(.*?)</b>", page)[1],
            re.search(r'<a href="ex/feedback.html">ex</a>: (.*?)</li>', index)[1],
            note[1] if note else "")


def test_a_late_penalty_is_opt_in_and_the_same_in_totals_scores_and_the_students_page(
        tmp_path, capsys):
    """Before, lateness was only a flag in report: no rule could take points, and amy's page
    said nothing of it. Now `--late-penalty RULE` (on report or feedback) is saved as the
    course's rule and both apply it: totals.csv (late_penalty column), scores.csv and amy's page
    and index give the same total, and the page says how late and what was taken. A hand grade
    given later is penalised by the same rule; `none` drops it."""
    from grader.cli import main

    course = _late_class(tmp_path / "course")
    root = str(course.root)
    assert main(["feedback", "--course", root, "-q"]) == 0      # no rule: told, nothing taken
    capsys.readouterr()
    assert _amy(course) == (
        "2 / 5 (not final: 1 written answer still to be graded by hand)",
        "2 / 5 (not final: 1 written answer still to be graded by hand)",
        "handed in 2026-12-01 12:30:00 UTC, 2 h 30 min after the due date 2026-12-01 10:00:00 "
        "UTC.")
    assert "Late submission" not in (course.feedback / "bo" / "ex" / "feedback.html").read_text()

    assert main(["report", "--course", root, "-q", "--late-penalty", "10%/hour"]) == 0
    out = capsys.readouterr().out
    assert (f"report: late penalty 10%/hour set (saved in {course.root / 'late_penalty.txt'}; "
            "report and feedback apply it from now on)") in out, out
    assert "next: the late penalty changed (none -> 10%/hour): run `tconv-grader feedback" in out
    totals = _totals(course.root / "reports")
    amy = totals[("amy", "ex")]
    assert (amy["score"], amy["late_penalty"]) == ("0.5", "1.5"), amy
    assert amy["flags"] == (
        "late: handed in 2026-12-01 12:30:00 UTC, 2 h 30 min after the due date 2026-12-01 "
        "10:00:00 UTC; late penalty 10%/hour: 10% of the 5 points per hour or part of one late, "
        "3 hours: 1.5 points taken")
    assert (totals[("bo", "ex")]["late_penalty"], totals[("cy", "ex")]["late_penalty"]) == \
        ("0", "0")
    assert "amy,0.5,2,2.5,10,yes,late (ex)" in (course.root / "reports" / "scores.csv").read_text()
    assert "late penalty 10%/hour taken from their totals" in out, out

    assert main(["feedback", "--course", root, "-q"]) == 0      # the saved rule applies
    out = capsys.readouterr().out
    assert ("feedback: 1 page(s) say the submission was late and by how much (late penalty "
            "10%/hour: amy/ex -1.5)") in out, out
    line = "0.5 / 5 after a late penalty of 1.5 (not final: 1 written answer still to be graded " \
        "by hand)"
    assert _amy(course) == (line, line, (
        "handed in 2026-12-01 12:30:00 UTC, 2 h 30 min after the due date 2026-12-01 10:00:00 "
        "UTC. Late penalty (10% of the 5 points per hour or part of one late, 3 hours: 1.5 "
        "points): 1.5 points taken from your score."))

    with course.gradebook() as gb:                   # formgrader: amy's answer gets 3 of 3
        g = gb.find_grade("why", "ex", "ex", "amy")
        g.manual_score, g.needs_manual_grade = 3.0, False
        gb.db.commit()
    assert main(["report", "--course", root, "-q"]) == 0
    assert main(["feedback", "--course", root, "-q"]) == 0
    capsys.readouterr()
    assert _totals(course.root / "reports")[("amy", "ex")]["score"] == "3.5"
    assert _amy(course)[:2] == ("3.5 / 5 after a late penalty of 1.5",) * 2

    assert main(["feedback", "--course", root, "-q", "--late-penalty", "zero"]) == 0
    assert main(["report", "--course", root, "-q"]) == 0
    capsys.readouterr()
    amy = _totals(course.root / "reports")[("amy", "ex")]
    assert (amy["score"], amy["late_penalty"]) == ("0", "5"), amy
    assert amy["flags"].endswith("; late penalty zero: a late submission scores 0: 5 points "
                                 "taken"), amy
    assert _amy(course)[:2] == ("0 / 5 after a late penalty of 5",) * 2

    assert main(["report", "--course", root, "-q", "--late-penalty", "none"]) == 0
    assert not (course.root / "late_penalty.txt").exists()
    amy = _totals(course.root / "reports")[("amy", "ex")]
    assert (amy["score"], amy["late_penalty"]) == ("5", "0"), amy
    assert amy["flags"].endswith("(no penalty applied)"), amy


def test_a_penalty_takes_no_more_than_the_points_earned(tmp_path, capsys):
    """zero on a submission that earned 2: 2 taken (not 5), the total 0, and the page says the
    rule gave more than was earned."""
    from grader.cli import main

    course = _late_class(tmp_path / "course")
    assert main(["report", "--course", str(course.root), "-q", "--late-penalty", "zero"]) == 0
    amy = _totals(course.root / "reports")[("amy", "ex")]
    assert (amy["score"], amy["late_penalty"]) == ("0", "2"), amy
    assert amy["flags"].endswith("a late submission scores 0: 5 points; 2 taken (no more than "
                                 "the points earned)"), amy
    assert main(["feedback", "--course", str(course.root), "-q"]) == 0
    capsys.readouterr()
    assert _amy(course)[2].endswith("2 points taken from your score (the rule gives 5; no more "
                                    "than the points you earned is taken).")
    path = course.results_path("amy", "ex")           # amy's test now scores 0 too
    path.write_text(path.read_text().replace('"points": 2.0', '"points": 0.0'))
    assert main(["feedback", "--course", str(course.root), "-q"]) == 0
    out = capsys.readouterr().out
    assert ("(late penalty zero: amy/ex (nothing earned, nothing taken))") in out, out
    assert _amy(course)[2].endswith("(a late submission scores 0: 5 points): nothing taken, as "
                                    "your score is 0.")


@pytest.mark.parametrize("value", ["10/day", "10%", "0%/day", "150%/hour", "10%/week", "half"])
def test_a_bad_late_penalty_names_the_option_the_rule_and_the_value(tmp_path, capsys, value):
    from grader.cli import main

    course = _late_class(tmp_path / "course")
    for command in ("report", "feedback"):
        assert main([command, "--course", str(course.root), "-q", "--late-penalty", value]) == 2
        err = capsys.readouterr().err
        assert (f"tconv-grader {command}: error: --late-penalty must be none, zero, or P%/day "
                "or P%/hour with 0 < P <= 100 (P percent of the assignment's points taken per "
                "day or hour late, each part of one counting whole); got "
                f"{value!r}") in err, err
    assert not (course.root / "late_penalty.txt").exists()


def test_a_run_that_fails_after_its_checks_keeps_the_courses_rule(tmp_path, capsys):
    """Before, `--late-penalty` was saved before the reports (pages) were written: a report
    whose --output could not be written, or a feedback run with a bad --keep-comments, exited 2
    and had still changed the course's rule. Now the rule is saved once the run has written
    what it writes."""
    from grader.cli import main

    course = _late_class(tmp_path / "course")
    root, rule_file = str(course.root), course.root / "late_penalty.txt"
    (tmp_path / "a_file").write_text("")
    assert main(["report", "--course", root, "-q", "--late-penalty", "10%/day",
                 "-o", str(tmp_path / "a_file")]) == 2
    assert "--output must be a folder" in capsys.readouterr().err
    assert not rule_file.exists()
    assert main(["feedback", "--course", root, "-q", "--late-penalty", "zero",
                 "--keep-comments", "amy"]) == 2
    assert "--keep-comments must be" in capsys.readouterr().err
    assert not rule_file.exists()
    assert main(["report", "--course", root, "-q", "--late-penalty", "10%/day"]) == 0
    assert rule_file.read_text() == "10%/day\n"
    assert _totals(course.root / "reports")[("amy", "ex")]["late_penalty"] == "0.5"


def test_a_hand_edited_rule_file_that_holds_no_rule_is_named(tmp_path, capsys):
    from grader.cli import main

    course = _late_class(tmp_path / "course")
    (course.root / "late_penalty.txt").write_text("10 percent a day\n")
    assert main(["report", "--course", str(course.root), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"error: {course.root / 'late_penalty.txt'} must be none, zero, or P%/day" in err, err
    assert "got '10 percent a day'" in err, err


def test_each_count_of_flagged_submissions_says_what_it_counts(tmp_path, capsys):
    """report's 'Flagged submissions (N)' counted late, withdrawn and not-yet-autograded rows
    with the autograder's flags, and its next: line told the instructor to look at N
    'flagged submission(s)' for the executed notebooks, though only one had anything the
    autograder flagged. Now the header says what it counts by reason and the next: line
    counts only those the autograder flagged."""
    import nbformat

    from grader.cli import main

    course = _late_class(tmp_path / "course")            # amy/ex late
    course.results_path("amy", "hw").write_text(          # amy/hw flagged by the autograder
        course.results_path("amy", "hw").read_text().replace('"flags": []',
                                                             '"flags": ["hw: timeout"]'))
    (course.submitted / "cy" / "ex").mkdir(parents=True)  # cy/ex collected, not autograded
    nbformat.write(nbformat.v4.new_notebook(), course.submitted / "cy" / "ex" / "ex.ipynb")
    assert main(["report", "--course", str(course.root), "-q"]) == 0
    out = capsys.readouterr().out
    assert ("Flagged submissions (3: 1 flagged by the autograder, 1 late, 1 collected, not "
            "autograded yet):") in out, out
    assert (course.root / "reports" / "flags.txt").read_text().startswith(
        "Flagged submissions (3: 1 flagged by the autograder, 1 late, 1 collected, not "
        "autograded yet):\n")
    assert "next: look at the 1 submission(s) the autograder flagged" in out, out


def test_a_shared_gradebooks_submission_with_neither_folder_here_is_counted_and_said(tmp_path,
                                                                                        capsys):
    """With a --db shared by several graders, amy's ex has neither DIR/submitted/amy/ex nor its
    results.json here: graded by another grader, or both folders deleted here. The gradebook
    does not record where a submission was graded, so it cannot tell; it counted silently (no
    flag, no word) and amy's index said 'not graded yet'. Now it still counts as the gradebook
    has it, and report (flag, reason count, next: line) and feedback (summary, index) say it
    cannot be told apart."""
    import shutil

    from grader.cli import main

    course = small_class(tmp_path / "course")
    shared = tmp_path / "shared.db"
    (course.root / "gradebook.db").rename(shared)
    db = f"sqlite:///{shared}"
    shutil.rmtree(course.submitted / "amy" / "ex")
    shutil.rmtree(course.autograded / "amy" / "ex")
    assert main(["report", "--course", str(course.root), "--db", db, "-q"]) == 0
    out = capsys.readouterr().out
    amy = _totals(course.root / "reports")[("amy", "ex")]
    assert (amy["score"], amy["status"]) == ("2", "submitted"), amy
    assert amy["flags"] == (
        f"not under this --course: neither {course.submitted / 'amy' / 'ex'} nor its "
        f"results.json under {course.autograded} is here: graded by another grader sharing "
        "--db, or both folders deleted here (the gradebook does not record which), so it "
        "counts as the gradebook has it"), amy
    assert "Flagged submissions (1: 1 not under this --course (graded elsewhere, or deleted)):" \
        in out, out
    assert ("next: 1 submission(s) of the gradebook (--db) have neither folder under this "
            "--course") in out and "If one was withdrawn: collect it again here" in out, out
    assert "look at the" not in out, out             # nothing the autograder flagged
    assert main(["feedback", "--course", str(course.root), "--db", db, "-q"]) == 0
    out = capsys.readouterr().out
    assert ("feedback: 1 submission(s) of the gradebook (--db) have no page here: neither "
            "folder is under this --course") in out and "'received and graded': amy/ex" in out, out
    assert ("<li>ex: received and graded; its feedback page is not in this folder</li>" in
            (course.feedback / "amy" / "index.html").read_text())


def test_a_late_penalty_names_the_assignments_it_cannot_apply_to(tmp_path, capsys):
    """A late penalty set while hw has no due date in the gradebook took nothing from hw and
    said nothing: the instructor believed late hw submissions were penalised. Now a next: line
    names hw with nbgrader's command to give it a due date."""
    from grader.cli import main

    course = _late_class(tmp_path / "course")           # ex has a due date, hw none
    assert main(["report", "--course", str(course.root), "-q"]) == 0
    assert "applies only to an assignment with a due date" not in capsys.readouterr().out
    assert main(["report", "--course", str(course.root), "-q", "--late-penalty", "zero"]) == 0
    out = capsys.readouterr().out
    assert ("next: the late penalty zero applies only to an assignment with a due date, and the "
            "gradebook has none for hw: set one with `nbgrader db assignment add hw --duedate "
            f"\"YYYY-MM-DD HH:MM:SS UTC\" --db sqlite:///{course.root / 'gradebook.db'}`, then "
            "run report and feedback again") in out, out
