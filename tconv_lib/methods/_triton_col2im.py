r"""``col2im``'s scatter-add on a GPU as one Triton kernel: each output element gathers its taps.

For every output position :math:`\mathbf o` of every ``(sample, output channel)``, the taps that
reach it are those with :math:`(\mathbf o + p - \mathbf t d) \bmod s = 0`; each comes from input
position :math:`\mathbf j = (\mathbf o + p - \mathbf t d) / s`. One program sums them for a block
of output positions, so the output is written once, with no atomics and no zero pass:

- **columns** (``cols``, the GEMM's output, any layout): :math:`y[n, c, \mathbf o] = \sum_{\mathbf
  t} \text{cols}[n, c, \mathbf t, \mathbf j]`. The kernel takes the strides of a
  ``(N, C, k_1, k_2, i_1, i_2)`` view, so the GEMM may write per-sample, transposed or
  channel-major columns and nothing is copied into the layout ``F.fold`` wants;
- **depthwise** (``C_in == groups``): there is nothing to reduce, so the columns are never made:
  the term is :math:`x[n, g(c), \mathbf j]\, w[g(c), c \bmod M, \mathbf t]`, and the input is read
  once while the output is written once.

With ``dilation == 1`` the taps of a position are ``t = r + m s`` (``r`` its residue), so the loop
runs over ``ceil(k/s)`` of them per axis; with dilation every tap is tried and the ones off the
position's residue are masked. 1-D problems run as ``1 x L`` images.

Needs Triton and a CUDA tensor, or ``TRITON_INTERPRET=1`` (the tests run it that way on the CPU).
"""

from __future__ import annotations

import math
from typing import Any

import triton
import triton.language as tl

from .._args import Geometry

BLOCK = 1024


@triton.jit
def _gather_kernel(src_ptr, w_ptr, y_ptr, C, M, IH, IW, OH, OW,
                   s_n, s_c, s_kh, s_kw, s_ih, s_iw,
                   SH: tl.constexpr, SW: tl.constexpr,
                   PH: tl.constexpr, PW: tl.constexpr,
                   DH: tl.constexpr, DW: tl.constexpr,
                   KH: tl.constexpr, KW: tl.constexpr,
                   DEPTHWISE: tl.constexpr, ACC: tl.constexpr,
                   BLOCK: tl.constexpr):
    nc = tl.program_id(0).to(tl.int64)       # (sample, output channel)
    pid = tl.program_id(1)                   # block of output positions
    c = nc % C
    n = nc // C
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    inside = offs < OH * OW
    # canvas position of each output element
    ch = offs // OW + PH
    cw = offs % OW + PW
    if DEPTHWISE:      # src is x (N, G, IH, IW), w is (G, M, KH, KW)
        base = src_ptr + n * s_n + (c // M) * s_c
    else:              # src is cols, a (N, C, KH, KW, IH, IW) view
        base = src_ptr + n * s_n + c * s_c
    acc = tl.zeros((BLOCK,), dtype=ACC)
    if DH == 1 and DW == 1:
        # taps t = r + m*s land on input row q - m
        rh, qh = ch % SH, ch // SH
        rw, qw = cw % SW, cw // SW
        for mh in range((KH + SH - 1) // SH):
            th = rh + mh * SH
            jh = qh - mh
            ok_h = (th < KH) & (jh >= 0) & (jh < IH)
            for mw in range((KW + SW - 1) // SW):
                tw = rw + mw * SW
                jw = qw - mw
                ok = inside & ok_h & (tw < KW) & (jw >= 0) & (jw < IW)
                acc += _term(base, w_ptr, c, th, tw, jh, jw, ok,
                             s_kh, s_kw, s_ih, s_iw, KH, KW, DEPTHWISE, ACC)
    else:
        zero = tl.zeros((BLOCK,), dtype=tl.int32)
        for t_h in range(KH):
            # as a tensor, like the taps of the loop above
            th = zero + t_h
            nh = ch - th * DH
            jh = tl.where(nh >= 0, nh, 0) // SH
            ok_h = (nh >= 0) & (nh % SH == 0) & (jh < IH)
            for t_w in range(KW):
                tw = zero + t_w
                nw = cw - tw * DW
                jw = tl.where(nw >= 0, nw, 0) // SW
                ok = inside & ok_h & (nw >= 0) & (nw % SW == 0) & (jw < IW)
                acc += _term(base, w_ptr, c, th, tw, jh, jw, ok,
                             s_kh, s_kw, s_ih, s_iw, KH, KW, DEPTHWISE, ACC)
    tl.store(y_ptr + nc * OH * OW + offs, acc.to(y_ptr.dtype.element_ty),
             mask=inside)


@triton.jit
def _term(base, w_ptr, c, th, tw, jh, jw, ok, s_kh, s_kw, s_ih, s_iw,
          KH: tl.constexpr, KW: tl.constexpr, DEPTHWISE: tl.constexpr, ACC: tl.constexpr):
    """Tap ``(th, tw)``'s contribution from input position ``(jh, jw)`` (masked by ``ok``)."""
    at = jh.to(tl.int64) * s_ih + jw.to(tl.int64) * s_iw
    if DEPTHWISE:
        xv = tl.load(base + at, mask=ok, other=0.0)
        wv = tl.load(w_ptr + c * KH * KW + th * KW + tw, mask=ok, other=0.0)
        return xv.to(ACC) * wv.to(ACC)
    taps = th.to(tl.int64) * s_kh + tw.to(tl.int64) * s_kw
    return tl.load(base + taps + at, mask=ok, other=0.0).to(ACC)


def _two(geo: Geometry, v: Any, fill: int) -> tuple[int, ...]:
    """A 1-D argument as that of a ``1 x L`` image."""
    return (fill, *(int(a) for a in v)) if geo.ndim == 1 else tuple(int(a) for a in v)


def _launch(src: Any, strides: tuple[int, ...], w: Any, geo: Geometry, n: int, c: int, m: int,
            spatial: tuple[int, ...], out: tuple[int, ...], depthwise: bool) -> Any:
    import torch

    (ih, iw), (oh, ow) = _two(geo, spatial, 1), _two(geo, out, 1)
    (kh, kw), (sh, sw) = _two(geo, geo.kernel, 1), _two(geo, geo.stride, 1)
    (ph, pw), (dh, dw) = _two(geo, geo.padding, 0), _two(geo, geo.dilation, 1)
    y = torch.empty((n, c) + out, dtype=src.dtype, device=src.device)
    acc = tl.float64 if src.dtype == torch.float64 else tl.float32    # half types sum in float32
    grid = (n * c, math.ceil(oh * ow / BLOCK))
    _gather_kernel[grid](src, w, y, c, m, ih, iw, oh, ow, *strides, sh, sw, ph, pw, dh, dw,
                         kh, kw, DEPTHWISE=depthwise, ACC=acc, BLOCK=BLOCK)
    return y


def col2im(cols: Any, geo: Geometry, spatial: tuple[int, ...], out: tuple[int, ...]) -> Any:
    """Sum ``cols``, any strided ``(N, C, *kernel, *spatial)`` view, into ``(N, C, *out)``."""
    n, c = int(cols.shape[0]), int(cols.shape[1])
    st = tuple(int(v) for v in cols.stride())
    # (s_n, s_c, s_kh, s_kw, s_ih, s_iw); a 1-D view has no kh or ih axis
    strides = st if geo.ndim == 2 else (st[0], st[1], 0, st[2], 0, st[3])
    return _launch(cols, strides, cols, geo, n, c, 1, spatial, out, depthwise=False)


def depthwise(x: Any, weight: Any, geo: Geometry, out: tuple[int, ...]) -> Any:
    """Depthwise transposed convolution (``C_in == groups``) of a torch tensor, no columns."""
    x, weight = x.contiguous(), weight.contiguous()
    n, g, m = int(x.shape[0]), int(x.shape[1]), int(weight.shape[1])
    st = tuple(int(v) for v in x.stride())
    strides = (st[0], st[1], 0, 0) + ((st[2], st[3]) if geo.ndim == 2 else (0, st[2]))
    return _launch(x, strides, weight, geo, n, g * m, m, tuple(x.shape[2:]), out,
                   depthwise=True)
