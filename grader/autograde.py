"""``tconv-grader autograde``: grade collected submissions into an nbgrader gradebook.

For each assignment:

1. nbgrader's ``SaveCells`` (via the generate_assignment chain) records the source's grade,
   solution and source cells in the gradebook (:func:`grader.gradebook.sync_source`).
2. The instructor's solution runs once through :func:`grader.execute.run_notebook`; its records
   (``"<grade_id>/<name>" -> value``) are the expected values, cached in
   ``<course>/.cache/expected/`` keyed by the source's hash.
3. Every submitted notebook is sanitised with nbgrader's own preprocessors (ClearOutput,
   DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata): locked cells (setup
   and test cells, hidden tests included) are restored from the gradebook's stored source,
   deleted ones re-inserted; every such repair is flagged.
4. The notebooks run in a process pool (``--jobs``), each through ``run_notebook`` (sandboxed).
   A test cell scores its points iff it ran without error and its records match the solution's
   (:func:`grader.testing.values_match`); otherwise 0.
5. Each submission's grades are written in one transaction through the ``Gradebook`` API
   (``Grade.auto_score``; ``SubmittedNotebook.flagged``), then ``results.json`` (per-test
   outcomes, flags, and a hash of the submitted files) is written atomically next to the
   autograded notebooks. A submission whose results exist for the files now submitted and whose
   grades are all in the gradebook is skipped (``--force`` regrades anyway); one collected again
   since (a resubmission) is regraded. So a batch killed at any point finishes on re-run with
   exactly the grades of an uninterrupted run, and a late resubmission is never left with the
   grade of the work it replaced.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import copy
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import numpy as np

from grader import extension
from grader.dbretry import redact
from grader.gradebook import (
    REPO,
    Course,
    UsageError,
    assignments_in,
    atomic_write_text,
    check_assignment,
    comment_hash,
    dump_json,
    next_command,
    notebooks_of,
    sqlite_file,
)

CACHE_VERSION = "2"   # 2: the solution's hints are cached beside its records
HINT_SHOWN = 300      # characters of a hint from a student's run shown in feedback
_QUIET = logging.getLogger("tconv.grader.nbgrader")  # repairs are reported as flags instead
_QUIET.setLevel(logging.ERROR)
# Pool workers only run notebooks (no database, no threads of ours): "forkserver" starts them
# from a small clean process (cheap, thread-safe); TCONV_GRADER_START_METHOD overrides.
_START_METHOD = os.environ.get("TCONV_GRADER_START_METHOD") or (
    "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
HIDDEN_RE = re.compile(r"BEGIN HIDDEN TESTS(.*?)END HIDDEN TESTS", re.S)
HIDDEN_BLOCK_RE = re.compile(r"[ \t]*#+[ \t]*BEGIN HIDDEN TESTS.*?END HIDDEN TESTS", re.S)
SCRUB_MIN = 12     # runs of hidden test source at least this long never reach a student
SCRUBBED = "[hidden]"
_BUILTIN_ERRORS = frozenset(n for n, v in vars(__import__("builtins")).items()
                            if isinstance(v, type) and issubclass(v, BaseException))
NAME_RE = re.compile(r"expect(?:_raises)?\(\s*(?P<q>['\"])(?P<name>.+?)(?P=q)")


# ---------------------------------------------------------------------------------------------
# plain-data codec for records (JSON, never pickle)
def encode(value: Any) -> Any:
    from grader.testing import Unserialisable

    if isinstance(value, Unserialisable):
        return {"__unserialisable__": value.type_name}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype),
                "shape": list(value.shape)}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {"__dict__": {k: encode(v) for k, v in value.items()}}
    if isinstance(value, float) and not np.isfinite(value):
        return {"__float__": repr(value)}
    return value


def decode(value: Any) -> Any:
    from grader.testing import Unserialisable

    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if "__unserialisable__" in value:
            return Unserialisable(value["__unserialisable__"])
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
        if "__tuple__" in value:
            return tuple(decode(v) for v in value["__tuple__"])
        if "__dict__" in value:
            return {k: decode(v) for k, v in value["__dict__"].items()}
        if "__float__" in value:
            return float(value["__float__"])
    return value


# ---------------------------------------------------------------------------------------------
# hidden test source must never reach a student (defence in depth; see grader.sandbox)
def hidden_grams(source: nbformat.NotebookNode) -> frozenset[str]:
    """Every ``SCRUB_MIN``-character run of the notebook's hidden test source that appears
    nowhere else in it (text the release shows anyway is not secret, so it is never scrubbed)."""
    hidden, public = [], []
    for cell in source.cells:
        text = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        if cell.cell_type == "code":
            hidden += [m.group(0) for m in HIDDEN_BLOCK_RE.finditer(text)]
            public.append(HIDDEN_BLOCK_RE.sub("\n", text))
        else:
            public.append(text)
    n = SCRUB_MIN
    grams = {h[i:i + n] for h in hidden for i in range(len(h) - n + 1)}
    if not grams:
        return frozenset()
    return frozenset(grams - {p[i:i + n] for p in public for i in range(len(p) - n + 1)})


def scrub_hidden(text: str, grams: frozenset[str] | set[str]) -> str:
    """``text`` with every run covered by hidden test source (``hidden_grams``) as [hidden]."""
    n = SCRUB_MIN
    if not grams or not isinstance(text, str) or len(text) < n:
        return text
    cover = bytearray(len(text))
    for i in range(len(text) - n + 1):
        if text[i:i + n] in grams:
            cover[i:i + n] = b"\1" * n
    if not any(cover):
        return text
    out, i = [], 0
    while i < len(text):
        if cover[i]:
            while i < len(text) and cover[i]:
                i += 1
            out.append(SCRUBBED)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def scrub_result(res: dict, grams: frozenset[str]) -> dict:
    """A graded notebook's student-visible texts (test messages, flags, errors of its code
    cells) scrubbed in place."""
    if grams:
        res["flags"] = [scrub_hidden(f, grams) for f in res.get("flags", [])]
        res["code_errors"] = [scrub_hidden(e, grams) for e in res.get("code_errors", [])]
        for cell in res.get("cells", {}).values():
            for t in cell.get("tests", []):
                t["message"] = scrub_hidden(t["message"], grams)
    return res


def _shown_error(error: str | None, status: str, has_hidden: bool) -> str:
    """How a test cell's stop is described to the student. In a cell with hidden tests the
    student's code may have seen their source, so no text of its own is echoed: only a builtin
    exception's name, or what the grader itself observed."""
    text = error or status
    if status == "error" and text.strip().rstrip(":") == "NotImplementedError":
        return "NotImplementedError (the released stub: a function it calls is not written yet)"
    if not has_hidden:
        return text
    if status == "error":
        kind = text.split(":")[0].strip()
        return kind if kind in _BUILTIN_ERRORS else "an exception"
    if status == "timeout":
        return "a timeout"
    if status == "killed":
        return "the notebook process being stopped"
    return status


# ---------------------------------------------------------------------------------------------
@dataclass
class TestSpec:
    """What the grader knows about one grade cell of the source."""

    grade_id: str
    points: float
    cell_type: str
    hidden_names: list[str] = field(default_factory=list)
    has_hidden: bool = False
    hints: dict[str, str] = field(default_factory=dict)  # visible tests' hint= texts


def visible_hints(source: str) -> dict[str, str]:
    """``{name: hint}`` for the ``expect``/``expect_raises`` calls outside hidden-test regions."""
    import ast

    visible = HIDDEN_RE.sub("", source)
    try:
        tree = ast.parse("\n".join(line for line in visible.splitlines()
                                   if not line.lstrip().startswith(("%", "!"))))
    except SyntaxError:
        return {}
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("expect", "expect_raises") and node.args and \
                isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            for kw in node.keywords:
                if kw.arg == "hint" and isinstance(kw.value, ast.Constant) and \
                        isinstance(kw.value.value, str):
                    out[node.args[0].value] = kw.value.value
    return out


def test_specs(source: nbformat.NotebookNode) -> dict[str, TestSpec]:
    specs = {}
    for cell in source.cells:
        md = cell.metadata.get("nbgrader", {})
        if not md.get("grade"):
            continue
        hidden = HIDDEN_RE.findall(cell.source)
        names = [m.group("name") for block in hidden for m in NAME_RE.finditer(block)]
        specs[md["grade_id"]] = TestSpec(md["grade_id"], float(md.get("points", 0)),
                                         cell.cell_type, names, bool(hidden),
                                         visible_hints(cell.source)
                                         if cell.cell_type == "code" else {})
    return specs


def source_hash(path: Path) -> str:
    h = hashlib.sha256(CACHE_VERSION.encode())
    h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _limits(timeout: float | None, memory_mib: int | None = None,
            cell_timeout: float | None = None):
    """The sandbox's limits for one notebook: the defaults of ``grader.execute.Limits`` (30 s per
    cell, 120 s per notebook, 2 GiB of memory for the whole notebook), a wall-clock ``timeout``
    per notebook (a cell never gets more than the notebook), ``cell_timeout`` per cell,
    ``memory_mib``."""
    from dataclasses import replace

    from grader.execute import Limits

    lim = Limits()
    if timeout is not None:
        lim = replace(lim, notebook_timeout=timeout)
    if cell_timeout is not None:
        lim = replace(lim, cell_timeout=cell_timeout)
    lim = replace(lim, cell_timeout=min(lim.cell_timeout, lim.notebook_timeout))
    if memory_mib is not None:
        lim = replace(lim, memory_bytes=int(memory_mib) << 20)
    return lim


def _workdir_files(course: Course, assignment: str) -> list[Path]:
    """Data files the notebooks may read (everything but notebooks in the assignment folder)."""
    base = course.solutions / assignment
    return [p for p in sorted(base.rglob("*"))
            if p.is_file() and p.suffix != ".ipynb" and ".ipynb_checkpoints" not in p.parts
            and "__pycache__" not in p.parts]


def _prepare_workdir(files: list[tuple[str, str]], tmp: Path) -> None:
    for src, rel in files:
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)


def run_solution(task: dict) -> dict:
    """Run an instructor notebook; plain-data result (runs in a pool worker or in-process)."""
    from grader.execute import run_notebook

    nb = nbformat.reads(task["nb"], as_version=4)
    with tempfile.TemporaryDirectory(prefix="tconv-solution-") as tmp:
        _prepare_workdir(task["files"], Path(tmp))
        ex = run_notebook(nb, workdir=Path(tmp), limits=_limits(task["timeout"]),
                          sandbox=task["sandbox"])
    specs = test_specs(nb)
    bad = [f"cell {c.index} ({c.grade_id}): {c.status} {c.error or ''}".strip()
           for c in ex.cells if c.grade_id in specs and specs[c.grade_id].cell_type == "code"
           and c.status != "ok"]
    return {"records": {k: encode(v) for k, v in ex.records.items()}, "bad": bad,
            "flags": [str(f) for f in ex.flags], "hints": dict(ex.hints)}


def expected_records(course: Course, assignment: str, notebook: str, *, sandbox: bool,
                     timeout: float | None, submit=None) -> Any:
    """The solution's records and hints for one notebook, ``(records, hints)`` (cached in the
    course directory). ``hints`` maps a record key to the ``hint=`` text its test computed.

    With ``submit`` (a pool's ``submit``) returns a zero-argument callable that waits for the
    run and returns the pair, so several solutions can run at once.
    """
    path = course.solutions / assignment / f"{notebook}.ipynb"
    cache = course.cache / "expected" / assignment / f"{notebook}.{source_hash(path)}.json"
    if cache.exists():
        cached = json.loads(cache.read_text())   # CACHE_VERSION 2: always with its hints
        pair = ({k: decode(v) for k, v in cached["records"].items()}, cached["hints"])
        return (lambda: pair) if submit else pair
    files = [(str(p), str(p.relative_to(course.solutions / assignment)))
             for p in _workdir_files(course, assignment)]
    task = {"nb": path.read_text(encoding="utf-8"), "files": files, "timeout": timeout,
            "sandbox": sandbox}

    def finish(res: dict) -> tuple[dict[str, Any], dict[str, str]]:
        if res["bad"]:
            extra = f" (flags: {', '.join(res['flags'])})" if res["flags"] else ""
            raise RuntimeError(f"the solution of {assignment}/{notebook}.ipynb fails its own "
                               "tests: " + "; ".join(res["bad"]) + extra)
        atomic_write_text(cache, dump_json({"records": res["records"], "hints": res["hints"]}))
        return {k: decode(v) for k, v in res["records"].items()}, res["hints"]

    if submit is None:
        return finish(run_solution(task))
    fut = submit(run_solution, task)
    return lambda: finish(fut.result())


def _worker_signals(grader_pid: int | None) -> None:
    """A pool worker leaves Ctrl-C to the grader (which stops the batch) and dies with it: a
    grader killed with ``kill -9`` leaves no workers, nor their sandboxes (bwrap's
    ``--die-with-parent``), behind. The worker's parent is multiprocessing's fork server, which
    only exits once every worker has, so a thread watches the grader's process itself; a
    worker the fork server starts after the grader was killed (the request was on its way) ends
    at once."""
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if grader_pid is None or not hasattr(os, "pidfd_open"):
        return
    try:
        fd = os.pidfd_open(grader_pid)
    except ProcessLookupError:        # killed before the fork server started this worker
        os.kill(os.getpid(), signal.SIGKILL)
    except OSError:                   # a kernel without pidfds (< 5.3)
        return

    def watch() -> None:
        import select

        select.select([fd], [], [])   # readable once the grader has exited, reaped or not
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="grader-watch", daemon=True).start()


def _warm_worker(sandbox: bool, grader_pid: int | None = None) -> None:
    """Pool initializer: start this worker's warm interpreter while the batch is prepared."""
    _worker_signals(grader_pid)
    try:
        from grader.execute import run_notebook

        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass")])
        with tempfile.TemporaryDirectory(prefix="tconv-warm-") as tmp:
            run_notebook(nb, workdir=Path(tmp), sandbox=sandbox)
    except Exception:  # noqa: BLE001 - a real run will report the problem
        pass


# ---------------------------------------------------------------------------------------------
# sanitising a submission (main process, nbgrader's preprocessors)
def sanitise(nb: nbformat.NotebookNode, source: nbformat.NotebookNode, course: Course,
             assignment: str, notebook: str, released: dict[str, str] | None = None
             ) -> tuple[nbformat.NotebookNode, list[str]]:
    """Restore locked cells from the gradebook (nbgrader's autograde sanitising chain).

    ``released`` maps grade ids to the released text of locked cells (hidden tests cleared):
    a cell equal to its source or its released text is unedited. Returns the notebook to run and
    the flags describing every repair.
    """
    released = released or {}
    from nbconvert.exporters.exporter import ResourcesDict
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        OverwriteCells,
        OverwriteKernelspec,
    )

    from grader.release import nbgrader_config

    flags: list[str] = []
    src_cells = {c.metadata["nbgrader"]["grade_id"]: c for c in source.cells
                 if c.metadata.get("nbgrader", {}).get("grade_id")}
    locked_ids = [g for g, c in src_cells.items()
                  if c.metadata["nbgrader"].get("locked") or c.metadata["nbgrader"].get("grade")]

    seen: dict[str, int] = {}
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid:
            seen[gid] = seen.get(gid, 0) + 1
    for gid, n in sorted(seen.items()):
        if n > 1:
            flags.append(f"cell id '{gid}' appears {n} times (duplicates ignored, as nbgrader "
                         "does)")
        if gid not in src_cells:
            flags.append(f"cell id '{gid}' is not in the source (its nbgrader metadata was "
                         "dropped)")
    before = {}
    for cell in nb.cells:
        md = cell.get("metadata", {}).get("nbgrader", {})
        gid = md.get("grade_id")
        if gid in src_cells and gid not in before:
            before[gid] = cell.source
            src_md = src_cells[gid].metadata["nbgrader"]
            if md.get("grade") and src_md.get("grade") and \
                    float(md.get("points", -1)) != float(src_md.get("points", 0)):
                flags.append(f"points of cell '{gid}' were changed to {md.get('points')!r}; "
                             f"restored to {src_md.get('points')}")
            if cell.get("cell_type") != src_cells[gid].cell_type:
                flags.append(f"cell '{gid}' was changed to a {cell.get('cell_type')} cell; "
                             "restored")

    cfg = nbgrader_config()
    cfg.OverwriteCells.add_missing_cells = False  # re-inserted below, in source order
    resources = ResourcesDict(None, {"nbgrader": {"notebook": notebook, "assignment": assignment,
                                            "db_url": course.db_url}})
    for cls in (ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells,
                CheckCellMetadata):
        nb, resources = cls(config=cfg, log=_QUIET).preprocess(nb, resources)
        if cls is DeduplicateIds:  # it leaves ``nbgrader: {}`` on dropped duplicates
            for cell in nb.cells:
                if cell.metadata.get("nbgrader") == {}:
                    del cell.metadata["nbgrader"]

    present = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells}
    for gid in locked_ids:
        if gid in before and before[gid] not in (src_cells[gid].source, released.get(gid)) \
                and src_cells[gid].metadata["nbgrader"].get("locked"):
            kind = "test" if src_cells[gid].metadata["nbgrader"].get("grade") else "locked"
            flags.append(f"{kind} cell '{gid}' was edited; restored from the source")
    # re-insert deleted locked cells after the nearest preceding source cell still present
    order = [c.metadata.get("nbgrader", {}).get("grade_id") for c in source.cells]
    for pos, gid in enumerate(order):
        if gid is None or gid in present or gid not in locked_ids:
            continue
        if not src_cells[gid].metadata["nbgrader"].get("locked"):
            continue  # a deleted manually graded answer stays missing (scored by hand)
        restored = copy.deepcopy(src_cells[gid])
        if restored.cell_type == "code":
            restored.outputs, restored.execution_count = [], None
        insert_at = 0
        for prev in reversed(order[:pos]):
            idx = next((i for i, c in enumerate(nb.cells)
                        if c.metadata.get("nbgrader", {}).get("grade_id") == prev and prev), None)
            if idx is not None:
                insert_at = idx + 1
                break
        nb.cells.insert(insert_at, restored)
        present.add(gid)
        kind = "test" if src_cells[gid].metadata["nbgrader"].get("grade") else "locked"
        flags.append(f"{kind} cell '{gid}' was deleted; restored from the source")
    return nb, flags


# ---------------------------------------------------------------------------------------------
# grading one notebook (worker process)
NOT_RUN_STOPPED = "an earlier cell stopped the notebook; see the notes from the grader"
NOT_RUN_UNREAD = "the notebook could not be read; see the notes from the grader"
NOT_RUN_NOT_FOUND = ("no notebook was found under the expected name; see the notes from the "
                     "grader")
NOT_RUN_GRADER = "the grader failed on it, not your code; it is graded again"
GRADER_ERROR = "grader error: "  # a flag that starts so: the next run grades it again
WRONG_NAME = "wrong file name: "  # ... so: the submission holds a notebook under another name
MISSING = "missing notebook "  # ... so: no notebook of that name, nor one under another name


def not_found(flags: list[str]) -> bool:
    """Whether a notebook's ``flags`` say it was not found under its name (a wrong file name,
    or missing): it was never read, but not because it could not be read."""
    return any(f.startswith((WRONG_NAME, MISSING)) for f in flags)


def _judge(specs: dict[str, dict], expected: dict[str, Any], ex,
           not_run: str = NOT_RUN_STOPPED) -> dict[str, dict]:
    """Each grade cell's points and per-test messages; ``not_run`` says why a cell that never
    ran did not."""
    from grader.testing import describe_mismatch, describe_unshown, precision_note, values_match

    def stop(error: str | None, status: str, has_hidden: bool) -> str:
        if status == "not_run":
            return f"did not run ({not_run})"
        return f"stopped with {_shown_error(error, status, has_hidden).rstrip('.: ')}"

    runs = {}
    for c in ex.cells:
        if c.grade_id and c.grade_id not in runs:
            runs[c.grade_id] = c
    cells = {}
    for gid, spec in specs.items():
        if spec["cell_type"] != "code":
            cells[gid] = {"points": None, "max": spec["points"], "passed": None, "tests": [],
                          "manual": True, "status": "manual"}
            continue
        run = runs.get(gid)
        status = run.status if run else "not_run"
        error = run.error if run else None
        prefix = gid + "/"
        exp_names = [k[len(prefix):] for k in expected if k.startswith(prefix)]
        got_names = [k[len(prefix):] for k in ex.records if k.startswith(prefix)]
        tests = []
        hidden = set(spec["hidden_names"])
        for name in exp_names:
            key = prefix + name
            ok = key in ex.records and values_match(ex.records[key], expected[key])
            if name in hidden:  # its outcome; a failed one's rounding note (a dtype, no value)
                note = "" if ok or key not in ex.records else precision_note(ex.records[key])
                msg = ("hidden test passed" if ok else "hidden test failed") + (
                    f".{note}" if note else "")
            elif ok:
                msg = f"[{name}] passed"
            elif key not in ex.records:
                msg = f"[{name}] not reached: the cell {stop(error, status, spec['has_hidden'])}."
            elif spec["has_hidden"]:  # the answer is the student's text: only its kind is told
                msg = (f"[{name}] {describe_unshown(ex.records[key], expected[key])}."
                       f"{precision_note(ex.records[key])}")
            else:  # as `tconv-grader check` words it
                msg = (f"[{name}] {describe_mismatch(ex.records[key], expected[key])}."
                       f"{precision_note(ex.records[key])}")
            hint = None if ok or name in hidden else _hint(spec, name, ex.hints.get(key))
            if hint:
                msg += f" Hint: {hint}"
            tests.append({"name": name, "hidden": name in hidden, "passed": ok, "message": msg})
        extra = sorted(set(got_names) - set(exp_names))
        passed = status == "ok" and set(got_names) == set(exp_names) and all(
            t["passed"] for t in tests)
        if status != "ok" and not any(t["message"].startswith(f"[{t['name']}] not reached")
                                      for t in tests):   # nothing else says why it scores 0
            tests.append({"name": gid, "hidden": False, "passed": False,
                          "message": f"the cell {stop(error, status, spec['has_hidden'])}"})
        if extra:
            what = (f"{len(extra)} record(s) under names no test uses" if spec["has_hidden"]
                    else ", ".join(extra))
            tests.append({"name": gid, "hidden": False, "passed": False,
                          "message": f"unexpected test records: {what}"})
        cells[gid] = {"points": spec["points"] if passed else 0.0, "max": spec["points"],
                      "passed": passed, "tests": tests, "manual": False, "status": status}
    return cells


def _hint(spec: dict, name: str, mine: str | None) -> str | None:
    """The hint shown under a failed visible test.

    ``mine`` is the hint text as the test computed it in the student's run: an f-string hint
    names the case and may name the student's answer. It is shown where answers are (a cell
    without hidden tests), and elsewhere only when it is exactly the solution's text (then
    nothing of the student's run is in it). Otherwise the cell's literal ``hint=`` text, if any.
    """
    if mine and (not spec["has_hidden"] or mine == spec.get("ref_hints", {}).get(name)):
        return mine[:HINT_SHOWN]
    return spec.get("hints", {}).get(name)


def grade_notebook(task: dict) -> dict:
    """Run one sanitised notebook and judge it (runs in a pool worker; never raises)."""
    out = {"key": task["key"], "notebook": task["notebook"], "flags": list(task["flags"]),
           "cells": {}, "seconds": 0.0, "nb": None, "outputs": {}}
    try:
        from grader.execute import run_notebook

        expected = {k: decode(v) for k, v in task["expected"].items()}
        specs = task["specs"]
        if task["nb"] is None:
            out["cells"] = _judge(specs, expected, _EmptyExecution(),
                                  task.get("not_run", NOT_RUN_UNREAD))
            for c in out["cells"].values():
                if not c["manual"]:
                    c["points"] = 0.0
            return out
        nb = nbformat.reads(task["nb"], as_version=4)
        limits = _limits(task["timeout"], task.get("memory_mib"), task.get("cell_timeout"))
        with tempfile.TemporaryDirectory(prefix="tconv-grade-") as tmp:
            _prepare_workdir(task["files"], Path(tmp))
            ex = run_notebook(nb, workdir=Path(tmp), limits=limits, sandbox=task["sandbox"])
        out["seconds"] = float(ex.seconds)
        out["flags"] += memory_flags(timeout_flags([str(f) for f in ex.flags], ex.cells, limits),
                                     ex.cells, limits)
        out["cells"] = _judge(specs, expected, ex)
        out["code_errors"] = code_errors(ex.cells, specs)
        out["outputs"] = {str(c.index): {"status": c.status, "error": c.error,
                                         "output": c.output} for c in ex.cells}
        out["nb"] = task["nb"]
    except Exception as exc:  # noqa: BLE001 - one bad notebook never stops the batch
        out["flags"].append(f"{GRADER_ERROR}{type(exc).__name__}: {exc}")
        out["error_trace"] = traceback.format_exc()
        for gid, spec in task["specs"].items():
            out["cells"].setdefault(gid, {
                "points": None if spec["cell_type"] != "code" else 0.0, "max": spec["points"],
                "passed": None if spec["cell_type"] != "code" else False,
                "manual": spec["cell_type"] != "code", "status": "not_run",
                "tests": [] if spec["cell_type"] != "code" else
                [{"name": gid, "hidden": False, "passed": False, "message": "not graded"}]})
    return out


def _label(cell) -> str:
    """How flags and messages name a cell run: its grade_id, else ``#<index>``."""
    return cell.grade_id or f"#{cell.index}"


#: the run's own time-out flags, replaced by one flag per event (``timeout_flags``)
_BARE_TIMEOUTS = ("timeout", "notebook timeout")


def timeout_flags(flags: list[str], cells, limits) -> list[str]:
    """``flags`` with each time-out told once, as specifically as it is known: one flag per cell
    that timed out (which cell ran over and the limits in force, worded on this side: the
    sandbox's own words are not trusted; the one the notebook's limit stopped says so), and a
    notebook-level flag only when no cell is known (the notebook's time ran out between cells).
    The run's bare ``timeout`` and ``notebook timeout`` flags would tell the same events again.
    """
    lim = (f"(limits: {limits.cell_timeout:g} s per cell, {limits.notebook_timeout:g} s per "
           "notebook)")
    timed = [c for c in cells if c.status == "timeout"]
    notebook = "notebook timeout" in flags  # set outside the sandbox: not forgeable
    if not timed and not notebook:
        return flags  # a bare 'timeout' with no cell timed out is kept as it came
    out = [f for f in flags if f not in _BARE_TIMEOUTS]
    told = False  # the notebook's time-out is told with the cell it stopped
    for c in timed:
        # run_notebook's own words for the cell running when the notebook's time ran out
        by_notebook = notebook and c.error == "notebook timed out"
        told = told or by_notebook
        why = ": the notebook's time ran out" if by_notebook else ""
        out.append(f"cell {_label(c)} timed out{why} {lim}")
    if notebook and not told:
        out.append(f"notebook timed out between cells {lim}")
    return out


def memory_flags(flags: list[str], cells, limits) -> list[str]:
    """``flags`` with the run's bare ``memory limit`` told once, naming the cell that ran out of
    memory (the last one that raised MemoryError or was killed: it stopped the notebook) and the
    limit in force (``--memory``), as :func:`timeout_flags` does for time."""
    if "memory limit" not in flags:
        return flags
    lim = f"{limits.memory_bytes >> 20} MiB per notebook, all its processes together"
    hit = [c for c in cells if c.status == "killed" or
           (c.status == "error" and (c.error or "").startswith("MemoryError"))]
    out = [f for f in flags if f != "memory limit"]
    if not hit:
        return [*out, f"memory limit ({lim})"]
    c = hit[-1]
    return [*out, f"cell {_label(c)} hit the memory limit ({lim})"]


def code_errors(runs, specs: dict) -> list[str]:
    """``cell <grade_id or #index>: <error's first line>`` for each code cell that is not a
    test cell and raised: the cause a student needs when a later test stops with NameError.
    A cell that ran after a test cell with hidden tests may have seen their source, so of its
    error only a builtin exception's name is told (as for the test cells themselves)."""
    hidden_at = [c.index for c in runs if c.grade_id in specs and specs[c.grade_id]["has_hidden"]]
    first_hidden = min(hidden_at, default=None)
    out = []
    for c in runs:
        if c.status == "error" and c.grade_id not in specs:
            lines = (c.error or "").strip().splitlines()
            text = (lines or ["error"])[0][:300]
            if first_hidden is not None and c.index > first_hidden:
                text = _shown_error(text, "error", has_hidden=True)
            out.append(f"cell {_label(c)}: {text}")
    return out


class _EmptyExecution:
    records: dict = {}
    hints: dict = {}
    cells: list = []
    flags: list = []
    seconds = 0.0


# ---------------------------------------------------------------------------------------------
@dataclass
class Summary:
    graded: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    resubmitted: list[tuple[str, str]] = field(default_factory=list)  # regraded: files changed
    retried: list[tuple[str, str]] = field(default_factory=list)  # regraded: a grader error
    flagged: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # assignments that could not be graded
    absent: list[str] = field(default_factory=list)  # --student ids with nothing submitted
    # autograded earlier (or in the gradebook), no longer under submitted/ (Course.withdrawn)
    withdrawn: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    unfinished: int = 0  # notebooks of the batch not graded yet (queued or running)


def absent_students(course: Course, missing: list[str]) -> list[str]:
    """Of the --student ids with nothing to grade, those on the class list (the gradebook's
    students) or with a submission of another assignment: nothing of theirs is graded, and the
    summary says so. An id on neither list is a usage error naming the nearest known ids."""
    if not missing:
        return []
    from grader.feedback import unknown_students

    ids = {s for s, _ in submissions(course, None, None)}
    path = sqlite_file(course.db_url)
    if path is None or path.exists():  # a missing SQLite file is not created for this
        with course.gradebook() as gb:
            ids |= {st.id for st in gb.students}
    unknown = [s for s in missing if s not in ids]
    if unknown:
        raise UsageError(unknown_students(unknown, sorted(ids),
                                          f"one with a submission under {course.submitted}"))
    return missing


def withdrawn_submissions(course: Course, assignments: list[str] | None,
                          students: list[str] | None) -> list[tuple[str, str]]:
    """``(student, assignment)`` of the submissions (of those asked for) with nothing behind
    them any more (:meth:`Course.withdrawn`): autograded earlier and gone from ``submitted/``
    since, or, with the course's own gradebook, in it with both folders deleted. ``report``
    scores them 0 and ``feedback`` removes their pages; the gradebook keeps their grades."""
    pairs = {(p.parent.parent.name, p.parent.name)
             for p in course.autograded.glob("*/*/results.json")}
    path = sqlite_file(course.db_url)
    if course.default_db and path is not None and path.exists():
        with course.gradebook() as gb:
            pairs |= {(sub.student.id, a.name) for a in gb.assignments
                      for sub in a.submissions}
    return sorted((s, a) for s, a in pairs
                  if (not assignments or a in assignments) and (not students or s in students)
                  and course.withdrawn(s, a))


def submissions(course: Course, assignments: list[str] | None,
                students: list[str] | None) -> list[tuple[str, str]]:
    """``(student, assignment)`` pairs found under ``<course>/submitted``."""
    out = []
    if not course.submitted.is_dir():
        return out
    for sdir in sorted(course.submitted.iterdir()):
        if not sdir.is_dir() or sdir.name.startswith("."):
            continue
        if students and sdir.name not in students:
            continue
        for adir in sorted(sdir.iterdir()):
            if adir.is_dir() and not adir.name.startswith(".") and \
                    (not assignments or adir.name in assignments):
                out.append((sdir.name, adir.name))
    return out


def to_grade(course: Course) -> dict[tuple[str, str], str]:
    """The submissions under ``submitted/`` that ``autograde`` would grade now, for ``report``
    and ``feedback`` (whose grades are not of them yet): ``"new"`` (no ``results.json``: never
    autograded, or its autograded folder deleted) or ``"changed"`` (collected again since it
    was graded: the gradebook holds the earlier submission's grades). Reads no gradebook."""
    out = {}
    for s, a in submissions(course, None, None):
        try:
            recorded = json.loads(course.results_path(s, a).read_text()).get("submitted_hash")
        except FileNotFoundError:
            out[(s, a)] = "new"
            continue
        except (OSError, ValueError, AttributeError):
            continue  # damaged: report flags it, autograde grades it again
        # (results written before the hash was recorded: cannot tell, taken as graded)
        if recorded is not None and recorded != submitted_hash(course, s, a):
            out[(s, a)] = "changed"
    return out


def submitted_hash(course: Course, student: str, assignment: str) -> str:
    """Hash of every file submitted for one assignment (names and contents): what was graded."""
    root = course.submitted / student / assignment
    h = hashlib.sha256(b"submitted-v1")
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root).as_posix().encode()
        h.update(len(rel).to_bytes(4, "little") + rel)
        data = f.read_bytes()
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()[:24]


def graded_state(course: Course, student: str, assignment: str) -> str:
    """``"graded"`` (results for the files now submitted, every grade in the gradebook),
    ``"changed"`` (graded, but submitted again since: a resubmission), ``"retry"`` (the grader
    itself failed on it last time) or ``"new"``."""
    path = course.results_path(student, assignment)
    if not path.exists():
        return "new"
    try:
        rec = json.loads(path.read_text())
        recorded = rec.get("submitted_hash")
        if any(GRADER_ERROR in str(f) for f in rec.get("flags", [])):
            return "retry"
    except (OSError, ValueError, AttributeError, TypeError):
        return "new"
    if recorded != submitted_hash(course, student, assignment):
        return "changed"  # also results written before the hash was recorded: regraded once
    return "graded" if is_graded(course, student, assignment) else "new"


def is_graded(course: Course, student: str, assignment: str) -> bool:
    """Results on disk and every autograded grade cell scored in the gradebook."""
    if not course.results_path(student, assignment).exists():
        return False
    grades = course.grades(student, assignment)
    return grades is not None and all(
        g.auto_score is not None for _, g in grades if g.cell.cell_type == "code")


def _read_timestamp(path: Path) -> str | None:
    ts = path / "timestamp.txt"
    if ts.exists():
        text = ts.read_text().strip()
        return text or None
    return None


def _load_submission(path: Path, notebook: str, all_names: list[str]
                     ) -> tuple[nbformat.NotebookNode | None, list[str]]:
    f = path / f"{notebook}.ipynb"
    if not f.exists():
        others = sorted(p.name for p in path.glob("*.ipynb") if p.stem not in all_names)
        if others:
            return None, [f"{WRONG_NAME}found {', '.join(others)}, expected {f.name} "
                          f"(scored 0)"]
        return None, [f"{MISSING}{f.name} (scored 0)"]
    if f.stat().st_size == 0:
        return None, [f"{f.name} is empty (0 bytes): nothing to grade (scored 0)"]
    try:
        text = f.read_text(encoding="utf-8")
        raw = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [f"{f.name} is not valid JSON ({exc}) (scored 0)"]
    try:
        if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
            raise ValueError("no 'cells' list")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001
        msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return None, [f"{f.name} is not a valid nbformat 4 notebook ({msg}) (scored 0)"]
    # nbformat gives duplicated cell ids new ones without a word: say so
    ids = [c.get("id") for c in raw["cells"]
           if isinstance(c, dict) and isinstance(c.get("id"), str)]
    dups = sorted({i for i in ids if ids.count(i) > 1})
    if dups:
        shown = ", ".join(repr(d[:40]) for d in dups[:5]) + (", ..." if len(dups) > 5 else "")
        return nb, [f"duplicate cell id repaired: {shown} (nbformat gave the copies new ids)"]
    return nb, []


def _executed_notebook(nb_text: str, outputs: dict) -> nbformat.NotebookNode:
    nb = nbformat.reads(nb_text, as_version=4)
    for i, cell in enumerate(nb.cells):
        run = outputs.get(str(i))
        if cell.cell_type != "code" or not run:
            continue
        cell.outputs = []
        if run["output"]:
            cell.outputs.append(nbformat.v4.new_output("stream", name="stdout",
                                                       text=run["output"]))
        if run["status"] == "not_run":  # no exception of its own: say why it is empty
            cell.outputs.append(nbformat.v4.new_output(
                "stream", name="stderr", text="[autograder] this cell did not run (an earlier "
                "cell stopped the notebook; see the flags in results.json)\n"))
        elif run["status"] != "ok":
            text = run["error"] or run["status"]
            ename, sep, evalue = text.partition(": ")
            if not (sep and ename.isidentifier()):  # the sandbox's words: "cell timed out"
                ename = {"timeout": "TimeoutError", "killed": "Killed"}.get(run["status"],
                                                                             "Error")
                evalue = text
            cell.outputs.append(nbformat.v4.new_output("error", ename=ename, evalue=evalue,
                                                       traceback=[text]))
    return nb


def _answers(notebook: str, nb: nbformat.NotebookNode) -> dict[tuple[str, str], Any]:
    """The student's answers in ``nb``, the cells formgrader takes a comment on: solution cells
    (code and written) and written answers (graded cells that are not code):
    ``{(notebook, grade_id): cell}``."""
    from nbgrader.utils import is_grade, is_solution

    return {(notebook, c.metadata["nbgrader"]["grade_id"]): c for c in nb.cells
            if is_solution(c) or (c.cell_type != "code" and is_grade(c))}


def _answers_graded(adir: Path, results: list[dict]) -> dict[tuple[str, str], str]:
    """The answers (:func:`_answers`) of the notebooks graded last time, as the autograded
    notebooks in ``adir`` hold them: ``{(notebook, grade_id): text}``."""
    out: dict[tuple[str, str], str] = {}
    for r in results:
        try:
            nb = nbformat.read(adir / f"{r['notebook']}.ipynb", as_version=4)
            out |= {k: c.source for k, c in _answers(r["notebook"], nb).items()}
        except (OSError, ValueError, AttributeError, KeyError):  # none graded, or not ours
            continue
    return out


def changed_answers(before: dict[tuple[str, str], str],
                    now: dict[tuple[str, str], Any]) -> set[tuple[str, str]]:
    """The answers that differ from the ones graded last time (``before``, text) in ``now``
    (cells): changed, new or gone (a resubmission). A hand grade of one waits for a new one,
    and a comment said of one is of the earlier answer."""
    return {k for k in before.keys() | now.keys()
            if k not in before or k not in now or before[k] != now[k].source}


def _earlier_comments(path: Path) -> dict[tuple[str, str], str]:
    """The comments a ``results.json`` records as said of an earlier answer:
    ``{(notebook, cell): hash of the comment}`` (none when it is missing or damaged)."""
    try:
        rec = json.loads(path.read_text())
        return {(nb, cell): h for nb, v in rec["notebooks"].items()
                for cell, h in v.get("earlier_comments", {}).items()}
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return {}


@contextlib.contextmanager
def _ctrl_c_after():
    """Ctrl-C during the block takes effect when it ends: a submission's grades, its
    results.json and the batch's count of what was kept then always agree (a Ctrl-C between
    writing results.json and counting the submission said '0 graded and kept' of one whose
    grade was in). Only the main thread can hold the signal; elsewhere it runs as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    before = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
        if caught and callable(before):
            before(signal.SIGINT, None)       # Python's own handler raises KeyboardInterrupt
        elif caught and before == signal.SIG_DFL:
            raise KeyboardInterrupt


def commit_submission(course: Course, student: str, assignment: str, results: list[dict],
                      timestamp: str | None, files_hash: str | None = None) -> dict:
    """Write one submission's grades in one transaction, then its results.json atomically."""
    adir = course.autograded / student / assignment
    before = _answers_graded(adir, results)  # read before the notebooks are replaced
    earlier_before = _earlier_comments(course.results_path(student, assignment))
    now: dict[tuple[str, str], Any] = {}  # this submission's answers (cells)
    for r in results:
        if r["nb"] is not None:
            nb = _executed_notebook(r["nb"], r["outputs"])  # outputs of code cells only
            atomic_write_text(adir / f"{r['notebook']}.ipynb", nbformat.writes(nb) + "\n")
            now |= _answers(r["notebook"], nb)
    changed = changed_answers(before, now)
    from nbgrader.utils import is_grade

    written = {k: c for k, c in now.items() if c.cell_type != "code" and is_grade(c)}
    earlier: dict[tuple[str, str], str] = {}  # comments said of an earlier answer (hashes)
    by_nb = {r["notebook"]: r for r in results}
    # Written answers are scored as nbgrader's SaveAutoGrades does (utils.determine_grade on the
    # sanitised cell, whose checksum OverwriteCells reset to the released one): an answer left
    # as released scores 0 automatically; any other has no auto score and needs manual grading
    # (formgrader's "needs manual grade"), as does a grade that already has a manual score.
    from nbgrader.utils import determine_grade

    answers = {key: None if (score := determine_grade(c)[0]) is None else float(score)
               for key, c in written.items()}

    def work(gb) -> None:  # idempotent: look up or create, then set scores; one commit
        earlier.clear()
        gb.update_or_create_student(student)
        kwargs = {"timestamp": timestamp} if timestamp else {}
        # nbgrader's add_submission builds the submission's rows before adding them to the
        # session: a lazy load in between would autoflush and SQLAlchemy warn (SAWarning)
        with gb.db.no_autoflush:
            sub = gb.update_or_create_submission(assignment, student, **kwargs)
        extension.apply(sub, course.root)   # one granted before the submission was in
        for snb in sub.notebooks:
            r = by_nb.get(snb.name)
            snb.flagged = bool(r and r["flags"])
            for g in snb.grades:
                cell = (r or {}).get("cells", {}).get(g.cell.name)
                if g.cell.cell_type != "code":
                    key = (snb.name, g.cell.name)
                    g.auto_score = answers.get(key)
                    # a hand grade stands while the answer it graded is the one graded now;
                    # a changed answer (a resubmission) needs grading again
                    regrade = g.manual_score is not None and key in changed
                    g.needs_manual_grade = regrade or (g.manual_score is None
                                                       and g.auto_score is None)
                    continue
                points = float(cell["points"]) if cell else 0.0
                # a score set by hand on a test cell stands while the tests give the cell the
                # points they gave when it was set (a regrade of the same code); when they
                # change (a resubmission), formgrader marks it "needs manual grade" and
                # feedback and report count the tests' points until it is set again
                g.needs_manual_grade = g.manual_score is not None and (
                    g.needs_manual_grade or g.auto_score != points)
                g.auto_score = points
            # a comment said of an answer changed since is of the earlier answer (and stays
            # so while its text is the same): feedback leaves it off the page until then
            for c in snb.comments:
                key, text = (snb.name, c.cell.name), (c.manual_comment or "").strip()
                if text and (key in changed or earlier_before.get(key) == comment_hash(text)):
                    earlier[key] = comment_hash(text)
        gb.db.commit()

    with course.gradebook() as gb:
        try:
            from grader.dbretry import retrying
        except ImportError:  # pragma: no cover
            work(gb)
        else:
            retrying(gb, work)
    record = {
        "student": student, "assignment": assignment, "timestamp": timestamp,
        "submitted_hash": files_hash,
        "notebooks": {r["notebook"]: {"flags": r["flags"], "cells": r["cells"],
                                      "code_errors": r.get("code_errors", []),
                                      # false: not read (unreadable, wrong name, missing,
                                      # grader error), so no answer in it to grade by hand
                                      "read": r["nb"] is not None}
                      for r in sorted(results, key=lambda r: r["notebook"])},
    }
    for (nb_name, cell), h in sorted(earlier.items()):  # (a notebook of the results)
        if nb_name in record["notebooks"]:
            record["notebooks"][nb_name].setdefault("earlier_comments", {})[cell] = h
    record["flags"] = [f"{n}: {f}" for n, v in record["notebooks"].items() for f in v["flags"]]
    record["score"] = sum(c["points"] or 0.0 for v in record["notebooks"].values()
                          for c in v["cells"].values())
    record["max_score"] = sum(c["max"] for v in record["notebooks"].values()
                              for c in v["cells"].values() if not c["manual"])
    atomic_write_text(course.results_path(student, assignment), dump_json(record))
    return record


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def autograde(course: Course, assignments: list[str] | None = None,
              students: list[str] | None = None, *, jobs: int | None = None,
              timeout: float | None = None, sandbox: bool = True, force: bool = False,
              progress: bool = True, scheduler: str | None = None,
              memory_mib: int | None = None, cell_timeout: float | None = None) -> Summary:
    import time


    t0 = time.perf_counter()
    for a in assignments or []:
        check_assignment(course.solutions, a)
    pairs = submissions(course, assignments, students)
    summary = Summary()
    if students:
        found = {s for s, _ in pairs}
        summary.absent = absent_students(course, [s for s in dict.fromkeys(students)
                                                  if s not in found])
    known = set(assignments_in(course.solutions))
    unknown = sorted({a for _, a in pairs if a not in known})
    for s, a in pairs:
        if a not in known:
            summary.flagged[(s, a)] = [f"assignment '{a}' is not in {course.solutions}; skipped"]
    pairs = [(s, a) for s, a in pairs if a in known]
    if unknown:
        print(f"warning: submissions for unknown assignment(s) skipped: {', '.join(unknown)}",
              file=sys.stderr)

    todo = []
    for s, a in pairs:
        state = "new" if force else graded_state(course, s, a)
        if state == "graded":
            summary.skipped.append((s, a))
        else:
            todo.append((s, a))
            if state == "changed":
                summary.resubmitted.append((s, a))
            elif state == "retry":
                summary.retried.append((s, a))

    summary.withdrawn = withdrawn_submissions(course, assignments, students)
    if not todo:
        summary.seconds = time.perf_counter() - t0
        return summary

    jobs = jobs or default_jobs()
    ctx = multiprocessing.get_context(_START_METHOD)

    def new_pool() -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx,
                                      initializer=_warm_worker,
                                      initargs=(sandbox, os.getpid()))

    pools = [new_pool()] if jobs > 1 and not scheduler else []

    def replacement_pool() -> cf.ProcessPoolExecutor:
        pools.append(new_pool())
        return pools[-1]

    try:
        prep = _prepare(course, sorted({a for _, a in todo}), sandbox, timeout, summary,
                        pools[0].submit if pools else None, progress)
        _grade_batch(course, todo, prep, sandbox, timeout, summary, pools[0] if pools else None,
                     replacement_pool, progress, scheduler, memory_mib=memory_mib,
                     cell_timeout=cell_timeout)
    except KeyboardInterrupt:
        # Every committed submission is complete (one transaction, then results.json), so the
        # running notebooks are stopped now rather than waited for: a re-run resumes.
        killed = _stop_pools(pools)
        # each worker grades one notebook at a time; the idle ones are no running notebook
        running = min(killed, summary.unfinished)
        done = set(summary.graded)
        rest = len([k for k in todo if k not in done])
        # under --force the rest were mostly graded before: a plain re-run skips those
        again = (f"the other {rest} keep their earlier grade, if any (a re-run without --force "
                 "grades only those never graded or changed since; with --force it regrades "
                 "all)" if force else f"re-run to grade the other {rest}")
        print(f"\ninterrupted: stopped {running} running notebook(s) ({killed} worker "
              f"process(es)); {len(summary.graded)} submission(s) graded and kept; {again}",
              file=sys.stderr)
        raise
    finally:
        for p in pools:
            p.shutdown(wait=True, cancel_futures=True)
    summary.graded.sort()
    summary.seconds = time.perf_counter() - t0
    return summary


def _stop_pools(pools: list[cf.ProcessPoolExecutor]) -> int:
    """Kill every worker of ``pools`` (their sandboxes die with them); the number killed."""
    killed = 0
    for p in pools:
        for proc in list((getattr(p, "_processes", None) or {}).values()):
            if proc.is_alive():
                proc.kill()
                killed += 1
        for proc in list((getattr(p, "_processes", None) or {}).values()):
            proc.join(timeout=5)
    return killed


def _prepare(course: Course, assignments: list[str], sandbox: bool, timeout: float | None,
             summary: Summary, submit, progress: bool) -> dict[str, dict]:
    """Per assignment: gradebook cells (nbgrader SaveCells) and the solution's records."""
    from tqdm import tqdm

    from grader.dbretry import sync_source_shared

    prep: dict[str, dict] = {}
    waits: dict[str, dict | RuntimeError] = {}
    for a in assignments:  # without a pool (--jobs 1, --scheduler) each solution runs here
        try:
            waits[a] = {nb_id: expected_records(course, a, nb_id, sandbox=sandbox,
                                                timeout=timeout, submit=submit)
                        for nb_id in notebooks_of(course.solutions, a)}
        except RuntimeError as exc:
            waits[a] = exc
    for a in tqdm(assignments, desc="solution runs", unit="assignment", disable=not progress,
                  file=sys.stderr):
        released_nbs = sync_source_shared(course, a)  # safe for graders sharing a gradebook
        try:
            if isinstance(waits[a], RuntimeError):
                raise waits[a]
            exps = {nb_id: (w() if callable(w) else w) for nb_id, w in waits[a].items()}
        except RuntimeError as exc:  # the instructor's side is broken: grade nothing of it
            summary.errors.append(str(exc))
            continue
        nbs = {}
        for nb_id, (exp, ref_hints) in exps.items():
            source = nbformat.read(course.solutions / a / f"{nb_id}.ipynb", as_version=4)
            specs = {g: vars(sp) for g, sp in test_specs(source).items()}
            for g, sp in specs.items():  # the solution's hints of the visible tests
                mine = {k.removeprefix(g + "/"): h for k, h in ref_hints.items()
                        if k.startswith(g + "/")}
                sp["ref_hints"] = {n: h for n, h in mine.items() if n not in sp["hidden_names"]}
            rel = {c.metadata["nbgrader"]["grade_id"]: c.source
                   for c in released_nbs[nb_id].cells
                   if c.metadata.get("nbgrader", {}).get("grade_id")}
            nbs[nb_id] = {"source": source, "specs": specs, "released": rel,
                          "expected": {k: encode(v) for k, v in exp.items()},
                          "secret": hidden_grams(source)}
        files = [(str(p), str(p.relative_to(course.solutions / a)))
                 for p in _workdir_files(course, a)]
        prep[a] = {"notebooks": nbs, "files": files}
    return prep


def _grade_batch(course: Course, todo: list[tuple[str, str]], prep: dict[str, dict],
                 sandbox: bool, timeout: float | None, summary: Summary, pool, new_pool,
                 progress: bool, scheduler: str | None = None,
                 memory_mib: int | None = None, cell_timeout: float | None = None) -> None:
    from tqdm import tqdm

    tasks = []
    todo = [(s, a) for s, a in todo if a in prep]
    hashes = {key: submitted_hash(course, *key) for key in todo}   # what is graded, as read now
    for s, a in todo:
        names = list(prep[a]["notebooks"])
        for nb_id, info in prep[a]["notebooks"].items():
            nb, flags = _load_submission(course.submitted / s / a, nb_id, names)
            if nb is not None:
                try:
                    nb, more = sanitise(nb, info["source"], course, a, nb_id, info["released"])
                    flags += more
                except Exception as exc:  # noqa: BLE001
                    flags.append(f"could not restore locked cells ({type(exc).__name__}: "
                                 f"{exc}) (scored 0)")
                    nb = None
            tasks.append({"key": (s, a), "notebook": nb_id, "flags": flags,
                          "not_run": NOT_RUN_NOT_FOUND if not_found(flags) else NOT_RUN_UNREAD,
                          "nb": nbformat.writes(nb) if nb is not None else None,
                          "specs": info["specs"], "expected": info["expected"],
                          "files": prep[a]["files"], "timeout": timeout, "sandbox": sandbox,
                          "memory_mib": memory_mib, "cell_timeout": cell_timeout})

    pending: dict[tuple[str, str], list[dict]] = {}
    need: dict[tuple[str, str], int] = {}
    for t in tasks:
        need[t["key"]] = need.get(t["key"], 0) + 1
    bar = tqdm(total=len(tasks), desc="autograde", unit="notebook", disable=not progress,
               file=sys.stderr)
    summary.unfinished = len(tasks)

    def finish(res: dict) -> None:
        key = res["key"]
        info = prep.get(key[1], {}).get("notebooks", {}).get(res["notebook"], {})
        scrub_result(res, info.get("secret", frozenset()))  # before anything is written
        pending.setdefault(key, []).append(res)
        bar.update(1)
        summary.unfinished -= 1
        if len(pending[key]) == need[key]:
            s, a = key
            with _ctrl_c_after():
                rec = commit_submission(course, s, a, pending.pop(key),
                                        _read_timestamp(course.submitted / s / a), hashes[key])
                summary.graded.append(key)
                if rec["flags"]:
                    summary.flagged[key] = rec["flags"]

    def failed(t: dict, exc: BaseException) -> None:
        res = grade_notebook({**t, "nb": None, "not_run": NOT_RUN_GRADER})
        res["flags"].append(f"{GRADER_ERROR}{type(exc).__name__}: {exc}")
        finish(res)

    if scheduler:  # a Dask cluster runs the same pure tasks (grader.distributed)
        from grader.distributed import run_tasks

        for t, res in run_tasks(scheduler, tasks, sandbox=sandbox):
            if isinstance(res, BaseException):
                failed(t, res)
            else:
                finish(res)
    elif pool is None:
        for t in tasks:
            finish(grade_notebook(t))
    else:
        queue = list(tasks)
        while queue:
            retry = []
            futs = {pool.submit(grade_notebook, t): t for t in queue}
            for fut in cf.as_completed(futs):
                t = futs[fut]
                try:
                    finish(fut.result())
                except cf.process.BrokenProcessPool:
                    retry.append(t)
                except Exception as exc:  # noqa: BLE001
                    failed(t, exc)
            if retry:
                pool.shutdown(wait=False, cancel_futures=True)
                if len(retry) == len(queue):
                    for t in retry:  # the pool keeps dying: grade these one by one, in-process
                        finish(grade_notebook(t))
                    retry = []
                else:
                    pool = new_pool()
            queue = retry
    bar.close()


# ---------------------------------------------------------------------------------------------
def resolve_sandbox(unsafe: bool) -> bool:
    """True to sandbox; False only under --unsafe-no-sandbox when bwrap is unusable (not in CI)."""
    try:
        from grader.sandbox import available
        ok, reason = available()
    except ImportError as exc:
        ok, reason = False, f"grader.sandbox is not importable ({exc})"
    if ok:
        return True
    if not unsafe:
        raise UsageError(f"the grading sandbox is unavailable ({reason}); install bubblewrap "
                         "(apt-get install bubblewrap) or, on a trusted machine only, pass "
                         "--unsafe-no-sandbox")
    from grader.sandbox import in_ci

    if in_ci():
        raise UsageError(f"--unsafe-no-sandbox is refused in CI (CI={os.environ.get('CI')}): "
                         f"the sandbox must work there ({reason})")
    print("=" * 78 + "\nWARNING: GRADING WITHOUT A SANDBOX (--unsafe-no-sandbox): student code "
          f"runs with your\nprivileges. Reason the sandbox is off: {reason}\n" + "=" * 78,
          file=sys.stderr)
    return False


def main(args) -> int:
    course = Course.open(args.course, args.db, args.solutions)
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be a positive integer; got {args.jobs}")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds; got {args.timeout}")
    cell_timeout = getattr(args, "cell_timeout", None)
    if cell_timeout is not None and cell_timeout <= 0:
        raise UsageError(f"--cell-timeout must be a positive number of seconds; got "
                         f"{cell_timeout}")
    memory = getattr(args, "memory", None)
    if memory is not None and memory < 64:
        raise UsageError(f"--memory must be at least 64 (MiB per notebook); got {memory}")
    extension.load(course.root)   # a hand-edited extensions.json that holds none: said now
    if args.db:  # an unreachable --db is one line now, not a traceback after the batch started
        with course.gradebook():
            pass
    sandbox = resolve_sandbox(args.unsafe_no_sandbox)
    summary = autograde(course, [args.assignment] if args.assignment else None,
                        args.student or None, jobs=args.jobs, timeout=args.timeout,
                        sandbox=sandbox, force=args.force, progress=not args.quiet,
                        scheduler=getattr(args, "scheduler", None), memory_mib=memory,
                        cell_timeout=cell_timeout)
    again = (f" ({len(summary.resubmitted)} collected again since last graded: "
             f"{', '.join(f'{s}/{a}' for s, a in summary.resubmitted)})"
             if summary.resubmitted else "")
    if summary.retried:
        again += (f" ({len(summary.retried)} retried after a grader error: "
                  f"{', '.join(f'{s}/{a}' for s, a in summary.retried)})")
    print(f"graded {len(summary.graded)} submission(s){again}, skipped {len(summary.skipped)} "
          f"already graded, in {summary.seconds:.1f} s; gradebook: {redact(course.db_url)}")
    from grader.report import SHOWN

    lines = [f"  flag {s}/{a}: {f}" for (s, a), flags in sorted(summary.flagged.items())
             for f in flags]
    for line in lines[:SHOWN]:  # a class of hundreds: the first ones, report lists all
        print(line)
    if len(lines) > SHOWN:
        print(f"  ... and {len(lines) - SHOWN} more flag(s): `{next_command('report', args)}` "
              "lists every one in flags.txt")
    which = f" for {args.assignment}" if args.assignment else ""
    for s in summary.absent:
        print(f"  {s}: no submission{which} under {course.submitted / s}; nothing graded "
              f"(collect it first: `tconv-grader collect SUBMISSIONS --course {course.root}`)")
    for s, a in summary.withdrawn[:SHOWN]:
        print(f"  withdrawn {s}/{a}: {course.withdrawn_why(s, a)}; the gradebook keeps its "
              "grades")
    if len(summary.withdrawn) > SHOWN:
        print(f"  ... and {len(summary.withdrawn) - SHOWN} more withdrawn: "
              f"`{next_command('report', args)}` lists every one")
    for e in summary.errors:
        print(f"error: {e}", file=sys.stderr)
    if summary.withdrawn:
        print(f"next: the {len(summary.withdrawn)} withdrawn submission(s) above (graded "
              f"earlier, no longer under {course.submitted}: withdrawn, or deleted by mistake) "
              "score 0 in report (status withdrawn) and feedback removes their pages; if one "
              "should stand, collect it again and run autograde (its grades come back)")
    nothing = not summary.graded and not summary.skipped and not summary.flagged
    # a batch that failed (errors: the solution run, say) had submissions: no warning then
    if nothing and not summary.absent and not summary.withdrawn and not summary.errors:
        print(f"warning: no submissions{which} under {course.submitted}; collect them first "
              f"(`tconv-grader collect SUBMISSIONS --course {course.root}`)", file=sys.stderr)
    elif not summary.errors and (not nothing or summary.withdrawn):
        broken = [k for k, flags in summary.flagged.items()
                  if any(GRADER_ERROR in f for f in flags)]
        if broken:
            print(f"next: run autograde again: the {len(broken)} submission(s) the grader "
                  "failed on (flag 'grader error') are graded again, the rest skipped")
        misnamed = sorted(f"{s}/{a}" for (s, a), flags in summary.flagged.items()
                          if any(WRONG_NAME in f for f in flags))
        if misnamed:
            print(f"next: {len(misnamed)} submission(s) scored 0 for a notebook under another "
                  f"name ({', '.join(misnamed)}): if it is the assignment's notebook, rename it "
                  f"to the expected name in {course.submitted}/<student>/<assignment>/ and run "
                  "autograde again (a changed submission is graded again)")
        if summary.flagged:
            print(f"next: look at the {len(summary.flagged)} flagged submission(s) above (each "
                  f"executed notebook is in {course.autograded}/<student>/<assignment>/)")
        print(f"next: {next_command('feedback', args)}")
        print(f"next: {next_command('report', args)}")
    return 1 if summary.errors else 0


def add_parser(sub) -> None:
    p = sub.add_parser("autograde", help="grade collected submissions into the gradebook",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("assignment", nargs="?", metavar="ASSIGNMENT",
                   help="assignment to grade (default: every assignment with submissions)")
    p.add_argument("--student", action="append", metavar="ID",
                   help="grade only this student (repeatable)")
    p.add_argument("--course", required=True, help="course directory (instructor state)")
    p.add_argument("--solutions", default=str(REPO / "solutions"),
                   help="instructor source (default: the repository's solutions/)")
    p.add_argument("--jobs", "-j", type=int, default=None,
                   help="notebooks graded in parallel (default: number of cores)")
    p.add_argument("--db", help="SQLAlchemy URL of the gradebook (default: "
                   "sqlite:///<course>/gradebook.db)")
    p.add_argument("--timeout", type=float, default=None,
                   help="wall-clock limit per notebook in seconds (default: 120); a cell never "
                        "gets more than this")
    p.add_argument("--cell-timeout", type=float, default=None,
                   help="wall-clock limit per cell in seconds (default: 30); a cell over it is "
                        "stopped and flagged ('cell ID timed out'), and later cells still run")
    p.add_argument("--memory", type=int, default=None, metavar="MIB",
                   help="memory limit per notebook, all its processes together, in MiB "
                        "(default: 2048)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the notebooks on a Dask cluster (tcp://host:8786 or a scheduler "
                        "file) instead of the local pool; see the README's 'Grading beyond "
                        "one machine'")
    p.add_argument("--force", action="store_true", help="regrade submissions already graded")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run student code unsandboxed when bubblewrap is unavailable "
                        "(never in CI; only on a trusted machine)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=main)
