r"""Transposed convolution as one GEMM followed by a col2im scatter-add.

The GEMM :math:`\text{cols} = W^{\mathsf T} X` multiplies the weight, viewed as a
:math:`(C_{in}/g) \times (C_{out}/g \cdot \prod k)` matrix per group, with the input viewed as
:math:`(C_{in}/g) \times (N \prod i)`. Column :math:`j` of ``cols`` holds the scaled kernel that
input position :math:`j` paints; ``col2im`` adds each of them into the output canvas at stride
offsets, then ``padding`` is cropped. This is how cuDNN-free frameworks implement it (it is the
backward-data pass of an im2col convolution). The column buffer holds
:math:`\prod k \cdot C_{out} \cdot N \prod i` values.
"""

from __future__ import annotations

import itertools
from typing import Any

from .. import backend
from .._args import Geometry
from ._canvas import canvas_shape, crop, spatial_of


def conv_transpose(x: Any, weight: Any, geo: Geometry) -> Any:
    xp = backend.namespace(x, weight)
    n, g = int(x.shape[0]), geo.groups
    c_in, c_out_g = int(weight.shape[0]), int(weight.shape[1])
    spatial = spatial_of(x)
    k_total = len(list(itertools.product(*(range(k) for k in geo.kernel))))
    w_t = xp.permute_dims(xp.reshape(weight, (g, c_in // g, c_out_g * k_total)), (0, 2, 1))
    cols = xp.matmul(w_t[None], backend.group_view(x, g))       # (N, g, C_out/g * K, P)
    cols = xp.reshape(cols, (n, g, c_out_g, k_total) + spatial)
    canvas = backend.zeros(xp, x, (n, c_out_g * g) + canvas_shape(spatial, geo))
    for flat, tap in enumerate(itertools.product(*(range(k) for k in geo.kernel))):
        start = tuple(t * d for t, d in zip(tap, geo.dilation, strict=True))
        canvas[backend.tap_slices(start, spatial, geo.stride)] += xp.reshape(
            cols[:, :, :, flat], (n, c_out_g * g) + spatial)
    return crop(canvas, spatial, geo)
