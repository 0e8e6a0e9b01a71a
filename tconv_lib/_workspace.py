"""Scratch memory that outlives one call: the col2im column buffer and phase planes.

A fresh buffer of tens of MB costs more than the arithmetic that fills it: the allocator hands
large blocks straight to the OS, and every page is faulted in again on first write (on a
2-core VM, ~25 ms for the 64 MB column buffer of a DCGAN layer, against ~19 ms for its GEMM).
Like the scratchpads of oneDNN and cuDNN, the buffers are therefore kept between calls:

- one per *slot* name, dtype and device, in thread-local storage (concurrent calls never
  share one), grown to the largest size asked for, up to :data:`MAX_CACHED_BYTES`;
- for CPU arrays only: a GPU's caching allocator already reuses memory;
- for temporaries only: what a method returns is always a fresh array;
- on huge pages where the kernel offers them (:func:`tconv_lib.backend.empty_cpu`): the passes
  over a column buffer of tens of MB then miss the TLB far less often.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import array_api_compat

from . import backend

MAX_CACHED_BYTES = 512 << 20
_local = threading.local()


def empty(xp: Any, like: Any, shape: tuple[int, ...], slot: str) -> Any:
    """An uninitialised ``shape`` array with ``like``'s dtype and device, possibly reused.

    The contents are garbage and are overwritten by the next call that asks for ``slot``.
    """
    size = math.prod(shape)
    device = array_api_compat.device(like)
    if backend.on_gpu(like) or size * like.dtype.itemsize > MAX_CACHED_BYTES:
        return xp.empty(shape, dtype=like.dtype, device=device)
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    key = (slot, backend.is_torch(like), str(like.dtype), str(device))
    buf = buffers.get(key)
    if buf is None or int(buf.shape[0]) < size:
        buf = buffers[key] = backend.empty_cpu(xp, like, (size,), huge_from=2 << 20)
    view = buf[:size]
    if backend.is_torch(view):
        # a fresh alias per call: an in-place op that autograd records on it (a call with
        # gradients) then never attaches the cached buffer itself to that call's graph
        view = view.detach()
    return xp.reshape(view, shape)


def padded(n: int, itemsize: int) -> int:
    """A row length for a matrix that BLAS reads or writes: ``n``, plus one 64-byte cache line
    where ``n`` elements span a multiple of 256 bytes.

    With such a leading dimension the rows of a GEMM's panels map to the same few cache sets.
    MKL's 1024x512x512 float32 product on 2 cores: 157 GFLOP/s with a leading dimension of
    4096 for B, 198 with 4112 (OpenBLAS: 207 either way).
    """
    return n + 64 // itemsize if (n * itemsize) % 256 == 0 else n


def empty_rows(xp: Any, like: Any, shape: tuple[int, ...], slot: str) -> Any:
    """Like :func:`empty`, but every row of the last axis starts :func:`padded` elements after
    the one before: a view of a larger buffer, for the operands of a GEMM."""
    lead, n = math.prod(shape[:-1]), shape[-1]
    buf = empty(xp, like, (lead, padded(n, like.dtype.itemsize)), slot)
    return xp.reshape(buf[:, :n], shape)


def clear() -> None:
    """Free this thread's cached buffers."""
    _local.buffers = {}


def cached_bytes() -> int:
    """Bytes held by this thread's cached buffers (0 after :func:`clear`)."""
    buffers = getattr(_local, "buffers", None) or {}
    return sum(int(b.shape[0]) * b.dtype.itemsize for b in buffers.values())


def matmul(xp: Any, a: Any, b: Any, shape: tuple[int, ...], slot: str,
           rows: bool = False) -> Any:
    """``a @ b`` (of result shape ``shape``) written into a reused buffer where possible; with
    ``rows``, into padded rows (:func:`empty_rows`).

    Autograd cannot record an ``out=`` product, so tensors that need gradients get a fresh one.
    """
    if backend.records_grad(a, b):
        return xp.matmul(a, b)
    out = (empty_rows if rows else empty)(xp, a, shape, slot)
    backend.matmul_into(out, a, b)
    return out
