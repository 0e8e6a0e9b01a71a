"""The code that runs INSIDE the grading sandbox (a plain Python process, not a Jupyter kernel).

This file is executed as a script by :mod:`grader.execute`, never imported by the grader itself.
It runs as a *zygote*: it pre-imports the heavy modules (numpy, torch, tconv_lib, ...) once, then
waits on a control socket for jobs. For each job it forks; the child isolates itself (when the
zygote runs inside the bubblewrap sandbox as root: a fresh mount and pid namespace, private
``/tmp`` and ``/dev/shm``, only this submission's scratch copy at ``/work``, then an unprivileged
uid of its own), sets resource limits and executes the notebook's code cells in one namespace.

A cell's source is not part of the job: the harness asks for it (``cell_start``) right before the
cell runs and the parent answers on a dedicated pipe, in notebook order; once compiled the text is
dropped. So hidden test source is never in this process while the student's cells that come
before it run (see :mod:`grader.sandbox` for what holds after a hidden-test cell started).

Everything the recorder needs is captured before any student code runs: a *private* copy of
``grader.testing`` (not registered in ``sys.modules``), the C-level encoders used for framing, and
``os.write``. Records leave the process as length-prefixed JSON on a dedicated pipe; arrays as
base64 ``.npy`` bytes built here by hand (never pickle), a float array in its own width (float16,
float32 or float64: the grader tells a float32 answer that failed by rounding why). The harness
never compares values: the grader compares the records with the instructor solution's, outside
the sandbox.

An in-process attacker can always forge *records* (they share the process with the harness), but
forging a passing record needs the correct answer, which is exactly what the exercise asks for;
the solution and the hidden tests' expected values are never visible inside the sandbox.
"""

import binascii
import builtins
import ctypes
import gc
import importlib.util
import json
import os
import signal
import socket
import struct
import sys
import time
import types

# ---- references captured before any student code can run ---------------------------------------
_BUILTINS = dict(builtins.__dict__)  # a private snapshot: this module's and to_plain's builtins
globals()["__builtins__"] = _BUILTINS
_os_write = os.write
_os_read = os.read
_statvfs = os.statvfs
_unpack = struct.unpack
_os_close = os.close
_os_exit = os._exit
_getpid = os.getpid
_stat = os.stat
_b2a = binascii.b2a_base64
_json_str = json.encoder.encode_basestring_ascii  # C function
_pack = struct.pack
_int_repr = int.__repr__
_float_repr = float.__repr__
_isinstance = builtins.isinstance
_type = builtins.type
_len = builtins.len
_str = builtins.str
_setitimer = signal.setitimer
_monotonic = time.monotonic
_BaseException = BaseException
_enumerate = builtins.enumerate
_sorted = builtins.sorted
_max = builtins.max
_min = builtins.min
_getattr = builtins.getattr
_memoryview = builtins.memoryview

FRAME_MAX = 32 << 20  # the parent rejects bigger frames; never produce them

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 38, 1, 36
ENOSPC, EFBIG, EDQUOT = 28, 27, 122
SOURCE_MAX = 16 << 20  # the parent never sends a bigger cell
# the notebook's private writable mounts: a cell that leaves one (nearly) full is flagged
_DISKS = ("/tmp", "/work", "/dev/shm")
HINT_MAX = 600  # characters of a test's hint= text sent with its record
# "<cell that rebound it>:<locked cell that bound it>:<name>", worded by grader.execute
REBIND_FLAG = "rebound before a test cell: "

_MAGIC_OK = ("%matplotlib", "%load_ext autoreload", "%autoreload", "%config")


class _CellTimeout(BaseException):
    """Raised by the per-cell alarm; a BaseException so ``except Exception`` cannot swallow it."""


def _load_private_testing(path):
    spec = importlib.util.spec_from_file_location("_tconv_private_testing", path)
    mod = importlib.util.module_from_spec(spec)
    mod.__dict__["__builtins__"] = _BUILTINS  # patching builtins later does not reach it
    spec.loader.exec_module(mod)  # not in sys.modules: monkeypatching grader.testing misses it
    return mod


# ---- framing -------------------------------------------------------------------------------------
def _enc(v, out, depth=0):
    """A tiny JSON encoder built only from captured C-level pieces."""
    t = _type(v)
    if depth > 40:
        out.append('{"$":"unser","type":"too deep"}')
    elif v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif t is int:
        out.append(_int_repr(v) if -(10 ** 300) < v < 10 ** 300 else '{"$":"unser","type":"int"}')
    elif t is float:
        if v != v or v in (float("inf"), float("-inf")):
            out.append('{"$":"float","v":' + _json_str(_float_repr(v)) + "}")
        else:
            out.append(_float_repr(v))
    elif t is str:
        out.append(_json_str(v))
    elif t is list or t is tuple:
        out.append('{"$":"' + ("list" if t is list else "tuple") + '","v":[')
        for i, x in _enumerate(v):
            if i:
                out.append(",")
            _enc(x, out, depth + 1)
        out.append("]}")
    elif t is dict:
        out.append('{"$":"dict","v":{')
        for i, (k, x) in _enumerate(v.items()):
            if i:
                out.append(",")
            out.append(_json_str(_str(k)) + ":")
            _enc(x, out, depth + 1)
        out.append("}}")
    elif t is _H.ndarray:
        out.append('{"$":"nd","npy":"' + _npy_b64(v) + '"}')
    elif t is _H.Unserialisable:
        out.append('{"$":"unser","type":' + _json_str(_str(v.type_name)[:200]) + "}")
    else:
        out.append('{"$":"unser","type":' + _json_str(t.__name__[:200]) + "}")


def _npy_b64(a):
    kind = a.dtype.kind
    dt = {"b": "|b1", "i": "<i8", "u": "<i8", "f": "<f8"}[kind]
    if kind == "u" and a.dtype.itemsize == 8:
        dt = "<u8"  # as int64, a value past 2**63 - 1 would wrap to a negative one
    if kind == "f" and a.dtype.itemsize in (2, 4):
        dt = "<f2" if a.dtype.itemsize == 2 else "<f4"  # the answer's width: a rounding note
    shape = a.shape  # before ascontiguousarray, which makes a 0-d array 1-d (same bytes)
    a = _H.ascontiguousarray(a).astype(dt)
    if _len(shape) == 1:
        shape_s = "(" + _int_repr(shape[0]) + ",)"
    else:
        shape_s = "(" + ", ".join([_int_repr(n) for n in shape]) + ")"
    header = "{'descr': '" + dt + "', 'fortran_order': False, 'shape': " + shape_s + ", }"
    pad = 64 - (10 + _len(header) + 1) % 64
    header = (header + " " * pad + "\n").encode("latin1")
    raw = b"\x93NUMPY\x01\x00" + _pack("<H", _len(header)) + header + _H.tobytes(a)
    return _b2a(raw, newline=False).decode("ascii")


class _H:
    """Harness state (class attributes, set once in the zygote)."""

    fd = -1
    src_fd = -1
    pid = -1
    ndarray = None
    ascontiguousarray = None
    tobytes = None
    Unserialisable = None
    to_plain = None
    raised_as = None
    LockedNames = None
    stores = None
    current = None  # (cell index, grade_id) of the running test cell
    allowed = ()  # path prefixes a sandboxed notebook may open (others are flagged)
    flags = set()
    sent = set()  # flags already reported to the parent
    out = None


def _send_raw(text):
    if _getpid() != _H.pid:
        _os_exit(0)  # a process the notebook forked never speaks for it
    data = text.encode("utf-8", "surrogatepass")
    if _len(data) > FRAME_MAX:
        data = (b'{"t":"flag","msg":"record too large"}')
    buf = _pack("<I", _len(data)) + data
    view = _memoryview(buf)
    while view:
        n = _os_write(_H.fd, view)
        view = view[n:]


def _send(kind, **fields):
    out = ['{"t":', _json_str(kind)]
    for k, v in fields.items():
        out.append("," + _json_str(k) + ":")
        _enc(v, out)
    out.append("}")
    _send_raw("".join(out))


def _read_exact(n):
    parts, got = [], 0
    while got < n:
        chunk = _os_read(_H.src_fd, _min(n - got, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        got += _len(chunk)
    return b"".join(parts)


def _recv_source():
    """The source of the cell about to run, from the parent; None if the pipe is broken."""
    head = _read_exact(4)
    if head is None:
        return None
    n = _unpack("<I", head)[0]
    if n > SOURCE_MAX:
        return None
    body = _read_exact(n)
    return None if body is None else body.decode("utf-8", "surrogatepass")


def _new_flags():
    new = _sorted(f for f in _H.flags if f not in _H.sent)
    _H.sent.update(new)
    return new


def _disk_full():
    for d in _DISKS:
        try:
            st = _statvfs(d)
        except OSError:
            continue
        if st.f_blocks and st.f_bavail * st.f_frsize < (64 << 10):
            _H.flags.add("disk limit: " + d + " is full")


# ---- recorders -----------------------------------------------------------------------------------
def _make_recorders(index, grade_id):
    to_plain, raised_as = _H.to_plain, _H.raised_as

    def _record(name, value, hint):
        if _H.current != (index, grade_id):
            return  # a recorder smuggled out of its own test cell records nothing
        try:
            plain = to_plain(value)
        except _BaseException:  # noqa: BLE001 - odd objects are simply not plain data
            plain = _H.Unserialisable("error")
        # the hint as the test cell computed it (an f-string may name the case or the answer);
        # only an exact str is taken: no object's own __str__ runs here
        hint = hint[:HINT_MAX] if _type(hint) is _str else ""
        _send("record", cell=index, key=_str(grade_id) + "/" + _str(name), value=plain,
              hint=hint)

    def expect(name, got, expected=None, hint=""):
        _record(name, got, hint)

    def expect_raises(name, exc_type, fn, *args, hint="", **kwargs):
        _record(name, raised_as(exc_type, fn, *args, **kwargs), hint)

    return expect, expect_raises


# ---- output capture ------------------------------------------------------------------------------
class _CappedWriter:
    """sys.stdout/sys.stderr replacement keeping at most ``cap`` characters in total."""

    def __init__(self, cap):
        self.cap, self.used, self.parts, self.truncated = cap, 0, [], False

    def write(self, s):
        s = _str(s)
        room = self.cap - self.used
        if _len(s) > room:
            self.truncated = True
            s = s[: _max(room, 0)]
        if s:
            self.parts.append(s)
            self.used += _len(s)
        return _len(s)

    def flush(self):
        pass

    def isatty(self):
        return False

    def take(self):
        text = "".join(self.parts)
        self.parts = []
        return text

    encoding = "utf-8"
    errors = "replace"


def _strip_magics(src):
    """Drop harmless IPython magics; reject the rest (a cell error, like a syntax error)."""
    if src.lstrip().startswith("%%"):
        raise SyntaxError("cell magics (%%) are not supported by the autograder")
    lines = []
    for line in src.splitlines():
        s = line.strip()
        if s.startswith(("%", "!")):
            if s.startswith(_MAGIC_OK):
                lines.append("")
                continue
            raise SyntaxError(f"IPython magic or shell escape not supported: {s[:60]!r}")
        lines.append(line)
    return "\n".join(lines)


def _audit(event, args):
    """Flag (never block) what a sandboxed notebook has no business doing."""
    try:
        if event in ("socket.connect", "socket.sendto", "socket.bind"):
            _H.flags.add("network attempt")
        elif event == "open" and _H.allowed:
            p, mode = args[0], args[1]
            if _type(p) is bytes:
                p = p.decode("utf-8", "replace")
            if _type(p) is not str or p[:1] != "/" or _len(_H.flags) >= 20:
                return
            if not p.startswith(_H.allowed):
                _H.flags.add("file access outside the submission: " + p[:120])
            elif p.startswith(("/work/", "/tmp/")) and _type(mode) is str and not any(
                    c in mode for c in "wax+"):
                try:
                    _stat(p)
                except OSError:  # a read of a path that is not there: e.g. a host path guessed
                    _H.flags.add("file access outside the submission: " + p[:120])
    except _BaseException:  # noqa: BLE001 - an audit hook must never raise
        pass


# ---- one job -------------------------------------------------------------------------------------
def _run_cells(job):
    lim = job["limits"]
    cap = int(lim["max_output_bytes"])
    writer = _CappedWriter(cap)
    _H.out = writer
    sys.stdout = sys.stderr = writer
    main = types.ModuleType("__main__")
    ns = main.__dict__
    ns["__builtins__"] = builtins
    ns["display"] = lambda *a, **k: print(*a)
    sys.modules["__main__"] = main
    cell_timeout = float(lim["cell_timeout"])

    def _alarm(signum, frame):
        raise _CellTimeout()

    signal.signal(signal.SIGALRM, _alarm)
    watched = _watch()
    disks = job.get("watch_files")
    # names the locked cells bind, put back before each test cell (expect/expect_raises: ours)
    guard = _H.LockedNames(ns, ("expect", "expect_raises", "display"))
    for cell in job["cells"]:
        index, grade_id = cell["index"], cell.get("grade_id")
        locked = bool(cell.get("locked"))
        if cell.get("grade"):
            _tampered(watched)  # reported before this cell's source is handed over
        for f in _new_flags():
            _send("flag", msg=f)
        _send("cell_start", i=index)
        src = _recv_source()
        if src is None:
            _os_exit(121)  # the source pipe is gone (closed by the notebook?): nothing can run
        status, error = "ok", None
        code = None
        out_of_memory = False
        try:
            if cell.get("grade"):
                rebound = guard.restore()
                stores = _H.stores(src) if rebound else ()  # the test binds it: not reported
                for name, by, given in rebound:
                    if name not in stores and _len(_H.flags) < 40:
                        _H.flags.add(REBIND_FLAG + _int_repr(by) + ":" + _int_repr(given) + ":"
                                     + name)
                ns["expect"], ns["expect_raises"] = _make_recorders(index, grade_id)
                _H.current = (index, grade_id)
            else:
                _H.current = None
            guard.before(locked)
            code = compile(_strip_magics(src), f"<cell {index}>", "exec")
            src = None  # only the code object runs; the text is gone
            _setitimer(signal.ITIMER_REAL, cell_timeout)
            try:
                exec(code, ns)
            finally:
                _setitimer(signal.ITIMER_REAL, 0)
        except _CellTimeout:
            status, error = "timeout", f"cell exceeded {cell_timeout:g} s"
            _H.flags.add("timeout")
        except _BaseException as exc:  # noqa: BLE001 - a failing cell is data, not a crash
            status = "error"
            try:
                error = (_type(exc).__name__ + ": " + _str(exc))[:2000]
            except _BaseException:  # noqa: BLE001
                error = _type(exc).__name__
            if _isinstance(exc, MemoryError):
                _H.flags.add("memory limit")
                out_of_memory = True
            if _isinstance(exc, BlockingIOError) or (
                    _isinstance(exc, OSError) and _getattr(exc, "errno", None) == 11):
                _H.flags.add("process limit")
            if _isinstance(exc, OSError) and _getattr(exc, "errno", None) in (
                    ENOSPC, EFBIG, EDQUOT):
                _H.flags.add("disk limit")
        finally:
            code = src = None  # drop this cell's code (a hidden test's constants) before the next
        _H.current = None
        try:
            guard.after(index, locked)
        except _BaseException:  # noqa: BLE001 - a namespace made to break it: nothing kept
            pass
        sys.stdout = sys.stderr = writer
        if writer.truncated:
            _H.flags.add("output truncated")
        if disks:
            _disk_full()
        _send("cell_end", i=index, status=status, error=error, output=writer.take(),
              flags=_new_flags())
        if out_of_memory:
            # Stop here, as when the watcher kills an over-limit notebook: whether later cells
            # could still run would depend on what the allocator gave back, and the same
            # notebook must get the same grade on every run.
            break
    _send("done")


_WATCHED = ("builtins", "grader.testing", "numpy", "numpy.testing", "torch.testing", "json",
            "math")


def _watch():
    """Snapshot of the namespaces an attacker would monkeypatch (to flag, not to trust)."""
    snap = {}
    for name in _WATCHED:
        mod = sys.modules.get(name)
        if mod is not None:
            snap[name] = (mod, dict(mod.__dict__))
    return snap


def _tampered(snap):
    changed = []
    for name, (mod, before) in snap.items():
        now = mod.__dict__
        for k, v in before.items():
            if now.get(k, _tampered) is not v and not k.startswith("__"):
                changed.append(name + "." + k)
    if changed:
        _H.flags.add("monkeypatched before a test cell: " + ", ".join(_sorted(changed)[:6]))


def _isolate(job):
    """Child of the zygote, as root in the zygote's sandbox: namespaces, mounts, pid 1, uid drop.

    Returns only in the process that is to run the cells (pid 2 of a fresh pid namespace).
    """
    libc = ctypes.CDLL(None, use_errno=True)

    def check(r, what):
        if r != 0:
            raise OSError(ctypes.get_errno(), f"sandbox setup failed: {what}")

    check(libc.unshare(CLONE_NEWNS | CLONE_NEWPID), "unshare")
    check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    init = os.fork()
    if init:  # A: wait for the namespace's init, exit like it
        for fd in job["_fds"]:
            _os_close(fd)
        _, st = os.waitpid(init, 0)
        _os_exit(os.waitstatus_to_exitcode(st) % 256 if os.WIFEXITED(st)
                 else 128 + os.WTERMSIG(st))
    # B: pid 1 of the new pid namespace. Dies with A (pdeathsig), takes the namespace along.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    size = b"size=" + str(int(job["limits"]["tmp_bytes"])).encode()
    flags = MS_NOSUID | MS_NODEV
    check(libc.mount(b"proc", b"/proc", b"proc", flags, None), "mount /proc")
    check(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", flags, size + b",mode=1777"), "mount /tmp")
    if os.path.isdir("/dev/shm"):
        shm = b"size=" + str(int(job["limits"].get("shm_bytes", 16 << 20))).encode()
        check(libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", flags, shm + b",mode=1777"),
              "mount /dev/shm")
    # /work: a size-capped tmpfs holding a copy of this submission (writes never reach the host)
    uid = int(job["uid"])
    work = b"size=" + str(int(job["limits"]["work_bytes"])).encode() + b",mode=0755"
    check(libc.mount(b"tmpfs", b"/work", b"tmpfs", flags, work), "mount /work")
    import shutil

    shutil.copytree("/stage/" + job["stage"], "/work", symlinks=True, dirs_exist_ok=True)
    for root, dirs, files in os.walk("/work"):
        os.lchown(root, uid, uid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, uid)
    check(libc.mount(b"tmpfs", b"/stage", b"tmpfs", flags | MS_RDONLY, b"size=4k,mode=0"),
          "hide /stage")
    child = os.fork()
    if child:  # B: reap everything; leave when the harness leaves
        for fd in job["_fds"]:
            _os_close(fd)
        while True:
            try:
                pid, st = os.wait()
            except ChildProcessError:
                _os_exit(0)
            if pid == child:
                code = (min(os.WEXITSTATUS(st), 127) if os.WIFEXITED(st)
                        else 128 + os.WTERMSIG(st))
                _os_exit(code)
    # C: the process that runs the cells
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def _limit(job):
    import resource

    lim = job["limits"]
    base = 0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    base = int(line.split()[1]) * 1024
    except OSError:
        pass
    mem = base + int(lim["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    n = int(lim["max_processes"])
    resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    fs = int(lim["file_bytes"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (fs, fs))
    ctypes.CDLL(None).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def _child(job, data_fd, out_fd, src_fd, isolate):
    os.setsid()
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    _H.fd = data_fd
    _H.src_fd = src_fd
    _H.pid = _getpid()
    job["_fds"] = [data_fd, out_fd, src_fd]
    try:
        if isolate:
            _isolate(job)
        if job.get("copy_from"):  # per-run mode: the submission onto /work, a size-capped tmpfs
            import shutil

            shutil.copytree(job["copy_from"], job.get("cwd", "/work"), symlinks=True,
                            dirs_exist_ok=True)
        os.chdir(job.get("cwd", "/work"))
        _limit(job)
    except BaseException as exc:  # noqa: BLE001
        _H.pid = _getpid()
        try:
            _send("flag", msg=f"sandbox setup failed: {exc}")
        finally:
            _os_exit(120)
    _H.pid = _getpid()
    if job.get("watch_files"):
        _H.allowed = ("/work/", "/tmp/", "/opt/tconv/", "/usr/", "/proc/", "/dev/", "/etc/",
                      "/lib", "/bin/", "/sbin/", sys.base_prefix + "/", sys.prefix + "/",
                      "/work")
    sys.addaudithook(_audit)
    gc.collect()
    try:
        _run_cells(job)
    finally:
        _os_exit(0)


# ---- the zygote ----------------------------------------------------------------------------------
def _recv_msg(sock):
    head = b""
    while len(head) < 4:
        chunk, fds, _, _ = socket.recv_fds(sock, 4 - len(head), 4)
        if not chunk:
            return None, []
        head += chunk
        got = fds
    n = struct.unpack("<I", head)[0]
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            return None, []
        body += chunk
    return json.loads(body), got


def _send_ctl(sock, obj):
    data = json.dumps(obj).encode()
    sock.sendall(struct.pack("<I", len(data)) + data)


def zygote(ctl_fd, testing_path, preload, isolate):
    for name in preload:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a missing optional module is just not preloaded
            pass
    import numpy as np

    priv = _load_private_testing(testing_path)
    _H.ndarray = np.ndarray
    _H.ascontiguousarray = np.ascontiguousarray
    _H.tobytes = np.ndarray.tobytes
    _H.Unserialisable = priv.Unserialisable
    _H.to_plain = priv.to_plain
    _H.raised_as = priv.raised_as
    _H.LockedNames = priv.LockedNames
    _H.stores = priv.top_level_stores
    sock = socket.socket(fileno=ctl_fd)
    if not isolate:  # orphans of the notebook stay our descendants (counted, then killed)
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    gc.collect()
    gc.freeze()  # keep copy-on-write pages shared with the children
    _send_ctl(sock, {"t": "ready"})
    while True:
        job, fds = _recv_msg(sock)
        if job is None:
            return
        if job.get("t") != "job" or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            continue
        data_fd, out_fd, src_fd = fds
        pid = os.fork()
        if pid == 0:
            sock.close()
            _child(job, data_fd, out_fd, src_fd, isolate)
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        _send_ctl(sock, {"t": "started", "id": job["id"]})
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_READ, "ctl")
        sel.register(pidfd, selectors.EVENT_READ, "child")
        eof = False
        while True:
            events = sel.select()
            kinds = {key.data for key, _ in events}
            if "child" in kinds:
                break
            if "ctl" in kinds:
                msg, extra = _recv_msg(sock)
                for fd in extra:
                    os.close(fd)
                if msg is None or msg.get("t") == "kill":
                    _kill(pid, isolate)
                    if msg is None:
                        eof = True
        sel.close()
        _, st = os.waitpid(pid, 0)
        os.close(pidfd)
        if not isolate:
            _kill(pid, isolate)  # whatever it left behind in its process group
            _reap_orphans()      # and what escaped it (reparented to us: we are a subreaper)
        code = os.waitstatus_to_exitcode(st)
        if isolate and code >= 128:
            code = -(code - 128)  # A reports the harness's signal as 128 + N
        if eof:
            return
        _send_ctl(sock, {"t": "exit", "id": job["id"], "code": code})
        if job.get("last"):
            return


def _my_children():
    out = []
    try:
        for t in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{t}/children") as f:
                    out += [int(x) for x in f.read().split()]
            except (OSError, ValueError):
                pass
    except OSError:
        pass
    return out


def _reap_orphans():
    """Kill and reap what a notebook left running (without isolation; best effort)."""
    for _ in range(50):
        kids = _my_children()
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        while True:
            try:
                got, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if got == 0:
                break
        if not kids:
            return
        time.sleep(0.01)


def _kill(pid, isolate):
    try:
        if isolate:
            os.kill(pid, signal.SIGKILL)  # A; B follows by pdeathsig, the pid namespace with it
        else:
            os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":
    _args = json.loads(sys.argv[1])
    zygote(_args["ctl_fd"], _args["testing"], _args["preload"], _args["isolate"])
