"""``tconv-grader validate``: every solution scores full marks, every released stub scores zero.

For each assignment, a scratch course directory receives two submissions, ``solution`` (the
instructor source from ``solutions/``) and ``stub`` (the student release from ``exercises/``,
regenerated in memory when absent), which then go through the real ``autograde`` path
(sandboxed; unsandboxed only with ``--unsafe-no-sandbox`` when bubblewrap is unavailable).
Only auto-graded points count: written answers are graded by hand. Because grading compares
with the solution's own results, each solution also runs once in a Jupyter kernel in student
mode, where every ``expect`` checks its ``expected`` value (``--no-student-mode`` skips this).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from grader.gradebook import REPO, Course, UsageError, assignments_in, check_assignment


def validate(solutions: Path, released: Path, assignments: list[str] | None = None, *,
             sandbox: bool = True, jobs: int | None = None, timeout: float | None = None,
             progress: bool = True, student_mode: bool = True) -> list[str]:
    """Problems found (empty when every assignment validates)."""
    import json

    from grader.autograde import autograde
    from grader.gradebook import notebooks_of
    from grader.release import load_source, release_notebook, write_notebook

    names = assignments or assignments_in(solutions)
    if not names:
        raise UsageError(f"--solutions holds no assignment notebooks: {solutions}")
    for a in names:
        check_assignment(solutions, a)
    problems = []
    if student_mode:  # the solutions pass their own test cells' `expected` values (expect raises)
        from grader.check import check
        from grader.execute import Limits

        # the grading limits (30 s per cell), a --timeout being the notebook's, as in autograde
        limits = {} if timeout is None else {
            "timeout": min(Limits().cell_timeout, timeout), "notebook_timeout": timeout}

        for a in names:
            for nb_id in notebooks_of(solutions, a):
                res = check(solutions / a / f"{nb_id}.ipynb", progress=False, **limits)
                bad = [f"{t['grade_id']}: {t['message']}" for t in res["tests"] if not t["passed"]]
                if bad:
                    problems.append(f"{a}: the solution fails its test cells in student mode "
                                    f"({'; '.join(bad)})")
    with tempfile.TemporaryDirectory(prefix="tconv-validate-") as tmp:
        course = Course.open(Path(tmp) / "course", solutions=solutions)
        for a in names:
            for nb_id in notebooks_of(solutions, a):
                src = solutions / a / f"{nb_id}.ipynb"
                sol_dir = course.submitted / "solution" / a
                stub_dir = course.submitted / "stub" / a
                sol_dir.mkdir(parents=True, exist_ok=True)
                stub_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, sol_dir / f"{nb_id}.ipynb")
                rel = released / a / f"{nb_id}.ipynb"
                if rel.exists():
                    shutil.copyfile(rel, stub_dir / f"{nb_id}.ipynb")
                else:
                    url = f"sqlite:///{Path(tmp) / 'release.db'}"
                    write_notebook(release_notebook(load_source(src), a, nb_id, url),
                                   stub_dir / f"{nb_id}.ipynb")
        summary = autograde(course, names, None, jobs=jobs, timeout=timeout, sandbox=sandbox,
                            force=True, progress=progress)
        problems += summary.errors
        for a in names:
            for who, want in (("solution", "full"), ("stub", "zero")):
                path = course.results_path(who, a)
                if not path.exists():
                    if not any(f"of {a}/" in e for e in summary.errors):
                        problems.append(f"{a}: the {who} was not graded")
                    continue
                rec = json.loads(path.read_text())
                score, top = rec["score"], rec["max_score"]
                if top <= 0:
                    problems.append(f"{a}: no auto-graded points at all")
                elif want == "full" and score != top:
                    bad = [f"{nb}/{g}: " + "; ".join(t["message"] for t in c["tests"]
                                                     if not t["passed"])
                           for nb, v in rec["notebooks"].items() for g, c in v["cells"].items()
                           if not c["manual"] and not c["passed"]]
                    problems.append(f"{a}: the solution scores {score:g}/{top:g}, not full marks "
                                    f"({'; '.join(bad)}; flags: {rec['flags']})")
                elif want == "zero" and score != 0:
                    bad = [f"{nb}/{g}" for nb, v in rec["notebooks"].items()
                           for g, c in v["cells"].items() if not c["manual"] and c["passed"]]
                    problems.append(f"{a}: the released stub scores {score:g}/{top:g}, not zero "
                                    f"(passing: {', '.join(bad)})")
                elif want == "full" and rec["flags"]:
                    problems.append(f"{a}: the solution is flagged: {rec['flags']}")
    return problems


def main(args) -> int:
    from grader.autograde import resolve_sandbox

    solutions = Path(args.solutions).resolve()
    if not solutions.is_dir():
        raise UsageError(f"--solutions must be a directory; got {solutions}")
    sandbox = resolve_sandbox(args.unsafe_no_sandbox)
    problems = validate(solutions, Path(args.released).resolve(), args.assignment or None,
                        sandbox=sandbox, jobs=args.jobs, timeout=args.timeout,
                        progress=not args.quiet, student_mode=not args.no_student_mode)
    if problems:
        for p in problems:
            print(f"INVALID {p}", file=sys.stderr)
        return 1
    print(f"valid: every solution scores full marks and every stub zero "
          f"({len(args.assignment or assignments_in(solutions))} assignment(s))")
    released = Path(args.released).resolve()
    if released.is_dir():
        print(f"next: hand out {released} to the students; collect their work with "
              "`tconv-grader collect SUBMISSIONS --course DIR`")
    else:  # the stubs were released in memory for this check
        print(f"next: tconv-grader release -o {released} (there is no release there yet; the "
              "stubs validated here were generated in memory)")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("validate", help="solutions score full marks, stubs score zero",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("assignment", nargs="*", metavar="ASSIGNMENT",
                   help="assignments to validate (default: all under --solutions)")
    p.add_argument("--solutions", default=str(REPO / "solutions"),
                   help="instructor source (default: the repository's solutions/)")
    p.add_argument("--released", default=str(REPO / "exercises"),
                   help="student release whose stubs must score zero (default: the "
                   "repository's exercises/)")
    p.add_argument("--jobs", "-j", type=int, default=None, help="notebooks run in parallel "
                   "(default: number of cores)")
    p.add_argument("--timeout", type=float, default=None,
                   help="per-notebook time limit in seconds (default: grading's 120; cells get "
                        "grading's 30 s each)")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run unsandboxed when bubblewrap is unavailable (never in CI)")
    p.add_argument("--no-student-mode", action="store_true",
                   help="skip running each solution in a Jupyter kernel in student mode (where "
                        "every expect() compares with its `expected` value)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=main)
