"""``tconv-grader report --course DIR``: grades as CSV, histograms, most-failed tests, written
answers to grade, flags.

Everything is read back from the nbgrader gradebook through its own API (so it is what formgrader
shows, manual grades included), plus the flags from the autograder's ``results.json``. Writes to
``<course>/reports/`` (or ``--output``):

* ``grades.csv``       one row per student, assignment, notebook and grade cell: its kind
                       (``test``, scored by the autograder, or ``written``, an answer graded
                       by hand), auto_score, manual_score, score, max_score, flags
* ``totals.csv``       one row per student and assignment (score, max_score, flags)
* ``hist_<assignment>.png``  histogram of the assignment's total scores (matplotlib, Agg)
* ``most_failed.txt``  test cells ordered by how many submissions scored below full marks
* ``written.txt``      per written answer: how many wait for a hand grade (formgrader), how many
                       were left as released (nbgrader scores those 0) and how many are graded
* ``flags.txt``        every flagged submission with its reasons
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter
from pathlib import Path

from grader.gradebook import Course, UsageError, atomic_write_text

GRADE_FIELDS = ["student", "assignment", "notebook", "grade_cell", "kind", "auto_score",
                "manual_score", "score", "max_score", "flags"]
TOTAL_FIELDS = ["student", "assignment", "score", "max_score", "flags"]


def _fmt(x) -> str:
    return "" if x is None else f"{float(x):g}"


def gather(course: Course) -> tuple[list[dict], list[dict]]:
    """Rows of grades.csv and totals.csv, read from the gradebook."""
    grades, totals = [], []
    with course.gradebook() as gb:
        for a in sorted(gb.assignments, key=lambda x: x.name):
            for sub in sorted(a.submissions, key=lambda x: x.student.id):
                s = sub.student.id
                res_path = course.results_path(s, a.name)
                flags = json.loads(res_path.read_text()).get("flags", []) \
                    if res_path.exists() else []
                flag_text = " | ".join(flags)
                total = max_total = 0.0
                for snb in sorted(sub.notebooks, key=lambda x: x.name):
                    nb_flags = [f.split(": ", 1)[1] for f in flags
                                if f.startswith(snb.name + ": ")]
                    # a cell that is both graded and a solution is an answer graded by hand
                    written = {c.name for c in snb.notebook.solution_cells}
                    for g in sorted(snb.grades, key=lambda x: x.cell.name):
                        total += float(g.score or 0.0)
                        max_total += float(g.max_score)
                        grades.append({
                            "student": s, "assignment": a.name, "notebook": snb.name,
                            "grade_cell": g.cell.name,
                            "kind": "written" if g.cell.name in written else "test",
                            "auto_score": _fmt(g.auto_score),
                            "manual_score": _fmt(g.manual_score), "score": _fmt(g.score),
                            "max_score": _fmt(g.max_score), "flags": " | ".join(nb_flags)})
                totals.append({"student": s, "assignment": a.name, "score": _fmt(total),
                               "max_score": _fmt(max_total), "flags": flag_text})
    return grades, totals


def _csv(rows: list[dict], fields: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def histogram_bins(top: float) -> list[float]:
    """Bin edges for total scores out of ``top``: one bin per whole point, centred on it, up to
    40 points (a score of 9 sits over the 9 tick); 20 equal bins above that."""
    if top <= 40:
        return [i - 0.5 for i in range(int(top) + 2)]
    return [top * i / 20 for i in range(21)]


def histogram_figure(scores: list[float], top: float, title: str):
    """The figure of one assignment's total scores: whole students on the y axis, the median
    marked."""
    import statistics

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    bins = histogram_bins(top)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.hist(scores, bins=bins, color="#3b6ea8", edgecolor="white")
    if scores:
        median = statistics.median(scores)
        ax.axvline(median, color="#c0392b", linestyle="--", label=f"median {median:g}")
        ax.legend(loc="best", frameon=False)
    ax.set_xlim(bins[0], bins[-1])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"score (out of {top:g})")
    ax.set_ylabel("students")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def histogram(totals: list[dict], assignment: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    scores = [float(r["score"]) for r in totals if r["assignment"] == assignment]
    top = max([float(r["max_score"]) for r in totals if r["assignment"] == assignment] or [1.0])
    fig = histogram_figure(scores, top, f"{assignment}: {len(scores)} submission(s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def _cell(r: dict) -> str:
    return f"{r['assignment']}/{r['notebook']}/{r['grade_cell']}"


def most_failed(grades: list[dict]) -> list[tuple[str, int, int]]:
    """``(assignment/notebook/cell, failures, submissions)`` of the test cells, most failures
    first. A test cell without an auto score (its notebook could not be read) is left out."""
    fails, seen = Counter(), Counter()
    for r in grades:
        if r["kind"] != "test" or r["auto_score"] == "":
            continue
        key = _cell(r)
        seen[key] += 1
        if float(r["score"] or 0) < float(r["max_score"]):
            fails[key] += 1
    return sorted(((k, fails[k], seen[k]) for k in seen), key=lambda t: (-t[1], t[0]))


def written_answers(grades: list[dict]) -> dict[str, Counter]:
    """Per written answer (``assignment/notebook/cell``): how many submissions are ``to grade``
    (answered, no hand grade yet), ``blank`` (left as released: nbgrader's autograder scores
    them 0) and ``graded`` (a hand grade is in the gradebook)."""
    counts: dict[str, Counter] = {}
    for r in grades:
        if r["kind"] != "written":
            continue
        state = ("graded" if r["manual_score"] != "" else
                 "blank" if r["auto_score"] != "" else "to grade")
        counts.setdefault(_cell(r), Counter())[state] += 1
    return counts


def report(course: Course, out: Path | None = None, progress: bool = True) -> dict:
    from tqdm import tqdm

    out = out or course.reports
    grades, totals = gather(course)
    if not totals:
        raise UsageError(f"--course gradebook {course.db_url} holds no graded submissions "
                         "(run `tconv-grader autograde --course ...` first)")
    atomic_write_text(out / "grades.csv", _csv(grades, GRADE_FIELDS))
    atomic_write_text(out / "totals.csv", _csv(totals, TOTAL_FIELDS))
    assignments = sorted({r["assignment"] for r in totals})
    for a in tqdm(assignments, desc="histograms", disable=not progress, file=sys.stderr):
        histogram(totals, a, out / f"hist_{a}.png")
    mf = most_failed(grades)
    lines = ["Tests that fail most (failures / submissions):"]
    lines += [f"  {n:4d} / {m:<4d} {k}" for k, n, m in mf if n > 0] or ["  none"]
    written = written_answers(grades)
    total = sum(written.values(), Counter())
    wlines = [f"Written answers (graded by hand in formgrader): {total['to grade']} to grade, "
              f"{total['blank']} left blank (scored 0), {total['graded']} graded"]
    wlines += [f"  {c['to grade']:4d} to grade {c['blank']:4d} blank {c['graded']:4d} graded"
               f"    {k}" for k, c in sorted(written.items())]
    flagged = [r for r in totals if r["flags"]]
    flines = [f"Flagged submissions ({len(flagged)}):"]
    flines += [f"  {r['student']}/{r['assignment']}: {r['flags']}" for r in flagged] or ["  none"]
    atomic_write_text(out / "most_failed.txt", "\n".join(lines) + "\n")
    atomic_write_text(out / "written.txt", "\n".join(wlines) + "\n")
    atomic_write_text(out / "flags.txt", "\n".join(flines) + "\n")
    return {"out": out, "grades": grades, "totals": totals, "most_failed": mf,
            "written": written, "summary": "\n".join(lines + wlines[:1] + flines)}


def main(args) -> int:
    course = Course.open(args.course, args.db)
    res = report(course, Path(args.output).resolve() if args.output else None,
                 progress=not args.quiet)
    print(res["summary"])
    print(f"wrote grades.csv, totals.csv, most_failed.txt, written.txt, flags.txt and "
          f"{len({r['assignment'] for r in res['totals']})} histogram(s) to {res['out']}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("report",
                       help="CSV of grades, histograms, most-failed tests, written answers, flags",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--course", required=True, help="course directory (instructor state)")
    p.add_argument("--db", help="SQLAlchemy URL of the gradebook")
    p.add_argument("--output", "-o", help="output folder (default: <course>/reports)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=main)
