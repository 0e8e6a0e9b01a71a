r"""Transposed convolution: the public entry point and the method dispatcher.

:func:`conv_transpose` has the semantics of ``torch.nn.functional.conv_transpose{1,2,3}d`` for
any number of spatial dimensions, on NumPy arrays and torch tensors; ``method`` picks one of
the implementations in :mod:`tconv_lib.methods` (:data:`METHODS`), which all give the same
result.
"""

from __future__ import annotations

import functools
from typing import Any

from . import _small, backend, shapes
from ._args import Geometry, IntOrTuple, check_transpose
from .conv import empty_batch
from .methods import IMPLEMENTATIONS
from .methods._canvas import output_shape

METHODS: tuple[str, ...] = tuple(IMPLEMENTATIONS)


def check_method(method: Any) -> None:
    """Refuse a ``method`` that is not ``"auto"`` or a :data:`METHODS` entry, naming it."""
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, 'auto' or one of {', '.join(METHODS)}, "
                        f"got method={method!r}")
    if method != "auto" and method not in IMPLEMENTATIONS:
        raise ValueError(f"method must be 'auto' or one of {', '.join(METHODS)}, "
                         f"got method={method!r}")


def choose_method(input: Any, weight: Any, bias: Any = None, stride: IntOrTuple = 1,
                  padding: IntOrTuple = 0, output_padding: IntOrTuple = 0, groups: int = 1,
                  dilation: IntOrTuple = 1) -> str:
    """The method ``method="auto"`` runs for this problem: one of :data:`METHODS`.

    It takes :func:`conv_transpose`'s arguments (without ``method``) and checks them as it
    does, raising the same errors.

    ``col2im`` is the fast path on every backend: one large GEMM does every useful multiply, then
    one strided add per block of ``ceil(k/s)**D`` taps (a single pixel-shuffle copy when
    ``k == s``). On the CPU a tiny problem (a few channels and pixels, :mod:`tconv_lib._small`)
    runs the same GEMM and does the scatter-add as one more product, with a kept 0/1 matrix:
    two calls into BLAS instead of hundreds of small array operations
    (``benchmarks/small_problems.py`` times them). On a CUDA tensor it picks among its GPU
    routes by timing them on the first call of each problem, as
    ``torch.backends.cudnn.benchmark`` does (``TCONV_AUTOTUNE=0`` turns that off; see
    :mod:`tconv_lib._autotune`). ``python -m tconv_lib.bench`` measures it against PyTorch and
    the GEMM bound.

    Examples:
        >>> import numpy as np
        >>> from tconv_lib import choose_method
        >>> choose_method(np.ones((1, 4, 5, 5)), np.ones((4, 8, 3, 3)), stride=2)
        'col2im'
    """
    x, geo, _ = check_transpose(input, weight, bias, stride, padding, output_padding, groups,
                                dilation)
    return _choose(x, weight, geo)


def _choose(x: Any, weight: Any, geo: Geometry) -> str:
    """:func:`choose_method` on the batched input and validated arguments."""
    return "col2im"


def conv_transpose(input: Any, weight: Any, bias: Any = None, stride: IntOrTuple = 1,
                   padding: IntOrTuple = 0, output_padding: IntOrTuple = 0, groups: int = 1,
                   dilation: IntOrTuple = 1, *, method: str = "auto") -> Any:
    r"""Applies a transposed convolution over an input of several input planes, with any
    number :math:`D \ge 1` of spatial dimensions (``torch.nn.functional.conv_transpose{1,2,3}d``).

    It is the transpose of :func:`tconv_lib.conv` with the same ``weight``, ``stride``,
    ``padding``, ``dilation`` and ``groups``, and so its gradient with respect to its input:
    every input element paints a copy of the kernel, scaled by it, ``stride`` apart, and
    overlapping copies add up:

    .. math::
        y[n, c_o, \mathbf{o}] = b[c_o] + \sum_{c_i \in g(c_o)}
            \sum_{\mathbf{j}, \mathbf{t}\,:\; \mathbf{j}s + \mathbf{t}d = \mathbf{o} + p}
            x[n, c_i, \mathbf{j}]\; w[c_i, c_o \bmod (C_{out}/g), \mathbf{t}]

    where :math:`g(c_o)` are the input channels of :math:`c_o`'s group.

    Shape:
        - input: :math:`(N, C_{in}, i_1, \ldots, i_D)` or unbatched :math:`(C_{in}, i_1, \ldots,
          i_D)`
        - weight: :math:`(C_{in}, C_{out}/\text{groups}, k_1, \ldots, k_D)`, the layout of
          ``nn.ConvTranspose*d`` (*not* that of a convolution)
        - bias: :math:`(C_{out})` or ``None``
        - output: :math:`(N, C_{out}, o_1, \ldots, o_D)` (unbatched: :math:`(C_{out}, \ldots)`)
          where, per axis,

          .. math:: o = (i - 1) \times s - 2p + d(k - 1) + op + 1

    Args:
        input (NumPy array or torch tensor): the input, of a floating dtype (NumPy float32 or
            float64; torch float16, bfloat16, float32 or float64).
        weight (same kind, device and dtype as ``input``): the kernels.
        bias (same kind, device and dtype, optional): added to every output channel
            (PyTorch's CPU kernel quietly casts a bias of another floating dtype; tconv_lib
            refuses it). Default: ``None``
        stride (int or tuple, optional): distance between the painted kernel copies on the
            output, one int per spatial dimension or one for all. Default: 1
        padding (int or tuple, optional): how much is **cropped** from both sides of each
            spatial dimension of the full output; it pads nothing (equivalently,
            ``dilation * (kernel_size - 1) - padding`` zeros pad the zero-inserted input of a
            stride-1 convolution). Default: 0
        output_padding (int or tuple, optional): extra size added to the far side of each
            spatial dimension, smaller than ``max(stride, dilation)``. Below ``stride`` it
            picks one of the ``stride`` input sizes that a strided convolution maps to one
            size. The first ``padding`` added positions bring back cropped ones (computed
            values, plus the bias); any beyond the full output hold the bias alone (zeros
            without one). Default: 0
        groups (int, optional): splits the channels into independent groups; both ``C_in``
            and ``C_out`` are divided by it. Default: 1
        dilation (int or tuple, optional): spacing between kernel taps. Default: 1
        method (str, keyword-only): ``"auto"`` (by shape, see :func:`choose_method`) or one
            of :data:`METHODS`: ``"scatter"``, ``"zero_insert"``, ``"matrix"``, ``"col2im"``,
            ``"phase"``. Default: ``"auto"``

    Integer arguments may be anything PyTorch takes as an int (``np.int64(2)``, a 0-d integer
    tensor), but not ``bool``.

    On torch tensors it is differentiable as ``F.conv_transpose*d`` is: ``backward()``,
    forward-mode AD and the ``torch.func`` transforms (``grad``, ``vmap``, ``jvp``,
    ``jacrev``, ``jacfwd``). Under the last two it runs as the modules of :mod:`tconv_lib.nn`
    do, with their jvp and vmap rules and tconv_lib's own backward. Inside ``torch.compile`` and
    ``torch.export`` it is one node of the custom operator ``torch.ops.tconv.conv_transpose``
    (:mod:`tconv_lib._ops`), as the modules are. Inside ``torch.autocast``
    the torch arrays other than float64 are first cast to its dtype, as PyTorch casts them.
    A float16 or bfloat16 problem on the CPU is summed in float32 and rounded once, as
    PyTorch's kernel is, so its error is no larger than PyTorch's.

    Returns:
        The output, of the same kind, device and dtype as ``input``; a fresh array. A torch
        output is channels-last (``torch.channels_last`` or ``channels_last_3d``) when the
        input or the weight is, as PyTorch's is.

    Raises:
        TypeError: an array is not a NumPy array or a dense torch tensor (sparse and
            MKL-DNN layouts are refused), arrays are of different kinds, devices or dtypes, a
            dtype is not floating (or a NumPy one is byte-swapped), an argument is not an int
            (or a tuple or list of them), or ``method`` is not a str.
        ValueError: a shape or argument breaks a rule (stride, dilation or groups below 1,
            negative padding or output_padding, ``output_padding >= max(stride, dilation)``,
            channels that do not match the weight or are not divisible by ``groups``, a bias
            of the wrong shape, too few or too many dims, an empty input or output), or
            ``method`` is unknown. Every message names the argument, the rule and the value,
            and nothing is computed first.

    Examples:
        >>> import numpy as np
        >>> from tconv_lib import conv_transpose
        >>> conv_transpose(np.array([[[2., 3.]]]), np.array([[[1., 2., 3.]]]), stride=2)
        array([[[2., 4., 9., 6., 9.]]])
        >>> x, w = np.ones((1, 4, 5, 5)), np.ones((4, 8, 3, 3))
        >>> conv_transpose(x, w, stride=2, padding=1, output_padding=1).shape
        (1, 8, 10, 10)
        >>> conv_transpose(x, w, stride=2, method="phase").shape     # any method, same result
        (1, 8, 11, 11)
        >>> conv_transpose(x, w, stride=2, output_padding=2)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: output_padding must be smaller than max(stride, dilation)...=(2, 2)...
    """
    check_method(method)
    if method == "auto":      # a tiny CPU call seen before: its kept plan (tconv_lib._small)
        y = _small.conv_transpose_auto(input, weight, bias, (stride, padding, output_padding,
                                                             groups, dilation))
        if y is not None:
            return y
    if backend.compiling(input):      # torch.compile, torch.export: one custom-op node
        from .nn import conv_transpose_autograd

        return conv_transpose_autograd(input, weight, bias, stride, padding, output_padding,
                                       groups, dilation, method=method)
    input, weight, bias = backend.autocast(input, weight, bias)
    x, geo, batched = check_transpose(input, weight, bias, stride, padding, output_padding,
                                      groups, dilation)
    name = _choose(x, weight, geo) if method == "auto" else method
    if backend.transformed(x, weight, bias):
        # torch.func or forward-mode AD: the methods write in place; the modules' Function
        # has jvp and vmap rules (and calls back here on plain tensors)
        from .nn import ConvTransposeFunction
        y = ConvTransposeFunction.apply(x, weight, bias, geo.stride, geo.padding,
                                        geo.output_padding, geo.groups, geo.dilation, name)
        return y if batched else y[0]
    if int(x.shape[0]) == 0:                      # an empty batch, as PyTorch allows
        out = shapes.conv_transpose_output_shape(tuple(x.shape[2:]), geo.kernel, geo.stride,
                                                 geo.padding, geo.output_padding, geo.dilation)
        y = empty_batch(x, (0, int(weight.shape[1]) * geo.groups) + out, x, weight)
        if bias is not None:
            y = y + backend.namespace(y).reshape(bias, (1, -1) + (1,) * geo.ndim)
    else:
        # a half-precision CPU problem is summed in float32; bfloat16 keeps its own GEMM where
        # no output takes two taps and there is no bias, as nothing is added after it
        core = IMPLEMENTATIONS[name]
        if method == "auto":      # a small CPU problem: col2im as one product (tconv_lib._small)
            spatial = tuple(int(v) for v in x.shape[2:])
            out = output_shape(spatial, geo)
            rows = int(x.shape[0]) * int(weight.shape[1]) * geo.groups
            if _small.applies(rows, out, spatial, geo, x, weight):
                core = functools.partial(_small.conv_transpose, out=out)
        y = backend.summed_with_bias(lambda a, b: core(a, b, geo), x, weight, bias,
                                     lambda: not _one_tap(geo))
    y = backend.in_memory_format(y, backend.memory_format(x, weight))
    return y if batched else y[0]


def _one_tap(geo: Geometry) -> bool:
    """No output takes more than one tap: ``dilation * (kernel - 1) < stride`` on every axis."""
    return all(d * (k - 1) < s for k, s, d in zip(geo.kernel, geo.stride, geo.dilation,
                                                  strict=True))
