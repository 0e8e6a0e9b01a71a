r"""``col2im`` on a GPU: several equivalent routes, the fastest picked once per problem.

On a GPU the passes after the GEMM cost kernel launches and memory traffic, not cache misses,
so the CPU's cache blocking (:mod:`.col2im`) does not apply. What matters is how many kernels
run and how often the columns cross memory, and the best answer depends on the shape:

==============================  =====================================================  =========
route                           what runs                                              where
==============================  =====================================================  =========
``fold``                        one GEMM per sample (one batched call), then one       1-D, 2-D
                                ``F.fold`` (torch's col2im kernel) over the whole
                                batch, merged into its channels
``fold_channel_major``          the input copied channel-major, **one** GEMM over the  1-D, 2-D,
                                batch, the columns copied back, ``F.fold``             ``N > 1``
``triton_cols``                 per-sample GEMM, then a Triton kernel in which each    1-D, 2-D
                                output element gathers its taps
                                (:mod:`._triton_col2im`)
``triton_cols_channel_major``   one GEMM over the batch; the gather reads its columns  1-D, 2-D
                                where they are, no copy back
``triton_cols_transposed``      ``X^T W`` per sample (columns ``(N, P, C, K)``), the   1-D, 2-D,
                                gather                                                 ``g = 1``
``shuffle``                     ``k == s``: every output element is one tap, so the    any D
                                output is the columns permuted: GEMM + one copy
``planes``                      the CPU's algorithm: GEMM, block adds into phase       any D
                                planes, one permuted copy
``taps``                        depthwise: one multiply-add per tap                    any D
                                (:mod:`._depthwise`)
``depthwise_fold``              depthwise: the outer product, then ``F.fold``          1-D, 2-D
``triton``                      depthwise: the Triton gather multiplies input and      1-D, 2-D
                                weight itself, so no columns are made
==============================  =====================================================  =========

``fold`` needs one block of the canvas per input position, i.e. ``output_padding < stride``
(always true unless ``dilation > stride``); the Triton routes need Triton and no autograd, and
the depthwise ones no autograd (``taps`` writes with ``out=``): a depthwise call that records
gradients takes the general routes. The first route that applies is the default; on a CUDA
device :func:`tconv_lib._autotune.choose` times them all on the first call of each problem and
keeps the fastest, like ``torch.backends.cudnn.benchmark``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

from .. import _autotune, backend
from .._args import Geometry
from . import col2im
from ._canvas import output_shape

Route = Callable[[Any, Any, Geometry], Any]


def fold_applies(geo: Geometry) -> bool:
    """``F.fold`` handles 1-D and 2-D problems with ``output_padding < stride``."""
    return geo.ndim <= 2 and all(op < s for op, s in zip(geo.output_padding, geo.stride,
                                                         strict=True))


def _spatial(x: Any) -> tuple[int, ...]:
    return tuple(x.shape[2:])


def per_sample_gemm(x: Any, weight: Any, groups: int) -> Any:
    """``(N, C_out * K, P)`` columns from one batched product (one GEMM per sample and group)."""
    import torch

    n, c_in = int(x.shape[0]), int(x.shape[1])
    cols = torch.matmul(col2im.weight_matrix(weight, groups),           # (N, g, C_out/g * K, P)
                        x.reshape(n, groups, c_in // groups, -1))
    return cols.reshape(n, -1, cols.shape[-1])


def channel_major_gemm(x: Any, weight: Any, groups: int) -> Any:
    """``(g * C_out/g * K, N * P)`` columns from one product per group over the whole batch (the
    input is copied channel-major first unless ``N == 1``)."""
    import torch

    n, c_in = int(x.shape[0]), int(x.shape[1])
    x_cm = x.reshape(n, groups, c_in // groups, -1).permute(1, 2, 0, 3).reshape(
        groups, c_in // groups, -1)
    return torch.matmul(col2im.weight_matrix(weight, groups), x_cm).reshape(-1, x_cm.shape[-1])


def _fold(cols: Any, geo: Geometry, n: int, out: tuple[int, ...]) -> Any:
    """Columns ``(N, C_out * K, P)`` summed into ``(N, C_out, *out)`` by ``F.fold``, the batch
    merged into the channels, so that it is one call over one image of ``N * C_out`` channels
    whatever the batch."""
    import torch

    pad1 = (lambda v: (1, *v)) if geo.ndim == 1 else (lambda v: v)   # 1-D as a 1 x L image
    y = torch.nn.functional.fold(
        cols.reshape(1, -1, cols.shape[-1]), pad1(out), pad1(geo.kernel),
        dilation=pad1(geo.dilation), padding=(0, *geo.padding) if geo.ndim == 1 else geo.padding,
        stride=pad1(geo.stride))
    return y.reshape((n, -1) + out)


def fold(x: Any, weight: Any, geo: Geometry) -> Any:
    """One GEMM per sample (one batched call), then one ``F.fold``."""
    return _fold(per_sample_gemm(x, weight, geo.groups), geo, int(x.shape[0]),
                 output_shape(_spatial(x), geo))


def fold_channel_major(x: Any, weight: Any, geo: Geometry) -> Any:
    """One GEMM over the whole batch, wide even when ``P`` is small, then the columns copied to
    per-sample order for ``F.fold``."""
    n, positions = int(x.shape[0]), math.prod(_spatial(x))
    cols = channel_major_gemm(x, weight, geo.groups).reshape(-1, n, positions).transpose(0, 1)
    return _fold(cols, geo, n, output_shape(_spatial(x), geo))


def _cols_view(cols: Any, order: str, n: int, c: int, geo: Geometry,
               spatial: tuple[int, ...]) -> Any:
    """Columns as an ``(N, C, *kernel, *spatial)`` view, whatever order the GEMM wrote."""
    nd = geo.ndim
    sizes = {"n": (n,), "c": (c,), "k": geo.kernel, "i": spatial}
    shape = tuple(v for a in order for v in sizes[a])
    first = {a: sum(len(sizes[b]) for b in order[:order.index(a)]) for a in order}
    perm = (first["n"], first["c"]) + tuple(first["k"] + j for j in range(nd)) + tuple(
        first["i"] + j for j in range(nd))
    return cols.reshape(shape).permute(perm)


def _gather(cols: Any, order: str, x: Any, weight: Any, geo: Geometry) -> Any:
    """Columns that the GEMM wrote in ``order`` (see :func:`_cols_view`), summed into the
    output by the Triton gather (:mod:`._triton_col2im`), read where they are."""
    from . import _triton_col2im

    n, sp = int(x.shape[0]), _spatial(x)
    view = _cols_view(cols, order, n, int(weight.shape[1]) * geo.groups, geo, sp)
    return _triton_col2im.col2im(view, geo, sp, output_shape(sp, geo))


def triton_cols(x: Any, weight: Any, geo: Geometry) -> Any:
    """Per-sample GEMM, columns ``(N, C, K, P)``, then the Triton gather."""
    return _gather(per_sample_gemm(x, weight, geo.groups), "ncki", x, weight, geo)


def triton_cols_channel_major(x: Any, weight: Any, geo: Geometry) -> Any:
    """One GEMM over the batch, columns ``(C, K, N, P)``: no copy back to per-sample order."""
    return _gather(channel_major_gemm(x, weight, geo.groups), "ckni", x, weight, geo)


def triton_cols_transposed(x: Any, weight: Any, geo: Geometry) -> Any:
    """``groups == 1``: the product the other way round, ``X^T W`` per sample, columns
    ``(N, P, C, K)``: each tap's values for neighbouring channels sit side by side."""
    import torch

    c_in = int(x.shape[1])
    cols = torch.matmul(x.reshape(int(x.shape[0]), c_in, -1).transpose(1, 2),
                        weight.reshape(c_in, -1))
    return _gather(cols, "nick", x, weight, geo)


def shuffle(x: Any, weight: Any, geo: Geometry) -> Any:
    """``k == s``: the columns ``(C, k_1..k_D, N, i_1..i_D)`` permuted to
    ``(N, C, i_1, k_1, ..., i_D, k_D)`` *are* the canvas; ``padding`` crops it."""
    nd, n = geo.ndim, int(x.shape[0])
    spatial = _spatial(x)
    cols = channel_major_gemm(x, weight, geo.groups) if n == 1 else per_sample_gemm(
        x, weight, geo.groups)
    cols = _cols_view(cols, "ckni" if n == 1 else "ncki", n, int(weight.shape[1]) * geo.groups,
                      geo, spatial)                             # (N, C, k..., i...)
    order = (0, 1) + tuple(v for a in range(nd) for v in (2 + nd + a, 2 + a))
    canvas = cols.permute(order).reshape((n, int(cols.shape[1])) + tuple(
        i * k for i, k in zip(spatial, geo.kernel, strict=True)))
    if not any(geo.padding):
        return canvas
    out = output_shape(spatial, geo)
    crop = tuple(slice(p, p + o) for p, o in zip(geo.padding, out, strict=True))
    return canvas[(Ellipsis,) + crop].contiguous()


def planes(x: Any, weight: Any, geo: Geometry) -> Any:
    """The CPU algorithm: GEMM, block adds, pixel shuffle (one permuted copy on a GPU)."""
    return col2im.planes(x, weight, geo)


def taps(x: Any, weight: Any, geo: Geometry) -> Any:
    return col2im.depthwise(x, weight, geo)


def triton_depthwise(x: Any, weight: Any, geo: Geometry) -> Any:
    from . import _triton_col2im

    return _triton_col2im.depthwise(x, weight, geo, output_shape(_spatial(x), geo))


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


# name -> the function's name in this module (looked up at call time, so tests can spy on it)
ROUTES = {"fold": "fold", "fold_channel_major": "fold_channel_major",
          "triton_cols": "triton_cols", "triton_cols_channel_major": "triton_cols_channel_major",
          "triton_cols_transposed": "triton_cols_transposed", "shuffle": "shuffle",
          "planes": "planes", "taps": "taps", "depthwise_fold": "fold",
          "triton": "triton_depthwise"}


def route(name: str) -> Route:
    return globals()[ROUTES[name]]


def routes(x: Any, weight: Any, geo: Geometry, triton: bool | None = None) -> dict[str, Route]:
    """Every route that applies to this problem, the default first. ``triton``: offer the
    Triton routes (default: for CUDA tensors without autograd, when Triton is installed)."""
    if triton is None:
        triton = (x.device.type == "cuda" and not backend.records_grad(x, weight)
                  and triton_available())
    names = []
    if int(weight.shape[0]) == geo.groups and not backend.records_grad(x, weight):  # depthwise
        names = ["taps"] + ["depthwise_fold"] * fold_applies(geo) + ["triton"] * (
            triton and geo.ndim <= 2)
        return {k: route(k) for k in names}
    if fold_applies(geo):
        names += ["fold"] + ["fold_channel_major"] * (int(x.shape[0]) > 1)
    if triton and geo.ndim <= 2:
        names += ["triton_cols", "triton_cols_channel_major"] + [
            "triton_cols_transposed"] * (geo.groups == 1)
    if col2im.tiles_output_once(geo):
        names.append("shuffle")
    names.append("planes")
    return {k: route(k) for k in names}


def problem_key(x: Any, weight: Any, geo: Geometry) -> tuple:
    """What the choice may depend on: shapes, layouts, dtype, device, geometry, autograd, and
    the precision torch's matmul is allowed (TF32 changes which GEMM is fastest)."""
    import torch

    return (x.shape, x.stride(), weight.shape, weight.stride(), x.dtype, x.device, geo,
            torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision(),
            backend.records_grad(x, weight))


def conv_transpose(x: Any, weight: Any, geo: Geometry) -> Any:
    if x.device.type != "cuda":                # a test pretending to be on a GPU: no timing
        return next(iter(routes(x, weight, geo).values()))(x, weight, geo)
    key = problem_key(x, weight, geo)
    name = _autotune.known(key)                # later calls: one dict lookup
    if name is None:
        found = routes(x, weight, geo)
        name = _autotune.choose(key, {k: partial(r, x, weight, geo) for k, r in found.items()},
                                _autotune.cuda_timer, _autotune.close_enough)
    return route(name)(x, weight, geo)
