"""grader.execute.MemoryWatch: what counts as a notebook's memory.

The watch must count what the notebook allocates and nothing else. File-backed pages (libtorch,
numpy's .so files) are shared with every other process on the machine that maps them, so their
PSS share grows when those processes exit. Counting them once made the memory-bomb attack test
flaky: a torch process ending elsewhere added about 100 MiB to a notebook that allocated nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from grader.execute import MemoryWatch, _pss, _rss

MIB = 1 << 20

# A parent whose only child imports torch, reports, then allocates what stdin says (MiB).
HOLDER = r"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", '''
import sys, time, torch
print("ready", flush=True)
n = int(sys.stdin.readline() or 0)
block = bytearray(b"\\x01") * (n << 20)  # written, so resident
print("allocated", flush=True)
time.sleep(120)
'''], stdin=sys.stdin, stdout=sys.stdout)
child.wait()
"""

# An unrelated process mapping the same libraries.
NEIGHBOUR = "import time, torch; print('ready', flush=True); time.sleep(120)"


def _ready(p: subprocess.Popen, word: str) -> None:
    line = p.stdout.readline().strip()
    assert line == word, f"expected {word!r} from the helper process, got {line!r}"


def _used(w: MemoryWatch) -> int:
    return sum(_pss(p) for p in w._pids()) - w.pss_base


@pytest.fixture
def holder():
    p = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        _ready(p, "ready")
        yield p
    finally:
        p.kill()
        subprocess.run(["pkill", "-KILL", "-P", str(p.pid)], check=False)
        p.wait()


def test_counts_are_of_anonymous_memory_not_the_interpreter_image() -> None:
    """A process that imported torch holds ~hundreds of MiB of library pages; the watch's
    measures of it are a fraction of VmRSS."""
    p = subprocess.Popen([sys.executable, "-c", NEIGHBOUR], stdout=subprocess.PIPE, text=True)
    try:
        _ready(p, "ready")
        with open(f"/proc/{p.pid}/status") as f:
            vmrss = next(int(x.split()[1]) << 10 for x in f if x.startswith("VmRSS:"))
        rss, pss = _rss(p.pid), _pss(p.pid)
        assert 0 < pss <= rss < vmrss, (
            f"expected 0 < pss <= rss < VmRSS, got pss={pss / MIB:.0f} MiB, "
            f"rss={rss / MIB:.0f} MiB, VmRSS={vmrss / MIB:.0f} MiB; hint: _rss/_pss should "
            "leave out file-backed pages")
    finally:
        p.kill()
        p.wait()


def test_neighbours_exiting_do_not_move_the_measure(holder) -> None:
    """Start torch-importing neighbours, take the baseline, kill them: the notebook's measured
    use must not move (it rose by ~100 MiB with PSS of file-backed pages)."""
    neighbours = [subprocess.Popen([sys.executable, "-c", NEIGHBOUR], stdout=subprocess.PIPE,
                                   text=True) for _ in range(4)]
    try:
        for n in neighbours:
            _ready(n, "ready")
        w = MemoryWatch(holder.pid, 256 * MIB)
        w.start()
        assert w._pids(), "the watch should see the holder's torch child"
        before = _used(w)
    finally:
        for n in neighbours:
            n.kill()
            n.wait()
    time.sleep(0.2)
    after = _used(w)
    assert abs(after - before) < 16 * MIB, (
        f"expected the notebook's use to stay put when unrelated processes exit, it moved from "
        f"{before / MIB:.1f} MiB to {after / MIB:.1f} MiB; hint: count anonymous and shmem "
        "pages only")
    assert not w.over(), "nothing was allocated, yet the watch reports the limit exceeded"


def test_an_allocation_is_counted_and_trips_the_limit(holder) -> None:
    w = MemoryWatch(holder.pid, 64 * MIB)
    w.start()
    assert not w.over()
    holder.stdin.write("96\n")
    holder.stdin.flush()
    _ready(holder, "allocated")
    used = _used(w)
    assert 90 * MIB <= used <= 110 * MIB, (
        f"expected about 96 MiB counted after a 96 MiB bytearray, got {used / MIB:.1f} MiB")
    assert w.over(), f"96 MiB allocated against a 64 MiB limit, but over() is False ({w.peak})"
