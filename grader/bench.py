"""``make bench-grader``: sandboxed parallel autograding against plain ``nbgrader autograde``.

    python -m grader.bench [--n 40] [--jobs 1,2,4 | --jobs-list 1 2 4 8 16] [--skip-nbgrader]
                           [--runner-only] [--assignments ex1_shapes ...] [--quick]

Builds a batch of ``--n`` submissions of the real exercises (``solutions/``, round-robin over the
assignments; a mix of correct work, untouched stubs and wrong answers), then times, on that same
batch and in the same run:

* plain nbgrader: a temporary course (its own ``nbgrader_config.py``), ``nbgrader
  generate_assignment`` then ``nbgrader autograde`` per assignment: serial, unsandboxed, a Jupyter
  kernel per notebook;
* ``tconv-grader autograde --jobs N`` (sandboxed) for each N, on a fresh course each time.

Prints seconds, notebooks/s and the speed-up over nbgrader; writes JSON under
``benchmarks/results/``. ``--runner-only`` times just ``grader.execute.run_notebook`` in a process
pool (no gradebook, no nbgrader needed), which is what runs on machines without nbgrader.

Both sides must really grade: a non-zero exit of nbgrader or tconv-grader, a notebook missing
from the gradebook, correct work below full marks or an untouched stub above zero stops the
benchmark with an error (a timing of a broken run is not a result). With several worker counts
the JSON's ``scaling`` gives the speed-up and efficiency of each over ``--jobs 1``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import copy
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOLUTION_RE = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION[ \t]*\n?",
                         re.S | re.M)
VARIANTS = ("correct", "correct", "stub", "wrong")  # half right, a quarter untouched, a quarter off


def _fill(text: str, variant: str) -> str:
    """A solution cell's source as a student would hand it in."""
    def repl(m: re.Match) -> str:
        ind = m.group(1)
        if variant == "correct":
            return m.group(2)
        if variant == "stub":
            return f"{ind}raise NotImplementedError()\n"
        return f"{ind}return None\n" if "return" in m.group(2) else f"{ind}pass\n"
    return SOLUTION_RE.sub(repl, text)


def _strip_hidden(text: str) -> str:
    return re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", "", text, flags=re.S)


def assignments(solutions: Path) -> list[str]:
    return sorted(p.name for p in solutions.iterdir()
                  if p.is_dir() and (p / f"{p.name}.ipynb").is_file())


def build_batch(solutions: Path, n: int, only: list[str] | None = None
                ) -> list[tuple[str, str, object]]:
    """``n`` (student, assignment, notebook) triples, round-robin over assignments and variants."""
    names = [a for a in assignments(solutions) if not only or a in only]
    if not names:
        raise SystemExit(f"bench: no assignments under {solutions}")
    sources = {a: json.loads((solutions / a / f"{a}.ipynb").read_text()) for a in names}
    out = []
    for i in range(n):
        a = names[i % len(names)]
        variant = VARIANTS[(i // len(names)) % len(VARIANTS)]
        nb = copy.deepcopy(sources[a])
        for cell in nb["cells"]:
            md = cell.get("metadata", {}).get("nbgrader", {})
            src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            if md.get("solution") and cell["cell_type"] == "code":
                cell["source"] = _fill(src, variant)
            elif md.get("grade") and cell["cell_type"] == "code":
                cell["source"] = _strip_hidden(src)  # what the release shows
        out.append((f"s{i:03d}_{variant}", a, nb))
    return out


def write_submissions(course: Path, batch) -> None:
    for student, a, nb in batch:
        d = course / "submitted" / student / a
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{a}.ipynb").write_text(json.dumps(nb, indent=1))
        (d / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC\n")


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    return env


def time_nbgrader(batch, solutions: Path, work: Path) -> dict:
    """Plain nbgrader: generate_assignment + autograde per assignment, serial, unsandboxed."""
    course = work / "nbgrader-course"
    (course / "source").mkdir(parents=True)
    used = sorted({a for _, a, _ in batch})
    for a in used:
        shutil.copytree(solutions / a, course / "source" / a)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.CourseDirectory.course_id = 'bench'\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.Execute.timeout = 120\n")
    bindir = Path(sys.executable).parent
    nbg = [str(bindir / "nbgrader")] if (bindir / "nbgrader").exists() else \
        [sys.executable, "-m", "nbgrader"]
    for a in used:
        subprocess.run(nbg + ["generate_assignment", a, "--force", "--log-level=ERROR"],
                       cwd=course, env=_env(), check=True, capture_output=True)
    write_submissions(course, batch)
    t0 = time.perf_counter()
    for a in used:
        r = subprocess.run(nbg + ["autograde", a, "--force", "--log-level=ERROR"], cwd=course,
                           env=_env(), capture_output=True, text=True)
        if r.returncode != 0:  # a broken baseline must not count as a timing
            raise SystemExit(f"bench: nbgrader autograde {a} failed ({r.returncode}):\n"
                             f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    secs = time.perf_counter() - t0
    scores = _nbgrader_scores(course / "gradebook.db", batch)
    check_scores("plain nbgrader", scores, len(batch))
    return {"seconds": secs, "notebooks": len(batch), "per_second": len(batch) / secs,
            "score_fraction_by_variant": _mean_by_variant(scores)}


def _nbgrader_scores(db: Path, batch) -> dict[str, list[float]]:
    """Code score / max code score per variant, read from nbgrader's own gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    got: dict[str, list[float]] = {}
    with Gradebook(f"sqlite:///{db}") as gb:
        for student, a, _ in batch:
            try:
                sub = gb.find_submission(a, student)
            except MissingEntry:
                continue
            if sub.max_code_score:
                got.setdefault(student.split("_", 1)[1], []).append(
                    sub.code_score / sub.max_code_score)
    return got


def _mean_by_variant(got: dict[str, list[float]]) -> dict[str, float]:
    return {v: round(sum(x) / len(x), 3) for v, x in sorted(got.items())}


def check_scores(label: str, got: dict[str, list[float]], n: int) -> None:
    """Fail loudly unless every notebook was graded, correct work scored full marks and
    untouched stubs zero (a timing of a run that did not grade is worthless)."""
    problems = []
    graded = sum(len(v) for v in got.values())
    if graded != n:
        problems.append(f"{graded} of {n} notebooks graded")
    if any(x != 1.0 for x in got.get("correct", [])):
        problems.append(f"correct work scored {sorted(set(got['correct']))} (not all 1.0)")
    if any(x != 0.0 for x in got.get("stub", [])):
        problems.append(f"untouched stubs scored {sorted(set(got['stub']))} (not all 0)")
    if problems:
        raise SystemExit(f"bench: {label} did not grade the batch correctly: "
                         + "; ".join(problems))


def time_tconv(batch, solutions: Path, work: Path, jobs: int, unsafe: bool) -> dict:
    course = work / f"tconv-course-j{jobs}"
    write_submissions(course, batch)
    cmd = [sys.executable, "-m", "grader", "autograde", "--course", str(course),
           "--solutions", str(solutions), "--jobs", str(jobs), "--quiet"]
    if unsafe:
        cmd.append("--unsafe-no-sandbox")
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"bench: tconv-grader autograde failed ({r.returncode}):\n"
                         f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    scores = _scores(course)
    check_scores(f"tconv-grader autograde --jobs {jobs}", scores, len(batch))
    return {"jobs": jobs, "seconds": secs, "notebooks": len(batch),
            "per_second": len(batch) / secs,
            "score_fraction_by_variant": _mean_by_variant(scores)}


def _scores(course: Path) -> dict[str, list[float]]:
    """Score/max per variant: a sanity check that the timed run really graded."""
    got: dict[str, list[float]] = {}
    for path in sorted((course / "autograded").glob("*/*/results.json")):
        rec = json.loads(path.read_text())
        variant = path.parent.parent.name.split("_", 1)[1]
        if rec.get("max_score"):
            got.setdefault(variant, []).append(rec["score"] / rec["max_score"])
    return got


def _run_one(args) -> float:
    from grader.execute import run_notebook

    nb, sandbox = args
    with tempfile.TemporaryDirectory() as tmp:
        ex = run_notebook(nb, workdir=Path(tmp), sandbox=sandbox)
    return ex.seconds


def time_runner(batch, jobs: int, sandbox: bool) -> dict:
    """Only the sandboxed runner: a process pool calling run_notebook (incl. warm-up)."""
    import multiprocessing

    items = [(nb, sandbox) for _, _, nb in batch]
    t0 = time.perf_counter()
    with cf.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        each = list(pool.map(_run_one, items, chunksize=1))
    secs = time.perf_counter() - t0
    return {"jobs": jobs, "seconds": secs, "notebooks": len(batch),
            "per_second": len(batch) / secs,
            "mean_notebook_seconds": sum(each) / len(each),  # warm, excluding worker start-up
            "steady_per_second": jobs * len(each) / sum(each)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m grader.bench", description=__doc__.split("\n")[0])
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    p.add_argument("--n", type=int, default=40, help="submissions in the batch (default 40)")
    p.add_argument("--jobs", default=None,
                   help="comma-separated worker counts (default: 1, 2, 4, ... up to nproc)")
    p.add_argument("--jobs-list", type=int, nargs="+", metavar="N",
                   help="worker counts to time, e.g. --jobs-list 1 2 4 8 16 (capped at the "
                        "cores present; the result reports the scaling over them)")
    p.add_argument("--assignments", nargs="+", metavar="NAME",
                   help="only these assignments (default: all under --solutions)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 3 submissions of ex1_shapes (2 correct, 1 stub), --jobs 1")
    p.add_argument("--solutions", default=str(REPO / "solutions"))
    p.add_argument("--skip-nbgrader", action="store_true", help="do not time plain nbgrader")
    p.add_argument("--runner-only", action="store_true",
                   help="time grader.execute.run_notebook in a pool instead of autograde")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="time the unsandboxed runner (when bubblewrap is unavailable)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.assignments = 3, args.assignments or ["ex1_shapes"]
        args.jobs_list = args.jobs_list or [1]
    if args.n < 1:
        p.error(f"--n must be a positive integer; got {args.n}")
    if args.jobs_list:
        if any(j < 1 for j in args.jobs_list):
            p.error(f"--jobs-list must be positive integers; got {args.jobs_list}")
        jobs = sorted({min(j, ncpu) for j in args.jobs_list})
        if jobs != sorted(set(args.jobs_list)):
            print(f"bench: --jobs-list capped at the {ncpu} core(s) present: {jobs}",
                  file=sys.stderr)
    elif args.jobs:
        try:
            jobs = [int(j) for j in args.jobs.split(",")]
        except ValueError:
            p.error(f"--jobs must be comma-separated integers; got {args.jobs!r}")
    else:
        jobs, j = [], 1
        while j < ncpu:
            jobs.append(j)
            j *= 2
        jobs.append(ncpu)
    from grader import sandbox as sb

    ok, why = sb.available()
    unsafe = args.unsafe_no_sandbox or not ok
    if not ok:
        print(f"bench: the sandbox is unavailable ({why}); timing the UNSANDBOXED runner",
              file=sys.stderr)
    solutions = Path(args.solutions).resolve()
    unknown = sorted(set(args.assignments or []) - set(assignments(solutions)))
    if unknown:
        p.error(f"--assignments must name assignments under {solutions}; got {unknown}")
    batch = build_batch(solutions, args.n, args.assignments)
    result = {"machine": {"cpus": ncpu, "platform": platform.platform(),
                          "python": platform.python_version()},
              "n": args.n, "assignments": sorted({a for _, a, _ in batch}),
              "variants": sorted({s.split("_", 1)[1] for s, _, _ in batch}),
              "sandbox": not unsafe, "sandbox_reason": why, "mode": "runner-only"
              if args.runner_only else "autograde", "nbgrader": None, "tconv": []}
    with tempfile.TemporaryDirectory(prefix="tconv-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_nbgrader and not args.runner_only:
            print(f"plain nbgrader autograde, {args.n} notebooks (serial, unsandboxed) ...",
                  flush=True)
            result["nbgrader"] = time_nbgrader(batch, solutions, work)
            nbg = result["nbgrader"]
            print(f"  {nbg['seconds']:.1f} s  ({nbg['per_second']:.2f} notebooks/s)", flush=True)
        for j in jobs:
            label = "runner pool" if args.runner_only else "tconv-grader autograde"
            print(f"{label} --jobs {j} ({'sandboxed' if not unsafe else 'UNSANDBOXED'}) ...",
                  flush=True)
            r = (time_runner(batch, j, not unsafe) if args.runner_only
                 else time_tconv(batch, solutions, work, j, unsafe))
            if result["nbgrader"]:
                r["speedup_vs_nbgrader"] = result["nbgrader"]["seconds"] / r["seconds"]
            result["tconv"].append(r)
            extra = (f", {r['speedup_vs_nbgrader']:.1f}x nbgrader"
                     if "speedup_vs_nbgrader" in r else "")
            print(f"  {r['seconds']:.1f} s  ({r['per_second']:.2f} notebooks/s{extra})",
                  flush=True)
            if r.get("score_fraction_by_variant"):
                print(f"  mean score fraction by variant: {r['score_fraction_by_variant']}")
    base = next((r for r in result["tconv"] if r["jobs"] == 1), None)
    if base:  # scaling over the worker counts, relative to one worker
        result["scaling"] = [{"jobs": r["jobs"], "speedup_vs_1_job": base["seconds"] / r["seconds"],
                              "efficiency": base["seconds"] / r["seconds"] / r["jobs"]}
                             for r in result["tconv"]]
        for row in result["scaling"]:
            print(f"  --jobs {row['jobs']}: {row['speedup_vs_1_job']:.2f}x one job "
                  f"({100 * row['efficiency']:.0f}% efficiency)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = out / f"grader-{result['mode']}-{ncpu}cpu-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
