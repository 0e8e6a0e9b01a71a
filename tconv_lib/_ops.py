"""tconv_lib's transposed convolution as PyTorch custom operators, for ``torch.compile``,
``torch.export`` and ``torch.jit.script``.

The compilers cannot see through :class:`tconv_lib.nn.ConvTransposeFunction` (its ``jvp`` rule
is a graph break, its Python methods would be traced op by op). Registered with
``torch.library.custom_op``, each operation is one opaque node of known output shape (a
``register_fake`` rule) and known gradient (``register_autograd``):

- ``torch.ops.tconv.conv_transpose``: the forward, :func:`tconv_lib.conv_transpose`;
- ``torch.ops.tconv.conv_transpose_input_grad`` and ``conv_transpose_weight_grad``: its
  backward, :mod:`tconv_lib.gradients`.

Each one's gradient is made of the three, so they are differentiable any number of times.
Importing :mod:`tconv_lib.nn` registers them, as loading a saved ``torch.export`` program or
TorchScript module that holds them requires.
Eager calls of the modules keep the ``autograd.Function``, whose ``jvp`` and ``vmap`` rules
``torch.func`` needs; :func:`conv_transpose` is the route the modules take while compiling.
"""

from collections.abc import Sequence
from typing import Any

import torch

from . import _args, backend, gradients, transpose


@torch.library.custom_op("tconv::conv_transpose", mutates_args=())
def conv_transpose_op(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                      stride: Sequence[int], padding: Sequence[int],
                      output_padding: Sequence[int], groups: int, dilation: Sequence[int],
                      method: str) -> torch.Tensor:
    """:func:`tconv_lib.conv_transpose`, one int per spatial axis."""
    return transpose.conv_transpose(input, weight, bias, tuple(stride), tuple(padding),
                                    tuple(output_padding), groups, tuple(dilation),
                                    method=method)


@torch.library.custom_op("tconv::conv_transpose_input_grad", mutates_args=())
def input_grad_op(grad_output: torch.Tensor, weight: torch.Tensor, input_size: Sequence[int],
                  stride: Sequence[int], padding: Sequence[int], groups: int,
                  dilation: Sequence[int]) -> torch.Tensor:
    """:func:`tconv_lib.gradients.conv_transpose_input_grad`, laid out as the fake says."""
    g = gradients.conv_transpose_input_grad(grad_output, weight, tuple(input_size),
                                            tuple(stride), tuple(padding), tuple(dilation),
                                            groups)
    return g.contiguous(memory_format=backend.memory_format(grad_output, weight))


@torch.library.custom_op("tconv::conv_transpose_weight_grad", mutates_args=())
def weight_grad_op(input: torch.Tensor, grad_output: torch.Tensor, kernel_size: Sequence[int],
                   stride: Sequence[int], padding: Sequence[int], groups: int,
                   dilation: Sequence[int]) -> torch.Tensor:
    """:func:`tconv_lib.gradients.conv_transpose_weight_grad`, laid out as the fake says."""
    g = gradients.conv_transpose_weight_grad(input, grad_output, tuple(kernel_size),
                                             tuple(stride), tuple(padding), tuple(dilation),
                                             groups)
    return g.contiguous(memory_format=backend.memory_format(input, grad_output))


def _hints(a: torch.Tensor | None) -> tuple[int, ...] | None:
    """``a``'s shape in ints: a symbolic size by its example value, read without installing a
    guard (``None`` for a size without one, a data-dependent size)."""
    if a is None:
        return None
    sizes = tuple(v if isinstance(v, int) else v.node.hint for v in a.shape)
    return None if None in sizes else sizes


def _empty(shape: Sequence[Any], like: torch.Tensor, *layout: torch.Tensor) -> torch.Tensor:
    """What the operators return: a fresh tensor in the memory format ``layout`` gives."""
    fmt = backend.memory_format(*layout)
    return torch.empty(tuple(shape), dtype=like.dtype, device=like.device, memory_format=fmt)


@conv_transpose_op.register_fake
def _(input, weight, bias, stride, padding, output_padding, groups, dilation, method):
    """Checks the call as :func:`tconv_lib.conv_transpose` does (on the example sizes, so a bad
    call fails while compiling, with tconv_lib's message) and gives the output's shape."""
    backend.check_same_kind(input=input, weight=weight, bias=bias)
    backend.check_float_dtypes(input=input, weight=weight, bias=bias)
    if method != "auto" and method not in transpose.METHODS:
        raise ValueError(f"method must be 'auto' or one of {', '.join(transpose.METHODS)}, "
                         f"got method={method!r}")
    shapes = [_hints(a) for a in (input, weight, bias)]
    if None not in shapes[:2] and (bias is None or shapes[2] is not None):
        _args._transpose_rules(*shapes, stride, padding, output_padding, groups, dilation)
    batched = input.dim() == weight.dim()
    x = input if batched else input.unsqueeze(0)
    out = [(i - 1) * s - 2 * p + d * (k - 1) + op + 1 for i, k, s, p, op, d in zip(
        x.shape[2:], weight.shape[2:], stride, padding, output_padding, dilation, strict=True)]
    y = _empty([x.shape[0], weight.shape[1] * groups, *out], x, x, weight)
    return y if batched else y[0]


@input_grad_op.register_fake
def _(grad_output, weight, input_size, stride, padding, groups, dilation):
    return _empty([grad_output.shape[0], weight.shape[0], *input_size], grad_output,
                  grad_output, weight)


@weight_grad_op.register_fake
def _(input, grad_output, kernel_size, stride, padding, groups, dilation):
    return _empty([input.shape[1], grad_output.shape[1] // groups, *kernel_size], input,
                  input, grad_output)


def _output_padding(x: torch.Tensor, weight: torch.Tensor, like: torch.Tensor,
                    stride: Sequence[int], padding: Sequence[int],
                    dilation: Sequence[int]) -> list[Any]:
    """The ``output_padding`` that makes the transposed convolution of ``x`` as large as
    ``like`` (a gradient's own shape, in the gradients of the gradients)."""
    return [o - ((i - 1) * s - 2 * p + d * (k - 1) + 1) for o, i, k, s, p, d in zip(
        like.shape[2:], x.shape[2:], weight.shape[2:], stride, padding, dilation, strict=True)]


def _save(ctx: Any, tensors: tuple[Any, ...], geometry: tuple[Any, ...]) -> None:
    ctx.save_for_backward(*tensors)
    ctx.stride, ctx.padding, ctx.groups, ctx.dilation = geometry


def _forward_context(ctx, inputs, output):
    input, weight, bias, stride, padding, _, groups, dilation, _ = inputs
    _save(ctx, (input, weight), (stride, padding, groups, dilation))
    ctx.has_bias = bias is not None


def _forward_backward(ctx, grad):
    """y = T(x, w) + b: dx = C(g, w), dw = W(x, g), db = g summed (tconv_lib.gradients)."""
    x, weight = ctx.saved_tensors
    geo = (ctx.stride, ctx.padding, ctx.groups, ctx.dilation)
    unbatched = x.dim() == weight.dim() - 1
    if unbatched:
        x, grad = x.unsqueeze(0), grad.unsqueeze(0)
    gx = gw = gb = None
    if ctx.needs_input_grad[0]:
        gx = input_grad_op(grad, weight, x.shape[2:], *geo)
        gx = gx.squeeze(0) if unbatched else gx
    if ctx.needs_input_grad[1]:
        gw = weight_grad_op(x, grad, weight.shape[2:], *geo)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        gb = gradients.bias_grad(grad)
    return gx, gw, gb, None, None, None, None, None, None


def _input_grad_context(ctx, inputs, output):
    grad_output, weight, _, stride, padding, groups, dilation = inputs
    _save(ctx, (grad_output, weight), (stride, padding, groups, dilation))


def _input_grad_backward(ctx, h):
    """gx = C(g, w) is linear in g and in w: dg = T(h, w), dw = W(h, g)."""
    g, weight = ctx.saved_tensors
    stride, padding, groups, dilation = geo = (ctx.stride, ctx.padding, ctx.groups,
                                               ctx.dilation)
    dg = dw = None
    if ctx.needs_input_grad[0]:
        op = _output_padding(h, weight, g, stride, padding, dilation)
        dg = conv_transpose_op(h, weight, None, stride, padding, op, groups, dilation, "auto")
    if ctx.needs_input_grad[1]:
        dw = weight_grad_op(h, g, weight.shape[2:], *geo)
    return dg, dw, None, None, None, None, None


def _weight_grad_context(ctx, inputs, output):
    input, grad_output, _, stride, padding, groups, dilation = inputs
    _save(ctx, (input, grad_output), (stride, padding, groups, dilation))


def _weight_grad_backward(ctx, h):
    """gw = W(x, g) is linear in x and in g: dx = C(g, h), dg = T(x, h)."""
    x, g = ctx.saved_tensors
    stride, padding, groups, dilation = geo = (ctx.stride, ctx.padding, ctx.groups,
                                               ctx.dilation)
    dx = dg = None
    if ctx.needs_input_grad[0]:
        dx = input_grad_op(g, h, x.shape[2:], *geo)
    if ctx.needs_input_grad[1]:
        op = _output_padding(x, h, g, stride, padding, dilation)
        dg = conv_transpose_op(x, h, None, stride, padding, op, groups, dilation, "auto")
    return dx, dg, None, None, None, None, None


conv_transpose_op.register_autograd(_forward_backward, setup_context=_forward_context)
input_grad_op.register_autograd(_input_grad_backward, setup_context=_input_grad_context)
weight_grad_op.register_autograd(_weight_grad_backward, setup_context=_weight_grad_context)


def untransformed() -> bool:
    """Outside ``torch.func`` transforms and forward-mode AD, which the operators do not take
    (the modules' ``autograd.Function`` has their rules). While compiling inside a transform,
    asking is a graph break, after which the Function runs eagerly."""
    return (torch.autograd.forward_ad._current_level < 0
            and torch._C._functorch.maybe_current_level() is None)


def conv_transpose(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   stride: Any, padding: Any, output_padding: Any, groups: Any, dilation: Any,
                   method: str) -> torch.Tensor:
    """:func:`tconv_lib.nn.conv_transpose_autograd` as ``torch.compile`` and ``torch.export``
    trace it: autocast's casts, then one ``tconv::conv_transpose`` node."""
    device = x.device.type
    if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        x, weight, bias = (t.to(dtype) if t is not None and t.dtype != torch.float64 else t
                           for t in (x, weight, bias))
    nsp = weight.dim() - 2
    stride, padding, output_padding, dilation = (
        list(_args.as_tuple(name, value, nsp)) for name, value in (
            ("stride", stride), ("padding", padding), ("output_padding", output_padding),
            ("dilation", dilation)))
    return conv_transpose_op(x, weight, bias, stride, padding, output_padding,
                             _args.as_int("groups", groups), dilation, method)
