r"""Transposed convolution as an ordinary convolution on a zero-inserted input.

1. insert :math:`s-1` zeros between neighbouring input elements (size :math:`(i-1)s+1`);
2. pad each side by :math:`d(k-1)-p` (a negative amount crops), and the far side by a further
   ``output_padding``;
3. convolve with stride 1 and dilation :math:`d`, using the kernel **flipped** along every
   spatial axis with its input and output channels **swapped** (per group).

This view explains the name "fractionally strided convolution": the zeros make the step between
input elements :math:`1/s`. It wastes work: a fraction :math:`1 - 1/s^{D}` of the multiplies hit
inserted zeros. Those multiplies also reach the values: with an infinite weight, ``0 * inf``
puts NaN where the other methods (and PyTorch) give ``inf`` or a finite value.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from .._args import Geometry
from ..conv import conv_core
from ._canvas import spatial_of


def flip_swap_kernel(weight: Any, groups: int) -> Any:
    """(C_in, C_out/g, *k) transposed-conv weight -> (C_out, C_in/g, *k)
    conv weight, flipped."""
    xp = backend.namespace(weight)
    c_in, c_out_g = int(weight.shape[0]), int(weight.shape[1])
    kernel = tuple(int(k) for k in weight.shape[2:])
    w = xp.reshape(weight, (groups, c_in // groups, c_out_g) + kernel)
    w = xp.permute_dims(w, (0, 2, 1) + tuple(range(3, 3 + len(kernel))))
    w = xp.reshape(w, (groups * c_out_g, c_in // groups) + kernel)
    return xp.flip(w, axis=tuple(range(2, 2 + len(kernel))))


def insert_zeros(x: Any, stride: tuple[int, ...]) -> Any:
    """Put ``s-1`` zeros between neighbouring elements along each spatial axis."""
    xp = backend.namespace(x)
    spatial = spatial_of(x)
    up = backend.zeros(xp, x, tuple(x.shape[:2]) + tuple((i - 1) * s + 1 for i, s in zip(
        spatial, stride, strict=True)))
    up[backend.tap_slices((0,) * len(spatial), spatial, stride)] = x
    return up


def conv_transpose(x: Any, weight: Any, geo: Geometry) -> Any:
    up = insert_zeros(x, geo.stride)
    pad = tuple(d * (k - 1) - p for k, d, p
                in zip(geo.kernel, geo.dilation, geo.padding, strict=True))
    size = tuple(u + 2 * q + op for u, q, op
                 in zip(spatial_of(up), pad, geo.output_padding,
                        strict=True))
    padded = backend.crop_or_pad(up, tuple(-q for q in pad), size)
    unit = Geometry(stride=(1,) * geo.ndim, padding=(0,) * geo.ndim,
                    output_padding=(0,) * geo.ndim, dilation=geo.dilation,
                    groups=geo.groups, kernel=geo.kernel)
    return conv_core(padded, flip_swap_kernel(weight, geo.groups), unit)
