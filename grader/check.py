"""``tconv-grader check NOTEBOOK...``: run your notebooks' visible tests and estimate your score.

For students. Runs the notebook top to bottom in a fresh Jupyter kernel on your machine
(no sandbox: it is your own code), in student mode, where each ``expect`` raises an
``AssertionError`` that says what was expected and what came back. Prints every test cell's
outcome and message and a score estimate (with several notebooks, one section each and a
total). Hidden tests are not in your copy, so the real grade
may be lower; written answers are graded by hand and are not counted.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

from grader.gradebook import UsageError

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A traceback frame in a notebook cell: "Cell In[3], line 5, in pixel_shuffle"
FRAME = re.compile(r"Cell In\[\d+\], line (\d+)(?:, in (\w+))?")


def explain(error: dict) -> str:
    """One test's failure as a student should read it, from a notebook ``error`` output.

    An ``expect`` failure already says what was expected, what came back and a hint. Anything
    else gets the place it was raised (the innermost notebook frame); a bare
    ``NotImplementedError`` there is the released stub, still in the function the test calls.
    """
    name, value = error.get("ename", "Error"), ANSI.sub("", error.get("evalue", ""))
    frames = [m for line in error.get("traceback", [])
              for m in FRAME.finditer(ANSI.sub("", line))]
    func = frames[-1].group(2) if frames else None
    if name == "NotImplementedError" and not value:
        where = f"`{func}`" if func else "a solution cell this test runs"
        return (f"NotImplementedError: {where} is still the released stub; replace its "
                "`raise NotImplementedError()` with your code")
    message = f"{name}: {value}"
    if name != "AssertionError" and frames:
        line = frames[-1].group(1)
        message += f" (raised in `{func}`, line {line} of its cell)" if func else (
            f" (raised at line {line} of a cell)")
    return message


def _require_notebook(path: Path) -> Path:
    if not path.is_file():
        raise UsageError(f"NOTEBOOK must be an existing .ipynb file; got {path}")
    return path


def check(path: Path, timeout: float = 120.0, progress: bool = True) -> dict:
    import nbformat
    from jupyter_client import KernelManager
    from nbclient import NotebookClient

    _require_notebook(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"NOTEBOOK must be a valid Jupyter notebook; {path} is not ({exc})"
                         ) from exc
    from tqdm import tqdm

    cells = tqdm(total=sum(c.cell_type == "code" for c in nb.cells), desc=path.name,
                 unit="cell", disable=not progress, file=sys.stderr)
    # On POSIX the kernel talks over Unix sockets in a private temporary folder, not TCP on
    # localhost: nothing else on the machine can connect to it, and ipykernel prints no warning
    # about unencrypted TCP. Windows keeps Jupyter's default, TCP.
    with tempfile.TemporaryDirectory(prefix="tconv-check-") as sockets:
        km = (KernelManager(kernel_name="python3", transport="ipc",
                            ip=os.path.join(sockets, "kernel")) if os.name == "posix"
              else KernelManager(kernel_name="python3"))
        client = NotebookClient(nb, km=km, timeout=int(timeout), allow_errors=True,
                                resources={"metadata": {"path": str(path.parent)}},
                                on_cell_executed=lambda **_: cells.update())
        try:
            # shut the kernel down afterwards, on errors too: nbclient's default leaves a kernel
            # whose manager it did not create running
            client.execute(cleanup_kc=True)
        finally:
            cells.close()
    tests = []
    for i, cell in enumerate(nb.cells):
        md = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not md.get("grade"):
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        msg = explain(errors[0]) if errors else ""
        tests.append({"cell": i, "grade_id": md.get("grade_id", f"cell {i}"),
                      "points": float(md.get("points", 0)), "passed": not errors,
                      "message": msg})
    earned = sum(t["points"] for t in tests if t["passed"])
    total = sum(t["points"] for t in tests)
    return {"tests": tests, "earned": earned, "total": total}


def report(res: dict) -> list[str]:
    """The lines ``check`` prints for one notebook's result."""
    if not res["tests"]:
        return ["no test cells found (is this an exercise notebook?)"]
    lines = []
    for t in res["tests"]:
        mark = "PASS" if t["passed"] else "FAIL"
        lines.append(f"{mark}  {t['grade_id']}  ({t['points']:g} pt)")
        if t["message"]:
            lines.append(f"      {t['message']}")
    lines.append(f"score estimate (visible tests only): {res['earned']:g} / {res['total']:g}")
    return lines


def main(args) -> int:
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds; got {args.timeout}")
    # every path is checked before any notebook runs
    paths = [_require_notebook(Path(n).expanduser().resolve()) for n in args.notebook]
    results = []
    for path in paths:
        res = check(path, args.timeout, not args.quiet)
        if len(paths) > 1:
            print(f"== {path.name}")
        print("\n".join(report(res)))
        results.append(res)
    if len(paths) > 1:
        earned, total = (sum(r[k] for r in results) for k in ("earned", "total"))
        print(f"== all {len(paths)} notebooks: {earned:g} / {total:g} (visible tests only)")
    return 0 if all(r["tests"] and r["earned"] == r["total"] for r in results) else 1


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="students: run the visible tests, estimate the score",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("notebook", metavar="NOTEBOOK", nargs="+",
                   help="your exercise notebook(s) (.ipynb), e.g. exercises/*/*.ipynb")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="per-cell time limit in seconds (default: %(default)s)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress messages")
    p.set_defaults(func=main)
