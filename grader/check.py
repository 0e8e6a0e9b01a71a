"""``tconv-grader check NOTEBOOK...``: run your notebooks' visible tests and estimate your score.

For students. Runs the notebook top to bottom in a fresh Jupyter kernel on your machine
(no sandbox: it is your own code), in student mode, where each ``expect`` raises an
``AssertionError`` that says what was expected and what came back. Prints every test cell's
outcome and message, errors in your own cells, written answers still blank, the run time and a
score estimate (with several notebooks, one section each and a total). Hidden tests are not in
your copy, so the real grade may be lower; written answers are graded by hand and are not counted.

Time limits are the grader's, and so is what happens at one: a cell that runs longer is
interrupted and the cells after it still run; a cell that ignores the interrupt, the notebook's
own limit and a crash stop the notebook there.
Test cells and other locked cells are compared with their released text (nbgrader checksums, and
the released notebook in ``exercises/`` when there is one): grading restores edited or deleted
locked cells, and so does this estimate where it can.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grader.execute import Limits
from grader.gradebook import REPO, UsageError

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A traceback frame in a notebook cell: "Cell In[3], line 5, in pixel_shuffle"
# A notebook cell's frame in an IPython traceback: its execution count, line and function.
FRAME = re.compile(r"Cell In\[(?P<count>\d+)\], line (?P<line>\d+)(?:, in (?P<func>\w+))?")
# A released test cell that also runs hidden tests at grading says so (the builder's notice).
HIDDEN_NOTICE = "also runs hidden tests"
# IPython's file name in a SyntaxError's message: "invalid syntax (3672172933.py, line 2)"
SYNTAX_WHERE = re.compile(r"\s*\(\S+\.py, line (\d+)\)\s*$")
UNDEFINED = re.compile(r"name '(\w+)' is not defined")
BLANK_ANSWERS = {"", "YOUR ANSWER HERE"}
#: the released notebooks (``exercises/<assignment>/<notebook>.ipynb``), the reference for
#: locked cells; a module attribute so tests can point it elsewhere
RELEASED = REPO / "exercises"
GRADING = Limits()


class Stopped(Exception):  # noqa: N818 - a stop request, not an error
    """The run was stopped by a signal (SIGINT or SIGTERM); the kernel has been shut down."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# ---- explaining errors ---------------------------------------------------------------------------
def explain(error: dict) -> str:
    """One test's failure as a student should read it, from a notebook ``error`` output.

    An ``expect`` failure already says what was expected, what came back and a hint. Anything
    else gets the place it was raised (the innermost notebook frame); a bare
    ``NotImplementedError`` there is the released stub, still in the function the test calls.
    """
    name, value = error.get("ename", "Error"), ANSI.sub("", error.get("evalue", ""))
    frames = _frames(error)
    func = frames[-1]["func"] if frames else None
    if name == "NotImplementedError" and not value:
        where = f"`{func}`" if func else "a solution cell this test runs"
        return (f"NotImplementedError: {where} is still the released stub; replace its "
                "`raise NotImplementedError()` with your code")
    if name in ("SyntaxError", "IndentationError", "TabError"):
        m = SYNTAX_WHERE.search(value)
        line = m.group(1) if m else (frames[-1]["line"] if frames else None)
        value = SYNTAX_WHERE.sub("", value)
        return f"{name}: {value}" + (f" (line {line} of the cell)" if line else "")
    message = f"{name}: {value}"
    if name != "AssertionError" and frames:
        line = frames[-1]["line"]
        message += f" (raised in `{func}`, line {line} of its cell)" if func else (
            f" (raised at line {line} of a cell)")
    return message


def _frames(error: dict) -> list[re.Match]:
    """The notebook-cell frames of an ``error`` output's traceback, outermost first."""
    return [m for line in error.get("traceback", []) for m in FRAME.finditer(ANSI.sub("", line))]


def _error_line(error: dict, source: str) -> str:
    """The source line of ``source`` where ``error`` was raised in that cell, or ''."""
    if error.get("ename") in ("SyntaxError", "IndentationError", "TabError"):
        m = SYNTAX_WHERE.search(ANSI.sub("", error.get("evalue", "")))
        number = int(m.group(1)) if m else None
    else:  # the outermost frame is the cell itself
        frames = _frames(error)
        number = int(frames[0]["line"]) if frames else None
    lines = source.splitlines()
    if number is None or not 1 <= number <= len(lines):
        return ""
    text = lines[number - 1].strip()
    return text if len(text) <= 70 else text[:67] + "..."


def _interrupted_at(errors: list, nb) -> str:
    """Where an interrupted cell was running: ``" in `f`, at `line`"`` from the innermost frame
    of the notebook's own cells in the interrupt's traceback (cells are numbered by their
    execution count), or ''."""
    frames = _frames(errors[0]) if errors else []
    if not frames:
        return ""
    count, number, func = int(frames[-1]["count"]), int(frames[-1]["line"]), frames[-1]["func"]
    cell = next((c for c in nb.cells if c.get("execution_count") == count), None)
    lines = cell.source.splitlines() if cell is not None else []
    if not 1 <= number <= len(lines):
        return ""
    text = lines[number - 1].strip()
    text = text if len(text) <= 60 else text[:57] + "..."
    return (f" in `{func}`" if func else "") + f", at `{text}`"


def _cell_name(cell, index: int) -> str:
    """How a student finds a cell: its nbgrader id, else its position and first line."""
    gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    if gid:
        return f"`{gid}`"
    first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
    first = first if len(first) <= 40 else first[:37] + "..."
    return f"cell {index + 1}" + (f" (`{first}`)" if first else "")


# ---- the released notebook and locked cells ------------------------------------------------------
def _nbg(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _is_test(cell) -> bool:
    return cell.cell_type == "code" and bool(_nbg(cell).get("grade"))


def _is_locked_code(cell) -> bool:
    return cell.cell_type == "code" and bool(_nbg(cell).get("locked") or _nbg(cell).get("grade"))


def _read_quietly(text_or_path) -> object | None:
    import nbformat

    try:
        if isinstance(text_or_path, Path):
            return nbformat.read(text_or_path, as_version=4)
        return nbformat.reads(text_or_path, as_version=4)
    except Exception:  # noqa: BLE001 - no reference is not an error
        return None


def released_copy(path: Path):
    """The released notebook ``path`` was made from, or None.

    ``RELEASED/<assignment>/<notebook>.ipynb``; when ``path`` *is* that file (a student working in
    the repository's ``exercises/``), its last committed version (``git show HEAD:...``).
    """
    candidates = [RELEASED / path.parent.name / path.name,
                  RELEASED / path.stem / f"{path.stem}.ipynb"]
    for ref in candidates:
        if not ref.is_file():
            continue
        try:
            same = ref.samefile(path)
        except OSError:
            same = False
        if not same:
            return _read_quietly(ref)
        try:
            res = subprocess.run(["git", "-C", str(ref.parent), "show", f"HEAD:./{ref.name}"],
                                 capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return _read_quietly(res.stdout) if res.returncode == 0 else None
    return None


def _same_release(nb, reference) -> bool:
    """True when ``reference`` is the release ``nb`` came from: the nbgrader checksums stored
    in the cells they share agree (a student edits a cell's text, not its stored checksum)."""
    ref = {_nbg(c).get("grade_id"): _nbg(c).get("checksum") for c in reference.cells}
    shared = [(ref[_nbg(c)["grade_id"]], _nbg(c).get("checksum")) for c in nb.cells
              if _nbg(c).get("grade_id") in ref and _nbg(c).get("checksum")]
    return bool(shared) and all(a == b for a, b in shared)


def restore_locked(nb, reference=None) -> tuple[object, list[dict]]:
    """Put back locked code cells (test cells included) as grading does; say what changed.

    A locked code cell is *edited* when its text or points no longer match the nbgrader
    checksum stored in it (without a checksum: when its text differs from the released one), and
    *deleted* when the released notebook ``reference`` has it and ``nb`` does not. ``reference``
    is used only when it is the release ``nb`` came from (see :func:`_same_release`); then edited
    cells get their released text and points back and deleted ones are re-inserted after the
    nearest preceding cell still there, as grading does. Without it an edited cell cannot be
    restored (``restored`` is False) and a deleted one goes unnoticed.
    Returns the notebook to run (a copy) and ``[{"grade_id", "test", "change", "restored"}]``.
    """
    from nbgrader.utils import compute_checksum

    nb = copy.deepcopy(nb)
    if reference is not None and not _same_release(nb, reference):
        reference = None
    ref_cells = {} if reference is None else {
        _nbg(c)["grade_id"]: c for c in reference.cells
        if _nbg(c).get("grade_id") and _is_locked_code(c)}
    changes: list[dict] = []
    seen: set[str] = set()
    ids: set[str] = set()
    for cell in nb.cells:
        md = _nbg(cell)
        gid = md.get("grade_id")
        if gid and gid in ids and (_is_locked_code(cell) or gid in ref_cells):
            # a copy of a locked cell: nbgrader ignores duplicates (it runs as a plain cell)
            test = _is_test(cell)
            del cell.metadata["nbgrader"]
            changes.append({"grade_id": gid, "test": test, "change": "duplicated",
                            "restored": True})
            continue
        if gid:
            ids.add(gid)
        if not gid or gid in seen or not (_is_locked_code(cell) or gid in ref_cells):
            continue
        seen.add(gid)
        ref = ref_cells.get(gid)
        if md.get("checksum"):
            try:
                edited = compute_checksum(cell) != md["checksum"]
            except Exception:  # noqa: BLE001 - metadata too broken to check: edited
                edited = True
        else:
            edited = ref is not None and (cell.source != ref.source
                                          or cell.cell_type != ref.cell_type)
        if not edited:
            continue
        if ref is not None:
            cell.source, cell.cell_type = ref.source, ref.cell_type
            cell.metadata["nbgrader"] = copy.deepcopy(_nbg(ref))
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
        changes.append({"grade_id": gid, "test": _is_test(ref if ref is not None else cell),
                        "change": "edited", "restored": ref is not None})
    if reference is not None:  # re-insert deleted locked code cells, in released order
        order = [_nbg(c).get("grade_id") for c in reference.cells]
        for pos, gid in enumerate(order):
            if gid not in ref_cells or gid in seen:
                continue
            restored = copy.deepcopy(ref_cells[gid])
            restored.outputs, restored.execution_count = [], None
            at = 0
            for prev in reversed(order[:pos]):
                idx = next((i for i, c in enumerate(nb.cells)
                            if prev and _nbg(c).get("grade_id") == prev), None)
                if idx is not None:
                    at = idx + 1
                    break
            nb.cells.insert(at, restored)
            seen.add(gid)
            changes.append({"grade_id": gid, "test": _is_test(restored), "change": "deleted",
                            "restored": True})
    return nb, changes


# ---- running the notebook ------------------------------------------------------------------------
def _quiet_log() -> logging.Logger:
    log = logging.getLogger("tconv.check.nbclient")
    log.propagate = False
    log.addHandler(logging.NullHandler())
    return log


# Statuses of a cell run after which the notebook goes no further (as at grading).
STOPS = ("timeout_kill", "notebook_timeout", "died")


async def _interrupted(km, kc, grace: float) -> bool:
    """Interrupt the kernel's running cell and say whether it is ready again within ``grace``
    seconds (a no-op request answered), as grading stops a cell over its limit and goes on."""
    from jupyter_core.utils import ensure_async

    await ensure_async(km.interrupt_kernel())
    probe = kc.execute("", silent=True, store_history=False)
    deadline = time.monotonic() + grace
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await ensure_async(kc.shell_channel.get_msg(timeout=left))
        except Exception:  # noqa: BLE001 - queue.Empty: no answer in time
            return False
        if msg.get("parent_header", {}).get("msg_id") == probe:
            return True
    return False


def _is_given(cell) -> bool:
    """A locked code cell that is not an answer: what it binds, the tests get (LockedNames)."""
    md = _nbg(cell)
    return cell.cell_type == "code" and bool(md.get("locked") or md.get("grade")) \
        and not md.get("solution")


async def _guard(client, code: str, result: str | None = None):
    """Run ``code`` silently in the kernel (grader.testing.LockedNames's calls); the value of
    ``result`` (a literal), or None when it fails: then the guard is off for this run."""
    import ast

    try:
        msg_id = client.kc.execute(code, silent=True, store_history=False,
                                   user_expressions={"r": result} if result else {})
        reply = await client.async_wait_for_reply(msg_id)
    except Exception:  # noqa: BLE001 - the kernel is gone: the cell's own run says so
        return None
    content = (reply or {}).get("content", {})
    if content.get("status") != "ok":
        return None
    if not result:
        return True
    value = content.get("user_expressions", {}).get("r", {})
    try:
        return ast.literal_eval(value["data"]["text/plain"])
    except Exception:  # noqa: BLE001 - not what the guard returns: off
        return None


async def _execute(nb, workdir: Path, cell_timeout: float, notebook_timeout: float,
                   progress) -> dict:
    """Run ``nb``'s code cells in order in a fresh kernel. A cell over ``cell_timeout`` is
    interrupted and the run goes on (``"timeout"``); it stops at a cell that is not stopped by
    the interrupt within grading's grace (``"timeout_kill"``), at the notebook's time limit and
    at a dead kernel (:data:`STOPS`).

    The kernel manager is asynchronous, so the event loop keeps running while a cell runs: the
    cell deadline fires, and SIGINT/SIGTERM (handled here) stop the run. On every way out the
    kernel is shut down (killed, if the run did not finish normally).
    Names the locked cells bind are put back before each test cell, as at grading
    (:class:`grader.testing.LockedNames`); ``"rebound"`` lists ``(test cell, name, cell that
    rebound it or -1, locked cell)``.
    Returns ``{"runs": {index: {"status", "seconds"}}, "seconds": float, "rebound": [...]}``.
    """
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from grader.testing import top_level_stores

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    stop: list[int] = []

    def on_signal(signum: int) -> None:
        if not stop:
            stop.append(signum)
            task.cancel()

    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, not the main thread
            pass
    runs: dict[int, dict] = {}
    rebound: list[tuple] = []
    limit = {"s": cell_timeout}
    finished = False
    t_start = t_end = 0.0
    with tempfile.TemporaryDirectory(prefix="tconv-check-") as sockets:
        # On POSIX the kernel talks over Unix sockets in a private temporary folder, not TCP on
        # localhost: nothing else on the machine can connect to it, and ipykernel prints no
        # warning about unencrypted TCP. Windows keeps Jupyter's default, TCP.
        km = (AsyncKernelManager(kernel_name="python3", transport="ipc",
                                 ip=os.path.join(sockets, "kernel")) if os.name == "posix"
              else AsyncKernelManager(kernel_name="python3"))
        client = NotebookClient(nb, km=km, allow_errors=True, log=_quiet_log(),
                                timeout_func=lambda cell: limit["s"],
                                resources={"metadata": {"path": str(workdir)}})
        try:
            await client.async_start_new_kernel()
            await client.async_start_new_kernel_client()
            guard = await _guard(client, "import grader.testing as _tconv_testing\n"
                                 "_tconv_guard = _tconv_testing.LockedNames(globals())\n"
                                 "del _tconv_testing")
            after = ""  # the previous cell's LockedNames.after, sent with the next call
            t_start = time.monotonic()
            count = 0
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                locked = _is_given(cell)
                if guard and _is_test(cell):
                    got = await _guard(client, after + "_tconv_guard.rebound = _tconv_guard"
                                       ".restore()\n_tconv_guard.before(True)",
                                       "_tconv_guard.rebound")
                    guard = got is not None
                    stores = top_level_stores(cell.source) if got else ()
                    rebound += [(index, *r) for r in got or [] if r[0] not in stores]
                elif guard:
                    guard = await _guard(client, after + f"_tconv_guard.before({locked})")
                left = notebook_timeout - (time.monotonic() - t_start)
                if left <= 0:
                    runs[index] = {"status": "notebook_timeout", "seconds": 0.0}
                    break
                limit["s"] = min(cell_timeout, left)
                t0 = time.monotonic()
                status = "ok"
                try:
                    count += 1
                    await client.async_execute_cell(cell, index, execution_count=count)
                except CellTimeoutError:
                    status = "timeout" if limit["s"] >= cell_timeout else "notebook_timeout"
                    if status == "timeout" and not await _interrupted(
                            km, client.kc, Limits.grace(cell_timeout)):
                        status = "timeout_kill"
                except DeadKernelError:
                    if stop:
                        raise asyncio.CancelledError from None
                    status = "died"
                runs[index] = {"status": status, "seconds": time.monotonic() - t0}
                after = f"_tconv_guard.after({index}, {locked})\n"
                progress.update()
                if status in STOPS:
                    break
            t_end = time.monotonic()
            finished = True
        except asyncio.CancelledError:
            if not stop:
                raise
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            try:
                if client.kc is not None:
                    client.kc.stop_channels()
                if km.has_kernel:
                    clean = finished and all(r["status"] == "ok" for r in runs.values())
                    await km.shutdown_kernel(now=not clean)
            except Exception:  # noqa: BLE001 - kill it the hard way
                if km.has_kernel:
                    await km.shutdown_kernel(now=True)
    if stop:
        raise Stopped(stop[0])
    return {"runs": runs, "seconds": t_end - t_start, "rebound": rebound}


def _run(nb, workdir: Path, cell_timeout: float, notebook_timeout: float, progress) -> dict:
    coro = _execute(nb, workdir, cell_timeout, notebook_timeout, progress)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # called from a running event loop (a notebook): run in a thread of its own
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


# ---- one notebook --------------------------------------------------------------------------------
def _require_notebook(path: Path) -> Path:
    if path.is_dir():
        found = sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        if not found:
            raise UsageError(f"NOTEBOOK must be an existing .ipynb file; got {path}, a directory "
                             "with no .ipynb notebook in it")
        listed = ", ".join(str(p) for p in found[:8]) + (", ..." if len(found) > 8 else "")
        raise UsageError(f"NOTEBOOK must be an existing .ipynb file; got {path}, a directory "
                         f"holding {listed}; name the notebook(s), e.g. "
                         f"`tconv-grader check {found[0]}`")
    if not path.is_file():
        raise UsageError(f"NOTEBOOK must be an existing .ipynb file; got {path}")
    return path


def _is_blank(cell) -> bool:
    from nbgrader.utils import compute_checksum

    if cell.source.strip() in BLANK_ANSWERS:
        return True
    md = _nbg(cell)
    try:
        return bool(md.get("checksum")) and compute_checksum(cell) == md["checksum"]
    except Exception:  # noqa: BLE001
        return False


def check(path: Path, timeout: float = GRADING.cell_timeout, progress: bool = True,
          notebook_timeout: float = GRADING.notebook_timeout) -> dict:
    """Run one notebook and judge it; the result ``report`` prints.

    Keys: ``tests`` (one per test cell: grade_id, points, passed, message, status), ``earned``,
    ``total``, ``errors`` (non-test cells that raised, timed out or killed the kernel), ``written``
    (hand-graded answers: grade_id, points, blank), ``changes`` (edited/deleted locked cells, see
    :func:`restore_locked`), ``cells`` (index -> status and seconds), ``seconds`` (run time),
    ``slow`` (cells over half the cell limit), ``limits`` and ``stopped`` (a time-out or crash).
    """
    import nbformat

    _require_notebook(path)
    try:
        student = nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"NOTEBOOK must be a valid Jupyter notebook; {path} is not ({exc})"
                         ) from exc
    nb, changes = restore_locked(student, released_copy(path))
    from tqdm import tqdm

    bar = tqdm(total=sum(c.cell_type == "code" for c in nb.cells), desc=path.name,
               unit="cell", disable=not progress, file=sys.stderr)
    try:
        ran = _run(nb, path.parent, timeout, notebook_timeout, bar)
    finally:
        bar.close()
    runs = ran["runs"]
    unrestored = {c["grade_id"] for c in changes if not c["restored"]}

    stopped = None  # (index, status) of the cell the run stopped at
    for i, r in runs.items():
        if r["status"] in STOPS:
            stopped = (i, r["status"])

    def stop_message(status: str, seconds: float, errs: list) -> str:
        if status == "timeout":
            return (f"timed out: still running after {seconds:.0f} s, the limit per cell "
                    f"(grading allows {GRADING.cell_timeout:g} s per cell), and interrupted"
                    f"{_interrupted_at(errs, nb)}; the cells after it still ran, as at grading")
        if status == "timeout_kill":
            return (f"timed out: still running after {seconds:.0f} s, the limit per cell "
                    f"(grading allows {GRADING.cell_timeout:g} s per cell), and it did not stop "
                    "when interrupted; the cells after it did not run (grading stops the "
                    "notebook there too)")
        if status == "notebook_timeout":
            return (f"the notebook reached its time limit of {notebook_timeout:g} s here "
                    f"(grading allows {GRADING.notebook_timeout:g} s per notebook); the cells "
                    "after it did not run")
        return ("the kernel died while this cell ran (a crash, or out of memory); the cells "
                "after it did not run")

    errors: list[dict] = []   # non-test cells that failed, in order
    entries: list[dict] = []  # everything in notebook order, for the report
    tests: list[dict] = []
    written: list[dict] = []
    for i, cell in enumerate(nb.cells):
        md = _nbg(cell)
        if cell.cell_type != "code":
            if md.get("grade") and md.get("solution"):
                written.append({"grade_id": md.get("grade_id", f"cell {i + 1}"),
                                "points": float(md.get("points", 0)), "blank": _is_blank(cell)})
            continue
        run = runs.get(i)
        errs = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"] \
            if run else []
        if run and run["status"] != "ok":   # its own error output is the interrupt's
            errs, stop_errs = [], errs
        else:
            stop_errs = []
        if _is_test(cell):
            gid = md.get("grade_id", f"cell {i + 1}")
            status = run["status"] if run else "not_run"
            if run is None:
                where = _cell_name(nb.cells[stopped[0]], stopped[0]) if stopped else "a cell"
                msg = f"not run: {where} above stopped the notebook"
            elif status != "ok":
                msg = stop_message(status, run["seconds"], stop_errs)
            elif errs:
                msg = explain(errs[0])
                missing = UNDEFINED.search(ANSI.sub("", errs[0].get("evalue", "")))
                if errs[0].get("ename") == "NameError" and missing and errors:
                    culprit = next((e for e in reversed(errors) if re.search(
                        rf"\b(def|class)\s+{missing.group(1)}\b|\b{missing.group(1)}\s*=",
                        nb.cells[e["cell"]].source)), errors[-1])
                    msg += (f"; an earlier cell failed: {culprit['name']} "
                            f"({culprit['message'].split(':')[0]}), fix it first")
                elif errs[0].get("ename") != "AssertionError" and "still the released stub" \
                        not in msg and (line := _error_line(errs[0], cell.source)):
                    msg += f", at the test's line `{line}`"
            else:
                msg = ""
            passed = run is not None and status == "ok" and not errs
            if gid in unrestored:
                msg = ("edited: grading runs the released test instead, so this cell is not "
                       "counted here" + (f" ({msg})" if msg else ""))
                passed = False
            t = {"cell": i, "grade_id": gid, "points": float(md.get("points", 0)),
                 "passed": passed, "message": msg, "status": status}
            tests.append(t)
            entries.append({"kind": "test", **t})
        elif run is not None and (run["status"] != "ok" or errs):
            msg = stop_message(run["status"], run["seconds"], stop_errs) \
                if run["status"] != "ok" else explain(errs[0])
            line = _error_line(errs[0], cell.source) if errs and run["status"] == "ok" else ""
            if line:
                msg += f": `{line}`"
            e = {"cell": i, "name": _cell_name(cell, i), "message": msg,
                 "status": run["status"] if run["status"] != "ok" else "error"}
            errors.append(e)
            entries.append({"kind": "error", **e})
    rebinds = []
    for _, name, by, given in ran.get("rebound", []):
        if given >= len(nb.cells) or any(r["name"] == name and r["by"] == by for r in rebinds):
            continue
        who = "a cell" if by < 0 or by >= len(nb.cells) else (
            ("answer cell " if _nbg(nb.cells[by]).get("solution") else "")
            + _cell_name(nb.cells[by], by))
        rebinds.append({"name": name, "by": by, "who": who,
                        "given": _cell_name(nb.cells[given], given),
                        "kind": "test" if _is_test(nb.cells[given]) else "given"})
    earned = sum(t["points"] for t in tests if t["passed"])
    total = sum(t["points"] for t in tests)
    # cells over half the limit; a test cell that also runs hidden tests from a quarter on, as
    # grading calls the student's code again in them
    hidden = {i: HIDDEN_NOTICE in nb.cells[i].source for i in runs}
    slow = [{"cell": i, "name": _cell_name(nb.cells[i], i), "seconds": r["seconds"],
             "hidden": hidden[i]}
            for i, r in runs.items()
            if r["status"] == "ok" and r["seconds"] > timeout / (4 if hidden[i] else 2)]
    return {"tests": tests, "earned": earned, "total": total, "errors": errors,
            "entries": entries, "written": written, "changes": changes, "cells": runs,
            "rebinds": rebinds,
            "seconds": ran["seconds"], "slow": slow,
            "limits": {"cell": timeout, "notebook": notebook_timeout},
            "stopped": stopped[1] if stopped else None}


def report(res: dict) -> list[str]:
    """The lines ``check`` prints for one notebook's result."""
    lines = []
    for c in res.get("changes", []):
        kind = "test cell" if c["test"] else "locked cell"
        if c["change"] == "duplicated":
            done = "the copy is not counted (as in grading)"
        elif c["restored"]:
            done = "this check ran the released cell"
        elif c["test"]:
            done = "its result is not counted here (no released copy found to restore it)"
        else:
            done = "this check ran your version (no released copy found to restore it)"
        lines.append(f"WARNING  {kind} `{c['grade_id']}` was {c['change']}: grading restores "
                     f"the original locked cells and counts the released tests; {done}")
    for r in res.get("rebinds", []):
        lines.append(f"WARNING  {r['who']} rebinds `{r['name']}`, which the {r['kind']} cell "
                     f"{r['given']} defines: the tests used the {r['kind']} one, as grading "
                     "does (and flags it); give your own helper another name")
    if not res["tests"]:
        lines.append("no test cells found (is this an exercise notebook?)")
    for e in res.get("entries", [{"kind": "test", **t} for t in res["tests"]]):
        if e["kind"] == "test":
            mark = "PASS" if e["passed"] else "FAIL"
            lines.append(f"{mark}  {e['grade_id']}  ({e['points']:g} pt)")
        else:
            mark = "TIMEOUT" if "timeout" in e["status"] else "ERROR"
            lines.append(f"{mark}  {e['name']}  (not a test cell)")
        if e["message"]:
            lines.append(f"      {e['message']}")
    written = res.get("written", [])
    if written:
        lines.append("written answers (graded by hand, not in the estimate):")
        for w in written:
            state = "still blank" if w["blank"] else "answered"
            lines.append(f"      {w['grade_id']} ({w['points']:g} pt): {state}, graded by hand")
    limits = res.get("limits", {"cell": GRADING.cell_timeout,
                                "notebook": GRADING.notebook_timeout})
    for s in res.get("slow", []):
        share, more = ("a quarter of", "; at grading it also runs hidden tests, which call "
                       "your code again, so it may run out of time there") \
            if s.get("hidden") else ("half", "")
        lines.append(f"WARNING  {s['name']} took {s['seconds']:.1f} s, more than {share} the "
                     f"{limits['cell']:g} s limit per cell (grading allows "
                     f"{GRADING.cell_timeout:g} s per cell, on a machine that may be slower)"
                     + more)
    if "seconds" in res:
        lines.append(f"ran in {res['seconds']:.1f} s (grading allows {GRADING.cell_timeout:g} s "
                     f"per cell, {GRADING.notebook_timeout:g} s per notebook)")
        if res["seconds"] > limits["notebook"] / 2 and not res.get("stopped"):
            lines.append(f"WARNING  the notebook took more than half the "
                         f"{limits['notebook']:g} s limit per notebook")
    if res["tests"]:
        lines.append(f"score estimate (visible tests only): {res['earned']:g} / "
                     f"{res['total']:g}")
    return lines


def main(args) -> int:
    for name in ("timeout", "notebook_timeout"):
        value = getattr(args, name)
        if not value > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive number of seconds; "
                             f"got {value}")
    # every path is checked before any notebook runs
    paths = [_require_notebook(Path(n).expanduser().resolve()) for n in args.notebook]
    results = []
    for path in paths:
        try:
            res = check(path, args.timeout, not args.quiet, args.notebook_timeout)
        except Stopped as exc:
            if exc.signum == signal.SIGINT:
                raise KeyboardInterrupt from None
            print(f"stopped ({exc}); the kernel was shut down", file=sys.stderr)
            return 128 + exc.signum
        if len(paths) > 1:
            print(f"== {path.name}")
        print("\n".join(report(res)), flush=True)
        results.append(res)
    if len(paths) > 1:
        earned, total = (sum(r[k] for r in results) for k in ("earned", "total"))
        blank = sum(w["blank"] for r in results for w in r["written"])
        if blank:
            print(f"== {blank} written answer(s) still blank")
        print(f"== all {len(paths)} notebooks: {earned:g} / {total:g} (visible tests only)")
    return 0 if all(r["tests"] and r["earned"] == r["total"]
                    and all(c["status"] == "ok" for c in r["cells"].values())
                    for r in results) else 1


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="students: run the visible tests, estimate the score",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("notebook", metavar="NOTEBOOK", nargs="+",
                   help="your exercise notebook(s) (.ipynb), e.g. exercises/*/*.ipynb")
    p.add_argument("--timeout", type=float, default=GRADING.cell_timeout,
                   help="time limit per cell in seconds; a cell still running is interrupted "
                        "and the cells after it still run, as at grading (default: "
                        "%(default)g, the grading limit)")
    p.add_argument("--notebook-timeout", type=float, default=GRADING.notebook_timeout,
                   help="time limit for all cells of one notebook together, in seconds "
                        "(default: %(default)g, the grading limit)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress messages")
    p.set_defaults(func=main)
