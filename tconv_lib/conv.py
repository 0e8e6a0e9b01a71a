r"""Forward convolution (cross-correlation), the partner of every transposed convolution.

:func:`conv` has the semantics of ``torch.nn.functional.conv{1,2,3}d`` (zero padding) for any
number of spatial dimensions; :func:`tconv_lib.conv_transpose` is its transpose.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

from . import _small, backend, shapes
from ._args import Geometry, IntOrTuple, check_conv


def empty_batch(like: Any, shape: tuple[int, ...], *sources: Any) -> Any:
    """Zeros of ``shape`` (with ``like``'s kind, dtype and device) for a call on an empty batch.

    When autograd records a gradient for one of the torch ``sources``, the result is joined to
    them by adding each one's sum times zero, so that ``backward`` reaches them with zero
    gradients as it does through PyTorch's own operations. Either the result or the source is
    empty, so no infinity in a source can make a NaN in a value.
    """
    y = backend.zeros(backend.namespace(like), like, shape)
    if backend.records_grad(*sources):
        for s in sources:
            if s is not None and s.requires_grad:
                y = y + s.sum() * 0
    return y


def conv(input: Any, weight: Any, bias: Any = None, stride: IntOrTuple = 1,
         padding: IntOrTuple = 0, dilation: IntOrTuple = 1, groups: int = 1) -> Any:
    r"""Applies a convolution (cross-correlation) over an input of several input planes,
    with any number :math:`D \ge 1` of spatial dimensions (``torch.nn.functional.conv{1,2,3}d``).

    .. math::
        y[n, c_o, \mathbf{j}] = b[c_o] + \sum_{c_i \in g(c_o)} \sum_{\mathbf{t}}
            w[c_o, c_i \bmod (C_{in}/g), \mathbf{t}]\;
            x_{\text{pad}}[n, c_i, \mathbf{j} s + \mathbf{t} d]

    where :math:`x_{\text{pad}}` is the input with ``padding`` zeros on both sides of every
    spatial axis and :math:`g(c_o)` are the input channels of :math:`c_o`'s group.

    Shape:
        - input: :math:`(N, C_{in}, i_1, \ldots, i_D)` or unbatched :math:`(C_{in}, i_1, \ldots,
          i_D)`
        - weight: :math:`(C_{out}, C_{in}/\text{groups}, k_1, \ldots, k_D)`
        - bias: :math:`(C_{out})` or ``None``
        - output: :math:`(N, C_{out}, o_1, \ldots, o_D)` (unbatched: :math:`(C_{out}, \ldots)`)
          where, per axis,

          .. math:: o = \left\lfloor \frac{i + 2p - d(k-1) - 1}{s} \right\rfloor + 1

    Args:
        input (NumPy array or torch tensor): the input, of a floating dtype.
        weight (same kind, device and dtype as ``input``): the kernels.
        bias (same kind, device and dtype, optional): added to every output channel.
            Default: ``None``
        stride (int or tuple, optional): step between kernel positions, one int per spatial
            dimension or one for all. Default: 1
        padding (int or tuple, optional): zeros added to both sides of each spatial
            dimension. Default: 0
        dilation (int or tuple, optional): spacing between kernel taps. Default: 1
        groups (int, optional): splits the channels into independent groups; both ``C_in``
            and ``C_out`` are divided by it. Default: 1

    Note the argument order, PyTorch's: ``dilation`` comes before ``groups`` here, after it
    in :func:`tconv_lib.conv_transpose`. Inside ``torch.autocast`` the torch arrays other than
    float64 are first cast to its dtype, as PyTorch casts them.

    Returns:
        The output, of the same kind, device and dtype as ``input``; channels-last when a torch
        input or weight is, as PyTorch's is.

    Raises:
        TypeError: as :func:`tconv_lib.conv_transpose` (array kinds and layouts, dtypes,
            non-int arguments).
        ValueError: a shape or argument breaks a rule (stride, dilation or groups below 1,
            negative padding, channels that do not match the weight or are not divisible by
            ``groups``, a bias of the wrong shape, too few or too many dims, an empty input,
            a kernel larger than the padded input); the message names the argument, the rule
            and the value.

    Examples:
        >>> import numpy as np
        >>> from tconv_lib import conv
        >>> conv(np.array([[[1., 2., 3., 4., 5.]]]), np.array([[[1., 0., -1.]]]), stride=2)
        array([[[-2., -2.]]])
        >>> conv(np.ones((1, 4, 8, 8)), np.ones((6, 2, 3, 3)), padding=1, groups=2).shape
        (1, 6, 8, 8)
    """
    y = _small.conv_auto(input, weight, bias, (stride, padding, dilation, groups))
    if y is not None:         # a tiny CPU call seen before: its kept plan (tconv_lib._small)
        return y
    input, weight, bias = backend.autocast(input, weight, bias)
    x, geo, batched = check_conv(input, weight, bias, stride, padding, dilation, groups)
    if int(x.shape[0]) == 0:                      # an empty batch, as PyTorch allows
        out = shapes.conv_output_shape(tuple(int(v) for v in x.shape[2:]), geo.kernel,
                                       geo.stride, geo.padding, geo.dilation)
        y = empty_batch(x, (0, int(weight.shape[0])) + out, x, weight)
        if bias is not None:
            y = y + backend.namespace(y).reshape(bias, (1, -1) + (1,) * geo.ndim)
    else:       # a half-precision CPU problem is summed in float32 (bfloat16: unless 1 tap)
        core, spatial = conv_core, tuple(int(v) for v in x.shape[2:])
        out = _output(spatial, geo)
        if _small.applies(int(x.shape[0]) * int(x.shape[1]), spatial, out, geo, x):
            core = functools.partial(_small.conv, out=out)   # the patches' product, one matmul
        y = backend.summed_with_bias(lambda a, b: core(a, b, geo), x, weight, bias,
                                     lambda: any(k > 1 for k in geo.kernel))
    y = backend.in_memory_format(y, backend.memory_format(x, weight))
    return y if batched else y[0]


def _output(spatial: tuple[int, ...], geo: Geometry) -> tuple[int, ...]:
    """The convolution's output size, ``(i + 2p - d(k-1) - 1) // s + 1`` per axis."""
    return tuple((i + 2 * p - d * (k - 1) - 1) // s + 1 for i, k, s, p, d in zip(
        spatial, geo.kernel, geo.stride, geo.padding, geo.dilation, strict=True))


def conv_core(x: Any, weight: Any, geo: Geometry) -> Any:
    """Validated, batched forward convolution without bias: one matmul per kernel tap."""
    xp = backend.namespace(x, weight)
    n, g = int(x.shape[0]), geo.groups
    c_out, c_in_g = int(weight.shape[0]), int(weight.shape[1])
    spatial = tuple(int(v) for v in x.shape[2:])
    out = _output(spatial, geo)
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
