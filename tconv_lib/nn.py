"""Drop-in replacements for ``torch.nn.ConvTranspose{1,2,3}d`` backed by tconv_lib.

The forward pass is :func:`tconv_lib.conv_transpose`; the backward pass is written with
tconv_lib's own operations (:mod:`tconv_lib.gradients`):

- grad_input  = ``conv(grad_out, w, stride, padding, dilation, groups)``
- grad_weight = the correlation of ``grad_out`` (as input) with ``x`` (as output gradient)
- grad_bias   = ``grad_out`` summed over batch and space

Because the backward is made of differentiable torch operations, second derivatives work too
(``torch.autograd.gradgradcheck`` passes in float64).
"""

from __future__ import annotations

from typing import Any

import torch

from . import gradients
from .transpose import conv_transpose


class ConvTransposeFunction(torch.autograd.Function):
    """Batched transposed convolution with tconv_lib's forward and backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: tuple[int, ...], padding: tuple[int, ...],
                output_padding: tuple[int, ...], groups: int, dilation: tuple[int, ...],
                method: str = "auto") -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None
        return conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation,
                              method=method)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.geometry
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = gradients.conv_transpose_input_grad(
                grad_out, weight, tuple(x.shape[2:]), stride, padding, dilation, groups)
        if ctx.needs_input_grad[1]:
            grad_w = gradients.conv_transpose_weight_grad(
                x, grad_out, tuple(weight.shape[2:]), stride, padding, dilation, groups)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = gradients.bias_grad(grad_out)
        return grad_x, grad_w, grad_b, None, None, None, None, None, None


def conv_transpose_autograd(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                            stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                            groups: int = 1, dilation: Any = 1, method: str = "auto"
                            ) -> torch.Tensor:
    """:func:`tconv_lib.conv_transpose` with tconv_lib's own backward pass."""
    from ._args import check_transpose

    xb, geo, batched = check_transpose(x, weight, bias, stride, padding, output_padding, groups,
                                       dilation)
    y = ConvTransposeFunction.apply(xb, weight, bias, geo.stride, geo.padding,
                                    geo.output_padding, geo.groups, geo.dilation, method)
    return y if batched else y[0]


class _TconvMixin:
    """Replaces ``forward`` of a ``torch.nn.ConvTranspose*d`` with tconv_lib's function."""

    method: str = "auto"

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if self.padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros' for transposed convolution, got "
                             f"padding_mode={self.padding_mode!r}")
        nsp = len(self.kernel_size)
        output_padding = self._output_padding(input, output_size, self.stride, self.padding,
                                              self.kernel_size, nsp, self.dilation)
        return conv_transpose_autograd(input, self.weight, self.bias, self.stride, self.padding,
                                       tuple(output_padding), self.groups, self.dilation,
                                       self.method)


class ConvTranspose1d(_TconvMixin, torch.nn.ConvTranspose1d):
    """``torch.nn.ConvTranspose1d`` computed by tconv_lib (same arguments and state_dict)."""


class ConvTranspose2d(_TconvMixin, torch.nn.ConvTranspose2d):
    """``torch.nn.ConvTranspose2d`` computed by tconv_lib (same arguments and state_dict)."""


class ConvTranspose3d(_TconvMixin, torch.nn.ConvTranspose3d):
    """``torch.nn.ConvTranspose3d`` computed by tconv_lib (same arguments and state_dict)."""
