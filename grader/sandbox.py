"""Bubblewrap command lines for the grading sandbox, and whether the sandbox can run here.

Two sandboxed modes, chosen automatically:

* ``"zygote"`` (running as root, the usual case in CI and on grading servers): one long-lived
  bubblewrap per grading worker holds a warm interpreter (numpy, torch, tconv_lib imported once).
  For each notebook it forks a child that enters a fresh mount and pid namespace, mounts a private
  ``/tmp``, ``/dev/shm`` and ``/proc``, puts a copy of that submission's scratch folder on a
  size-capped tmpfs at ``/work`` (hiding the staging area), then drops to an unprivileged uid of
  its own (so ``RLIMIT_NPROC`` really applies) with ``no_new_privs`` before any student code runs.
* ``"per-run"`` (not root): one bubblewrap per notebook in a user namespace as uid 65534, the
  same read-only mounts; the scratch copy is bound read-only at ``/stage`` and copied onto a
  size-capped tmpfs at ``/work``. Slower (no warm interpreter).

Both: no network (``--unshare-net``), new ipc/uts/pid namespaces, ``--die-with-parent``,
``--new-session``, and a read-only view of only what Python needs: ``/usr`` (and the merged
``/lib*``, ``/bin``), a few files of ``/etc``, the Python installation, the virtualenv's
site-packages and the ``grader`` and ``tconv_lib`` package directories. The repository root,
``solutions/``, the course directory (gradebook, ``autograded/``, ``.cache/expected/``) and other
students' folders are not mounted at all.

Guarantees (each has an attack test in ``tests/test_attacks.py``):

* **Isolation.** The root file system is read-only; the only writable places are the notebook's
  own ``/work`` (a copy: nothing it writes reaches the host), ``/tmp`` and ``/dev/shm``, all
  private tmpfs mounts with a size cap (``Limits.work_bytes``, ``tmp_bytes``, ``shm_bytes``;
  ``/dev`` itself is read-only). No network interface but loopback. The solution, the gradebook,
  cached expected values, other submissions and hidden test source are not in the sandbox's view.
* **Hidden tests.** A cell's source enters the sandboxed process only when that cell is about to
  run (the parent hands it over on a pipe, in notebook order) and is dropped once compiled; so
  while the student's cells before the first hidden-test cell run, no hidden test source exists in
  the process. From the first hidden-test cell on, student functions called by it can inspect
  their caller (as in nbgrader): the grader therefore never echoes student-controlled text (error
  messages, answers, record names, file paths) from a cell containing hidden tests, accepts only
  known flag texts from the sandbox (paths only before any hidden source was handed over), and
  scrubs any run of hidden-test source text from everything a student or a report sees
  (:func:`grader.autograde.scrub_hidden`). Residual risk: after a hidden-test cell has run, a
  student can still encode what it saw into the answers of later *visible* tests (echoed, 300
  characters each) or into pass/fail bits; verbatim text is scrubbed, an encoding is not.
* **Limits** (``grader.execute.Limits``): wall time per cell (a soft ``SIGALRM`` first, then a hard
  kill of the whole sandbox) and per notebook; memory per *notebook*: the trusted parent sums the
  proportional set size (PSS) of every process of the notebook every 0.1 s and kills them all when
  over ``memory_bytes`` (default 2 GiB, ``tconv-grader autograde --memory MIB``; ``RLIMIT_AS``
  per process stays as a first line), so forking does not multiply the limit. It counts anonymous
  and shared-memory pages, not file-backed ones (page cache, whose PSS share moves when other
  processes on the machine load or drop the same libraries); ``RLIMIT_NPROC``
  (processes), ``RLIMIT_FSIZE`` (largest file) and the tmpfs caps above (disk); captured output
  is truncated at ``max_output_bytes``. The worst case a notebook can hold is ``memory_bytes``
  plus its tmpfs caps. cgroups are not used (not reliably available to an unprivileged grader,
  nor in containers); the watcher needs only ``/proc``.
* **Trust.** Nothing is compared inside the sandbox: records leave as JSON (arrays as ``.npy``
  bytes, never pickle) and are judged against the solution's by the parent. Anything odd (a
  malformed frame, a forged flag, a dead process) is flagged, never trusted.
* **Refusal.** ``tconv-grader autograde``/``validate`` refuse to run where :func:`available` is
  false unless ``--unsafe-no-sandbox`` is given, and refuse that flag in CI (:func:`in_ci`).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

SRC_IN = "/opt/tconv/src"
SITE_IN = "/opt/tconv/site-packages"
PLAT_IN = "/opt/tconv/platlib"
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf",
             "passwd", "group", "hosts", "alternatives", "fonts", "ssl/certs", "mime.types")


def in_ci() -> bool:
    """True on a CI runner ($CI set to 1/true/yes, any case): the sandbox must work there."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def is_root() -> bool:
    return os.geteuid() == 0


def mode() -> str:
    """"zygote" as root, else "per-run"; $TCONV_SANDBOX_MODE=per-run forces the latter (tests)."""
    if os.environ.get("TCONV_SANDBOX_MODE") == "per-run":
        return "per-run"
    return "zygote" if is_root() else "per-run"


def package_dirs() -> dict[str, Path]:
    """The two package directories the sandbox sees (grader, tconv_lib)."""
    import importlib.util

    here = Path(__file__).resolve().parent
    dirs = {"grader": here}
    spec = importlib.util.find_spec("tconv_lib")
    if spec is not None and spec.origin:
        dirs["tconv_lib"] = Path(spec.origin).resolve().parent
    return dirs


def python_in_sandbox() -> str:
    return os.path.realpath(sys.executable)


def site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    out = [os.path.realpath(paths["purelib"])]
    plat = os.path.realpath(paths["platlib"])
    if plat not in out:
        out.append(plat)
    return out


def sandbox_pythonpath() -> str:
    parts = [SRC_IN, SITE_IN]
    if len(site_dirs()) > 1:
        parts.append(PLAT_IN)
    return ":".join(parts)


def base_mounts() -> list[str]:
    """Read-only mounts shared by both modes (no writable path among them)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / top
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{top}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{top}"]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    py = Path(python_in_sandbox())
    prefixes = {os.path.realpath(sys.base_prefix), str(py.parent.parent)}
    made: set[str] = set()
    for prefix in sorted(prefixes):
        if not prefix.startswith("/usr/") and prefix != "/usr":
            # traversable parents (the host's may be 0700, e.g. /root; the sandbox's uid is not
            # their owner)
            for parent in reversed(Path(prefix).parents):
                p = str(parent)
                if p != "/" and p not in made and not any(
                        p == t or p.startswith(t + "/") for t in ("/usr", "/tmp", "/etc")):
                    made.add(p)
                    args += ["--perms", "0755", "--dir", p]
            args += ["--ro-bind", prefix, prefix]
    for d in ("/opt", "/opt/tconv", SRC_IN):  # traversable by the sandbox's unprivileged uid
        args += ["--perms", "0755", "--dir", d]
    sites = site_dirs()
    args += ["--ro-bind", sites[0], SITE_IN]
    if len(sites) > 1:
        args += ["--ro-bind", sites[1], PLAT_IN]
    for name, d in package_dirs().items():
        args += ["--ro-bind", str(d), f"{SRC_IN}/{name}"]
    return args


def namespace_args(tmp_bytes: int = 64 << 20, shm_bytes: int = 16 << 20) -> list[str]:
    """Namespaces and the private, size-capped tmpfs mounts (``/tmp``, ``/dev/shm``; ``/dev``
    read-only). In zygote mode each notebook's child mounts its own ``/tmp`` and ``/dev/shm``
    over these."""
    common = ["--unshare-ipc", "--unshare-net", "--unshare-uts", "--unshare-pid",
              "--unshare-cgroup-try", "--die-with-parent", "--new-session",
              "--dev", "/dev", "--perms", "1777", "--size", str(int(shm_bytes)),
              "--tmpfs", "/dev/shm", "--remount-ro", "/dev", "--proc", "/proc",
              "--perms", "1777", "--size", str(int(tmp_bytes)), "--tmpfs", "/tmp"]
    if mode() == "zygote":
        # No user namespace: the child drops to a real unprivileged uid itself (so that
        # RLIMIT_NPROC applies); the zygote keeps the capabilities it needs to build each
        # child's namespaces. Student code never runs with any of them.
        return common + ["--cap-add", "ALL"]
    return common + ["--unshare-user", "--uid", "65534", "--gid", "65534"]


def zygote_command(stage: str, argv: list[str]) -> list[str]:
    """bwrap command for a warm worker (root): staging area at /stage, /work an empty mountpoint."""
    return ([bwrap_path() or "bwrap"] + namespace_args() + base_mounts()
            + ["--bind", stage, "/stage", "--dir", "/work", "--remount-ro", "/", "--chdir", "/",
               "--"] + argv)


def per_run_command(scratch: str, argv: list[str], *, tmp_bytes: int = 64 << 20,
                    shm_bytes: int = 16 << 20, work_bytes: int = 256 << 20) -> list[str]:
    """bwrap command for one notebook (not root): the scratch copy is read-only at /stage; the
    harness copies it onto /work, a tmpfs of ``work_bytes`` (writes never reach the host disk)."""
    return ([bwrap_path() or "bwrap"] + namespace_args(tmp_bytes, shm_bytes) + base_mounts()
            + ["--ro-bind", scratch, "/stage", "--perms", "0755", "--size", str(int(work_bytes)),
               "--tmpfs", "/work", "--remount-ro", "/", "--chdir", "/work", "--"] + argv)


@functools.lru_cache(maxsize=1)
def available() -> tuple[bool, str]:
    """Whether the sandbox works here, and why not if it does not."""
    if not sys.platform.startswith("linux"):
        return False, f"the grading sandbox needs Linux (bubblewrap); this is {sys.platform}"
    exe = bwrap_path()
    if exe is None:
        return False, ("bubblewrap (bwrap) is not installed: apt-get install bubblewrap "
                       "(scripts/sysdeps.sh does this)")
    probe = [python_in_sandbox(), "-c", "import numpy, grader.testing"]
    cmd = ([exe] + namespace_args() + base_mounts() + ["--dir", "/work", "--chdir", "/", "--"]
           + probe)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": sandbox_pythonpath(), "PYTHONNOUSERSITE": "1"}
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bubblewrap could not start: {exc}"
    if r.returncode != 0:
        why = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        hint = ""
        if "namespace" in why[0].lower() or "permission" in why[0].lower():
            hint = (" (user or mount namespaces are not permitted here; in Docker run with "
                    "--security-opt seccomp=unconfined or --privileged, or grade with "
                    "--unsafe-no-sandbox on a trusted machine)")
        return False, f"bubblewrap cannot run here: {why[0]}{hint}"
    return True, f"bubblewrap {exe} works ({mode()} mode)"
