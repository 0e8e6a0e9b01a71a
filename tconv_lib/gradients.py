r"""Gradients of convolution and transposed convolution, computed with tconv_lib itself.

For a convolution :math:`y = \operatorname{conv}(x, w)` with loss :math:`L`:

.. math::
    \frac{\partial L}{\partial x} = C^{\mathsf T} \frac{\partial L}{\partial y}
        = \operatorname{conv\_transpose}\Big(\frac{\partial L}{\partial y}, w\Big),
    \qquad
    \frac{\partial L}{\partial w[c_o, c_i, \mathbf{t}]} = \sum_{n, \mathbf{j}}
        \frac{\partial L}{\partial y[n, c_o, \mathbf{j}]}\;
        x_{\text{pad}}[n, c_i, \mathbf{j}s + \mathbf{t}d]

The weight gradient is a correlation of the input with the output gradient. For a transposed
convolution the roles swap: its input gradient is a convolution, and its weight gradient is the
same correlation with input and output gradient exchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from . import backend
from ._args import IntOrTuple, as_tuple
from .conv import conv
from .transpose import conv_transpose


def _spatial(x: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in x.shape[2:])


def conv_input_grad(grad_output: Any, weight: Any, input_size: Sequence[int],
                    stride: IntOrTuple = 1, padding: IntOrTuple = 0, dilation: IntOrTuple = 1,
                    groups: int = 1) -> Any:
    """dL/dx of ``conv``: a transposed convolution of the output gradient with the same weight.

    ``output_padding`` is chosen so the result has the forward input's ``input_size``.
    """
    nsp = weight.ndim - 2
    k = tuple(int(v) for v in weight.shape[2:])
    s, p, d = (as_tuple(n, v, nsp) for n, v in
               (("stride", stride), ("padding", padding), ("dilation", dilation)))
    op = tuple((i + 2 * pp - dd * (kk - 1) - 1) % ss for i, kk, ss, pp, dd in zip(
        input_size, k, s, p, d, strict=True))
    return conv_transpose(grad_output, weight, None, s, p, op, groups, d)


def conv_weight_grad(input: Any, grad_output: Any, kernel_size: Sequence[int],
                     stride: IntOrTuple = 1, padding: IntOrTuple = 0, dilation: IntOrTuple = 1,
                     groups: int = 1) -> Any:
    """dL/dw of ``conv``, shape ``(C_out, C_in/groups, *kernel)``: one matmul per kernel tap."""
    xp = backend.namespace(input, grad_output)
    nsp = input.ndim - 2
    s, p, d = (as_tuple(n, v, nsp) for n, v in
               (("stride", stride), ("padding", padding), ("dilation", dilation)))
    kernel = tuple(kernel_size)
    out = _spatial(grad_output)
    xpad = backend.crop_or_pad(input, tuple(-q for q in p),
                               tuple(i + 2 * q for i, q in zip(_spatial(input), p, strict=True)))
    g_out = backend.group_view(grad_output, groups)                  # (N, g, C_out/g, P)
    taps = []
    for tap in itertools.product(*(range(k) for k in kernel)):
        start = tuple(t * dd for t, dd in zip(tap, d, strict=True))
        patch = backend.group_view(xpad[backend.tap_slices(start, out, s)], groups)
        taps.append(xp.sum(xp.matmul(g_out, xp.permute_dims(patch, (0, 1, 3, 2))), axis=0))
    grad = xp.stack(taps, axis=-1)                                   # (g, C_out/g, C_in/g, K)
    c_out = int(grad_output.shape[1])
    return xp.reshape(grad, (c_out, int(input.shape[1]) // groups) + kernel)


def conv_transpose_input_grad(grad_output: Any, weight: Any, input_size: Sequence[int],
                              stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                              dilation: IntOrTuple = 1, groups: int = 1) -> Any:
    """dL/dx of ``conv_transpose``: a forward convolution of the output gradient."""
    g = conv(grad_output, weight, None, stride, padding, dilation, groups)
    return g[(Ellipsis,) + tuple(slice(0, i) for i in input_size)]


def conv_transpose_weight_grad(input: Any, grad_output: Any, kernel_size: Sequence[int],
                               stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                               dilation: IntOrTuple = 1, groups: int = 1) -> Any:
    """dL/dw of ``conv_transpose``, shape ``(C_in, C_out/groups, *kernel)``.

    ``conv_transpose(x, w)`` is the adjoint of ``conv(., w)``, so
    :math:`\\langle g, C_w^{\\mathsf T} x\\rangle = \\langle C_w g, x\\rangle`: the weight gradient
    is :func:`conv_weight_grad` with the output gradient as the input and ``x`` as the gradient.
    """
    return conv_weight_grad(grad_output, input, kernel_size, stride, padding, dilation, groups)


def bias_grad(grad_output: Any) -> Any:
    """dL/db: the output gradient summed over the batch and every spatial position."""
    xp = backend.namespace(grad_output)
    return xp.sum(grad_output, axis=(0,) + tuple(range(2, grad_output.ndim)))


__all__ = ["bias_grad", "conv_input_grad", "conv_transpose_input_grad",
           "conv_transpose_weight_grad", "conv_weight_grad"]
