"""Run a notebook's code cells in a sandboxed plain Python process and collect its records.

``run_notebook(nb, workdir=..., limits=..., sandbox=True) -> Execution`` (the contract in
notes/GRADER_INTERFACES.md). No Jupyter kernel, no ZMQ: a warm *zygote* interpreter per grading
worker (see :mod:`grader.sandbox` and ``grader/_harness.py``) forks one child per notebook. The
child sends length-prefixed JSON frames on a dedicated pipe (arrays as base64 ``.npy``, never
pickle); this module parses them with strict size limits. A frame that does not parse, a record
for the wrong cell, a missing record: the record is simply absent (so the test fails) and the run
is flagged. Student faults never raise; a broken sandbox (infrastructure) raises RuntimeError.

Cell sources are not sent with the job: the harness asks for each cell (``cell_start``) and gets
its text on a third pipe, strictly in notebook order and only once the previous cell has ended, so
hidden test source (a cell holding ``BEGIN HIDDEN TESTS``) is never in the sandboxed process
before that cell runs. Flag texts from the sandbox (which student code can forge) are kept only
when they have a known form, and once hidden test source has been handed over, without any
student-chosen text (paths, record names, type names).

Memory is limited per notebook, not per process: every 0.1 s this (trusted) process sums the
resident anonymous and shared-memory pages of all the notebook's processes from ``/proc``; when
that sum, less what the processes shared with the warm interpreter at the start, could exceed
``memory_bytes`` it measures their proportional set size (PSS, shared pages counted once) and
kills the whole sandbox when over, flagging "memory limit". File-backed pages (shared libraries,
read-only mappings) are left out: they are reclaimable page cache, and their PSS share moves
whenever *other* processes on the machine map or unmap the same library (an exiting torch
process elsewhere once added 100 MiB to a notebook's PSS with no allocation at all).
"""

from __future__ import annotations

import atexit
import base64
import binascii
import io
import json
import os
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader import sandbox as sb
from grader.testing import Unserialisable

FRAME_MAX = 32 << 20          # one frame from the sandbox
DATA_MAX = 256 << 20          # all frames of one notebook together
RECORDS_MAX = 100_000
HINT_MAX = 600                # characters of one test's hint text (the harness cuts it there too)
# Seconds the notebook process has to exit after its last cell. 10 s was too short: in a CI run
# where the machine stalled (a book chapter that takes 5 s took 309 s), a correct notebook on a
# Dask worker was flagged for a slow exit. Its score was unaffected.
EXIT_GRACE_S = 30.0
DEPTH_MAX = 40
DEFAULT_PRELOAD = "numpy,torch,tconv_lib,grader.testing,matplotlib,matplotlib.pyplot"


def preload() -> tuple[str, ...]:
    """Modules the warm interpreter imports once ($TCONV_SANDBOX_PRELOAD, comma-separated)."""
    return tuple(m for m in os.environ.get("TCONV_SANDBOX_PRELOAD", DEFAULT_PRELOAD).split(",")
                 if m)
HARNESS = Path(__file__).resolve().parent / "_harness.py"
HIDDEN_MARK = "BEGIN HIDDEN TESTS"  # nbgrader's marker: such a cell holds hidden test source
SOURCE_MAX = 16 << 20         # largest cell source handed to the harness (its own limit too)
MEMORY_TICK_S = 0.1
MALFORMED = "malformed output from the notebook process (ignored)"


@dataclass
class CellRun:
    index: int
    grade_id: str | None
    status: str                 # "ok" | "error" | "timeout" | "killed" | "not_run"
    error: str | None
    output: str


@dataclass
class Execution:
    records: dict[str, object]
    cells: list[CellRun]
    flags: list[str]
    seconds: float
    hints: dict[str, str] = field(default_factory=dict)  # record key -> the hint= text sent


@dataclass
class Limits:
    cell_timeout: float = 30.0
    notebook_timeout: float = 120.0
    memory_bytes: int = 2 << 30
    max_processes: int = 64
    max_output_bytes: int = 1 << 20
    file_bytes: int = 64 << 20      # largest file the notebook may write
    tmp_bytes: int = 64 << 20       # size of its private /tmp (a tmpfs)
    work_bytes: int = 256 << 20     # size of /work, the tmpfs holding the copy of the submission
    shm_bytes: int = 16 << 20       # size of its private /dev/shm

    @staticmethod
    def grace(cell_timeout: float) -> float:
        """Seconds a cell over ``cell_timeout`` gets to stop once told to (its ``TimeoutError``
        or an interrupt) before the notebook is killed there."""
        return min(2.0, 0.5 + 0.2 * cell_timeout)


def _flag(flags: list[str], msg: str) -> None:
    if msg not in flags:
        flags.append(msg)


# ---- decoding what comes out of the sandbox ------------------------------------------------------
class _Bad(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _Bad(f"non-JSON constant {name}")


def decode_value(obj: Any, depth: int = 0) -> Any:
    """Plain value from its JSON form; raises _Bad on anything unexpected."""
    if depth > DEPTH_MAX:
        raise _Bad("too deep")
    t = type(obj)
    if obj is None or t in (bool, int, float, str):
        return obj
    if t is not dict or not isinstance(obj.get("$"), str):
        raise _Bad(f"unexpected {t.__name__}")
    tag, v = obj["$"], obj.get("v")
    if tag == "float":
        if v not in ("nan", "inf", "-inf"):
            raise _Bad("bad float")
        return float(v)
    if tag in ("list", "tuple"):
        if type(v) is not list:
            raise _Bad("bad sequence")
        items = [decode_value(x, depth + 1) for x in v]
        return items if tag == "list" else tuple(items)
    if tag == "dict":
        if type(v) is not dict:
            raise _Bad("bad dict")
        return {str(k): decode_value(x, depth + 1) for k, x in v.items()}
    if tag == "nd":
        npy = obj.get("npy")
        if type(npy) is not str:
            raise _Bad("bad array")
        try:
            arr = np.load(io.BytesIO(base64.b64decode(npy, validate=True)), allow_pickle=False)
        except (ValueError, OSError, binascii.Error, EOFError) as exc:
            raise _Bad(f"bad npy: {exc}") from None
        if type(arr) is not np.ndarray or arr.dtype.kind not in "biuf" or arr.ndim > 32:
            raise _Bad("bad array dtype")
        return arr
    if tag == "unser":
        return Unserialisable(str(obj.get("type", "?"))[:200])
    raise _Bad(f"unknown tag {tag!r}")


def _suspicious(value: Any, depth: int = 0) -> list[str]:
    """Reasons a recorded value is worth a human look (it fails anyway): NaN, not plain data."""
    if depth > DEPTH_MAX:
        return []
    if isinstance(value, Unserialisable):
        return [f"not plain data ({value.type_name})"]
    if isinstance(value, float) and value != value:
        return ["NaN"]
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and np.isnan(value).any():
        return ["NaN"]
    if isinstance(value, list | tuple):
        return sorted({w for v in value for w in _suspicious(v, depth + 1)})
    if isinstance(value, dict):
        return sorted({w for v in value.values() for w in _suspicious(v, depth + 1)})
    return []


# ---- flags from the sandbox (student code can forge them) ----------------------------------------
_FIXED_FLAGS = frozenset({"network attempt", "memory limit", "process limit", "timeout",
                          "output truncated", "record too large", "disk limit"}
                         | {f"disk limit: {d} is full" for d in ("/tmp", "/work", "/dev/shm")})
FILE_FLAG = "file access outside the submission: "
PATCH_FLAG = "monkeypatched before a test cell: "
_PATCH_NAME = re.compile(r"(builtins|grader\.testing|numpy|numpy\.testing|torch\.testing|json|math)"
                         r"\.[A-Za-z_][A-Za-z0-9_]{0,60}\Z")


def sandbox_flag(msg: str, exposed: bool) -> str:
    """The flag kept for a flag text the sandbox sent: a known form, or "malformed output".

    ``exposed``: hidden test source has been handed to the sandbox, so student code may know it;
    then no student-chosen text (a path, attribute names) is kept at all.
    """
    if msg in _FIXED_FLAGS:
        return msg
    if msg.startswith(FILE_FLAG):
        path = msg[len(FILE_FLAG):]
        if not (path.startswith("/") and path.isprintable() and len(path) <= 120):
            return MALFORMED
        if exposed:
            return "file access outside the submission (path not shown: hidden tests had started)"
        return msg
    if msg.startswith(PATCH_FLAG):
        names = msg[len(PATCH_FLAG):].split(", ")
        if not (0 < len(names) <= 6 and all(_PATCH_NAME.match(n) for n in names)):
            return MALFORMED
        return PATCH_FLAG[:-2] if exposed else msg
    return MALFORMED


REBIND_FLAG = "rebound before a test cell: "  # the harness's form: "<by>:<locked cell>:<name>"
_REBIND = re.compile(r"(-1|\d{1,6}):(\d{1,6}):([A-Za-z_][A-Za-z0-9_]{0,60})\Z")


def _cell_words(cell: dict | None, index: int) -> str:
    gid = cell.get("grade_id") if cell else None
    return f"cell `{gid}` (#{index})" if gid else f"cell #{index}"


def rebind_flag(text: str, by_index: dict[int, dict]) -> str:
    """The words for the harness's report that a cell rebound a name a locked cell defines
    (:class:`grader.testing.LockedNames`), or "malformed output". The name must be in the
    locked cell's source (restored from the gradebook): a forged report can only name those."""
    m = _REBIND.match(text)
    if not m:
        return MALFORMED
    by, given, name = int(m.group(1)), int(m.group(2)), m.group(3)
    locked = by_index.get(given)
    if (locked is None or not locked.get("locked") or (by != -1 and by not in by_index)
            or not re.search(rf"(?<![\w.]){name}\b", locked["source"])):
        return MALFORMED
    kind = "test" if locked.get("grade") else "given"
    if by == -1:
        who = "a cell"
    else:
        who = ("answer " if by_index[by].get("solution") else "") + _cell_words(by_index[by], by)
    return (f"{who} rebinds `{name}`, which the {kind} {_cell_words(locked, given)} defines; "
            f"the tests used the {kind} one")


# ---- memory of a notebook's processes (read from /proc by the trusted parent) --------------------
def _children_of(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            pass
    return out


def _parents() -> dict[int, list[int]]:
    """``{ppid: [pid]}`` of every process (when /proc/PID/task/TID/children is missing)."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    return kids


_HAVE_CHILDREN_FILE = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (breadth first)."""
    if _HAVE_CHILDREN_FILE:
        def kids(p: int) -> list[int]:
            return _children_of(p)
    else:
        table = _parents()

        def kids(p: int) -> list[int]:
            return table.get(p, [])
    out: list[int] = []
    seen = {root}
    todo = kids(root)
    while todo and len(out) < 4096:
        nxt = []
        for p in todo:
            if p not in seen:
                seen.add(p)
                out.append(p)
                nxt += kids(p)
        todo = nxt
    return out


def _proc_fields(path: str, fields: tuple[bytes, ...]) -> dict[bytes, int]:
    """Those ``fields`` (in bytes) that ``/proc`` file ``path`` has; {} if it cannot be read."""
    out: dict[bytes, int] = {}
    try:
        with open(path, "rb") as f:
            for line in f:
                name = line.split(b":", 1)[0] + b":"
                if name in fields:
                    out[name] = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return {}
    return out


_RSS_PRIVATE = (b"RssAnon:", b"RssShmem:")    # /proc/PID/status (Linux 4.5+)
_PSS_PRIVATE = (b"Pss_Anon:", b"Pss_Shmem:")  # /proc/PID/smaps_rollup (Linux 5.9+)


def _rss(pid: int) -> int:
    """Resident anonymous + shared-memory (tmpfs, shm) bytes of ``pid``; VmRSS on old kernels."""
    v = _proc_fields(f"/proc/{pid}/status", _RSS_PRIVATE + (b"VmRSS:",))
    if all(k in v for k in _RSS_PRIVATE):
        return sum(v[k] for k in _RSS_PRIVATE)
    return v.get(b"VmRSS:", 0)


def _pss(pid: int) -> int:
    """The PSS of ``pid``'s anonymous + shared-memory pages (file-backed pages left out); the
    whole PSS on kernels without those fields, and :func:`_rss` (an upper bound) without
    smaps_rollup."""
    v = _proc_fields(f"/proc/{pid}/smaps_rollup", _PSS_PRIVATE + (b"Pss:",))
    if all(k in v for k in _PSS_PRIVATE):
        return sum(v[k] for k in _PSS_PRIVATE)
    return v.get(b"Pss:", _rss(pid))


class MemoryWatch:
    """The memory of one notebook: the processes below the harness's warm interpreter.

    ``start()`` (before any student code) takes the baseline; ``over()`` is cheap (RssAnon +
    RssShmem from ``/proc/PID/status``) until that sum could exceed the limit, then exact (the
    same pages' PSS from ``smaps_rollup``): forked children sharing pages are not counted twice.
    """

    def __init__(self, root: int | None, limit: int) -> None:
        self.root, self.limit = root, int(limit)
        self.rss_base: int | None = None
        self.pss_base = self.slack = self.peak = 0

    def _pids(self) -> list[int]:
        return descendants(self.root) if self.root else []

    def start(self) -> None:
        if not self.root:
            return
        pids = self._pids()
        self.rss_base = sum(_rss(p) for p in pids)
        self.pss_base = sum(_pss(p) for p in pids)
        # pages shared with the warm interpreter: RSS already counts them, PSS only in part, so
        # PSS can grow by up to this much (copy-on-write) without any RSS growth
        self.slack = max(0, self.rss_base - self.pss_base)

    def over(self) -> bool:
        if self.rss_base is None:
            return False
        pids = self._pids()
        rss = sum(_rss(p) for p in pids)
        if rss - self.rss_base + self.slack <= self.limit:
            return False
        used = sum(_pss(p) for p in pids) - self.pss_base
        self.peak = max(self.peak, used)
        return used > self.limit


# ---- the warm interpreter ------------------------------------------------------------------------
class SandboxError(RuntimeError):
    pass


class _Zygote:
    """One warm harness process (inside bwrap when sandboxed) serving one job at a time."""

    def __init__(self, kind: str, modules: tuple[str, ...] | None = None,
                 per_run_scratch: str = "", limits: Limits | None = None):
        self.kind = kind                      # "zygote" | "per-run" | "none"
        self.owner = os.getpid()
        self.stage = tempfile.mkdtemp(prefix="tconv-stage-") if kind != "per-run" else ""
        if self.stage:
            os.chmod(self.stage, 0o700)
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        isolate = kind == "zygote"
        if kind == "none":
            pkg_root = str(sb.package_dirs()["grader"].parent)
            tl = sb.package_dirs().get("tconv_lib")
            pypath = [pkg_root] + ([str(tl.parent)] if tl and str(tl.parent) != pkg_root else [])
            harness, testing = str(HARNESS), str(HARNESS.parent / "testing.py")
            python = sys.executable
            env_path = ":".join(pypath)
        else:
            harness = f"{sb.SRC_IN}/grader/_harness.py"
            testing = f"{sb.SRC_IN}/grader/testing.py"
            python = sb.python_in_sandbox()
            env_path = sb.sandbox_pythonpath()
        args = json.dumps({"ctl_fd": theirs.fileno(), "testing": testing,
                           "preload": list(modules if modules is not None else preload()),
                           "isolate": isolate})
        argv = [python, "-s", "-B", "-P", harness, args]
        if kind == "zygote":
            cmd = sb.zygote_command(self.stage, argv)
        elif kind == "per-run":
            lim = limits or Limits()
            cmd = sb.per_run_command(per_run_scratch, argv, tmp_bytes=lim.tmp_bytes,
                                     shm_bytes=lim.shm_bytes, work_bytes=lim.work_bytes)
        else:
            cmd = argv
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": env_path,
               "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp",
               "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/.mpl", "LANG": "C.UTF-8",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "TCONV_GRADING": "1"}
        if kind == "none":
            env["HOME"] = os.environ.get("HOME", "/tmp")
            env["MPLCONFIGDIR"] = os.path.join(tempfile.gettempdir(), "tconv-mpl")
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, pass_fds=[theirs.fileno()], env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        theirs.close()
        self.buf = b""
        msg = self._recv(timeout=300)
        if msg is None or msg.get("t") != "ready":
            raise SandboxError(f"the grading harness did not start: {self.tail()}")
        self.harness_pid = self._find_harness()

    def _find_harness(self) -> int | None:
        """Host pid of the warm interpreter (below bwrap): the notebook's processes are its
        descendants. None if it cannot be seen (then memory is limited per process only)."""
        if self.kind == "none":
            return self.proc.pid
        for pid in descendants(self.proc.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"_harness.py" in f.read():
                        return pid
            except OSError:
                pass
        return None

    def tail(self) -> str:
        try:
            self.log.seek(0)
            return self.log.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"

    def alive(self) -> bool:
        return self.proc.poll() is None and self.owner == os.getpid()

    def _recv(self, timeout: float | None) -> dict | None:
        """One control message, or None on EOF/timeout."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack("<I", self.buf[:4])[0]
                if n > 1 << 20:
                    raise SandboxError("bad control message from the harness")
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return json.loads(body)
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            except OSError:
                return None
            if not chunk:
                return None
            self.buf += chunk

    def send(self, obj: dict, fds: list[int] | None = None) -> None:
        data = json.dumps(obj).encode()
        frame = struct.pack("<I", len(data)) + data
        self.sock.settimeout(30)
        if fds:
            socket.send_fds(self.sock, [frame], fds)
        else:
            self.sock.sendall(frame)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        if self.owner == os.getpid():
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._kill()
            if self.stage:
                shutil.rmtree(self.stage, ignore_errors=True)

    def _kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


_local = threading.local()
_all: list[_Zygote] = []


def _zygote_for(kind: str) -> _Zygote:
    cache = getattr(_local, "zygotes", None)
    if cache is None or getattr(_local, "pid", None) != os.getpid():
        cache = _local.zygotes = {}
        _local.pid = os.getpid()
    z = cache.get(kind)
    if z is None or not z.alive():
        if z is not None and z.owner == os.getpid():
            z.close()
        z = cache[kind] = _Zygote(kind)
        _all.append(z)
    return z


def shutdown() -> None:
    """Stop this process's warm interpreters (called at exit; safe to call any time)."""
    while _all:
        z = _all.pop()
        if z.owner == os.getpid():
            z.close()
    if getattr(_local, "zygotes", None):
        _local.zygotes = {}


atexit.register(shutdown)
try:  # pool workers (multiprocessing) leave through os._exit, past atexit: use its finaliser
    from multiprocessing import util as _mp_util

    _mp_util.Finalize(None, shutdown, exitpriority=10)
except Exception:  # noqa: BLE001 - best effort
    pass


# ---- notebook input ------------------------------------------------------------------------------
def _code_cells(nb: Any) -> list[dict]:
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise ValueError("nb: expected a notebook (a mapping with a 'cells' list), "
                         f"got {type(nb).__name__}")
    out = []
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict):
            raise ValueError(f"nb: cell {i} is not a mapping")
        if cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        if isinstance(src, list):
            src = "".join(str(s) for s in src)
        if not isinstance(src, str):
            raise ValueError(f"nb: cell {i} source must be text, got {type(src).__name__}")
        meta = cell.get("metadata") or {}
        nbg = meta.get("nbgrader") or {} if isinstance(meta, dict) else {}
        nbg = nbg if isinstance(nbg, dict) else {}
        gid = nbg.get("grade_id")
        out.append({"index": i, "source": src, "grade": bool(nbg.get("grade")),
                    "locked": bool(nbg.get("locked") or nbg.get("grade"))
                    and not nbg.get("solution"), "solution": bool(nbg.get("solution")),
                    "grade_id": str(gid) if gid is not None else None,
                    "hidden": HIDDEN_MARK in src})
    return out


def _copy_workdir(src: Path, dst: Path, uid: int | None) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    else:
        dst.mkdir(parents=True, exist_ok=True)
    if uid is not None:
        for root, dirs, files in os.walk(dst):
            os.lchown(root, uid, uid)
            for name in dirs + files:
                os.lchown(os.path.join(root, name), uid, uid)


# ---- the runner ----------------------------------------------------------------------------------
def run_notebook(nb: Any, *, workdir: Path, limits: Limits | None = None,
                 sandbox: bool = True) -> Execution:
    """Execute ``nb``'s code cells in a fresh sandboxed process; see the module docstring."""
    limits = limits or Limits()
    t0 = time.monotonic()
    try:
        cells = _code_cells(nb)
    except ValueError as exc:
        return Execution({}, [], [f"invalid notebook: {exc}"], time.monotonic() - t0)
    if sandbox:
        ok, why = sb.available()
        if not ok:
            raise SandboxError(f"sandbox unavailable: {why}")
        kind = sb.mode()
    else:
        kind = "none"
    workdir = Path(workdir)
    job_id = uuid.uuid4().hex
    per_run_dir = None
    if kind == "per-run":
        per_run_dir = tempfile.mkdtemp(prefix="tconv-run-")
        _copy_workdir(workdir, Path(per_run_dir), None)
        zyg = _Zygote("per-run", modules=("numpy", "grader.testing"),
                      per_run_scratch=per_run_dir, limits=limits)
        cwd, uid = "/work", None
    else:
        zyg = _zygote_for(kind)
        t0 = time.monotonic()  # a cold zygote's warm-up is not the student's time
        uid = 1_000_000 + zyg.proc.pid if kind == "zygote" else None
        scratch = Path(zyg.stage) / job_id
        _copy_workdir(workdir, scratch, None)  # the child copies it again into its own tmpfs
        cwd = "/work" if kind == "zygote" else str(scratch)
    try:
        return _run(zyg, kind, cells, job_id, cwd, uid, limits, t0)
    finally:
        if per_run_dir:
            zyg.close()
            shutil.rmtree(per_run_dir, ignore_errors=True)
        else:
            shutil.rmtree(Path(zyg.stage) / job_id, ignore_errors=True)


def _run(zyg: _Zygote, kind: str, cells: list[dict], job_id: str, cwd: str, uid: int | None,
         limits: Limits, t0: float) -> Execution:
    flags: list[str] = []
    records: dict[str, object] = {}
    hints: dict[str, str] = {}
    ends: dict[int, dict] = {}
    raw_out: dict[int, list[bytes]] = {}
    by_index = {c["index"]: c for c in cells}
    data_r, data_w = os.pipe()
    out_r, out_w = os.pipe()
    src_r, src_w = os.pipe()  # cell sources, one at a time, parent -> harness
    os.set_blocking(src_w, False)
    job = {"t": "job", "id": job_id, "cwd": cwd, "uid": uid,
           "cells": [{"index": c["index"], "grade": c["grade"], "grade_id": c["grade_id"],
                      "locked": c["locked"]}
                     for c in cells],  # no source: each is handed over when its turn comes
           "stage": job_id, "last": kind == "per-run", "watch_files": kind != "none",
           "copy_from": "/stage" if kind == "per-run" else None,
           "limits": {"cell_timeout": limits.cell_timeout, "memory_bytes": limits.memory_bytes,
                      "max_processes": limits.max_processes,
                      "max_output_bytes": limits.max_output_bytes,
                      "file_bytes": limits.file_bytes, "tmp_bytes": limits.tmp_bytes,
                      "work_bytes": limits.work_bytes, "shm_bytes": limits.shm_bytes}}
    try:
        zyg.send(job, [data_w, out_w, src_r])
    except OSError as exc:
        zyg._kill()
        os.close(data_r)
        os.close(out_r)
        os.close(src_w)
        raise SandboxError(f"could not hand the notebook to the harness: {exc}") from exc
    finally:
        os.close(data_w)
        os.close(out_w)
        os.close(src_r)
    sel = selectors.DefaultSelector()
    sel.register(data_r, selectors.EVENT_READ, "data")
    sel.register(out_r, selectors.EVENT_READ, "out")
    sel.register(zyg.sock, selectors.EVENT_READ, "ctl")
    buf = bytearray()
    outgoing = bytearray()  # source bytes not yet written to the harness
    writing = False
    data_total = raw_total = 0
    current: int | None = None
    started = 0               # cells handed over so far (they run in notebook order)
    exposed = False           # hidden test source has been handed to the sandbox
    done = False
    exit_code: int | None = None
    killed_for: str | None = None
    kill_sent_at: float | None = None
    cell_deadline = float("inf")
    nb_deadline = t0 + limits.notebook_timeout
    grace = Limits.grace(limits.cell_timeout)
    exit_seen_at: float | None = None
    finished_at: float | None = None  # every cell has ended: the notebook's time is over
    open_fds = {"data", "out"}
    mem = MemoryWatch(zyg.harness_pid, limits.memory_bytes)
    next_tick = 0.0

    def kill(reason: str) -> None:
        nonlocal killed_for, kill_sent_at
        if kill_sent_at is None:
            killed_for = reason
            kill_sent_at = time.monotonic()
            try:
                zyg.send({"t": "kill", "id": job_id})
            except OSError:
                zyg._kill()

    def keep_flag(msg: str) -> None:
        if msg.startswith(REBIND_FLAG):
            _flag(flags, rebind_flag(msg[len(REBIND_FLAG):], by_index))
            return
        _flag(flags, sandbox_flag(msg, exposed))

    def handle(frame: bytes) -> None:
        nonlocal current, done, cell_deadline, finished_at, started, exposed
        try:
            msg = json.loads(frame, parse_constant=_reject_constant)
            if type(msg) is not dict:
                raise _Bad("frame is not an object")
            t = msg.get("t")
            if t == "cell_start":
                i = msg.get("i")
                if current is not None or started >= len(cells) or i != cells[started]["index"]:
                    raise _Bad("cell_start out of order")
                started += 1
                current = i
                if mem.rss_base is None:
                    mem.start()  # no student code has run yet
                src = by_index[i]["source"].encode("utf-8", "surrogatepass")
                if len(src) > SOURCE_MAX:
                    src = b"raise SyntaxError('this cell is larger than the autograder accepts')"
                outgoing.extend(struct.pack("<I", len(src)) + src)
                exposed = exposed or by_index[i]["hidden"]
                cell_deadline = time.monotonic() + limits.cell_timeout + grace
            elif t == "cell_end":
                i = msg.get("i")
                if i != current:
                    raise _Bad("cell_end for a cell that is not running")
                status = msg.get("status")
                if status not in ("ok", "error", "timeout"):
                    raise _Bad("bad status")
                err = msg.get("error")
                out = msg.get("output")
                ends[i] = {"status": status,
                           "error": str(err)[:2000] if err is not None else None,
                           "output": str(out)[: limits.max_output_bytes] if out else ""}
                for f in decode_value(msg.get("flags")) or []:
                    if isinstance(f, str) and len(f) < 200:
                        keep_flag(f)
                current = None
                cell_deadline = float("inf")
                if len(ends) == len(cells) and finished_at is None:
                    finished_at = time.monotonic()
            elif t == "record":
                key, cell = msg.get("key"), msg.get("cell")
                info = by_index.get(cell)
                if (cell != current or info is None or not info["grade"]
                        or not isinstance(key, str)
                        or not key.startswith(f"{info['grade_id']}/")):
                    raise _Bad("record outside its test cell")
                if len(records) >= RECORDS_MAX:
                    raise _Bad("too many records")
                records[key] = value = decode_value(msg.get("value"))
                hint = msg.get("hint")
                if isinstance(hint, str) and hint:
                    hints[key] = hint[:HINT_MAX]
                else:
                    hints.pop(key, None)
                for why in _suspicious(value):
                    if info["hidden"] or exposed:  # the name and the type are the student's
                        _flag(flags, f"{why.split(' (')[0]} in a test value of cell "
                                     f"'{info['grade_id']}'")
                    else:
                        _flag(flags, f"{why} in test value '{key}'")
            elif t == "flag":
                m = msg.get("msg")
                if isinstance(m, str):
                    if m.startswith("sandbox setup failed") and current is None and not ends \
                            and not started:
                        raise SandboxError(m)  # before any cell: no student code has run yet
                    keep_flag(m[:200])
            elif t == "done":
                done = True
                finished_at = finished_at or time.monotonic()
            else:
                raise _Bad("unknown frame")
        except (_Bad, ValueError, TypeError, RecursionError):
            _flag(flags, MALFORMED)

    try:
        while True:
            now = time.monotonic()
            if kill_sent_at is None:
                if finished_at is not None:
                    # all work is in: a slow exit on a loaded machine is not a timeout
                    if now > finished_at + EXIT_GRACE_S:
                        kill("exit")
                elif now > nb_deadline:
                    kill("notebook")
                elif now > cell_deadline:
                    kill("cell")
                elif now >= next_tick:
                    next_tick = now + MEMORY_TICK_S
                    if mem.over():
                        kill("memory")
            elif now - kill_sent_at > 15:
                zyg._kill()  # the zygote does not answer: discard it
                break
            if exit_code is not None and (not open_fds or now - (exit_seen_at or now) > 1.0):
                break
            if outgoing and not writing:
                sel.register(src_w, selectors.EVENT_WRITE, "src")
                writing = True
            wait = min(nb_deadline if finished_at is None else now + 0.5,
                       cell_deadline, now + 0.5,
                       next_tick if mem.rss_base is not None and finished_at is None
                       else now + 0.5) - now
            for key, _ in sel.select(timeout=max(wait, 0.01)):
                if key.data == "src":
                    try:
                        n = os.write(src_w, outgoing)
                        del outgoing[:n]
                    except BlockingIOError:
                        pass
                    except OSError:
                        outgoing.clear()  # the harness is gone
                    if not outgoing:
                        sel.unregister(src_w)
                        writing = False
                elif key.data == "data":
                    chunk = os.read(data_r, 1 << 20)
                    if not chunk:
                        sel.unregister(data_r)
                        open_fds.discard("data")
                        continue
                    data_total += len(chunk)
                    if data_total > DATA_MAX:
                        _flag(flags, "too much data from the notebook process")
                        sel.unregister(data_r)
                        open_fds.discard("data")
                        kill("data")
                        continue
                    buf += chunk
                    while len(buf) >= 4:
                        n = struct.unpack("<I", buf[:4])[0]
                        if n > FRAME_MAX:
                            _flag(flags, MALFORMED)
                            sel.unregister(data_r)
                            open_fds.discard("data")
                            kill("data")
                            buf.clear()
                            break
                        if len(buf) < 4 + n:
                            break
                        frame = bytes(buf[4:4 + n])
                        del buf[:4 + n]
                        handle(frame)
                elif key.data == "out":
                    chunk = os.read(out_r, 1 << 20)
                    if not chunk:
                        sel.unregister(out_r)
                        open_fds.discard("out")
                        continue
                    room = limits.max_output_bytes - raw_total
                    if len(chunk) > room:
                        _flag(flags, "output truncated")
                        chunk = chunk[: max(room, 0)]
                    raw_total += len(chunk)
                    if chunk:
                        raw_out.setdefault(current if current is not None else -1,
                                           []).append(chunk)
                else:
                    msg = zyg._recv(timeout=5)
                    if msg is None:
                        sel.unregister(zyg.sock)
                        zyg._kill()
                        exit_code = exit_code if exit_code is not None else -9
                        exit_seen_at = time.monotonic()
                        continue
                    if msg.get("t") == "exit" and msg.get("id") == job_id:
                        exit_code = int(msg.get("code", -9))
                        exit_seen_at = time.monotonic()
                        sel.unregister(zyg.sock)
    finally:
        sel.close()
        os.close(data_r)
        os.close(out_r)
        os.close(src_w)

    # ---- assemble the result ----
    if killed_for in ("cell", "notebook"):
        _flag(flags, "timeout")
    if killed_for == "notebook":
        _flag(flags, "notebook timeout")
    if killed_for == "memory":
        _flag(flags, "memory limit")
    if killed_for == "exit":
        _flag(flags, "the notebook process did not exit after its last cell")
    died = None
    if not done and killed_for is None:
        if exit_code is not None and exit_code < 0:
            died = f"kernel died (signal {-exit_code})"
            _flag(flags, died)
            if -exit_code == signal.SIGKILL:
                _flag(flags, "memory limit")
        else:
            died = f"kernel died (exit code {exit_code})"
            _flag(flags, died)
    elif not done and exit_code == 120:
        raise SandboxError("sandbox setup failed")
    runs: list[CellRun] = []
    reached = True
    for c in cells:
        i = c["index"]
        extra = b"".join(raw_out.get(i, [])).decode("utf-8", "replace")
        if i in ends:
            e = ends[i]
            runs.append(CellRun(i, c["grade_id"], e["status"], e["error"], e["output"] + extra))
        elif reached and i == current:
            status = "timeout" if killed_for in ("cell", "notebook") else "killed"
            why = ("cell timed out" if killed_for == "cell" else
                   "notebook timed out" if killed_for == "notebook" else
                   f"the notebook used more than {limits.memory_bytes >> 20} MiB of memory (all "
                   "its processes together)" if killed_for == "memory" else
                   f"the notebook process died ({died or killed_for or 'unknown'})")
            runs.append(CellRun(i, c["grade_id"], status, why, extra))
            reached = False
        else:
            runs.append(CellRun(i, c["grade_id"], "not_run", None, extra))
    if killed_for is None and not done and exit_code is None:
        _flag(flags, "kernel died (no exit status)")
    # A cell scores only if it finished ok (the grader checks its status), but the records a
    # stopped cell made before it stopped are kept: they say which of its tests passed or what
    # came back, as `check` says, instead of calling every one of them "not reached".
    hints = {k: v for k, v in hints.items() if k in records}
    return Execution(records, runs, flags, time.monotonic() - t0, hints)
