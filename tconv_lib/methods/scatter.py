r"""Transposed convolution by its definition: scatter ("paint") scaled kernels.

Every input element :math:`x[n, c_i, \mathbf{j}]` multiplies the kernel slice
:math:`w[c_i, :, \ldots]` and adds the copy to the output window that starts at
:math:`\mathbf{j}\,s`; kernel taps land :math:`d` apart. Overlapping copies add up. Finally
``padding`` crops ``p`` entries from each side of this canvas:

.. math::
    y[n, c_o, \mathbf{o}] = \sum_{c_i \in g(c_o)} \sum_{\mathbf{j}, \mathbf{t}\,:\;
        \mathbf{j}s + \mathbf{t}d = \mathbf{o} + p} x[n, c_i, \mathbf{j}]\, w[c_i, c_o, \mathbf{t}]

The loop runs over kernel taps; each step paints that tap of *every* input element at once.
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
    c_out = c_out_g * g
    canvas = backend.zeros(xp, x, (n, c_out) + canvas_shape(spatial, geo))
    # x_g: (N, g, C_in/g, P), w: (g, C_in/g, C_out/g, K)
    x_g = backend.group_view(x, g)
    w = xp.reshape(weight, (g, c_in // g, c_out_g, -1))
    taps = itertools.product(*(range(k) for k in geo.kernel))
    for flat, tap in enumerate(taps):
        # w_tap: (g, C_out/g, C_in/g)
        w_tap = xp.permute_dims(w[:, :, :, flat], (0, 2, 1))
        painted = xp.reshape(xp.matmul(w_tap[None], x_g),
                             (n, c_out) + spatial)
        start = tuple(t * d for t, d in zip(tap, geo.dilation, strict=True))
        canvas[backend.tap_slices(start, spatial, geo.stride)] += painted
    return crop(canvas, spatial, geo)
