"""Benchmark tconv_lib's transposed-convolution methods against PyTorch.

Run ``python -m tconv_lib.bench`` (or ``make bench``). For every shape of a fixed, named suite
(float32, PyTorch argument order) and every method it measures, in one run and with the same
thread count for everybody:

- the median wall time of a call after warm-up, timed **interleaved** with the reference
  ``torch.nn.functional.conv_transpose{1,2,3}d`` and the GEMM bound (one call of each per round,
  in an order that changes every round), so slow phases of a shared machine hit all candidates
  alike. Each method is timed in its own group with the reference and the GEMM, and its ratios
  use that group's times: a method that churns gigabytes (``matrix``) slowed the reference
  calls after it by up to 2x, which flattered every other method's ratio. With
  ``--backend numpy`` each call follows a short busy-wait (``--settle``), so OpenBLAS threads
  still spinning after a NumPy product do not slow the torch call after them. On the CPU the
  run starts by putting glibc's malloc in a long-running process's state
  (:func:`warm_allocator`), so that what ran before a call does not decide whether its
  temporaries are faulted in afresh;
- useful GFLOP/s = 2 N C_in (C_out/groups) prod(k) prod(input spatial) / time;
- the speed-up over PyTorch (reference time / method time; > 1 is faster);
- the fraction of the GEMM bound: the time of a plain matmul
  ``[C_out/g * prod(k) x C_in/g] @ [C_in/g x N prod(spatial)]``, batched over groups, into an
  output it reuses (:func:`call_gemm`), on the same backend in the same run, divided by the
  method's time. For the depthwise shape, where that GEMM is meaningless, it reports GB/s
  moved (input + weight + output, once) as a fraction of the machine's copy bandwidth (a large
  array copy, bytes read + written);
- the peak extra memory of one call (output included): ``tracemalloc`` on NumPy arrays,
  ``torch.cuda.max_memory_allocated`` on CUDA. PyTorch's CPU allocator cannot be traced, so for
  the torch CPU backend the figure is tracemalloc of the *same code* run on NumPy arrays (marked
  ``"memory_source"`` in the JSON); the reference has none on CPU.

Methods (never ``auto``) whose estimated work or memory is far beyond the others (e.g. the
sparse ``matrix`` or ``zero_insert`` on the 64x64 FCN kernel) are skipped with the reason
recorded; ``--no-skip`` runs them anyway. Results go to a JSON file (all figures plus machine
information) and a PNG plot next to it.

Examples::

    python -m tconv_lib.bench                        # full suite, torch CPU tensors
    python -m tconv_lib.bench --backend numpy        # NumPy arrays vs the same torch reference
    python -m tconv_lib.bench --device cuda          # torch CUDA tensors vs cuDNN
    python -m tconv_lib.bench --quick --out /tmp/q.json
    python -m tconv_lib.bench --shapes dcgan-4to8 fcn32s --methods auto col2im --threads 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import _autotune, conv_transpose
from .methods import IMPLEMENTATIONS

ALL_METHODS: tuple[str, ...] = ("auto",) + tuple(IMPLEMENTATIONS)


@dataclass(frozen=True)
class Shape:
    """One transposed convolution of the suite, in PyTorch's argument order."""

    name: str
    n: int
    c_in: int
    c_out: int
    spatial: tuple[int, ...]
    kernel: int
    stride: int
    padding: int
    output_padding: int = 0
    groups: int = 1
    dilation: int = 1
    bound: str = "gemm"          # "gemm" or "bandwidth": which bound the fraction refers to

    @property
    def ndim(self) -> int:
        return len(self.spatial)

    @property
    def useful_flops(self) -> int:
        return (2 * self.n * self.c_in * (self.c_out // self.groups) * self.kernel ** self.ndim
                * math.prod(self.spatial))

    @property
    def out_spatial(self) -> tuple[int, ...]:
        return tuple((i - 1) * self.stride - 2 * self.padding + self.dilation * (self.kernel - 1)
                     + self.output_padding + 1 for i in self.spatial)

    def sizes(self) -> dict[str, int]:
        """Element counts of input, weight and output."""
        return {"input": self.n * self.c_in * math.prod(self.spatial),
                "weight": self.c_in * (self.c_out // self.groups) * self.kernel ** self.ndim,
                "output": self.n * self.c_out * math.prod(self.out_spatial)}


SUITE: tuple[Shape, ...] = (
    Shape("dcgan-4to8", 64, 512, 256, (4, 4), 4, 2, 1),
    Shape("dcgan-16to32", 64, 128, 64, (16, 16), 4, 2, 1),
    Shape("dcgan-32to64", 64, 64, 3, (32, 32), 4, 2, 1),
    Shape("unet-up1024", 1, 1024, 512, (32, 32), 2, 2, 0),
    Shape("unet-up128", 1, 128, 64, (256, 256), 2, 2, 0),
    Shape("vae-k3s2", 1, 512, 256, (64, 64), 3, 2, 1, 1),
    Shape("fcn32s", 1, 21, 21, (16, 16), 64, 32, 16),
    Shape("conv1d-k16s8", 16, 256, 128, (512,), 16, 8, 4),
    Shape("unet3d-k2s2", 1, 64, 32, (32, 32, 32), 2, 2, 0),
    Shape("depthwise-k4s2", 8, 256, 256, (64, 64), 4, 2, 1, groups=256, bound="bandwidth"),
    Shape("dilated-k3s2d2", 8, 128, 64, (32, 32), 3, 2, 2, 1, dilation=2),
)
SHAPE_NAMES = tuple(s.name for s in SUITE)


def quick_version(shape: Shape) -> Shape:
    """A CI-sized version of ``shape``: same geometry class, a few thousand multiplies."""
    g = min(shape.groups, 4)
    c_in = max(g, min(shape.c_in, 8) // g * g)
    c_out = max(g, min(shape.c_out, 8) // g * g)
    kernel = min(shape.kernel, 2 * shape.stride, 4) if shape.kernel > 4 else shape.kernel
    stride = min(shape.stride, kernel) if shape.kernel > 4 else shape.stride
    padding = min(shape.padding, (kernel - 1) * shape.dilation // 2 + 1)
    spatial = tuple(min(i, 6) for i in shape.spatial)
    q = replace(shape, n=min(shape.n, 2), c_in=c_in, c_out=c_out, spatial=spatial,
                kernel=kernel, stride=stride, padding=padding, groups=g)
    if min(q.out_spatial) < 1:
        q = replace(q, padding=0)
    return q


# ----------------------------------------------------------------------------- cost model

def method_cost(method: str, shape: Shape) -> tuple[float, float]:
    """Rough (multiply-adds, bytes of temporaries) of one call, used only to skip hopeless runs."""
    s = shape.sizes()
    useful = shape.useful_flops / 2
    k_total = shape.kernel ** shape.ndim
    if method == "zero_insert":
        up = [(i - 1) * shape.stride + 1 + 2 * max(shape.dilation * (shape.kernel - 1)
                                                  - shape.padding, 0) for i in shape.spatial]
        macs = (shape.n * shape.c_out * (shape.c_in // shape.groups) * k_total
                * math.prod(shape.out_spatial))
        return macs, 4.0 * (shape.n * shape.c_in * math.prod(up) + 2 * s["output"])
    if method == "matrix":
        nnz = (shape.c_out * (shape.c_in // shape.groups)
               * math.prod(shape.spatial) * k_total)
        return useful, 4.0 * nnz * 7 + 8 * s["output"]     # int64 row/col/index + value, COO
    if method == "col2im":
        block = (s["input"] if shape.c_in == shape.groups else s["input"] / shape.c_in
                 * shape.c_out * k_total)           # depthwise paints block by block
        return useful, 4.0 * (block + 2 * s["output"])
    return useful, 4.0 * 3 * s["output"]                    # scatter, phase: canvas + terms


# ----------------------------------------------------------------------------- arrays & calls

@dataclass
class Problem:
    shape: Shape
    x: Any                      # the backend's input
    w: Any
    x_ref: Any                  # torch tensors for the reference
    w_ref: Any
    backend: str
    device: str


def make_problem(shape: Shape, backend: str, device: str, seed: int = 0) -> Problem:
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((shape.n, shape.c_in) + shape.spatial, generator=gen)
    w = torch.randn((shape.c_in, shape.c_out // shape.groups) + (shape.kernel,) * shape.ndim,
                    generator=gen) / math.sqrt(shape.c_in // shape.groups * shape.kernel)
    x, w = x.to(device), w.to(device)
    if backend == "numpy":
        return Problem(shape, x.numpy(), w.numpy(), x, w, backend, device)
    return Problem(shape, x, w, x, w, backend, device)


def call_method(problem: Problem, method: str, numpy_twin: bool = False) -> Callable[[], Any]:
    s = problem.shape
    x, w = problem.x, problem.w
    if numpy_twin:
        x, w = np.asarray(problem.x_ref.cpu()), np.asarray(problem.w_ref.cpu())

    def run() -> Any:
        return conv_transpose(x, w, None, s.stride, s.padding, s.output_padding, s.groups,
                              s.dilation, method=method)
    return run


def call_reference(problem: Problem) -> Callable[[], Any]:
    import torch.nn.functional as F

    s = problem.shape
    fn = getattr(F, f"conv_transpose{s.ndim}d")
    x, w = problem.x_ref, problem.w_ref

    def run() -> Any:
        return fn(x, w, None, s.stride, s.padding, s.output_padding, s.groups, s.dilation)
    return run


# What the GEMM bound writes into, recorded in the JSON's config (older files: a fresh output).
GEMM_OUTPUT = "reused"


def call_gemm(problem: Problem) -> Callable[[], Any]:
    """``[C_out/g * K x C_in/g] @ [C_in/g x N*P]`` per group, contiguous operands, written into
    one output allocated here and reused by every call (``out=``).

    The bound is the multiply itself. A fresh output of 32 MiB or more is mapped anew by glibc on
    every call and faulted in on first write, which made the "bound" 1.7-3.4x slower than the
    GEMM on the suite's large shapes (2 cores), and its time depended on the allocator's state.
    """
    s = problem.shape
    g, k_total = s.groups, s.kernel ** s.ndim
    m, kk, cols = s.c_out // g * k_total, s.c_in // g, s.n * math.prod(s.spatial)
    if problem.backend == "numpy":
        rng = np.random.default_rng(0)
        a = rng.standard_normal((g, m, kk), dtype=np.float32)
        b = rng.standard_normal((g, kk, cols), dtype=np.float32)
        out = np.empty((g, m, cols), dtype=np.float32)
        return lambda: np.matmul(a, b, out=out)
    import torch

    a = torch.randn(g, m, kk, device=problem.device)
    b = torch.randn(g, kk, cols, device=problem.device)
    out_t = torch.empty(g, m, cols, device=problem.device)
    if g == 1:               # a plain 2-D product (torch's batched path adds nothing here)
        a2, b2, o2 = a[0], b[0], out_t[0]
        return lambda: torch.matmul(a2, b2, out=o2)
    return lambda: torch.matmul(a, b, out=out_t)


def copy_bandwidth(backend: str, device: str, mbytes: int = 256, reps: int = 5) -> float:
    """GB/s of a large array copy, counting bytes read and written."""
    n = mbytes * 2 ** 20 // 4
    if backend == "numpy":
        a = np.ones(n, np.float32)
        b = np.empty_like(a)
        fn: Callable[[], Any] = lambda: np.copyto(b, a)          # noqa: E731
        sync = _no_sync
    else:
        import torch

        a = torch.ones(n, device=device)
        b = torch.empty_like(a)
        fn = lambda: b.copy_(a)                                   # noqa: E731
        sync = _sync_for(device)
    times = []
    for _ in range(reps + 1):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return 2 * 4 * n / statistics.median(times[1:]) / 1e9


def _no_sync() -> None:
    pass


def _sync_for(device: str) -> Callable[[], None]:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return _no_sync


# ----------------------------------------------------------------------------- measuring

def time_interleaved(fns: dict[str, Callable[[], Any]], reps: int, warmup: int,
                     sync: Callable[[], None], progress: Any = None,
                     settle: float = 0.0,
                     calls: dict[str, int] | None = None) -> dict[str, list[float]]:
    """Run every candidate once per round, ``warmup`` untimed rounds then ``reps`` timed.

    The order changes from round to round (:func:`round_order`), so no candidate always runs
    right after the same one (whose caches, threads and allocator state it would inherit).

    ``settle`` seconds (untimed, see :func:`settle_for`) go before each call: OpenBLAS's
    worker threads spin for about 0.1 s after a NumPy product, and the next torch call shares
    the cores with them (a DCGAN layer measured 2.5x slower right after a NumPy matmul).

    ``calls[name]`` back-to-back calls make one timed sample, divided by their number (on a
    GPU, see :func:`calls_per_sample`: one synchronised call would time the launch and the
    synchronisation as much as the kernels).
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    for rnd in range(warmup + reps):
        for name, fn in round_order(list(fns.items()), rnd):
            k = calls.get(name, 1) if calls else 1
            if settle:
                settle_for(settle)
            sync()
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            sync()
            if rnd >= warmup:
                times[name].append((time.perf_counter() - t0) / k)
        if progress is not None:
            progress.update(1)
    return times


def round_order(items: list[Any], rnd: int) -> list[Any]:
    """The order of round ``rnd``: rotated by ``rnd // 2``, reversed on odd rounds.

    A plain rotation keeps every candidate's predecessor (the reference always ran right after
    the same method); rotating and reversing puts each candidate after both its neighbours, and
    for three candidates runs all six orders in six rounds."""
    shift = (rnd // 2) % len(items)
    order = items[shift:] + items[:shift]
    return order[::-1] if rnd % 2 else order


# One timed sample on a GPU lasts at least this long (see calls_per_sample).
GPU_SAMPLE_S = 5e-3


def calls_per_sample(fn: Callable[[], Any], sync: Callable[[], None],
                     target: float = GPU_SAMPLE_S, most: int = 1000) -> int:
    """How many back-to-back calls of ``fn`` fill ``target`` seconds (at least one).

    GPU kernels run asynchronously: timing single calls between synchronisations adds the
    launch and synchronisation latency (tens of microseconds) to kernels that take about as
    long. Back-to-back calls measure what a network's layers see, the throughput, with the
    Python overhead of each call included whenever it outlasts the kernels.
    """
    fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    one = max(time.perf_counter() - t0, 1e-7)
    return max(1, min(most, math.ceil(target / one)))


def settle_for(seconds: float) -> None:
    """Busy-wait ``seconds`` while other threads' spinning runs out.

    Not ``time.sleep``: an idle virtual CPU gives its core (and caches) away, and the next call
    then ran up to 2.5x slower than in a busy loop (the same DCGAN layer, torch reference
    12.6 ms after a 0.15 s busy wait, 20 ms after a 0.25 s sleep).
    """
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def host_time(fn: Callable[[], Any], sync: Callable[[], None], reps: int = 21) -> float:
    """Median seconds the CPU spends issuing one call onto an idle GPU (``fn`` returns once its
    kernels are queued): the Python, argument checks and launches, not the kernels. A call
    is host-bound, and back-to-back calls run at this pace, when it exceeds the kernel time."""
    times = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    sync()
    return statistics.median(times)


def kernel_time(fn: Callable[[], Any], calls: int = 10) -> float | None:
    """Seconds per call that the GPU spends in kernels (and copies), from the PyTorch profiler;
    ``None`` where the profiler records nothing. With :func:`host_time` it says which side
    bounds a call."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    total_us = sum(getattr(e, "self_device_time_total", None)
                   or getattr(e, "self_cuda_time_total", 0) for e in prof.key_averages())
    return total_us / calls / 1e6 if total_us else None


def peak_memory(fn: Callable[[], Any], device: str) -> int:
    """Peak bytes allocated during one call above what was allocated before (output included)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out = fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
        del out
        return int(peak)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        out = fn()
        peak = tracemalloc.get_traced_memory()[1] - before
        del out
    finally:
        tracemalloc.stop()
    return int(peak)


def check_close(got: Any, ref: Any) -> float:
    """Max abs difference relative to the reference's max magnitude (float32 sanity check)."""
    got = np.asarray(got.cpu() if hasattr(got, "cpu") else got, dtype=np.float64)
    ref = np.asarray(ref.cpu(), dtype=np.float64)
    if got.shape != ref.shape:
        return float("inf")
    return float(np.max(np.abs(got - ref)) / max(float(np.max(np.abs(ref))), 1e-30))


# ----------------------------------------------------------------------------- machine

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def vector_isa() -> str | None:
    """The widest matrix/vector extension the CPU reports (``amx``, ``avx512``, ``avx2``), or
    ``None``: it tells apart virtual CPUs whose model name is only ``Intel Xeon Processor``."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = next((set(line.split(":", 1)[1].split()) for line in text.splitlines()
                  if line.startswith("flags")), set())
    return next((name for flag, name in (("amx_tile", "amx"), ("avx512f", "avx512"),
                                         ("avx2", "avx2")) if flag in flags), None)


def machine_info(device: str, threads: int) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "device": device,
        "device_name": cpu_model(),
        "blas_env": {k: v for k, v in os.environ.items()
                     if k.startswith(("OPENBLAS", "OMP_", "MKL_"))},
        "malloc_env": {k: v for k, v in os.environ.items()
                       if k.startswith("MALLOC_") or k == "GLIBC_TUNABLES"},
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        import threadpoolctl

        info["numpy_blas"] = [{k: p.get(k) for k in ("internal_api", "version",
                                                     "num_threads", "architecture")}
                              for p in threadpoolctl.threadpool_info()]
    except ImportError:
        info["numpy_blas"] = None
    if device.startswith("cuda"):
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["cudnn_benchmark"] = torch.backends.cudnn.benchmark
        info["tf32"] = torch.backends.cuda.matmul.allow_tf32
    return info


def device_label(device: str, backend: str, threads: int, quick: bool) -> str:
    if device.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name(device)
    else:
        model = cpu_model()
        isa = None if re.search(r"\d", model) else vector_isa()   # a generic model name
        name = f"{model}-{isa + '-' if isa else ''}{threads}t"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    slug = re.sub(r"-(r|tm|processor|cpu)(?=-|$)", "", slug)
    return f"{'cuda' if device.startswith('cuda') else 'cpu'}-{backend}-{slug}" + (
        "-quick" if quick else "")


# glibc's malloc gives a block above its mmap threshold fresh pages, faulted in on first write,
# and raises that threshold (up to 32 MiB on 64-bit systems) each time such a block is freed.
WARM_MALLOC_BYTES = 31 << 20


def warm_allocator() -> int:
    """Put glibc's malloc where a long-running process has it: one freed 31 MiB block lifts
    the mmap threshold to its maximum, so blocks up to that size are reused from the heap
    instead of being mapped, and faulted in, afresh on every call.

    A training loop reaches that state within its first steps. A fresh benchmark process does
    not, and without this the reference's temporaries were re-faulted, or not, depending on
    which methods had run before it: PyTorch's DCGAN 128->64 layer took 30 ms in a run of
    ``auto`` alone and 19-22 ms among all methods. Blocks above 32 MiB are mapped afresh
    whatever happened before; that cost is real for every caller. Any ``MALLOC_*`` variable
    (dask sets ``MALLOC_TRIM_THRESHOLD_``) or ``GLIBC_TUNABLES`` malloc setting pins the
    threshold instead, and this changes nothing; the JSON records them. Returns the bytes used.
    """
    import torch

    block = torch.empty(WARM_MALLOC_BYTES // 4)
    block.fill_(0)
    del block
    return WARM_MALLOC_BYTES


def set_threads(threads: int) -> Any:
    """Same thread count for torch (intra-op), NumPy's BLAS and tconv_lib's NumPy passes;
    returns the BLAS limiter to keep."""
    import torch

    from . import _threads

    torch.set_num_threads(threads)
    _threads.set_num_threads(threads)
    try:
        import threadpoolctl

        return threadpoolctl.threadpool_limits(threads)
    except ImportError:
        return None


# ----------------------------------------------------------------------------- the run

def skip_reason(method: str, shape: Shape, args: argparse.Namespace) -> str | None:
    """Why ``method`` is not timed on ``shape`` (``None``: it is): its estimated multiply-adds
    or temporaries exceed ``--max-work-ratio`` / ``--max-mem-gb``. Never ``auto``."""
    if args.no_skip or method == "auto":
        return None
    macs, mem = method_cost(method, shape)
    useful = shape.useful_flops / 2
    if macs <= args.max_work_ratio * useful and mem <= args.max_mem_gb * 1e9:
        return None
    return (f"estimated {macs / 1e9:.1f} G multiply-adds ({macs / useful:.0f}x useful) and "
            f"{mem / 1e9:.2f} GB of temporaries exceed the limits (--max-work-ratio "
            f"{args.max_work_ratio}, --max-mem-gb {args.max_mem_gb}); --no-skip runs it")


def bench_shape(shape: Shape, methods: Sequence[str], args: argparse.Namespace,
                copy_gbs: float, progress: Any,
                after: list[Callable[[], None]] | None = None) -> dict[str, Any]:
    """Time one shape. On CUDA, the profiled kernel times are appended to ``after`` as work
    for the end of the run: once the profiler has run, CUPTI stays loaded and makes every later
    launch slower (an H200 run measured small layers up to 1.8x slower after it)."""
    problem = make_problem(shape, args.backend, args.device)
    sync = _sync_for(args.device)
    reference = call_reference(problem)
    ref_out = reference()
    entry: dict[str, Any] = {"shape": asdict(shape), "useful_gflop": shape.useful_flops / 1e9,
                             "bytes_min": 4 * sum(shape.sizes().values()),
                             "bound": shape.bound, "methods": {}, "skipped": {}}
    peers: dict[str, Callable[[], Any]] = {"torch": reference, "gemm": call_gemm(problem)}
    fns: dict[str, Callable[[], Any]] = {}
    for m in methods:
        reason = skip_reason(m, shape, args)
        if reason:
            entry["skipped"][m] = reason
            continue
        fns[m] = call_method(problem, m)
    tuned = set(_autotune.measured())
    for m in fns:
        out = fns[m]()          # on a GPU, the first call of auto / col2im times its routes
        entry["methods"][m] = {"max_rel_error": check_close(out, ref_out)}
        del out
    if args.device.startswith("cuda"):
        # seconds per call of each col2im GPU route, timed by auto's first call
        new = [v for k, v in _autotune.measured().items() if k not in tuned]
        entry["autotune_routes_s"] = new[0] if new else {}
        calls = {k: calls_per_sample(fn, sync) for k, fn in (peers | fns).items()}
        entry["calls_per_sample"] = calls
    else:
        calls = None

    def group(extra: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
        return time_interleaved(peers | extra, args.reps, args.warmup, sync, progress,
                                args.settle, calls)

    # one group per method: the method, the reference and the GEMM, interleaved (every method
    # skipped: the reference and the GEMM alone, keyed None)
    groups: dict[str | None, dict[str, list[float]]] = (
        {m: group({m: fn}) for m, fn in fns.items()} or {None: group({})})
    medians = {m: {k: statistics.median(v) for k, v in g.items()} for m, g in groups.items()}
    first = next(iter(groups))           # the reference's own figures: from the first group
    times, med = groups[first], medians[first]
    entry["torch"] = {"median_s": med["torch"], "times_s": times["torch"],
                      "gflops": shape.useful_flops / med["torch"] / 1e9,
                      "timed_with": first}
    entry["gemm"] = {"median_s": med["gemm"], "times_s": times["gemm"],
                     "gflops": shape.useful_flops / med["gemm"] / 1e9}
    gb = entry["bytes_min"] / 1e9
    entry["torch"]["gbs"] = gb / med["torch"]
    entry["torch"]["fraction_of_gemm_bound"] = med["gemm"] / med["torch"]
    entry["torch"]["fraction_of_copy_bandwidth"] = gb / med["torch"] / copy_gbs
    if args.device.startswith("cuda"):
        entry["torch"]["peak_extra_bytes"] = peak_memory(reference, args.device)
        entry["torch"]["memory_source"] = "torch.cuda.max_memory_allocated"
        entry["torch"]["host_s"] = host_time(reference, sync)
        if after is not None:
            after.append(lambda: entry["torch"].update(kernel_s=kernel_time(reference)))
    else:
        entry["torch"]["peak_extra_bytes"] = None
        entry["torch"]["memory_source"] = "not measurable (PyTorch's CPU allocator is untraced)"
    for m in fns:
        own = medians[m]
        t = own[m]
        rec = entry["methods"][m]
        rec.update({
            "median_s": t, "times_s": groups[m][m], "gflops": shape.useful_flops / t / 1e9,
            "torch_median_s": own["torch"], "gemm_median_s": own["gemm"],
            "speedup_vs_torch": own["torch"] / t, "fraction_of_gemm_bound": own["gemm"] / t,
            "gbs": gb / t, "fraction_of_copy_bandwidth": gb / t / copy_gbs,
        })
        rec["fraction_of_bound"] = (rec["fraction_of_copy_bandwidth"] if shape.bound ==
                                    "bandwidth" else rec["fraction_of_gemm_bound"])
        if args.device.startswith("cuda"):
            rec["peak_extra_bytes"] = peak_memory(fns[m], args.device)
            rec["memory_source"] = "torch.cuda.max_memory_allocated"
            rec["host_s"] = host_time(fns[m], sync)
            if after is not None and m == "auto":       # the comparison that matters
                after.append(lambda rec=rec, fn=fns[m]: rec.update(kernel_s=kernel_time(fn)))
        elif args.backend == "numpy":
            rec["peak_extra_bytes"] = peak_memory(fns[m], "cpu")
            rec["memory_source"] = "tracemalloc"
        else:
            rec["peak_extra_bytes"] = peak_memory(call_method(problem, m, numpy_twin=True), "cpu")
            rec["memory_source"] = ("tracemalloc of the same code on NumPy arrays "
                                    "(PyTorch's CPU allocator is untraced)")
    return entry


def summarize(results: dict[str, Any], methods: Sequence[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for m in methods:
        timed = {k: r for k, r in results.items() if m in r["methods"]}
        if not timed:
            continue
        speed = [r["methods"][m]["speedup_vs_torch"] for r in timed.values()]
        bound = [r["methods"][m]["fraction_of_bound"] for r in timed.values()]
        gemm_bound = {k: r["methods"][m]["fraction_of_bound"] for k, r in timed.items()
                      if r.get("bound", "gemm") == "gemm"}
        summary[m] = {
            "shapes": len(speed),
            "geomean_speedup_vs_torch": math.exp(statistics.fmean(math.log(v) for v in speed)),
            "min_speedup_vs_torch": min(speed),
            "min_fraction_of_bound": min(bound),         # GEMM or copy bandwidth, mixed
            "min_fraction_of_gemm_bound": min(gemm_bound.values(), default=None),
            "shapes_below_0.9x_torch": [k for k, r in timed.items()
                                        if r["methods"][m]["speedup_vs_torch"] < 0.9],
            # the 0.8 target is for the GEMM-bound shapes; the memory-bound ones
            # (depthwise) report GB/s against the copy bandwidth instead
            "shapes_below_0.8_of_bound": [k for k, f in gemm_bound.items() if f < 0.8],
            "bandwidth_bound": {k: {"gbs": r["methods"][m]["gbs"],
                                    "fraction_of_copy_bandwidth":
                                        r["methods"][m]["fraction_of_bound"]}
                                for k, r in timed.items() if r.get("bound") == "bandwidth"},
        }
    return summary


# The PNG is drawn for the book's text column (about 700 px): 9 x 7.5 in at 100 dpi, so that
# shown there its labels are still about 8 px tall.
PLOT_SIZE_IN, PLOT_DPI = (9.0, 7.5), 100


def plot(report: dict[str, Any], path: Path) -> None:
    """Two bar charts of ``report``'s results, one group of bars per shape: each method's speed
    against PyTorch (log scale; the 0.9x target dashed) and its fraction of the bound (the 0.8
    target dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results, methods = report["results"], report["config"]["methods"]
    names = list(results)
    fig, axes = plt.subplots(2, 1, figsize=PLOT_SIZE_IN, sharex=True)
    width = 0.8 / max(1, len(methods))
    for j, m in enumerate(methods):
        xs = [i + (j - (len(methods) - 1) / 2) * width for i in range(len(names))]
        sp = [results[n]["methods"].get(m, {}).get("speedup_vs_torch", np.nan) for n in names]
        fb = [results[n]["methods"].get(m, {}).get("fraction_of_bound", np.nan) for n in names]
        axes[0].bar(xs, sp, width, label=m)
        axes[1].bar(xs, fb, width, label=m)
    axes[0].axhline(1.0, color="k", lw=0.8)
    axes[0].axhline(0.9, color="k", lw=0.8, ls="--")
    axes[0].set_yscale("log")
    axes[0].yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}\u00d7"))
    axes[0].set_ylabel("speed vs PyTorch\n(1\u00d7 solid, target 0.9\u00d7 dashed)",
                       fontsize=11)
    axes[1].axhline(0.8, color="k", lw=0.8, ls="--")
    axes[1].set_ylabel("fraction of the bound (GEMM;\ncopy for depthwise), 0.8 dashed",
                       fontsize=11)
    axes[1].set_xticks(range(len(names)))
    axes[1].set_xticklabels(names, rotation=35, ha="right", fontsize=11)
    for ax in axes:
        ax.tick_params(axis="y", labelsize=10)
    axes[0].legend(ncol=min(6, len(methods)), fontsize=10, loc="lower center",
                   bbox_to_anchor=(0.5, 1.0), frameon=False)
    info = report["machine"]
    fig.suptitle(f"{info['device_name']}, {report['config']['backend']} inputs, "
                 f"{info['threads']} threads (torch {info['torch']})", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=PLOT_DPI)
    plt.close(fig)


def replot(paths: Sequence[Path]) -> int:
    """``--replot``: draw each results file's PNG next to it again; nothing is timed."""
    for path in paths:
        try:
            report = json.loads(path.read_text())
            report["results"], report["config"]["methods"], report["machine"]["device_name"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            print(f"error: --replot takes results files written by this benchmark; {path} is "
                  f"not one ({type(err).__name__}: {err})", file=sys.stderr)
            return 2
        plot(report, path.with_suffix(".png"))
        print(f"wrote {path.with_suffix('.png')}")
    return 0


class _DefaultsFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help where the help does not already say its
    default and there is one to show (not ``None``, not an unset flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"


def _count(low: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``low``, else an error naming the rule."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _amount(positive: bool) -> Callable[[str], float]:
    """An argparse type: a finite number above 0 (``positive``) or at least 0."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            rule = "above 0" if positive else "0 or more"
            raise argparse.ArgumentTypeError(f"must be a finite number {rule}, got {text}")
        return value

    return parse


def _device(text: str) -> str:
    """An argparse type: ``cpu``, ``cuda`` or ``cuda:N``."""
    if re.fullmatch(r"cpu|cuda(:\d+)?", text) is None:
        raise argparse.ArgumentTypeError(f"must be 'cpu', 'cuda' or 'cuda:N', got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tconv_lib.bench",
        description=__doc__.split("\n\n")[0] + " Times every method of a fixed suite of "
        "shapes interleaved with torch.nn.functional.conv_transpose*d and a plain GEMM, and "
        "writes a JSON of all figures plus a PNG plot.",
        epilog="Shapes: " + ", ".join(SHAPE_NAMES) + ". Timings on a shared machine are noisy: "
        "ratios are robust (interleaved rounds), absolute times less so.",
        formatter_class=_DefaultsFormatter)
    p.add_argument("--quick", action="store_true",
                   help="CI-sized smoke run: tiny versions of the shapes, 1 warm-up, 3 rounds")
    p.add_argument("--device", type=_device, default="cpu", help="'cpu' or 'cuda' (or 'cuda:N')")
    p.add_argument("--backend", choices=("torch", "numpy"), default="torch",
                   help="array type handed to tconv_lib; the reference is always torch")
    p.add_argument("--threads", type=_count(1), default=None,
                   help="threads for torch and NumPy's BLAS (default: torch's current setting)")
    p.add_argument("--shapes", nargs="+", choices=SHAPE_NAMES, default=None, metavar="NAME",
                   help="subset of the suite (default: all)")
    p.add_argument("--methods", nargs="+", choices=ALL_METHODS, default=None, metavar="METHOD",
                   help=f"subset of {', '.join(ALL_METHODS)} (default: all)")
    p.add_argument("--reps", type=_count(1), default=None, help="timed rounds (default 7, quick 3)")
    p.add_argument("--warmup", type=_count(0), default=None,
                   help="untimed rounds (default 2, quick 1)")
    p.add_argument("--max-work-ratio", type=_amount(positive=True), default=8.0,
                   help="skip a method whose estimated multiply-adds exceed this many times the "
                   "useful ones")
    p.add_argument("--max-mem-gb", type=_amount(positive=True), default=4.0,
                   help="skip a method whose estimated temporaries exceed this many GB")
    p.add_argument("--no-skip", action="store_true", help="run every method on every shape")
    p.add_argument("--settle", type=_amount(positive=False), default=None, metavar="SECONDS",
                   help="untimed busy-wait before each call, so that one library's spinning "
                   "worker threads do not slow the next (default: 0.15 with --backend numpy, "
                   "whose OpenBLAS threads spin ~0.1 s after each product; 0 otherwise)")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON path; the PNG goes next to it (default: "
                   "benchmarks/results/<device-label>.json)")
    p.add_argument("--no-plot", action="store_true", help="write the JSON only")
    p.add_argument("--replot", nargs="+", type=Path, metavar="JSON",
                   help="draw the PNG of earlier results files again (next to each) and exit; "
                   "nothing is timed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _unwritable(out: Path) -> str | None:
    """Why the results cannot be written to ``out`` (and its PNG next to it), or None.

    Checked before the run, which can take many minutes, instead of failing after it."""
    if out.is_dir():
        return "is a folder; give a file path such as results.json"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"its folder cannot be made ({err.strerror})"
    if not os.access(out.parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        return "is not writable"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.replot:
        return replot(args.replot)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and args.backend == "numpy":
        print("error: --backend numpy runs on the CPU; use --backend torch with --device cuda",
              file=sys.stderr)
        return 2
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    threads = args.threads or torch.get_num_threads()
    limiter = set_threads(threads)  # noqa: F841  (kept alive for the whole run)
    warmed = 0 if args.device.startswith("cuda") else warm_allocator()
    if args.settle is None:
        args.settle = 0.15 if args.backend == "numpy" and not args.quick else 0.0
    args.reps = args.reps or (3 if args.quick else 7)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    methods = list(args.methods or ALL_METHODS)
    shapes = [s for s in SUITE if args.shapes is None or s.name in args.shapes]
    if args.quick:
        shapes = [quick_version(s) for s in shapes]
    label = device_label(args.device, args.backend, threads, args.quick)
    out = args.out or Path("benchmarks/results") / f"{label}.json"
    problem = _unwritable(out)
    if problem is not None:
        print(f"error: --out {out}: {problem}; nothing was timed", file=sys.stderr)
        return 2

    copy_gbs = copy_bandwidth(args.backend, args.device, 16 if args.quick else 256)
    try:
        from tqdm import tqdm

        groups = sum(max(1, sum(skip_reason(m, s, args) is None for m in methods))
                     for s in shapes)
        progress: Any = tqdm(total=groups * (args.reps + args.warmup), unit="round",
                             disable=args.no_progress, file=sys.stderr)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        progress = None
    results: dict[str, Any] = {}
    started = time.time()
    after: list[Callable[[], None]] | None = [] if args.device.startswith("cuda") else None
    for shape in shapes:
        if progress is not None:
            progress.set_description(shape.name)
        results[shape.name] = bench_shape(shape, methods, args, copy_gbs, progress, after)
    if progress is not None:
        progress.close()
    if after:
        print(f"profiling kernel times ({len(after)} calls), after all timing", file=sys.stderr)
        for job in after:
            try:
                job()
            except Exception as err:  # noqa: BLE001 - the timings are written regardless
                print(f"warning: kernel times not recorded: {type(err).__name__}: {err}",
                      file=sys.stderr)
                break
    report = {
        "label": label,
        "created_unix": started,
        "wall_s": time.time() - started,
        "config": {"backend": args.backend, "device": args.device, "threads": threads,
                   "quick": args.quick, "reps": args.reps, "warmup": args.warmup,
                   "settle_s": args.settle, "malloc_warmed_bytes": warmed,
                   "gemm_output": GEMM_OUTPUT,
                   "methods": methods, "shapes": [s.name for s in shapes],
                   "dtype": "float32", "statistic": "median",
                   "speedup": "torch median time / method median time, both from the "
                              "method's own interleaved group (method, torch, GEMM)",
                   "fraction_of_gemm_bound": "GEMM median time / method median time, same "
                                             "group",
                   "fraction_of_bound": "GEMM bound, or copy bandwidth where bound=bandwidth"},
        "machine": machine_info(args.device, threads),
        "copy_bandwidth_gbs": copy_gbs,
        "results": results,
        "summary": summarize(results, methods),
    }
    out.write_text(json.dumps(report, indent=1))
    if not args.no_plot:
        plot(report, out.with_suffix(".png"))
    print_table(report)
    print(f"wrote {out}" + ("" if args.no_plot else f" and {out.with_suffix('.png')}"))
    return 0


def print_table(report: dict[str, Any]) -> None:
    methods = report["config"]["methods"]
    print("per method: speed-up vs torch, fraction of bound (b), median time")
    print(f"{'shape':16s} {'torch ms':>9s} " + " ".join(f"{m:>22s}" for m in methods))
    for name, r in report["results"].items():
        cells = []
        for m in methods:
            rec = r["methods"].get(m)
            cells.append(f"{'skipped':>22s}" if rec is None else
                         f"{rec['speedup_vs_torch']:6.2f}x {rec['fraction_of_bound']:5.2f}b "
                         f"{rec['median_s'] * 1e3:7.1f}ms")
        print(f"{name:16s} {r['torch']['median_s'] * 1e3:9.2f} " + " ".join(cells))
    for m, s in report["summary"].items():
        gemm = s["min_fraction_of_gemm_bound"]
        print(f"{m}: geomean {s['geomean_speedup_vs_torch']:.2f}x torch, min "
              f"{s['min_speedup_vs_torch']:.2f}x, min fraction of the GEMM bound "
              + ("-" if gemm is None else f"{gemm:.2f}"))
    auto = report["summary"].get("auto")
    if auto:
        memory = "; ".join(f"{k} (memory-bound) {v['gbs']:.2f} GB/s, "
                           f"{v['fraction_of_copy_bandwidth']:.2f} of the copy bandwidth"
                           for k, v in auto["bandwidth_bound"].items())
        print(f"auto below 0.9x torch: {', '.join(auto['shapes_below_0.9x_torch']) or 'none'}; "
              f"below 0.8 of the GEMM bound: "
              f"{', '.join(auto['shapes_below_0.8_of_bound']) or 'none'}"
              + (f"; {memory}" if memory else ""))


if __name__ == "__main__":
    sys.exit(main())
