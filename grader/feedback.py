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


def _manual_scores(course: Course, student: str, assignment: str) -> dict[tuple[str, str], float]:
    return {(nb, g.cell.name): float(g.manual_score)
            for nb, g in course.grades(student, assignment) or [] if g.manual_score is not None}


def _blank_answers(course: Course, student: str, assignment: str) -> set[tuple[str, str]]:
    """Cells nbgrader scored 0 on its own and nobody has graded by hand: among written answers,
    those left exactly as released."""
    return {(nb, g.cell.name) for nb, g in course.grades(student, assignment) or []
            if g.manual_score is None and g.auto_score is not None and g.auto_score == 0}


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
    total = 0.0
    max_total = 0.0
    for nb_id, nb in sorted(record["notebooks"].items()):
        for gid, cell in nb["cells"].items():
            max_total += cell["max"]
            if cell["manual"]:
                score = manual.get((nb_id, gid))
                left = score is None and (nb_id, gid) in blank
                total += score or 0.0
                shown = ("0" if left else "awaiting manual grading" if score is None
                         else f"{score:g}")
                note = ("written answer, left as released: no answer, so 0 points" if left
                        else "written answer (graded by hand)")
                rows.append(f"<tr><td>{e(nb_id)}</td><td>{e(gid)}</td><td>{shown} / "
                            f"{cell['max']:g}</td><td>{note}</td></tr>")
                continue
            score = manual.get((nb_id, gid), cell["points"] or 0.0)
            total += score
            items = []
            for passed, text in merged_messages(cell["tests"]):
                cls = "pass" if passed else "fail"
                mark = "&#10003;" if passed else "&#10007;"
                items.append(f'<li class="{cls}">{mark} {sc(text, nb_id)}</li>')
            rows.append(f"<tr><td>{e(nb_id)}</td><td>{e(gid)}</td><td>{score:g} / "
                        f"{cell['max']:g}</td><td><ul>{''.join(items)}</ul></td></tr>")
    flags = "".join(f"<li>{sc(f)}</li>" for f in record.get("flags", []))
    flag_html = f'<div class="flag"><b>Notes from the grader</b><ul>{flags}</ul></div>' \
        if flags else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(a)}: feedback for {e(s)}</title><style>{CSS}</style></head><body>"
            f"<h1>{e(a)}</h1><p>Student: <b>{e(s)}</b>. Score: <b>{total:g} / {max_total:g}</b>"
            f"</p>{flag_html}<table><tr><th>Notebook</th><th>Test cell</th><th>Points</th>"
            f"<th>Tests</th></tr>{''.join(rows)}</table></body></html>\n")


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
    per_student: dict[str, list[tuple[str, str]]] = {}
    for p in tqdm(records, desc="feedback", unit="submission", disable=not progress,
                  file=sys.stderr):
        rec = json.loads(p.read_text())
        s, a = rec["student"], rec["assignment"]
        out = course.feedback / s / a / "feedback.html"
        atomic_write_text(out, render(rec, _manual_scores(course, s, a),
                                      _secrets(course, a, rec.get("notebooks", {})),
                                      _blank_answers(course, s, a)))
        written.append(out)
        per_student.setdefault(s, []).append((a, f"{a}/feedback.html"))
    for s, links in per_student.items():
        items = "".join(f'<li><a href="{html.escape(h)}">{html.escape(a)}</a></li>'
                        for a, h in sorted(links))
        atomic_write_text(course.feedback / s / "index.html",
                          f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>"
                          f"Feedback for {html.escape(s)}</title></head><body><h1>Feedback for "
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
