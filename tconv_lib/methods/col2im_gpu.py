r"""``col2im`` on a GPU: several equivalent routes, the fastest picked once per problem.

On a GPU the passes after the GEMM cost kernel launches and memory traffic, not cache misses,
so the CPU's cache blocking (:mod:`.col2im`) does not apply. What matters is how many kernels
run and how often the columns cross memory, and the best answer depends on the shape:

=======================  ============================================================  ========
route                    what runs                                                     where
=======================  ============================================================  ========
``fold``                 one GEMM per sample (batched), then ``F.fold``: torch's        1-D, 2-D
                         col2im kernel sums each column into its window and crops
``fold_channel_major``   the input copied channel-major, **one** GEMM over the whole    1-D, 2-D,
                         batch, the columns copied back to per-sample order, ``fold``  ``N > 1``
``shuffle``              ``k == s``: every output element is one tap, so the output     any D
                         is the columns permuted: one GEMM and one permuted copy
``planes``               the CPU's algorithm: GEMM, block adds into phase planes, one   any D
                         permuted copy (the only route when ``output_padding >= s``)
``taps``                 depthwise: one fused multiply-add per tap (:mod:`._depthwise`)  any D
``depthwise_fold``       depthwise: the outer product, then ``fold``                   1-D, 2-D
``triton``               depthwise: one Triton kernel, each output element gathers its  1-D, 2-D
                         taps (:mod:`._triton_depthwise`)
=======================  ============================================================  ========

``fold`` needs one block of the canvas per input position, i.e. ``output_padding < stride``
(always true unless ``dilation > stride``). The first route that applies is the default; on a
CUDA device :func:`tconv_lib._autotune.choose` times them all on the first call of each
problem and keeps the fastest, like ``torch.backends.cudnn.benchmark``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

from .. import _autotune, backend
from .._args import Geometry
from . import col2im
from ._canvas import output_shape, spatial_of

Route = Callable[[Any, Any, Geometry], Any]


def fold_applies(geo: Geometry) -> bool:
    """``F.fold`` handles 1-D and 2-D problems with ``output_padding < stride``."""
    return geo.ndim <= 2 and all(op < s for op, s in zip(geo.output_padding, geo.stride,
                                                         strict=True))


def _fold(cols: Any, geo: Geometry, out: tuple[int, ...]) -> Any:
    """``cols`` ``(N, C_out * K, P)`` summed into the ``(N, C_out, *out)`` output by ``F.fold``."""
    import torch

    pad1 = (lambda v: (1, *v)) if geo.ndim == 1 else (lambda v: v)   # 1-D as a 1 x L image
    n = int(cols.shape[0])
    y = torch.nn.functional.fold(
        cols, pad1(out), pad1(geo.kernel), dilation=pad1(geo.dilation),
        padding=(0, *geo.padding) if geo.ndim == 1 else geo.padding, stride=pad1(geo.stride))
    return y.reshape((n, -1) + out)


def fold(x: Any, weight: Any, geo: Geometry) -> Any:
    """One GEMM per sample (one batched call), then ``F.fold``."""
    import torch

    n, g = int(x.shape[0]), geo.groups
    cols = torch.matmul(col2im.weight_matrix(weight, g), backend.group_view(x, g))
    return _fold(cols.reshape(n, -1, cols.shape[-1]), geo, output_shape(spatial_of(x), geo))


def fold_channel_major(x: Any, weight: Any, geo: Geometry) -> Any:
    """The batch folded into the GEMM's columns: ``(C_in/g) x (N P)``, one product per group;
    two copies (input in, columns out) buy a GEMM that is wide even when ``P`` is small."""
    import torch

    n, g = int(x.shape[0]), geo.groups
    c_in, positions = int(x.shape[1]), math.prod(spatial_of(x))
    x_cm = backend.group_view(x, g).permute(1, 2, 0, 3).reshape(g, c_in // g, n * positions)
    cols = torch.matmul(col2im.weight_matrix(weight, g), x_cm)        # (g, C_out/g * K, N P)
    cols = cols.reshape(-1, n, positions).permute(1, 0, 2)            # (N, C_out * K, P) view
    return _fold(cols, geo, output_shape(spatial_of(x), geo))


def shuffle(x: Any, weight: Any, geo: Geometry) -> Any:
    """``k == s``: the columns ``(C, k_1..k_D, N, i_1..i_D)`` permuted to
    ``(N, C, i_1, k_1, ..., i_D, k_D)`` *are* the canvas; ``padding`` crops it."""
    nd, n = geo.ndim, int(x.shape[0])
    spatial = spatial_of(x)
    cols = col2im.all_taps_gemm(x, weight, geo.groups)               # (g, C/g, K, N, P)
    cols = cols.reshape((-1,) + geo.kernel + (n,) + spatial)
    order = (1 + nd, 0) + tuple(v for a in range(nd) for v in (2 + nd + a, 1 + a))
    canvas = cols.permute(order).reshape((n, int(cols.shape[0])) + tuple(
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
    from . import _triton_depthwise

    return _triton_depthwise.conv_transpose(x, weight, geo, output_shape(spatial_of(x), geo))


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def routes(x: Any, weight: Any, geo: Geometry) -> dict[str, Route]:
    """Every route that applies to this problem, the default first."""
    found: dict[str, Route] = {}
    if int(weight.shape[0]) == geo.groups:                           # depthwise
        found["taps"] = taps
        if fold_applies(geo):
            found["depthwise_fold"] = fold
        if (x.device.type == "cuda" and geo.ndim <= 2 and not _needs_grad(x, weight)
                and triton_available()):
            found["triton"] = triton_depthwise
        return found
    if fold_applies(geo):
        found["fold"] = fold
        if int(x.shape[0]) > 1:
            found["fold_channel_major"] = fold_channel_major
    if col2im.tiles_output_once(geo):
        found["shuffle"] = shuffle
    found["planes"] = planes
    return found


def _needs_grad(x: Any, weight: Any) -> bool:
    import torch

    return torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)


def problem_key(x: Any, weight: Any, geo: Geometry) -> tuple:
    """What the choice may depend on: shapes, layouts, dtype, device, geometry, and the
    precision torch's matmul is allowed (TF32 changes which GEMM is fastest)."""
    import torch

    return (tuple(x.shape), tuple(x.stride()), tuple(weight.shape), tuple(weight.stride()),
            str(x.dtype), str(x.device), geo, torch.backends.cuda.matmul.allow_tf32,
            torch.get_float32_matmul_precision(), _needs_grad(x, weight))


def conv_transpose(x: Any, weight: Any, geo: Geometry) -> Any:
    found = routes(x, weight, geo)
    name = next(iter(found))
    if x.device.type == "cuda" and len(found) > 1 and not _needs_grad(x, weight):
        name = _autotune.choose(problem_key(x, weight, geo),
                                {k: partial(r, x, weight, geo) for k, r in found.items()},
                                _autotune.cuda_timer, _autotune.close_enough)
    return found[name](x, weight, geo)
