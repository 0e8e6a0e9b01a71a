r"""Gradients of convolution and transposed convolution, computed with tconv_lib itself.

For a convolution :math:`y = \operatorname{conv}(x, w)` with loss :math:`L`:

.. math::
    \frac{\partial L}{\partial x} = C^{\mathsf T} \frac{\partial L}{\partial y}
        = \operatorname{conv\_transpose}\Big(\frac{\partial L}{\partial y}, w\Big),
    \qquad
    \frac{\partial L}{\partial w[c_o, c_i, \mathbf{t}]} = \sum_{n, \mathbf{j}}
        \frac{\partial L}{\partial y[n, c_o, \mathbf{j}]}\;
        x_{\text{pad}}[n, c_i, \mathbf{j}s + \mathbf{t}d]

(with ``groups``, :math:`c_i` runs over the input channels of :math:`c_o`'s group). The weight
gradient is a correlation of the input with the output gradient. For a transposed
convolution the roles swap: its input gradient is a convolution, and its weight gradient is the
same correlation with input and output gradient exchanged.

Every function takes ``stride``, ``padding``, ``dilation`` and ``groups`` as the forward call
did (ints or one per spatial axis), NumPy arrays or torch tensors (one kind, one floating
dtype), batched ``(N, C, *spatial)`` or unbatched ``(C, *spatial)`` arrays, and the size the
result must have (``input_size`` or ``kernel_size``). Sizes that no forward call with these
arguments connects are refused with a ``ValueError`` naming them; so are the argument errors
of :func:`tconv_lib.conv_transpose`.

>>> import torch, torch.nn.functional as F
>>> from tconv_lib import gradients
>>> x = torch.randn(2, 4, 9, 8, dtype=torch.float64, requires_grad=True)
>>> w = torch.randn(6, 2, 3, 3, dtype=torch.float64, requires_grad=True)
>>> y = F.conv2d(x, w, stride=2, padding=1, groups=2)
>>> g = torch.randn_like(y)
>>> gx, gw = torch.autograd.grad(y, (x, w), g)
>>> kw = dict(stride=2, padding=1, groups=2)
>>> torch.allclose(gradients.conv_input_grad(g, w.detach(), (9, 8), **kw), gx)
True
>>> torch.allclose(gradients.conv_weight_grad(x.detach(), g, (3, 3), **kw), gw)
True
>>> gradients.conv_input_grad(g, w.detach(), (11, 8), **kw)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: grad_output has spatial size (5, 4), but a convolution of input_size (11, 8) ...
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from . import _small, backend, shapes
from ._args import Geometry, IntOrTuple, _cached, _geometry, as_int, as_tuple, positive_tuple
from .conv import conv, empty_batch
from .transpose import conv_transpose


def _spatial(x: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in x.shape[2:])


def _sizes(name: str, value: Any, nsp: int,
           whole: dict[str, int] | None = None) -> tuple[int, ...]:
    """``input_size``/``kernel_size``: an int, ``nsp`` positive ints, or (like
    ``torch.nn.grad.conv*d_input``) a whole shape, ``(N, C, *spatial)`` or ``(C, *spatial)``.

    ``whole`` names what the leading entries of a whole shape must be, in order (``{"N": 2,
    "C_in": 4}``; ``None``: no whole shape); a whole shape that says otherwise is refused, as
    it describes another call (PyTorch answered one with a gradient of its shape)."""
    if whole is not None and isinstance(value, Sequence) and not isinstance(value, str):
        value, names = tuple(value), list(whole)
        lead = len(value) - nsp
        if 1 <= lead <= len(names):
            expected = tuple(whole.values())[-lead:]
            got = tuple(as_int(name, v) for v in value[:lead])
            if got != expected:
                tail = "*kernel" if name == "kernel_size" else "*spatial"
                form = ", ".join([*names[-lead:], tail])
                rule = ", ".join(f"{n}={v}" for n, v in zip(names[-lead:], expected, strict=True))
                raise ValueError(f"{name} is a whole shape ({form}), but the arrays "
                                 f"give {rule}: got {name}={value!r}")
            value = value[lead:]
    return positive_tuple(name, value, nsp)


def _kinds(named: dict[str, Any], order: str) -> None:
    """Kinds and dtypes of a gradient call's arrays (``order`` names its arguments)."""
    if backend.plainly_compatible(*named.values()):
        return
    for name, a in named.items():
        if isinstance(a, Sequence):                  # a size where an array belongs
            raise TypeError(f"{name} must be a NumPy array or a torch tensor, got the size "
                            f"{a!r}: the arguments are ({order}, ...), not torch.nn.grad's order")
    backend.check_same_kind(**named)
    backend.check_float_dtypes(**named)


def _shape(a: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in a.shape)


def _checked(rules: Any, arrays: dict[str, Any], size_name: str, *args: Any) -> Any:
    """``rules(*shapes of arrays, *args)``, memoised, after the arrays' kinds and dtypes are
    checked (``arrays`` and ``size_name`` name a call's first three arguments, in order)."""
    _kinds(arrays, ", ".join([*arrays, size_name]))
    return _cached(rules, tuple(_shape(a) for a in arrays.values()), args)


def _rules(arrays: dict[str, tuple[int, ...]], w_shape: tuple[int, ...] | None, kernel_size: Any,
           stride: IntOrTuple, padding: IntOrTuple, dilation: IntOrTuple, groups: int
           ) -> tuple[bool, list[tuple[int, ...]], Geometry]:
    """Dims and geometry of a gradient call, on shapes only.

    ``arrays`` are the named shapes of the data arrays (batched or unbatched alike); the kernel
    is the spatial part of ``w_shape`` (a weight's) or ``kernel_size``. Returns whether they
    are batched, their batched shapes and the geometry."""
    if w_shape is not None:
        nsp = len(w_shape) - 2
        if nsp < 1:
            raise ValueError(f"weight must have at least 3 dims, got weight.shape={w_shape}")
        kernel = w_shape[2:]
    else:
        if not isinstance(kernel_size, Sequence):  # one int: (C, H, W) or (N, C, L)?
            raise TypeError(f"kernel_size must be a tuple of one size per spatial dimension "
                            f"(it says how many there are), got kernel_size={kernel_size!r}")
        kernel = tuple(kernel_size)
        ndim = len(next(iter(arrays.values())))
        if len(kernel) >= 3 and len(kernel) in (ndim, ndim + 1):   # a whole weight shape,
            kernel = kernel[2:]         # as torch.nn.grad takes it (batched or unbatched)
        nsp = len(kernel)
        kernel = _sizes("kernel_size", kernel, nsp)
    for name, shape in arrays.items():
        if len(shape) not in (nsp + 1, nsp + 2):
            raise ValueError(f"{name} must have {nsp + 2} dims (N, C, *spatial) or {nsp + 1} "
                             f"(C, *spatial) for a kernel with {nsp} spatial dims, got "
                             f"{name}.shape={shape}")
    listing = ", ".join(f"{name}.shape={shape}" for name, shape in arrays.items())
    if len({len(shape) for shape in arrays.values()}) > 1:
        raise ValueError(f"{' and '.join(arrays)} must both be batched or both unbatched, got "
                         f"{listing}")
    batched = len(next(iter(arrays.values()))) == nsp + 2
    shapes_ = [shape if batched else (1,) + shape for shape in arrays.values()]
    if len({shape[0] for shape in shapes_}) > 1:
        raise ValueError(f"{' and '.join(arrays)} must have the same batch size, got {listing}")
    return batched, shapes_, _geometry(_Kernel(kernel), stride, padding, 0, groups, dilation)


class _Kernel:
    """A stand-in weight of a given kernel size, for :func:`tconv_lib._args._geometry`."""

    def __init__(self, kernel: tuple[int, ...]) -> None:
        self.shape, self.ndim = (1, 1) + kernel, len(kernel) + 2


def _check_conv_sizes(x_size: tuple[int, ...], y_size: tuple[int, ...], geo: Geometry,
                      x_name: str, y_name: str) -> None:
    """``y_size`` must be what a convolution of ``x_size`` gives."""
    out = shapes.conv_output_shape(x_size, geo.kernel, geo.stride, geo.padding, geo.dilation)
    if out != y_size:
        raise ValueError(
            f"{y_name} has spatial size {y_size}, but a convolution of {x_name} {x_size} with "
            f"kernel={geo.kernel}, stride={geo.stride}, padding={geo.padding}, "
            f"dilation={geo.dilation} gives {out}")


def _check_transpose_sizes(x_size: tuple[int, ...], y_size: tuple[int, ...], geo: Geometry,
                           x_name: str, y_name: str) -> None:
    """``y_size`` must be what a transposed convolution of ``x_size`` gives for some
    ``output_padding`` (``0 <= op < max(stride, dilation)``)."""
    for axis, (i, o, k, s, p, d) in enumerate(zip(x_size, y_size, geo.kernel, geo.stride,
                                                  geo.padding, geo.dilation, strict=True)):
        low = shapes.conv_transpose_output_size(i, k, s, p, 0, d)
        if not low <= o < low + max(s, d):
            raise ValueError(
                f"{y_name} has spatial size {y_size}, but a transposed convolution of {x_name} "
                f"{x_size} with kernel={geo.kernel}, stride={geo.stride}, padding={geo.padding},"
                f" dilation={geo.dilation} gives {low}..{low + max(s, d) - 1} on spatial axis "
                f"{axis} (output_padding 0..{max(s, d) - 1}), not {o}")


def _channels(name: str, shape: tuple[int, ...], expected: int, rule: str) -> None:
    if shape[1] != expected:
        raise ValueError(f"{name} has {shape[1]} channels, but {rule} = {expected}")


def conv_input_grad(grad_output: Any, weight: Any,
                    input_size: Sequence[int], stride: IntOrTuple = 1,
                    padding: IntOrTuple = 0, dilation: IntOrTuple = 1,
                    groups: int = 1) -> Any:
    """dL/dx of ``conv``: a transposed convolution of the output gradient
    with the same weight.

    ``output_padding`` is chosen so the result has the forward input's
    ``input_size`` (its spatial size; a whole ``(N, C, *spatial)`` or
    ``(C, *spatial)`` shape, checked against the arrays, is taken too).
    ``grad_output`` is ``(N, C_out, *out)`` or unbatched, ``out`` the
    size the convolution of ``input_size`` gives; anything else is a
    ``ValueError`` naming both sizes.
    """
    input_size = _checked(_input_grad_rules,
                          {"grad_output": grad_output, "weight": weight},
                          "input_size", input_size, stride, padding,
                          dilation, groups)
    nsp = weight.ndim - 2
    k = tuple(int(v) for v in weight.shape[2:])
    s, p, d = (as_tuple(n, v, nsp) for n, v in
               (("stride", stride), ("padding", padding),
                ("dilation", dilation)))
    op = tuple((i + 2 * pp - dd * (kk - 1) - 1) % ss
               for i, kk, ss, pp, dd in zip(input_size, k, s, p, d,
                                            strict=True))
    return conv_transpose(grad_output, weight, None, s, p, op, groups, d)


def _input_grad_rules(go_shape: tuple[int, ...], w_shape: tuple[int, ...], input_size: Any,
                      stride: IntOrTuple, padding: IntOrTuple, dilation: IntOrTuple,
                      groups: int) -> tuple[int, ...]:
    """The rules of a :func:`conv_input_grad` call on shapes; returns the spatial
    ``input_size``."""
    _, (go,), geo = _rules({"grad_output": go_shape}, w_shape, None, stride, padding, dilation,
                           groups)
    if w_shape[0] % geo.groups:
        raise ValueError(f"groups must divide the output channels: weight.shape[0]="
                         f"{w_shape[0]} (C_out) is not divisible by groups={geo.groups}")
    _channels("grad_output", go, w_shape[0], "weight.shape[0] (C_out)")
    size = _sizes("input_size", input_size, geo.ndim,
                  {"N": go[0], "C_in": w_shape[1] * geo.groups})
    _check_conv_sizes(size, go[2:], geo, "input_size", "grad_output")
    return size


def conv_weight_grad(input: Any, grad_output: Any,
                     kernel_size: Sequence[int], stride: IntOrTuple = 1,
                     padding: IntOrTuple = 0, dilation: IntOrTuple = 1,
                     groups: int = 1) -> Any:
    """dL/dw of ``conv``, shape ``(C_out, C_in/groups, *kernel)``: one
    matmul per kernel tap.

    ``input`` is ``(N, C_in, *spatial)`` and ``grad_output``
    ``(N, C_out, *out)`` (or both unbatched), ``out`` the size the
    convolution of ``input`` gives; ``kernel_size`` has one entry per
    spatial axis (or is a whole weight shape, as
    ``torch.nn.grad.conv*d_weight`` takes it).
    """
    # a tiny CPU call seen before: by its kept plan (tconv_lib._small)
    grad = _small.conv_weight_grad_auto(input, grad_output, kernel_size,
                                        (stride, padding, dilation, groups))
    if grad is not None:
        return grad
    input, grad_output, geo = _check_weight_grad(
        input, grad_output, kernel_size, stride, padding, dilation, groups)
    s, p, d, kernel, groups = (geo.stride, geo.padding, geo.dilation,
                               geo.kernel, geo.groups)
    if int(input.shape[0]) == 0:    # an empty batch: no term, zero gradient
        return empty_batch(input, (int(grad_output.shape[1]),
                                   int(input.shape[1]) // groups)
                           + kernel, input, grad_output)
    # bfloat16/float16 on the CPU: summed in float32, rounded once
    dtype = input.dtype
    wide = backend.summed_in_float32(input, lambda: True)
    if wide is not None:
        input, grad_output = input.to(wide), grad_output.to(wide)
    out = _spatial(grad_output)
    rows = int(input.shape[0]) * int(input.shape[1])
    # a small problem: one product with the gather matrix (tconv_lib._small)
    if _small.applies(rows, _spatial(input), out, geo, input):
        grad = _small.conv_weight_grad(input, grad_output, geo)
        return grad if wide is None else grad.to(dtype)
    xp = backend.namespace(input, grad_output)
    xpad = backend.crop_or_pad(
        input, tuple(-q for q in p),
        tuple(i + 2 * q for i, q in zip(_spatial(input), p, strict=True)))
    g_out = backend.group_view(grad_output, groups)   # (N, g, C_out/g, P)
    taps = []
    for tap in itertools.product(*(range(k) for k in kernel)):
        start = tuple(t * dd for t, dd in zip(tap, d, strict=True))
        patch = backend.group_view(xpad[backend.tap_slices(start, out, s)],
                                   groups)
        taps.append(xp.sum(xp.matmul(g_out,
                                     xp.permute_dims(patch, (0, 1, 3, 2))),
                           axis=0))
    grad = xp.stack(taps, axis=-1)              # (g, C_out/g, C_in/g, K)
    c_out = int(grad_output.shape[1])
    grad = xp.reshape(grad, (c_out, int(input.shape[1]) // groups) + kernel)
    return grad if wide is None else grad.to(dtype)


def _check_weight_grad(input: Any, grad_output: Any, kernel_size: Any, stride: IntOrTuple,
                       padding: IntOrTuple, dilation: IntOrTuple, groups: int
                       ) -> tuple[Any, Any, Geometry]:
    """Validate a :func:`conv_weight_grad` call; returns both arrays batched, and the geometry."""
    batched, geo = _checked(_weight_grad_rules, {"input": input, "grad_output": grad_output},
                            "kernel_size", kernel_size, stride, padding, dilation, groups)
    return (input, grad_output, geo) if batched else (input[None], grad_output[None], geo)


def _weight_grad_rules(x_shape: tuple[int, ...], g_shape: tuple[int, ...], kernel_size: Any,
                       stride: IntOrTuple, padding: IntOrTuple, dilation: IntOrTuple,
                       groups: int) -> tuple[bool, Geometry]:
    batched, (x, g), geo = _rules({"input": x_shape, "grad_output": g_shape}, None, kernel_size,
                                  stride, padding, dilation, groups)
    _divisible(geo.groups, input=x, grad_output=g)
    _whole_kernel(kernel_size, geo, {"C_out": g[1], "C_in/groups": x[1] // geo.groups})
    _check_conv_sizes(x[2:], g[2:], geo, "input", "grad_output")
    return batched, geo


def _whole_kernel(kernel_size: Any, geo: Geometry, whole: dict[str, int]) -> None:
    """A whole weight shape given as ``kernel_size`` must be the one the arrays imply."""
    if len(kernel_size) == geo.ndim + 2:
        _sizes("kernel_size", kernel_size, geo.ndim, whole)


def _divisible(groups: int, **shapes_: tuple[int, ...]) -> None:
    for name, shape in shapes_.items():
        if shape[1] % groups:
            raise ValueError(f"groups must divide the channels of {name}: {name}.shape[1]="
                             f"{shape[1]} is not divisible by groups={groups}")


def conv_transpose_input_grad(grad_output: Any, weight: Any,
                              input_size: Sequence[int],
                              stride: IntOrTuple = 1,
                              padding: IntOrTuple = 0,
                              dilation: IntOrTuple = 1,
                              groups: int = 1) -> Any:
    """dL/dx of ``conv_transpose``: a forward convolution of the output
    gradient.

    ``input_size`` is the forward input's spatial size (or whole shape);
    ``grad_output`` must have a size the transposed convolution of it
    gives (with any ``output_padding``).
    """
    input_size = _checked(_transpose_input_grad_rules,
                          {"grad_output": grad_output, "weight": weight},
                          "input_size", input_size, stride, padding,
                          dilation, groups)
    g = conv(grad_output, weight, None, stride, padding, dilation, groups)
    return g[(Ellipsis,) + tuple(slice(0, i) for i in input_size)]


def _transpose_input_grad_rules(go_shape: tuple[int, ...], w_shape: tuple[int, ...],
                                input_size: Any, stride: IntOrTuple, padding: IntOrTuple,
                                dilation: IntOrTuple, groups: int) -> tuple[int, ...]:
    """The rules of a :func:`conv_transpose_input_grad` call on shapes; returns the
    spatial ``input_size``."""
    _, (go,), geo = _rules({"grad_output": go_shape}, w_shape, None, stride, padding, dilation,
                           groups)
    _channels("grad_output", go, w_shape[1] * geo.groups, "weight.shape[1] * groups (C_out)")
    size = _sizes("input_size", input_size, geo.ndim, {"N": go[0], "C_in": w_shape[0]})
    _check_transpose_sizes(size, go[2:], geo, "input_size", "grad_output")
    return size


def conv_transpose_weight_grad(input: Any, grad_output: Any,
                               kernel_size: Sequence[int],
                               stride: IntOrTuple = 1,
                               padding: IntOrTuple = 0,
                               dilation: IntOrTuple = 1,
                               groups: int = 1) -> Any:
    """dL/dw of ``conv_transpose``, shape ``(C_in, C_out/groups, *kernel)``.

    ``conv_transpose(x, w)`` is the adjoint of ``conv(., w)``, so
    :math:`\\langle g, C_w^{\\mathsf T} x\\rangle
    = \\langle C_w g, x\\rangle`: the weight gradient is
    :func:`conv_weight_grad` with the output gradient as the input and
    ``x`` as the gradient.
    """
    input = _check_transpose_weight_grad(input, grad_output, kernel_size,
                                         stride, padding, dilation, groups)
    return conv_weight_grad(grad_output, input, kernel_size, stride,
                            padding, dilation, groups)


def _check_transpose_weight_grad(input: Any, grad_output: Any, kernel_size: Any,
                                 stride: IntOrTuple, padding: IntOrTuple, dilation: IntOrTuple,
                                 groups: int) -> Any:
    """Validate a :func:`conv_transpose_weight_grad` call. Returns ``input``, with zeros
    appended when an ``output_padding`` of at least ``stride`` (possible when ``dilation >
    stride``) makes the convolution of ``grad_output`` longer than it: the size
    :func:`conv_weight_grad` expects for its ``grad_output``; zeros add nothing."""
    batched, size = _checked(_transpose_weight_grad_rules,
                             {"input": input, "grad_output": grad_output}, "kernel_size",
                             kernel_size, stride, padding, dilation, groups)
    if size is None:
        return input
    x = input if batched else input[None]
    padded = backend.crop_or_pad(x, (0,) * len(size), size)
    return padded if batched else padded[0]


def _transpose_weight_grad_rules(x_shape: tuple[int, ...], g_shape: tuple[int, ...],
                                 kernel_size: Any, stride: IntOrTuple, padding: IntOrTuple,
                                 dilation: IntOrTuple, groups: int
                                 ) -> tuple[bool, tuple[int, ...] | None]:
    """(batched, the spatial size to pad ``input`` to, or ``None`` when it fits)."""
    batched, (x, g), geo = _rules({"input": x_shape, "grad_output": g_shape}, None, kernel_size,
                                  stride, padding, dilation, groups)
    _divisible(geo.groups, input=x, grad_output=g)
    _whole_kernel(kernel_size, geo, {"C_in": x[1], "C_out/groups": g[1] // geo.groups})
    _check_transpose_sizes(x[2:], g[2:], geo, "input", "grad_output")
    size = shapes.conv_output_shape(g[2:], geo.kernel, geo.stride, geo.padding, geo.dilation)
    return batched, (None if size == x[2:] else size)


def bias_grad(grad_output: Any, spatial_dims: int | None = None) -> Any:
    """dL/db: the output gradient summed over the batch and every spatial position.

    ``grad_output`` is batched, ``(N, C_out, *spatial)``, or, when ``spatial_dims`` (the
    weight's ``ndim - 2``) says how many spatial axes there are, unbatched
    ``(C_out, *spatial)`` as well: without it an unbatched array cannot be told from a
    batched one of one dimension less, and is refused only when it has under 3 dims.
    """
    if not backend.plainly_compatible(grad_output):
        backend.check_same_kind(grad_output=grad_output)
        backend.check_float_dtypes(grad_output=grad_output)
    ndim, shape = grad_output.ndim, tuple(grad_output.shape)
    if spatial_dims is None:
        if ndim < 3:
            raise ValueError(f"grad_output must be batched, (N, C_out, *spatial) with at "
                             f"least 3 dims (or pass spatial_dims for an unbatched one), "
                             f"got grad_output.shape={shape}")
        batched = True
    else:
        nsp = as_int("spatial_dims", spatial_dims)
        if nsp < 1:
            raise ValueError(f"spatial_dims must be positive, got spatial_dims={spatial_dims!r}")
        if ndim not in (nsp + 1, nsp + 2):
            raise ValueError(f"grad_output must have {nsp + 2} dims (N, C_out, *spatial) or "
                             f"{nsp + 1} (C_out, *spatial) for spatial_dims={nsp}, got "
                             f"grad_output.shape={shape}")
        batched = ndim == nsp + 2
    axes = (0, *range(2, ndim)) if batched else tuple(range(1, ndim))
    return backend.namespace(grad_output).sum(grad_output, axis=axes)


__all__ = ["bias_grad", "conv_input_grad", "conv_transpose_input_grad",
           "conv_transpose_weight_grad", "conv_weight_grad"]
