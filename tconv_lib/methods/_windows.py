r"""``col2im``'s phase planes without a column buffer: GEMMs over shifted input windows.

When ``d`` divides ``s`` and :math:`R = s/d` divides ``k`` on every axis, the taps of one axis
split evenly into :math:`M = k/R` block offsets: tap :math:`t = mR + r` paints phase plane
:math:`r` (canvas residue :math:`rd`), ``m`` rows down. Every (offset, residue) pair has exactly
one tap, so each phase plane is a sum of plain matrix products,

.. math::
    \text{plane}_{\mathbf r}[n, :, \mathbf q] = \sum_{\mathbf m}
        W_{\mathbf m \mathbf r}^{\mathsf T}\, x[n, :, \mathbf q - \mathbf m],
    \qquad W_{\mathbf m \mathbf r} = w[:, :, \mathbf m R + \mathbf r],

with :math:`x` read as zero outside the input. Each sample's input is placed in a zero-padded
grid of the planes' size :math:`Q` (:func:`.col2im.phase_blocks`, at least :math:`i + M - 1`)
and flattened together with the batch: a shift by :math:`\mathbf m` on the grid is then one
constant offset :math:`\sum_a m_a \prod_{b>a} Q_b` of the flat index, and whatever a shift drags
across a row or sample boundary comes from the padding, so it is zero. So:

- on torch, one GEMM per offset ``m`` adds straight into the planes (``baddbmm_``, batched
  over groups, with :math:`\beta = 1`): no column buffer and no separate adds;
- on NumPy, whose ``matmul`` cannot accumulate, and on torch where the planes are much
  larger than the input (:func:`stacks`), the :math:`M^D` shifted copies of the padded input
  are stacked (an im2col over the block offsets, each copy one contiguous run) and a single
  GEMM with inner dimension :math:`M^D C_{in}` makes every plane. Each extra ``baddbmm_``
  reads and writes all the planes again, while the stack copies only the input: FCN-32s'
  ``k = 64, s = 32`` layer has 21504 plane rows against 21 input channels.

The padding costs :math:`\prod Q / \prod i` times the useful multiplies. That pays off when the
windows are much smaller than the columns, i.e. :math:`C_{in} < C_{out} R^D` per group
(:func:`applies`, with a margin per backend): a 1-D ``k=16, s=8`` layer or FCN-32s'
``k=64, s=32``, where the columns are :math:`k^D C_{out}` rows against :math:`M^D C_{in}` here.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from .. import _threads, _workspace, backend
from .._args import Geometry
from ._canvas import spatial_of

# Most extra multiplies (planes' border rows: prod(Q) / prod(i)) worth paying for no columns.
MAX_BORDER_RATIO = 1.2
# Least (column rows) / (window rows), C_out R^D / C_in, for the windows to win. NumPy's strided
# adds cost 3-4x torch's per element, so on NumPy dropping them pays off sooner (interleaved
# timings on 2 cores: at 2x, a DCGAN 128->64 layer 0.85x -> 1.0x of PyTorch on NumPy, but
# 1.1x -> 1.0x on torch; at 4x, a 1-D k16 s8 layer gains on NumPy and ties on torch).
MIN_SAVING = {"numpy": 2, "torch": 4}
# On torch, stack the windows once the planes the extra baddbmm_ passes re-read and re-write,
# (M^D - 1) * C_out R^D rows, are this many times the stacked copies, M^D * C_in rows.
# Interleaved A/B on 2 cores (torch, one GEMM per offset / stacked / PyTorch's call): FCN-32s
# (ratio 768) 48.2 / 28.1 / 31.5 ms and 46.7 / 38.3 / 50.4 ms; the 1-D k16 s8 layer (ratio 2)
# 70.0 / 73.2 / 80.1 ms and 71.6 / 74.1 / 79.5 ms.
MIN_STACK_RATIO = 8
# Bytes of windows and planes per chunk of whole samples (see bytes_per_sample): smaller than
# col2im's SAMPLE_CHUNK_BYTES, as there are no adds to amortise (2-8 MB timed alike, 32 MB slower).
CHUNK_BYTES = 4 << 20


def offsets_and_residues(geo: Geometry) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """``(M, R)`` per axis when every tap is ``t = m*R + r`` with ``R = s/d``, else ``None``."""
    if not all(s % d == 0 and k % (s // d) == 0 for k, s, d in zip(
            geo.kernel, geo.stride, geo.dilation, strict=True)):
        return None
    residues = tuple(s // d for s, d in zip(geo.stride, geo.dilation, strict=True))
    return tuple(k // r for k, r in zip(geo.kernel, residues, strict=True)), residues


def applies(x: Any, weight: Any, geo: Geometry, step: tuple[int, ...],
            blocks: tuple[int, ...]) -> bool:
    """Use the windows: the taps split evenly, the planes hold one residue per ``step``
    (:func:`.col2im.residue_step`), the windows have fewer rows than the columns, the border
    costs little, and nothing needs gradients (the planes are accumulated in place)."""
    split = offsets_and_residues(geo)
    if (split is None or step != geo.dilation or backend.on_gpu(x)
            or backend.records_grad(x, weight)):
        return False
    c_in_g, c_out_g = int(weight.shape[0]) // geo.groups, int(weight.shape[1])
    border = math.prod(blocks) / math.prod(spatial_of(x))
    saving = MIN_SAVING[backend.family(x)]
    return c_in_g * saving <= c_out_g * math.prod(split[1]) and border <= MAX_BORDER_RATIO


def stacks(x: Any, weight: Any, geo: Geometry) -> bool:
    """Stack the shifted windows for one GEMM: always on NumPy, on torch from
    :data:`MIN_STACK_RATIO` on (see the module docstring)."""
    if not backend.is_torch(x):
        return True
    split = offsets_and_residues(geo)
    assert split is not None
    shifts, rows = math.prod(split[0]), int(weight.shape[1]) * math.prod(split[1])
    c_in_g = int(weight.shape[0]) // geo.groups
    return (shifts - 1) * rows >= MIN_STACK_RATIO * shifts * c_in_g


def bytes_per_sample(x: Any, weight: Any, geo: Geometry, blocks: tuple[int, ...]) -> int:
    """Scratch per sample: the padded input, the stacked windows (:func:`stacks`) and the
    planes."""
    split = offsets_and_residues(geo)
    assert split is not None
    c_in, c_out = int(weight.shape[0]), int(weight.shape[1]) * geo.groups
    stacked = math.prod(split[0]) if stacks(x, weight, geo) else 0
    rows = c_in * (1 + stacked) + c_out * math.prod(split[1])
    return rows * math.prod(blocks) * x.dtype.itemsize


def zero_border(grid: Any, spatial: tuple[int, ...]) -> None:
    """Zero a ``(..., *Q)`` grid wherever it lies past an input of size ``spatial``: for each
    axis ``a``, the part past the input on ``a`` and inside it on the axes before."""
    nd = len(spatial)
    for a in range(nd):
        grid[(Ellipsis,) + tuple(slice(0, i) for i in spatial[:a])
             + (slice(spatial[a], None),) + (slice(None),) * (nd - 1 - a)] = 0


def padded_input(x: Any, groups: int, blocks: tuple[int, ...], parallel: bool) -> Any:
    """``x`` as ``(g, C_in/g, n * prod(Q))``: each sample in a zero-padded ``Q`` grid."""
    xp = backend.namespace(x)
    n, c_in, spatial = int(x.shape[0]), int(x.shape[1]), spatial_of(x)
    c_in_g = c_in // groups
    grid = _workspace.empty(xp, x, (groups, c_in_g, n) + blocks, "windows_input")
    src = xp.permute_dims(xp.reshape(x, (n, groups, c_in_g) + spatial),
                          (1, 2, 0) + tuple(range(3, 3 + len(spatial))))

    def fill(lo: int, hi: int) -> None:
        zero_border(grid[:, lo:hi], spatial)
        grid[(slice(None), slice(lo, hi), slice(None))
             + tuple(slice(0, i) for i in spatial)] = src[:, lo:hi]

    _threads.run_chunks(fill, c_in_g, math.prod(grid.shape),
                        parallel=parallel and not backend.is_torch(x))
    return xp.reshape(grid, (groups, c_in_g, -1))


def phase_planes(x: Any, weight: Any, geo: Geometry,
                 blocks: tuple[int, ...], parallel: bool = True) -> Any:
    """Phase planes ``(C_out, R_1..R_D, n, Q_1..Q_D)`` as
    :func:`.col2im.phase_planes` returns them (with ``step = d``), made by
    GEMMs over shifted windows (see the module docstring)."""
    xp = backend.namespace(x, weight)
    n, g, nd = int(x.shape[0]), geo.groups, geo.ndim
    c_in_g, c_out_g = int(weight.shape[0]) // g, int(weight.shape[1])
    split = offsets_and_residues(geo)
    assert split is not None, "call applies() first"
    offsets, residues = split
    length = n * math.prod(blocks)
    flat = padded_input(x, g, blocks, parallel)
    strides = [math.prod(blocks[a + 1:]) for a in range(nd)]
    shifts = [sum(m * st for m, st in zip(ms, strides, strict=True))
              for ms in itertools.product(*(range(m) for m in offsets))]
    # weight (C_in, C_out/g, M_1, R_1, ..., M_D, R_D) with tap t = m*R + r
    w = xp.reshape(weight, (g, c_in_g, c_out_g) + tuple(
        v for m, r in zip(offsets, residues, strict=True) for v in (m, r)))
    m_axes = tuple(range(3, 3 + 2 * nd, 2))
    r_axes = tuple(range(4, 4 + 2 * nd, 2))
    rows = c_out_g * math.prod(residues)
    planes_shape = (g * c_out_g,) + residues + (n,) + blocks
    planes = _workspace.empty(xp, x, planes_shape, "planes")
    out = xp.reshape(planes, (g, rows, length))
    if not stacks(x, weight, geo):
        # (g, M.., C_out/g, R.., C_in/g): per offset, a rows x C_in/g matrix
        order = (0,) + m_axes + (2,) + r_axes + (1,)
        w_m = xp.reshape(xp.permute_dims(w, order),
                         (g, len(shifts), rows, c_in_g))
        # shift 0 covers every column
        backend.matmul_into(out, w_m[:, 0], flat)
        for j, shift in enumerate(shifts[1:], start=1):
            out[:, :, shift:].baddbmm_(w_m[:, j],
                                       flat[:, :, :length - shift])
        return planes
    windows = _workspace.empty(xp, x, (g, len(shifts), c_in_g, length),
                               "cols")

    def stack(lo: int, hi: int) -> None:
        for j, shift in enumerate(shifts):
            windows[:, j, lo:hi, :shift] = 0
            windows[:, j, lo:hi, shift:] = flat[:, lo:hi, :length - shift]

    _threads.run_chunks(stack, c_in_g, math.prod(windows.shape),
                        parallel=parallel and not backend.is_torch(x))
    # (g, C_out/g, R.., M.., C_in/g): rows (c, r), columns (m, c_in) as the
    # windows stack them
    w_all = xp.reshape(xp.permute_dims(w, (0, 2) + r_axes + m_axes + (1,)),
                       (g, rows, len(shifts) * c_in_g))
    stacked = xp.reshape(windows, (g, len(shifts) * c_in_g, length))
    backend.matmul_into(out, w_all, stacked)
    return planes
