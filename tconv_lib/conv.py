r"""Forward convolution (cross-correlation), the partner of every transposed convolution.

Same conventions as ``torch.nn.functional.conv{1,2,3}d``:

.. math::
    y[n, c_o, \mathbf{j}] = b[c_o] + \sum_{c_i \in g(c_o)} \sum_{\mathbf{t}}
        w[c_o, c_i, \mathbf{t}]\; x_{\text{pad}}[n, c_i, \mathbf{j} s + \mathbf{t} d]

Shapes:
    - input: ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``
    - weight: ``(C_out, C_in/groups, *kernel)``
    - bias: ``(C_out,)`` or ``None``
    - output: ``(N, C_out, *out)`` with ``out = floor((i + 2p - d(k-1) - 1)/s) + 1`` per axis
"""

from __future__ import annotations

import itertools
from typing import Any

from . import backend
from ._args import Geometry, IntOrTuple, check_conv


def conv(input: Any, weight: Any, bias: Any = None, stride: IntOrTuple = 1,
         padding: IntOrTuple = 0, dilation: IntOrTuple = 1, groups: int = 1) -> Any:
    """Forward convolution; see the module docstring for the formula and shapes."""
    x, geo, batched = check_conv(input, weight, bias, stride, padding, dilation, groups)
    y = conv_core(x, weight, geo)
    if bias is not None:
        y = y + backend.namespace(y).reshape(bias, (1, -1) + (1,) * geo.ndim)
    return y if batched else y[0]


def conv_core(x: Any, weight: Any, geo: Geometry) -> Any:
    """Validated, batched forward convolution without bias: one matmul per kernel tap."""
    xp = backend.namespace(x, weight)
    n, g = int(x.shape[0]), geo.groups
    c_out, c_in_g = int(weight.shape[0]), int(weight.shape[1])
    spatial = tuple(int(v) for v in x.shape[2:])
    out = tuple((i + 2 * p - d * (k - 1) - 1) // s + 1 for i, k, s, p, d in zip(
        spatial, geo.kernel, geo.stride, geo.padding, geo.dilation, strict=True))
    xpad = backend.crop_or_pad(x, tuple(-p for p in geo.padding),
                               tuple(i + 2 * p for i, p in zip(spatial, geo.padding, strict=True)))
    w = xp.reshape(weight, (g, c_out // g, c_in_g, -1))
    acc = None
    for flat, tap in enumerate(itertools.product(*(range(k) for k in geo.kernel))):
        start = tuple(t * d for t, d in zip(tap, geo.dilation, strict=True))
        patch = backend.group_view(xpad[backend.tap_slices(start, out, geo.stride)], g)
        term = xp.matmul(w[None, :, :, :, flat], patch)          # (N, g, C_out/g, P)
        acc = term if acc is None else acc + term
    return xp.reshape(acc, (n, c_out) + out)
