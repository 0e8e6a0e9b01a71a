"""``tconv-grader feedback --course DIR``: one HTML page per student and assignment.

Written to ``<course>/feedback/<student>/<assignment>/feedback.html`` (+ an ``index.html`` per
student, listing every assignment of the gradebook: its score, or "no submission received"; every
student of the gradebook gets one, a student of the class list who submitted nothing too) from the
autograder's ``results.json`` and the gradebook's scores (manual grades included when present).
Each test shows its outcome and message, and errors raised by the student's own code cells are
listed above the tests (a later test's NameError often starts there); hidden tests show only
"hidden test passed" / "hidden test failed", several in a cell one line for all of them ("2 of 5
hidden tests failed"): their names, source and values never reach the page. A
visible test that fails shows what was expected, what came back and its hint, except in a cell that
also runs hidden tests: there the student's code may have seen the hidden source, so nothing it
produced (answer, error text) is echoed. As a last line of defence every text on the page is
scrubbed of runs of hidden test source (:func:`grader.autograde.scrub_hidden`; the autograder
already did so when it wrote ``results.json``).

A run is incremental: every page is rendered again (from the results, the gradebook's grades, the
instructor source and this module), but written only when its bytes differ from the page on disk,
so a page nobody's grade changed keeps its file and modification time (a sync to students sends
only what changed); ``--force`` writes every page. A page with no submission behind it any more
(withdrawn: its submitted or autograded folder deleted) is removed, and the summary says so.
"""

from __future__ import annotations

import html
import json
import re
import sys
from dataclasses import dataclass, field
from glob import escape as glob_escape
from pathlib import Path

from grader.gradebook import (
    Course,
    UsageError,
    atomic_write_text,
    comment_hash,
    dump_json,
    next_command,
)
from grader.late import NONE as NO_PENALTY
from grader.late import Lateness, Rule, lateness
from grader.late import apply as apply_penalty

CSS = """body{font-family:system-ui,sans-serif;max-width:56em;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3em .5em;
text-align:left;vertical-align:top}.pass{color:#17663a}.fail{color:#a0141e}
.flag{background:#fff4d6;padding:.5em 1em;border-left:4px solid #e0a800}"""


#: ``(manual, blank, extra, review)`` of one submission: its hand grades by ``(notebook,
#: cell)``, the cells nbgrader scored 0 on its own that nobody has graded by hand (among written
#: answers, those left exactly as released), formgrader's extra credit by ``(notebook, cell)``,
#: and the test cells whose score set by hand waits to be looked at again (the tests give other
#: points since, a resubmission: the tests' points count, and the total is not final)
HandGrades = tuple[dict[tuple[str, str], float], set[tuple[str, str]],
                   dict[tuple[str, str], float], set[tuple[str, str]]]
NO_GRADES: HandGrades = ({}, set(), {}, set())


def _hand_grades_of(rows) -> HandGrades:
    """:data:`HandGrades` of one submission's ``(notebook, cell, auto_score, manual_score,
    needs_manual_grade, cell_type, extra_credit)``: a hand grade that needs grading again
    (autograde: a written answer changed since, or tests that give a test cell other points
    since, a resubmission) is no hand grade yet, as in ``report``, and its extra credit waits
    with it. Extra credit counts where nbgrader's score counts it: on a cell with a hand grade
    or an auto score."""
    stale = _stale(rows)
    manual = {(nb, cell): float(m) for nb, cell, _, m, _, _, _ in rows
              if m is not None and (nb, cell) not in stale}
    blank = {(nb, cell) for nb, cell, auto, m, _, _, _ in rows
             if m is None and auto is not None and auto == 0}
    extra = {(nb, cell): float(x) for nb, cell, auto, m, _, _, x in rows
             if x and (m is not None or auto is not None) and (nb, cell) not in stale}
    review = {(nb, cell) for nb, cell, _, _, _, kind, _ in rows
              if (nb, cell) in stale and kind == "code"}
    return manual, blank, extra, review


def _stale(rows) -> set[tuple[str, str]]:
    """The cells of :func:`_hand_grades_of`'s rows whose hand grade needs grading again."""
    return {(nb, cell) for nb, cell, _, m, again, _, _ in rows if m is not None and again}


#: formgrader's comments of one submission: ``[(notebook, cell, text)]``
Comments = list[tuple[str, str, str]]


def comment_waits(cell: tuple[str, str], text: str, stale: set[tuple[str, str]],
                  manual: dict[tuple[str, str], float],
                  earlier: dict[tuple[str, str], str]) -> bool:
    """Whether a formgrader comment on ``cell`` (``(notebook, cell)``) is of an earlier answer
    and stays off the page: its hand grade waits for a new one (``stale``: the answer changed
    since it was graded), or autograde found the answer (code or written) changed while the
    comment read as it does now (``earlier``, from results.json) and the answer has no hand
    grade since (``manual``). Grading the answer again, or changing the comment, shows it."""
    return cell in stale or (earlier.get(cell) == comment_hash(text) and cell not in manual)


def _gradebook_view(course: Course) -> tuple[dict[tuple[str, str], HandGrades], list[str],
                                              set[tuple[str, str]], set[str],
                                              dict[tuple[str, str], Comments], list[str],
                                              set[str], dict[tuple[str, str], Lateness]]:
    """Everything a run needs from the gradebook, in one session and one query of its grades
    (and one of its comments): ``(hand grades by (student, assignment), assignments,
    {(student, assignment)}, students, comments by (student, assignment), comments that
    wait)`` (the assignments it holds a submission of, as ``report`` lists them, every
    submission, every student: the class list once it was imported, as in ``report``'s
    totals, the comments written in formgrader, ``student/assignment/notebook/cell`` of
    those left off the pages, said of an earlier answer: :func:`comment_waits`, and of these
    the ones on a written answer whose hand grade waits too, and how late each late submission
    was: :func:`grader.late.lateness`).
    One connection for the class, not one per page: opening one costs more than a page."""
    from nbgrader import api

    from grader.autograde import _earlier_comments

    rows: dict[tuple[str, str], list] = {}
    with course.gradebook() as gb:
        subs, late = set(), {}
        for a in gb.assignments:
            for sub in a.submissions:
                subs.add((sub.student_id, a.name))
                when = lateness(sub)
                if when is not None:
                    late[(sub.student_id, a.name)] = when
        students = {st.id for st in gb.students}
        query = (gb.db.query(api.SubmittedAssignment.student_id, api.Assignment.name,
                             api.Notebook.name, api.GradeCell.name, api.Grade.auto_score,
                             api.Grade.manual_score, api.Grade.needs_manual_grade,
                             api.GradeCell.cell_type, api.Grade.extra_credit)
                 .select_from(api.Grade)
                 .join(api.GradeCell, api.Grade.cell_id == api.GradeCell.id)
                 .join(api.SubmittedNotebook, api.Grade.notebook_id == api.SubmittedNotebook.id)
                 .join(api.Notebook, api.SubmittedNotebook.notebook_id == api.Notebook.id)
                 .join(api.SubmittedAssignment,
                       api.SubmittedNotebook.assignment_id == api.SubmittedAssignment.id)
                 .join(api.Assignment,
                       api.SubmittedAssignment.assignment_id == api.Assignment.id))
        for student, assignment, *row in query:
            rows.setdefault((student, assignment), []).append(tuple(row))
        comments: dict[tuple[str, str], Comments] = {}
        waiting: list[str] = []
        regrade: set[str] = set()  # of those, the ones whose hand grade waits too
        grades = {key: _hand_grades_of(r) for key, r in rows.items()}
        stale = {key: _stale(r) for key, r in rows.items()}
        earlier: dict[tuple[str, str], dict[tuple[str, str], str]] = {}
        said = (gb.db.query(api.SubmittedAssignment.student_id, api.Assignment.name,
                            api.Notebook.name, api.BaseCell.name, api.Comment.manual_comment)
                .select_from(api.Comment)
                .join(api.BaseCell, api.Comment.cell_id == api.BaseCell.id)
                .join(api.SubmittedNotebook,
                      api.Comment.notebook_id == api.SubmittedNotebook.id)
                .join(api.Notebook, api.SubmittedNotebook.notebook_id == api.Notebook.id)
                .join(api.SubmittedAssignment,
                      api.SubmittedNotebook.assignment_id == api.SubmittedAssignment.id)
                .join(api.Assignment,
                      api.SubmittedAssignment.assignment_id == api.Assignment.id)
                .filter(api.Comment.manual_comment.isnot(None)))
        for student, assignment, nb, cell, text in said:
            key = (student, assignment)
            if not text.strip():
                continue
            if key not in earlier:  # read once per submission with a comment
                earlier[key] = _earlier_comments(course.results_path(student, assignment))
            # a comment on an answer changed since is of the earlier answer: it waits
            if comment_waits((nb, cell), text, stale.get(key, set()),
                             grades.get(key, NO_GRADES)[0], earlier[key]):
                waiting.append(f"{student}/{assignment}/{nb}/{cell}")
                if (nb, cell) in stale.get(key, set()):
                    regrade.add(waiting[-1])
            else:
                comments.setdefault(key, []).append((nb, cell, text.strip()))
    return (grades, sorted({a for _, a in subs}), subs, students,
            {key: sorted(c) for key, c in comments.items()}, sorted(waiting), regrade, late)


def _secrets(course: Course, assignment: str, notebooks) -> dict[str, frozenset[str]]:
    """Hidden-source n-grams of each notebook whose instructor source is at hand."""
    import nbformat

    from grader.autograde import hidden_grams

    out = {}
    for nb_id in notebooks:
        path = course.solutions / assignment / f"{nb_id}.ipynb"
        try:
            out[nb_id] = hidden_grams(nbformat.read(path, as_version=4))
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            print(f"feedback: warning: no instructor source {path} ({type(exc).__name__}): its "
                  "pages are not scrubbed of hidden test text a second time (autograde did so "
                  "once); pass the --solutions autograde was given", file=sys.stderr)
    return out


NOT_REACHED = re.compile(r"\[([^\]]+)\] not reached: (.*)", re.S)


def hidden_summary(passed: int, total: int) -> str:
    """The one line of a test cell's hidden tests: how many there are and how many failed
    (their names, inputs and values are never told)."""
    if total == 1:
        return f"hidden test {'passed' if passed else 'failed'}"
    if passed == total:
        return f"{total} of {total} hidden tests passed"
    return f"{total - passed} of {total} hidden tests failed"


def merged_messages(tests: list[dict]) -> list[tuple[bool, str]]:
    """``(passed, text)`` per line of a test cell's list. A cell's hidden tests share one line
    (:func:`hidden_summary`: only how many passed), at the place of the first of them; visible
    tests that were not reached for the same reason share one line, at the place of the first
    of them (a stub stops every test after it the same way)."""
    lines: list[tuple[bool, str, str | None]] = []    # (passed, text, reason not reached)
    names: dict[str, list[str]] = {}                   # reason -> names of the tests it stopped
    hidden = [t["passed"] for t in tests if t["hidden"]]
    told = False                                       # the hidden tests' line is in lines
    for t in tests:
        m = None if t["passed"] or t["hidden"] else NOT_REACHED.fullmatch(t["message"])
        if t["hidden"]:
            if not told:
                told = True
                lines.append((all(hidden), hidden_summary(sum(map(bool, hidden)), len(hidden)),
                              None))
        elif m is None:
            lines.append((t["passed"], t["message"], None))
        elif m[2] in names:
            names[m[2]].append(m[1])
        else:
            names[m[2]] = [m[1]]
            lines.append((False, m[2], m[2]))
    return [(ok, text if reason is None else
             f"[{', '.join(names[reason])}] not reached: {reason}")
            for ok, text, reason in lines]


def never_read(nb: dict) -> bool:
    """Whether the autograder could not read this notebook of a ``results.json`` (unreadable,
    wrong name, missing): no test ran and there is no written answer in it to grade. Results
    written before ``read`` was recorded: no test cell ran (which also holds for a notebook that
    was read but stopped before its first test, e.g. out of memory in the first cell)."""
    if "read" in nb:
        return not nb["read"]
    cells = nb.get("cells") or {}
    return bool(cells) and all(c.get("status") == "not_run" for c in cells.values()
                               if not c.get("manual"))


def score(record: dict, manual: dict[tuple[str, str], float],
          blank: set[tuple[str, str]] | frozenset = frozenset(),
          extra: dict[tuple[str, str], float] | None = None,
          review: set[tuple[str, str]] | frozenset = frozenset()) -> tuple[float, float, int]:
    """``(points, max points, cells still waiting for the instructor)`` of one submission: the
    autograder's points, overridden by any hand grade, plus formgrader's extra credit (as
    nbgrader's own score); a written answer counts 0 until graded (and is not waiting for a
    grade in a notebook that could not be read: there is no answer). A test cell in ``review``
    (its score set by hand waits to be looked at again) counts the tests' points and waits."""
    extra = extra or {}
    total = max_total = 0.0
    pending = 0
    for nb_id, nb in record["notebooks"].items():
        unread = never_read(nb)
        for gid, cell in nb["cells"].items():
            max_total += cell["max"]
            total += extra.get((nb_id, gid), 0.0)
            given = manual.get((nb_id, gid))
            if cell["manual"]:
                pending += given is None and (nb_id, gid) not in blank and not unread
                total += given or 0.0
            else:
                total += (cell["points"] or 0.0) if given is None else given
                pending += (nb_id, gid) in review
    return total, max_total, pending


def in_review(record: dict, review: set[tuple[str, str]] | frozenset) -> int:
    """How many test cells of ``record`` are in ``review`` (:data:`HandGrades`)."""
    return sum(not cell["manual"] and (nb_id, gid) in review
               for nb_id, nb in record["notebooks"].items() for gid, cell in nb["cells"].items())


def late_score(record: dict, manual: dict[tuple[str, str], float],
               blank: set[tuple[str, str]] | frozenset = frozenset(),
               extra: dict[tuple[str, str], float] | None = None,
               review: set[tuple[str, str]] | frozenset = frozenset(),
               late: Lateness | None = None, rule: Rule = NO_PENALTY
               ) -> tuple[float, float, int, float]:
    """:func:`score` after the course's late penalty (:func:`grader.late.apply`, as ``report``
    takes it): ``(points, max points, cells waiting, points the penalty took)``."""
    total, max_total, pending = score(record, manual, blank, extra, review)
    total, taken = apply_penalty(total, rule, late, max_total)
    return total, max_total, pending, taken


def score_text(record: dict, manual: dict[tuple[str, str], float],
               blank: set[tuple[str, str]] | frozenset = frozenset(),
               extra: dict[tuple[str, str], float] | None = None,
               review: set[tuple[str, str]] | frozenset = frozenset(),
               late: Lateness | None = None, rule: Rule = NO_PENALTY) -> str:
    """The score line of one submission, as its page and its index give it (:func:`late_score`,
    :func:`_score_text`)."""
    total, max_total, pending, taken = late_score(record, manual, blank, extra, review, late,
                                                  rule)
    return _score_text(total, max_total, pending, in_review(record, review), taken)


def _score_text(total: float, max_total: float, pending: int, review: int = 0,
                taken: float = 0.0) -> str:
    """``total / max`` (``after a late penalty of N`` when one took points), and while
    ``pending`` cells wait (``review`` of them test cells scored by hand earlier, the others
    written answers) what keeps it from being final."""
    written = pending - review
    parts = ([f"{written} written answer{'s' * (written > 1)} still to be graded by hand"]
             if written else [])
    if review:
        parts.append(f"{review} test cell{'s' * (review > 1)} scored by hand earlier still to "
                     "be looked at again")
    still = f" (not final: {' and '.join(parts)})" if parts else ""
    penalty = f" after a late penalty of {taken:g}" if taken else ""
    return f"{total:g} / {max_total:g}{penalty}{still}"


def render(record: dict, manual: dict[tuple[str, str], float],
           secrets: dict[str, frozenset[str]] | None = None,
           blank: set[tuple[str, str]] | frozenset = frozenset(),
           extra: dict[tuple[str, str], float] | None = None,
           comments: Comments = (), review: set[tuple[str, str]] | frozenset = frozenset(),
           late: Lateness | None = None, rule: Rule = NO_PENALTY) -> str:
    """The page of one submission. Formgrader's hand work is shown as the student's total
    counts it: a hand grade (on a test cell: 'set by hand', with what the tests gave), extra
    credit next to its cell's points, and the instructor's comments above the table. A late
    submission (``late``) is told how late, and the course's late penalty (``rule``) what it
    took from the score."""
    from grader.autograde import not_found, scrub_hidden

    secrets = secrets or {}
    extra = extra or {}

    def bonus(key: tuple[str, str]) -> str:
        return f" + {extra[key]:g} extra credit" if key in extra else ""
    everything = frozenset().union(*secrets.values()) if secrets else frozenset()

    e = html.escape

    def sc(text: str, nb_id: str | None = None) -> str:  # a message or a flag: scrubbed
        return e(scrub_hidden(text, secrets.get(nb_id, everything) if nb_id else everything))
    s, a = record["student"], record["assignment"]
    rows = []
    for nb_id, nb in sorted(record["notebooks"].items()):
        for gid, cell in nb["cells"].items():
            if cell["manual"]:
                given = manual.get((nb_id, gid))
                left = given is None and (nb_id, gid) in blank
                unread = given is None and not left and never_read(nb)
                shown = ("0" if left or unread else "awaiting manual grading" if given is None
                         else f"{given:g}")
                why = ("no notebook was found under the expected name"
                       if not_found(nb.get("flags", [])) else "the notebook could not be read")
                note = ("written answer, left as released: no answer, so 0 points" if left
                        else f"written answer: {why} (see the notes from the grader), so no "
                        "answer and 0 points" if unread
                        else "written answer (graded by hand)")
                rows.append(f"<tr><td>{e(nb_id)}</td><td>{e(gid)}</td><td>{shown} / "
                            f"{cell['max']:g}{bonus((nb_id, gid))}</td><td>{note}</td></tr>")
                continue
            points = manual.get((nb_id, gid), cell["points"] or 0.0)
            by_hand = (f" (set by hand; the tests gave {cell['points'] or 0.0:g})"
                       if (nb_id, gid) in manual else
                       " (the tests' points; your instructor scored this cell by hand earlier "
                       "and will look at it again: your code changed since)"
                       if (nb_id, gid) in review else "")
            items = []
            for passed, text in merged_messages(cell["tests"]):
                cls = "pass" if passed else "fail"
                mark = "&#10003;" if passed else "&#10007;"
                items.append(f'<li class="{cls}">{mark} {sc(text, nb_id)}</li>')
            rows.append(f"<tr><td>{e(nb_id)}</td><td>{e(gid)}</td><td>{points:g} / "
                        f"{cell['max']:g}{bonus((nb_id, gid))}{by_hand}</td>"
                        f"<td><ul>{''.join(items)}</ul></td></tr>")
    flags = "".join(f"<li>{sc(f)}</li>" for f in record.get("flags", []))
    flag_html = f'<div class="flag"><b>Notes from the grader</b><ul>{flags}</ul></div>' \
        if flags else ""
    stamp = re.sub(r"\.0+(?= |$)", "", str(record.get("timestamp") or ""))  # no .000000
    when = f"<p>Graded from your submission of {e(stamp)}.</p>" if stamp else ""
    errors = "".join(f"<li>{e(nb_id)}, {sc(err, nb_id)}</li>"
                     for nb_id, nb in sorted(record["notebooks"].items())
                     for err in nb.get("code_errors", []))
    said = "".join(f"<li>{e(nb_id)}, {e(cell)}: {e(text)}</li>"
                   for nb_id, cell, text in comments)
    if said:
        # styled in place: a page with no comment stays byte for byte what it was
        flag_html += ('<div style="background:#e8f1fb;padding:.5em 1em;border-left:4px solid '
                      f'#2f6fb0"><b>Comments from your instructor</b><ul>{said}</ul></div>')
    if errors:
        flag_html += ('<div class="flag"><b>Errors in your code cells</b> (a test below that '
                      "stops with NameError or the like may come from one of these)"
                      f"<ul>{errors}</ul></div>")
    points = late_score(record, manual, blank, extra, review, late, rule)
    total = _score_text(*points[:3], in_review(record, review), points[3])
    if late is not None:
        # styled in place: a page of a submission on time stays byte for byte what it was
        told = f"<b>Late submission</b>: {e(late.text())}."
        if not rule.none:
            given = rule.points(late.seconds, points[1])
            capped = (f" (the rule gives {given:g}; no more than the points you earned is taken)"
                      if points[3] < given else "")
            took = (f"{points[3]:g} point{'s' * (points[3] != 1)} taken from your score"
                    f"{capped}" if points[3] else "nothing taken, as your score is 0")
            told += f" Late penalty ({e(rule.why(late.seconds, points[1]))}): {took}."
        when += ('<p style="background:#fdecea;padding:.5em 1em;border-left:4px solid #b3261e">'
                 f"{told}</p>")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(a)}: feedback for {e(s)}</title><style>{CSS}</style></head><body>"
            f"<h1>{e(a)}</h1><p>Student: <b>{e(s)}</b>. Score: "
            f"<b>{e(total)}</b></p>{when}{flag_html}"
            f"<table><tr><th>Notebook</th><th>Test cell</th><th>Points</th><th>Tests</th></tr>"
            f"{''.join(rows)}</table></body></html>\n")


def _some(names: list[str], n: int = 20) -> str:
    """Up to ``n`` names, comma-separated, with how many there are in all when more."""
    if not names:
        return "none"
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def autograded_records(course: Course) -> list[Path]:
    """Every ``results.json`` under the course's autograded/; a usage error when there is none
    (nothing was graded yet)."""
    records = sorted(course.autograded.glob("*/*/results.json"))
    if not records:
        raise UsageError(f"--course has no autograded submissions under {course.autograded} "
                         "(run `tconv-grader autograde --course ...` first)")
    return records


def select(course: Course, students: list[str] | None, assignments: list[str] | None,
           known: set[str] | frozenset = frozenset(), records: list[Path] | None = None
           ) -> list[Path]:
    """The ``results.json`` files of the autograded submissions asked for (of ``records``,
    every one under autograded/ by default); a usage error that names the argument, the rule
    and the value when ASSIGNMENT matches no autograded submission, or a --student is neither a
    student of the gradebook (``known``: the class list, once imported) nor one with an
    autograded submission. A student asked for may have no page (nothing of theirs graded for
    ASSIGNMENT): :func:`feedback` still gives them an index that says so."""
    records = autograded_records(course) if records is None else records
    have_a = sorted({p.parent.name for p in records})
    have_s = sorted({p.parent.parent.name for p in records})
    for a in assignments or []:
        if a not in have_a:
            raise UsageError(f"ASSIGNMENT matched no autograded submission; got {a!r} "
                             f"(autograded assignments: {_some(have_a)})")
    ids = sorted(set(have_s) | set(known))
    unknown = [s for s in dict.fromkeys(students or []) if s not in ids]
    if unknown:
        raise UsageError(unknown_students(unknown, ids))
    return [p for p in records if (not students or p.parent.parent.name in students)
            and (not assignments or p.parent.name in assignments)]


def unknown_students(unknown: list[str], ids: list[str],
                     rule: str = "one with an autograded submission") -> str:
    """The usage error for --student ids on no list: the rule (a student of the class list or
    ``rule``), the ids, the nearest known ids (a typo) and the known ones."""
    import difflib

    near = []
    for s in unknown:
        close = difflib.get_close_matches(s, ids, n=3, cutoff=0.6)
        if close:
            near.append(f"nearest to {s!r}: {', '.join(map(repr, close))}")
    hint = "; ".join(near) + "; " if near else ""
    return (f"--student must name a student of the gradebook (the class list) or {rule}; "
            f"got {', '.join(map(repr, unknown))} ({hint}"
            f"{len(ids)} known: {_some(ids)})")


def _index_items(course: Course, student: str, assignments: list[str],
                 subs: set[tuple[str, str]], scores: dict[str, str]) -> str:
    """The list items of one student's index: every assignment, linked to its page with its
    score, or said to have no submission (or not to be graded yet)."""
    e = html.escape
    items = []
    for a in sorted(set(assignments) | set(scores)):
        page = course.feedback / student / a / "feedback.html"
        if a in scores and page.exists():
            items.append(f'<li><a href="{e(f"{a}/feedback.html")}">{e(a)}</a>: '
                         f"{e(scores[a])}</li>")
        elif a in scores:
            items.append(f"<li>{e(a)}: {e(scores[a])} (no feedback page yet)</li>")
        else:
            # received: in the gradebook (not withdrawn), or collected and not autograded yet;
            # in a shared --db with neither folder here: graded, its page is not here
            state = ("not graded yet" if (course.submitted / student / a).is_dir()
                     else GRADED_ELSEWHERE if (student, a) in subs
                     and course.elsewhere_why(student, a)
                     else "not graded yet" if (student, a) in subs
                     and not course.withdrawn(student, a)
                     else NO_SUBMISSION)
            items.append(f"<li>{e(a)}: {state}</li>")
    return "".join(items)


def _collected(course: Course, student: str) -> bool:
    """Whether anything of ``student`` is under ``submitted/`` (collected, graded or not)."""
    folder = course.submitted / student
    return folder.is_dir() and any(p.is_dir() for p in folder.iterdir())


#: an index's word for an assignment the gradebook holds no submission of from the student
NO_SUBMISSION = "no submission received"
#: an index's word for a submission of a shared gradebook with nothing of it in this course
#: directory (:meth:`Course.elsewhere_why`)
GRADED_ELSEWHERE = "received and graded; its feedback page is not in this folder"


def index_page(course: Course, student: str, assignments: list[str],
               subs: set[tuple[str, str]], scores: dict[str, str]) -> str:
    """One student's ``index.html``: every assignment (:func:`_index_items`), and above them a
    line saying so when nothing of theirs was received at all (a student of the class list
    who submitted nothing)."""
    s = html.escape(student)
    nothing = not scores and not any((student, a) in subs for a in assignments) and \
        not _collected(course, student)
    note = ("<p>No submission of yours has been received for any assignment, so there is no "
            "feedback page yet.</p>" if nothing else "")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Feedback "
            f"for {s}</title><style>{CSS}</style></head><body><h1>Feedback for {s}</h1>{note}"
            f"<ul>{_index_items(course, student, assignments, subs, scores)}</ul></body></html>\n")


#: what a damaged results.json raises when read or rendered
BAD_RECORD = (OSError, ValueError, KeyError, TypeError, AttributeError)


def _score_of(record: Path, grades: dict[tuple[str, str], HandGrades],
              late: dict[tuple[str, str], Lateness] | None = None,
              rule: Rule = NO_PENALTY) -> str | None:
    try:
        rec = json.loads(record.read_text())
        key = (rec["student"], rec["assignment"])
        manual, blank, extra, review = grades.get(key, NO_GRADES)
        return score_text(rec, manual, blank, extra, review, (late or {}).get(key), rule)
    except BAD_RECORD:
        return None  # said when its own page was (not) written


def _write_if_changed(path: Path, text: str, force: bool = False) -> bool:
    """Write ``text`` to ``path`` (atomically) unless the file already holds exactly these bytes;
    whether it was written. An unchanged file keeps its inode and modification time."""
    if not force:
        try:
            if path.read_bytes() == text.encode("utf-8"):
                return False
        except OSError:
            pass  # missing or unreadable: written
    atomic_write_text(path, text)
    return True


def stale_pages(course: Course, students: list[str] | None = None,
                assignments: list[str] | None = None) -> list[Path]:
    """The feedback pages (of the students and assignments asked for; all by default) with no
    submission behind them any more: no ``results.json``, or a submission withdrawn from
    submitted/ since it was autograded (:meth:`Course.withdrawn`, which ``report`` scores 0).
    Such a page shows a grade nothing backs."""
    out = []
    for page in sorted(course.feedback.glob("*/*/feedback.html")):
        s, a = page.parent.parent.name, page.parent.name
        if (students and s not in students) or (assignments and a not in assignments):
            continue
        if not course.results_path(s, a).exists() or course.withdrawn(s, a):
            out.append(page)
    return out


def _remove_page(page: Path) -> None:
    """Delete a page, and its assignment folder when nothing else is left in it."""
    page.unlink(missing_ok=True)
    try:
        page.parent.rmdir()
    except OSError:
        pass  # something else in it: kept


def _plain_ids(students, what: str) -> list[str]:
    """The student ids that can name a folder under feedback/ (as ``collect`` accepts them);
    a warning for each other one."""
    from grader.collect import STUDENT_RE

    out = []
    for s in sorted(students):
        if STUDENT_RE.fullmatch(s):
            out.append(s)
        else:
            print(f"feedback: warning: {what} {s!r} is not a plain identifier (ASCII letters, "
                  "digits and . _ @ + -, starting with a letter or digit): no index page for "
                  "it", file=sys.stderr)
    return out


@dataclass
class Run:
    """What one ``feedback`` run did. ``pages``: every page asked for and now up to date, in
    order; of these ``written`` were (re)written and ``unchanged`` already held the same bytes;
    ``provisional``: pages whose score is not final yet (written answers to grade);
    ``removed``: pages deleted because no ``results.json`` is behind them any more
    (:func:`stale_pages`); ``indexes``: the students' index pages now up to date, of these
    ``indexes_written`` (re)written; ``absent``: students given an index with nothing graded
    behind it and nothing collected (on the class list but no submission, or every page
    removed); ``skipped``:
    damaged ``results.json`` files, no page; ``waiting``: formgrader comments left off this
    run's pages, said of an earlier answer (``student/assignment/notebook/cell``), of these
    ``regrade`` the ones on a written answer whose hand grade waits too; ``review``:
    test cells of this run's pages whose score set by hand waits to be looked at again (the
    tests give other points since: the page counts theirs, not final), named the same way;
    ``to_grade``: ``student/assignment`` of the submissions asked for that are collected but
    not autograded yet, ``new`` (no page yet) or ``changed`` (the page is of the earlier one);
    ``late``: ``student/assignment`` of this run's pages of late submissions, with the points
    the late penalty took; ``elsewhere``: ``student/assignment`` of the submissions asked for
    that the gradebook (a ``--db``) holds with neither folder under this course directory
    (:meth:`Course.elsewhere_why`): no page here."""
    pages: list[Path] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    provisional: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    indexes: list[Path] = field(default_factory=list)
    indexes_written: list[Path] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    regrade: set[str] = field(default_factory=set)
    review: list[str] = field(default_factory=list)
    to_grade: dict[str, str] = field(default_factory=dict)
    late: dict[str, float] = field(default_factory=dict)
    elsewhere: list[str] = field(default_factory=list)

    @property
    def students(self) -> list[str]:
        """Students with a page of this run."""
        return sorted({p.parent.parent.name for p in self.pages})

    @property
    def everyone(self) -> list[str]:
        """Students whose folder this run brought up to date (an index each)."""
        return sorted({p.parent.name for p in self.indexes})

    @property
    def changed_students(self) -> list[str]:
        """Students with a page or an index written, or a page removed, this run: those to
        send their folder to."""
        return sorted({p.parent.parent.name for p in self.written + self.removed}
                      | {p.parent.name for p in self.indexes_written})


def feedback(course: Course, students: list[str] | None = None,
             assignments: list[str] | None = None, progress: bool = True,
             force: bool = False, rule: Rule | None = None) -> Run:
    """Bring the pages asked for and each of their students' index up to date: each is
    rendered, and written only when it differs from the file on disk (every one with
    ``force``). Pages asked for with no ``results.json`` behind them any more are removed, and
    each student asked for (without ``students`` every student of the gradebook: the class
    list, once imported) with nothing graded gets an index that says so. ``rule``: the late
    penalty (the course's saved one by default, :func:`grader.late.load`)."""
    from tqdm import tqdm

    from grader import late as lateness_rules

    if not course.default_db:
        course.require_gradebook()  # a --db that does not exist: say so first
    records = autograded_records(course)
    course.require_gradebook()
    rule = lateness_rules.load(course.root) if rule is None else rule
    grades, roster, subs, known, comments, waiting, regrade, late = _gradebook_view(course)
    from grader.autograde import to_grade

    run = Run()
    run.to_grade = {f"{s}/{a}": state for (s, a), state in sorted(to_grade(course).items())
                    if (not students or s in students)
                    and (not assignments or a in assignments)}
    records = [p for p in select(course, students, assignments, known, records)
               if not course.withdrawn(p.parent.parent.name, p.parent.name)]
    run.elsewhere = sorted(f"{s}/{a}" for s, a in subs
                           if (not students or s in students)
                           and (not assignments or a in assignments)
                           and course.elsewhere_why(s, a))
    secrets: dict[tuple[str, tuple[str, ...]], dict[str, frozenset[str]]] = {}
    per_student: dict[str, dict[str, str]] = {}
    for p in tqdm(records, desc="feedback", unit="submission", disable=not progress,
                  file=sys.stderr):
        try:
            rec = json.loads(p.read_text())
            s, a = rec["student"], rec["assignment"]
            manual, blank, extra, review = grades.get((s, a), NO_GRADES)
            key = (a, tuple(sorted(rec.get("notebooks", {}))))
            if key not in secrets:  # the same for every student: read the source once
                secrets[key] = _secrets(course, a, key[1])
            page = render(rec, manual, secrets[key], blank, extra, comments.get((s, a), []),
                          review, late.get((s, a)), rule)
            points = late_score(rec, manual, blank, extra, review, late.get((s, a)), rule)
        except BAD_RECORD as exc:  # one damaged record never stops the others
            print(f"feedback: skipped {p} (unreadable: {type(exc).__name__}: {exc}); "
                  "`tconv-grader autograde --force` rewrites it", file=sys.stderr)
            run.skipped.append(p)
            continue
        path = course.feedback / s / a / "feedback.html"
        run.pages.append(path)
        (run.written if _write_if_changed(path, page, force) else run.unchanged).append(path)
        if points[2]:
            run.provisional.append(path)
        per_student.setdefault(s, {})[a] = _score_text(*points[:3], in_review(rec, review),
                                                       points[3])
        if (s, a) in late:
            run.late[f"{s}/{a}"] = points[3]
        run.waiting += [w for w in waiting if w.startswith(f"{s}/{a}/")]
        run.regrade |= {w for w in regrade if w.startswith(f"{s}/{a}/")}
        run.review += sorted(f"{s}/{a}/{nb}/{cell}" for nb, cell in review
                             if cell in rec["notebooks"].get(nb, {}).get("cells", {}))
    for page in stale_pages(course, students, assignments):
        _remove_page(page)
        run.removed.append(page)
        per_student.setdefault(page.parent.parent.name, {})  # its index no longer links it
    if students:  # each one asked for gets an index, a page of this run or not
        for s in _plain_ids(set(students) - set(per_student), "--student"):
            per_student[s] = {}
    else:  # the class list: a student with nothing graded gets an index too
        nothing = [s for s in known - set(per_student)  # (results left out by ASSIGNMENT:
                   if all(course.withdrawn(s, r.parent.name) for r in
                          course.autograded.glob(f"{glob_escape(s)}/*/results.json"))]
        for s in _plain_ids(nothing, "the gradebook's student id"):  # not asked for)
            per_student[s] = {}
    for s, scores in sorted(per_student.items()):
        for other in course.autograded.glob(f"{glob_escape(s)}/*/results.json"):
            if other.parent.name not in scores and not course.withdrawn(s, other.parent.name):
                # left out by ASSIGNMENT: still listed
                text = _score_of(other, grades, late, rule)
                if text is not None:
                    scores[other.parent.name] = text
        if not scores and not _collected(course, s):
            run.absent.append(s)
        index = course.feedback / s / "index.html"
        run.indexes.append(index)
        if _write_if_changed(index, index_page(course, s, roster, subs, scores), force):
            run.indexes_written.append(index)
    return run


KEEP_FORM = ("STUDENT/ASSIGNMENT or STUDENT/ASSIGNMENT/NOTEBOOK/CELL (as feedback names a "
             "comment left off the pages)")


def keep_comments(course: Course, values: list[str]) -> list[str]:
    """``--keep-comments``: the instructor read the new answer and a comment said of the earlier
    one still applies as written. Each value, ``STUDENT/ASSIGNMENT`` (all of that submission's)
    or ``STUDENT/ASSIGNMENT/NOTEBOOK/CELL``, drops the comments from its ``results.json``'s
    ``earlier_comments``, so the pages show them again (until the answer changes again).
    Every value is checked before anything is written: a usage error names the argument, the
    rule and the value. Returns ``student/assignment/notebook/cell`` of each comment kept."""
    todo: dict[Path, tuple[dict, set[tuple[str, str]]]] = {}
    for value in dict.fromkeys(values):
        parts = value.strip("/").split("/")
        if len(parts) not in (2, 4) or not all(parts) or any(p in (".", "..") for p in parts):
            raise UsageError(f"--keep-comments must be {KEEP_FORM}; got {value!r}")
        path = course.results_path(parts[0], parts[1])
        if path not in todo:
            try:
                todo[path] = (json.loads(path.read_text()), set())
            except FileNotFoundError:
                raise UsageError(f"--keep-comments must name an autograded submission (its "
                                 f"results.json under {course.autograded}); got {value!r} (no "
                                 f"{path})") from None
            except BAD_RECORD as exc:
                raise UsageError(f"--keep-comments: the results.json of {value!r} is "
                                 f"unreadable ({type(exc).__name__}: {exc}); `tconv-grader "
                                 "autograde --force` rewrites it") from exc
        rec, keep = todo[path]
        said = {(nb, cell) for nb, v in rec.get("notebooks", {}).items()
                for cell in v.get("earlier_comments", {})}
        picked = {c for c in said if len(parts) == 2 or c == (parts[2], parts[3])}
        if not picked:
            waits = [f"{parts[0]}/{parts[1]}/{nb}/{cell}" for nb, cell in sorted(said)]
            raise UsageError(f"--keep-comments must name a comment left off the pages as said "
                             f"of an earlier answer; got {value!r} (of {parts[0]}/{parts[1]}: "
                             f"{', '.join(waits) or 'none'})")
        keep |= picked
    kept = []
    for path, (rec, keep) in todo.items():
        for nb, cell in sorted(keep):
            rec["notebooks"][nb]["earlier_comments"].pop(cell)
            if not rec["notebooks"][nb]["earlier_comments"]:
                del rec["notebooks"][nb]["earlier_comments"]
            kept.append(f"{rec['student']}/{rec['assignment']}/{nb}/{cell}")
        atomic_write_text(path, dump_json(rec))
    return kept


def _names(names: list[str], n: int = 10) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def main(args) -> int:
    solutions = getattr(args, "solutions", None)
    if solutions and not Path(solutions).expanduser().is_dir():
        raise UsageError(f"--solutions must be an existing folder of instructor source; got "
                         f"{solutions} (no such directory)")
    course = Course.open(args.course, args.db, solutions)
    from grader import late as lateness_rules

    value = getattr(args, "late_penalty", None)
    given = None if value is None else lateness_rules.parse(value)
    rule = lateness_rules.load(course.root) if given is None else given
    kept = keep_comments(course, getattr(args, "keep_comments", None) or [])
    run = feedback(course, args.student or None, [args.assignment] if args.assignment else None,
                   progress=not args.quiet, force=args.force, rule=rule)
    # saved once the pages are written: a run that fails keeps the course's rule as it was
    lateness_rules.set_rule(course.root, given, "feedback")
    why = " (--force)" if args.force else ""
    print(f"feedback: {len(run.written)} page(s) written{why}, {len(run.unchanged)} unchanged "
          f"(already up to date), for {len(run.students)} student(s) under {course.feedback}")
    if run.late:
        taken = [f"{k} -{v:g}" if v else f"{k} (nothing earned, nothing taken)"
                 for k, v in run.late.items()]
        what = (f"late penalty {rule.text}: {_names(taken)}"
                if not rule.none else f"no late penalty set: {_names(list(run.late))}")
        print(f"feedback: {len(run.late)} page(s) say the submission was late and by how much "
              f"({what})")
    if run.elsewhere:
        print(f"feedback: {len(run.elsewhere)} submission(s) of the gradebook (--db) have no "
              f"page here: neither folder is under this --course (graded by another grader "
              "sharing --db, whose feedback has their page, or both folders deleted here: the "
              "gradebook does not record which); their index says 'received and graded': "
              f"{_names(run.elsewhere)}")
    if run.removed:
        which = _names([f"{p.parent.parent.name}/{p.parent.name}" for p in run.removed])
        print(f"feedback: {len(run.removed)} page(s) removed, no submission behind them any "
              f"more (withdrawn: its submitted or autograded folder deleted; the index no "
              f"longer links them; delete them where you sent them too): {which}")
    if run.absent:
        print(f"feedback: {len(run.absent)} student(s) with nothing graded have an index that "
              f"says no submission was received: {_names(run.absent)}")
    pageless = [s for s in dict.fromkeys(args.student or [])
                if s in run.everyone and s not in run.students and s not in run.absent]
    if pageless:
        of = f" of {args.assignment}" if args.assignment else ""
        print(f"feedback: no autograded submission{of} from {_names(pageless)}, so no page; "
              "their index says what was received")
    if run.to_grade:
        which = _names([f"{k} ({'collected again' if v == 'changed' else 'new'})"
                        for k, v in run.to_grade.items()])
        print(f"next: {len(run.to_grade)} submission(s) collected are not autograded yet: a new "
              "one has no page (its index says not graded yet), one collected again still has "
              f"the page of the submission it replaces. Run `{next_command('autograde', args)}`, "
              f"then feedback again: {which}")
    if run.skipped:
        print(f"feedback: {len(run.skipped)} submission(s) skipped, their results.json "
              "unreadable (named above); `tconv-grader autograde --force` rewrites it")
    if kept:
        print(f"feedback: {len(kept)} comment(s) said of an earlier answer kept as they stand "
              f"(--keep-comments): {_names(kept)}")
        held = [k for k in kept if k in run.regrade]
        if held:
            print(f"feedback: {len(held)} of them still wait for their answer's hand grade (the "
                  "written answer changed): grade it again in formgrader ('Mark graded' keeps "
                  f"the earlier grade), then run feedback again: {_names(held)}")
    if run.waiting:
        print(f"next: {len(run.waiting)} comment(s) you wrote in formgrader are not on the pages: "
              "the student changed that answer since (a resubmission). Grade the answer again "
              "(a written answer), or change the comment, in formgrader to show it, then run "
              f"feedback again: {_names(run.waiting)}")
        keep = [w for w in run.waiting if w not in run.regrade]
        if keep:
            which = keep[0] if len(keep) == 1 else "STUDENT/ASSIGNMENT/NOTEBOOK/CELL"
            print("next: if you read the new answer and a comment still applies as written, "
                  f"show it as it stands: {next_command('feedback', args)} --keep-comments "
                  f"{which} (repeatable; STUDENT/ASSIGNMENT keeps all of a submission's)")
    if run.provisional:
        which = _names([f"{p.parent.parent.name}/{p.parent.name}" for p in run.provisional])
        what = ("written answers still to grade by hand, or test cells scored by hand to look "
                "at again," if run.review else "written answers still to grade by hand")
        print(f"next: {len(run.provisional)} page(s) show a score that is not final ({what} in "
              f"formgrader: {which}); after grading, run feedback again")
    if run.review:
        print(f"next: {len(run.review)} test cell(s) you scored by hand now get other points "
              "from the tests (a resubmission): the pages count the tests' points, not final, "
              "until you set a score again in formgrader (needs manual grade; 'Mark graded' "
              f"keeps the earlier score): {_names(run.review)}")
    changed = run.changed_students
    if not changed:
        print("next: nothing changed since the last run: no student needs their folder again")
    elif len(changed) == len(run.everyone):
        print(f"next: send each student their folder {course.feedback}/<student>/ (its "
              "index.html links every page of theirs)")
    else:
        print(f"next: send the {len(changed)} student(s) whose pages changed their folder "
              f"{course.feedback}/<student>/ again: {_names(changed)}")
    print(f"next: {next_command('report', args)}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("feedback", help="per-student HTML feedback (only changed pages written)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("assignment", nargs="?", metavar="ASSIGNMENT",
                   help="only this assignment (default: every autograded one)")
    p.add_argument("--student", action="append", metavar="ID",
                   help="only this student (repeatable): any student of the gradebook (the "
                   "class list) or with an autograded submission; one with nothing graded gets "
                   "an index that says no submission was received")
    p.add_argument("--course", required=True, help="course directory (instructor state)")
    p.add_argument("--db", help="SQLAlchemy URL of the gradebook (default: "
                   "sqlite:///<course>/gradebook.db)")
    p.add_argument("--solutions", help="instructor source, to scrub hidden test text from the "
                   "pages once more (default: the repository's solutions/; the one autograde "
                   "was given)")
    p.add_argument("--keep-comments", action="append", metavar="STUDENT/ASSIGNMENT[/NB/CELL]",
                   help="show again, as it stands, a formgrader comment left off the pages "
                   "because the student changed that answer since (a resubmission), when you "
                   "read the new answer and it still applies; STUDENT/ASSIGNMENT shows all of "
                   "the submission's (repeatable). A written answer's comment also waits for "
                   "its hand grade: grade it again in formgrader ('Mark graded' keeps it)")
    p.add_argument("--late-penalty", metavar="RULE",
                   help="set the course's late penalty (saved in <course>/late_penalty.txt; "
                   "report and feedback apply it from then on): none, zero, P%%/day or P%%/hour "
                   "(see `tconv-grader report --help`). A late submission's page says how late "
                   "it was and what the penalty took")
    p.add_argument("--force", action="store_true",
                   help="write every page and index again, also those already up to date "
                   "(by default a page is written only when its content changed)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=main)
