r"""Transposed convolution by its polyphase (sub-pixel) decomposition.

Output positions of the uncropped canvas split into :math:`s^D` *phases* by their remainder
:math:`r` modulo the stride. Along one axis, canvas position :math:`qs + r` only receives the
taps :math:`t` with :math:`td \equiv r \pmod{s}`, so each phase is a **stride-1** transposed
convolution of the low-resolution input with the sub-kernel of those taps (``w[..., r::s]``
when :math:`d = 1`). Interleaving the phases (depth-to-space) rebuilds the output.

No multiply touches an inserted zero. When :math:`k = s` (and :math:`d = 1`) every phase has a
single tap, so the whole operation is one :math:`1\times1` convolution to :math:`s^D C_{out}`
channels, i.e. **one GEMM**, followed by a pixel shuffle (Shi et al., 2016):
:func:`one_gemm_and_shuffle`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from .. import backend
from .._args import Geometry
from ..conv import conv_core
from ._canvas import canvas_shape, crop, spatial_of
from .zero_insert import flip_swap_kernel


def axis_phases(k: int, s: int, d: int) -> list[tuple[int, list[int], int]]:
    """For each residue ``r`` with taps: ``(r, taps, first_offset)`` along
    one axis.

    ``taps`` are the kernel indices ``t`` with ``t*d = r (mod s)``;
    consecutive taps sit ``d / gcd(s, d)`` low-resolution positions apart,
    and the first one lands at input offset
    ``first_offset = (taps[0]*d - r) // s``.
    """
    phases = []
    for r in range(s):
        taps = [t for t in range(k) if (t * d - r) % s == 0]
        if taps:
            phases.append((r, taps, (taps[0] * d - r) // s))
    return phases


def _sub_transpose(x: Any, sub_w: Any, sub_d: tuple[int, ...], groups: int) -> Any:
    """Stride-1 transposed convolution (full output) with dilation ``sub_d``."""
    kernel = tuple(int(k) for k in sub_w.shape[2:])
    reach = tuple(d * (k - 1) for k, d in zip(kernel, sub_d, strict=True))
    spatial = spatial_of(x)
    padded = backend.crop_or_pad(x, tuple(-r for r in reach),
                                 tuple(i + 2 * r for i, r in zip(spatial, reach, strict=True)))
    geo = Geometry((1,) * len(kernel), (0,) * len(kernel), (0,) * len(kernel), sub_d, groups,
                   kernel)
    return conv_core(padded, flip_swap_kernel(sub_w, groups), geo)


def one_tap_per_phase(geo: Geometry) -> bool:
    """``k == s`` and ``d == 1`` on every axis: each canvas position receives exactly one tap."""
    return all(k == s and d == 1 for k, s, d in zip(geo.kernel, geo.stride, geo.dilation,
                                                    strict=True))


def one_gemm_and_shuffle(x: Any, weight: Any, geo: Geometry) -> Any:
    """``k == s``: a 1x1 convolution to ``s^D * C_out`` channels (one GEMM), then a pixel shuffle.

    Phase ``r`` is the single tap ``w[..., r]``, so the weight viewed per group as
    ``(C_out/g * s^D, C_in/g)`` multiplies every input position at once. Output position
    ``q*s + r`` is then phase ``r`` of input position ``q``.
    """
    xp = backend.namespace(x, weight)
    n, g, nd = int(x.shape[0]), geo.groups, geo.ndim
    c_in, c_out = int(weight.shape[0]), int(weight.shape[1]) * g
    spatial = spatial_of(x)
    w_1x1 = xp.permute_dims(xp.reshape(weight, (g, c_in // g, -1)), (0, 2, 1))
    phases = xp.matmul(w_1x1[None], backend.group_view(x, g))   # (N, g, C_out/g * s^D, P)
    # pixel shuffle: (N, C_out, s_1..s_D, i_1..i_D) -> (N, C_out, i_1, s_1, ..., i_D, s_D)
    phases = xp.reshape(phases, (n, c_out) + geo.stride + spatial)
    order = (0, 1) + tuple(v for a in range(nd) for v in (2 + nd + a, 2 + a))
    canvas = xp.reshape(xp.permute_dims(phases, order),
                        (n, c_out) + tuple(i * s for i, s in zip(spatial, geo.stride,
                                                                 strict=True)))
    return crop(canvas, spatial, geo)           # output_padding reads zeros past the canvas


def conv_transpose(x: Any, weight: Any, geo: Geometry) -> Any:
    if one_tap_per_phase(geo):
        return one_gemm_and_shuffle(x, weight, geo)
    xp = backend.namespace(x, weight)
    n, g = int(x.shape[0]), geo.groups
    spatial = spatial_of(x)
    c_out = int(weight.shape[1]) * g
    canvas = backend.zeros(xp, x, (n, c_out) + canvas_shape(spatial, geo))
    per_axis = [axis_phases(k, s, d) for k, s, d
                in zip(geo.kernel, geo.stride, geo.dilation, strict=True)]
    sub_d = tuple(d // math.gcd(s, d)
                  for s, d in zip(geo.stride, geo.dilation, strict=True))
    device = backend.array_api_compat.device(weight)
    for combo in itertools.product(*per_axis):
        sub_w = weight
        for axis, (_, taps, _) in enumerate(combo):
            idx = xp.asarray(taps, device=device)
            sub_w = xp.take(sub_w, idx, axis=2 + axis)
        phase_out = _sub_transpose(x, sub_w, sub_d, g)
        start = tuple(m * s + r for (r, _, m), s
                      in zip(combo, geo.stride, strict=True))
        where = backend.tap_slices(start, spatial_of(phase_out), geo.stride)
        canvas[where] = phase_out
    return crop(canvas, spatial, geo)
