"""``tconv-grader feedback --course DIR``: one HTML page per student and assignment.

Written to ``<course>/feedback/<student>/<assignment>/feedback.html`` (+ an ``index.html`` per
student, listing every assignment of the gradebook: its score, or "no submission") from the
autograder's ``results.json`` and the gradebook's scores (manual grades included when present).
Each test shows its outcome and message, and errors raised by the student's own code cells are
listed above the tests (a later test's NameError often starts there); hidden tests show only
"hidden test passed" / "hidden test failed": their source and values never reach the page. A
visible test that fails shows what was expected, what came back and its hint, except in a cell that
also runs hidden tests: there the student's code may have seen the hidden source, so nothing it
produced (answer, error text) is echoed. As a last line of defence every text on the page is
scrubbed of runs of hidden test source (:func:`grader.autograde.scrub_hidden`; the autograder
already did so when it wrote ``results.json``).
"""

from __future__ import annotations

import html
import json
import re
import sys
from glob import escape as glob_escape
from pathlib import Path

from grader.gradebook import Course, UsageError, atomic_write_text, next_command

CSS = """body{font-family:system-ui,sans-serif;max-width:56em;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3em .5em;
text-align:left;vertical-align:top}.pass{color:#17663a}.fail{color:#a0141e}
.flag{background:#fff4d6;padding:.5em 1em;border-left:4px solid #e0a800}"""


def _hand_grades(course: Course, student: str, assignment: str
                 ) -> tuple[dict[tuple[str, str], float], set[tuple[str, str]]]:
    """``(manual, blank)`` from one read of the gradebook: the hand grades by ``(notebook,
    cell)``, and the cells nbgrader scored 0 on its own that nobody has graded by hand (among
    written answers, those left exactly as released)."""
    rows = course.grades(student, assignment) or []
    manual = {(nb, g.cell.name): float(g.manual_score) for nb, g in rows
              if g.manual_score is not None}
    blank = {(nb, g.cell.name) for nb, g in rows
             if g.manual_score is None and g.auto_score is not None and g.auto_score == 0}
    return manual, blank


def _secrets(course: Course, assignment: str, notebooks) -> dict[str, frozenset[str]]:
    """Hidden-source n-grams of each notebook whose instructor source is at hand."""
    import nbformat

    from grader.autograde import hidden_grams

    out = {}
    for nb_id in notebooks:
        path = course.solutions / assignment / f"{nb_id}.ipynb"
        try:
            out[nb_id] = hidden_grams(nbformat.read(path, as_version=4))
        except (OSError, ValueError, KeyError, AttributeError):
            continue
    return out


NOT_REACHED = re.compile(r"\[([^\]]+)\] not reached: (.*)", re.S)


def merged_messages(tests: list[dict]) -> list[tuple[bool, str]]:
    """``(passed, text)`` per line of a test cell's list. Hidden tests only say passed or failed;
    visible tests that were not reached for the same reason share one line, at the place of
    the first of them (a stub stops every test after it the same way)."""
    lines: list[tuple[bool, str, str | None]] = []    # (passed, text, reason not reached)
    names: dict[str, list[str]] = {}                   # reason -> names of the tests it stopped
    for t in tests:
        m = None if t["passed"] or t["hidden"] else NOT_REACHED.fullmatch(t["message"])
        if t["hidden"]:
            lines.append((t["passed"], f"hidden test {'passed' if t['passed'] else 'failed'}",
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


def score(record: dict, manual: dict[tuple[str, str], float],
          blank: set[tuple[str, str]] | frozenset = frozenset()) -> tuple[float, float, int]:
    """``(points, max points, written answers still to grade)`` of one submission: the
    autograder's points, overridden by any hand grade; a written answer counts 0 until graded."""
    total = max_total = 0.0
    pending = 0
    for nb_id, nb in record["notebooks"].items():
        for gid, cell in nb["cells"].items():
            max_total += cell["max"]
            given = manual.get((nb_id, gid))
            if cell["manual"]:
                pending += given is None and (nb_id, gid) not in blank
                total += given or 0.0
            else:
                total += (cell["points"] or 0.0) if given is None else given
    return total, max_total, pending


def _score_text(total: float, max_total: float, pending: int) -> str:
    still = (f" (not final: {pending} written answer{'s' * (pending > 1)} still to be graded "
             "by hand)" if pending else "")
    return f"{total:g} / {max_total:g}{still}"


def render(record: dict, manual: dict[tuple[str, str], float],
           secrets: dict[str, frozenset[str]] | None = None,
           blank: set[tuple[str, str]] | frozenset = frozenset()) -> str:
    from grader.autograde import scrub_hidden

    secrets = secrets or {}
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
                shown = ("0" if left else "awaiting manual grading" if given is None
                         else f"{given:g}")
                note = ("written answer, left as released: no answer, so 0 points" if left
                        else "written answer (graded by hand)")
                rows.append(f"<tr><td>{e(nb_id)}</td><td>{e(gid)}</td><td>{shown} / "
                            f"{cell['max']:g}</td><td>{note}</td></tr>")
                continue
            points = manual.get((nb_id, gid), cell["points"] or 0.0)
            items = []
            for passed, text in merged_messages(cell["tests"]):
                cls = "pass" if passed else "fail"
                mark = "&#10003;" if passed else "&#10007;"
                items.append(f'<li class="{cls}">{mark} {sc(text, nb_id)}</li>')
            rows.append(f"<tr><td>{e(nb_id)}</td><td>{e(gid)}</td><td>{points:g} / "
                        f"{cell['max']:g}</td><td><ul>{''.join(items)}</ul></td></tr>")
    flags = "".join(f"<li>{sc(f)}</li>" for f in record.get("flags", []))
    flag_html = f'<div class="flag"><b>Notes from the grader</b><ul>{flags}</ul></div>' \
        if flags else ""
    errors = "".join(f"<li>{e(nb_id)}, {sc(err, nb_id)}</li>"
                     for nb_id, nb in sorted(record["notebooks"].items())
                     for err in nb.get("code_errors", []))
    if errors:
        flag_html += ('<div class="flag"><b>Errors in your code cells</b> (a test below that '
                      "stops with NameError or the like may come from one of these)"
                      f"<ul>{errors}</ul></div>")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(a)}: feedback for {e(s)}</title><style>{CSS}</style></head><body>"
            f"<h1>{e(a)}</h1><p>Student: <b>{e(s)}</b>. Score: "
            f"<b>{e(_score_text(*score(record, manual, blank)))}</b></p>{flag_html}"
            f"<table><tr><th>Notebook</th><th>Test cell</th><th>Points</th><th>Tests</th></tr>"
            f"{''.join(rows)}</table></body></html>\n")


def _some(names: list[str], n: int = 20) -> str:
    """Up to ``n`` names, comma-separated, with how many there are in all when more."""
    if not names:
        return "none"
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def select(course: Course, students: list[str] | None, assignments: list[str] | None
           ) -> list[Path]:
    """The ``results.json`` files of the autograded submissions asked for; a usage error that
    names the argument and the value when ASSIGNMENT or a --student matches none."""
    records = sorted(course.autograded.glob("*/*/results.json"))
    if not records:
        raise UsageError(f"--course has no autograded submissions under {course.autograded} "
                         "(run `tconv-grader autograde --course ...` first)")
    have_a = sorted({p.parent.name for p in records})
    have_s = sorted({p.parent.parent.name for p in records})
    for a in assignments or []:
        if a not in have_a:
            raise UsageError(f"ASSIGNMENT matched no autograded submission; got {a!r} "
                             f"(autograded assignments: {_some(have_a)})")
    unknown = [s for s in students or [] if s not in have_s]
    if unknown:
        raise UsageError(f"--student matched no autograded submission; got "
                         f"{', '.join(map(repr, unknown))} (students with autograded "
                         f"submissions: {_some(have_s)})")
    picked = [p for p in records if (not students or p.parent.parent.name in students)
              and (not assignments or p.parent.name in assignments)]
    if not picked:
        raise UsageError(f"--student {', '.join(map(repr, students or []))} matched no "
                         f"autograded submission of ASSIGNMENT {', '.join(assignments or [])}")
    return picked


def _roster(course: Course) -> tuple[list[str], set[tuple[str, str]]]:
    """``(assignments, {(student, assignment)})`` of the gradebook: the assignments it holds a
    submission of (as ``report`` lists them) and every submission."""
    with course.gradebook() as gb:
        subs = {(sub.student.id, a.name) for a in gb.assignments for sub in a.submissions}
    return sorted({a for _, a in subs}), subs


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
            state = "not graded yet" if (student, a) in subs else "no submission"
            items.append(f"<li>{e(a)}: {state}</li>")
    return "".join(items)


#: what a damaged results.json raises when read or rendered
BAD_RECORD = (OSError, ValueError, KeyError, TypeError, AttributeError)


def _score_of(course: Course, record: Path) -> str | None:
    try:
        rec = json.loads(record.read_text())
        manual, blank = _hand_grades(course, rec["student"], rec["assignment"])
        return _score_text(*score(rec, manual, blank))
    except BAD_RECORD:
        return None  # said when its own page was (not) written


def _page(course: Course, path: Path) -> tuple[str, str, str, int]:
    """Write the feedback page of one ``results.json``; ``(student, assignment, score text,
    written answers still to grade)``."""
    rec = json.loads(path.read_text())
    s, a = rec["student"], rec["assignment"]
    manual, blank = _hand_grades(course, s, a)
    page = render(rec, manual, _secrets(course, a, rec.get("notebooks", {})), blank)
    atomic_write_text(course.feedback / s / a / "feedback.html", page)
    points = score(rec, manual, blank)
    return s, a, _score_text(*points), points[2]


def feedback(course: Course, students: list[str] | None = None,
             assignments: list[str] | None = None, progress: bool = True,
             provisional: list[Path] | None = None) -> list[Path]:
    """Write the pages asked for and each of their students' index; the pages written. Pages
    whose score is not final yet (written answers to grade) are appended to ``provisional``."""
    from tqdm import tqdm

    if not course.default_db:
        course.require_gradebook()  # a --db that does not exist: say so first
    records = select(course, students, assignments)
    course.require_gradebook()
    written = []
    per_student: dict[str, dict[str, str]] = {}
    for p in tqdm(records, desc="feedback", unit="submission", disable=not progress,
                  file=sys.stderr):
        try:
            s, a, text, pending = _page(course, p)
        except BAD_RECORD as exc:  # one damaged record never stops the others
            print(f"feedback: skipped {p} (unreadable: {type(exc).__name__}: {exc}); "
                  "`tconv-grader autograde --force` rewrites it", file=sys.stderr)
            continue
        written.append(course.feedback / s / a / "feedback.html")
        if pending and provisional is not None:
            provisional.append(written[-1])
        per_student.setdefault(s, {})[a] = text
    roster, subs = _roster(course)
    for s, scores in per_student.items():
        for other in course.autograded.glob(f"{glob_escape(s)}/*/results.json"):
            if other.parent.name not in scores:  # left out by ASSIGNMENT: still listed
                text = _score_of(course, other)
                if text is not None:
                    scores[other.parent.name] = text
        items = _index_items(course, s, roster, subs, scores)
        atomic_write_text(course.feedback / s / "index.html",
                          f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                          f"<title>Feedback for {html.escape(s)}</title><style>{CSS}</style>"
                          f"</head><body><h1>Feedback for "
                          f"{html.escape(s)}</h1><ul>{items}</ul></body></html>\n")
    return written


def main(args) -> int:
    course = Course.open(args.course, args.db, getattr(args, "solutions", None))
    provisional: list[Path] = []
    files = feedback(course, args.student or None, [args.assignment] if args.assignment else None,
                     progress=not args.quiet, provisional=provisional)
    students = sorted({f.parent.parent.name for f in files})
    print(f"wrote {len(files)} feedback page(s) for {len(students)} student(s) under "
          f"{course.feedback}")
    if provisional:
        print(f"next: {len(provisional)} page(s) show a score that is not final (written answers "
              "still to grade by hand in formgrader); after grading, run feedback again")
    print(f"next: send each student their folder {course.feedback}/<student>/ (its index.html "
          "links every page of theirs)")
    print(f"next: {next_command('report', args)}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("feedback", help="per-student HTML feedback",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("assignment", nargs="?", metavar="ASSIGNMENT", help="only this assignment")
    p.add_argument("--student", action="append", metavar="ID",
                   help="only this student (repeatable)")
    p.add_argument("--course", required=True, help="course directory (instructor state)")
    p.add_argument("--db", help="SQLAlchemy URL of the gradebook")
    p.add_argument("--solutions", help="instructor source, to scrub hidden test text from the "
                   "pages once more (default: the repository's solutions/)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=main)
