r"""``col2im``'s depthwise case: one multiply-add per tap into phase planes, a block at a time.

With one input channel per group (``C_in == groups``, e.g. ``groups = C_in = C_out``) the GEMM
of :mod:`.col2im` has inner dimension 1: there is nothing to reduce, only

.. math::
    \text{plane}_{\mathbf r}[n, g, c, \mathbf{q}] \mathrel{+}=
        x[n, g, \mathbf{q} - \mathbf{m}]\; w[g, c, \mathbf{t}]
    \qquad \text{for every tap } \mathbf{t} \text{ with } \mathbf{t}d = \mathbf{m}s + \mathbf{r},

one fused multiply-add per tap (``addcmul_`` on torch) into the phase plane of its residue
:math:`\mathbf r`, which is then copied into its strided place in the output
(:func:`._canvas.phase_window`); or, where col2im's pixel shuffle writes the output two columns
at a time (:func:`.col2im.in_pairs`), every phase plane of a block is made first and that shuffle
copies them. The shape is memory-bound, so the data should be touched while it is in cache: the
groups are processed in blocks whose phase plane fits in :data:`PLANE_BLOCK_BYTES` (all planes:
:data:`PAIRS_BLOCK_BYTES`; a GPU takes all groups at once; 256 KB and 4 MB blocks were slower
on 2 cores). Within a block the input sits in a zero-padded, flattened grid, so that
each multiply-add is one long row per channel (see :func:`conv_transpose`). The loop runs over
blocks of channels, taps and phases, never over pixels or batch elements.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from .. import _threads, _workspace, backend
from .._args import Geometry
from . import _windows
from ._canvas import phase_window, spatial_of

# Bytes of one phase plane per block of groups: about what a core's L2 cache holds.
PLANE_BLOCK_BYTES = 1 << 20
# Bytes of all phase planes per block when the output is written two columns at a time
# (col2im.in_pairs), which needs every plane of a block first (interleaved A/B, 2 cores: 4 to
# 31 MB alike, 8-12 % faster than one plane at a time; 1.7 MB 1.3x and 0.6 MB 2.5x slower).
PAIRS_BLOCK_BYTES = 8 << 20


def taps_by_phase(
    geo: Geometry,
) -> dict[tuple[int, ...], list[tuple[tuple[int, ...], tuple[int, ...]]]]:
    """``{residue r: [(tap t, row offset m), ...]}`` with ``t*d = m*s + r``
    on every axis.

    Every residue appears, with an empty list when no tap lands on it
    (``k < s``).
    """
    per_axis = [[divmod(t * d, s) for t in range(k)] for k, s, d
                in zip(geo.kernel, geo.stride, geo.dilation, strict=True)]
    phases: dict[tuple[int, ...], list] = {
        r: [] for r in itertools.product(*(range(s) for s in geo.stride))}
    for tap in itertools.product(*(range(k) for k in geo.kernel)):
        mr = [per_axis[a][t] for a, t in enumerate(tap)]
        residue, offset = tuple(r for _, r in mr), tuple(m for m, _ in mr)
        phases[residue].append((tap, offset))
    return phases


def block_size(x: Any, groups: int, mult: int, blocks: tuple[int, ...],
               planes: int = 1) -> int:
    """Groups per block: all of them on a GPU, else as many as keep their ``planes`` phase
    planes within :data:`PLANE_BLOCK_BYTES` (one plane) or :data:`PAIRS_BLOCK_BYTES`."""
    if backend.on_gpu(x):
        return groups
    per_group = int(x.shape[0]) * mult * math.prod(blocks) * x.dtype.itemsize * planes
    budget = PLANE_BLOCK_BYTES if planes == 1 else PAIRS_BLOCK_BYTES
    return max(1, min(groups, budget // max(per_group, 1)))


def conv_transpose(x: Any, weight: Any, geo: Geometry, blocks: tuple[int, ...],
                   out: tuple[int, ...]) -> Any:
    """Depthwise transposed convolution; ``blocks`` is the phase-plane size of each axis.

    Each block of groups is first placed in a zero-padded grid of the planes' size and
    flattened with the batch (as :func:`._windows.padded_input` does): a tap's row offset is
    then one shift of the flat index, so every multiply-add runs over one long contiguous row
    per channel instead of rows as short as the input is wide (NumPy's taps 2.2x faster on a
    64x64 input), and a tap at offset 0 writes its plane without zeroing it first.
    """
    from . import col2im  # (col2im imports this module)

    xp = backend.namespace(x, weight)
    n, g, mult, nd = int(x.shape[0]), geo.groups, int(weight.shape[1]), geo.ndim
    spatial = spatial_of(x)
    # every plane of a block first, then col2im's pixel shuffle two columns at a time; else
    # each plane straight into its place in the output
    pairs = col2im.in_pairs(x, geo)
    slots = math.prod(geo.stride) if pairs else 1
    b = block_size(x, g, mult, blocks, slots)
    length = n * math.prod(blocks)
    strides = [math.prod(blocks[a + 1:]) for a in range(nd)]
    y = backend.empty_cpu(xp, x, (n, g, mult) + out)
    y_c = xp.reshape(y, (n, g * mult) + out)
    phases = []
    for r, taps in taps_by_phase(geo).items():
        shifted = sorted((sum(m * st for m, st in zip(offset, strides, strict=True)), tap)
                         for tap, offset in taps)
        phases.append((shifted, phase_window(r, blocks, out, geo)))
    # (n, C, *spatial) -> (C, n, *spatial): the grid holds channels first, then the flat (n, q)
    x_cf = xp.permute_dims(x, (1, 0) + tuple(range(2, 2 + nd)))
    to_y = (2, 0, 1) + tuple(range(3, 3 + nd))          # plane (b, mult, n, q..) -> (n, b, mult..)

    def groups_range(lo: int, hi: int) -> None:     # groups [lo, hi), a block at a time
        grid = _workspace.empty(xp, x, (b, 1, n) + blocks, "depthwise_grid")
        _windows.zero_border(grid, spatial)
        plane = _workspace.empty(xp, x, (b, mult, slots, length), "planes")
        # NumPy has no fused multiply-add: the product of each tap goes through this buffer
        # (torch uses addcmul_; see backend.multiply_add)
        scratch = (None if backend.is_torch(x)
                   else _workspace.empty(xp, x, (b, mult, length), "depthwise_products"))
        flat = xp.reshape(grid, (b, 1, length))
        for g0 in range(lo, hi, b):
            nb = min(hi, g0 + b) - g0
            grid[(slice(0, nb), 0, Ellipsis) + tuple(slice(0, i) for i in spatial)] = \
                x_cf[g0:g0 + nb]
            wb, xf = weight[g0:g0 + nb], flat[:nb]
            for phase, (shifted, window) in enumerate(phases):
                if window is None and not pairs:     # padding crops this phase away
                    continue
                pl = plane[:nb, :, phase if pairs else 0]
                target = pl if pairs else y[(slice(None), slice(g0, g0 + nb), slice(None))
                                            + window[0]]
                if not shifted:                      # no tap lands here (k < s): zeros
                    target[...] = 0
                    continue
                if shifted[0][0] != 0:               # no tap covers the whole plane
                    pl[...] = 0
                for j, (shift, tap) in enumerate(shifted):
                    w_tap = xp.reshape(wb[(slice(None), slice(None)) + tap], (nb, mult, 1))
                    if j == 0 and shift == 0:
                        backend.multiply_into(pl, xf, w_tap)
                        continue
                    backend.multiply_add(pl[:, :, shift:], xf[:, :, :length - shift], w_tap,
                                         None if scratch is None
                                         else scratch[:nb, :, :length - shift])
                if not pairs:
                    planes = xp.reshape(pl, (nb, mult, n) + blocks)
                    target[...] = xp.permute_dims(planes[(Ellipsis,) + window[1]], to_y)
            if pairs:                                # planes (b*mult, s.., n, q..)
                col2im.pixel_shuffle(
                    xp.reshape(plane[:nb], (nb * mult,) + geo.stride + (n,) + blocks),
                    blocks, y_c[:, g0 * mult:(g0 + nb) * mult], geo)

    # NumPy's elementwise loops are single-threaded, torch threads each operation itself
    _threads.run_chunks(groups_range, g, math.prod(y.shape), parallel=not backend.is_torch(x))
    return y_c
