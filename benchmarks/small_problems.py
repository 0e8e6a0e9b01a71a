"""Per-call time of ``tconv_lib.conv_transpose(..., method="auto")`` on tiny problems, against
``torch.nn.functional.conv_transpose{1,2,3}d`` measured in the same run.

The benchmark suite (``python -m tconv_lib.bench``) times layers of real networks, where a call
takes milliseconds. A reader of the book calls the library on inputs of a few pixels, where
what counts is the Python around the arithmetic. This report times both on such inputs,
interleaved (each round runs every problem's tconv_lib and PyTorch calls, in an order that
changes from round to round, with the same thread count)
and prints the median microseconds per call and their ratio. It records; it asserts nothing.

    .venv/bin/python benchmarks/small_problems.py             # every problem, 7 rounds
    .venv/bin/python benchmarks/small_problems.py --rounds 3 --json /tmp/small.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import tconv_lib
import tconv_lib.nn
from tconv_lib import bench

_TORCH = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@dataclass(frozen=True)
class Tiny:
    """One small transposed convolution, in PyTorch's argument order."""

    name: str
    input: tuple[int, ...]          # (N, C_in, *spatial)
    c_out: int
    kernel: int
    stride: int = 1
    padding: int = 0
    output_padding: int = 0
    groups: int = 1
    dilation: int = 1
    kind: str = "torch"             # "torch", "numpy" (tconv_lib on NumPy arrays) or "module"
    dtype: str = "float32"
    args: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def geometry(self) -> dict[str, Any]:
        return dict(stride=self.stride, padding=self.padding, output_padding=self.output_padding,
                    groups=self.groups, dilation=self.dilation)


PROBLEMS: tuple[Tiny, ...] = (
    Tiny("2d-c4-5x5-k3", (1, 4, 5, 5), 8, 3),
    Tiny("2d-c4-5x5-k3s2", (1, 4, 5, 5), 8, 3, 2),
    Tiny("2d-c4-5x5-k3s2p1op1", (1, 4, 5, 5), 8, 3, 2, 1, 1),
    Tiny("2d-c4-5x5-k4s2p1", (1, 4, 5, 5), 8, 4, 2, 1),
    Tiny("2d-c4-5x5-k3s3", (1, 4, 5, 5), 8, 3, 3),
    Tiny("2d-c4-5x5-k3s2d2", (1, 4, 5, 5), 8, 3, 2, 2, 1, dilation=2),
    Tiny("2d-c4-5x5-k3s2g2", (1, 4, 5, 5), 8, 3, 2, 1, 1, groups=2),
    Tiny("2d-c4-5x5-k3s2-dw", (1, 4, 5, 5), 4, 3, 2, groups=4),
    Tiny("2d-n8-c16-8x8-k4s2p1", (8, 16, 8, 8), 8, 4, 2, 1),
    Tiny("2d-c4-5x5-k3s2-f64", (1, 4, 5, 5), 8, 3, 2, dtype="float64"),
    Tiny("1d-c4-16-k3s2", (1, 4, 16), 8, 3, 2),
    Tiny("1d-n2-c4-8-k4s3p1", (2, 4, 8), 4, 4, 3, 1),
    Tiny("3d-c2-4x4x4-k3s2p1op1", (1, 2, 4, 4, 4), 4, 3, 2, 1, 1),
    Tiny("3d-c2-6x6x6-k3s2p1op1", (1, 2, 6, 6, 6), 4, 3, 2, 1, 1),      # past the whole G's
    Tiny("3d-c4-8x8x8-k3s2p1op1", (1, 4, 8, 8, 8), 4, 3, 2, 1, 1),      # entry bound: by axes
    Tiny("np-2d-c4-5x5-k3s2", (1, 4, 5, 5), 8, 3, 2, kind="numpy", dtype="float64"),
    Tiny("np-2d-c4-5x5-k3s2p1op1", (1, 4, 5, 5), 8, 3, 2, 1, 1, kind="numpy"),
    Tiny("np-1d-c4-16-k3s2", (1, 4, 16), 8, 3, 2, kind="numpy", dtype="float64"),
    Tiny("np-3d-c2-4x4x4-k3s2", (1, 2, 4, 4, 4), 4, 3, 2, kind="numpy"),
    Tiny("np-3d-c2-6x6x6-k3s2", (1, 2, 6, 6, 6), 4, 3, 2, kind="numpy"),
    Tiny("module2d-fwd-bwd-k3s2p1op1", (1, 4, 5, 5), 8, 3, 2, 1, 1, kind="module"),
    Tiny("module2d-fwd-bwd-k4s2p1-n4", (4, 8, 6, 6), 4, 4, 2, 1, kind="module"),
    Tiny("module3d-fwd-bwd-k3s2p1", (1, 2, 4, 4, 4), 4, 3, 2, 1, kind="module"),
    Tiny("module3d-fwd-bwd-6x6x6-k3s2p1", (1, 2, 6, 6, 6), 4, 3, 2, 1, kind="module"),
)


def calls(p: Tiny) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(tconv_lib's call, PyTorch's call) of one problem, on the same values."""
    gen = torch.Generator().manual_seed(0)
    dtype = getattr(torch, p.dtype)
    nd = len(p.input) - 2
    x = torch.randn(p.input, generator=gen, dtype=dtype)
    w = torch.randn((p.input[1], p.c_out // p.groups) + (p.kernel,) * nd, generator=gen,
                    dtype=dtype)
    b = torch.randn(p.c_out, generator=gen, dtype=dtype)
    geo = p.geometry
    ref = _TORCH[nd]
    if p.kind == "module":
        mod = getattr(tconv_lib.nn, f"ConvTranspose{nd}d")(
            p.input[1], p.c_out, p.kernel, dtype=dtype, **geo)
        ours = getattr(torch.nn, f"ConvTranspose{nd}d")(p.input[1], p.c_out, p.kernel,
                                                        dtype=dtype, **geo)
        ours.load_state_dict(mod.state_dict())
        xg = x.clone().requires_grad_(True)

        def step(m: torch.nn.Module) -> Callable[[], Any]:
            def run() -> None:
                m(xg).sum().backward()
            return run
        return step(mod), step(ours)
    if p.kind == "numpy":
        xn, wn, bn = x.numpy(), w.numpy(), b.numpy()
        return (lambda: tconv_lib.conv_transpose(xn, wn, bn, **geo),
                lambda: ref(x, w, b, **geo))
    return lambda: tconv_lib.conv_transpose(x, w, b, **geo), lambda: ref(x, w, b, **geo)


def measure(problems: tuple[Tiny, ...], rounds: int) -> list[dict[str, Any]]:
    """Median microseconds per call of tconv_lib and PyTorch, interleaved round by round
    (:func:`tconv_lib.bench.time_interleaved`, one sample = about 20 ms of back-to-back
    calls, :func:`tconv_lib.bench.calls_per_sample`)."""
    fns: dict[str, Callable[[], Any]] = {}
    for p in problems:
        fns[f"{p.name}|tconv"], fns[f"{p.name}|torch"] = calls(p)
    n = {k: bench.calls_per_sample(fn, _no_sync, target=0.02, most=2000)
         for k, fn in fns.items()}
    times = bench.time_interleaved(fns, reps=rounds, warmup=1, sync=_no_sync, calls=n)
    rows = []
    for p in problems:
        us = statistics.median(times[f"{p.name}|tconv"]) * 1e6
        ref_us = statistics.median(times[f"{p.name}|torch"]) * 1e6
        rows.append({"name": p.name, "tconv_us": us, "torch_us": ref_us, "ratio": us / ref_us})
    return rows


def _no_sync() -> None:
    """CPU calls return when done: nothing to wait for."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of torch, NumPy's BLAS and tconv_lib (default: as is)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="problems whose name contains one of these")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    _blas = bench.set_threads(args.threads) if args.threads else None   # kept to the end
    problems = tuple(p for p in PROBLEMS if args.only is None
                     or any(s in p.name for s in args.only))
    rows = measure(problems, args.rounds)
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, numpy "
          f"{np.__version__}, load {load:.1f}, {args.rounds} rounds (medians)")
    print(f"{'problem':32} {'tconv us':>9} {'torch us':>9} {'ratio':>7}")
    for r in rows:
        print(f"{r['name']:32} {r['tconv_us']:9.1f} {r['torch_us']:9.1f} {r['ratio']:7.1f}")
    if args.json:
        args.json.write_text(json.dumps({"load": load, "threads": torch.get_num_threads(),
                                         "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
