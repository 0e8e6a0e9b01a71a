"""``tconv-grader feedback --course DIR``: one HTML page per student and assignment.

Written to ``<course>/feedback/<student>/<assignment>/feedback.html`` (+ an ``index.html`` per
student) from the autograder's ``results.json`` and the gradebook's scores (manual grades
included when present). Each test shows its outcome and message; hidden tests show only "hidden
test passed" / "hidden test failed": their source and values never reach the page. A visible test
that fails shows what was expected, what came back and its hint, except in a cell that also runs
hidden tests: there the student's code may have seen the hidden source, so nothing it produced
(answer, error text) is echoed. As a last line of defence every text on the page is scrubbed of
runs of hidden test source (:func:`grader.autograde.scrub_hidden`; the autograder already did so
when it wrote ``results.json``).
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

from grader.gradebook import Course, UsageError, atomic_write_text

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
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(a)}: feedback for {e(s)}</title><style>{CSS}</style></head><body>"
            f"<h1>{e(a)}</h1><p>Student: <b>{e(s)}</b>. Score: "
            f"<b>{e(_score_text(*score(record, manual, blank)))}</b></p>{flag_html}"
            f"<table><tr><th>Notebook</th><th>Test cell</th><th>Points</th><th>Tests</th></tr>"
            f"{''.join(rows)}</table></body></html>\n")


def feedback(course: Course, students: list[str] | None = None,
             assignments: list[str] | None = None, progress: bool = True) -> list[Path]:
    from tqdm import tqdm

    records = sorted(course.autograded.glob("*/*/results.json"))
    records = [p for p in records if (not students or p.parent.parent.name in students)
               and (not assignments or p.parent.name in assignments)]
    if not records:
        raise UsageError(f"--course has no autograded submissions under {course.autograded} "
                         "(run `tconv-grader autograde --course ...` first)")
    written = []
    per_student: dict[str, list[tuple[str, str, str]]] = {}
    for p in tqdm(records, desc="feedback", unit="submission", disable=not progress,
                  file=sys.stderr):
        rec = json.loads(p.read_text())
        s, a = rec["student"], rec["assignment"]
        out = course.feedback / s / a / "feedback.html"
        manual, blank = _hand_grades(course, s, a)
        atomic_write_text(out, render(rec, manual, _secrets(course, a, rec.get("notebooks", {})),
                                      blank))
        written.append(out)
        per_student.setdefault(s, []).append((a, f"{a}/feedback.html",
                                              _score_text(*score(rec, manual, blank))))
    for s, links in per_student.items():
        items = "".join(f'<li><a href="{html.escape(h)}">{html.escape(a)}</a>: '
                        f"{html.escape(text)}</li>" for a, h, text in sorted(links))
        atomic_write_text(course.feedback / s / "index.html",
                          f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                          f"<title>Feedback for {html.escape(s)}</title><style>{CSS}</style>"
                          f"</head><body><h1>Feedback for "
                          f"{html.escape(s)}</h1><ul>{items}</ul></body></html>\n")
    return written


def main(args) -> int:
    course = Course.open(args.course, args.db, getattr(args, "solutions", None))
    files = feedback(course, args.student or None, [args.assignment] if args.assignment else None,
                     progress=not args.quiet)
    print(f"wrote {len(files)} feedback page(s) under {course.feedback}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("feedback", help="per-student HTML feedback",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("assignment", nargs="?", metavar="ASSIGNMENT", help="only this assignment")
    p.add_argument("--student", action="append", metavar="ID", help="only this student")
    p.add_argument("--course", required=True, help="course directory (instructor state)")
    p.add_argument("--db", help="SQLAlchemy URL of the gradebook")
    p.add_argument("--solutions", help="instructor source, to scrub hidden test text from the "
                   "pages once more (default: the repository's solutions/)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=main)
