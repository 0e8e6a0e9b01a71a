r"""``col2im`` with the channels innermost, for inputs whose rows are short.

:func:`.col2im.planes` adds whole rows of the input's last axis. With a 16-pixel-wide input
each of those adds moves only 16 numbers at a time, and the passes after the GEMM then cost
about as much as the GEMM itself. Here the GEMM is turned around instead:

.. math::
    \text{cols}[n, \mathbf i, \mathbf t, c] = \sum_{c_i} x[n, c_i, \mathbf i]\,
        w[c_i, c, \mathbf t],

one row per input position with the taps and output channels along it, channels fastest
(``X^T W``). Each add then moves ``C_out`` numbers per tap into a buffer that has the channels
innermost, and one copy transposes that buffer into the ``(N, C_out, *out)`` output.

Along one axis, tap :math:`t` of input position :math:`i` lands on output position
:math:`o = is + td - p`. Write :math:`td - p = ms + e` with :math:`0 \le e < s`. Then
:math:`o = (i + m)s + e`: viewed as :math:`J = \lceil O/s \rceil` blocks of :math:`s`, the
output receives the tap at block :math:`j = i + m`, column :math:`e`,

.. math::
    \text{buf}[n, j, e, c] \mathrel{+}= \text{cols}[n, j - m, t, c].

The taps with the same :math:`m` have columns :math:`e` that step by :math:`d`, so they are one
add (:func:`axis_blocks`); with :math:`d = 1` that add moves ``(taps) * C_out`` contiguous
numbers per block. When one block's taps fill every column of every block (``k = 4, s = 2,
p = 1``: taps 1 and 2), it is written as a copy first and the buffer needs no zeroing.
When :math:`g = \gcd(s, d) > 1`, every column satisfies :math:`e \equiv -p \pmod g`
(:func:`reached`): the buffer keeps only those :math:`s/g` columns per block, and the output
positions between them are written as zeros.

The work runs in chunks of whole samples with about :data:`CHUNK_BYTES` of columns each (per
backend), so the adds and the transposing copy read what the GEMM has just left in cache; for
NumPy arrays the chunks run as tasks on :mod:`tconv_lib._threads`'s pool.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, NamedTuple

from .. import _threads, _workspace, backend
from .._args import Geometry
from ._canvas import output_shape, spatial_of

# Bytes of columns per chunk of whole samples, per backend. Timed on 2 cores with DCGAN's
# 128->64 layer at 16x16 (1 MB of columns per sample), interleaved with PyTorch's call: torch
# 2 MB chunks 29 ms, 4 MB 25 ms, 8 and 16 MB 24 ms, 32 MB 27 ms (16 MB won on a 3-D layer);
# NumPy, whose chunks run as tasks with one BLAS thread each, 29 ms at 4 MB and 31 ms at 16 MB
# (and 4 MB was as fast or faster on the other shapes tried).
CHUNK_BYTES = {"numpy": 4 << 20, "torch": 16 << 20}


def sample_bytes(x: Any, weight: Any, geo: Geometry) -> int:
    """Bytes of columns per sample: ``prod(i) * prod(k) * C_out`` values."""
    return (math.prod(spatial_of(x)) * math.prod(geo.kernel) * int(weight.shape[1])
            * x.dtype.itemsize)


class AxisBlock(NamedTuple):
    """The taps of one axis that share a block offset ``m`` (see the module docstring)."""

    taps: slice      # kernel indices t (consecutive)
    columns: slice   # their buffer columns e // gcd(s, d) within an output block
    src: slice       # input positions i that land inside the output
    dst: slice       # the output blocks j = i + m they land in
    fills: bool      # the taps cover every buffer column of every block


def reached(s: int, p: int, d: int) -> tuple[int, int]:
    """``(g, r)``: taps reach only the output positions ``o = r (mod g)``, ``g = gcd(s, d)``.

    Every column is ``e = (td - p) mod s``, and ``g`` divides both ``s`` and ``d``, so
    ``e = -p (mod g)``. The buffer keeps only those columns, ``s // g`` per block."""
    g = math.gcd(s, d)
    return g, -p % g


def axis_blocks(k: int, s: int, p: int, d: int, i: int, o: int) -> tuple[int, list[AxisBlock]]:
    """``(J, blocks)`` for one axis of kernel ``k``, stride ``s``, padding ``p``, dilation
    ``d``, input size ``i`` and output size ``o``: ``J = ceil(o / s)`` output blocks, and one
    :class:`AxisBlock` per block offset ``m`` whose taps reach the output. Buffer column ``c``
    of block ``j`` is output position ``o = g (j s/g + c) + r`` (:func:`reached`)."""
    rows, (g, _) = -(-o // s), reached(s, p, d)
    by_offset: dict[int, list[tuple[int, int]]] = {}
    for t in range(k):
        m, e = divmod(t * d - p, s)
        by_offset.setdefault(m, []).append((t, e // g))
    blocks = []
    for m, tc in by_offset.items():
        i0, i1 = max(0, -m), min(i, rows - m)
        if i1 <= i0:                           # padding crops this block away
            continue
        (t0, c0), (t1, c1) = tc[0], tc[-1]
        blocks.append(AxisBlock(slice(t0, t1 + 1), slice(c0, c1 + 1, d // g), slice(i0, i1),
                                slice(i0 + m, i1 + m),
                                len(tc) == s // g and d == g and i0 + m == 0 and i1 + m == rows))
    return rows, blocks


def applies(x: Any, weight: Any, geo: Geometry) -> bool:
    """On the CPU, one group, no gradients recorded (the buffer is accumulated in place), input
    rows no longer than ``C_out`` (else :func:`.col2im.planes`' row adds are as long), and one
    sample's columns within a chunk. :func:`.col2im.cpu_route` checks the rest."""
    if geo.groups != 1 or backend.on_gpu(x) or backend.records_grad(x, weight):
        return False
    return (spatial_of(x)[-1] <= int(weight.shape[1])
            and sample_bytes(x, weight, geo) <= CHUNK_BYTES[backend.family(x)])


def conv_transpose(x: Any, weight: Any, geo: Geometry) -> Any:
    """The GEMM ``X^T W``, the block adds into a channels-last buffer, and one transposing copy
    into the output, in chunks of whole samples."""
    xp = backend.namespace(x, weight)
    n, c_in, c_out, nd = int(x.shape[0]), int(weight.shape[0]), int(weight.shape[1]), geo.ndim
    spatial = spatial_of(x)
    out = output_shape(spatial, geo)
    per_axis = [axis_blocks(*args) for args in zip(geo.kernel, geo.stride, geo.padding,
                                                   geo.dilation, spatial, out, strict=True)]
    rows = tuple(j for j, _ in per_axis)
    g_r = [reached(s, p, d) for s, p, d in zip(geo.stride, geo.padding, geo.dilation,
                                                strict=True)]
    width = tuple(s // g for s, (g, _) in zip(geo.stride, g_r, strict=True))
    extent = tuple(j * w for j, w in zip(rows, width, strict=True))
    positions, k_total = math.prod(spatial), math.prod(geo.kernel)
    # (C_in, C_out, K) -> (C_in, K * C_out): one row per input channel, channels fastest
    w_cl = xp.reshape(xp.permute_dims(xp.reshape(weight, (c_in, c_out, k_total)), (0, 2, 1)),
                      (c_in, k_total * c_out))
    combos = list(itertools.product(*(blocks for _, blocks in per_axis)))
    first = next((c for c in combos if all(b.fills for b in c)), None)
    ordered = ([first] if first else []) + [c for c in combos if c is not first]
    to_nc = (0, 1 + nd) + tuple(range(1, 1 + nd))
    # buffer position b is output position g*b + r: the others receive no tap, zeros
    reach = tuple(slice(r, None, g) for g, r in g_r)
    gaps = any(g > 1 for g, _ in g_r)
    crop = (slice(None), slice(None)) + tuple(slice(0, -(-(o - r) // g))
                                              for o, (g, r) in zip(out, g_r, strict=True))
    y = backend.empty_cpu(xp, x, (n, c_out) + out)
    samples = max(1, min(n, CHUNK_BYTES[backend.family(x)] // sample_bytes(x, weight, geo)))
    if not backend.is_torch(x):               # NumPy: at least one task per thread
        samples = min(samples, -(-n // _threads.get_num_threads()))
    starts = list(range(0, n, samples))

    def chunk(n0: int) -> None:
        m = min(n, n0 + samples) - n0
        x_t = xp.permute_dims(xp.reshape(x[n0:n0 + m], (m, c_in, positions)), (0, 2, 1))
        cols = _workspace.matmul(xp, x_t, w_cl, (m, positions, k_total * c_out), "cols")
        cols = xp.reshape(cols, (m,) + spatial + geo.kernel + (c_out,))
        buf = _workspace.empty(xp, x, (m,) + extent + (c_out,), "channels_last")
        blocked = xp.reshape(buf, (m,) + tuple(v for j, w in zip(rows, width, strict=True)
                                               for v in (j, w)) + (c_out,))
        if first is None:
            buf[...] = 0
        add_blocks(cols, blocked, ordered, first)
        if gaps:
            y[n0:n0 + m] = 0
        y[(slice(n0, n0 + m), slice(None)) + reach] = xp.permute_dims(buf, to_nc)[crop]

    def chunks(lo: int, hi: int) -> None:
        for n0 in starts[lo:hi]:
            chunk(n0)

    _threads.run_tasks(chunks, len(starts), parallel=not backend.is_torch(x) and len(starts) > 1)
    return y


def add_blocks(cols: Any, blocked: Any, combos: list[tuple[AxisBlock, ...]],
               first: tuple[AxisBlock, ...] | None) -> None:
    """Each combination of one block per axis into the buffer ``blocked`` ``(n, J_1, s_1/g_1,
    ..., J_D, s_D/g_D, C)`` from ``cols`` ``(n, i_1..i_D, t_1..t_D, C)``: ``first`` (the one
    that fills the buffer) as a copy, every other as an add."""
    xp, nd = backend.namespace(cols), (len(cols.shape) - 2) // 2
    # cols (n, i_1..i_D, t_1..t_D, c) -> (n, i_1, t_1, ..., i_D, t_D, c), as the buffer's axes
    order = (0,) + tuple(v for a in range(nd) for v in (1 + a, 1 + nd + a)) + (1 + 2 * nd,)
    for combo in combos:
        src = xp.permute_dims(cols[(slice(None),) + tuple(b.src for b in combo)
                                   + tuple(b.taps for b in combo)], order)
        dst = blocked[(slice(None),) + tuple(v for b in combo for v in (b.dst, b.columns))]
        if combo is first:
            dst[...] = src
        else:
            dst += src
