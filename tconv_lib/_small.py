r"""Small problems: im2col and col2im as one product with a cached 0/1 matrix.

On the inputs a reader tries things on (a few channels, a few pixels) the arithmetic of a
convolution takes microseconds and the Python around it takes the rest: col2im's block adds,
phase windows and pixel shuffle are hundreds of small array operations, and the forward
convolution and the weight gradient loop over the kernel taps. There, each of them is two
GEMMs instead:

- the channel GEMM, as in col2im: ``cols = W^T X`` (for a convolution, ``W`` times the
  patches);
- the spatial GEMM with the *gather matrix* :math:`G` of the geometry, a 0/1 matrix with one
  row per position :math:`\mathbf{i}` of a convolution's input and one column per (tap
  :math:`\mathbf{t}`, output position :math:`\mathbf{j}`):

  .. math:: G[\mathbf{i}, (\mathbf{t}, \mathbf{j})] = 1 \iff
      \mathbf{i} = \mathbf{j}s + \mathbf{t}d - p

  A convolution's patches (im2col) are :math:`X G`; a transposed convolution's col2im is
  :math:`\text{cols}\, G^{\mathsf T}`, already cropped by ``padding`` (positions cropped away
  have no row) and with ``output_padding``'s extra positions as zero rows.

:math:`G` depends only on the sizes and the geometry, so it is built once (in NumPy) and kept
per dtype (:data:`KEPT_BYTES` at most, the least recently used dropped first). The product
multiplies by zeros, ``prod(out)`` times more work than the adds it replaces, so it is taken
only while that work is small (:func:`applies`): up to :data:`MAX_WORK` multiply-adds and
:data:`MAX_ENTRIES` entries of :math:`G`, on the CPU, and only for finite operands. In 3-D
(:func:`by_axes`) :math:`G` is applied as what it is, the Kronecker product of one small 0/1
matrix per axis: one product per axis, no entry bound, and :data:`MAX_WORK` bounds the
multiply-adds of the three products. A product
with :math:`G` multiplies every entry by its zeros, and ``inf * 0`` or ``nan * 0`` is NaN, so one
non-finite pixel would turn its whole output plane into NaN where PyTorch (and every other
route) keeps it to the pixel's footprint. It adds the same terms as the other
routes (each times 1; the zeros change nothing), and it runs inside the caller's
half-precision rule (:func:`tconv_lib.backend.summed_in_float32`), which holds here as on
the other routes.

A call repeated with the same sizes (a training loop, a notebook cell run again) goes by its
*plan* (:func:`conv_transpose_auto`, :func:`conv_auto`, :func:`conv_weight_grad_auto`): the
argument checks, the route, the output's size and memory format are worked out on the first
call and kept, at most :data:`MAX_PLANS` of them, keyed on the operation, the thresholds, the
dtype, the device, every array's shape and strides, and the arguments when they are plain
ints (anything else takes the full checks every time). A plan holds no array; :math:`G` comes
from the kept matrices and every output is computed afresh. The finite-operand rule is then
checked on the product instead of its operands (one reduction instead of two): a non-finite
product sends the call back to the entry's full path, which keeps an inf or NaN operand to its
footprint as before.
"""

from __future__ import annotations

import math
import sys
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from . import backend
from ._args import Geometry

# The gather product's multiply-adds (rows x G's entries) up to which it runs. Interleaved
# timings on 2 cores, one thread, torch and NumPy (float32): it won by 2-15x up to 1M
# multiply-adds, by 1.5-2.5x at 4M with one or two samples, and lost by 1.2x at 5.5M and far
# more beyond.
MAX_WORK = 1 << 22
# G's entries (prod(conv input) x taps x prod(conv output)) up to which it is built: 4 MiB in
# float32 (a 3-D 4x4x4 input, k=3, s=2 has 0.9M). The matrices kept take at most KEPT_BYTES.
MAX_ENTRIES = 1 << 20
KEPT_BYTES = 64 << 20


def applies(rows: int, conv_in: tuple[int, ...], conv_out: tuple[int, ...], geo: Geometry,
            *multiplied: Any) -> bool:
    """The small route for a problem whose gather product has ``rows`` rows (batch times
    channels) and whose convolution maps ``conv_in`` to ``conv_out`` positions: little enough
    work, and ``multiplied`` (the arrays whose entries meet :math:`G`'s zeros) on the CPU and
    finite."""
    if by_axes(geo):
        small = _axes_work(rows, conv_in, conv_out, geo) <= MAX_WORK
    else:
        entries = math.prod(conv_in) * math.prod(geo.kernel) * math.prod(conv_out)
        small = entries <= MAX_ENTRIES and rows * entries <= MAX_WORK
    return small and all(not backend.on_gpu(a) and _finite(a) for a in multiplied)


def by_axes(geo: Geometry) -> bool:
    r"""Whether :math:`G` is applied one axis at a time: in 3-D. :math:`G` is the Kronecker
    product of the axes' own gather matrices, so the product with it is one small product per
    axis (each of a few thousand entries, however large the volume), where the whole
    :math:`G` of a 4x4x4 input (k=3, s=2) already has 0.9M entries and its product multiplies
    by zeros hundreds of times more than it adds. In 1-D and 2-D one product with the whole
    :math:`G` is the faster on these sizes (fewer calls), and it stays."""
    return geo.ndim == 3


def _axes_work(rows: int, conv_in: tuple[int, ...], conv_out: tuple[int, ...],
               geo: Geometry) -> int:
    """Multiply-adds of the axis-by-axis products, bounded above: axis ``a``'s product is
    ``(k c) x i`` on that axis, times ``rows`` and the larger of ``k c`` and ``i`` on every
    other axis (``c``, ``i``: the convolution's output and input sizes)."""
    sides = [k * c for k, c in zip(geo.kernel, conv_out, strict=True)]
    wide = [max(kc, i) for kc, i in zip(sides, conv_in, strict=True)]
    return sum(rows * math.prod(wide[:a] + wide[a + 1:]) * sides[a] * conv_in[a]
               for a in range(geo.ndim))


def _finite(a: Any) -> bool:
    """No inf or NaN in ``a``, read off its sum (one reduction, the cheapest test in PyTorch;
    a sum that overflows counts as not finite, which only sends the call to the general
    route). A value that cannot be read here (a tensor inside ``torch.func.vmap``) counts as
    not finite too."""
    try:
        if backend.is_torch(a):
            return math.isfinite(a.detach().sum())
        return bool(np.isfinite(a).all())
    except RuntimeError:
        return False


# A key of G: (conv_in, conv_out, kernel, stride, padding, dilation), each a tuple per axis.
_Key = tuple[tuple[int, ...], ...]


def _gather_numpy(key: _Key) -> np.ndarray:
    """:math:`G` as booleans, ``(prod(conv_in), prod(kernel) * prod(conv_out))``."""
    g = np.ones((1, 1, 1), dtype=bool)
    for i, o, k, s, p, d in zip(*key, strict=True):
        hit = (np.arange(i)[:, None, None]
               == np.arange(o)[None, None, :] * s + np.arange(k)[None, :, None] * d - p)
        g = (g[:, None, :, None, :, None] & hit[None, :, None, :, None, :]).reshape(
            g.shape[0] * i, g.shape[1] * k, g.shape[2] * o)
    return g.reshape(g.shape[0], -1)


_kept: OrderedDict[tuple, Any] = OrderedDict()      # least recently used first
_lock = threading.Lock()


def _make(key: _Key, torch_dtype: Any, numpy_dtype: Any, transposed: bool) -> Any:
    r""":math:`G` (or :math:`G^{\mathsf T}`, contiguous) as a torch tensor of ``torch_dtype``
    or else a NumPy array of ``numpy_dtype``."""
    g = _gather_numpy(key)
    g = np.ascontiguousarray(g.T) if transposed else g
    if torch_dtype is None:
        return g.astype(numpy_dtype)
    import torch

    # kept for calls that autograd records, too, and made outside any torch.func transform:
    # there it would be the transform's wrapper, which dies with it (and a later
    # torch.jit.trace fails sizing it: 'Unsupported value kind: Tensor')
    with torch.inference_mode(False), torch._C._DisableFuncTorch():
        return torch.from_numpy(g).to(torch_dtype)


def _nbytes(a: Any) -> int:
    return math.prod(a.shape) * a.dtype.itemsize


def gather(like: Any, conv_in: tuple[int, ...], conv_out: tuple[int, ...], geo: Geometry,
           transposed: bool = False) -> Any:
    r""":math:`G` (or with ``transposed``, :math:`G^{\mathsf T}`) in ``like``'s kind and dtype
    (CPU); kept between calls, never written to. It does not depend on ``groups``."""
    key = (conv_in, conv_out, geo.kernel, geo.stride, geo.padding, geo.dilation)
    full = ((key, like.dtype, None, transposed) if backend.is_torch(like)
            else (key, None, like.dtype, transposed))
    with _lock:
        g = _kept.get(full)
        if g is None:
            g = _kept[full] = _make(*full)
            while sum(_nbytes(a) for a in _kept.values()) > KEPT_BYTES and len(_kept) > 1:
                _kept.popitem(last=False)
        else:
            _kept.move_to_end(full)
        return g


def conv_transpose(x: Any, weight: Any, geo: Geometry, out: tuple[int, ...]) -> Any:
    """Batched transposed convolution without bias, output spatial size ``out``: the channel
    GEMM ``(N, g, C_out/g * K, P) = W^T X``, then ``cols G^T``."""
    n, g = int(x.shape[0]), geo.groups
    c_in, c_out = int(weight.shape[0]), int(weight.shape[1]) * g
    spatial = tuple(int(v) for v in x.shape[2:])
    positions = math.prod(spatial)
    if g == 1:          # one 2-D GEMM for one sample: a fraction of a batched one's time here
        cols = weight.reshape(c_in, -1).T @ x.reshape(
            (c_in, positions) if n == 1 else (n, c_in, positions))
    else:
        cols = weight.reshape(g, c_in // g, -1).swapaxes(-1, -2) @ x.reshape(
            (g, c_in // g, positions) if n == 1 else (n, g, c_in // g, positions))
    cols = cols.reshape(n * c_out, -1)                  # (N C_out, K P)
    y = (_col2im_by_axes(cols, spatial, out, geo) if by_axes(geo)
         else cols @ gather(x, out, spatial, geo, transposed=True))
    return y.reshape((n, c_out) + out)


def _permuted(a: Any, axes: list[int]) -> Any:
    return a.permute(axes) if backend.is_torch(a) else a.transpose(axes)


def _axis(geo: Geometry, a: int) -> Geometry:
    """Axis ``a`` of ``geo`` alone: its gather matrix is :math:`G`'s factor on that axis."""
    return Geometry((geo.stride[a],), (geo.padding[a],), (geo.output_padding[a],),
                    (geo.dilation[a],), 1, (geo.kernel[a],))


def _col2im_by_axes(cols: Any, spatial: tuple[int, ...], out: tuple[int, ...],
                    geo: Geometry) -> Any:
    r"""``cols @ G^T`` one axis at a time: ``cols`` ``(R, K P)``, tap axes before position
    axes, gives ``(R, prod(out))``. Each step brings axis ``a``'s tap and position to the end
    and multiplies by that axis's :math:`G_a^{\mathsf T}`; its output axis joins the end."""
    d, r = geo.ndim, int(cols.shape[0])
    y = cols.reshape((r,) + geo.kernel + spatial)        # R, t_a.., j_a.., o_0..o_{a-1}
    for a in range(d):
        left = d - a
        keep = [i for i in range(1, y.ndim) if i not in (1, 1 + left)]
        y = _permuted(y, [0, *keep, 1, 1 + left])
        lead = tuple(int(v) for v in y.shape[:-2])
        g = gather(y, (out[a],), (spatial[a],), _axis(geo, a), transposed=True)
        y = (y.reshape(-1, geo.kernel[a] * spatial[a]) @ g).reshape(lead + (out[a],))
    return y.reshape(r, -1)


def _im2col_by_axes(x: Any, spatial: tuple[int, ...], out: tuple[int, ...],
                    geo: Geometry) -> Any:
    """``x @ G`` one axis at a time: ``x`` ``(R, prod(spatial))`` gives the patches
    ``(R, K prod(out))``, tap axes before position axes."""
    d, r = geo.ndim, int(x.shape[0])
    y = x.reshape((r,) + spatial)                        # R, j_a.., (t_0, o_0)..
    for a in range(d):
        y = _permuted(y, [0, *range(2, y.ndim), 1])
        lead = tuple(int(v) for v in y.shape[:-1])
        g = gather(y, (spatial[a],), (out[a],), _axis(geo, a))
        y = (y.reshape(-1, spatial[a]) @ g).reshape(lead + (geo.kernel[a], out[a]))
    y = _permuted(y, [0, *range(1, 2 * d, 2), *range(2, 2 * d + 1, 2)])
    return y.reshape(r, -1)


def _patch_rows(x: Any, geo: Geometry, out: tuple[int, ...]) -> Any:
    """im2col of a batched ``x`` as the product ``(N C_in, K prod(out))``, tap inside
    channel."""
    n, c_in = int(x.shape[0]), int(x.shape[1])
    spatial = tuple(int(v) for v in x.shape[2:])
    rows = x.reshape(n * c_in, math.prod(spatial))
    return (_im2col_by_axes(rows, spatial, out, geo) if by_axes(geo)
            else rows @ gather(x, spatial, out, geo))


def patches(x: Any, geo: Geometry, out: tuple[int, ...]) -> Any:
    """im2col of a batched ``x``: ``(N, g, C_in/g * K, prod(out))``, tap inside channel."""
    n, c_in = int(x.shape[0]), int(x.shape[1])
    return _patch_rows(x, geo, out).reshape(
        n, geo.groups, c_in // geo.groups * math.prod(geo.kernel), math.prod(out))


def conv(x: Any, weight: Any, geo: Geometry, out: tuple[int, ...]) -> Any:
    """Batched convolution without bias, output spatial size ``out``: ``W`` times the
    patches."""
    n, c_out, g = int(x.shape[0]), int(weight.shape[0]), geo.groups
    rows, positions = int(weight.shape[1]) * math.prod(geo.kernel), math.prod(out)   # C_in/g K
    p = _patch_rows(x, geo, out)                              # (N C_in, K P)
    if g == 1:                                                # (C_out, C_in K) (C_in K, P)
        y = weight.reshape(c_out, -1) @ p.reshape(
            (rows, positions) if n == 1 else (n, rows, positions))
    else:
        y = weight.reshape(g, c_out // g, -1) @ p.reshape(
            (g, rows, positions) if n == 1 else (n, g, rows, positions))
    return y.reshape((n, c_out) + out)


def conv_weight_grad(x: Any, grad_output: Any, geo: Geometry) -> Any:
    """A convolution's weight gradient ``(C_out, C_in/g, *kernel)`` from the batched input and
    output gradient: the output gradient times the patches, summed over the batch."""
    n, c_out, g = int(x.shape[0]), int(grad_output.shape[1]), geo.groups
    out = tuple(int(v) for v in grad_output.shape[2:])
    positions = math.prod(out)
    if n == 1 and g == 1:                                       # (C_out, P) (P, C_in K)
        rows = int(x.shape[1]) * math.prod(geo.kernel)
        grad = grad_output.reshape(c_out, positions) @ _patch_rows(x, geo, out).reshape(
            rows, positions).T
    elif n == 1:
        grad = grad_output.reshape(g, c_out // g, positions) @ patches(x, geo, out)[0].swapaxes(
            -1, -2)
    else:
        grad = (grad_output.reshape(n, g, c_out // g, positions)
                @ patches(x, geo, out).swapaxes(-1, -2)).sum(0)  # (g, C_out/g, C_in/g * K)
    return grad.reshape((c_out, int(x.shape[1]) // g) + geo.kernel)


# Plans: what a call of ``auto`` works out from its arrays' sizes and its arguments before any
# arithmetic (the argument checks, the route, the output's size and layout), kept per call
# signature so that a repeated tiny call (a training loop, a unit test's cases) goes straight
# to the products. A plan holds sizes and flags only, never an array: G is fetched from the
# kept matrices on each call, and every output is freshly computed.
MAX_PLANS = 512
_plans: OrderedDict[tuple, Any] = OrderedDict()        # least recently used first


def _plain(args: tuple[Any, ...]) -> bool:
    """Every argument an ``int`` or a tuple of ``int`` (exactly: a ``bool``, a float or a
    NumPy integer is not, so it never shares a key with the int it compares equal to and
    takes the full checks and their errors)."""
    for a in args:
        t = type(a)
        if not (t is int or t is tuple and set(map(type, a)) == _INT):
            return False
    return True


_INT = {int}


def _eager_cpu(x: Any, weight: Any, bias: Any) -> bool:
    """Arrays that the small route could take, as seen without a check that costs: plain
    NumPy arrays, or torch CPU tensors outside ``torch.compile``, ``torch.autocast``,
    ``torch.func`` transforms and forward-mode AD (the entry points' own branches handle
    those)."""
    if not backend.plainly_compatible(x, weight, bias):
        return False
    if type(x) is np.ndarray:
        return True
    torch = sys.modules["torch"]                # x is a torch tensor
    return (not backend.on_gpu(x) and not torch._C._is_any_autocast_enabled()
            and not torch.compiler.is_compiling() and not backend.transformed(x, weight, bias))


def _key(op: str, arrays: tuple[Any, ...], args: tuple[Any, ...]) -> tuple | None:
    """The plan key of a call: the operation, the thresholds, each array's dtype, device,
    shape and strides (the output's layout follows them), and the arguments; ``None`` when the
    arguments are not plain ints (:func:`_plain`)."""
    if not _plain(args):
        return None
    x = arrays[0]
    if type(x) is np.ndarray:
        sizes = tuple(None if a is None else a.shape for a in arrays)
        where: Any = "numpy"
    else:
        sizes = tuple(None if a is None else (a.shape, a.stride()) for a in arrays)
        where = x.device
    return (op, MAX_WORK, MAX_ENTRIES, x.dtype, where, sizes, args)


def _kept_plan(op: str, arrays: tuple[Any, ...], args: tuple[Any, ...], build: Any) -> Any:
    """The plan of a call of ``op`` (kept, or ``build()``'s, which checks the call and raises its
    errors); ``None`` when the call is not a small problem or cannot have a plan
    (:func:`_eager_cpu`, :func:`_key`)."""
    if not _eager_cpu(*arrays):
        return None
    key = _key(op, arrays, args)
    return None if key is None else _plan(key, build)


def _plan(key: tuple, build: Any) -> Any:
    """The kept plan of ``key``, or ``build()``'s (which checks the call and raises its
    errors; nothing is kept for a call that raises)."""
    try:
        plan = _plans[key]
    except KeyError:
        plan = build()
        with _lock:
            _plans[key] = plan
            while len(_plans) > MAX_PLANS:
                _plans.popitem(last=False)
        return plan
    with _lock:
        if key in _plans:
            _plans.move_to_end(key)
    return plan


def _wide_enough(x: Any) -> bool:
    """float32 or float64: a half-precision call takes the entry's float32 rule instead."""
    return str(x.dtype).removeprefix("torch.") in ("float32", "float64")


def _finished(y: Any, bias: Any, fmt: Any, batched: bool) -> Any:
    """The batched product ``y`` ``(N, C_out, *out)`` with the bias, in the output's memory
    format (unbatched when the input was); ``None`` when ``y`` is not finite: an inf or NaN
    operand, which the entry then keeps to its footprint (see :func:`applies`)."""
    if not _finite(y):
        return None
    if bias is not None:
        y = y + bias.reshape((-1,) + (1,) * (y.ndim - 2))
    if fmt is not None and backend.channels_last(fmt):
        y = y.contiguous(memory_format=fmt)
    return y if batched else y[0]


def conv_transpose_auto(input: Any, weight: Any, bias: Any, args: tuple[Any, ...]) -> Any:
    """:func:`tconv_lib.conv_transpose` with ``method="auto"`` by its kept plan: the result
    when the call is a small problem (:func:`applies`), else ``None`` (the entry's full path
    then runs, as for a call with an inf or NaN). ``args`` are ``(stride, padding,
    output_padding, groups, dilation)`` as given."""
    plan = _kept_plan("conv_transpose", (input, weight, bias), args,
                      lambda: _transpose_plan(input, weight, bias, args))
    if plan is None:
        return None
    geo, out, fmt, batched = plan
    return _finished(conv_transpose(input if batched else input[None], weight, geo, out), bias,
                     fmt, batched)


def _transpose_plan(input: Any, weight: Any, bias: Any, args: tuple[Any, ...]) -> Any:
    """(geometry, output size, memory format, batched) of a small transposed
    convolution, or ``None`` when the call is not one."""
    from ._args import check_transpose
    from .methods._canvas import output_shape

    x, geo, batched = check_transpose(input, weight, bias, *args)
    n, spatial = int(x.shape[0]), tuple(int(v) for v in x.shape[2:])
    out = output_shape(spatial, geo)
    c_out = int(weight.shape[1]) * geo.groups
    if n == 0 or not _wide_enough(x) or not applies(n * c_out, out, spatial, geo):
        return None
    return geo, out, backend.memory_format(x, weight), batched


def conv_auto(input: Any, weight: Any, bias: Any, args: tuple[Any, ...]) -> Any:
    """:func:`tconv_lib.conv` by its kept plan, as :func:`conv_transpose_auto`; ``args`` are
    ``(stride, padding, dilation, groups)``."""
    plan = _kept_plan("conv", (input, weight, bias), args,
                      lambda: _conv_plan(input, weight, bias, args))
    if plan is None:
        return None
    geo, out, fmt, batched = plan
    return _finished(conv(input if batched else input[None], weight, geo, out), bias, fmt,
                     batched)


def _conv_plan(input: Any, weight: Any, bias: Any, args: tuple[Any, ...]) -> Any:
    """:func:`_transpose_plan` for a convolution."""
    from ._args import check_conv
    from .conv import _output

    x, geo, batched = check_conv(input, weight, bias, *args)
    n, spatial = int(x.shape[0]), tuple(int(v) for v in x.shape[2:])
    out = _output(spatial, geo)
    if n == 0 or not _wide_enough(x) or not applies(n * int(x.shape[1]), spatial, out, geo):
        return None
    return geo, out, backend.memory_format(x, weight), batched


def conv_weight_grad_auto(input: Any, grad_output: Any, kernel_size: Any,
                          args: tuple[Any, ...]) -> Any:
    """:func:`tconv_lib.gradients.conv_weight_grad` by its kept plan, as
    :func:`conv_transpose_auto`; ``args`` are ``(stride, padding, dilation, groups)``."""
    plan = _kept_plan("conv_weight_grad", (input, grad_output, None), (kernel_size, *args),
                      lambda: _weight_grad_plan(input, grad_output, kernel_size, args))
    if plan is None:
        return None
    geo, batched = plan
    x, go = (input, grad_output) if batched else (input[None], grad_output[None])
    grad = conv_weight_grad(x, go, geo)
    return grad if _finite(grad) else None


def _weight_grad_plan(input: Any, grad_output: Any, kernel_size: Any,
                      args: tuple[Any, ...]) -> Any:
    """(geometry, batched) of a small weight gradient, or ``None``."""
    from .gradients import _check_weight_grad

    x, go, geo = _check_weight_grad(input, grad_output, kernel_size, *args)
    n, spatial = int(x.shape[0]), tuple(int(v) for v in x.shape[2:])
    out = tuple(int(v) for v in go.shape[2:])
    if n == 0 or not _wide_enough(x) or not applies(n * int(x.shape[1]), spatial, out, geo):
        return None
    return geo, x is input
