"""``python -m grader.bench --quick``: both sides (plain nbgrader and tconv-grader) really graded
the batch, and the JSON has every field. No timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from grader_class import sandbox_args

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.xdist_group("grader_bench")


@pytest.mark.slow
def test_quick_bench_grades_on_both_sides(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    unsafe = ["--unsafe-no-sandbox"] if sandbox_args() else []
    res = subprocess.run([sys.executable, "-m", "grader.bench", "--quick", "--out", str(tmp_path),
                          *unsafe], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    [path] = tmp_path.glob("grader-autograde-*.json")
    result = json.loads(path.read_text())
    assert result["n"] == 3 and result["assignments"] == ["ex1_shapes"]
    assert result["mode"] == "autograde" and result["sandbox"] == (not unsafe)
    nbg = result["nbgrader"]
    assert nbg["notebooks"] == 3 and nbg["seconds"] > 0
    assert nbg["score_fraction_by_variant"] == {"correct": 1.0, "stub": 0.0}
    [ours] = result["tconv"]
    assert ours["jobs"] == 1 and ours["notebooks"] == 3 and ours["seconds"] > 0
    assert ours["score_fraction_by_variant"] == {"correct": 1.0, "stub": 0.0}
    assert ours["speedup_vs_nbgrader"] > 0
    assert [r["jobs"] for r in result["scaling"]] == [1]
    assert result["scaling"][0]["speedup_vs_1_job"] == 1.0


def test_a_broken_baseline_fails_loudly():
    from grader.bench import check_scores

    with pytest.raises(SystemExit, match="did not grade the batch correctly: 1 of 2 notebooks "
                                         "graded; correct work scored \\[0.0\\]"):
        check_scores("plain nbgrader", {"correct": [0.0]}, 2)
    with pytest.raises(SystemExit, match="untouched stubs scored \\[1.0\\]"):
        check_scores("x", {"correct": [1.0], "stub": [1.0]}, 2)
    check_scores("x", {"correct": [1.0], "stub": [0.0], "wrong": [0.4]}, 3)  # passes
