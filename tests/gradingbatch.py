"""A synthetic class for the cluster/PostgreSQL grading tests, on the tiny ``atk_tiny`` assignment
(tests/fixtures/attacks: ``double(x)``; test cells worth 2 + 1 points), so each notebook runs in
well under a second except the deliberate faults, which the short ``--timeout`` bounds.

Each variant replaces the solution cell and knows the score it deserves (from the test cells'
rules, not from the grader's output).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "tests" / "fixtures" / "attacks" / "solutions"
ATTACKS = ROOT / "tests" / "fixtures" / "attacks" / "submissions"
ASSIGNMENT = "atk_tiny"
TIMEOUT_S = "15"  # generous: xdist + a Dask cluster on 2 loaded cores must not time out

_CORRECT = "def double(x):\n    return np.asarray(x, dtype=float) * 2\n"
VARIANTS: dict[str, tuple[str, float]] = {
    # name: (code of the solution cell, points it deserves out of 3)
    "correct": (_CORRECT, 3.0),
    "triple": ("def double(x):\n    return np.asarray(x, dtype=float) * 3\n", 1.0),
    "no_raise": ("def double(x):\n    try:\n        return np.asarray(x, dtype=float) * 2\n"
                 "    except ValueError:\n        return None\n", 2.0),
    "not_done": ("def double(x):\n    raise NotImplementedError\n", 0.0),
    "syntax": ("def double(x)\n    return x\n", 0.0),
    "infinite_loop": ((ATTACKS / "infinite_loop.py").read_text(), 0.0),
    "os_exit": ((ATTACKS / "os_exit.py").read_text(), 0.0),
    "memory_bomb": ((ATTACKS / "memory_bomb.py").read_text(), 0.0),
}

# 40 submissions: mostly ordinary work, and every fault (the slow ones once)
MIX = (["correct"] * 12 + ["triple"] * 8 + ["no_raise"] * 8 + ["not_done"] * 6
       + ["syntax", "os_exit"] * 2 + ["infinite_loop", "memory_bomb"])


def solution_notebook():
    return nbformat.read(SOLUTIONS / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)


def submission(variant: str):
    nb = solution_notebook()
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution") and cell.cell_type == "code":
            cell.source = VARIANTS[variant][0]
    return nb


def make_course(root: Path, mix: list[str] = MIX, prefix: str = "st") -> dict[str, float]:
    """Write ``root/submitted/<student>/atk_tiny/``; returns ``{student: deserved score}``."""
    deserved = {}
    for i, variant in enumerate(mix):
        student = f"{prefix}{i:03d}_{variant}"
        d = root / "submitted" / student / ASSIGNMENT
        d.mkdir(parents=True, exist_ok=True)
        nbformat.write(submission(variant), d / f"{ASSIGNMENT}.ipynb")
        (d / "timestamp.txt").write_text(f"2026-11-20 10:{i % 60:02d}:00.000000 UTC\n")
        deserved[student] = VARIANTS[variant][1]
    return deserved


def autograde_cmd(course: Path, db: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "grader", "autograde", ASSIGNMENT, "--course", str(course),
            "--solutions", str(SOLUTIONS), "--db", db, "--timeout", TIMEOUT_S, "--quiet", *extra]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def run_autograde(course: Path, db: str, *extra: str, timeout: float = 300) -> tuple[float, str]:
    """Run the CLI to completion; returns (seconds, output). Fails loudly on a non-zero exit."""
    t0 = time.perf_counter()
    proc = subprocess.run(autograde_cmd(course, db, *extra), cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, f"autograde failed ({proc.returncode}):\n{proc.stdout}\n" \
                                 f"{proc.stderr[-4000:]}"
    return seconds, proc.stdout + proc.stderr


def scores(db_url: str, assignment: str = ASSIGNMENT) -> dict:
    """``{student: (score, max_score, flagged, {grade_id: auto_score})}`` through nbgrader's
    Gradebook API."""
    from grader.dbretry import open_gradebook

    out = {}
    with open_gradebook(db_url, course_id="tconv") as gb:
        for sub in gb.find_assignment(assignment).submissions:
            cells = {g.name: g.auto_score for nb in sub.notebooks for g in nb.grades}
            flagged = any(nb.flagged for nb in sub.notebooks)
            out[sub.student.id] = (sub.score, sub.max_score, flagged, cells)
    return out
