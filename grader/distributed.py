"""Autograding on a Dask cluster: ``tconv-grader autograde ... --scheduler ADDRESS``.

The grader's unit of work is already pure: :func:`grader.autograde.grade_notebook` takes one
sanitised notebook, the solution's expected records and the grading limits as plain data, runs
the notebook in its bubblewrap sandbox and returns the judged cells as plain data. Locally a
process pool runs these tasks; with ``--scheduler`` they go to a Dask distributed cluster
instead, and everything else stays on the machine that runs ``tconv-grader``: sanitising the
submissions, the solution run, and the gradebook writes (one transaction per submission, when
all its notebooks are back, through :func:`grader.dbretry.retrying`). So:

* **Same results as the local pool**: the same function runs on the same inputs.
* **No shared file system needed**: a task carries the notebook text and the bytes of the
  assignment's data files; a worker writes them to its own temporary directory.
* **Losing a worker loses no submission**: the scheduler re-runs a lost worker's tasks on another
  one (up to ``distributed.scheduler.allowed-failures`` times; a notebook that keeps killing
  workers is scored 0 and flagged). A task has no side effects, and its result reaches the
  gradebook only once, from this process, so nothing is counted twice. If the grading process
  itself dies, re-running the command resumes (graded submissions are skipped).
* **Preflight**: before anything is graded every worker checks (``client.run``) that it can import
  ``grader`` and find ``tconv_lib``, that the grader modules a task runs are the same as the
  client's (:data:`TASK_MODULES`), and that
  ``grader.sandbox.available()`` (bubblewrap works there). A failure stops the command with one
  line per bad worker. Workers that join later run the same check inside their first task.

``ADDRESS`` is anything ``dask.distributed.Client`` accepts (``tcp://host:8786``) or the path of a
scheduler file (``scheduler.json``, as written by ``dask scheduler --scheduler-file`` or dask-mpi),
so the same command works with a LocalCluster, dask-jobqueue (SLURM, PBS, ...) or Kubernetes
(dask-kubernetes / the Dask Helm chart). Workers need this project installed
(``pip install '.[cluster]'``), bubblewrap, and one thread each (``--nthreads 1``): a notebook
runs in its own sandboxed process, so parallelism comes from worker processes.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from grader.gradebook import UsageError

GRADER_DIR = Path(__file__).resolve().parent


class ClusterError(UsageError):
    """The cluster cannot grade (unreachable scheduler, no workers, a worker failing preflight)."""


#: the modules a grading task runs (client and workers must have the same ones)
TASK_MODULES = ("autograde.py", "execute.py", "sandbox.py", "_harness.py", "testing.py",
                "distributed.py")


def grader_digest(root: Path = GRADER_DIR) -> str:
    """Fingerprint of the grader sources that a task runs."""
    h = hashlib.sha256()
    for name in TASK_MODULES:
        p = root / name
        h.update(name.encode() + b"\0" + (p.read_bytes() if p.exists() else b"-") + b"\0")
    return h.hexdigest()[:16]


# The preflight runs on workers that may NOT have the project installed, so it must not be
# pickled by reference to this module: it is compiled into a module that does not exist on the
# worker side ("tconv_preflight"), which makes cloudpickle ship it by value.
_PREFLIGHT_SRC = '''
def tconv_worker_preflight(sandbox, digest):
    import socket, sys
    problems = []
    info = {"host": socket.gethostname(), "python": sys.version.split()[0]}
    try:
        import importlib.util
        import grader
        info["grader"] = grader.__file__
        if importlib.util.find_spec("tconv_lib") is None:  # found, not imported (torch is slow)
            raise ImportError("No module named 'tconv_lib'")
    except Exception as exc:
        problems.append(f"cannot import the project ({type(exc).__name__}: {exc}); "
                        "install it on the workers: pip install '.[cluster]'")
    else:
        try:
            from grader.distributed import grader_digest
            if grader_digest() != digest:
                problems.append("its grader sources differ from the client's "
                                f"({grader.__file__}); install the same version everywhere")
        except Exception as exc:
            problems.append(f"grader.distributed is missing ({type(exc).__name__}: {exc})")
        if sandbox:
            try:
                from grader.sandbox import available
                ok, reason = available()
            except Exception as exc:
                ok, reason = False, f"grader.sandbox failed ({type(exc).__name__}: {exc})"
            if not ok:
                problems.append(f"no grading sandbox: {reason}")
    info["problems"] = problems
    return info
'''


def _preflight_fn() -> Callable[[bool, str], dict]:
    ns: dict[str, Any] = {"__name__": "tconv_preflight"}
    exec(compile(_PREFLIGHT_SRC, "<tconv worker preflight>", "exec"), ns)  # noqa: S102
    return ns["tconv_worker_preflight"]


def connect(address: str, timeout: float = 30.0):
    """A ``dask.distributed.Client`` for ``address`` (or a scheduler file)."""
    try:
        from dask.distributed import Client
    except ImportError as exc:
        raise ClusterError("--scheduler needs Dask: pip install '.[cluster]' "
                           f"({type(exc).__name__}: {exc})") from None
    try:
        if address.endswith(".json") and os.path.isfile(address):
            return Client(scheduler_file=address, timeout=timeout)
        return Client(address, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the same story
        raise ClusterError(f"--scheduler {address}: cannot reach the Dask scheduler "
                           f"({type(exc).__name__}: {exc})") from None


def preflight(client, *, sandbox: bool, wait_s: float = 60.0) -> dict[str, dict]:
    """Run the worker check on every worker; raise :class:`ClusterError` naming each bad one."""
    try:
        client.wait_for_workers(1, timeout=wait_s)
    except Exception:  # noqa: BLE001 - TimeoutError across Dask versions
        raise ClusterError(f"the Dask cluster has no workers (waited {wait_s:.0f} s)") from None
    try:
        infos = client.run(_preflight_fn(), sandbox, grader_digest())
    except Exception as exc:  # noqa: BLE001
        raise ClusterError(f"worker preflight could not run ({type(exc).__name__}: {exc})") \
            from None
    bad = {a: i for a, i in infos.items() if i["problems"]}
    if bad:
        lines = [f"{len(bad)} of {len(infos)} Dask worker(s) cannot grade:"]
        for addr, info in sorted(bad.items()):
            lines += [f"  {addr} ({info['host']}): {p}" for p in info["problems"]]
        raise ClusterError("\n".join(lines))
    return infos


# ---- the task that runs on a worker -----------------------------------------------------------
_CHECKED: dict[tuple[bool, str], list[str]] = {}


class WorkerNotReady(RuntimeError):
    """Raised on a worker that joined after the preflight and fails it."""


def grade_remote(task: dict, blobs: dict[str, bytes], digest: str) -> dict:
    """Worker side: materialise the task's data files, then :func:`grade_notebook` it."""
    import tempfile

    key = (bool(task["sandbox"]), digest)
    if key not in _CHECKED:
        _CHECKED[key] = _preflight_fn()(task["sandbox"], digest)["problems"]
    if _CHECKED[key]:
        raise WorkerNotReady("; ".join(_CHECKED[key]))

    from grader.autograde import grade_notebook

    if not task["files"]:
        return grade_notebook(task)
    with tempfile.TemporaryDirectory(prefix="tconv-files-") as tmp:
        files = []
        for i, (src, rel) in enumerate(task["files"]):
            local = Path(tmp) / str(i)
            local.write_bytes(blobs[src])
            files.append((str(local), rel))
        return grade_notebook({**task, "files": files})


# ---- the client side ----------------------------------------------------------------------------
def _key(task: dict) -> str:
    s, a = task["key"]
    return f"tconv-grade-{a}-{s}-{task['notebook']}-{uuid.uuid4().hex[:8]}"


def run_tasks(address: str, tasks: Iterable[dict], *, sandbox: bool,
              client=None) -> Iterator[tuple[dict, dict | BaseException]]:
    """Grade ``tasks`` on the cluster; yields ``(task, result)`` as results come back.

    ``result`` is :func:`grade_notebook`'s dict, or the exception that made the cluster give up
    on the task (e.g. ``KilledWorker``: it killed ``allowed-failures`` workers); the caller
    scores such a notebook 0 and flags it, as it does for a local pool error. A worker failing
    its checks raises :class:`ClusterError` (nothing wrong is written).
    """
    from dask.distributed import as_completed

    tasks = list(tasks)
    own = client is None
    if own:
        client = connect(address)
    try:
        preflight(client, sandbox=sandbox)
        digest = grader_digest()
        blobs: dict[str, bytes] = {}
        for t in tasks:
            for src, _ in t["files"]:
                if src not in blobs:
                    blobs[src] = Path(src).read_bytes()
        futures = {}
        for t in tasks:
            mine = {src: blobs[src] for src, _ in t["files"]}
            fut = client.submit(grade_remote, t, mine, digest, key=_key(t), pure=False)
            futures[fut] = t
        try:
            for fut in as_completed(futures):
                t = futures.pop(fut)
                try:
                    res = fut.result()
                except WorkerNotReady as exc:
                    raise ClusterError(f"a Dask worker cannot grade: {exc}") from None
                except Exception as exc:  # noqa: BLE001 - handed to the caller
                    yield t, exc
                    continue
                yield t, res
        finally:
            if futures:
                client.cancel(list(futures))
    finally:
        if own:
            client.close()
