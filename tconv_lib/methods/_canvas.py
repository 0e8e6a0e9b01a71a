"""The uncropped output ("canvas") that the painting-style methods accumulate into."""

from __future__ import annotations

from typing import Any

from .. import backend
from .._args import Geometry


def canvas_shape(spatial: tuple[int, ...],
                 geo: Geometry) -> tuple[int, ...]:
    """Size ``(i-1)s + d(k-1) + 1`` before cropping ``padding``, plus
    ``output_padding`` room."""
    return tuple((i - 1) * s + d * (k - 1) + 1 + op
                 for i, k, s, d, op in zip(spatial, geo.kernel, geo.stride,
                                           geo.dilation, geo.output_padding,
                                           strict=True))


def output_shape(spatial: tuple[int, ...], geo: Geometry) -> tuple[int, ...]:
    """``(i-1)s - 2p + d(k-1) + op + 1`` per axis."""
    return tuple(c - 2 * p for c, p in zip(canvas_shape(spatial, geo), geo.padding, strict=True))


def crop(canvas: Any, spatial: tuple[int, ...], geo: Geometry) -> Any:
    """``padding`` removes ``p`` entries from each side of the canvas (it
    pads nothing)."""
    out = output_shape(spatial, geo)
    return backend.crop_or_pad(canvas, geo.padding, out)


def spatial_of(x: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in x.shape[2:])


def phase_window(residue: tuple[int, ...], blocks: tuple[int, ...], out: tuple[int, ...],
                 geo: Geometry) -> tuple[tuple[slice, ...], tuple[slice, ...]] | None:
    """Where phase plane ``residue`` lands in the cropped output: ``(dst, src)`` slices of the
    spatial axes, or ``None`` when ``padding`` crops the whole phase away.

    Plane row ``q`` is canvas position ``q*s + r``, i.e. output position ``q*s + r - p``.
    """
    dst, src = [], []
    for r, s, p, o, q in zip(residue, geo.stride, geo.padding, out, blocks, strict=True):
        first = max(0, -((r - p) // s))                       # ceil((p - r) / s), at least 0
        last = min(q - 1, (o - 1 + p - r) // s)
        if last < first:
            return None
        start = first * s + r - p
        dst.append(slice(start, start + (last - first) * s + 1, s))
        src.append(slice(first, last + 1))
    return tuple(dst), tuple(src)
