r"""Checkerboard artifacts of strided transposed convolution: where they come from, how to measure
them, and the standard fixes.

**Overlap.** A transposed convolution with stride :math:`s`, kernel size :math:`k` and dilation
:math:`d` paints one copy of the kernel per input position, the copies :math:`s` apart. Along one
axis, output position :math:`o` receives one term per tap :math:`t \in \{0..k-1\}` with
:math:`o \equiv t d \pmod s`. Away from the borders the count depends only on
:math:`r = o \bmod s`:

.. math:: n(r) = \#\{\,t \in \{0, \dots, k-1\} : t d \equiv r \pmod s\,\}

(for :math:`d = 1`: :math:`n(r) \in \{\lfloor k/s \rfloor, \lceil k/s \rceil\}`). The overlap is
*even* when :math:`n` is constant, which for :math:`d = 1` means :math:`s \mid k`. In :math:`D`
dimensions the count is the product of the per-axis counts, so the max/min ratio of the interior
is the product of the per-axis ratios (:math:`k=5, s=2`: :math:`3/2` in 1-D, :math:`9/4` in 2-D).

**Measuring.** :func:`checkerboard_score` is the fraction of a signal's (mean-removed) energy that
is periodic with period :math:`s` along every spatial axis. By Parseval this equals the share of
the spectral energy at the :math:`s^D - 1` non-zero frequencies that are multiples of
:math:`1/s` cycles per sample (the "sub-period" or alias frequencies of the stride).

**Fixes.** :class:`ResizeConv` (interpolate, then a stride-1 convolution; Odena et al., 2016) and
:class:`PixelShuffleUp` with :func:`icnr_` initialisation (Shi et al., 2016; Aitken et al., 2017).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ._args import IntOrTuple, as_tuple
from .transpose import conv_transpose

__all__ = ["PixelShuffleUp", "ResizeConv", "block_edge_ratio", "checkerboard_score", "icnr_",
           "interior",
           "is_even", "overlap_counts", "overlap_map", "periodic_component", "unevenness"]


def _check_geometry(kernel_size: IntOrTuple, stride: IntOrTuple, dilation: IntOrTuple,
                    ndim: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    k = as_tuple("kernel_size", kernel_size, ndim)
    s = as_tuple("stride", stride, ndim)
    d = as_tuple("dilation", dilation, ndim)
    for name, values in (("kernel_size", k), ("stride", s), ("dilation", d)):
        if any(v < 1 for v in values):
            raise ValueError(f"{name} must be positive in every dimension, got {name}={values}")
    return k, s, d


def _ndim_of(*values: Any) -> int:
    for v in values:
        if not isinstance(v, int):
            return len(tuple(v))
    return 1


def overlap_counts(kernel_size: int, stride: int, dilation: int = 1) -> list[int]:
    r"""Interior overlap per output phase along one axis: ``n(r)`` for ``r = 0 .. stride-1``.

    ``n(r)`` is the number of kernel taps :math:`t` with :math:`t \cdot d \equiv r \pmod s`,
    i.e. how many painted kernel copies cover an interior output position :math:`o` with
    :math:`o \bmod s = r`. This is arithmetic only; :func:`overlap_map` computes the same counts
    by running a transposed convolution.

    >>> overlap_counts(3, 2), overlap_counts(4, 2), overlap_counts(5, 2), overlap_counts(1, 2)
    ([2, 1], [2, 2], [3, 2], [1, 0])
    """
    (k,), (s,), (d,) = _check_geometry(kernel_size, stride, dilation, 1)
    counts = [0] * s
    for t in range(k):
        counts[(t * d) % s] += 1
    return counts


def overlap_map(kernel_size: IntOrTuple, stride: IntOrTuple,
                input_size: IntOrTuple | None = None,
                dilation: IntOrTuple = 1) -> np.ndarray:
    r"""How many kernel copies cover each output position of a transposed
    convolution.

    It is the transposed convolution of an all-ones input with an all-ones
    kernel (one channel, no padding), computed with
    :func:`tconv_lib.conv_transpose` in float64:

    .. math:: m[\mathbf{o}] = \#\{(\mathbf{j}, \mathbf{t}) :
              \mathbf{j}s + \mathbf{t}d = \mathbf{o}\}

    Args:
        kernel_size: ``k``, an int or one per spatial dimension (the
            number of dimensions is taken from the first tuple among
            ``kernel_size``, ``stride``, ``input_size``, ``dilation``; all
            ints means 1-D).
        stride: ``s``, distance between the painted copies.
        input_size: length of the all-ones input per axis (default: enough
            for at least three full periods of interior,
            ``ceil(d(k-1)/s) + 3``).
        dilation: ``d``, spacing of the kernel taps.

    Returns:
        An integer array of shape ``(i-1)s + d(k-1) + 1`` per axis. The
        borders (the first and last ``d(k-1)`` positions) see fewer copies;
        :func:`interior` crops them.
    """
    ndim = _ndim_of(kernel_size, stride,
                    input_size if input_size is not None else 1, dilation)
    k, s, d = _check_geometry(kernel_size, stride, dilation, ndim)
    if input_size is None:
        size = tuple(-(-dd * (kk - 1) // ss) + 3
                     for kk, ss, dd in zip(k, s, d, strict=True))
    else:
        size = as_tuple("input_size", input_size, ndim)
        if any(v < 1 for v in size):
            raise ValueError(f"input_size must be positive in every "
                             f"dimension, got input_size={size}")
    ones_x = np.ones((1, 1) + size)
    ones_w = np.ones((1, 1) + k)
    out = conv_transpose(ones_x, ones_w, stride=s, dilation=d)
    return np.rint(out[0, 0]).astype(np.int64)


def interior(m: np.ndarray, kernel_size: IntOrTuple, dilation: IntOrTuple = 1) -> np.ndarray:
    r"""The positions of an :func:`overlap_map` that every kernel tap can reach.

    Along each axis these are :math:`d(k-1) \le o \le (i-1)s`. Only among
    the first ``d(k-1)`` and the last ``d(k-1)`` positions can a tap's input
    position be missing (border); not all of them are short of copies (none
    when ``k == s`` and ``d == 1``; with ``k == s == 2``, ``d == 3`` some
    border positions get none), but all are cropped, conservatively.
    """
    ndim = m.ndim
    k = as_tuple("kernel_size", kernel_size, ndim)
    d = as_tuple("dilation", dilation, ndim)
    reach = [dd * (kk - 1) for kk, dd in zip(k, d, strict=True)]
    if any(m.shape[a] - 2 * r < 1 for a, r in enumerate(reach)):
        raise ValueError(f"the map of shape {m.shape} has no interior for kernel_size={k}, "
                         f"dilation={d}: use a larger input_size")
    return m[tuple(slice(r, m.shape[a] - r) for a, r in enumerate(reach))]


def unevenness(kernel_size: IntOrTuple, stride: IntOrTuple, dilation: IntOrTuple = 1) -> float:
    r"""Max/min overlap over the interior of the overlap map (1.0 means perfectly even).

    It equals :math:`\prod_{\text{axes}} \max_r n(r) / \min_r n(r)` (see
    :func:`overlap_counts`). It is ``inf`` when some phase gets no kernel copy at all (``k < s``,
    or a dilation that shares a factor with the stride): those outputs are only bias, "holes".

    >>> unevenness(5, 2), unevenness((5, 5), 2), unevenness(4, 2)
    (1.5, 2.25, 1.0)
    """
    ndim = _ndim_of(kernel_size, stride, dilation)
    k, s, d = _check_geometry(kernel_size, stride, dilation, ndim)
    inner = interior(overlap_map(k, s, dilation=d), k, d)
    low, high = int(inner.min()), int(inner.max())
    return math.inf if low == 0 else high / low


def is_even(kernel_size: IntOrTuple, stride: IntOrTuple, dilation: IntOrTuple = 1) -> bool:
    """Whether every interior output position is covered by the same number of kernel copies.

    Without dilation this is the rule ``kernel_size % stride == 0`` on every axis. Even overlap
    removes the *structural* cause of checkerboards only: a kernel whose taps in different phases
    have different sums (as at random initialisation, or after training) still makes them.
    """
    ndim = _ndim_of(kernel_size, stride, dilation)
    k, s, d = _check_geometry(kernel_size, stride, dilation, ndim)
    return all(len(set(overlap_counts(kk, ss, dd))) == 1 for kk, ss, dd in zip(k, s, d,
                                                                                strict=True))


def _check_period(stride: IntOrTuple, ndim: int) -> tuple[int, ...]:
    """``ndim`` (a positive int) and ``stride`` (positive, one per axis or one for all)."""
    if isinstance(ndim, bool) or not isinstance(ndim, (int, np.integer)):
        raise TypeError(f"ndim (the number of trailing spatial axes) must be an int, got "
                        f"ndim={ndim!r}")
    if ndim < 1:
        raise ValueError(f"ndim (the number of trailing spatial axes) must be positive, got "
                         f"ndim={ndim}")
    s = as_tuple("stride", stride, int(ndim))
    if any(v < 1 for v in s):
        raise ValueError(f"stride must be positive in every dimension, got stride={s}")
    return s


def _check_scale(scale: Any) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)):
        raise TypeError(f"scale must be an int, got scale={scale!r}")
    if scale < 1:
        raise ValueError(f"scale must be positive, got scale={scale}")
    return int(scale)


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _split_phases(x: np.ndarray, s: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """Crop the last ``len(s)`` axes to multiples of ``s``; view as (..., n0, s0, n1, s1, ...)."""
    ndim = len(s)
    lead = x.shape[:-ndim]
    spatial = x.shape[-ndim:]
    if any(n < ss for n, ss in zip(spatial, s, strict=True)):
        raise ValueError(f"every spatial size must be at least the stride {s}, got the spatial "
                         f"shape {spatial}")
    x = x[(...,) + tuple(slice(0, (n // ss) * ss) for n, ss in zip(spatial, s, strict=True))]
    shape = lead + tuple(v for n, ss in zip(spatial, s, strict=True) for v in (n // ss, ss))
    return x.reshape(shape), lead


def periodic_component(x: Any, stride: IntOrTuple = 2, ndim: int = 2) -> np.ndarray:
    r"""The part of ``x`` that repeats with period ``stride`` on the last ``ndim`` axes.

    After removing the mean over the spatial axes, each position is replaced by the average of
    its phase (its index modulo ``stride`` on every axis). Spatial sizes are cropped to multiples
    of ``stride``. The result has the cropped shape of ``x``.
    """
    s = _check_period(stride, ndim)
    a = _as_numpy(x)
    if a.ndim < ndim:
        raise ValueError(f"x must have at least ndim={ndim} dims, got x.shape={a.shape}")
    v, lead = _split_phases(a, s)
    block_axes = tuple(len(lead) + 2 * i for i in range(ndim))
    spatial_axes = tuple(len(lead) + i for i in range(2 * ndim))
    centred = v - v.mean(axis=spatial_axes, keepdims=True)
    phase_mean = centred.mean(axis=block_axes, keepdims=True)
    out = np.broadcast_to(phase_mean, v.shape)
    return out.reshape(lead + tuple(n * ss for n, ss in zip(v.shape[len(lead)::2], s,
                                                            strict=True)))


def checkerboard_score(x: Any, stride: IntOrTuple = 2,
                       ndim: int = 2) -> float:
    r"""Fraction of the mean-removed energy of ``x`` that is periodic with
    period ``stride``.

    .. math:: \text{score}(x) = \frac{\lVert P_s(x - \bar x) \rVert^2}
                                     {\lVert x - \bar x \rVert^2} \in [0, 1]

    where :math:`\bar x` is the spatial mean and :math:`P_s` averages each
    phase (see :func:`periodic_component`). Equivalently (Parseval, sizes
    divisible by ``s``): the share of the power spectrum, DC removed, at the
    :math:`s^D - 1` frequencies :math:`(m_1 N_1/s, \dots, m_D N_D/s)`,
    :math:`m \in \{0..s-1\}^D \setminus \{0\}`.

    0 for a constant or perfectly phase-balanced signal, 1 for a pure
    checkerboard such as :math:`(-1)^{i+j}`. White noise of :math:`P`
    positions per signal scores :math:`(s^D-1)/(P-1)` in expectation (over
    many pooled signals, the ratio of the expected energies): removing the
    mean leaves :math:`P - 1` dimensions, of which the periodic part spans
    :math:`s^D - 1`. Spatial sizes are first cropped to multiples of ``s``.
    A period-4 score (``stride=4``) also contains the period-2 part, which
    is what stacking two stride-2 layers produces.

    Args:
        x: NumPy array or torch tensor of shape ``(..., *spatial)``; the
            leading axes (batch, channels) are separate signals whose
            energies are pooled.
        stride: the period to look for (int or one per spatial axis).
        ndim: number of trailing spatial axes.
    """
    s = _check_period(stride, ndim)
    a = _as_numpy(x)
    if a.ndim < ndim:
        raise ValueError(f"x must have at least ndim={ndim} dims, got "
                         f"x.shape={a.shape}")
    v, lead = _split_phases(a, s)
    spatial_axes = tuple(len(lead) + i for i in range(2 * ndim))
    centred = v - v.mean(axis=spatial_axes, keepdims=True)
    total = float((centred ** 2).sum())
    if total <= 1e-24 * max(1.0, float((v ** 2).sum())):
        return 0.0
    periodic = periodic_component(a, s, ndim)
    return float((periodic ** 2).sum()) / total


def block_edge_ratio(x: Any, stride: IntOrTuple = 2,
                     ndim: int = 2) -> float:
    r"""How much sharper the edges of the ``stride``-sized blocks are than
    the inside of a block.

    Mean squared difference between neighbouring samples that lie in
    *different* blocks of ``stride`` samples (the pair ``(j, j+1)`` with
    ``(j + 1) % s == 0``), divided by the mean squared difference between
    neighbours *inside* a block, pooled over the last ``ndim`` axes (blocks
    start at index 0). About 1 when the differences do not depend on the
    block grid (white noise, a smooth image, a checkerboard
    :math:`(-1)^{i+j}`); ``inf`` for a piecewise-constant image such as a
    nearest-neighbour upsampling; 1.0 for a constant input.
    :func:`checkerboard_score` cannot see such blocks: their phases all have
    the same mean.
    """
    s = _check_period(stride, ndim)
    if any(v < 2 for v in s):
        raise ValueError(f"stride must be at least 2 in every dimension "
                         f"(blocks of one sample have no inside), got "
                         f"stride={s}")
    a = _as_numpy(x)
    if a.ndim < ndim:
        raise ValueError(f"x must have at least ndim={ndim} dims, got "
                         f"x.shape={a.shape}")
    across = within = 0.0
    n_across = n_within = 0
    for axis, ss in zip(range(a.ndim - ndim, a.ndim), s, strict=True):
        n = a.shape[axis]
        if n < ss + 1:
            raise ValueError(f"every spatial size must exceed the stride "
                             f"{s} (one block edge), got the spatial shape "
                             f"{a.shape[-ndim:]}")
        d2 = np.diff(a, axis=axis) ** 2
        cross = (np.arange(1, n) % ss) == 0
        moved = np.moveaxis(d2, axis, -1)
        across += float(moved[..., cross].sum())
        within += float(moved[..., ~cross].sum())
        n_across += int(moved[..., cross].size)
        n_within += int(moved[..., ~cross].size)
    if within == 0.0:
        return 1.0 if across == 0.0 else math.inf
    return (across / n_across) / (within / n_within)


# --- The fixes (torch.nn modules) ------------------------------------------------------------


def icnr_(
    weight: torch.Tensor,
    scale: int = 2,
    init: Callable[[torch.Tensor], Any] | None = None,
) -> torch.Tensor:
    r"""ICNR initialisation (Aitken et al., 2017) of a conv before a pixel
    shuffle, in place.

    A convolution with :math:`C\,r^D` output channels followed by a pixel
    shuffle of factor :math:`r` produces :math:`r^D` sub-pixel phases from
    :math:`r^D` groups of output channels. ICNR initialises one sub-kernel
    of shape ``(C, C_in, *k)`` (with ``init``, default
    ``torch.nn.init.kaiming_normal_``) and copies it to all :math:`r^D`
    phases. At initialisation the layer is then exactly that convolution,
    at low resolution, followed by nearest-neighbour upsampling: every phase
    is equal, no checkerboard. Training can then make the phases differ, as
    it needs to. Channel ``c * r**D + p`` is phase ``p`` of output channel
    ``c``, which is ``torch.nn.PixelShuffle``'s order.

    Args:
        weight: conv weight of shape ``(C * scale**D, C_in, *kernel)``.
        scale: the pixel-shuffle factor ``r``.
        init: in-place initialiser for the sub-kernel.
    """
    scale = _check_scale(scale)
    if weight.ndim < 3:
        raise ValueError(f"weight must be a conv weight (C * scale**D, "
                         f"C_in, *kernel) with at least 3 dims, got "
                         f"weight.shape={tuple(weight.shape)}")
    phases = scale ** (weight.ndim - 2)
    if weight.shape[0] % phases:
        raise ValueError(f"weight.shape[0] must be divisible by scale**D = "
                         f"{phases} (the pixel shuffle's phases), got "
                         f"weight.shape={tuple(weight.shape)}")
    sub = torch.empty((weight.shape[0] // phases,)
                      + tuple(weight.shape[1:]),
                      dtype=weight.dtype, device=weight.device)
    (init or torch.nn.init.kaiming_normal_)(sub)
    with torch.no_grad():
        weight.copy_(sub.repeat_interleave(phases, dim=0))
    return weight


class ResizeConv(nn.Module):
    r"""Upsampling by interpolation followed by a stride-1 convolution (Odena et al., 2016).

    ``y = conv(interpolate(x, scale_factor=scale, mode=mode), padding=kernel_size // 2)``

    Shapes: ``(N, C_in, H, W) -> (N, C_out, scale*H, scale*W)`` (an odd ``kernel_size`` keeps
    the size). Every output position sees the same number of kernel taps, so there is no
    structural checkerboard; in nearest mode a constant input gives a constant interior.

    Args:
        mode: ``"nearest"`` or ``"bilinear"`` (``align_corners=False``).
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2,
                 kernel_size: int = 3, mode: str = "nearest") -> None:
        super().__init__()
        if mode not in ("nearest", "bilinear"):
            raise ValueError(f"mode must be 'nearest' or 'bilinear', got mode={mode!r}")
        scale = _check_scale(scale)
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd so that 'same' padding keeps the size, "
                             f"got kernel_size={kernel_size}")
        self.scale, self.mode = scale, mode
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kw = {} if self.mode == "nearest" else {"align_corners": False}
        up = nn.functional.interpolate(x, scale_factor=self.scale, mode=self.mode, **kw)
        return self.conv(up)


class PixelShuffleUp(nn.Module):
    r"""Sub-pixel convolution (Shi et al., 2016): a convolution to ``C_out * scale**2``
    channels, then ``torch.nn.PixelShuffle(scale)``; ICNR-initialised by default (:func:`icnr_`).

    Shapes: ``(N, C_in, H, W) -> (N, C_out, scale*H, scale*W)``. It has ``scale**2`` times the
    weights of a :class:`ResizeConv` with the same kernel size.

    Args:
        icnr: initialise with :func:`icnr_` and give every phase the same bias. ``False`` keeps
            PyTorch's default (independent) initialisation of all ``scale**2`` phases.
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2,
                 kernel_size: int = 3, icnr: bool = True) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd so that 'same' padding keeps the size, "
                             f"got kernel_size={kernel_size}")
        scale = _check_scale(scale)
        self.conv = nn.Conv2d(in_channels, out_channels * scale ** 2, kernel_size,
                              padding=kernel_size // 2)
        self.shuffle = nn.PixelShuffle(scale)
        if icnr:
            icnr_(self.conv.weight, scale)
            with torch.no_grad():
                bias = self.conv.bias.view(out_channels, scale ** 2)
                bias.copy_(bias[:, :1].expand_as(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))
