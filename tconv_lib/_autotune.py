"""Pick the fastest of several equivalent routes, once per problem, as cuDNN's benchmark mode does.

With ``torch.backends.cudnn.benchmark = True`` cuDNN times its algorithms on the first call of
each input shape and remembers the winner. On a GPU, ``col2im`` has the same kind of choice
(:mod:`tconv_lib.methods.col2im_gpu`): which GEMM layout, ``fold`` or a permuted copy, a Triton
kernel or torch operations. Which wins depends on the shape and the GPU, so :func:`choose` does
what cuDNN does:

- the first call of a problem (its *key*: shapes, dtype, device, geometry, matmul precision)
  runs every route, checks that each agrees with the first (the default route, always
  correct), times the ones that agree and remembers the fastest;
- a route that raises or disagrees is dropped with a warning: a fast wrong answer never wins
  (a first call whose result is not finite chooses nothing, and the next call tries again);
- later calls of the same key go straight to the remembered route.

``TCONV_AUTOTUNE=0`` in the environment, or :func:`set_enabled` ``(False)``, turns it off: the
default route then always runs. :func:`measured` returns what was timed, which the benchmark
(:mod:`tconv_lib.bench`) records.
"""

from __future__ import annotations

import math
import os
import statistics
import warnings
from collections.abc import Callable, Hashable
from typing import Any

_enabled = os.environ.get("TCONV_AUTOTUNE", "1") != "0"
_chosen: dict[Hashable, str] = {}
_measured: dict[Hashable, dict[str, float]] = {}


def set_enabled(enabled: bool) -> None:
    """Turn autotuning on or off (and forget every choice made so far)."""
    global _enabled
    _enabled = bool(enabled)
    clear()


def enabled() -> bool:
    return _enabled


def clear() -> None:
    """Forget every choice: the next call of each problem times its routes again."""
    _chosen.clear()
    _measured.clear()


def known(key: Hashable) -> str | None:
    """The route already chosen for ``key``, or ``None``."""
    return _chosen.get(key)


def measured() -> dict[Hashable, dict[str, float]]:
    """``{key: {route: seconds per call}}`` for every problem timed so far."""
    return {k: dict(v) for k, v in _measured.items()}


def choose(key: Hashable, routes: dict[str, Callable[[], Any]],
           timer: Callable[[Callable[[], Any]], float],
           agrees: Callable[[Any, Any], bool]) -> str:
    """The name of the route to run for ``key``; the first route is the
    default.

    ``timer(fn)`` returns seconds per call of ``fn``;
    ``agrees(out, reference)`` says whether a route's output matches the
    default route's. Only the default route's errors propagate.
    """
    if not routes:
        raise ValueError("choose needs at least one route, got routes={}")
    default = next(iter(routes))
    if not _enabled:
        return default
    if key in _chosen:
        return _chosen[key]
    if len(routes) == 1:
        _chosen[key] = default
        return default
    reference = routes[default]()
    if not agrees(reference, reference):
        return default    # NaN or inf in the data: nothing to compare with
    times = {default: timer(routes[default])}
    for name, fn in list(routes.items())[1:]:
        try:
            out = fn()
        # an optional route that cannot run is skipped
        except Exception as err:  # noqa: BLE001
            warnings.warn(f"tconv_lib autotune: route {name!r} failed and "
                          f"is skipped: {type(err).__name__}: {err}",
                          RuntimeWarning, stacklevel=3)
            continue
        if not agrees(out, reference):
            warnings.warn(f"tconv_lib autotune: route {name!r} disagrees "
                          f"with {default!r} and is skipped",
                          RuntimeWarning, stacklevel=3)
            continue
        del out
        times[name] = timer(fn)
    _chosen[key] = min(times, key=times.__getitem__)
    _measured[key] = times
    return _chosen[key]


def per_call(run: Callable[[int], float], rounds: int = 3, round_s: float = 1e-3,
             slow_s: float = 0.05) -> float:
    """Seconds per call from ``run(calls)``, which times ``calls`` back-to-back calls and returns
    seconds per call: the median of ``rounds`` rounds of enough calls to last ``round_s``. A
    route slower than ``slow_s`` per call is measured once: it cannot win by a margin that a
    second look would reverse, and a large layer's first call should not pay for many."""
    first = run(1)
    if first > slow_s:
        return first
    calls = max(1, min(100, math.ceil(round_s / max(first, 1e-7))))
    return statistics.median(run(calls) for _ in range(rounds))


def cuda_timer(fn: Callable[[], Any]) -> float:
    """Seconds per call of ``fn`` on the current CUDA stream (:func:`per_call`), between two
    CUDA events, so launch and Python overhead count whenever they outlast the kernels."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def run(calls: int) -> float:
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / calls

    return per_call(run)


def close_enough(out: Any, reference: Any) -> bool:
    """Same shape and dtype, and within rounding: 1e-2 of the reference's largest magnitude
    (1e-9 in float64). Equivalent routes differ only in the order of their sums; a wrong
    route is off by whole terms."""
    import torch

    if out.shape != reference.shape or out.dtype != reference.dtype:
        return False
    if reference.numel() == 0:
        return True
    if not (bool(torch.isfinite(out).all()) and bool(torch.isfinite(reference).all())):
        return False
    tol = (1e-9 if reference.dtype == torch.float64 else 1e-2) * float(reference.abs().max())
    return float((out - reference).abs().max()) <= tol
