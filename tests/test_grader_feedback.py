"""What students read after grading: the stop reason of a stubbed cell, one line for the tests
one stop skipped, one line for a cell's hidden tests, and written answers left blank versus
waiting for a hand grade; that a run writes only the pages whose content changed (a regrade or a
hand grade), or every one with --force; that a page with no results behind it any more is
removed; and that a student of the class list with no submission gets an index saying so, also
when asked for with --student (an id on no list is a usage error naming the nearest ids)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from grader.autograde import _shown_error
from grader.feedback import hidden_summary, merged_messages, render, score

STUB = "NotImplementedError (the released stub: a function it calls is not written yet)"


@pytest.mark.parametrize("has_hidden", [False, True])
@pytest.mark.parametrize("error", ["NotImplementedError: ", "NotImplementedError"])
def test_a_bare_not_implemented_error_is_named_as_the_stub(error, has_hidden):
    assert _shown_error(error, "error", has_hidden) == STUB


@pytest.mark.parametrize("error, has_hidden, shown", [
    ("NotImplementedError: only stride 1", False, "NotImplementedError: only stride 1"),
    ("NotImplementedError: only stride 1", True, "NotImplementedError"),
    ("TypeError: bad operand", False, "TypeError: bad operand"),
    ("TypeError: bad operand", True, "TypeError"),
])
def test_other_errors_keep_their_text_unless_hidden_tests_run(error, has_hidden, shown):
    assert _shown_error(error, "error", has_hidden) == shown


def _t(name, passed, message="", hidden=False):
    return {"name": name, "passed": passed, "message": message, "hidden": hidden}


def test_tests_stopped_for_one_reason_share_a_line_in_order():
    stop = f"the cell stopped with {STUB}."
    tests = [_t("a", True, "[a] passed"),
             _t("b", False, f"[b] not reached: {stop}"),
             _t("h1", False, hidden=True, message="secret text"),
             _t("c", False, f"[c] not reached: {stop}"),
             _t("d", False, f"[d] not reached: {stop} Hint: look at d"),
             _t("e", False, "[e] expected 3, got 4."),
             _t("f", False, f"[f] not reached: {stop}"),
             _t("h2", True, hidden=True)]
    assert merged_messages(tests) == [
        (True, "[a] passed"),
        (False, f"[b, c, f] not reached: {stop}"),
        (False, "1 of 2 hidden tests failed"),     # one line, where the first hidden test is
        (False, f"[d] not reached: {stop} Hint: look at d"),
        (False, "[e] expected 3, got 4.")]


@pytest.mark.parametrize("outcomes, line", [
    ([True], (True, "hidden test passed")),
    ([False], (False, "hidden test failed")),
    ([True] * 5, (True, "5 of 5 hidden tests passed")),
    ([False, True, False, False, True], (False, "3 of 5 hidden tests failed")),
    ([False] * 3, (False, "3 of 3 hidden tests failed")),
])
def test_a_cells_hidden_tests_share_one_line_that_counts_them(outcomes, line):
    secret = [f"[hidden_{i}] expected {i}.25, got {i}.5. Hint: secret{i}"
              for i in range(len(outcomes))]
    tests = [_t("a", True, "[a] passed")] + [
        _t(f"hidden_{i}", ok, secret[i], hidden=True) for i, ok in enumerate(outcomes)] + [
        _t("b", False, "[b] expected 1, got 2.")]
    assert merged_messages(tests) == [(True, "[a] passed"), line,
                                      (False, "[b] expected 1, got 2.")]
    assert hidden_summary(outcomes.count(True), len(outcomes)) == line[1]
    # on the page: one line for them, nothing of their names, messages or values
    rec = {"student": "s1", "assignment": "ex", "notebooks": {"ex": {"cells": {"test_x": {
        "points": 0.0, "max": 2.0, "manual": False, "tests": tests}}}}}
    page = render(rec, {})
    assert page.count("hidden test") == 1 and line[1] in page
    assert page.count('<li class="fail">') == 1 + (not line[0])
    assert "hidden_" not in page and "secret" not in page and ".25" not in page, page


def _record(points):
    cells = {"test_x": {"points": points, "max": 2.0, "manual": False,
                        "tests": [_t("x", points > 0, "[x] passed" if points else
                                     "[x] expected 1, got 2.")]},
             "why": {"points": None, "max": 3.0, "manual": True, "tests": []}}
    return {"student": "s1", "assignment": "ex", "notebooks": {"ex": {"cells": cells}}}


def _why_row(page: str) -> str:
    return page[page.index("<td>why</td>"):].split("</tr>")[0]


def test_a_written_answer_left_blank_says_so_and_one_given_waits_for_a_hand_grade():
    blank = render(_record(2.0), {}, blank={("ex", "why")})
    assert "0 / 3" in _why_row(blank) and "left as released" in _why_row(blank)
    assert "Score: <b>2 / 5</b>" in blank
    waiting = render(_record(2.0), {})
    assert "awaiting manual grading / 3" in _why_row(waiting)
    assert "left as released" not in waiting
    assert ("Score: <b>2 / 5 (not final: 1 written answer still to be graded by hand)</b>"
            in waiting)
    graded = render(_record(0.0), {("ex", "why"): 2.5}, blank={("ex", "why")})
    assert "2.5 / 3" in _why_row(graded) and "Score: <b>2.5 / 5</b>" in graded


def test_score_counts_hand_grades_over_the_autograder_and_pending_answers():
    rec = _record(2.0)
    assert score(rec, {}) == (2.0, 5.0, 1)                       # the answer waits
    assert score(rec, {}, blank={("ex", "why")}) == (2.0, 5.0, 0)  # left blank: final 0
    assert score(rec, {("ex", "why"): 3.0}) == (5.0, 5.0, 0)
    assert score(rec, {("ex", "test_x"): 1.0}) == (1.0, 5.0, 1)  # a hand override of a test


def _index(course, student: str) -> str:
    return (course.feedback / student / "index.html").read_text()


def test_the_index_lists_every_assignment_a_missing_one_as_no_submission(tmp_path):
    from test_grader_report import small_class

    from grader.feedback import feedback

    course = small_class(tmp_path / "course")
    assert len(feedback(course, progress=False).pages) == 3
    bo = _index(course, "bo")
    assert '<a href="ex/feedback.html">ex</a>: 0 / 5' in bo
    assert "<li>hw: no submission received</li>" in bo
    assert "No submission of yours" not in bo
    amy = _index(course, "amy")
    assert ('<a href="ex/feedback.html">ex</a>: 2 / 5 (not final: 1 written answer still to be '
            'graded by hand)') in amy
    assert '<a href="hw/feedback.html">hw</a>: 2 / 5</li>' in amy
    # feedback for one assignment keeps the index with the others still in it
    (course.feedback / "amy" / "index.html").unlink()
    assert len(feedback(course, assignments=["ex"], progress=False).pages) == 2
    assert '<a href="hw/feedback.html">hw</a>: 2 / 5</li>' in _index(course, "amy")
    assert "<li>hw: no submission received</li>" in _index(course, "bo")


@pytest.mark.parametrize("args, needle", [
    (["ex9_nothing"], "ASSIGNMENT matched no autograded submission; got 'ex9_nothing' "
     "(autograded assignments: ex, hw)"),
    (["--student", "zed"], "--student must name a student of the gradebook (the class list) "
     "or one with an autograded submission; got 'zed' (3 known: amy, bo, cy)"),
    (["--student", "amy", "--student", "zed"], "--student must name a student of the gradebook "
     "(the class list) or one with an autograded submission; got 'zed' ("),
    (["--student", "amz", "--student", "cyy", "--student", "q"], "got 'amz', 'cyy', 'q' ("
     "nearest to 'amz': 'amy'; nearest to 'cyy': 'cy'; 3 known: amy, bo, cy)"),
])
def test_a_filter_that_matches_nothing_names_the_argument_and_what_exists(tmp_path, capsys,
                                                                          args, needle):
    from test_grader_report import small_class

    from grader.cli import main

    course = small_class(tmp_path / "course")
    assert main(["feedback", *args, "--course", str(course.root), "-q"]) == 2
    err = capsys.readouterr().err
    assert needle in err, err
    assert "has no autograded submissions" not in err
    assert not course.feedback.exists()


def test_student_takes_a_class_list_student_with_no_submission(tmp_path, capsys):
    """`--student cy` (on the class list, nothing submitted) writes cy's index saying no
    submission was received, as a run without --student does; `hw --student bo` (bo has only ex
    graded) writes bo's index, hw said not received, and the summary says why there is no page."""
    from test_grader_report import small_class

    from grader.cli import main

    course = small_class(tmp_path / "course")
    assert main(["feedback", "--student", "cy", "--course", str(course.root), "-q"]) == 0
    out = capsys.readouterr().out
    assert sorted(p.relative_to(course.feedback).as_posix()
                  for p in course.feedback.rglob("*") if p.is_file()) == ["cy/index.html"]
    cy = _index(course, "cy")
    assert "No submission of yours has been received for any assignment" in cy, cy
    assert "<li>ex: no submission received</li><li>hw: no submission received</li>" in cy, cy
    assert ("feedback: 1 student(s) with nothing graded have an index that says no submission "
            "was received: cy") in out, out
    assert main(["feedback", "hw", "--student", "bo", "--course", str(course.root), "-q"]) == 0
    out = capsys.readouterr().out
    assert not (course.feedback / "bo" / "ex").exists()     # ex not asked for: no page
    bo = _index(course, "bo")
    assert "<li>ex: 0 / 5" in bo and "<li>hw: no submission received</li>" in bo, bo
    assert ("feedback: no autograded submission of hw from bo, so no page; their index says "
            "what was received") in out, out
    assert "nothing graded" not in out      # bo has ex graded


def test_a_damaged_record_is_skipped_and_said_the_others_get_their_pages(tmp_path, capsys):
    from test_grader_report import small_class

    from grader.feedback import feedback

    course = small_class(tmp_path / "course")
    bad = course.results_path("bo", "ex")
    bad.write_text('{"student": "bo"')
    run = feedback(course, progress=False)
    assert sorted(p.relative_to(course.feedback).as_posix() for p in run.pages) == [
        "amy/ex/feedback.html", "amy/hw/feedback.html"]
    assert run.skipped == [bad]
    assert f"feedback: skipped {bad} (unreadable: JSONDecodeError" in capsys.readouterr().err
    from grader.cli import main

    assert main(["feedback", "--course", str(course.root), "-q"]) == 0
    assert ("feedback: 1 submission(s) skipped, their results.json unreadable (named above); "
            "`tconv-grader autograde --force` rewrites it") in capsys.readouterr().out


def test_the_summary_counts_pages_written_and_unchanged_and_says_what_to_do_next(tmp_path,
                                                                              capsys):
    from test_grader_report import small_class

    from grader.cli import main

    course = small_class(tmp_path / "course")
    argv = ["feedback", "--course", str(course.root), "-q"]
    assert main(argv) == 0
    not_final = ("next: 1 page(s) show a score that is not final (written answers still to grade "
                 "by hand in formgrader: amy/ex); after grading, run feedback again")
    report = f"next: tconv-grader report --course {course.root}"
    cy = ("feedback: 1 student(s) with nothing graded have an index that says no submission was "
          "received: cy")
    assert capsys.readouterr().out.splitlines() == [
        f"feedback: 3 page(s) written, 0 unchanged (already up to date), for 2 student(s) under "
        f"{course.feedback}",
        cy,
        not_final,
        f"next: send each student their folder {course.feedback}/<student>/ (its index.html "
        "links every page of theirs)",
        report]
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"feedback: 0 page(s) written, 3 unchanged (already up to date), for 2 student(s) under "
        f"{course.feedback}",
        cy,
        not_final,
        "next: nothing changed since the last run: no student needs their folder again",
        report]
    _regrade(course, "bo", "ex", 2.0)
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[::3] == [
        f"feedback: 1 page(s) written, 2 unchanged (already up to date), for 2 student(s) under "
        f"{course.feedback}",
        f"next: send the 1 student(s) whose pages changed their folder {course.feedback}/"
        "<student>/ again: bo"]
    assert main([*argv, "--force"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"feedback: 3 page(s) written (--force), 0 unchanged (already up to date), for 2 "
        f"student(s) under {course.feedback}")


def _regrade(course, student: str, assignment: str, points: float) -> None:
    """What autograde does for a submission graded again with a new result: the gradebook's
    auto score and results.json."""
    from grader.gradebook import atomic_write_text, dump_json

    with course.gradebook() as gb:
        gb.find_grade("test_x", assignment, assignment, student).auto_score = points
        gb.db.commit()
    path = course.results_path(student, assignment)
    rec = json.loads(path.read_text())
    cell = rec["notebooks"][assignment]["cells"]["test_x"]
    cell["points"] = points
    cell["tests"] = [_t("x", points > 0, "[x] passed" if points else "[x] expected 1, got 2.")]
    atomic_write_text(path, dump_json(rec))


def _files(folder) -> dict[str, tuple[int, int, bytes]]:
    """``{path under folder: (inode, mtime in ns, bytes)}`` of every page and index."""
    out = {}
    for p in sorted(folder.rglob("*.html")):
        st = p.stat()
        out[p.relative_to(folder).as_posix()] = (st.st_ino, st.st_mtime_ns, p.read_bytes())
    return out


def _age(folder) -> None:
    """Set every page's modification time an hour back, so a rewrite shows even on a file
    system whose clock ticks coarsely."""
    import os

    for p in folder.rglob("*.html"):
        t = p.stat().st_mtime - 3600
        os.utime(p, (t, t))


def _changed(before: dict, after: dict) -> list[str]:
    return sorted(k for k in after if before.get(k) != after[k])


def test_a_second_run_writes_nothing_and_force_writes_everything(tmp_path):
    from test_grader_report import small_class

    from grader.feedback import feedback

    course = small_class(tmp_path / "course")
    first = feedback(course, progress=False)
    assert (len(first.written), len(first.unchanged), len(first.indexes_written)) == (3, 0, 3)
    _age(course.feedback)
    before = _files(course.feedback)
    again = feedback(course, progress=False)
    assert again.pages == first.pages and again.written == [] and again.indexes_written == []
    assert again.unchanged == first.pages and again.changed_students == []
    assert _changed(before, _files(course.feedback)) == []   # same inode, mtime and bytes
    forced = feedback(course, progress=False, force=True)
    assert forced.written == first.pages and forced.unchanged == []
    after = _files(course.feedback)
    assert _changed(before, after) == sorted(before)
    assert all(after[k][2] == before[k][2] for k in before)  # the same content, written anew


def test_a_deleted_or_edited_page_is_written_again(tmp_path):
    from test_grader_report import small_class

    from grader.feedback import feedback

    course = small_class(tmp_path / "course")
    feedback(course, progress=False)
    original = (course.feedback / "amy" / "hw" / "feedback.html").read_bytes()
    (course.feedback / "amy" / "ex" / "feedback.html").unlink()
    (course.feedback / "amy" / "hw" / "feedback.html").write_text("edited by hand")
    run = feedback(course, progress=False)
    assert [p.relative_to(course.feedback).as_posix() for p in run.written] == [
        "amy/ex/feedback.html", "amy/hw/feedback.html"]
    assert (course.feedback / "amy" / "hw" / "feedback.html").read_bytes() == original


def test_a_page_with_no_results_behind_it_is_removed_and_said(tmp_path, capsys):
    """A withdrawn submission (its autograded folder deleted): its page goes, the student's
    index no longer links it, the summary names it and the student to send their folder to;
    a run for one assignment removes only that assignment's pages."""
    import shutil

    from test_grader_report import small_class

    from grader.cli import main
    from grader.feedback import feedback

    course = small_class(tmp_path / "course")
    feedback(course, progress=False)
    assert '<a href="ex/feedback.html">ex</a>' in _index(course, "bo")
    for s, a in (("amy", "hw"), ("bo", "ex")):      # bo's only submission
        shutil.rmtree(course.results_path(s, a).parent)
    (course.feedback / "amy" / "hw" / "notes.txt").write_text("the instructor's own file")
    run = feedback(course, assignments=["ex"], progress=False)
    assert [p.relative_to(course.feedback).as_posix() for p in run.removed] == [
        "bo/ex/feedback.html"]
    assert not (course.feedback / "bo" / "ex").exists()
    assert (course.feedback / "amy" / "hw" / "feedback.html").exists()   # not asked for
    # bo's ex is still under submitted/: not graded yet (autograde grades it again), not absent
    assert run.absent == ["cy"] and "bo" in run.changed_students
    assert run.to_grade == {"bo/ex": "new"}         # (amy/hw too, not asked for)
    bo = _index(course, "bo")
    assert "<li>ex: not graded yet</li>" in bo and "<a href" not in bo, bo
    capsys.readouterr()
    assert main(["feedback", "--course", str(course.root), "-q"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert ("feedback: 1 page(s) removed, no submission behind them any more (withdrawn: its "
            "submitted or autograded folder deleted; the index no longer links them; delete "
            "them where you sent them too): amy/hw") in out, out
    assert not (course.feedback / "amy" / "hw" / "feedback.html").exists()
    assert (course.feedback / "amy" / "hw" / "notes.txt").exists()   # its folder kept for it
    amy = _index(course, "amy")
    assert "hw/feedback.html" not in amy and "<li>hw: not graded yet</li>" in amy, amy
    assert f"their folder {course.feedback}/<student>/ again: amy" in out[-2], out
    assert main(["feedback", "--course", str(course.root), "-q"]) == 0
    out = capsys.readouterr().out
    assert "removed" not in out and "nothing changed since the last run" in out, out


def test_a_student_of_the_class_list_with_no_submission_gets_an_index(tmp_path, capsys):
    """cy is in the gradebook (the class list) and submitted nothing: an index that says no
    submission was received for each assignment; a run for other students leaves it alone, and
    an id that cannot name a folder gets a warning, no file."""
    from test_grader_report import small_class

    from grader.feedback import feedback

    course = small_class(tmp_path / "course")
    with course.gradebook() as gb:
        gb.add_student("../zed")
        gb.db.commit()
    run = feedback(course, progress=False)
    assert run.absent == ["cy"] and run.everyone == ["amy", "bo", "cy"]
    cy = _index(course, "cy")
    assert ("<h1>Feedback for cy</h1><p>No submission of yours has been received for any "
            "assignment, so there is no feedback page yet.</p><ul><li>ex: no submission "
            "received</li><li>hw: no submission received</li></ul>") in cy, cy
    assert sorted(p.name for p in (course.feedback / "cy").iterdir()) == ["index.html"]
    assert "'../zed' is not a plain identifier" in capsys.readouterr().err
    assert not (course.root / "zed").exists()
    assert sorted(p.name for p in course.feedback.iterdir()) == ["amy", "bo", "cy"]
    (course.feedback / "cy" / "index.html").unlink()
    run = feedback(course, students=["amy"], progress=False)
    assert run.everyone == ["amy"] and run.absent == []
    assert not (course.feedback / "cy" / "index.html").exists()


def test_a_regrade_or_a_hand_grade_rewrites_only_that_students_pages(tmp_path):
    from test_grader_report import small_class

    from grader.feedback import feedback

    course = small_class(tmp_path / "course")
    feedback(course, progress=False)
    _age(course.feedback)
    before = _files(course.feedback)
    _regrade(course, "bo", "ex", 2.0)            # bo's ex graded again: now passes
    run = feedback(course, progress=False)
    assert run.changed_students == ["bo"]
    after = _files(course.feedback)
    assert _changed(before, after) == ["bo/ex/feedback.html", "bo/index.html"]
    assert "Score: <b>2 / 5</b>" in after["bo/ex/feedback.html"][2].decode()
    assert b'<a href="ex/feedback.html">ex</a>: 2 / 5' in after["bo/index.html"][2]
    # a hand grade of amy's written answer in ex (what formgrader writes): her ex page and
    # index show the final score; her hw page and bo's pages stay as they were
    with course.gradebook() as gb:
        g = gb.find_grade("why", "ex", "ex", "amy")
        g.manual_score, g.needs_manual_grade = 3.0, False   # as formgrader saves it
        gb.db.commit()
    run = feedback(course, progress=False)
    assert run.changed_students == ["amy"] and run.provisional == []
    final = _files(course.feedback)
    assert _changed(after, final) == ["amy/ex/feedback.html", "amy/index.html"]
    assert "Score: <b>5 / 5</b>" in final["amy/ex/feedback.html"][2].decode()


def test_formgraders_comments_extra_credit_and_test_overrides_reach_the_page(tmp_path):
    """What an instructor does in formgrader reaches the student: amy's written answer 2.5 of
    3 with 1 extra credit and a comment, bo's autograded test cell set by hand from 0 to 1.5
    and a comment on his blank answer. Before, the page showed no comment at all and dropped
    the extra credit (amy: 4.5 on the page, 5.5 in report's totals and formgrader); a page with
    only a comment added was not even rewritten."""
    from test_grader_report import small_class

    from grader.feedback import feedback
    from grader.report import report

    course = small_class(tmp_path / "course")
    feedback(course, progress=False)
    _age(course.feedback)
    before = _files(course.feedback)
    with course.gradebook() as gb:   # as formgrader's API saves a grade and a comment
        g = gb.find_grade("why", "ex", "ex", "amy")
        g.manual_score, g.extra_credit, g.needs_manual_grade = 2.5, 1.0, False
        gb.find_comment("why", "ex", "ex", "amy").manual_comment = "Clear: x < y & z."
        g = gb.find_grade("test_x", "ex", "ex", "bo")
        g.manual_score, g.extra_credit, g.needs_manual_grade = 1.5, None, False
        gb.find_comment("why", "ex", "ex", "bo").manual_comment = "Left blank."
        gb.db.commit()
    run = feedback(course, progress=False)
    after = _files(course.feedback)
    assert _changed(before, after) == ["amy/ex/feedback.html", "amy/index.html",
                                       "bo/ex/feedback.html", "bo/index.html"]
    amy, bo = after["amy/ex/feedback.html"][2].decode(), after["bo/ex/feedback.html"][2].decode()
    assert "Score: <b>5.5 / 5</b>" in amy and "2.5 / 3 + 1 extra credit" in _why_row(amy)
    assert "Comments from your instructor" in amy and "ex, why: Clear: x &lt; y &amp; z." in amy
    assert "Score: <b>1.5 / 5</b>" in bo and "1.5 / 2 (set by hand; the tests gave 0)" in bo
    assert "ex, why: Left blank." in bo
    assert b"ex/feedback.html\">ex</a>: 5.5 / 5" in after["amy/index.html"][2]
    assert run.provisional == []
    totals = _totals_of(report(course, progress=False)["out"])   # the same totals
    assert (totals[("amy", "ex")], totals[("bo", "ex")]) == ("5.5", "1.5")


def _totals_of(out) -> dict:
    import csv

    with (out / "totals.csv").open() as fh:
        return {(r["student"], r["assignment"]): r["score"] for r in csv.DictReader(fh)}


def test_an_unreadable_notebook_is_final_0_on_the_page_and_in_the_report(tmp_path, capsys):
    """bo's ex notebook could not be read: no written answer waits for a hand grade, so the
    page, the index and totals.csv say 0, final (they said 'not final', 'provisional', while
    written.txt said nothing to grade), and report names the submission to ask for again."""
    import csv

    from test_grader_report import small_class, unreadable_bo

    from grader.cli import main

    course = unreadable_bo(small_class(tmp_path / "course"), read=False)
    assert main(["feedback", "--course", str(course.root), "-q"]) == 0
    page = (course.feedback / "bo" / "ex" / "feedback.html").read_text()
    assert "Score: <b>0 / 5</b>" in page
    assert "0 / 3</td><td>written answer: the notebook could not be read" in _why_row(page)
    assert '<a href="ex/feedback.html">ex</a>: 0 / 5</li>' in _index(course, "bo")
    assert "formgrader: amy/ex)" in capsys.readouterr().out   # bo's page is not provisional
    assert main(["report", "--course", str(course.root), "-q"]) == 0
    out = capsys.readouterr().out
    with (course.reports / "totals.csv").open() as fh:
        bo = next(r for r in csv.DictReader(fh) if (r["student"], r["assignment"]) == ("bo", "ex"))
    assert (bo["pending_manual"], bo["provisional"]) == ("0", "no"), bo
    assert "give a hand grade in formgrader (bo/ex)" in out, out
    assert "   1 to grade    0 blank    0 graded    1 unread    ex/ex/why" in (
        course.reports / "written.txt").read_text()


def test_a_missing_instructor_source_is_warned_once_per_assignment(tmp_path, capsys):
    from test_grader_report import small_class

    from grader.feedback import feedback

    course = small_class(tmp_path / "course")
    feedback(course, progress=False)
    err = capsys.readouterr().err
    for a in ("ex", "hw"):
        warning = (f"feedback: warning: no instructor source {course.solutions / a / a}.ipynb "
                   "(FileNotFoundError): its pages are not scrubbed of hidden test text a second "
                   "time (autograde did so once); pass the --solutions autograde was given")
        assert err.count(warning) == 1, err


def test_errors_of_the_students_own_cells_are_told_after_hidden_tests_only_by_name():
    from types import SimpleNamespace as Run

    from grader.autograde import code_errors

    specs = {"test_a": {"has_hidden": False}, "test_b": {"has_hidden": True}}
    runs = [Run(index=1, grade_id="setup", status="ok", error=None),
            Run(index=2, grade_id="impl", status="error",
                error="SyntaxError: invalid syntax (line 1)\n  def f(:"),
            Run(index=3, grade_id="test_a", status="error", error="NameError: name 'f'"),
            Run(index=4, grade_id="test_b", status="ok", error=None),
            Run(index=5, grade_id="impl2", status="error", error="ValueError: 1, 2, 3 seen"),
            Run(index=6, grade_id=None, status="error", error="MyError: secret")]
    assert code_errors(runs, specs) == ["cell impl: SyntaxError: invalid syntax (line 1)",
                                        "cell impl2: ValueError", "cell #6: an exception"]


def test_the_page_lists_the_errors_of_the_students_own_cells():
    rec = _record(0.0)
    rec["notebooks"]["ex"]["code_errors"] = ["cell impl: SyntaxError: invalid <syntax>"]
    page = render(rec, {})
    assert ("<b>Errors in your code cells</b> (a test below that stops with NameError or the "
            "like may come from one of these)<ul><li>ex, cell impl: SyntaxError: invalid "
            "&lt;syntax&gt;</li></ul>") in page
    assert "Errors in your code cells" not in render(_record(0.0), {})


def test_a_syntax_error_reaches_the_page_and_only_the_fixed_resubmission_gets_a_new_one(
        tmp_path, capsys):
    """The whole loop on real submissions: a syntax error reaches results.json and the page;
    the student sends the notebook again, fixed; autograde regrades only it, and feedback
    writes only that student's page and index (the new score, the new submission's time)."""
    import nbformat
    from grader_class import sandbox_args
    from gradingbatch import ASSIGNMENT, SOLUTIONS, make_course, run_autograde, submission

    from grader.cli import main

    course = tmp_path / "course"
    make_course(course, ["syntax", "correct"])
    db = f"sqlite:///{course / 'gradebook.db'}"
    run_autograde(course, db, *sandbox_args())
    rec = json.loads((course / "autograded" / "st000_syntax" / ASSIGNMENT / "results.json")
                     .read_text())
    errors = rec["notebooks"][ASSIGNMENT]["code_errors"]
    assert len(errors) == 1 and errors[0].startswith("cell double_impl: SyntaxError"), errors
    argv = ["feedback", "--course", str(course), "--solutions", str(SOLUTIONS), "-q"]
    assert main(argv) == 0
    page = course / "feedback" / "st000_syntax" / ASSIGNMENT / "feedback.html"
    assert "cell double_impl: SyntaxError" in page.read_text()
    assert "Score: <b>0 / 3</b>" in page.read_text()
    folder = course / "feedback"
    _age(folder)
    before = _files(folder)
    again = course / "submitted" / "st000_syntax" / ASSIGNMENT   # the resubmission, collected
    nbformat.write(submission("correct"), again / f"{ASSIGNMENT}.ipynb")
    (again / "timestamp.txt").write_text("2026-11-21 09:30:00.000000 UTC\n")
    _, out = run_autograde(course, db, *sandbox_args())
    assert "graded 1 submission(s)" in out, out
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("feedback: 1 page(s) written, 1 unchanged")
    assert _changed(before, _files(folder)) == [f"st000_syntax/{ASSIGNMENT}/feedback.html",
                                                "st000_syntax/index.html"]
    text = page.read_text()
    assert "Score: <b>3 / 3</b>" in text and "SyntaxError" not in text
    assert "Graded from your submission of 2026-11-21 09:30:00 UTC." in text


def test_the_executed_notebook_says_why_a_cell_is_empty_or_stopped():
    """What an instructor opens for a flagged submission: a time-out reads as one, and a cell
    that never ran says so instead of an error named 'not_run'."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from grader.autograde import _executed_notebook

    nb = nbformat.writes(new_notebook(cells=[new_code_cell(s) for s in ("a", "b", "c", "d")]))
    outputs = {"0": {"status": "error", "error": "ValueError: bad k", "output": ""},
               "1": {"status": "timeout", "error": "cell timed out", "output": "hi\n"},
               "2": {"status": "not_run", "error": None, "output": ""},
               "3": {"status": "ok", "error": None, "output": ""}}
    cells = _executed_notebook(nb, outputs).cells
    assert [(o.ename, o.evalue) for o in cells[0].outputs] == [("ValueError", "bad k")]
    assert cells[1].outputs[0].text == "hi\n"
    assert (cells[1].outputs[1].ename, cells[1].outputs[1].evalue) == ("TimeoutError",
                                                                       "cell timed out")
    assert [o.output_type for o in cells[2].outputs] == ["stream"]
    assert cells[2].outputs[0].text.startswith("[autograder] this cell did not run (an earlier "
                                               "cell stopped the notebook")
    assert cells[3].outputs == []


@pytest.mark.parametrize("flag, why", [
    ("wrong file name: found ex_final.ipynb, expected ex.ipynb (scored 0)",
     "no notebook was found under the expected name"),
    ("missing notebook ex.ipynb (scored 0)", "no notebook was found under the expected name"),
    ("ex.ipynb is not valid JSON (Expecting value) (scored 0)", "the notebook could not be read"),
])
def test_a_written_answer_never_read_says_whether_the_notebook_was_missing_or_unreadable(
        flag, why):
    """A notebook handed in under another name was readable: its page must not tell the
    student it 'could not be read' (it said so for a wrong file name too)."""
    record = _record(0.0)
    record["notebooks"]["ex"].update(read=False, flags=[flag])
    row = _why_row(render(record, {}))
    assert f"0 / 3</td><td>written answer: {why} (see the notes from the grader)" in row, row
    other = {"no notebook was found under the expected name",
             "the notebook could not be read"} - {why}
    assert other.pop() not in row


def test_a_notebook_under_another_name_is_not_called_unreadable(tmp_path):
    """The tests of a notebook handed in under another name say it was not found under the
    expected name (they said 'the notebook could not be read', which it could); an unreadable
    one still says so."""
    from gradingbatch import ASSIGNMENT, SOLUTIONS, make_course

    from grader.autograde import autograde
    from grader.gradebook import Course

    make_course(tmp_path, ["correct", "correct"])
    sub = tmp_path / "submitted"
    (sub / "st000_correct" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").rename(
        sub / "st000_correct" / ASSIGNMENT / f"{ASSIGNMENT}_final.ipynb")
    (sub / "st001_correct" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").write_text('{"cells": [')
    course = Course.open(tmp_path, None, SOLUTIONS)
    autograde(course, jobs=1, sandbox=False, progress=False)

    def messages(student):
        rec = json.loads(course.results_path(student, ASSIGNMENT).read_text())
        return [t["message"] for c in rec["notebooks"][ASSIGNMENT]["cells"].values()
                for t in c["tests"] if not t["hidden"]]

    renamed, unreadable = messages("st000_correct"), messages("st001_correct")
    assert renamed and all("not reached: the cell did not run (no notebook was found under "
                           "the expected name; see the notes from the grader)." in m
                           for m in renamed), renamed
    assert unreadable and all("not reached: the cell did not run (the notebook could not be "
                              "read; see the notes from the grader)." in m
                              for m in unreadable), unreadable


def _reported(tmp_path: Path, capsys) -> tuple[dict, str]:
    """Run report and feedback on the course at ``tmp_path``: bo's totals.csv row and page."""
    import csv

    from grader.cli import main

    assert main(["report", "--course", str(tmp_path), "-q"]) == 0
    assert main(["feedback", "--course", str(tmp_path), "-q"]) == 0
    capsys.readouterr()
    with (tmp_path / "reports" / "totals.csv").open() as fh:
        bo, = list(csv.DictReader(fh))
    return bo, (tmp_path / "feedback" / "bo" / "fx_scatter" / "feedback.html").read_text()


def _bo_resubmits_zeros(course: Any, nb: Any, folder: Path) -> None:
    """bo resubmits a scatter_1d that returns zeros (a later timestamp), and it is autograded."""
    import nbformat

    from grader.autograde import autograde

    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "scatter_1d":
            cell.source = ("def scatter_1d(x, w, stride):\n"
                           "    return np.zeros((len(x) - 1) * stride + len(w))\n")
    nbformat.write(nb, folder / "fx_scatter.ipynb")
    (folder / "timestamp.txt").write_text("2026-12-03 10:00:00.000000 UTC\n")
    autograde(course, jobs=1, sandbox=False, progress=False)


def _bo_graded(tmp_path: Path):
    """bo's submission of the fixture solution (solution markers stripped), collected on
    2026-12-01 and autograded: ``(course, notebook, its submitted folder)``."""
    import nbformat

    from grader.autograde import autograde
    from grader.gradebook import Course

    solutions = Path(__file__).parent / "fixtures" / "grader" / "solutions"
    nb = nbformat.read(solutions / "fx_scatter" / "fx_scatter.ipynb", as_version=4)
    for cell in nb.cells:
        cell.source = "\n".join(ln for ln in cell.source.splitlines() if "### " not in ln)
    folder = tmp_path / "submitted" / "bo" / "fx_scatter"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "fx_scatter.ipynb")
    (folder / "timestamp.txt").write_text("2026-12-01 10:00:00.000000 UTC\n")
    course = Course.open(tmp_path, None, solutions)
    autograde(course, jobs=1, sandbox=False, progress=False)
    return course, nb, folder


def test_a_hand_grade_stands_for_its_answer_and_a_changed_answer_is_graded_again(tmp_path,
                                                                                capsys):
    """bo's written answer is graded by hand (0.5 of 1). A --force regrade of the same answer
    keeps the hand grade, final; a resubmission that changes the answer leaves it waiting for
    a new hand grade on the page and in the reports (formgrader's 'needs manual grade'). It
    stayed final: scores.csv got the earlier answer's hand grade for an answer nobody read."""

    import nbformat

    from grader.autograde import autograde

    course, nb, folder = _bo_graded(tmp_path)
    with course.gradebook() as gb:
        g = gb.find_grade("explain", "fx_scatter", "fx_scatter", "bo")
        g.manual_score, g.needs_manual_grade = 0.5, False     # as formgrader saves it
        gb.find_comment("explain", "fx_scatter", "fx_scatter", "bo").manual_comment = "Vague."
        gb.db.commit()
    page = tmp_path / "feedback" / "bo" / "fx_scatter" / "feedback.html"

    def state() -> tuple[str, str, bool, str]:
        bo, page = _reported(tmp_path, capsys)
        written = (tmp_path / "reports" / "written.txt").read_text()
        return bo["score"], bo["provisional"], "not final" in page, written

    assert state()[:3] == ("5.5", "no", False)
    autograde(course, force=True, jobs=1, sandbox=False, progress=False)
    assert state()[:3] == ("5.5", "no", False)              # the same answer: still final
    assert "fx_scatter, explain: Vague." in page.read_text()

    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "explain":
            cell.source = "A different answer, handed in late."
    nbformat.write(nb, folder / "fx_scatter.ipynb")
    (folder / "timestamp.txt").write_text("2026-12-03 10:00:00.000000 UTC\n")
    autograde(course, jobs=1, sandbox=False, progress=False)
    score, provisional, not_final, written = state()
    assert (score, provisional, not_final) == ("5", "yes", True)
    assert "1 to grade" in written and "0 graded" in written, written
    assert "Vague." not in page.read_text()   # it was said of the earlier answer
    with course.gradebook() as gb:
        assert gb.find_grade("explain", "fx_scatter", "fx_scatter", "bo").needs_manual_grade


def test_a_score_set_by_hand_on_a_test_cell_stands_until_the_tests_give_other_points(tmp_path,
                                                                                    capsys):
    """bo's test_basic (2 of 2 by the tests) is set to 1.5 by hand in formgrader. A --force
    regrade of the same code keeps it, and formgrader has nothing to grade (before: every
    regrade marked it "needs manual grade"). A resubmission whose code the tests give 0 there
    counts the tests' 0 on the page and in the reports, provisional until it is looked at
    again, and formgrader marks it "needs manual grade" (before: the page and totals.csv kept
    1.5 for code that fails the test)."""


    from grader.autograde import autograde
    from grader.cli import main

    course, nb, folder = _bo_graded(tmp_path)
    with course.gradebook() as gb:   # as formgrader's API saves them
        g = gb.find_grade("test_basic", "fx_scatter", "fx_scatter", "bo")
        g.manual_score, g.needs_manual_grade = 1.5, False
        g = gb.find_grade("explain", "fx_scatter", "fx_scatter", "bo")
        g.manual_score, g.needs_manual_grade = 1.0, False
        gb.db.commit()

    def state() -> tuple[str, str, str, bool]:
        bo, page = _reported(tmp_path, capsys)
        row = page[page.index("<td>test_basic</td>"):].split("</tr>")[0]
        with course.gradebook() as gb:
            again = gb.find_grade("test_basic", "fx_scatter", "fx_scatter", "bo")
            return bo["score"], bo["provisional"], row, again.needs_manual_grade

    score, provisional, row, again = state()
    assert (score, provisional, again) == ("5.5", "no", False)
    assert "1.5 / 2 (set by hand; the tests gave 2)" in row
    autograde(course, force=True, jobs=1, sandbox=False, progress=False)
    assert state() == (score, provisional, row, False)       # the same code: it stands

    _bo_resubmits_zeros(course, nb, folder)
    score, provisional, row, again = state()
    assert (score, provisional, again) == ("1", "yes", True)  # only the written answer's 1
    assert "0 / 2 (the tests' points; your instructor scored this cell by hand" in row, row
    # report names it, in written.txt and in its next steps, as formgrader lists it
    written = (tmp_path / "reports" / "written.txt").read_text()
    assert "whose tests give other points since" in written
    assert "  bo/fx_scatter/fx_scatter/test_basic" in written.splitlines()
    assert main(["report", "--course", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 test cell(s) you scored by hand now get other points" in out, out


def test_a_comment_on_code_changed_since_is_of_the_earlier_code(tmp_path, capsys):
    """A formgrader comment on bo's scatter_1d code is on his page, and stays there through a
    --force regrade of the same code. He resubmits other code: the comment was said of the
    earlier code, so the page leaves it off (as one on a changed written answer) and the
    summary names it, also after a --force regrade; changed in formgrader, it is shown again.
    Before, the new page showed the comment on code he no longer has."""

    from grader.autograde import autograde
    from grader.cli import main

    course, nb, folder = _bo_graded(tmp_path)
    say = "Loop over the stride: right, but np.add.at is simpler."

    def comment(text: str) -> None:   # as formgrader's API saves it
        with course.gradebook() as gb:
            gb.find_comment("scatter_1d", "fx_scatter", "fx_scatter", "bo").manual_comment = text
            gb.db.commit()

    def shown() -> tuple[bool, str]:
        assert main(["feedback", "--course", str(tmp_path), "-q"]) == 0
        out = capsys.readouterr().out
        page = (tmp_path / "feedback" / "bo" / "fx_scatter" / "feedback.html").read_text()
        return "np.add.at" in page, out

    comment(say)
    assert shown()[0]
    autograde(course, force=True, jobs=1, sandbox=False, progress=False)
    assert shown()[0]                                  # the same code: it stands

    _bo_resubmits_zeros(course, nb, folder)
    on_page, out = shown()
    assert not on_page
    assert ("next: 1 comment(s) you wrote in formgrader are not on the pages: the student "
            "changed that answer since (a resubmission). Grade the answer again (a written "
            "answer), or change the comment, in formgrader to show it, then run feedback again: "
            "bo/fx_scatter/fx_scatter/scatter_1d") in out, out
    autograde(course, force=True, jobs=1, sandbox=False, progress=False)
    assert not shown()[0]                              # still of the earlier code
    comment(say + " Now it returns zeros: see test_basic.")
    on_page, out = shown()
    assert on_page and "comment(s) you wrote" not in out, out


def test_a_hand_score_of_earlier_code_waits_and_every_total_says_so(tmp_path, capsys):
    """bo's test_basic was set to 1.5 by hand and his written answer graded 1; he resubmits
    code the tests give 0 there. Formgrader marks the cell 'needs manual grade' (its own total
    still counts the 1.5), report's written.txt listed it as waiting, yet totals.csv and
    scores.csv said final (provisional no, pending_manual 0), the page and index showed '1 / 6'
    as final, report's upload step said 'every total is final' and feedback's summary did not
    name it. Now the tests' points count and every total says it is not final, naming what
    waits; 'Mark graded' in formgrader (the same score saved again) makes it final."""
    import csv

    from grader.cli import main

    course, nb, folder = _bo_graded(tmp_path)
    with course.gradebook() as gb:   # as formgrader's API saves them
        for cell, points in (("test_basic", 1.5), ("explain", 1.0)):
            g = gb.find_grade(cell, "fx_scatter", "fx_scatter", "bo")
            g.manual_score, g.needs_manual_grade = points, False
        gb.db.commit()
    _bo_resubmits_zeros(course, nb, folder)
    assert main(["report", "--course", str(tmp_path), "-q"]) == 0
    out = capsys.readouterr().out
    bo = _reported(tmp_path, capsys)[0]
    assert (bo["score"], bo["pending_manual"], bo["provisional"]) == ("1", "1", "yes"), bo
    with (tmp_path / "reports" / "scores.csv").open() as fh:
        assert [(r["total"], r["provisional"]) for r in csv.DictReader(fh)] == [("1", "yes")]
    assert ("next: upload " in out and "1 student(s) in it have a provisional total (written "
            "answers still to grade, or test cells scored by hand to look at again)") in out, out
    assert ("test cell(s) you scored by hand now get other points from the tests (a "
            "resubmission), which count, provisional, until you set a score again") in out, out
    assert main(["feedback", "--course", str(tmp_path), "-q"]) == 0
    out = capsys.readouterr().out
    assert ("next: 1 test cell(s) you scored by hand now get other points from the tests (a "
            "resubmission): the pages count the tests' points, not final, until you set a score "
            "again in formgrader (needs manual grade; 'Mark graded' keeps the earlier score): "
            "bo/fx_scatter/fx_scatter/test_basic") in out, out
    assert "(written answers still to grade by hand, or test cells scored by hand" in out, out
    waits = "1 / 6 (not final: 1 test cell scored by hand earlier still to be looked at again)"
    page = (tmp_path / "feedback" / "bo" / "fx_scatter" / "feedback.html").read_text()
    assert f"Score: <b>{waits}</b>" in page, page
    assert waits in (tmp_path / "feedback" / "bo" / "index.html").read_text()

    with course.gradebook() as gb:    # formgrader's 'Mark graded': the same score saved again
        g = gb.find_grade("test_basic", "fx_scatter", "fx_scatter", "bo")
        g.manual_score, g.needs_manual_grade = 1.5, False
        gb.db.commit()
    bo, page = _reported(tmp_path, capsys)
    assert (bo["score"], bo["provisional"]) == ("2.5", "no"), bo
    assert "Score: <b>2.5 / 6</b>" in page


def test_keep_comments_shows_a_comment_of_earlier_code_that_still_applies(tmp_path, capsys):
    """bo's comment on scatter_1d is left off his page after he resubmits other code. The
    instructor reads the new code and the comment still applies: the only way to show it was
    to edit its wording in formgrader. Now `feedback --keep-comments bo/fx_scatter` (or
    .../NOTEBOOK/CELL) shows it as it stands, through later regrades of the same code, until
    the code changes again; the summary offers the command; bad values are usage errors."""
    import nbformat

    from grader.autograde import autograde
    from grader.cli import main

    course, nb, folder = _bo_graded(tmp_path)
    say = "Loop over the stride: right, but np.add.at is simpler."
    with course.gradebook() as gb:   # as formgrader's API saves it
        gb.find_comment("scatter_1d", "fx_scatter", "fx_scatter", "bo").manual_comment = say
        gb.db.commit()
    _bo_resubmits_zeros(course, nb, folder)
    argv = ["feedback", "--course", str(tmp_path), "-q"]
    page = tmp_path / "feedback" / "bo" / "fx_scatter" / "feedback.html"
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "np.add.at" not in page.read_text()
    cell = "bo/fx_scatter/fx_scatter/scatter_1d"
    assert ("next: if you read the new answer and a comment still applies as written, show it "
            f"as it stands: tconv-grader feedback --course {tmp_path} --keep-comments {cell} "
            "(repeatable; STUDENT/ASSIGNMENT keeps all of a submission's)") in out, out

    for bad, why in [("bo", "--keep-comments must be STUDENT/ASSIGNMENT or "
                            "STUDENT/ASSIGNMENT/NOTEBOOK/CELL"),
                     ("amy/fx_scatter", "--keep-comments must name an autograded submission"),
                     ("bo/fx_scatter/fx_scatter/explain", "--keep-comments must name a comment "
                      "left off the pages as said of an earlier answer; got "
                      f"'bo/fx_scatter/fx_scatter/explain' (of bo/fx_scatter: {cell})")]:
        assert main([*argv, "--keep-comments", cell, "--keep-comments", bad]) == 2, bad
        assert why in capsys.readouterr().err
    assert "np.add.at" not in page.read_text()      # a bad value: nothing kept, not even cell

    assert main([*argv, "--keep-comments", "bo/fx_scatter"]) == 0
    out = capsys.readouterr().out
    assert f"feedback: 1 comment(s) said of an earlier answer kept as they stand " \
           f"(--keep-comments): {cell}" in out, out
    assert f"fx_scatter, scatter_1d: {say}" in page.read_text()
    assert "comment(s) you wrote" not in out, out
    autograde(course, force=True, jobs=1, sandbox=False, progress=False)
    assert main(argv) == 0                          # the same code regraded: still shown
    assert "np.add.at" in page.read_text()
    for c in nb.cells:                              # other code again: of the earlier code
        if c.metadata.get("nbgrader", {}).get("grade_id") == "scatter_1d":
            c.source = "def scatter_1d(x, w, stride):\n    return None\n"
    nbformat.write(nb, folder / "fx_scatter.ipynb")
    autograde(course, jobs=1, sandbox=False, progress=False)
    assert main(argv) == 0
    assert "np.add.at" not in page.read_text()


def test_a_kept_comment_on_a_changed_written_answer_waits_for_its_hand_grade(tmp_path, capsys):
    """bo's written answer, graded with a comment, changes in a resubmission. --keep-comments
    on it says the comment still waits for the answer's hand grade (and what to do); formgrader's
    'Mark graded' (the same grade saved again) shows it."""
    import nbformat

    from grader.autograde import autograde
    from grader.cli import main

    course, nb, folder = _bo_graded(tmp_path)
    with course.gradebook() as gb:   # as formgrader's API saves them
        g = gb.find_grade("explain", "fx_scatter", "fx_scatter", "bo")
        g.manual_score, g.needs_manual_grade = 0.5, False
        gb.find_comment("explain", "fx_scatter", "fx_scatter", "bo").manual_comment = "Vague."
        gb.db.commit()
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == "explain":
            c.source = "A different answer, handed in late."
    nbformat.write(nb, folder / "fx_scatter.ipynb")
    autograde(course, jobs=1, sandbox=False, progress=False)
    argv = ["feedback", "--course", str(tmp_path), "-q"]
    page = tmp_path / "feedback" / "bo" / "fx_scatter" / "feedback.html"
    assert main(argv) == 0
    assert "--keep-comments" not in capsys.readouterr().out   # it would not show it
    assert main([*argv, "--keep-comments", "bo/fx_scatter/fx_scatter/explain"]) == 0
    out = capsys.readouterr().out
    assert ("feedback: 1 of them still wait for their answer's hand grade (the written answer "
            "changed): grade it again in formgrader ('Mark graded' keeps the earlier grade), "
            "then run feedback again: bo/fx_scatter/fx_scatter/explain") in out, out
    assert "Vague." not in page.read_text()
    with course.gradebook() as gb:    # 'Mark graded'
        gb.find_grade("explain", "fx_scatter", "fx_scatter", "bo").needs_manual_grade = False
        gb.db.commit()
    assert main(argv) == 0
    assert "fx_scatter, explain: Vague." in page.read_text()
