"""One algorithm, two backends.

Every method in :mod:`tconv_lib.methods` is written once against the array API (through
``array_api_compat``): NumPy arrays give NumPy results (the CPU path) and torch tensors give torch
tensors on the same device (the GPU path when that device is CUDA). Nothing is ever moved between
libraries or devices behind the caller's back: mixing them is an error.
"""

from __future__ import annotations

import functools
import math
import mmap
import sys
from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np

_NUMPY_FLOATS = ("float32", "float64")
_TORCH_FLOATS = ("float16", "bfloat16", "float32", "float64")


def is_torch(x: Any) -> bool:
    return array_api_compat.is_torch_array(x)


def family(x: Any) -> str:
    """``"torch"`` or ``"numpy"``: the key of the per-backend tuning tables."""
    return "torch" if is_torch(x) else "numpy"


def on_gpu(x: Any) -> bool:
    """A torch tensor on an accelerator: kernel launches, not memory traffic, set the pace."""
    return is_torch(x) and x.device.type != "cpu"


def namespace(*arrays: Any) -> Any:
    """The array-API namespace shared by ``arrays`` (``None`` entries are ignored)."""
    return array_api_compat.array_namespace(*(a for a in arrays if a is not None))


def _kind(x: Any) -> str:
    if is_torch(x):
        return f"torch tensor on {x.device}"
    if isinstance(x, np.ndarray):
        return "NumPy array"
    return type(x).__name__


def check_same_kind(**arrays: Any) -> None:
    """All arrays are NumPy, or all are torch tensors on one device."""
    named = {k: v for k, v in arrays.items() if v is not None}
    for name, a in named.items():
        if not (isinstance(a, np.ndarray) or is_torch(a)):
            raise TypeError(f"{name} must be a NumPy array or a torch tensor, got {_kind(a)}")
        if is_torch(a) and str(a.layout) != "torch.strided":   # sparse, mkldnn
            raise TypeError(f"{name} must be a dense (strided) torch tensor, got "
                            f"{name}.layout={a.layout}; convert it with {name}.to_dense()")
    kinds = {name: _kind(a) for name, a in named.items()}
    if len(set(kinds.values())) > 1:
        listing = ", ".join(f"{k} is a {v}" for k, v in kinds.items())
        raise TypeError(f"all arrays must be of one kind and on one device, but {listing}; "
                        f"convert them explicitly (tconv_lib never moves data for you)")


def dtype_name(x: Any) -> str:
    return str(x.dtype).removeprefix("torch.")


def plainly_compatible(*arrays: Any) -> bool:
    """The common good case, recognised fast: arrays (``None`` skipped) of exactly one kind,
    ``numpy.ndarray`` or ``torch.Tensor`` (dense; a ``torch.nn.Parameter`` too), one device
    and one allowed floating dtype.

    When it says ``False`` the full checks (:func:`check_same_kind`,
    :func:`check_float_dtypes`) run and raise their messages; it never accepts what they
    would refuse. On a GPU, where a layer's kernels can take less time than its Python, the
    full checks alone cost about as much as launching them.
    """
    first = arrays[0]
    torch = sys.modules.get("torch")
    if type(first) is np.ndarray:
        kinds: tuple[type, ...] = (np.ndarray,)
    elif torch is not None and type(first) in (torch.Tensor, torch.nn.Parameter):
        kinds = (torch.Tensor, torch.nn.Parameter)        # a module's weight is a Parameter
    else:
        return False
    dtype = first.dtype
    if any(a is not None and (type(a) not in kinds or a.dtype != dtype) for a in arrays):
        return False
    if kinds[0] is np.ndarray:
        return str(dtype) in _NUMPY_FLOATS
    device, strided = first.device, torch.strided
    return dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) and all(
        a is None or (a.device == device and a.layout == strided) for a in arrays)


def check_float_dtypes(**arrays: Any) -> None:
    """Floating dtypes only, and the same dtype for every array."""
    named = {k: v for k, v in arrays.items() if v is not None}
    for name, a in named.items():
        if (isinstance(a, np.ndarray) and a.dtype.name in _NUMPY_FLOATS
                and not a.dtype.isnative):                # '>f8' read from a file, say
            raise TypeError(f"{name} must be in the machine's byte order, as torch.from_numpy "
                            f"requires too, got {name}.dtype={a.dtype.str} ({a.dtype.name}, "
                            f"byte-swapped); convert it with "
                            f"{name}.astype({name}.dtype.newbyteorder('='))")
        allowed = _TORCH_FLOATS if is_torch(a) else _NUMPY_FLOATS
        if dtype_name(a) not in allowed:
            raise TypeError(f"{name} must have a floating dtype ({', '.join(allowed)}), "
                            f"got {name}.dtype={dtype_name(a)}")
    dtypes = {name: dtype_name(a) for name, a in named.items()}
    if len(set(dtypes.values())) > 1:
        listing = ", ".join(f"{k}.dtype={v}" for k, v in dtypes.items())
        raise TypeError(f"all arrays must share one dtype, got {listing}")


def zeros(xp: Any, like: Any, shape: tuple[int, ...]) -> Any:
    """Zeros with ``like``'s dtype and device."""
    return xp.zeros(shape, dtype=like.dtype, device=array_api_compat.device(like))


def multiply_add(target: Any, a: Any, b: Any, scratch: Any = None) -> None:
    """``target += a * b`` in place: ``addcmul_`` on torch (no temporary); on NumPy the product
    goes through ``scratch`` (shaped like ``a * b``) when one is given.

    The array API has no fused multiply-add, and ``target += a * b`` allocates the product on
    every call (once per kernel tap in :mod:`tconv_lib.methods._depthwise`). Both branches
    compute the same sum; ``tests/test_fast_paths.py`` checks them against each other."""
    if is_torch(target):
        target.addcmul_(a, b)
    elif scratch is not None:
        np.multiply(a, b, out=scratch)
        target += scratch
    else:
        target += a * b


def records_grad(*arrays: Any) -> bool:
    """True when autograd is recording and one of the (torch) arrays requires a gradient."""
    if not any(is_torch(a) for a in arrays):
        return False
    import torch

    return torch.is_grad_enabled() and any(getattr(a, "requires_grad", False) for a in arrays)


def multiply_into(target: Any, a: Any, b: Any) -> None:
    """``target[...] = a * b`` without a temporary (``out=`` on both torch and NumPy)."""
    if is_torch(target):
        import torch

        torch.mul(a, b, out=target)
    else:
        np.multiply(a, b, out=target)


def matmul_into(target: Any, a: Any, b: Any) -> None:
    """``target[...] = a @ b`` without a temporary (``out=`` on both torch and NumPy)."""
    if is_torch(target):
        import torch

        torch.matmul(a, b, out=target)
    else:
        np.matmul(a, b, out=target)


_COMPLEX_PAIRS = ("float32", "float64")


def interleave_into(target: Any, even: Any, odd: Any) -> None:
    """``target[..., 0] = even`` and ``target[..., 1] = odd`` for a ``(..., 2)`` target
    (``None`` for zeros).

    Two plain copies each write every other element. On torch CPU tensors (float32 or float64,
    no gradient recorded, pairs aligned in memory) each pair is read as one complex number
    instead, so a single ``torch.complex`` write fills whole rows (about 1.5x faster on a
    U-Net ``k=2, s=2`` output). Both branches write the same values
    (``tests/test_fast_paths.py``)."""
    if (is_torch(target) and not on_gpu(target) and dtype_name(target) in _COMPLEX_PAIRS
            and target.stride(-1) == 1 and target.storage_offset() % 2 == 0
            and all(st % 2 == 0 for st in target.stride()[:-1])
            and not records_grad(target, even, odd)):
        import torch

        zero = torch.zeros((), dtype=target.dtype)
        torch.complex(zero if even is None else even, zero if odd is None else odd,
                      out=torch.view_as_complex(target))
        return
    target[..., 0] = 0 if even is None else even
    target[..., 1] = 0 if odd is None else odd


def group_view(x: Any, groups: int) -> Any:
    """(N, C, *sp) -> (N, groups, C/groups, prod(sp)), also when some size is zero."""
    n, c = int(x.shape[0]), int(x.shape[1])
    positions = math.prod(int(v) for v in x.shape[2:])
    return namespace(x).reshape(x, (n, groups, c // groups, positions))


def memory_format(x: Any, weight: Any) -> Any:
    """The memory format PyTorch's convolutions give their output: ``torch.channels_last``
    (4-D) or ``torch.channels_last_3d`` (5-D) when the batched input ``x`` or the ``weight``
    has channels-last strides, as ``Tensor.suggest_memory_format()`` reads them, else
    ``torch.contiguous_format``; ``None`` for NumPy arrays (C order)."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(x, torch.Tensor):
        return None
    if len(x.shape) in (4, 5):         # eager's rule, in Python (as suggest_memory_format)
        tracing = torch.jit.is_tracing()
        for a in (x, weight):          # torch.jit.trace reads sizes as 0-d tensors: as ints
            shape = tuple(int(v) for v in a.shape) if tracing else a.shape
            if a.layout != torch.strided:
                continue
            stride = a.stride()
            try:                       # the rule is a function of sizes and strides: kept
                like = _strides_like_channels_last(shape, stride)
            except TypeError:          # symbolic sizes (torch.compile's fake tensors)
                like = _strides_like_channels_last.__wrapped__(shape, stride)
            if like:
                return torch.channels_last if len(shape) == 4 else torch.channels_last_3d
    return torch.contiguous_format


@functools.lru_cache(maxsize=1024)
def _strides_like_channels_last(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    """``torch._prims_common``'s channels-last stride rule (10 us a call), remembered."""
    from torch._prims_common import are_strides_like_channels_last_or_false as strided_like

    return bool(strided_like(shape, stride))


def channels_last(memory_format: Any) -> bool:
    """Whether ``memory_format`` (from :func:`memory_format`) lays the channels innermost."""
    if memory_format is None:
        return False
    import torch

    return memory_format in (torch.channels_last, torch.channels_last_3d)


def in_memory_format(y: Any, memory_format: Any) -> Any:
    """``y`` laid out in ``memory_format`` (:func:`memory_format`; ``None``: NumPy's C order),
    copied only where it is not already."""
    return np.ascontiguousarray(y) if memory_format is None else y.contiguous(
        memory_format=memory_format)


def tap_slices(start: tuple[int, ...], count: tuple[int, ...], step: tuple[int, ...]
               ) -> tuple[slice, ...]:
    """``(..., start[0] : start[0] + step[0]*count[0] : step[0], ...)`` for the spatial axes."""
    return (Ellipsis,) + tuple(slice(a, a + s * (n - 1) + 1, s)
                               for a, n, s in zip(start, count, step, strict=True))


def _functorch_wrapped(x: Any) -> bool:
    """A tensor seen through a ``torch.func`` transform (``vmap``, ``grad``, ``jvp``)."""
    import torch

    return torch._C._functorch.is_functorch_wrapped_tensor(x)


def summed_in_float32(x: Any, adds_after_gemm: Callable[[], bool]) -> Any:
    """``torch.float32`` where a float16 or bfloat16 torch problem on the
    CPU is summed in float32 and rounded once, as PyTorch's oneDNN kernels
    are; otherwise ``None``.

    float16 always: CPU float16 GEMMs are many times slower than float32
    ones. bfloat16 only when ``adds_after_gemm()`` (the GEMMs of several
    taps or batch elements are added, or a bias): its GEMM sums in float32
    itself and rounds once, while rounding each partial sum before adding
    the next makes the error grow with the number of sums."""
    torch = sys.modules.get("torch")
    if (torch is None or not isinstance(x, torch.Tensor)
            or x.dtype not in (torch.float16, torch.bfloat16)
            or x.device.type != "cpu"):
        return None
    if x.dtype == torch.float16 or adds_after_gemm():
        return torch.float32
    return None


def summed_with_bias(core: Callable[[Any, Any], Any], x: Any, weight: Any, bias: Any,
                     adds_after_gemm: Callable[[], bool]) -> Any:
    """``core(x, weight)`` plus the bias (per channel, axis 1), a float16 or bfloat16 CPU
    problem summed in float32 and rounded once (:func:`summed_in_float32`; a bias is one more
    add after the GEMM)."""
    wide = summed_in_float32(x, lambda: bias is not None or adds_after_gemm())
    y = core(x, weight) if wide is None else core(x.to(wide), weight.to(wide))
    if bias is not None:
        y = y + bias.reshape((1, -1) + (1,) * (y.ndim - 2))
    return y if wide is None else y.to(x.dtype)


def compiling(x: Any) -> bool:
    """``x`` is a torch tensor seen by ``torch.compile`` or ``torch.export`` (Dynamo tracing)."""
    torch = sys.modules.get("torch")
    return (torch is not None and isinstance(x, torch.Tensor)
            and torch.compiler.is_compiling())


def autocast(x: Any, weight: Any, bias: Any) -> tuple[Any, Any, Any]:
    """Inside ``torch.autocast`` for ``x``'s device, the floating tensors other than float64 in
    the autocast dtype, as autocast casts the arguments of ``F.conv*d`` and
    ``F.conv_transpose*d`` (a mixed-precision model whose float32 parameters meet bfloat16
    activations; float64 is left alone there too); otherwise, and for NumPy arrays, unchanged.
    The casts are differentiable, so the parameters' gradients come back in their own dtype."""
    torch = sys.modules.get("torch")
    if (torch is None or type(x) is np.ndarray or not isinstance(x, torch.Tensor)
            or not torch._C._is_any_autocast_enabled()):       # the usual case, in 0.2 us
        return x, weight, bias
    device = x.device.type
    if not (torch.amp.is_autocast_available(device)       # no autocast on 'meta', say
            and torch.is_autocast_enabled(device)):
        return x, weight, bias
    dtype = torch.get_autocast_dtype(device)
    return tuple(t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point()
                 and t.dtype != torch.float64 else t for t in (x, weight, bias))


def transformed(x: Any, weight: Any, bias: Any) -> bool:
    """Torch tensors seen through a ``torch.func`` transform (``vmap``, ``grad``, ``jvp``) or
    carrying a forward-mode tangent (``torch.autograd.forward_ad``); about 1 us when not."""
    torch = sys.modules.get("torch")
    if torch is None or type(x) is np.ndarray:
        return False
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    if wrapped(x) or wrapped(weight) or (bias is not None and wrapped(bias)):
        return True
    forward_ad = torch.autograd.forward_ad
    return forward_ad._current_level >= 0 and any(
        a is not None and forward_ad.unpack_dual(a).tangent is not None for a in (x, weight, bias))


def crop_or_pad(x: Any, lo: tuple[int, ...], size: tuple[int, ...]) -> Any:
    """Window ``[lo, lo + size)`` of each spatial axis; parts outside ``x`` read as zeros."""
    spatial = tuple(int(v) for v in x.shape[2:])
    if tuple(size) == spatial and not any(lo):
        return x
    xp = namespace(x)
    if all(a >= 0 and a + n <= full for a, n, full in zip(lo, size, spatial, strict=True)):
        return x[(Ellipsis,) + tuple(slice(a, a + n) for a, n in zip(lo, size, strict=True))]
    if is_torch(x) and _functorch_wrapped(x):   # torch.func (vmap of a backward, say):
        import torch  # no writes into a fresh array, which the transforms refuse

        pads = [e for a, n, full in reversed(list(zip(lo, size, spatial, strict=True)))
                for e in (-a, a + n - full)]
        return torch.nn.functional.pad(x, pads)
    out = zeros(xp, x, tuple(x.shape[:2]) + tuple(size))
    src, dst = [], []
    for a, n, full in zip(lo, size, spatial, strict=True):
        s0, s1 = max(a, 0), min(a + n, full)
        src.append(slice(s0, max(s1, s0)))
        dst.append(slice(s0 - a, s0 - a + max(s1 - s0, 0)))
    out[(Ellipsis,) + tuple(dst)] = x[(Ellipsis,) + tuple(src)]
    return out



# glibc hands allocations above its largest mmap threshold (32 MiB on 64-bit) straight to the
# kernel, so every such array is faulted in page by page on first write: ~17 ms for 64 MiB of
# 4 KiB pages on a 2-core VM, against ~6 ms on 2 MiB pages. Smaller blocks are recycled by the
# allocator (no faults), and fresh huge pages would only cost more there.
HUGE_PAGE_MIN_BYTES = 32 << 20
_HUGE_PAGE = 2 << 20
_libc: Any = None


def empty_cpu(xp: Any, like: Any, shape: tuple[int, ...],
              huge_from: int = HUGE_PAGE_MIN_BYTES, *, memory_format: Any = None) -> Any:
    """A fresh uninitialised array of ``like``'s kind, dtype and device.

    A torch CPU tensor of at least ``huge_from`` bytes is advised to use transparent huge
    pages (``madvise(MADV_HUGEPAGE)`` on its 2 MiB-aligned interior, before anything touches
    it), where the kernel offers them (``/sys/kernel/mm/transparent_hugepage/enabled`` set to
    ``always`` or ``madvise``). PyTorch's own allocator does that only when
    ``THP_MEM_ALLOC_ENABLE=1`` is set; NumPy does it for its large arrays already. The tensor
    stays an ordinary one, owned and freed by PyTorch.

    A channels-last ``memory_format`` (:func:`memory_format`) lays axis 1 innermost.
    """
    if channels_last(memory_format):                 # (N, *spatial, C), viewed as (N, C, *spatial)
        array = empty_cpu(xp, like, (shape[0],) + shape[2:] + (shape[1],), huge_from)
        return xp.permute_dims(array, (0, len(shape) - 1) + tuple(range(1, len(shape) - 1)))
    array = xp.empty(shape, dtype=like.dtype, device=array_api_compat.device(like))
    nbytes = math.prod(shape) * like.dtype.itemsize
    if is_torch(array) and not on_gpu(array) and nbytes >= huge_from:
        _advise_huge_pages(array.data_ptr(), nbytes)
    return array


def _advise_huge_pages(address: int, nbytes: int) -> None:
    """``madvise(MADV_HUGEPAGE)`` over the whole 2 MiB pages inside ``[address, +nbytes)``;
    silently nothing where the call or the constant does not exist."""
    global _libc
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    start = -(-address // _HUGE_PAGE) * _HUGE_PAGE
    end = (address + nbytes) // _HUGE_PAGE * _HUGE_PAGE
    if advice is None or end <= start:
        return
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    _libc.madvise(start, end - start, advice)   # a failure only leaves 4 KiB pages
