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
:data:`MAX_ENTRIES` entries of :math:`G`, on the CPU, and only for finite operands: a product
with :math:`G` multiplies every entry by its zeros, and ``inf * 0`` or ``nan * 0`` is NaN, so one
non-finite pixel would turn its whole output plane into NaN where PyTorch (and every other
route) keeps it to the pixel's footprint. It adds the same terms as the other
routes (each times 1; the zeros change nothing), and it runs inside the caller's
half-precision rule (:func:`tconv_lib.backend.summed_in_float32`), which holds here as on
the other routes.
"""

from __future__ import annotations

import math
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
    entries = math.prod(conv_in) * math.prod(geo.kernel) * math.prod(conv_out)
    return (entries <= MAX_ENTRIES and rows * entries <= MAX_WORK
            and all(not backend.on_gpu(a) and _finite(a) for a in multiplied))


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

    with torch.inference_mode(False):      # kept for calls that autograd records, too
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
    c_in, c_out_g = int(weight.shape[0]), int(weight.shape[1])
    spatial = tuple(int(v) for v in x.shape[2:])
    taps, positions = math.prod(geo.kernel), math.prod(spatial)
    # W^T per group, (g, C_out/g * K, C_in/g)
    w_t = weight.reshape(g, c_in // g, c_out_g * taps).swapaxes(-1, -2)
    cols = w_t @ x.reshape(n, g, c_in // g, positions)       # (N, g, C_out/g * K, P)
    cols = cols.reshape(n, g * c_out_g, taps * positions)
    y = cols @ gather(x, out, spatial, geo, transposed=True)  # (N, C_out, prod(out))
    return y.reshape((n, g * c_out_g) + out)


def patches(x: Any, geo: Geometry, out: tuple[int, ...]) -> Any:
    """im2col of a batched ``x``: ``(N, g, C_in/g * K, prod(out))``, tap inside channel."""
    n, c_in = int(x.shape[0]), int(x.shape[1])
    spatial = tuple(int(v) for v in x.shape[2:])
    p = x.reshape(n, c_in, math.prod(spatial)) @ gather(x, spatial, out, geo)
    return p.reshape(n, geo.groups, c_in // geo.groups * math.prod(geo.kernel), math.prod(out))


def conv(x: Any, weight: Any, geo: Geometry, out: tuple[int, ...]) -> Any:
    """Batched convolution without bias, output spatial size ``out``: ``W`` times the
    patches."""
    n, c_out, g = int(x.shape[0]), int(weight.shape[0]), geo.groups
    w = weight.reshape(g, c_out // g, -1)                     # (g, C_out/g, C_in/g * K)
    return (w @ patches(x, geo, out)).reshape((n, c_out) + out)


def conv_weight_grad(x: Any, grad_output: Any, geo: Geometry) -> Any:
    """A convolution's weight gradient ``(C_out, C_in/g, *kernel)`` from the batched input and
    output gradient: the output gradient times the patches, summed over the batch."""
    n, c_out, g = int(x.shape[0]), int(grad_output.shape[1]), geo.groups
    out = tuple(int(v) for v in grad_output.shape[2:])
    go = grad_output.reshape(n, g, c_out // g, math.prod(out))
    grad = (go @ patches(x, geo, out).swapaxes(-1, -2)).sum(0)   # (g, C_out/g, C_in/g * K)
    return grad.reshape((c_out, int(x.shape[1]) // g) + geo.kernel)
