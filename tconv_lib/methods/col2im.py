r"""Transposed convolution as one GEMM followed by a col2im scatter-add.

The GEMM :math:`\text{cols} = W^{\mathsf T} X` multiplies the weight, viewed as a
:math:`(C_{out}/g \cdot \prod k) \times (C_{in}/g)` matrix per group, with the input viewed as
:math:`(C_{in}/g) \times (N \prod i)`. Column :math:`j` of ``cols`` holds the scaled kernel that
input position :math:`j` paints; ``col2im`` adds each tap's slab into the output at stride
offsets. This is how cuDNN-free frameworks implement it (it is the backward-data pass of an
im2col convolution), and it is tconv_lib's fast path on the CPU:

- every multiply is useful (no inserted zeros), and they all happen in **one** large GEMM, the
  operation BLAS is best at;
- ``padding`` is never painted and then cropped: each tap adds only the part of its slab that
  lands inside the output window (:func:`tap_window`);
- when the taps tile the output exactly (``k == s``, ``d == 1``, ``output_padding == 0``, e.g. the
  U-Net ``k=2, s=2`` up-convolution) each output element is *assigned* once, so col2im is a single
  pixel-shuffle copy into an uninitialised output.

The column buffer holds :math:`\prod k \cdot C_{out} \cdot N \prod i` values.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from .. import backend
from .._args import Geometry
from ._canvas import output_shape, spatial_of

# Below this many input positions per sample, one GEMM over the whole batch (after moving the
# channel axis first) beats one GEMM per sample.
_MIN_POSITIONS_PER_SAMPLE_GEMM = 256


def all_taps_gemm(x: Any, weight: Any, groups: int) -> Any:
    """``cols[g, c_out, tap, n, p] = sum_ci w[g, ci, c_out, tap] x[n, g, ci, p]`` as one GEMM.

    Returns a (possibly permuted) view of shape ``(g, C_out/g, K, N, P)``.
    """
    xp = backend.namespace(x, weight)
    n, g = int(x.shape[0]), groups
    c_in, c_out_g = int(weight.shape[0]), int(weight.shape[1])
    positions = math.prod(spatial_of(x))
    k_total = math.prod(int(k) for k in weight.shape[2:])
    w_t = xp.permute_dims(xp.reshape(weight, (g, c_in // g, c_out_g * k_total)), (0, 2, 1))
    if n == 1 or positions < _MIN_POSITIONS_PER_SAMPLE_GEMM:
        # channel-major input (g, C_in/g, N*P): a free reshape when N == 1, else one input copy
        x_cm = xp.reshape(xp.permute_dims(backend.group_view(x, g), (1, 2, 0, 3)),
                          (g, c_in // g, n * positions))
        cols = xp.matmul(w_t, x_cm)                                   # (g, C_out/g*K, N*P)
        return xp.reshape(cols, (g, c_out_g, k_total, n, positions))
    cols = xp.matmul(w_t[None], backend.group_view(x, g))            # (N, g, C_out/g*K, P)
    cols = xp.reshape(cols, (n, g, c_out_g, k_total, positions))
    return xp.permute_dims(cols, (1, 2, 3, 0, 4))


def block_taps(k: int, s: int, d: int) -> list[tuple[int, slice, slice]]:
    """Group one axis's taps by the stride block they paint: tap ``t`` lands at ``t*d = m*s + r``.

    Returns ``(m, taps, residues)`` per block offset ``m``: the taps are consecutive and their
    residues ``r`` step by ``d``, so both are slices and a whole group is one strided add.
    """
    groups: dict[int, list[tuple[int, int]]] = {}
    for t in range(k):
        m, r = divmod(t * d, s)
        groups.setdefault(m, []).append((t, r))
    return [(m, slice(ts[0][0], ts[-1][0] + 1), slice(ts[0][1], ts[-1][1] + 1, d))
            for m, ts in groups.items()]


def tiles_output_once(geo: Geometry) -> bool:
    """True when every output element receives exactly one tap (``k == s``, ``d == 1``, no op)."""
    return all(k == s and d == 1 and op == 0 for k, s, d, op in zip(
        geo.kernel, geo.stride, geo.dilation, geo.output_padding, strict=True))


def conv_transpose(x: Any, weight: Any, geo: Geometry) -> Any:
    xp = backend.namespace(x, weight)
    n, g, c_out_g, nd = int(x.shape[0]), geo.groups, int(weight.shape[1]), geo.ndim
    spatial = spatial_of(x)
    cols = xp.reshape(all_taps_gemm(x, weight, g), (g, c_out_g) + geo.kernel + (n,) + spatial)
    # The canvas, blocked: axis (i, s) -> (blocks q, residue r) with position q*s + r.
    blocks = tuple(i - 1 + -(-(d * (k - 1) + 1 + op) // s) for i, k, s, d, op in zip(
        spatial, geo.kernel, geo.stride, geo.dilation, geo.output_padding, strict=True))
    blocked = tuple(v for q, s in zip(blocks, geo.stride, strict=True) for v in (q, s))
    once = tiles_output_once(geo)
    new = xp.empty if once else xp.zeros
    canvas = new((n, g, c_out_g) + blocked, dtype=x.dtype,
                 device=backend.array_api_compat.device(x))
    # src axes (g, c, k_1..k_D, n, i_1..i_D) -> (n, g, c, i_1, k_1, i_2, k_2, ...)
    order = (2 + nd, 0, 1) + tuple(v for a in range(nd) for v in (3 + nd + a, 2 + a))
    per_axis = [block_taps(k, s, d) for k, s, d in zip(geo.kernel, geo.stride, geo.dilation,
                                                       strict=True)]
    for combo in itertools.product(*per_axis):
        src = xp.permute_dims(cols[(slice(None), slice(None)) + tuple(t for _, t, _ in combo)],
                              order)
        target = canvas[(Ellipsis,) + tuple(v for (m, _, r), i in zip(combo, spatial, strict=True)
                                            for v in (slice(m, m + i), r))]
        if once:
            target[...] = src
        else:
            target += src
    canvas = xp.reshape(canvas, (n, g * c_out_g) + tuple(
        q * s for q, s in zip(blocks, geo.stride, strict=True)))
    out = output_shape(spatial, geo)
    return canvas[(Ellipsis,) + tuple(slice(p, p + o) for p, o in zip(geo.padding, out,
                                                                      strict=True))]
