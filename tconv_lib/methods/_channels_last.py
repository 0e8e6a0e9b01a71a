r"""``col2im`` with the channels innermost, for inputs whose rows are short.

:func:`.col2im.planes` adds whole rows of the input's last axis. With a 16-pixel-wide input
each of those adds moves only 16 numbers at a time, and the passes after the GEMM then cost
about as much as the GEMM itself. Here the GEMM is turned around instead:

.. math::
    \text{cols}[n, \mathbf i, \mathbf t, c] = \sum_{c_i} x[n, c_i, \mathbf i]\,
        w[c_i, c, \mathbf t],

one row per input position with the taps and output channels along it, channels fastest
(``X^T W``). Each add then moves ``C_out`` numbers per tap into a buffer that has the channels
innermost, and one copy transposes that buffer into the ``(N, C_out, *out)`` output (a plain
copy when the output is channels-last too, see :func:`.backend.memory_format`).

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

**Only the taps that land.** One GEMM over every (input position, tap) pair also computes the
pairs whose output the padding crops away: a block's taps reach the output only from the inputs
in its ``src`` range. On a tiny input that is a large share: DCGAN's 4x4 layer (``k = 4,
s = 2, p = 1``) crops 2 of the 16 pairs along each axis, 23 % of the products in 2-D
(:func:`cropped_fraction`). From :data:`MIN_CROPPED` on, :func:`block_gemms` runs one GEMM per
combination of blocks instead, over just the rows of those inputs and the columns of those
taps. The rows are ordered ``(i_1, ..., i_D, n)`` so that a range along the first axis is a
range of rows; the other axes' ranges are gathered into copies, and the weight's columns for
one tap along each axis but the last are one strided matrix, so a block of ``k_1`` taps takes
``k_1`` GEMMs.
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
# The same with block_gemms, whose GEMMs each write only part of the columns: DCGAN's 512->256
# layer at 4x4 on NumPy, 16 samples per chunk 29.3 ms, 32 (one chunk per core) 25.1-25.4 ms.
BLOCK_CHUNK_BYTES = 16 << 20

# From this share of cropped (input position, tap) pairs on, one GEMM per combination of blocks
# (block_gemms) replaces the single GEMM. DCGAN's 512->256 layer at 4x4 (23 % cropped), 2 cores,
# interleaved with PyTorch's call: per-block GEMMs 22-24 ms, one GEMM with batch-innermost
# block adds 28-34 ms, PyTorch 20-24 ms. Its 16x16 layer crops 6 %, below this.
MIN_CROPPED = 0.125


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


def axis_blocks(k: int, s: int, p: int, d: int, i: int,
                o: int) -> tuple[int, list[AxisBlock]]:
    """``(J, blocks)`` for one axis of kernel ``k``, stride ``s``, padding
    ``p``, dilation ``d``, input size ``i`` and output size ``o``:
    ``J = ceil(o / s)`` output blocks, and one :class:`AxisBlock` per block
    offset ``m`` whose taps reach the output. Buffer column ``c`` of block
    ``j`` is output position ``o = g (j s/g + c) + r`` (:func:`reached`)."""
    rows, (g, _) = -(-o // s), reached(s, p, d)
    by_offset: dict[int, list[tuple[int, int]]] = {}
    for t in range(k):
        m, e = divmod(t * d - p, s)
        by_offset.setdefault(m, []).append((t, e // g))
    blocks = []
    for m, tc in by_offset.items():
        i0, i1 = max(0, -m), min(i, rows - m)
        if i1 <= i0:                    # padding crops this block away
            continue
        (t0, c0), (t1, c1) = tc[0], tc[-1]
        blocks.append(AxisBlock(slice(t0, t1 + 1),
                                slice(c0, c1 + 1, d // g),
                                slice(i0, i1), slice(i0 + m, i1 + m),
                                len(tc) == s // g and d == g
                                and i0 + m == 0 and i1 + m == rows))
    return rows, blocks


def cropped_fraction(kernel: tuple[int, ...],
                     per_axis: list[tuple[int, list[AxisBlock]]],
                     spatial: tuple[int, ...]) -> float:
    """The share of (input position, tap) pairs whose output block the
    padding crops away: :func:`block_gemms` skips them. (Taps that land past
    the output's end inside its last block of ``s`` positions are still
    computed, and cropped by the transposing copy.)"""
    live = math.prod(sum(_len(b.src) * _len(b.taps) for b in blocks)
                     for _, blocks in per_axis)
    pairs = math.prod(i * k for i, k in zip(spatial, kernel, strict=True))
    return 1 - live / pairs


def _len(sl: slice) -> int:
    return sl.stop - sl.start


def plan(x: Any, geo: Geometry) -> list[tuple[int, list[AxisBlock]]]:
    """:func:`axis_blocks` for every axis of ``x``'s problem."""
    spatial = spatial_of(x)
    return [axis_blocks(*args) for args in zip(geo.kernel, geo.stride, geo.padding,
                                               geo.dilation, spatial,
                                               output_shape(spatial, geo), strict=True)]


def skips_cropped(x: Any, geo: Geometry,
                  per_axis: list[tuple[int, list[AxisBlock]]] | None = None) -> bool:
    """Whether :func:`block_gemms` replaces the single GEMM (:data:`MIN_CROPPED`); ``per_axis``
    is :func:`plan`'s result where the caller has it already."""
    per_axis = plan(x, geo) if per_axis is None else per_axis
    return cropped_fraction(geo.kernel, per_axis, spatial_of(x)) >= MIN_CROPPED


def applies(x: Any, weight: Any, geo: Geometry) -> bool:
    """On the CPU, one group, no gradients recorded (the buffer is accumulated in place), input
    rows no longer than ``C_out`` (else :func:`.col2im.planes`' row adds are as long), and one
    sample's columns within a chunk. :func:`.col2im.cpu_route` checks the rest."""
    if geo.groups != 1 or backend.on_gpu(x) or backend.records_grad(x, weight):
        return False
    return (spatial_of(x)[-1] <= int(weight.shape[1])
            and sample_bytes(x, weight, geo) <= CHUNK_BYTES[backend.family(x)])


def conv_transpose(x: Any, weight: Any, geo: Geometry) -> Any:
    """The GEMM ``X^T W`` (or, from :data:`MIN_CROPPED` on, :func:`block_gemms`' GEMMs per
    block of taps), the block adds into a channels-last buffer, and one transposing copy into
    the output, in chunks of whole samples."""
    xp = backend.namespace(x, weight)
    n, c_in, c_out, nd = int(x.shape[0]), int(weight.shape[0]), int(weight.shape[1]), geo.ndim
    spatial = spatial_of(x)
    out = output_shape(spatial, geo)
    per_axis = plan(x, geo)
    per_block = skips_cropped(x, geo, per_axis)
    rows = tuple(j for j, _ in per_axis)
    g_r = [reached(s, p, d) for s, p, d in zip(geo.stride, geo.padding, geo.dilation,
                                                strict=True)]
    width = tuple(s // g for s, (g, _) in zip(geo.stride, g_r, strict=True))
    extent = tuple(j * w for j, w in zip(rows, width, strict=True))
    positions, k_total = math.prod(spatial), math.prod(geo.kernel)
    # (C_in, C_out, K) -> (C_in, K * C_out): one row per input channel, channels fastest
    w_t = xp.permute_dims(xp.reshape(weight, (c_in, c_out, k_total)), (0, 2, 1))
    if per_block:        # the GEMMs read strided blocks of its columns: padded rows
        w_cl = _workspace.empty_rows(xp, weight, (c_in, k_total * c_out), "weight")
        xp.reshape(w_cl, (c_in, k_total, c_out))[...] = w_t
    else:
        w_cl = xp.reshape(w_t, (c_in, k_total * c_out))
    combos = list(itertools.product(*(blocks for _, blocks in per_axis)))
    first = next((c for c in combos if all(b.fills for b in c)), None)
    ordered = ([first] if first else []) + [c for c in combos if c is not first]
    to_nc = (0, 1 + nd) + tuple(range(1, 1 + nd))
    # buffer position b is output position g*b + r: the others receive no tap, zeros
    reach = tuple(slice(r, None, g) for g, r in g_r)
    gaps = any(g > 1 for g, _ in g_r)
    crop = (slice(None), slice(None)) + tuple(slice(0, -(-(o - r) // g))
                                              for o, (g, r) in zip(out, g_r, strict=True))
    # channels-last output (as PyTorch gives for channels-last operands): a plain final copy
    y = backend.empty_cpu(xp, x, (n, c_out) + out,
                          memory_format=backend.memory_format(x, weight))
    budget = BLOCK_CHUNK_BYTES if per_block else CHUNK_BYTES[backend.family(x)]
    samples = max(1, min(n, budget // sample_bytes(x, weight, geo)))
    if not backend.is_torch(x):               # NumPy: at least one task per thread
        samples = min(samples, -(-n // _threads.get_num_threads()))
    starts = list(range(0, n, samples))

    def chunk(n0: int) -> None:
        m = min(n, n0 + samples) - n0
        buf = _workspace.empty(xp, x, (m,) + extent + (c_out,), "channels_last")
        blocked = xp.reshape(buf, (m,) + tuple(v for j, w in zip(rows, width, strict=True)
                                               for v in (j, w)) + (c_out,))
        if first is None:
            buf[...] = 0
        if per_block:
            block_gemms(x[n0:n0 + m], xp.reshape(w_cl, (c_in,) + geo.kernel + (c_out,)),
                        blocked, ordered, first)
        else:
            x_t = xp.permute_dims(xp.reshape(x[n0:n0 + m], (m, c_in, positions)), (0, 2, 1))
            cols = _workspace.matmul(xp, x_t, w_cl, (m, positions, k_total * c_out), "cols")
            cols = xp.reshape(cols, (m,) + spatial + geo.kernel + (c_out,))
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


def block_gemms(x: Any, w_taps: Any, blocked: Any, combos: list[tuple[AxisBlock, ...]],
                first: tuple[AxisBlock, ...] | None) -> None:
    r"""Like :func:`add_blocks`, but each combination of blocks gets its own GEMMs, over only
    the input positions ``src`` whose taps land in the output.

    ``w_taps`` is the weight ``(C_in, k_1..k_D, C_out)``. For one tap ``t_a`` per axis
    ``a < D`` and a block ``T_D`` of the last axis,

    .. math::
        \text{cols}[\mathbf i, n, t_D, c] = \sum_{c_i} x[n, c_i, \mathbf i]\,
            w[c_i, c, t_1, \ldots, t_{D-1}, t_D],
        \quad \mathbf i \in \text{src}_1 \times \cdots \times \text{src}_D,

    one GEMM whose weight columns are a strided view; it lands at column ``e(t_a)`` of each
    axis's blocks, as in :func:`add_blocks`.
    """
    xp, nd = backend.namespace(x), len(x.shape) - 2
    m, c_in, spatial = int(x.shape[0]), int(x.shape[1]), spatial_of(x)
    rows = _workspace.empty_rows(xp, x, spatial + (m, c_in), "rows")   # (i_1..i_D, n, c_in)
    rows[...] = xp.permute_dims(x, tuple(range(2, 2 + nd)) + (0, 1))
    gathered: dict[tuple, Any] = {}
    # cols (i_1..i_D, n, t_D, c) -> (n, i_1..i_D, t_D, c), as the buffer's selected axes
    order = (nd,) + tuple(range(nd)) + (nd + 1, nd + 2)
    for combo in combos:
        inner = tuple(b.src for b in combo[1:])
        key = tuple((sl.start, sl.stop) for sl in inner)
        if key not in gathered:      # the inputs of axes 2..D: a copy unless all of them
            whole = all(_len(sl) == i for sl, i in zip(inner, spatial[1:], strict=True))
            gathered[key] = rows if whole else _gather(xp, rows, inner, f"rows {len(gathered)}")
        src_rows = gathered[key][combo[0].src]
        a = xp.reshape(src_rows, (-1, c_in))
        last = combo[-1]
        for taps in itertools.product(*(range(b.taps.start, b.taps.stop) for b in combo[:-1])):
            b = xp.reshape(w_taps[(slice(None),) + taps + (last.taps,)], (c_in, -1))
            cols = _workspace.matmul(xp, a, b, (int(a.shape[0]), int(b.shape[1])), "cols",
                                     rows=True)
            cols = xp.reshape(cols, tuple(src_rows.shape[:-1]) + (_len(last.taps), -1))
            dst = blocked[(slice(None),) + tuple(
                v for blk, t in zip(combo[:-1], taps, strict=True)
                for v in (blk.dst, blk.columns.start + (t - blk.taps.start) * blk.columns.step))
                + (last.dst, last.columns)]
            if combo is first:       # one tap per axis but the last: the copies are disjoint
                dst[...] = xp.permute_dims(cols, order)
            else:
                dst += xp.permute_dims(cols, order)


def _gather(xp: Any, rows: Any, inner: tuple[slice, ...], slot: str) -> Any:
    """``rows[:, inner...]`` as a contiguous copy in the workspace."""
    sel = rows[(slice(None),) + inner]
    out = _workspace.empty_rows(xp, rows, tuple(int(v) for v in sel.shape), slot)
    out[...] = sel
    return out
