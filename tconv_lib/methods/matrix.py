r"""Transposed convolution as multiplication by :math:`C^{\mathsf T}`.

A forward convolution is linear in its input, so on flattened tensors it is a matrix:
:math:`\operatorname{vec}(y) = C\,\operatorname{vec}(x)`. The transposed convolution with the
*same* weight tensor is multiplication by :math:`C^{\mathsf T}`. That is the whole reason for
the name, and why it is the gradient of convolution with respect to its input.

:func:`conv_matrix` builds :math:`C` as a sparse matrix (``scipy.sparse`` for NumPy weights, a
``torch`` sparse tensor on the weight's device for torch weights). Row
:math:`(c_o, \mathbf{j})`, column :math:`(c_i, \mathbf{j}s + \mathbf{t}d - p)` holds
:math:`w[c_o, c_i, \mathbf{t}]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import backend, shapes
from .._args import Geometry, IntOrTuple, as_tuple, check_conv_matrix
from ._canvas import output_shape, spatial_of


def _axis_pairs(i: int, o: int, k: int, s: int, p: int,
                d: int) -> tuple[np.ndarray, ...]:
    """All (output position, tap, input position) triples along one axis
    that hit the input."""
    out_pos, tap = np.meshgrid(np.arange(o), np.arange(k), indexing="ij")
    in_pos = out_pos * s + tap * d - p
    keep = (in_pos >= 0) & (in_pos < i)
    return out_pos[keep], tap[keep], in_pos[keep]


def _sparse_indices(in_size: tuple[int, ...], out_size: tuple[int, ...], geo: Geometry,
                    c_out: int, c_in_g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column and flat weight index of every non-zero of C."""
    axes = [_axis_pairs(*a) for a in zip(in_size, out_size, geo.kernel, geo.stride, geo.padding,
                                         geo.dilation, strict=True)]
    out_flat = tap_flat = in_flat = np.zeros(1, np.int64)
    for (o, t, i), n_out, k, n_in in zip(axes, out_size, geo.kernel, in_size, strict=True):
        out_flat = (out_flat[:, None] * n_out + o[None, :]).ravel()
        tap_flat = (tap_flat[:, None] * k + t[None, :]).ravel()
        in_flat = (in_flat[:, None] * n_in + i[None, :]).ravel()
    k_total, p_out, p_in = int(np.prod(geo.kernel)), int(np.prod(out_size)), int(np.prod(in_size))
    co, ci = np.meshgrid(np.arange(c_out), np.arange(c_in_g), indexing="ij")
    co, ci = co.ravel()[:, None], ci.ravel()[:, None]
    group = co // (c_out // geo.groups)
    rows = co * p_out + out_flat[None, :]
    cols = (group * c_in_g + ci) * p_in + in_flat[None, :]
    widx = (co * c_in_g + ci) * k_total + tap_flat[None, :]
    return rows.ravel(), cols.ravel(), widx.ravel()


def conv_matrix(weight: Any, input_size: IntOrTuple, stride: IntOrTuple = 1,
                padding: IntOrTuple = 0, dilation: IntOrTuple = 1,
                groups: int = 1,
                output_size: Sequence[int] | None = None) -> Any:
    r"""The sparse matrix :math:`C` of the forward convolution
    ``conv(x, weight, ...)`` on one sample, so that
    ``C @ x.reshape(-1) == conv(x, weight, ...).reshape(-1)``.

    Row :math:`(c_o, \mathbf{j})`, column
    :math:`(c_i, \mathbf{j}s + \mathbf{t}d - p)` holds
    :math:`w[c_o, c_i \bmod (C_{in}/g), \mathbf{t}]`; entries whose column
    falls into the zero padding are left out. :math:`C^{\mathsf T}` is the
    transposed convolution with the same ``weight``.

    Shapes:
        - weight: ``(C_out, C_in/groups, *kernel)``, the **conv** layout
          (which is also the ``(C_in, C_out/groups, *kernel)`` layout of
          the transposed convolution that :math:`C^{\mathsf T}` computes)
        - C: ``(C_out * prod(out), C_in * prod(input_size))`` with
          ``out = floor((i + 2p - d(k-1) - 1)/s) + 1`` per axis, or
          ``output_size``

    Args:
        weight (NumPy array or torch tensor): the convolution weight, a
            floating dtype.
        input_size (int or tuple): spatial size of the convolution's
            input, one per axis.
        stride (int or tuple, optional): stride of the convolution.
            Default: 1
        padding (int or tuple, optional): zero padding on both sides of
            each axis. Default: 0
        dilation (int or tuple, optional): spacing between kernel taps.
            Default: 1
        groups (int, optional): number of blocked connections from input
            channels to output channels; it divides ``C_out``. Default: 1
        output_size (tuple, optional): keep only the first
            ``output_size`` output positions per axis (rows of ``C``),
            between 1 and the full size. Default: the full output

    Returns:
        ``scipy.sparse.csr_array`` for a NumPy weight; a coalesced
        ``torch`` sparse COO tensor on the weight's device for a torch
        weight.

    Raises:
        TypeError: ``weight`` is not a floating NumPy array or torch
            tensor, or an argument is not an int (or tuple of ints).
        ValueError: the same geometric rules as :func:`tconv_lib.conv`
            (naming the argument, the rule and the value), or
            ``output_size`` out of range.

    Examples:
        >>> import numpy as np
        >>> from tconv_lib import conv_matrix
        >>> conv_matrix(np.array([[[1., 2., 3.]]]), 5, stride=2).toarray()
        array([[1., 2., 3., 0., 0.],
               [0., 0., 1., 2., 3.]])
    """
    geo, in_size = check_conv_matrix(weight, input_size, stride, padding,
                                     dilation, groups)
    full = shapes.conv_output_shape(in_size, geo.kernel, geo.stride,
                                    geo.padding, geo.dilation)
    out_size = (full if output_size is None
                else as_tuple("output_size", output_size, geo.ndim))
    if any(o < 1 or o > f for o, f in zip(out_size, full, strict=True)):
        raise ValueError(f"output_size must be between 1 and the "
                         f"convolution's output size {full}, got "
                         f"output_size={out_size}")
    c_out, c_in_g = int(weight.shape[0]), int(weight.shape[1])
    rows, cols, widx = _sparse_indices(in_size, out_size, geo, c_out,
                                       c_in_g)
    shape = (c_out * int(np.prod(out_size)),
             c_in_g * geo.groups * int(np.prod(in_size)))
    if backend.is_torch(weight):
        # Sparse arrays are not in the array API. A torch weight stays on
        # its device (scipy cannot hold a CUDA tensor), so the same
        # (row, col, value) triples become a torch sparse tensor;
        # tests/test_library_identities.py checks both give one matrix.
        import torch

        dev = weight.device
        idx = torch.as_tensor(np.stack([rows, cols]), device=dev)
        values = weight.reshape(-1)[torch.as_tensor(widx, device=dev)]
        return torch.sparse_coo_tensor(idx, values, shape,
                                       check_invariants=False).coalesce()
    import scipy.sparse

    values = np.asarray(weight).reshape(-1)[widx]
    return scipy.sparse.csr_array((values, (rows, cols)), shape=shape)


def conv_transpose(x: Any, weight: Any, geo: Geometry) -> Any:
    spatial = spatial_of(x)
    out = output_shape(spatial, geo)
    # the forward conv maps out -> spatial
    c = conv_matrix(weight, out, geo.stride, geo.padding, geo.dilation,
                    geo.groups, output_size=spatial)
    n, c_out = int(x.shape[0]), int(weight.shape[1]) * geo.groups
    if backend.is_torch(x):
        # sparse @ dense has no array-API form: torch.sparse.mm here,
        # scipy's ``@`` below
        import torch

        flat = x.reshape(n, -1).T
        # sparse half-precision matmul is not on the CPU
        if flat.dtype in (torch.float16, torch.bfloat16):
            y = torch.sparse.mm(c.t().float(), flat.float()).to(flat.dtype)
        else:
            y = torch.sparse.mm(c.t(), flat)
        return y.T.reshape((n, c_out) + out)
    y = (c.T @ np.asarray(x).reshape(n, -1).T).T
    return np.ascontiguousarray(y).reshape((n, c_out) + out)


__all__ = ["conv_matrix", "conv_transpose"]
