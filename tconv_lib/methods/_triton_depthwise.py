r"""``col2im``'s depthwise case on a GPU as one Triton kernel: each output element gathers its taps.

Depthwise (``C_in == groups``) is memory-bound: every input element is read once and every output
element written once, with :math:`\prod k` multiply-adds in between. Built from torch operations
(:mod:`._depthwise`) it takes one pass over memory per tap; here one program computes a block of
output positions of one ``(sample, output channel)`` and sums, for each position
:math:`\mathbf o`, only the taps that reach it:

.. math::
    y[n, c, \mathbf o] = \sum_{\mathbf t\,:\; (\mathbf o + p - \mathbf t d) \bmod s = 0}
        x\Big[n, g(c), \frac{\mathbf o + p - \mathbf t d}{s}\Big]\; w[g(c), c \bmod M, \mathbf t]

With ``dilation == 1`` the taps of a position are ``t = r + m s`` (``r`` its residue), so the loop
runs over ``ceil(k/s)`` of them per axis and nothing is masked away; with dilation every tap is
tried and the ones off the position's residue are masked. 1-D problems run as ``1 x L`` images.

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
def _depthwise_kernel(x_ptr, w_ptr, y_ptr, C, M, IH, IW, OH, OW,
                      SH: tl.constexpr, SW: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr,
                      DH: tl.constexpr, DW: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
                      ACC: tl.constexpr, BLOCK: tl.constexpr):
    nc = tl.program_id(0).to(tl.int64)       # (sample, output channel)
    pid = tl.program_id(1)                   # block of output positions
    c = nc % C
    g = c // M
    n = nc // C
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    inside = offs < OH * OW
    ch = offs // OW + PH                     # canvas position of each output element
    cw = offs % OW + PW
    x_base = x_ptr + (n * (C // M) + g) * IH * IW
    w_base = w_ptr + c * KH * KW             # w is (G, M, KH, KW): channel c = g*M + m
    acc = tl.zeros((BLOCK,), dtype=ACC)
    if DH == 1 and DW == 1:
        rh, qh = ch % SH, ch // SH           # taps t = r + m*s land on input row q - m
        rw, qw = cw % SW, cw // SW
        for mh in range((KH + SH - 1) // SH):
            th = rh + mh * SH
            jh = qh - mh
            ok_h = (th < KH) & (jh >= 0) & (jh < IH)
            for mw in range((KW + SW - 1) // SW):
                tw = rw + mw * SW
                jw = qw - mw
                ok = inside & ok_h & (tw < KW) & (jw >= 0) & (jw < IW)
                xv = tl.load(x_base + jh * IW + jw, mask=ok, other=0.0)
                wv = tl.load(w_base + th * KW + tw, mask=ok, other=0.0)
                acc += xv.to(ACC) * wv.to(ACC)
    else:
        for th in range(KH):
            nh = ch - th * DH
            jh = tl.where(nh >= 0, nh, 0) // SH
            ok_h = (nh >= 0) & (nh % SH == 0) & (jh < IH)
            for tw in range(KW):
                nw = cw - tw * DW
                jw = tl.where(nw >= 0, nw, 0) // SW
                ok = inside & ok_h & (nw >= 0) & (nw % SW == 0) & (jw < IW)
                xv = tl.load(x_base + jh * IW + jw, mask=ok, other=0.0)
                wv = tl.load(w_base + th * KW + tw)
                acc += xv.to(ACC) * wv.to(ACC)
    tl.store(y_ptr + nc * OH * OW + offs, acc.to(y_ptr.dtype.element_ty), mask=inside)


def applies(x: Any, weight: Any, geo: Geometry) -> bool:
    """1-D and 2-D depthwise problems (one input channel per group)."""
    return geo.ndim <= 2 and int(weight.shape[0]) == geo.groups


def conv_transpose(x: Any, weight: Any, geo: Geometry, out: tuple[int, ...]) -> Any:
    """Depthwise transposed convolution of a torch tensor; ``out`` is the output's spatial shape."""
    import torch

    def two(v: Any, fill: int) -> tuple[int, ...]:     # 1-D runs as a 1 x L image
        return (fill, *v) if geo.ndim == 1 else tuple(v)

    n, c_in, mult = int(x.shape[0]), int(x.shape[1]), int(weight.shape[1])
    (ih, iw), (oh, ow) = two(x.shape[2:], 1), two(out, 1)
    (kh, kw), (sh, sw) = two(geo.kernel, 1), two(geo.stride, 1)
    (ph, pw), (dh, dw) = two(geo.padding, 0), two(geo.dilation, 1)
    y = torch.empty((n, c_in * mult) + out, dtype=x.dtype, device=x.device)
    grid = (n * c_in * mult, math.ceil(oh * ow / BLOCK))
    acc = tl.float64 if x.dtype == torch.float64 else tl.float32    # half types sum in float32
    _depthwise_kernel[grid](x.contiguous(), weight.contiguous(), y, c_in * mult, mult,
                            ih, iw, oh, ow, sh, sw, ph, pw, dh, dw, kh, kw, ACC=acc, BLOCK=BLOCK)
    return y
