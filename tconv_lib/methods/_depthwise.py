r"""``col2im``'s depthwise case: one multiply-add per tap into phase planes, a block at a time.

With one input channel per group (``C_in == groups``, e.g. ``groups = C_in = C_out``) the GEMM
of :mod:`.col2im` has inner dimension 1: there is nothing to reduce, only

.. math::
    \text{plane}_{\mathbf r}[n, g, c, \mathbf{q}] \mathrel{+}=
        x[n, g, \mathbf{q} - \mathbf{m}]\; w[g, c, \mathbf{t}]
    \qquad \text{for every tap } \mathbf{t} \text{ with } \mathbf{t}d = \mathbf{m}s + \mathbf{r},

one fused multiply-add per tap (``addcmul_`` on torch) into the phase plane of its residue
:math:`\mathbf r`, which is then copied into its strided place in the output
(:func:`._canvas.phase_window`). The shape is memory-bound, so the data should be touched while
it is in cache: the groups are processed in blocks whose phase plane fits in
:data:`PLANE_BLOCK_BYTES` (a GPU takes all groups at once). The loop runs over blocks of
channels, taps and phases, never over pixels or batch elements.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from .. import _threads, backend
from .._args import Geometry
from ._canvas import phase_window, spatial_of

# Bytes of one phase plane per block of groups: about what a core's L2 cache holds.
PLANE_BLOCK_BYTES = 1 << 20


def taps_by_phase(geo: Geometry) -> dict[tuple[int, ...], list[tuple[tuple[int, ...],
                                                                      tuple[int, ...]]]]:
    """``{residue r: [(tap t, row offset m), ...]}`` with ``t*d = m*s + r`` on every axis.

    Every residue appears, with an empty list when no tap lands on it (``k < s``).
    """
    per_axis = [[divmod(t * d, s) for t in range(k)]
                for k, s, d in zip(geo.kernel, geo.stride, geo.dilation, strict=True)]
    phases: dict[tuple[int, ...], list] = {
        r: [] for r in itertools.product(*(range(s) for s in geo.stride))}
    for tap in itertools.product(*(range(k) for k in geo.kernel)):
        mr = [per_axis[a][t] for a, t in enumerate(tap)]
        phases[tuple(r for _, r in mr)].append((tap, tuple(m for m, _ in mr)))
    return phases


def block_size(x: Any, groups: int, mult: int, blocks: tuple[int, ...]) -> int:
    """Groups per block: all of them on a GPU, else as many as keep one plane in cache."""
    if backend.on_gpu(x):
        return groups
    per_group = int(x.shape[0]) * mult * math.prod(blocks) * x.dtype.itemsize
    return max(1, min(groups, PLANE_BLOCK_BYTES // max(per_group, 1)))


def conv_transpose(x: Any, weight: Any, geo: Geometry, blocks: tuple[int, ...],
                   out: tuple[int, ...]) -> Any:
    """Depthwise transposed convolution; ``blocks`` is the phase-plane size of each axis."""
    xp = backend.namespace(x, weight)
    n, g, mult = int(x.shape[0]), geo.groups, int(weight.shape[1])
    spatial = spatial_of(x)
    device = backend.array_api_compat.device(x)
    b = block_size(x, g, mult, blocks)
    xg = xp.reshape(x, (n, g, 1) + spatial)
    y = backend.empty_cpu(xp, x, (n, g, mult) + out)
    phases = [(r, taps, phase_window(r, blocks, out, geo))
              for r, taps in taps_by_phase(geo).items()]

    def groups_range(lo: int, hi: int) -> None:     # groups [lo, hi), a block at a time
        plane = xp.empty((n, b, mult) + blocks, dtype=x.dtype, device=device)
        # NumPy has no fused multiply-add: the product of each tap goes through this buffer
        # (torch uses addcmul_; see backend.multiply_add)
        scratch = None if backend.is_torch(x) else xp.empty((n, b, mult) + spatial,
                                                            dtype=x.dtype)
        for g0 in range(lo, hi, b):
            nb = min(hi, g0 + b) - g0
            xb, wb, pl = xg[:, g0:g0 + nb], weight[g0:g0 + nb], plane[:, :nb]
            for _, taps, window in phases:
                if window is None:                   # padding crops this phase away
                    continue
                dst, src = window
                target = y[(slice(None), slice(g0, g0 + nb), slice(None)) + dst]
                if not taps:                         # no tap lands here (k < s): zeros
                    target[...] = 0
                    continue
                pl[...] = 0
                for tap, offset in taps:
                    w_tap = xp.reshape(wb[(slice(None), slice(None)) + tap],
                                       (1, nb, mult) + (1,) * geo.ndim)
                    rows = pl[(Ellipsis,) + tuple(slice(m, m + i)
                                                  for m, i in zip(offset, spatial, strict=True))]
                    backend.multiply_add(rows, xb, w_tap,
                                         None if scratch is None else scratch[:, :nb])
                target[...] = pl[(Ellipsis,) + src]

    # NumPy's elementwise loops are single-threaded, torch threads each operation itself
    _threads.run_chunks(groups_range, g, math.prod(y.shape), parallel=not backend.is_torch(x))
    return xp.reshape(y, (n, g * mult) + out)
