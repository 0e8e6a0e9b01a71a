r"""Transposed convolution: the public entry point and the method dispatcher.

.. math::
    y[n, c_o, \mathbf{o}] = b[c_o] + \sum_{c_i \in g(c_o)}
        \sum_{\mathbf{j}, \mathbf{t}\,:\; \mathbf{j}s + \mathbf{t}d = \mathbf{o} + p}
        x[n, c_i, \mathbf{j}]\; w[c_i, c_o \bmod (C_{out}/g), \mathbf{t}]

Shapes (PyTorch's conventions, any number of spatial dims :math:`D \ge 1`):
    - input: ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``
    - weight: ``(C_in, C_out/groups, *kernel)`` (note: *not* the conv layout)
    - bias: ``(C_out,)`` or ``None``
    - output: ``(N, C_out, *out)`` with ``out = (i-1)s - 2p + d(k-1) + op + 1`` per axis

Args:
    stride: distance between the painted kernel copies on the output (int or tuple).
    padding: how much is **cropped** from each side of the full output (it pads nothing).
    output_padding: extra size on the far side of each axis, in ``[0, max(stride, dilation))``;
        it picks one of the ``stride`` input sizes that a strided convolution maps to one size.
        The added positions hold computed values (and bias), not zeros.
    groups: split channels into independent groups; ``C_in`` and ``C_out`` are both divided.
    dilation: spacing between kernel taps.
    method: one of :data:`METHODS`, or ``"auto"`` to pick by shape. All give the same result.
"""

from __future__ import annotations

from typing import Any

from . import backend, shapes
from ._args import Geometry, IntOrTuple, check_transpose
from .methods import IMPLEMENTATIONS

METHODS: tuple[str, ...] = tuple(IMPLEMENTATIONS)


def choose_method(x: Any, weight: Any, geo: Geometry) -> str:
    """The method ``"auto"`` runs for this problem.

    ``col2im`` is the fast path on every backend: one large GEMM does every useful multiply, then
    one strided add per block of ``ceil(k/s)**D`` taps (a single pixel-shuffle copy when
    ``k == s``). ``python -m tconv_lib.bench`` measures it against PyTorch and the GEMM bound.
    """
    return "col2im"


def conv_transpose(input: Any, weight: Any, bias: Any = None, stride: IntOrTuple = 1,
                   padding: IntOrTuple = 0, output_padding: IntOrTuple = 0, groups: int = 1,
                   dilation: IntOrTuple = 1, *, method: str = "auto") -> Any:
    """Transposed convolution; see the module docstring for the formula and shapes."""
    if method != "auto" and method not in IMPLEMENTATIONS:
        raise ValueError(f"method must be 'auto' or one of {', '.join(METHODS)}, "
                         f"got method={method!r}")
    x, geo, batched = check_transpose(input, weight, bias, stride, padding, output_padding,
                                      groups, dilation)
    name = choose_method(x, weight, geo) if method == "auto" else method
    if int(x.shape[0]) == 0:                      # an empty batch, as PyTorch allows
        out = shapes.conv_transpose_output_shape(tuple(x.shape[2:]), geo.kernel, geo.stride,
                                                 geo.padding, geo.output_padding, geo.dilation)
        y = backend.zeros(backend.namespace(x), x, (0, int(weight.shape[1]) * groups) + out)
    else:
        y = IMPLEMENTATIONS[name](x, weight, geo)
    if bias is not None:
        y = y + backend.namespace(y).reshape(bias, (1, -1) + (1,) * geo.ndim)
    return y if batched else y[0]
