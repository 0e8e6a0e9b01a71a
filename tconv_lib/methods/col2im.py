r"""Transposed convolution as one GEMM followed by a col2im scatter-add.

The GEMM :math:`\text{cols} = W^{\mathsf T} X` multiplies the weight, viewed as a
:math:`(C_{out}/g \cdot \prod k) \times (C_{in}/g)` matrix per group, with the input viewed as
:math:`(C_{in}/g) \times (N \prod i)`. Column :math:`j` of ``cols`` holds the scaled kernel that
input position :math:`j` paints; ``col2im`` adds each tap's slab into the output at stride
offsets. This is how cuDNN-free frameworks implement it (it is the backward-data pass of an
im2col convolution), and it is tconv_lib's fast path. On a GPU, torch tensors take one of the
routes of :mod:`.col2im_gpu`, timed once per problem; on the CPU it works as follows:

- every multiply is useful (no inserted zeros), and they all happen in **one** large GEMM, the
  operation BLAS is best at;
- the taps are added block by block (:func:`block_taps`): taps ``m*s <= t*d < (m+1)*s`` land in
  the same stride block, so a kernel of size ``k`` needs only ``ceil(k/s)**D`` adds, each of
  whole contiguous rows, into *phase planes* (one plane per output residue modulo ``s``);
- one pixel-shuffle copy interleaves the planes into the output; ``padding`` is then a crop
  view, never a copy;
- when the taps tile the output exactly (``k == s``, ``d == 1``, ``output_padding == 0``, e.g.
  the U-Net ``k=2, s=2`` up-convolution) the columns *are* the phase planes: GEMM + one copy;
- with one input channel per group (depthwise) the GEMM is an outer product: there is nothing
  to reduce, so :mod:`._depthwise` does one fused multiply-add per tap into cache-sized blocks
  of phase planes instead;
- when the input rows are short (DCGAN's 16x16 maps) and ``C_out`` is at least as long,
  :mod:`._channels_last` turns the GEMM around (``X^T W``) so that every add moves whole
  channel vectors, into a buffer with the channels innermost that one copy transposes; where
  the padding crops a large share of the (input, tap) pairs (DCGAN's 4x4 maps: 23 %), it runs
  one GEMM per block of taps over only the inputs whose taps land;
- when the taps split evenly into phases (``d`` divides ``s``, ``s/d`` divides ``k``) and the
  columns would be several times larger than the input, :mod:`._windows` makes the phase planes
  with GEMMs over shifted windows of a zero-padded input instead: no columns and no adds.

The column buffer holds :math:`\prod k \cdot C_{out} \cdot N \prod i` values; it and the phase
planes live in a workspace reused across calls (:mod:`tconv_lib._workspace`). On the CPU the
work runs in chunks (whole samples; input rows when ``k == s``) so that each pass reads what
the one before has just left in cache, and for NumPy arrays the chunks run on a small thread
pool (:func:`tconv_lib._threads.run_tasks`).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from .. import _threads, _workspace, backend
from .._args import Geometry
from . import _channels_last, _depthwise, _windows
from ._canvas import output_shape, phase_window, spatial_of

# Below this many input positions per sample, one GEMM over the whole batch (after moving the
# channel axis first) beats one GEMM per sample.
_MIN_POSITIONS_PER_SAMPLE_GEMM = 256


def weight_matrix(weight: Any, groups: int) -> Any:
    """The weight as ``W^T`` per group: a ``(g, C_out/g * K, C_in/g)`` view, tap fastest."""
    xp = backend.namespace(weight)
    c_in = int(weight.shape[0])
    return xp.permute_dims(xp.reshape(weight, (groups, c_in // groups, -1)), (0, 2, 1))


def all_taps_gemm(x: Any, weight: Any, groups: int, batch_inner: bool = False) -> Any:
    """``cols[g, c_out, tap, n, p] = sum_ci w[g, ci, c_out, tap] x[n, g, ci, p]`` as one GEMM.

    Returns a (possibly permuted) view of shape ``(g, C_out/g, K, N, P)``, or with
    ``batch_inner`` a contiguous ``(g, C_out/g, K, P, N)`` (see :func:`batch_inner`).
    """
    xp = backend.namespace(x, weight)
    n, g = int(x.shape[0]), groups
    c_in, c_out_g = int(weight.shape[0]), int(weight.shape[1])
    positions = math.prod(spatial_of(x))
    k_total = math.prod(int(k) for k in weight.shape[2:])
    w_t = weight_matrix(weight, g)
    if batch_inner:
        x_pm = xp.reshape(xp.permute_dims(backend.group_view(x, g), (1, 2, 3, 0)),
                          (g, c_in // g, positions * n))
        cols = _workspace.matmul(xp, w_t, x_pm, (g, c_out_g * k_total, positions * n), "cols")
        return xp.reshape(cols, (g, c_out_g, k_total, positions, n))
    if n == 1 or positions < _MIN_POSITIONS_PER_SAMPLE_GEMM:
        # channel-major input (g, C_in/g, N*P): a free reshape when N == 1, else one input copy
        x_cm = xp.reshape(xp.permute_dims(backend.group_view(x, g), (1, 2, 0, 3)),
                          (g, c_in // g, n * positions))
        cols = _workspace.matmul(xp, w_t, x_cm, (g, c_out_g * k_total, n * positions), "cols")
        return xp.reshape(cols, (g, c_out_g, k_total, n, positions))
    cols = _workspace.matmul(xp, w_t[None], backend.group_view(x, g),    # (N, g, C_out/g*K, P)
                             (n, g, c_out_g * k_total, positions), "cols")
    cols = xp.reshape(cols, (n, g, c_out_g, k_total, positions))
    return xp.permute_dims(cols, (1, 2, 3, 0, 4))


def block_taps(k: int, s: int, d: int) -> list[tuple[int, slice, slice]]:
    """Group one axis's taps by the stride block they paint: tap ``t`` lands at ``t*d = m*s + r``.

    Returns ``(m, taps, residues)`` per block offset ``m``: the taps are consecutive and their
    residues ``r`` step by ``d``, so both are slices and a whole group is one add.
    """
    groups: dict[int, list[tuple[int, int]]] = {}
    for t in range(k):
        m, r = divmod(t * d, s)
        groups.setdefault(m, []).append((t, r))
    return [(m, slice(ts[0][0], ts[-1][0] + 1), slice(ts[0][1], ts[-1][1] + 1, d))
            for m, ts in groups.items()]


def tiles_output_once(geo: Geometry) -> bool:
    """True when every output element receives exactly one tap (``k == s``, ``d == 1``, no op)."""
    return all(k == s and d == 1 and op == 0 for k, s, d, op in zip(
        geo.kernel, geo.stride, geo.dilation, geo.output_padding, strict=True))


def conv_transpose(x: Any, weight: Any, geo: Geometry) -> Any:
    # on a GPU: other routes, chosen per problem by timing (col2im_gpu)
    if backend.on_gpu(x):
        from . import col2im_gpu

        return col2im_gpu.conv_transpose(x, weight, geo)
    route = cpu_route(x, weight, geo)
    if route == "depthwise":
        return depthwise(x, weight, geo)
    if route == "tiled in chunks":
        return tiled_in_chunks(x, weight, geo)
    if route == "channels last":
        return _channels_last.conv_transpose(x, weight, geo)
    return planes(x, weight, geo)       # "windows" or "block adds"


def cpu_route(x: Any, weight: Any, geo: Geometry) -> str:
    """The CPU route :func:`conv_transpose` takes, from the first that applies:

    - ``"depthwise"``: one input channel per group, so the GEMM is an outer product (not when
      autograd records: its per-tap products are written with ``out=``);
    - ``"tiled in chunks"``: ``k == s`` with no padding, so the columns are the output;
    - ``"windows"``: GEMMs over shifted input windows, no column buffer (:mod:`._windows`);
    - ``"channels last"``: input rows no longer than ``C_out`` (:mod:`._channels_last`), where
      the batch is not put innermost (or the padding crops enough pairs for one GEMM per
      block of taps) and, on torch, every residue receives taps;
    - ``"block adds"``: the GEMM, block adds into phase planes, one pixel shuffle.
    """
    if int(weight.shape[0]) == geo.groups and not backend.records_grad(x, weight):
        return "depthwise"
    if tiles_in_chunks(geo):
        return "tiled in chunks"
    step = residue_step(x, geo)
    if _windows.applies(x, weight, geo, step, phase_blocks(x, geo)):
        return "windows"
    # residues without taps (dilation sharing a factor with the stride) cost the channels-last
    # buffer a zeroing pass over the output that the planes' shuffle folds into its copy: on
    # torch that lost (dilated-k3s2d2 10.6 -> 11.1 ms), on NumPy, whose row adds are slower, it
    # still won (12.8 -> 11.5 ms; interleaved A/B, 2 cores)
    if ((step == (1,) * geo.ndim or not backend.is_torch(x))
            and (not batch_inner(x, geo) or _channels_last.skips_cropped(x, geo))
            and _channels_last.applies(x, weight, geo)):
        return "channels last"
    return "block adds"


def phase_blocks(x: Any, geo: Geometry) -> tuple[int, ...]:
    """Rows of each phase plane per axis: canvas position ``q*s + r`` lives at plane ``r``,
    row ``q``, so every block of taps adds whole contiguous rows."""
    return tuple(i - 1 + -(-(d * (k - 1) + 1 + op) // s) for i, k, s, d, op in zip(
        spatial_of(x), geo.kernel, geo.stride, geo.dilation, geo.output_padding, strict=True))


def depthwise(x: Any, weight: Any, geo: Geometry) -> Any:
    """One input channel per group: :mod:`._depthwise`'s multiply-add per tap."""
    return _depthwise.conv_transpose(x, weight, geo, phase_blocks(x, geo),
                                     output_shape(spatial_of(x), geo))


def planes(x: Any, weight: Any, geo: Geometry) -> Any:
    """The general case: GEMM, block adds into phase planes, one pixel-shuffle copy; in
    chunks of whole samples on the CPU."""
    xp = backend.namespace(x, weight)
    n, g, c_out_g = int(x.shape[0]), geo.groups, int(weight.shape[1])
    spatial = spatial_of(x)
    blocks = phase_blocks(x, geo)
    # (g, C_out/g) merged into one channel axis: every pass below is independent per channel,
    # so NumPy can run channel ranges on several threads (torch threads each operation itself)
    out = output_shape(spatial, geo)
    y = backend.empty_cpu(xp, x, (n, g * c_out_g) + out)
    step = residue_step(x, geo)
    windowed = _windows.applies(x, weight, geo, step, blocks)
    inner = not windowed and batch_inner(x, geo)
    # Cache blocking: whole samples at a time, at least SAMPLE_CHUNK_BYTES of columns each
    # (equal chunks), so the block adds and the shuffle read what the GEMM has just written
    # while it is still cached.
    if windowed:      # (the windows path's own scratch and chunk size)
        per_sample, chunk = _windows.bytes_per_sample(x, weight, geo, blocks), _windows.CHUNK_BYTES
    else:
        per_sample = g * c_out_g * math.prod(geo.kernel) * math.prod(spatial) * x.dtype.itemsize
        chunk = SAMPLE_CHUNK_BYTES
    n_chunks = 1 if inner or backend.on_gpu(x) else max(1, per_sample * n // chunk)
    samples = -(-n // n_chunks)
    threads = _threads.get_num_threads()
    # NumPy: at least one task per thread, by samples or else (one group) by output channels
    c_split = (min(threads, c_out_g) if not backend.is_torch(x) and g == 1
               and -(-n // samples) < threads else 1)
    tasked = in_tasks(x, -(-n // samples) * c_split)
    if tasked and c_split == 1:
        samples = min(samples, -(-n // threads))
    starts = [(n0, c_out_g * j // c_split, c_out_g * (j + 1) // c_split)
              for n0 in range(0, n, samples) for j in range(c_split)]

    def chunks(lo: int, hi: int) -> None:
        for n0, c0, c1 in starts[lo:hi]:
            w, yc = (weight, y) if c_split == 1 else (weight[:, c0:c1], y[:, c0:c1])
            planes = (_windows.phase_planes(x[n0:n0 + samples], w, geo, blocks, not tasked)
                      if windowed else
                      phase_planes(x[n0:n0 + samples], w, geo, blocks, inner, not tasked))
            pixel_shuffle(planes, blocks, yc[n0:n0 + samples], geo, step, inner, not tasked)

    _threads.run_tasks(chunks, len(starts), parallel=tasked)
    return y


def in_tasks(x: Any, chunks: int) -> bool:
    """NumPy work in several chunks runs them on threads, each chunk one task (see
    :func:`tconv_lib._threads.run_tasks`); torch threads each operation itself."""
    return not backend.is_torch(x) and chunks > 1


def phase_planes(x: Any, weight: Any, geo: Geometry, blocks: tuple[int, ...],
                 inner: bool, parallel: bool = True) -> Any:
    """The GEMM, then the block adds: phase planes ``(C, r_1..r_D, n, q_1..q_D)`` (with
    ``inner``, ``(C, r_1..r_D, q_1..q_D, n)``), in the reused workspace. ``parallel``: NumPy
    may split the adds over threads (not when the caller already runs on them)."""
    xp = backend.namespace(x, weight)
    n, spatial = int(x.shape[0]), spatial_of(x)
    gc = geo.groups * int(weight.shape[1])

    def with_batch(sp: tuple) -> tuple:   # the batch axis before the spatial axes, or after
        return sp + (slice(None),) if inner else (slice(None),) + sp

    cols = all_taps_gemm(x, weight, geo.groups, inner)
    cols = xp.reshape(cols, (gc,) + geo.kernel + ((*spatial, n) if inner else (n, *spatial)))
    if tiles_output_once(geo):
        return cols                                     # each tap is exactly one phase plane
    step = residue_step(x, geo)
    planes = _workspace.empty(xp, x, (gc,) + tuple(s // r for s, r in zip(
        geo.stride, step, strict=True)) + ((*blocks, n) if inner else (n, *blocks)), "planes")
    per_axis = [[(m, taps, slice(res.start // r, (res.stop - 1) // r + 1, res.step // r))
                 for m, taps, res in block_taps(k, s, d)]
                for k, s, d, r in zip(geo.kernel, geo.stride, geo.dilation, step, strict=True)]

    def add_blocks(lo: int, hi: int) -> None:
        planes[lo:hi] = 0
        for combo in itertools.product(*per_axis):
            taps = tuple(t for _, t, _ in combo)
            target = planes[(slice(lo, hi),) + tuple(r for _, _, r in combo)
                            + with_batch(tuple(slice(m, m + i) for (m, _, _), i in zip(
                                combo, spatial, strict=True)))]
            target += cols[(slice(lo, hi),) + taps]

    _threads.run_chunks(add_blocks, gc, math.prod(planes.shape),
                        parallel=parallel and not backend.is_torch(x))
    return planes


# Below this many input positions per sample, the rows that the block adds move are too short
# (a DCGAN 4x4 input: 4 elements): the batch goes innermost instead (see batch_inner).
_MAX_POSITIONS_BATCH_INNER = 64


def batch_inner(x: Any, geo: Geometry) -> bool:
    """Put the batch axis innermost in the columns and phase planes.

    With a tiny input (``4 x 4``) each block add moves rows of ``i`` elements, and the adds
    cost more than the GEMM's memory traffic. Columns ordered ``(position, n)`` make each row
    ``i * N`` long; the pixel shuffle then moves the batch axis back out, which pays off only
    while the output is small. Only where taps overlap (otherwise there are no adds), and
    with the plane-by-plane shuffle.
    """
    return (int(x.shape[0]) > 1 and math.prod(spatial_of(x)) < _MAX_POSITIONS_BATCH_INNER
            and not tiles_output_once(geo) and not uses_permuted_copy(x, geo))


def residue_step(x: Any, geo: Geometry) -> tuple[int, ...]:
    """Per axis, ``gcd(s, d)``: taps land only on residues that are multiples of it.

    With ``dilation`` sharing a factor with ``stride`` (e.g. ``d = s = 2``) the other residues
    receive no tap at all, so they get no phase plane: :func:`pixel_shuffle` writes zeros there.
    That needs its plane-by-plane copy, so the permuted-copy cases keep every plane.
    """
    if uses_permuted_copy(x, geo):
        return (1,) * geo.ndim
    return tuple(math.gcd(s, d) for s, d in zip(geo.stride, geo.dilation, strict=True))


def receives_taps(residue: tuple[int, ...], step: tuple[int, ...]) -> bool:
    """Taps land on ``residue`` (per axis a multiple of :func:`residue_step`'s ``step``)."""
    return not any(r % k for r, k in zip(residue, step, strict=True))


def uses_permuted_copy(x: Any, geo: Geometry) -> bool:
    """:func:`pixel_shuffle` interleaves all planes in one permuted copy (large strides, GPU)."""
    return max(geo.stride) > _MAX_PLANE_STRIDE or backend.on_gpu(x)


def in_pairs(x: Any, geo: Geometry) -> bool:
    """The copy into the output writes its last axis two columns at a time: torch on the CPU,
    ``s = 2`` on that axis, a copy tap by tap or plane by plane (not :func:`uses_permuted_copy`).
    Each pair is then one complex number (:func:`tconv_lib.backend.interleave_into`)."""
    return (backend.is_torch(x) and geo.stride[-1] == 2 and not uses_permuted_copy(x, geo))


# Bytes of columns per chunk in tiled_in_chunks: about what the two cores' L2 caches hold. Torch,
# whose copy interleaves in one pass (backend.interleave_into), did better with twice that
# (interleaved A/B, 2 cores: the U-Net up-convolutions 4-10 % faster; NumPy 0-4 % slower).
CHUNK_BYTES = {"numpy": 4 << 20, "torch": 8 << 20}
# Least bytes of columns per chunk of whole samples where taps overlap. Larger than CHUNK_BYTES:
# each chunk is one more round of GEMM, adds and copies, and smaller ones lose more than the
# cache saves (interleaved A/B on the suite, 2 cores: a 1-D k16 s8 layer 53 -> 45 ms in two
# chunks; 4 and 16 MB chunks were slower on the dilated and DCGAN layers).
SAMPLE_CHUNK_BYTES = 32 << 20


def tiles_in_chunks(geo: Geometry) -> bool:
    """``k == s`` with no ``padding`` goes through :func:`tiled_in_chunks` (on the CPU; a GPU
    takes the routes of :mod:`.col2im_gpu`)."""
    return tiles_output_once(geo) and not any(geo.padding)


def tiled_in_chunks(x: Any, weight: Any, geo: Geometry) -> Any:
    """``k == s``, ``padding == 0``: a GEMM and a pixel-shuffle copy per cache-sized chunk.

    Every output element receives exactly one tap, so the output *is* the columns, permuted:
    viewed as ``(N, C_out, i_1, s_1, ..., i_D, s_D)`` it takes each chunk of columns in one
    copy. The chunks are whole samples, or rows of the first spatial axis of one sample, with
    about :data:`CHUNK_BYTES` of columns each (per backend), so the copy reads columns the GEMM
    has just left in cache instead of a buffer as large as the output (a U-Net 128->64
    up-convolution at 256x256: 38 ms -> 31 ms on 2 cores). With ``s = 2`` on the last axis, each
    pair of taps along it is written in one pass (:func:`tconv_lib.backend.interleave_into`).
    """
    xp = backend.namespace(x, weight)
    n, g, nd = int(x.shape[0]), geo.groups, geo.ndim
    c_in, c_out_g = int(weight.shape[0]), int(weight.shape[1])
    spatial, k_total = spatial_of(x), math.prod(geo.kernel)
    w_t = weight_matrix(weight, g)
    y = backend.empty_cpu(xp, x, (n, g * c_out_g) + output_shape(spatial, geo))
    y_split = xp.reshape(y, (n, g * c_out_g) + tuple(
        v for i, s in zip(spatial, geo.stride, strict=True) for v in (i, s)))
    row = g * c_out_g * k_total * math.prod(spatial[1:]) * x.dtype.itemsize
    chunk_bytes = CHUNK_BYTES[backend.family(x)]
    rows = max(1, min(spatial[0], chunk_bytes // row))
    samples = max(1, chunk_bytes // (row * spatial[0])) if rows == spatial[0] else 1
    x_rows = xp.reshape(x, (n, g, c_in // g, spatial[0], -1))
    # (n, C, k_1..k_D, r, i_2..i_D) -> (n, C, r, k_1, i_2, k_2, ...)
    order = (0, 1, 2 + nd) + tuple(v for a in range(nd) for v in (
        (2 + a,) if a == 0 else (2 + nd + a, 2 + a)))
    # tap by tap (rows of i elements written s apart), as pixel_shuffle does for small strides:
    # 3x faster than one permuted copy on NumPy, whose inner loop would run over s elements
    taps = (list(itertools.product(*(range(k) for k in geo.kernel)))
            if max(geo.stride) <= _MAX_PLANE_STRIDE else None)
    pairs = in_pairs(x, geo)
    starts = [(n0, h0) for n0 in range(0, n, samples) for h0 in range(0, spatial[0], rows)]
    tasked = in_tasks(x, len(starts))

    def chunk(n0: int, h0: int) -> None:
        n1, h1 = min(n, n0 + samples), min(spatial[0], h0 + rows)
        x_chunk = xp.reshape(x_rows[n0:n1, :, :, h0:h1], (n1 - n0, g, c_in // g, -1))
        cols = _workspace.matmul(xp, w_t[None], x_chunk, (n1 - n0, g, c_out_g * k_total,
                                                          int(x_chunk.shape[-1])), "cols")
        cols = xp.reshape(cols, (n1 - n0, g * c_out_g) + geo.kernel + (h1 - h0,)
                          + spatial[1:])
        dst = y_split[n0:n1, :, h0:h1]

        def copy(lo: int, hi: int) -> None:
            if taps is None:
                dst[:, lo:hi] = xp.permute_dims(cols, order)[:, lo:hi]
                return
            head = (slice(None), slice(lo, hi))
            for t in taps:     # dst axes: (n, C, i_1, k_1, i_2, k_2, ...)
                at = head + tuple(v for a in t for v in (slice(None), a))
                if not pairs:
                    dst[at] = cols[head + t]
                elif t[-1] == 0:   # last-axis taps 0 and 1 in one interleaving write
                    backend.interleave_into(dst[at[:-1]], cols[head + t],
                                            cols[head + t[:-1] + (1,)])

        _threads.run_chunks(copy, g * c_out_g, math.prod(y.shape),
                            parallel=not tasked and not backend.is_torch(x))

    def chunks(lo: int, hi: int) -> None:
        for start in starts[lo:hi]:
            chunk(*start)

    _threads.run_tasks(chunks, len(starts), parallel=tasked)
    return y


# For small strides, one strided copy per phase plane (contiguous reads, writes s apart) beats
# one permuted copy of everything (contiguous runs of only s elements); for large strides the
# permuted copy wins and avoids prod(s) separate copies.
_MAX_PLANE_STRIDE = 4


def pixel_shuffle(planes: Any, blocks: tuple[int, ...], y: Any, geo: Geometry,
                  step: tuple[int, ...] | None = None, inner: bool = False,
                  parallel: bool = True) -> None:
    """Interleave phase planes ``(C, r_1..r_D, n, q_1..q_D)`` into ``y`` of shape
    ``(n, C, *out)``.

    Canvas position ``q*s + r`` is output position ``q*s + r - p``: the crop is part of the copy.
    With ``step`` (:func:`residue_step`), plane ``r`` holds residue ``r * step`` and the
    residues in between are zeros; with ``inner`` (:func:`batch_inner`) the planes are
    ``(C, r_1..r_D, q_1..q_D, n)``. On torch with ``s = 2`` on the last axis, the planes go two
    by two (:func:`shuffle_pairs`).
    """
    step = step or (1,) * geo.ndim
    xp = backend.namespace(planes)
    nd = geo.ndim
    c, n = int(planes.shape[0]), int(planes.shape[-1 if inner else 1 + nd])
    out = tuple(int(v) for v in y.shape[2:])
    # One permuted copy for large strides, and on a GPU, where prod(s) copies are prod(s) kernel
    # launches; both branches write the same values (tests/test_fast_paths.py).
    if uses_permuted_copy(planes, geo):
        order = (1 + nd, 0) + tuple(v for a in range(nd) for v in (2 + nd + a, 1 + a))
        crop = tuple(slice(p, p + o) for p, o in zip(geo.padding, out, strict=True))

        def copy(lo: int, hi: int) -> None:
            canvas = xp.reshape(xp.permute_dims(planes[lo:hi], order), (n, hi - lo) + tuple(
                q * s for q, s in zip(blocks, geo.stride, strict=True)))
            y[:, lo:hi] = canvas[(Ellipsis,) + crop]
    else:
        # (C, n, q...) or (C, q..., n) -> (n, C, q...)
        to_nc = (1 + nd, 0) + tuple(range(1, 1 + nd)) if inner else (1, 0) + tuple(range(2,
                                                                                       2 + nd))
        residues = list(itertools.product(*(range(s) for s in geo.stride)))
        windows = [(r, w) for r in residues if receives_taps(r, step)
                   and (w := phase_window(r, blocks, out, geo)) is not None]
        no_taps = max(step) > 1                 # some residues receive no tap: zeros
        # planes two by two (not with the batch inner, whose permuted reads made it slower:
        # interleaved A/B, DCGAN 512->256 at 4x4)
        pairs = in_pairs(planes, geo) and not inner and out[-1] >= 2

        def copy(lo: int, hi: int) -> None:
            if pairs:
                shuffle_pairs(planes, blocks, y, geo, step, lo, hi)
                return
            if no_taps:                           # one contiguous pass, not one strided per phase
                y[:, lo:hi] = 0
            for residue, (dst, src) in windows:
                plane = planes[(slice(lo, hi),) + tuple(r // k for r, k in zip(
                    residue, step, strict=True)) + (src + (slice(None),) if inner
                                                    else (slice(None),) + src)]
                y[(slice(None), slice(lo, hi)) + dst] = xp.permute_dims(plane, to_nc)

    _threads.run_chunks(copy, c, math.prod(y.shape),
                        parallel=parallel and not backend.is_torch(planes))


def shuffle_pairs(planes: Any, blocks: tuple[int, ...], y: Any, geo: Geometry,
                  step: tuple[int, ...], lo: int, hi: int) -> None:
    """:func:`pixel_shuffle`'s plane-by-plane copy for channels ``lo:hi`` of torch planes with
    ``s = 2`` on the last axis (:func:`in_pairs`): output columns ``2j`` and ``2j + 1`` come
    from the two residues of that axis, so each pair of planes is written in one interleaving
    pass (:func:`tconv_lib.backend.interleave_into`) instead of two copies ``s`` apart. A residue
    that receives no tap (``step``) contributes zeros; rows whose residue receives none are
    zeroed here, so the output needs no zeroing pass first.

    Output column ``o`` is canvas column ``o + p``, residue ``(o + p) % 2``, plane row
    ``(o + p) // 2``: the even columns start at row ``p // 2``, the odd ones at
    ``(p + 1) // 2``.
    """
    xp, nd, out = backend.namespace(planes), geo.ndim, tuple(int(v) for v in y.shape[2:])
    o_last, p_last = out[-1], geo.padding[-1]
    half = o_last // 2
    r_even, r_odd = p_last % 2, (p_last + 1) % 2
    to_nc = (1, 0) + tuple(range(2, 2 + nd))          # (C, n, q...) -> (n, C, q...)
    head = (slice(None), slice(lo, hi))

    def plane(prefix: tuple[int, ...], src: tuple[slice, ...], r: int, q0: int,
              count: int) -> Any:
        residue = prefix + (r,)
        if not receives_taps(residue, step):
            return None                               # no tap lands here: zeros
        index = ((slice(lo, hi),) + tuple(a // k for a, k in zip(residue, step, strict=True))
                 + (slice(None),) + src + (slice(q0, q0 + count),))
        return xp.permute_dims(planes[index], to_nc)

    for prefix in itertools.product(*(range(s) for s in geo.stride[:-1])):
        window = phase_window(prefix + (r_even,), blocks, out, geo)
        if window is None:                            # padding crops these rows away
            continue
        dst, src = window[0][:-1], window[1][:-1]
        if not receives_taps(prefix, step[:-1]):
            y[head + dst] = 0
            continue
        even = plane(prefix, src, r_even, p_last // 2, half + o_last % 2)
        odd = plane(prefix, src, r_odd, (p_last + 1) // 2, half)
        target = y[head + dst + (slice(0, 2 * half),)].unflatten(-1, (half, 2))
        backend.interleave_into(target, None if even is None else even[..., :half], odd)
        if o_last % 2:                                # the last column has no partner
            y[head + dst + (o_last - 1,)] = 0 if even is None else even[..., half]

