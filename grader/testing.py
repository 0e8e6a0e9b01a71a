"""The assertion helpers that exercise test cells use.

Test cells in the exercises never use ``assert`` or ``numpy.testing`` directly. They call::

    expect("scatter_1d", scatter_1d(x, w, 2), expected=[2, 4, 9, 6, 9],
           hint="each input element adds a scaled copy of the kernel, stride apart")
    expect_raises("bad_stride", ValueError, output_size, 4, 3, 0)

Two modes:

* **Student mode** (default, JupyterLab or ``tconv-grader check``): ``expect`` compares ``got``
  with ``expected`` and raises an ``AssertionError`` saying what was expected, what came back, and
  the hint. This is the feedback loop while working.
* **Grading mode** (inside the autograder's sandbox): the grader rebinds ``expect`` and
  ``expect_raises`` in the notebook's namespace, right before each test cell, to *recorders*. A
  recorder converts ``got`` to plain data (numbers, strings, ``numpy.ndarray`` of a numeric dtype,
  lists/tuples/dicts of these; NumPy numbers, torch tensors and ``torch.Size`` are converted;
  anything else, like an object whose ``__eq__`` always says yes, is recorded as
  "unserialisable", see :func:`to_plain`) and sends it out of the sandbox under the key
  ``"<grade_id>/<name>"``. ``expected`` is ignored there: the grader compares the student's records
  with the records of the instructor's solution, in a process the student's code never ran in.
  Monkeypatching this module or ``numpy.testing`` therefore cannot turn a failure into a pass.

The comparison rule (:func:`values_match`) is the same in both modes.
"""

from __future__ import annotations

import ast
import builtins
import math
import re
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

RTOL = 1e-6
ATOL = 1e-8
SHOW_WHOLE = 120  # a failed comparison of arrays this short (as text) shows both in full


class Unserialisable:
    """Marker for a value that is not plain data (never equal to anything)."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<unserialisable {self.type_name}>"


def _numpy_scalar_classes() -> dict[int, type]:
    """NumPy's own scalar classes (``np.int64``, ``np.uint16``, ``np.longdouble``, ``np.bool_``,
    ``np.complex128``, ``np.str_``, ...) keyed by ``id``: a lookup runs no code of the value's
    class (no ``__hash__`` or ``__eq__`` of a metaclass), and a subclass is not in it, even one
    that calls itself ``numpy``."""
    return {id(c): c for c in (np.dtype(code).type for code in np.typecodes["All"])}


_NUMPY_SCALARS = _numpy_scalar_classes()
_PLAIN = (bool, int, float, str)
# the bases a refused value is named by ("R, a subclass of tuple"), the first that fits
_BASES = ((bool, "bool"), (int, "int"), (float, "float"), (complex, "complex"), (str, "str"),
          (tuple, "tuple"), (list, "list"), (dict, "dict"), (np.ndarray, "numpy.ndarray"),
          (np.generic, "a NumPy scalar type"))


def _is(t: type, types: tuple) -> bool:
    """``t`` is one of ``types``, by identity (``t in types`` would ask ``t``'s metaclass)."""
    return any(t is c for c in types)


def _torch_class(name: str) -> Any:
    """torch's own ``Tensor``, ``Size`` or ``nn.Parameter`` when torch is imported, else None
    (this module never imports torch itself)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if name == "Parameter":
        return getattr(getattr(torch, "nn", None), "Parameter", None)
    return getattr(torch, name, None)


def to_plain(value: Any) -> Any:
    """Plain-data copy of ``value``: ``None``, ``bool``, ``int``, ``float``, ``str``, a numeric
    ``numpy.ndarray``, or a ``list``, ``tuple`` or ``dict`` (``str`` keys) of these.

    Exact types only, every check by identity, so subclasses cannot smuggle ``__eq__``. The
    other types a correct answer plausibly comes in are NumPy's and PyTorch's own, converted:
    a NumPy number of any width (``np.uint16``, ``np.longdouble``, ``np.bool_``, ...) becomes a
    Python number, a ``numpy.matrix`` a plain array, a ``torch.Tensor`` (or ``nn.Parameter``)
    an array and a ``torch.Size`` a tuple of ints. Anything else becomes an
    :class:`Unserialisable` naming its type (``"R, a subclass of tuple"``): it never matches,
    and :func:`describe_mismatch` says what was expected instead and how to return it.
    """
    t = type(value)
    if value is None or _is(t, _PLAIN):
        return value
    if _NUMPY_SCALARS.get(id(t)) is t:
        kind = np.dtype(t).kind
        if kind == "b":
            return bool(value)
        if kind in "iu":
            return int(value)
        if kind == "f":
            return float(value)  # np.longdouble too (its .item() stays a NumPy scalar)
        return _refused(t)
    if t is np.ndarray or t is np.matrix:
        if value.dtype.kind not in "biuf":
            return Unserialisable(f"ndarray[{value.dtype}]")
        return np.array(value, copy=True)  # subok=False: a matrix becomes a plain 2-D array
    if t is list or t is tuple:
        return t(to_plain(v) for v in value)
    if t is dict:
        plain = {}
        for k, v in value.items():
            if not (k is None or _is(type(k), _PLAIN)):
                return _refused(t, f"dict with a key of type {_type_name(type(k))}")
            plain[str(k)] = to_plain(v)
        return plain
    if t is _torch_class("Tensor") or t is _torch_class("Parameter"):
        return _tensor_to_plain(value)
    if t is _torch_class("Size"):
        items = tuple(tuple.__iter__(value))  # tuple's own iterator: no code of the value's
        if all(type(v) is int for v in items):
            return items
    return _refused(t)


def _tensor_to_plain(tensor: Any) -> Any:
    """A torch tensor's values as a NumPy array: int64 or bool, a floating tensor as float64,
    float32 or float16, the width it came in (a bfloat16 or 8-bit float one as float32, which
    holds its values exactly), so that :func:`precision_note` can tell a rounding failure."""
    dtype = str(tensor.dtype).removeprefix("torch.")
    if tensor.dtype.is_complex:
        return Unserialisable(f"torch.Tensor[{dtype}], a complex tensor")
    if str(tensor.layout) != "torch.strided":
        return Unserialisable(f"torch.Tensor[{dtype}], a sparse tensor")
    try:
        arr = tensor.detach().cpu().resolve_conj().resolve_neg().to(
            dtype=_torch_plain_dtype(tensor)).numpy()
    except Exception:  # noqa: BLE001 - anything odd is simply not plain data
        return Unserialisable("torch.Tensor")
    arr = np.array(arr, copy=True)  # subok=False: a plain ndarray, whatever .numpy() gave
    return arr if arr.dtype.kind in "biuf" else Unserialisable("torch.Tensor")


def _type_name(t: type) -> str:
    name = getattr(t, "__name__", None)
    return name[:80] if type(name) is str else "?"


def _refused(t: type, what: str | None = None) -> Unserialisable:
    """The marker for a value of type ``t`` that is not plain data, naming what it is."""
    try:
        return Unserialisable(what or _what_type(t))
    except Exception:  # noqa: BLE001 - a class too odd to name is still refused
        return Unserialisable("?")


def _what_type(t: type) -> str:
    """``t`` in a few words: "numpy.complex128", "R, a subclass of tuple", "map, an iterator",
    "csr_matrix, a SciPy sparse matrix", "object"."""
    name = _type_name(t)
    if _NUMPY_SCALARS.get(id(t)) is t:
        return f"numpy.{name}"
    module = getattr(t, "__module__", None)
    if type(module) is str and module.startswith("scipy.sparse"):
        return f"{name}, a SciPy sparse matrix"
    tensor = _torch_class("Tensor")
    if tensor is not None and issubclass(t, tensor):
        return f"{name}, a subclass of torch.Tensor"
    for base, base_name in _BASES:
        if issubclass(t, base):
            if t is complex:
                return "complex, a complex number"
            return f"{name}, a subclass of {base_name}"
    if hasattr(t, "__next__"):
        return f"{name}, an iterator"
    return name


def _torch_plain_dtype(tensor: Any) -> Any:
    import torch

    if tensor.dtype.is_floating_point:
        if tensor.dtype is torch.float16:
            return torch.float16
        return torch.float64 if tensor.dtype is torch.float64 else torch.float32
    if tensor.dtype == torch.bool:
        return torch.bool
    return torch.int64


def _within(got: Any, expected: Any, rtol: float, atol: float) -> Any:
    """The tolerance rule, elementwise: ``|got - expected| <= atol + rtol |expected|`` (a NaN is
    never within)."""
    return np.abs(got - expected) <= atol + rtol * np.abs(expected)


def values_match(got: Any, expected: Any, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """True when two plain values agree: same structure and shape, integers exactly (two ints,
    two integer arrays), other numbers within tolerance.

    NaN never matches (not even NaN), so a NaN answer cannot pass a test.
    """
    if isinstance(got, Unserialisable) or isinstance(expected, Unserialisable):
        return False
    if isinstance(expected, np.ndarray) or isinstance(got, np.ndarray):
        if not (isinstance(got, np.ndarray | list | tuple | int | float)):
            return False
        try:
            g, e = np.asarray(got), np.asarray(expected)
        except (ValueError, TypeError, OverflowError):  # ragged lists: no array, no match
            return False
        if g.shape != e.shape or g.dtype.kind not in "biuf" or e.dtype.kind not in "biuf":
            return False
        if g.dtype.kind in "iu" and e.dtype.kind in "iu":  # integers: exactly, past 2**53 too
            return bool(np.array_equal(g, e))
        g, e = g.astype(np.float64), e.astype(np.float64)
        if not (np.isfinite(g).all() and np.isfinite(e).all()):
            return False
        return bool(np.all(_within(g, e, rtol, atol)))
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(got) is type(expected) and got == expected
    if type(expected) is int and type(got) is int:  # a count or a size: exactly
        return got == expected
    if isinstance(expected, int | float) and isinstance(got, int | float):
        if not (math.isfinite(got) and math.isfinite(expected)):
            return False
        return abs(got - expected) <= atol + rtol * abs(expected)
    if isinstance(expected, list | tuple) and isinstance(got, list | tuple):
        return len(got) == len(expected) and all(
            values_match(g, e, rtol, atol) for g, e in zip(got, expected, strict=True))
    if isinstance(expected, dict) and isinstance(got, dict):
        return got.keys() == expected.keys() and all(
            values_match(got[k], expected[k], rtol, atol) for k in expected)
    return type(got) is type(expected) and got == expected


def describe(value: Any, limit: int = 300) -> str:
    """A short human-readable rendering for failure messages (at most ``limit`` characters).

    A numeric array too long to show whole is its shape, dtype and first entries (row-major),
    never a cut-off wall of digits."""
    if isinstance(value, np.ndarray):
        text = f"array of shape {value.shape}: {value.tolist()!r}"
        if len(text) > limit and value.dtype.kind in "biuf" and value.size:
            head = f"an array of shape {value.shape} ({value.dtype}) whose first entries are ["
            items: list[str] = []
            used = len(head) + len(", ...]")
            for x in value.ravel()[:limit]:
                item = _fmt_number(x.item())
                used += len(item) + (2 if items else 0)     # ", " before all but the first
                if used > limit:
                    break
                items.append(item)
            if items:
                return head + ", ".join(items) + ", ...]"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shape_text(value: Any) -> str:
    arr = np.asarray(value)
    return f"shape {arr.shape} ({arr.dtype})"


def _as_numeric_array(value: Any) -> np.ndarray | None:
    """``value`` as a numeric array, when ``values_match`` would compare it as one."""
    if isinstance(value, np.ndarray):
        return value if value.dtype.kind in "biuf" else None
    if isinstance(value, list | tuple | int | float) and not isinstance(value, bool):
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError):
            return None
        return arr if arr.dtype.kind in "biuf" else None
    return None


def _fmt_number(x: Any) -> str:
    if not isinstance(x, float):
        return repr(x)
    text = f"{x:.6g}"
    return text if any(c in text for c in ".ein") else text + ".0"


def _array_mismatch(g: np.ndarray, e: np.ndarray, rtol: float, atol: float) -> str:
    """Where two numeric arrays differ, in a few words (never a wall of numbers)."""
    if g.shape != e.shape:
        what = f"the number {_fmt_number(g.item())}" if g.ndim == 0 else (
            f"an array of {_shape_text(g)}")
        expected = f"the number {_fmt_number(e.item())}" if e.ndim == 0 else (
            f"an array of {_shape_text(e)}")
        return f"expected {expected}, got {what}"
    gf, ef = g.astype(np.float64), e.astype(np.float64)
    exact = g.dtype.kind in "iu" and e.dtype.kind in "iu"  # values_match's rule: ints exactly
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(gf - ef)
        bad = g != e if exact else ~_within(gf, ef, rtol, atol)
    n_bad, size = int(bad.sum()), int(bad.size)
    if g.ndim == 0:
        return f"expected {_fmt_number(ef.item())}, got {_fmt_number(gf.item())}"
    first = tuple(int(i) for i in np.argwhere(bad)[0]) if n_bad else ()
    where = first[0] if len(first) == 1 else first
    finite = np.isfinite(diff)
    parts = [f"arrays of shape {g.shape} differ at {n_bad} of {size} entries"]
    if finite.any() and bad[finite].any():
        parts.append(f"largest difference {float(diff[finite & bad].max()):.6g}")
    nonfinite = int((~np.isfinite(gf)).sum())
    if nonfinite:
        parts.append(f"{nonfinite} of your entries are NaN or infinite")
    if n_bad:
        parts.append(f"first at index {where}: expected "
                     f"{_fmt_number((e if exact else ef)[first].item())}, "
                     f"got {_fmt_number((g if exact else gf)[first].item())}")
    return "; ".join(parts)


def _brief(value: Any) -> str:
    """``value`` in a few words: a long numeric array as its shape and dtype, not its numbers
    (beside a value of another kind, such as an error's text, the numbers say nothing)."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and \
            len(f"array of shape {value.shape}: {value.tolist()!r}") > SHOW_WHOLE:
        return f"an array of {_shape_text(value)}"
    return describe(value, 120)


# what an exercise's test cell records where the student's function raised (its ``_called``):
# "f(arguments) raised ValueError: message (raised in f, line 3 of its cell)"
RAISED = re.compile(r"[A-Za-z_]\w*\(.*\) raised ([A-Za-z_]\w*)", re.S)
_BUILTIN_ERRORS = frozenset(n for n, v in vars(builtins).items()
                            if isinstance(v, type) and issubclass(v, BaseException))


def _raised(got: Any, expected: Any) -> bool:
    """Whether ``got`` is a test cell's record of a raised exception, where a value of another
    kind was expected."""
    return type(got) is str and not isinstance(expected, str) and bool(RAISED.match(got))


def describe_mismatch(got: Any, expected: Any, rtol: float = RTOL, atol: float = ATOL) -> str:
    """What is wrong with ``got`` (plain data, see :func:`to_plain`), in a short phrase.

    Numbers, strings and small arrays are shown whole (``expected 3, got 4``); other arrays are
    summarised: two shapes and dtypes when the shapes differ (never the values), else how many
    entries differ, the largest difference and the first differing index with both values.
    Lists, tuples and dicts point at their first differing item. Meant for values that
    ``values_match`` rejected; the rule is the same (``rtol``, ``atol``).
    """
    if isinstance(got, Unserialisable):
        want = _brief(expected) if isinstance(expected, np.ndarray) else (
            f"{_brief(expected)} ({_kind(expected)})")
        return (f"expected {want}, got {got.type_name}: not plain data (only Python's, NumPy's "
                f"and PyTorch's own types are compared); {_advice(expected, got.type_name)}")
    if _raised(got, expected):  # the call and its error, whole: they are the answer here
        return f"expected {_brief(expected)}, but {got if len(got) <= 500 else got[:497] + '...'}"
    kinds = _kind_mismatch(got, expected)
    if kinds:
        return kinds
    ge, ee = _as_numeric_array(got), _as_numeric_array(expected)
    if isinstance(expected, np.ndarray) or isinstance(got, np.ndarray):
        if ge is not None and ee is not None:
            whole = f"expected {describe(expected)}, got {describe(got)}"
            if ge.shape == ee.shape and len(whole) <= SHOW_WHOLE:
                return whole  # small: both arrays in full say it best
            return _array_mismatch(ge, ee, rtol, atol)
        return f"expected {_brief(expected)}, got {_brief(got)}"
    if isinstance(expected, list | tuple) and isinstance(got, list | tuple):
        kind = type(expected).__name__
        if len(got) != len(expected):
            return (f"expected a {kind} of {len(expected)} items, got a {type(got).__name__} of "
                    f"{len(got)}" + (f" (expected {describe(expected, 100)}, got "
                                     f"{describe(got, 100)})" if len(repr(expected)) <= 100
                                     and len(repr(got)) <= 100 else ""))
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            if not values_match(g, e, rtol, atol):
                if len(repr(expected)) <= 100 and len(repr(got)) <= 100:
                    return f"expected {describe(expected)}, got {describe(got)}"
                return f"item {i}: {describe_mismatch(g, e, rtol, atol)}"
    if isinstance(expected, dict) and isinstance(got, dict):
        missing = [k for k in expected if k not in got]
        extra = [k for k in got if k not in expected]
        if missing or extra:
            return f"expected the keys {sorted(expected, key=str)}, got {sorted(got, key=str)}"
        for k in expected:
            if not values_match(got[k], expected[k], rtol, atol):
                return f"key {k!r}: {describe_mismatch(got[k], expected[k], rtol, atol)}"
    return f"expected {describe(expected)}, got {describe(got)}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    """What kind of plain value ``value`` is, for a message: "a tuple of ints", "a bool"."""
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int):
        return "an int"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a str"
    if isinstance(value, np.ndarray):
        return "an array of numbers"
    if isinstance(value, list | tuple):
        name = type(value).__name__
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return f"a {name} of ints"
        if value and all(_is_number(v) for v in value):
            return f"a {name} of numbers"
        return f"a {name}"
    if isinstance(value, dict):
        return "a dict"
    return "None" if value is None else type(value).__name__


def _advice(expected: Any, got_type: str = "") -> str:
    """How to return a value of ``expected``'s kind (``got_type``: what came back instead)."""
    if isinstance(expected, bool):
        return "return True or False (bool(x) converts a NumPy or torch truth value)"
    if isinstance(expected, int):
        return "return an int (int(x) converts a NumPy or torch integer)"
    if isinstance(expected, float):
        return "return a number: a float or an int (float(x) converts a NumPy or torch number)"
    if isinstance(expected, list | tuple):
        name = type(expected).__name__
        if _kind(expected).endswith("of ints"):
            return f"return a {name} of ints, e.g. {name}(int(v) for v in x)"
        return f"return a plain {name}, e.g. {name}(x)"
    if isinstance(expected, np.ndarray):
        dense = ("; .toarray() makes a SciPy sparse matrix dense, .to_dense() a sparse tensor"
                 if "sparse" in got_type else "")
        return f"return a NumPy array or a torch tensor of real numbers{dense}"
    return f"return {_kind(expected)}"


def _kind_mismatch(got: Any, expected: Any) -> str:
    """The message for a plain answer of another kind that Python's ``==`` might take for the
    expected one but the tests do not: a number for a bool (or a bool for a number), a sequence
    of one number for a number. '' otherwise."""
    for_bool = isinstance(expected, bool) and _is_number(got)
    bool_for = isinstance(got, bool) and _is_number(expected)
    one_item = _is_number(expected) and isinstance(got, list | tuple) and len(got) == 1
    if not (for_bool or bool_for or one_item):
        return ""
    what = f"a {type(got).__name__} of 1 item" if one_item else _kind(got)
    advice = ("return the number itself, e.g. x[0], not a sequence of one" if one_item
              else _advice(expected))
    return (f"expected {describe(expected)} ({_kind(expected)}), got {describe(got)} ({what}): "
            f"{advice}")


LOW_PRECISION = ("float32", "float16", "bfloat16")
_NOTE_DEPTH = 20  # how deep precision_note looks into lists, tuples and dicts


def _low_precision(value: Any, depth: int = 0) -> str:
    """The first low-precision float dtype name in ``value`` (top level first, then its items),
    '' if none. Exact NumPy arrays, NumPy numbers and torch tensors (checked by identity, as
    :func:`to_plain` does); a record from the grading sandbox holds a float32 or float16 array
    where the answer came in that width (a bfloat16 tensor as float32)."""
    t = type(value)
    if t is np.ndarray or t is np.matrix or _NUMPY_SCALARS.get(id(t)) is t:
        name = value.dtype.name
    elif t is _torch_class("Tensor") or t is _torch_class("Parameter"):
        name = str(value.dtype).removeprefix("torch.")
    elif depth < _NOTE_DEPTH and (t is list or t is tuple or t is dict):
        for v in (value.values() if t is dict else value):
            name = _low_precision(v, depth + 1)
            if name:
                return name
        return ""
    else:
        return ""
    return name if name in LOW_PRECISION else ""


def precision_note(value: Any) -> str:
    """A sentence for a float32 (or float16, bfloat16) answer, whose rounding alone can fail a
    test; '' for anything else. Looks at NumPy arrays and numbers and torch tensors, also
    inside lists, tuples and dicts, and works on a student's value (``check``) as on its plain
    record (grading: :func:`to_plain` keeps a float array's width). The note names only a
    dtype, never a value, so it may be said where the answer itself is not shown."""
    name = _low_precision(value)
    if not name:
        return ""
    return (f" Your answer is {name}: the tests compare with float64 results to a relative "
            f"{RTOL:g}, which {name} rounding alone can miss; compute in float64.")


# ---- what may be said of an answer that is not shown ---------------------------------------------
# In a test cell that also runs hidden tests the student's code may have read their source (or
# been handed their inputs), so nothing of its own choosing reaches a message there: not its
# values, its shape or its text, nor the name of a class it defines (a class can be named after
# anything). What may be said is from a fixed vocabulary: the answer's kind, a float dtype, and
# for a refused type its name when the language or a library gives it, else only what it is.
_SUFFIXES = tuple(f", a subclass of {n}" for _, n in _BASES) + (
    ", a subclass of torch.Tensor", ", a SciPy sparse matrix", ", an iterator")
_SPARSE_NAMES = tuple(f"{f}_{k}" for f in ("bsr", "coo", "csc", "csr", "dia", "dok", "lil")
                      for k in ("matrix", "array"))
_TORCH_DTYPES = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8",
                 "uint8", "bool", "complex32", "complex64", "complex128")
_known_names: frozenset[str] | None = None


def _known_type_names() -> frozenset[str]:
    """Every refused type's text (:func:`_what_type`) that names a class of Python's, NumPy's,
    SciPy's or PyTorch's own (the same set in every process: nothing is imported for it)."""
    global _known_names
    if _known_names is None:
        import builtins
        import collections
        import decimal
        import fractions
        import itertools
        import types

        classes = [v for m in (builtins, types, collections, itertools, fractions, decimal)
                   for v in vars(m).values() if isinstance(v, type)]
        classes += list(_NUMPY_SCALARS.values()) + [np.ma.MaskedArray, np.memmap, np.recarray,
                                                    np.matrix, type(iter([])), type(iter(()))]
        names = set()
        for c in classes:
            try:
                names.add(_what_type(c))
            except Exception:  # noqa: BLE001 - a class too odd to name is simply not known
                pass
        names |= {f"{n}, a SciPy sparse matrix" for n in _SPARSE_NAMES}
        names |= {f"torch.Tensor[{d}], a {k} tensor" for d in _TORCH_DTYPES
                  for k in ("complex", "sparse")}
        names |= {"torch.Tensor", "ndarray[object]", "ndarray[bool]"} | {
            f"ndarray[complex{n}]" for n in (64, 128, 192, 256)}
        names |= {f"dict with a key of type {n}" for n in ("tuple", "frozenset", "bytes",
                                                           "complex", "float", "int")}
        _known_names = frozenset(names)
    return _known_names


def shown_type(type_name: str) -> str:
    """Words for a refused answer's type (an :class:`Unserialisable`'s ``type_name``) where the
    answer is not shown: the text itself when it names a class of Python's, NumPy's, SciPy's or
    PyTorch's own (``range``, ``map, an iterator``, ``numpy.complex128``), else only what kind
    of thing it is (``a subclass of tuple``, ``an iterator``, ``a NumPy array of other than
    real numbers``): the name of a class the student's code defines is never repeated."""
    if type_name in _known_type_names():
        return type_name
    for suffix in _SUFFIXES:
        if type_name.endswith(suffix):
            return suffix[2:]
    if type_name.startswith("ndarray["):
        return "a NumPy array of other than real numbers"
    if type_name.startswith("torch.Tensor["):
        return "a sparse torch tensor" if type_name.endswith("sparse tensor") else (
            "a complex torch tensor")
    if type_name.startswith("dict with a key of type "):
        return "a dict with a key that is not a str, a number, a bool or None"
    return "an object of another type (its name is not shown here)"


def _coarse(value: Any) -> str:
    if value is None or isinstance(value, bool | str | dict):
        return type(value).__name__
    return "other"


def describe_unshown(got: Any, expected: Any) -> str:
    """What a failed test says where the student's answer ``got`` (plain data) is not shown, a
    test cell that also runs hidden tests: the expected value, and what kind of answer came back
    when that explains the failure (a refused type and how to return the expected kind, a number
    for a bool, None, ...), in words that carry nothing of the answer's own values or text
    (:func:`shown_type`). ``expected`` is a visible test's (never a hidden test's)."""
    base = "; your answer is not shown (this cell also runs hidden tests)"
    if isinstance(got, Unserialisable):
        what = shown_type(got.type_name)
        want = _brief(expected) if isinstance(expected, np.ndarray) else (
            f"{_brief(expected)} ({_kind(expected)})")
        return (f"expected {want}{base}, but it is {what}: not plain data (only Python's, "
                f"NumPy's and PyTorch's own types are compared); {_advice(expected, what)}")
    if _raised(got, expected):  # a builtin exception's name only: the text is the answer's
        name = RAISED.match(got).group(1)
        what = name if name in _BUILTIN_ERRORS else "an exception"
        return (f"expected {_brief(expected)}{base}, but your function raised {what}: run the "
                "cell (or tconv-grader check) to see the call and its message")
    for_bool = isinstance(expected, bool) and _is_number(got)
    bool_for = isinstance(got, bool) and _is_number(expected)
    one_item = _is_number(expected) and isinstance(got, list | tuple) and len(got) == 1
    if one_item:
        return (f"expected {describe(expected)} ({_kind(expected)}){base}, but it is a "
                f"{type(got).__name__} of 1 item: return the number itself, e.g. x[0], not a "
                "sequence of one")
    if for_bool or bool_for or (_coarse(got) != "other" and _coarse(got) != _coarse(expected)):
        return (f"expected {describe(expected)} ({_kind(expected)}){base}, but it is "
                f"{_kind(got)}: {_advice(expected)}")
    return f"expected {describe(expected)}{base}"


def expect(name: str, got: Any, expected: Any, hint: str = "") -> None:
    """Student mode: raise ``AssertionError`` unless ``got`` matches ``expected``."""
    g, e = to_plain(got), to_plain(expected)
    if not values_match(g, e):
        try:
            what = describe_mismatch(g, e)
        except Exception:  # noqa: BLE001 - an odd value still gets the plain message
            what = f"expected {describe(e)}, got {describe(g)}"
        note = "" if isinstance(g, Unserialisable) else precision_note(got)
        msg = f"[{name}] {what}.{note}"
        if hint:
            msg += f" Hint: {hint}"
        raise AssertionError(msg)


def raised_as(exc_type: type[BaseException], fn: Callable[..., Any], *args: Any,
              **kwargs: Any) -> str:
    """The name of the exception ``fn(*args, **kwargs)`` raises, or ``"no exception"``; one
    that is an ``exc_type`` (a student's own subclass of ``ValueError``, say) is named
    ``exc_type``, as ``except exc_type`` would catch it. Only a plain class counts as
    ``exc_type`` (no metaclass of its own decides)."""
    try:
        fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - recording which exception is the point
        if type(exc_type) is type and issubclass(type(exc), exc_type):
            return exc_type.__name__
        return type(exc).__name__
    return "no exception"


def expect_raises(name: str, exc_type: type[BaseException], fn: Callable[..., Any], *args: Any,
                  hint: str = "", **kwargs: Any) -> None:
    """Student mode: raise ``AssertionError`` unless ``fn(*args)`` raises ``exc_type`` (or a
    subclass of it)."""
    got = raised_as(exc_type, fn, *args, **kwargs)
    if got != exc_type.__name__:
        msg = f"[{name}] expected {exc_type.__name__} to be raised, got {got}."
        if hint:
            msg += f" Hint: {hint}"
        raise AssertionError(msg)


# ---- names the locked cells define (one mechanism for grading and ``check``) ---------------------
_MISSING = object()


def _own_name(name: Any) -> bool:
    """Names the guard never watches: dunders and IPython's history (``_``, ``_i3``, ``Out``)."""
    if type(name) is not str or name.startswith("__"):
        return False
    if name in ("In", "Out", "exit", "quit", "get_ipython", "_oh", "_dh", "_ih", "_exit_code"):
        return False
    rest = name.lstrip("_")
    if name.startswith("_") and (rest == "" or rest.isdigit() or rest.strip("i") == ""
                                 or (rest[:1] == "i" and rest[1:].isdigit())):
        return False
    return True


class LockedNames:
    """The objects the locked cells (given cells, test cells) bind, kept for the tests.

    The process running the notebook calls :meth:`before` and :meth:`after` around every cell
    (``locked``: an nbgrader locked or graded cell that is not an answer) and :meth:`restore`
    right before each test cell. A name a locked cell bound (by identity: an answer cell that
    binds the same module or object again changes nothing) and a later cell rebound or deleted
    is put back for the tests, and reported as ``(name, culprit cell, locked cell)``: an answer
    cell cannot swap a given helper or the test's own watcher for one of its own. Names an answer
    cell binds that no locked cell bound (its own functions, redefined as often as it likes) are
    never touched. Deeper tampering (editing a function's ``__code__``, ``sys.setprofile``,
    rewriting ``globals()`` from inside a call the test makes) is out of its reach.
    """

    def __init__(self, ns: dict, skip: tuple = ()) -> None:
        self.ns = ns
        self.skip = frozenset(skip)
        self.given: dict[str, tuple[Any, int]] = {}  # name -> (object, locked cell)
        self.culprit: dict[str, int] = {}  # name -> first cell that rebound it since
        self._before: dict | None = None

    def before(self, locked: bool) -> None:
        self._before = dict(self.ns) if locked else None

    def after(self, cell: int, locked: bool) -> None:
        ns, given = self.ns, self.given
        if locked and self._before is not None:
            before, self._before = self._before, None
            for k, v in ns.items():
                if before.get(k, _MISSING) is not v and k not in self.skip and _own_name(k):
                    given[k] = (v, cell)
                    self.culprit.pop(k, None)
            for k in [k for k in given if k in before and k not in ns]:
                del given[k]  # the locked cell deleted it itself
            return
        for k, (v, _) in given.items():
            if ns.get(k, _MISSING) is not v:
                self.culprit.setdefault(k, cell)
            else:
                self.culprit.pop(k, None)

    def restore(self) -> list[tuple[str, int, int]]:
        """Put back every rebound name; say which (a caller leaves out of its report the names
        the test cell binds itself, :func:`top_level_stores`, computed only when any)."""
        ns, out = self.ns, []
        for k, (v, cell) in self.given.items():
            if ns.get(k, _MISSING) is not v:
                ns[k] = v
                out.append((k, self.culprit.get(k, -1), cell))
                self.culprit.pop(k, None)
        return out


# captured at import: the harness's private copy must not depend on the ``ast`` module's
# Python code, which runs on the builtins a notebook may have patched
_ONLY_AST = ast.PyCF_ONLY_AST
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_IMPORTS = (ast.Import, ast.ImportFrom)
_SCOPES = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_AST, _NAME, _STORE = ast.AST, ast.Name, ast.Store


def top_level_stores(source: str) -> frozenset:
    """The names a cell binds at its top level (assigns, defines, imports; not inside functions,
    classes or comprehensions): a test cell that binds a name itself needs no report of it."""
    try:
        tree = compile(source, "<cell>", "exec", _ONLY_AST)
    except (SyntaxError, ValueError, TypeError):
        return frozenset()
    out: set = set()
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, _DEFS):
            out.add(node.name)
            continue
        if isinstance(node, _IMPORTS):
            out.update((a.asname or a.name).split(".")[0] for a in node.names)
            continue
        if isinstance(node, _NAME) and isinstance(node.ctx, _STORE):
            out.add(node.id)
        if isinstance(node, _SCOPES):
            continue
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, _AST):
                todo.append(value)
            elif isinstance(value, list):
                todo.extend(v for v in value if isinstance(v, _AST))
    return frozenset(out)
