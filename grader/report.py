"""``tconv-grader report --course DIR``: grades as CSV, histograms, most-failed tests, written
answers to grade, flags.

Everything is read back from the nbgrader gradebook through its own API (so it is what formgrader
shows, manual grades included), plus the flags from the autograder's ``results.json``. The one
thing it writes back is the late penalty it takes (nbgrader's ``late_submission_penalty``), so
``nbgrader export`` gives the same scores. Writes to ``<course>/reports/`` (or ``--output``):

* grades.csv            one row per student, assignment, notebook and grade cell: its kind
                        (``test``, scored by the autograder, or ``written``, an answer graded by
                        hand), auto_score, manual_score, score, max_score, flags,
                        extra_credit (formgrader's, counted in score)
* totals.csv            one row per student and assignment (score, max_score, flags, status,
                        pending_manual, provisional, late_penalty): every student of the
                        gradebook, with ``status`` ``no submission`` and score 0 where one
                        has none, and ``withdrawn`` and score 0 where one autograded earlier
                        has left ``submitted/`` since (its grades are left out of grades.csv, the
                        earlier score is in ``flags``), and ``not graded yet`` and score 0
                        where one is collected but not autograded yet (provisional; one
                        collected again since it was graded keeps the earlier grades,
                        provisional, and a flag says so);
                        ``pending_manual`` counts the cells still waiting for a hand grade
                        (written answers, and test cells scored by hand whose tests give
                        other points since: the tests' points count), and while there are any
                        the total is ``provisional`` (``yes``); ``late_penalty``: the points
                        the course's late penalty took from ``score`` (``--late-penalty``;
                        grades.csv's cell scores are before it)
* scores.csv            the same totals one row per student, for an LMS grade import: student,
                        one column per assignment (its score; 0 without a submission), total,
                        max_total, provisional (``yes`` while any cell waits for a hand grade)
                        and flagged (``no``, or what the student's submissions are
                        flagged for, each reason with its assignments: ``late (ex1_shapes);
                        flagged by the autograder (ex2_scatter)``, as flags.txt counts them)
* hist_<assignment>.png histogram of the assignment's total scores, every student counted (no
                        submission as 0, drawn apart; one collected but not autograded yet
                        apart again, in amber), with how many are provisional
* most_failed.txt       test cells ordered by how many submissions scored below full marks, and
                        per assignment how many students had no submission (not counted there)
* written.txt           per written answer: how many wait for a hand grade (formgrader), how
                        many were left as released (nbgrader scores those 0) and how many are
                        graded; then the test cells scored by hand whose tests give other
                        points since (a resubmission: the tests' points count)
* flags.txt             every flagged submission with its reasons (one handed in after its due
                        date, nbgrader's ``duedate``: how late, and the late penalty taken if
                        the course has one), headed by how many have each reason, and every
                        missing submission

An assignment enters the reports once the gradebook holds a submission of it.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
import sys
import tempfile
from collections import Counter
from pathlib import Path

from grader import late
from grader.dbretry import redact
from grader.gradebook import Course, UsageError, atomic_write_text
from grader.late import Rule

#: new columns go at the end: consumers of the earlier ones keep working
GRADE_FIELDS = ["student", "assignment", "notebook", "grade_cell", "kind", "auto_score",
                "manual_score", "score", "max_score", "flags", "extra_credit"]
#: new columns go at the end: consumers of the first five keep working
TOTAL_FIELDS = ["student", "assignment", "score", "max_score", "flags", "status",
                "pending_manual", "provisional", "late_penalty"]
SUBMITTED, NO_SUBMISSION, WITHDRAWN = "submitted", "no submission", "withdrawn"
NOT_GRADED = "not graded yet"  # collected, never autograded: run autograde
LATE = "_late"  # totals.csv rows' own key: handed in after the due date
AUTOFLAGS = "_autoflags"  # totals.csv rows' own key: results.json holds flags
ELSEWHERE = "_elsewhere"  # totals.csv rows' own key: Course.elsewhere_why
TO_GRADE = "_to_grade"  # totals.csv rows' own key: "new" or "changed" (autograde.to_grade)
#: grades.csv rows' own key (not a column): the notebook never ran (unreadable, wrong name)
UNREAD = "_unread"
REGRADE = "_regrade"  # a written answer's hand grade is of an earlier answer: to grade again
#: totals.csv rows' own key: the row's late penalty changed in the gradebook (to commit)
PENALTY_CHANGED = "_penalty_changed"
STALE = "_stale"  # a test cell's hand score is of code the tests give other points since


def _fmt(x) -> str:
    return "" if x is None else f"{float(x):g}"


def _flags(path: Path) -> tuple[list[str], set[str]]:
    """The autograder's flags of one submission, and its notebooks of which no cell ran (could
    not be read, wrong name, missing); a damaged ``results.json`` is itself a flag (one bad
    file never stops the report)."""
    if not path.exists():
        return [], set()
    from grader.feedback import never_read

    try:
        rec = json.loads(path.read_text())
        unread = {nb for nb, v in rec.get("notebooks", {}).items() if never_read(v)}
        return [str(f) for f in rec.get("flags", [])], unread
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        return [f"results.json unreadable ({type(exc).__name__}: {exc}); `tconv-grader "
                "autograde --force` rewrites it"], set()


def late_flag(sub, rule: Rule = late.NONE, max_score: float = 0.0, taken: float = 0.0
              ) -> str | None:
    """A flag for a submission handed in after its due date (nbgrader's: the assignment's
    ``duedate``, as ``nbgrader db assignment add --duedate`` sets it, plus the student's
    extension), from the time ``collect`` recorded, with the course's late penalty
    (:mod:`grader.late`: ``taken`` points of the score); ``None`` when on time or without a due
    date."""
    when = late.lateness(sub)
    if when is None:
        return None
    if rule.none:
        return f"late: {when.text()} (no penalty applied)"
    given = rule.points(when.seconds, max_score)
    took = (" taken" if taken >= given else
            f"; {taken:g} taken (no more than the points earned)")
    return (f"late: {when.text()}; late penalty {rule.text}: {rule.why(when.seconds, max_score)}"
            f"{took}")


def _submission_rows(course: Course, assignment: str, sub, rule: Rule = late.NONE
                     ) -> tuple[list[dict], dict]:
    """grades.csv rows (each cell's score, before any late penalty) and the totals.csv row of
    one submission in the gradebook (its total after the course's late penalty, ``rule``)."""
    s = sub.student.id
    flags, unread = _flags(course.results_path(s, assignment))
    grades = []
    total = max_total = 0.0
    pending = 0
    earned: dict = {}   # notebook (nbgrader SubmittedNotebook): the points it counts
    for snb in sorted(sub.notebooks, key=lambda x: x.name):
        earned[snb] = total
        nb_flags = [f.split(": ", 1)[1] for f in flags if f.startswith(snb.name + ": ")]
        # a cell that is both graded and a solution is an answer graded by hand
        written = {c.name for c in snb.notebook.solution_cells}
        for g in sorted(snb.grades, key=lambda x: x.cell.name):
            kind = "written" if g.cell.name in written else "test"
            # a hand grade of an answer changed since (a resubmission) waits for a new one:
            # it counts 0 until then, as on the feedback page; a score set by hand on a test
            # cell whose tests give other points since (autograde) gives way to the tests'
            stale = g.manual_score is not None and g.needs_manual_grade
            regrade = kind == "written" and stale
            score = (0.0 if regrade else float(g.auto_score or 0.0) if stale
                     else float(g.score or 0.0))
            total += score
            max_total += float(g.max_score)
            # a notebook that could not be read has no answer to wait for (see written.txt);
            # a test cell's hand score of earlier code waits to be looked at again (formgrader:
            # needs manual grade): the tests' points count, not final, as on the page
            pending += stale or (kind == "written" and g.manual_score is None
                                 and g.auto_score is None and snb.name not in unread)
            grades.append({
                "student": s, "assignment": assignment, "notebook": snb.name,
                "grade_cell": g.cell.name, "kind": kind, "auto_score": _fmt(g.auto_score),
                "manual_score": _fmt(g.manual_score),
                "score": _fmt(score) if stale else _fmt(g.score),
                "max_score": _fmt(g.max_score), "flags": " | ".join(nb_flags),
                "extra_credit": _fmt(g.extra_credit),
                UNREAD: snb.name in unread, REGRADE: regrade, STALE: stale and not regrade})
        earned[snb] = total - earned[snb]
    total, taken = late.apply(total, rule, late.lateness(sub), max_total)
    changed = late.record(earned, taken)
    flag = late_flag(sub, rule, max_total, taken)
    return grades, {"student": s, "assignment": assignment, "score": _fmt(total),
                    "max_score": _fmt(max_total), "flags": " | ".join([flag] * bool(flag)
                                                                      + flags),
                    LATE: bool(flag), "late_penalty": _fmt(taken), AUTOFLAGS: bool(flags),
                    "status": SUBMITTED, "pending_manual": str(pending),
                    "provisional": "yes" if pending else "no", UNREAD: bool(unread),
                    PENALTY_CHANGED: changed}


def _missing_row(student: str, assignment: str, max_score: float) -> dict:
    """The totals.csv row of a student with no submission of ``assignment``: 0 points."""
    return {"student": student, "assignment": assignment, "score": "0",
            "max_score": _fmt(max_score), "flags": "", "status": NO_SUBMISSION,
            "pending_manual": "0", "provisional": "no", "late_penalty": "0"}


def _withdrawn_row(course: Course, total: dict) -> dict:
    """The totals.csv row of a submission with nothing behind it any more (:meth:`Course.
    withdrawn`: autograded earlier and gone from ``submitted/`` since, or both its folders
    deleted): 0 points, its score in the gradebook named in its flags."""
    s, a = total["student"], total["assignment"]
    why = course.withdrawn_why(s, a)
    then = "then" if why.endswith("autograded") else "in the gradebook"
    return {**total, "score": "0", "status": WITHDRAWN, "pending_manual": "0",
            "provisional": "no", UNREAD: False, "late_penalty": "0", LATE: False,
            AUTOFLAGS: False,
            "flags": f"withdrawn: {why} ({total['score']} / {total['max_score']} {then}); "
                     "scored 0"}


def _not_graded_row(student: str, assignment: str, max_score: float, course: Course) -> dict:
    """The totals.csv row of a submission collected but never autograded: 0 points for now,
    provisional."""
    return {**_missing_row(student, assignment, max_score), "status": NOT_GRADED,
            "provisional": "yes", TO_GRADE: "new",
            "flags": f"collected ({course.submitted / student / assignment}), not autograded "
                     "yet: run autograde"}


def gather(course: Course, rule: Rule = late.NONE) -> tuple[list[dict], list[dict]]:
    """Rows of grades.csv and totals.csv, read from the gradebook: every student of the
    gradebook for every assignment it holds a submission of (no submission: score 0; one
    withdrawn from ``submitted/`` since it was autograded: score 0, no grades.csv rows; one
    collected but not autograded yet: 0, or its earlier submission's grades when collected
    again since, provisional either way)."""
    from grader.autograde import to_grade

    pending = to_grade(course)
    grades, totals = [], []
    with course.gradebook() as gb:
        students = {st.id for st in gb.students}
        for a in sorted(gb.assignments, key=lambda x: x.name):
            subs = {sub.student.id: sub for sub in a.submissions}
            if not subs:
                continue  # nothing graded yet: not in the reports
            for s in sorted(students | set(subs)):
                if s not in subs and (s, a.name) in pending:
                    totals.append(_not_graded_row(s, a.name, float(a.max_score or 0.0), course))
                    continue
                if s not in subs:
                    totals.append(_missing_row(s, a.name, float(a.max_score or 0.0)))
                    continue
                rows, total = _submission_rows(course, a.name, subs[s], rule)
                if (s, a.name) in pending:  # the grades are of the submission it replaces
                    total[TO_GRADE] = pending[(s, a.name)]
                    total["provisional"] = "yes"
                    total["flags"] = " | ".join(filter(None, [
                        "collected again since it was graded: these are the earlier "
                        "submission's grades; run autograde", total["flags"]]))
                if course.withdrawn(s, a.name):
                    totals.append(_withdrawn_row(course, total))
                    continue
                where = course.elsewhere_why(s, a.name)
                if where:  # a shared --db: counted, and said (nothing tells graded from deleted)
                    total[ELSEWHERE] = True
                    total["flags"] = " | ".join(filter(None, [f"not under this --course: {where}",
                                                              total["flags"]]))
                grades += rows
                totals.append(total)
        if any([r.pop(PENALTY_CHANGED, False) for r in totals]):   # every row's key popped
            gb.db.commit()   # the late penalties taken changed: nbgrader export gives them too
    return grades, totals


def wide(totals: list[dict]) -> tuple[list[dict], list[str]]:
    """``scores.csv``: one row per student (sorted), a column per assignment, from the
    totals.csv rows; and its field names."""
    assignments = sorted({r["assignment"] for r in totals})
    students: dict[str, dict] = {}
    maxima = {r["assignment"]: float(r["max_score"] or 0) for r in totals}
    flagged: dict[str, dict[str, list[str]]] = {}   # student: {reason: assignments}
    for r in totals:
        row = students.setdefault(r["student"], {"student": r["student"], "provisional": "no",
                                                 "flagged": "no"})
        row[r["assignment"]] = r["score"]
        if r["provisional"] == "yes":
            row["provisional"] = "yes"
        for why in (reasons_of(r) or ["flagged (see flags.txt)"]) if r["flags"] else ():
            flagged.setdefault(r["student"], {}).setdefault(why, []).append(r["assignment"])
    for s, why in flagged.items():   # "late (ex1, ex2); flagged by the autograder (ex2)"
        students[s]["flagged"] = "; ".join(
            f"{k} ({', '.join(sorted(v))})" for k, v in sorted(
                why.items(), key=lambda kv: REASONS.index(kv[0]) if kv[0] in REASONS else 99))
    rows = []
    max_total = _fmt(sum(maxima.values()))
    for s in sorted(students):
        row = students[s]
        for a in assignments:
            row.setdefault(a, "0")
        row["total"] = _fmt(sum(float(row[a]) for a in assignments))
        row["max_total"] = max_total
        rows.append(row)
    return rows, ["student", *assignments, "total", "max_total", "provisional", "flagged"]


def _csv(rows: list[dict], fields: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def histogram_bins(top: float) -> list[float]:
    """Bin edges for total scores out of ``top``: one bin per whole point, centred on it, up to
    40 points (a score of 9 sits over the 9 tick); 20 equal bins above that."""
    if top <= 40:
        return [i - 0.5 for i in range(int(top) + 2)]
    return [top * i / 20 for i in range(21)]


def histogram_figure(scores: list[float], top: float, title: str, missing: int = 0,
                     waiting: int = 0):
    """The figure of one assignment's total scores: whole students on the y axis, the median
    of every student's total marked; ``missing`` students without a graded submission count as
    0, stacked apart: the ``waiting`` ones among them (collected, not autograded yet) in amber,
    the others (no submission, or withdrawn) in grey."""
    import statistics

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    bins = histogram_bins(top)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if missing:
        groups = [(scores, "#3b6ea8", "submitted"),
                  ([0.0] * waiting, "#d08c2b", f"collected, not graded yet ({waiting})"),
                  ([0.0] * (missing - waiting), "#9a9a9a",
                   f"no submission ({missing - waiting})")]
        groups = [g for g in groups if g[0] or g[2] == "submitted"]
        ax.hist([g[0] for g in groups], bins=bins, stacked=True, edgecolor="white",
                color=[g[1] for g in groups], label=[g[2] for g in groups])
    else:
        ax.hist(scores, bins=bins, color="#3b6ea8", edgecolor="white")
    everyone = list(scores) + [0.0] * missing
    if everyone:
        median = statistics.median(everyone)
        ax.axvline(median, color="#c0392b", linestyle="--", label=f"median {median:g}")
        ax.legend(loc="best", frameon=False)
    ax.set_xlim(bins[0], bins[-1])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"score (out of {top:g})")
    ax.set_ylabel("students")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def counts(totals: list[dict], assignment: str) -> tuple[int, int, int, int]:
    """``(students, without a graded submission (withdrawn ones too), of those the ones
    collected but not autograded yet, provisional totals)`` of one assignment."""
    rows = [r for r in totals if r["assignment"] == assignment]
    return (len(rows), sum(r["status"] != SUBMITTED for r in rows),
            sum(r["status"] == NOT_GRADED for r in rows),
            sum(r["provisional"] == "yes" for r in rows))


def zero_parts(missing: int, waiting: int = 0, withdrawn: int = 0) -> str:
    """The ``missing`` students without a graded submission, each kind counted apart: ``1 with
    no submission, 1 withdrawn, 1 collected but not autograded yet`` (the first always)."""
    parts = [f"{missing - waiting - withdrawn} with no submission"]
    parts += [f"{withdrawn} withdrawn"] * bool(withdrawn)
    parts += [f"{waiting} collected but not autograded yet"] * bool(waiting)
    return ", ".join(parts)


def withdrawn_count(totals: list[dict], assignment: str) -> int:
    return sum(r["assignment"] == assignment and r["status"] == WITHDRAWN for r in totals)


def histogram_title(assignment: str, students: int, missing: int, provisional: int,
                    waiting: int = 0, withdrawn: int = 0) -> str:
    absent = zero_parts(missing, waiting, withdrawn) + (
        " (scored 0 for now)" if waiting else " (scored 0)")
    return (f"{assignment}: {students} student(s), {students - missing} submission(s)\n"
            f"{absent}; {provisional} provisional (written answers to grade)")


def histogram(totals: list[dict], assignment: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    rows = [r for r in totals if r["assignment"] == assignment]
    scores = [float(r["score"]) for r in rows if r["status"] == SUBMITTED]
    top = max([float(r["max_score"]) for r in rows] or [1.0]) or 1.0
    n, missing, waiting, provisional = counts(totals, assignment)
    fig = histogram_figure(scores, top,
                           histogram_title(assignment, n, missing, provisional, waiting,
                                           withdrawn_count(totals, assignment)),
                           missing=missing, waiting=waiting)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def _cell(r: dict) -> str:
    return f"{r['assignment']}/{r['notebook']}/{r['grade_cell']}"


def most_failed(grades: list[dict]) -> list[tuple[str, int, int]]:
    """``(assignment/notebook/cell, failures, submissions)`` of the test cells, most failures
    first. A test cell whose notebook never ran (could not be read, wrong file name) or without
    an auto score is left out: it says nothing about the test."""
    fails, seen = Counter(), Counter()
    for r in grades:
        if r["kind"] != "test" or r["auto_score"] == "" or r.get(UNREAD):
            continue
        key = _cell(r)
        seen[key] += 1
        if float(r["score"] or 0) < float(r["max_score"]):
            fails[key] += 1
    return sorted(((k, fails[k], seen[k]) for k in seen), key=lambda t: (-t[1], t[0]))


def written_answers(grades: list[dict]) -> dict[str, Counter]:
    """Per written answer (``assignment/notebook/cell``): how many submissions are ``to grade``
    (answered, no hand grade yet), ``blank`` (left as released: nbgrader's autograder scores
    them 0), ``graded`` (a hand grade is in the gradebook) and ``unread`` (in a notebook that
    could not be read: nothing to grade until the student sends it again)."""
    counts: dict[str, Counter] = {}
    for r in grades:
        if r["kind"] != "written":
            continue
        state = ("to grade" if r.get(REGRADE) else
                 "graded" if r["manual_score"] != "" else "unread" if r.get(UNREAD) else
                 "blank" if r["auto_score"] != "" else "to grade")
        counts.setdefault(_cell(r), Counter())[state] += 1
    return counts


def _require_writable(out: Path, arg: str) -> None:
    """A usage error naming ``arg`` unless the reports can be written into the folder ``out``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise UsageError(f"{arg} must be a folder the reports can be written to; got {out} "
                         f"({exc.strerror or exc})") from exc


def roster_imported(course: Course) -> bool:
    """Whether a class list seems to have been imported into the gradebook: a student with a
    name or e-mail (collect and autograde add students by id alone)."""
    with course.gradebook() as gb:
        return any(st.first_name or st.last_name or st.email for st in gb.students)


def no_duedate(course: Course, assignments: list[str]) -> list[str]:
    """The ``assignments`` the gradebook has no due date for (a late penalty cannot apply)."""
    with course.gradebook() as gb:
        dated = {a.name for a in gb.assignments if a.duedate is not None}
    return [a for a in assignments if a not in dated]


def report(course: Course, out: Path | None = None, progress: bool = True,
           rule: Rule | None = None) -> dict:
    """Write every report; ``rule`` is the late penalty (the course's saved one by default)."""
    from tqdm import tqdm

    course.require_gradebook()
    rule = late.load(course.root) if rule is None else rule
    grades, totals = gather(course, rule)
    if not totals:
        raise UsageError(f"{course.db_arg} {redact(course.db_url)} holds no graded "
                         "submissions (run `tconv-grader autograde --course ...` first)")
    arg = "--output" if out else "--course reports folder"
    out = out or course.reports
    _require_writable(out, arg)
    atomic_write_text(out / "grades.csv", _csv(grades, GRADE_FIELDS))
    atomic_write_text(out / "totals.csv", _csv(totals, TOTAL_FIELDS))
    scores = wide(totals)
    atomic_write_text(out / "scores.csv", _csv(*scores))
    assignments = sorted({r["assignment"] for r in totals})
    for a in tqdm(assignments, desc="histograms", disable=not progress, file=sys.stderr):
        histogram(totals, a, out / f"hist_{a}.png")
    mf = most_failed(grades)
    lines = ["Tests that fail most (failures / submissions; students with no submission and "
             "notebooks that could not be read are not counted):"]
    for a in assignments:
        n, missing, waiting, provisional = counts(totals, a)
        lines.append(f"  {a}: {n - missing} submission(s) of {n} student(s), "
                     f"{zero_parts(missing, waiting, withdrawn_count(totals, a))}, "
                     f"{provisional} provisional")
    lines += [f"  {n:4d} / {m:<4d} {k}" for k, n, m in mf if n > 0] or ["  none"]
    written = written_answers(grades)
    total = sum(written.values(), Counter())
    provisional = sum(r["provisional"] == "yes" for r in totals)
    unread = (f", {total['unread']} in notebooks that could not be read (see flags.txt)"
              if total["unread"] else "")
    wlines = [f"Written answers (graded by hand in formgrader): {total['to grade']} to grade, "
              f"{total['blank']} left blank (scored 0), {total['graded']} graded{unread}; "
              f"{provisional} provisional total(s) in totals.csv"]
    wlines += [f"  {c['to grade']:4d} to grade {c['blank']:4d} blank {c['graded']:4d} graded"
               + (f" {c['unread']:4d} unread" if total["unread"] else "")
               + f"    {k}" for k, c in sorted(written.items())]
    stale = [f"{r['student']}/{_cell(r)}" for r in grades if r.get(STALE)]
    if stale:
        wlines += [f"Test cells scored by hand whose tests give other points since (a "
                   f"resubmission; formgrader: needs manual grade; the tests' points count, "
                   f"provisional, until you set a score again): {len(stale)}",
                   *(f"  {k}" for k in stale)]
    flagged = [r for r in totals if r["flags"]]
    flag_items = [f"  {r['student']}/{r['assignment']}: {r['flags']}" for r in flagged]
    absent = [r for r in totals if r["status"] == NO_SUBMISSION]
    absent_items = [f"  {r['student']}/{r['assignment']}" for r in absent]
    reasons = flag_reasons(flagged)
    heads = (f"Flagged submissions ({len(flagged)}{reasons}):",
             f"No submission ({len(absent)}, scored 0 in totals.csv):")
    flines = [heads[0], *(flag_items or ["  none"]), heads[1], *(absent_items or ["  none"])]
    # the terminal gets the first SHOWN of each list (a class of hundreds), the file all
    shown = [heads[0], *_first(flag_items, out / "flags.txt"),
             heads[1], *_first(absent_items, out / "flags.txt")]
    atomic_write_text(out / "most_failed.txt", "\n".join(lines) + "\n")
    atomic_write_text(out / "written.txt", "\n".join(wlines) + "\n")
    atomic_write_text(out / "flags.txt", "\n".join(flines) + "\n")
    return {"out": out, "grades": grades, "totals": totals, "most_failed": mf,
            "written": written, "summary": "\n".join(lines + wlines[:1] + shown),
            "next": next_steps(course, out, total["to grade"],
                               sum(r["provisional"] == "yes" for r in scores[0]),
                               sum(bool(r.get(AUTOFLAGS)) for r in totals),
                               [f"{r['student']}/{r['assignment']}" for r in totals
                                if r.get(UNREAD)],
                               roster=roster_imported(course), stale=stale,
                               withdrawn=[f"{r['student']}/{r['assignment']}" for r in totals
                                          if r["status"] == WITHDRAWN],
                               collected=_to_grade(totals, course),
                               late=[f"{r['student']}/{r['assignment']}" for r in totals
                                     if r.get(LATE) and r["status"] == SUBMITTED],
                               rule=rule,
                               undated=no_duedate(course, assignments) if not rule.none else [],
                               elsewhere=[f"{r['student']}/{r['assignment']}" for r in totals
                                          if r.get(ELSEWHERE)])}


#: what a totals.csv row can be flagged for, in the order flags.txt's header and scores.csv's
#: ``flagged`` column name them
REASONS = ("flagged by the autograder", "late", "withdrawn", "collected, not autograded yet",
           "collected again since graded", "not under this --course (graded elsewhere, or "
           "deleted)")


def reasons_of(r: dict) -> list[str]:
    """What the totals.csv row ``r`` is flagged for (:data:`REASONS`; none when unflagged)."""
    return [k for k, yes in zip(REASONS, (
        bool(r.get(AUTOFLAGS)), bool(r.get(LATE)), r["status"] == WITHDRAWN,
        r["status"] == NOT_GRADED, r.get(TO_GRADE) == "changed" and r["status"] == SUBMITTED,
        bool(r.get(ELSEWHERE))), strict=True) if yes]


def flag_reasons(flagged: list[dict]) -> str:
    """``: 3 flagged by the autograder, 2 late, ...``: what the flagged rows of totals.csv are
    flagged for (a row may be counted under several reasons), or ``""`` when none."""
    why = Counter(k for r in flagged for k in reasons_of(r))
    parts = [f"{why[k]} {k}" for k in REASONS if why[k]]
    several = "; a submission may have several reasons" if sum(why.values()) > len(flagged) \
        else ""
    return f": {', '.join(parts)}{several}" if parts else ""


def _to_grade(totals: list[dict], course: Course) -> list[str]:
    """``student/assignment`` of every submission collected but not autograded yet (new, or
    collected again since it was graded), also of assignments not in the reports yet."""
    from grader.autograde import to_grade

    return sorted({f"{s}/{a}" for s, a in to_grade(course)}
                  | {f"{r['student']}/{r['assignment']}" for r in totals if r.get(TO_GRADE)})


#: list items a summary prints before "... and N more in <file>"
SHOWN = 20


def _first(items: list[str], where: Path) -> list[str]:
    """The first ``SHOWN`` items (``none`` when empty) and how many more ``where`` lists."""
    if not items:
        return ["  none"]
    more = len(items) - SHOWN
    return items[:SHOWN] + ([f"  ... and {more} more in {where}"] if more > 0 else [])


def _listed(names: list[str], n: int = 10) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def next_steps(course: Course, out: Path, to_grade: int, provisional: int, flagged: int,
               unread: list[str] = (), roster: bool = True,
               stale: list[str] = (), withdrawn: list[str] = (),
               collected: list[str] = (), late: list[str] = (),
               rule: Rule = late.NONE, elsewhere: list[str] = (),
               undated: list[str] = ()) -> list[str]:
    """What the instructor does next, in order: import the class list when the gradebook seems
    to know only the students who submitted something (``roster`` false), look at the flagged
    submissions (those ``withdrawn`` from submitted/ since they were autograded: collect them
    again if they should stand; ask again for the notebooks that could not be read), grade
    the written answers by hand (and look again at the test cells scored by hand whose tests
    give other points since, ``stale``), then upload scores.csv (final once nothing is provisional).
    ``provisional`` counts the rows of scores.csv (students) whose total is provisional, not
    totals.csv's rows."""
    steps = []
    if collected:
        steps.append(f"{len(collected)} submission(s) collected are not autograded yet (new, or "
                     "collected again since they were graded: their totals are 0 or the earlier "
                     "submission's, provisional): run `tconv-grader autograde --course "
                     f"{shlex.quote(str(course.root))}`, then report again "
                     f"({_listed(collected)})")
    if not roster:
        steps.append("the gradebook knows only the students who submitted something: to give "
                     "every student of the class a row (0 where nothing came in), import the "
                     "class list (columns id, first_name, last_name, email) with `nbgrader db "
                     f"student import --db {redact(course.db_url)} roster.csv`, then run "
                     "report again")
    if flagged:
        steps.append(f"look at the {flagged} submission(s) the autograder flagged (time or "
                     "memory limits, edited test cells, unreadable notebooks, ...) in "
                     f"{out / 'flags.txt'} (each "
                     f"executed notebook is in {course.autograded}/<student>/<assignment>/)")
    if withdrawn:
        steps.append(f"{len(withdrawn)} submission(s) autograded earlier are no longer under "
                     f"{course.submitted} (withdrawn, or collected by mistake): they score 0 "
                     "(status withdrawn in totals.csv, the earlier score in its flags) and "
                     f"their grades are left out of grades.csv: {_listed(withdrawn)}. If one "
                     "should stand, collect it again and run autograde (its grades come back, "
                     "hand grades of the same answers too); otherwise nothing more to do (the "
                     "gradebook keeps its grades, and formgrader still lists it)")
    if elsewhere:
        steps.append(f"{len(elsewhere)} submission(s) of the gradebook (--db) have neither "
                     f"folder under this --course ({course.submitted}, {course.autograded}): "
                     "graded by another grader sharing --db, or deleted here. The gradebook "
                     "does not record where a submission was graded, so they count as it has "
                     "them (flagged in flags.txt). If one was withdrawn: collect it again here, "
                     "run autograde, then delete its submitted/ folder (it then scores 0, "
                     f"withdrawn) ({_listed(elsewhere)})")
    if late and rule.none:
        steps.append(f"{len(late)} submission(s) came in after their due date (flags.txt says "
                     "how late); no late penalty is set, so none is taken: to take one, run "
                     f"report with --late-penalty (zero, or e.g. 10%/day: see `tconv-grader "
                     f"report --help`), or take it into account by hand ({_listed(late)})")
    elif late:
        steps.append(f"{len(late)} submission(s) came in after their due date: late penalty "
                     f"{rule.text} taken from their totals (totals.csv's late_penalty; flags.txt "
                     "says how late and how much); `tconv-grader feedback` tells each student "
                     f"({_listed(late)})")
    if undated:
        steps.append(f"the late penalty {rule.text} applies only to an assignment with a due "
                     f"date, and the gradebook has none for {_listed(undated)}: set one with "
                     f"`nbgrader db assignment add {undated[0]} --duedate \"YYYY-MM-DD HH:MM:SS "
                     f"UTC\" --db {redact(course.db_url)}`, then run report and feedback again")
    if unread:
        steps.append(f"{len(unread)} submission(s) could not be graded at all (unreadable "
                     "notebook or wrong file name, see flags.txt): get the notebook again, "
                     "collect and autograde it, or give a hand grade in formgrader "
                     f"({_listed(unread)})")
    if to_grade:
        steps.append(f"grade the {to_grade} written answer(s) by hand in nbgrader's formgrader "
                     f"({formgrader_command(course)}, menu Nbgrader > Formgrader), then run "
                     "report and feedback again")
    if stale:
        steps.append(f"{len(stale)} test cell(s) you scored by hand now get other points from "
                     "the tests (a resubmission), which count, provisional, until you set a "
                     "score again in formgrader (needs manual grade; 'Mark graded' keeps the "
                     f"earlier score): {_listed(stale)}")
    why = ", or ".join(w for w, on in (
        ("submissions to autograde", collected), ("written answers still to grade", True),
        ("test cells scored by hand to look at again", stale)) if on)
    state = (f"{provisional} student(s) in it have a provisional total ({why})" if provisional
             else "every total is final")
    steps.append(f"upload {out / 'scores.csv'} (one row per student) to your LMS; {state}")
    return steps


def formgrader_command(course: Course) -> str:
    """How to open formgrader on ``course``: from the repository root (its
    ``nbgrader_config.py``), the course directory as the Jupyter root (formgrader refuses a
    course outside the server's root), and the gradebook of ``--db`` when one was given (its
    password is not printed)."""
    db = "" if course.default_db else "TCONV_DB='<the --db URL>' "
    root = shlex.quote(str(course.root))
    return (f"from the repository root with .venv active: TCONV_COURSE={root} {db}jupyter lab "
            f"--ServerApp.root_dir={root}")


def main(args) -> int:
    course = Course.open(args.course, args.db)
    before = late.load(course.root)
    # a bad value is a usage error before anything is done; the rule is saved only once the
    # reports are written, so a report that fails (e.g. an --output it cannot write) keeps the old
    given = None if args.late_penalty is None else late.parse(args.late_penalty)
    rule = before if given is None else given
    res = report(course, Path(args.output).expanduser().resolve() if args.output else None,
                 progress=not args.quiet, rule=rule)
    late.set_rule(course.root, given, "report")
    print(res["summary"])
    print(f"wrote grades.csv, totals.csv, scores.csv, most_failed.txt, written.txt, flags.txt "
          f"and {len({r['assignment'] for r in res['totals']})} histogram(s) to {res['out']}")
    for step in res["next"]:
        print(f"next: {step}")
    if rule != before and (course.feedback).is_dir():
        print(f"next: the late penalty changed ({before.text} -> {rule.text}): run "
              f"`tconv-grader feedback --course {shlex.quote(str(course.root))}` so the pages "
              "show the same totals")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("report",
                       help="CSV of grades, histograms, most-failed tests, written answers, flags",
                       description=__doc__.rstrip())  # every file it writes
    p.add_argument("--course", required=True, help="course directory (instructor state)")
    p.add_argument("--db", help="SQLAlchemy URL of the gradebook (default: "
                   "sqlite:///<course>/gradebook.db)")
    p.add_argument("--output", "-o", help="output folder (default: <course>/reports)")
    p.add_argument("--late-penalty", metavar="RULE",
                   help="set the course's late penalty, saved in <course>/late_penalty.txt; "
                   "report and feedback apply it from then on: none (the default: lateness is "
                   "flagged, nothing taken), zero (a late submission scores 0), or P%%/day or "
                   "P%%/hour (P percent of the assignment's points per day or hour late, each "
                   "part of one counting whole; never below 0). Lateness is nbgrader's: the "
                   "due date (`nbgrader db assignment add ASSIGNMENT --duedate ...`) plus the "
                   "student's extension, against the time collect recorded")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=main)
