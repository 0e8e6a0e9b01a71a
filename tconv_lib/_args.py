"""Argument checking shared by every operation.

Every public operation calls :func:`check_transpose` or :func:`check_conv` before it touches the
data. They turn ints into per-dimension tuples, add a batch axis to unbatched input, and raise a
``ValueError``/``TypeError`` that names the argument, the rule and the value.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import backend

IntOrTuple = int | Sequence[int]


@dataclass(frozen=True)
class Geometry:
    """The geometric arguments of one (transposed) convolution, one entry per spatial dim."""

    stride: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    kernel: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.kernel)


def as_int(name: str, value: Any) -> int:
    """An int, or an integer-like scalar such as ``np.int64(2)`` (anything with ``__index__``,
    as PyTorch accepts). ``True``/``False`` are refused, as PyTorch refuses them."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {name}={value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {name}={value!r}") from None


def as_tuple(name: str, value: Any, ndim: int) -> tuple[int, ...]:
    """``3 -> (3, 3)``; a tuple must have one int (or integer-like) entry per spatial dim."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a tuple of {ndim} ints, got {value!r}")
    try:
        return (operator.index(value),) * ndim
    except TypeError:
        pass                                   # not one integer: a sequence of them?
    if isinstance(value, str):
        hint = (" (the 'same'/'valid' strings of F.conv*d are not supported: 'valid' is "
                "padding=0, 'same' with an odd kernel is padding=dilation*(kernel_size-1)//2)"
                if name == "padding" else "")
        raise TypeError(f"{name} must be an int or a tuple of {ndim} ints, got the string "
                        f"{value!r}{hint}")
    if isinstance(value, (Set, Mapping, Iterator)):  # no order, keys, or used up by reading
        raise TypeError(f"{name} must be an int or a tuple of {ndim} ints, got "
                        f"{type(value).__name__} {value!r}")
    try:
        values = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of {ndim} ints, got {value!r}") from None
    if len(values) == 1:
        values = values * ndim
    if len(values) != ndim:
        raise ValueError(
            f"{name} must be an int or a tuple of {ndim} ints (one per spatial dimension), "
            f"got {value!r}")
    try:
        return tuple(as_int(name, v) for v in values)
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of {ndim} ints, got {value!r}") from None


def positive_tuple(name: str, value: Any, ndim: int) -> tuple[int, ...]:
    """:func:`as_tuple`, every entry at least 1 (a size, a stride)."""
    sizes = as_tuple(name, value, ndim)
    if any(v < 1 for v in sizes):
        raise ValueError(f"{name} must be positive in every dimension, got {name}={value!r}")
    return sizes


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _check_arrays(input: Any, weight: Any, bias: Any) -> None:
    if backend.plainly_compatible(input, weight, bias):
        return
    backend.check_same_kind(input=input, weight=weight, bias=bias)
    backend.check_float_dtypes(input=input, weight=weight, bias=bias)


class _Shaped:
    """Just the ``shape`` and ``ndim`` of an array: the geometric rules need nothing else."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape, self.ndim = shape, len(shape)


LAYOUTS = {"conv_transpose": "(C_in, C_out/groups, *kernel)",
           "conv": "(C_out, C_in/groups, *kernel)", "conv_matrix": "(C_out, C_in/groups, *kernel)"}


def _check_weight_ndim(weight: Any, op: str) -> None:
    _require(weight.ndim >= 3,
             f"weight must have at least 3 dims {LAYOUTS[op]} (one or more spatial dims) for "
             f"{op}, got weight.shape={tuple(weight.shape)}")


def _check_ndims(input: Any, weight: Any, op: str) -> None:
    _check_weight_ndim(weight, op)
    nsp = weight.ndim - 2
    _require(input.ndim in (nsp + 1, nsp + 2),
             f"input must have {nsp + 2} dims (N, C, *spatial) or {nsp + 1} dims (C, *spatial) to "
             f"match a weight with {nsp} spatial dims, got input.shape={tuple(input.shape)} and "
             f"weight.shape={tuple(weight.shape)}")


def _hashable(value: Any) -> Any:
    """A list of ints becomes a tuple so a call can be looked up in the cache."""
    return tuple(value) if isinstance(value, list) else value


def _shape_key(*arrays: Any) -> tuple:
    return tuple(None if a is None else tuple(int(v) for v in a.shape) for a in arrays)


def _geometry(weight: Any, stride: IntOrTuple, padding: IntOrTuple, output_padding: IntOrTuple,
              groups: int, dilation: IntOrTuple) -> Geometry:
    nsp = weight.ndim - 2
    geo = Geometry(
        stride=as_tuple("stride", stride, nsp),
        padding=as_tuple("padding", padding, nsp),
        output_padding=as_tuple("output_padding", output_padding, nsp),
        dilation=as_tuple("dilation", dilation, nsp),
        groups=as_int("groups", groups),
        kernel=tuple(int(k) for k in weight.shape[2:]),
    )
    _require(geo.groups >= 1, f"groups must be positive, got groups={groups}")
    _require(all(s >= 1 for s in geo.stride), f"stride must be positive, got stride={stride!r}")
    _require(all(d >= 1 for d in geo.dilation),
             f"dilation must be positive, got dilation={dilation!r}")
    _require(all(p >= 0 for p in geo.padding),
             f"padding must be non-negative, got padding={padding!r}")
    _require(all(o >= 0 for o in geo.output_padding),
             f"output_padding must be non-negative, got output_padding={output_padding!r}")
    _require(all(k >= 1 for k in geo.kernel),
             f"every kernel size must be positive, got kernel size {geo.kernel}")
    return geo


_CACHE: dict[tuple, tuple[Geometry, bool]] = {}
_CACHE_SIZE = 1024


def _types(value: Any) -> Any:
    return tuple(map(type, value)) if isinstance(value, tuple) else type(value)


def _cached(rules: Any, shapes: tuple, args: tuple) -> tuple[Geometry, bool]:
    """``rules(*shapes, *args)``, memoised on hashable arguments and their exact types (so
    ``True`` or ``2.0`` never pass as a cached ``1`` or ``2``). Only calls that pass are cached:
    every bad call still raises its own message."""
    args = tuple(_hashable(a) for a in args)
    key = (rules, shapes, args, tuple(_types(a) for a in args))
    try:
        return _CACHE[key]
    except TypeError:                                  # unhashable arguments: no cache
        return rules(*shapes, *args)
    except KeyError:
        pass
    result = rules(*shapes, *args)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    _CACHE[key] = result
    return result


def check_transpose(input: Any, weight: Any, bias: Any, stride: IntOrTuple, padding: IntOrTuple,
                    output_padding: IntOrTuple, groups: int, dilation: IntOrTuple
                    ) -> tuple[Any, Geometry, bool]:
    """Validate a ``conv_transpose`` call. Returns (batched input, geometry, was_batched)."""
    _check_arrays(input, weight, bias)
    geo, batched = _cached(_transpose_rules, _shape_key(input, weight, bias),
                           (stride, padding, output_padding, groups, dilation))
    return (input if batched else input[None, ...]), geo, batched


def _transpose_rules(in_shape: tuple[int, ...], w_shape: tuple[int, ...],
                     b_shape: tuple[int, ...] | None, stride: IntOrTuple, padding: IntOrTuple,
                     output_padding: IntOrTuple, groups: int, dilation: IntOrTuple
                     ) -> tuple[Geometry, bool]:
    input, weight = _Shaped(in_shape), _Shaped(w_shape)
    _check_ndims(input, weight, "conv_transpose")
    geo = _geometry(weight, stride, padding, output_padding, groups, dilation)
    for o, s, d in zip(geo.output_padding, geo.stride, geo.dilation, strict=True):
        _require(o < max(s, d),
                 f"output_padding must be smaller than max(stride, dilation) in every dimension, "
                 f"got output_padding={geo.output_padding}, stride={geo.stride}, "
                 f"dilation={geo.dilation}")
    batched = input.ndim == geo.ndim + 2
    x = input if batched else _Shaped((1,) + in_shape)
    c_in, c_out_g, g = w_shape[0], w_shape[1], geo.groups
    _require(c_in % g == 0,
             f"groups must divide the input channels: weight.shape[0]={c_in} (C_in) is not "
             f"divisible by groups={g}")
    _require(c_out_g >= 1,
             f"weight.shape[1] (C_out/groups) must be at least 1, got weight.shape={w_shape}; "
             f"conv_transpose weights are laid out {LAYOUTS['conv_transpose']}")
    _require(x.shape[1] == c_in,
             f"input has {x.shape[1]} channels but weight.shape[0] (C_in) is {c_in}; "
             f"conv_transpose weights are laid out {LAYOUTS['conv_transpose']}")
    _check_bias(b_shape, c_out_g * g)
    _check_spatial(x, geo, transposed=True, in_shape=in_shape)
    return geo, batched


def check_conv(input: Any, weight: Any, bias: Any, stride: IntOrTuple, padding: IntOrTuple,
               dilation: IntOrTuple, groups: int) -> tuple[Any, Geometry, bool]:
    """Validate a forward ``conv`` call. Returns (batched input, geometry, was_batched)."""
    _check_arrays(input, weight, bias)
    geo, batched = _cached(_conv_rules, _shape_key(input, weight, bias),
                           (stride, padding, dilation, groups))
    return (input if batched else input[None, ...]), geo, batched


def _conv_rules(in_shape: tuple[int, ...], w_shape: tuple[int, ...],
                b_shape: tuple[int, ...] | None, stride: IntOrTuple, padding: IntOrTuple,
                dilation: IntOrTuple, groups: int) -> tuple[Geometry, bool]:
    input, weight = _Shaped(in_shape), _Shaped(w_shape)
    _check_ndims(input, weight, "conv")
    geo = _geometry(weight, stride, padding, 0, groups, dilation)
    batched = input.ndim == geo.ndim + 2
    x = input if batched else _Shaped((1,) + in_shape)
    c_out, c_in_g, g = w_shape[0], w_shape[1], geo.groups
    _require(c_out >= 1 and c_in_g >= 1,
             f"weight.shape[0] (C_out) and weight.shape[1] (C_in/groups) must be at least 1, got "
             f"weight.shape={w_shape}; conv weights are laid out {LAYOUTS['conv']}")
    _require(c_out % g == 0,
             f"groups must divide the output channels: weight.shape[0]={c_out} (C_out) is not "
             f"divisible by groups={g}")
    _require(x.shape[1] == c_in_g * g,
             f"input has {x.shape[1]} channels but weight expects C_in = "
             f"weight.shape[1] * groups = {c_in_g} * {g} = {c_in_g * g}; "
             f"conv weights are laid out {LAYOUTS['conv']}")
    _check_bias(b_shape, c_out)
    _check_spatial(x, geo, transposed=False, in_shape=in_shape)
    return geo, batched


def check_conv_matrix(weight: Any, input_size: IntOrTuple, stride: IntOrTuple,
                      padding: IntOrTuple, dilation: IntOrTuple, groups: int
                      ) -> tuple[Geometry, tuple[int, ...]]:
    """Validate a ``conv_matrix`` call: the rules of ``conv`` on one sample of ``input_size``.

    Returns (geometry, input_size as a tuple)."""
    backend.check_same_kind(weight=weight)
    backend.check_float_dtypes(weight=weight)
    _check_weight_ndim(weight, "conv_matrix")
    in_size = positive_tuple("input_size", input_size, weight.ndim - 2)
    c_in = int(weight.shape[1]) * max(as_int("groups", groups), 0)   # the input it multiplies
    geo, _ = _cached(_conv_rules, ((c_in,) + in_size, _shape_key(weight)[0], None),
                     (stride, padding, dilation, groups))
    return geo, in_size


def _check_bias(b_shape: tuple[int, ...] | None, c_out: int) -> None:
    if b_shape is None:
        return
    _require(b_shape == (c_out,),
             f"bias must have shape (C_out,) = ({c_out},), got bias.shape={b_shape}")


def _check_spatial(x: Any, geo: Geometry, transposed: bool, in_shape: tuple[int, ...]) -> None:
    """Channels and spatial sizes of the batched ``x`` at least 1, and so the output's;
    ``in_shape`` is the input's shape as the caller gave it (maybe unbatched), for the message."""
    from . import shapes  # shapes imports nothing from here; local import keeps modules flat

    spatial = tuple(int(v) for v in x.shape[2:])
    _require(all(v >= 1 for v in spatial) and int(x.shape[1]) >= 1,
             f"input must not be empty: its channels and every spatial size must be at least 1 "
             f"(only the batch may be empty, N=0), got input.shape={in_shape}")
    if transposed:
        out = shapes.conv_transpose_output_shape(spatial, geo.kernel, geo.stride, geo.padding,
                                                 geo.output_padding, geo.dilation)
    else:
        out = shapes.conv_output_shape(spatial, geo.kernel, geo.stride, geo.padding, geo.dilation)
    _require(all(o >= 1 for o in out),
             f"the output size must be positive, but input spatial size {spatial} with "
             f"kernel={geo.kernel}, stride={geo.stride}, padding={geo.padding}, "
             f"dilation={geo.dilation}"
             + (f", output_padding={geo.output_padding}" if transposed else "")
             + f" gives output size {out}")
