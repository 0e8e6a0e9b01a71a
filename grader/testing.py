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
  lists/tuples/dicts of these; anything else, like an object whose ``__eq__`` always says yes, is
  recorded as "unserialisable") and sends it out of the sandbox under the key
  ``"<grade_id>/<name>"``. ``expected`` is ignored there: the grader compares the student's records
  with the records of the instructor's solution, in a process the student's code never ran in.
  Monkeypatching this module or ``numpy.testing`` therefore cannot turn a failure into a pass.

The comparison rule (:func:`values_match`) is the same in both modes.
"""

from __future__ import annotations

import math
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


def to_plain(value: Any) -> Any:
    """Plain-data copy of ``value``; exact types only, so subclasses cannot smuggle ``__eq__``."""
    t = type(value)
    if value is None or t in (bool, int, float, str):
        return value
    if t in (np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8,
             np.uint8, np.bool_):
        return value.item()
    if t is np.ndarray:
        if value.dtype.kind not in "biuf":
            return Unserialisable(f"ndarray[{value.dtype}]")
        return np.array(value, copy=True)
    if t.__module__ == "torch" and t.__name__ in ("Tensor", "Parameter"):
        try:
            arr = value.detach().cpu().to(dtype=_torch_plain_dtype(value)).numpy()
        except Exception:  # noqa: BLE001 - anything odd is simply not plain data
            return Unserialisable("torch.Tensor")
        return np.array(arr, copy=True)
    if t in (list, tuple):
        return t(to_plain(v) for v in value)
    if t is dict:
        return {str(k): to_plain(v) for k, v in value.items()}
    return Unserialisable(t.__name__)


def _torch_plain_dtype(tensor: Any) -> Any:
    import torch

    if tensor.dtype.is_floating_point:
        return torch.float64
    if tensor.dtype == torch.bool:
        return torch.bool
    return torch.int64


def _within(got: Any, expected: Any, rtol: float, atol: float) -> Any:
    """The tolerance rule, elementwise: ``|got - expected| <= atol + rtol |expected|`` (a NaN is
    never within)."""
    return np.abs(got - expected) <= atol + rtol * np.abs(expected)


def values_match(got: Any, expected: Any, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """True when two plain values agree: same structure and shape, numbers within tolerance.

    NaN never matches (not even NaN), so a NaN answer cannot pass a test.
    """
    if isinstance(got, Unserialisable) or isinstance(expected, Unserialisable):
        return False
    if isinstance(expected, np.ndarray) or isinstance(got, np.ndarray):
        if not (isinstance(got, np.ndarray | list | tuple | int | float)):
            return False
        g, e = np.asarray(got), np.asarray(expected)
        if g.shape != e.shape or g.dtype.kind not in "biuf" or e.dtype.kind not in "biuf":
            return False
        g, e = g.astype(np.float64), e.astype(np.float64)
        if not (np.isfinite(g).all() and np.isfinite(e).all()):
            return False
        return bool(np.all(_within(g, e, rtol, atol)))
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(got) is type(expected) and got == expected
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
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(gf - ef)
        bad = ~_within(gf, ef, rtol, atol)
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
        parts.append(f"first at index {where}: expected {_fmt_number(ef[first].item())}, "
                     f"got {_fmt_number(gf[first].item())}")
    return "; ".join(parts)


def _brief(value: Any) -> str:
    """``value`` in a few words: a long numeric array as its shape and dtype, not its numbers
    (beside a value of another kind, such as an error's text, the numbers say nothing)."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and \
            len(f"array of shape {value.shape}: {value.tolist()!r}") > SHOW_WHOLE:
        return f"an array of {_shape_text(value)}"
    return describe(value, 120)


def describe_mismatch(got: Any, expected: Any, rtol: float = RTOL, atol: float = ATOL) -> str:
    """What is wrong with ``got`` (plain data, see :func:`to_plain`), in a short phrase.

    Numbers, strings and small arrays are shown whole (``expected 3, got 4``); other arrays are
    summarised: two shapes and dtypes when the shapes differ (never the values), else how many
    entries differ, the largest difference and the first differing index with both values.
    Lists, tuples and dicts point at their first differing item. Meant for values that
    ``values_match`` rejected; the rule is the same (``rtol``, ``atol``).
    """
    if isinstance(got, Unserialisable):
        return f"expected {describe(expected)}, got {describe(got)} (not plain data)"
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


LOW_PRECISION = ("float32", "float16", "bfloat16")


def precision_note(value: Any) -> str:
    """A sentence for a float32 (or float16) answer, whose rounding alone can fail a test;
    '' for anything else. Looks at NumPy arrays and scalars and torch tensors."""
    dtype = getattr(value, "dtype", None)
    if dtype is None or type(value).__module__.split(".")[0] not in ("numpy", "torch"):
        return ""
    name = str(dtype).removeprefix("torch.")
    if name not in LOW_PRECISION:
        return ""
    return (f" Your answer is {name}: the tests compare with float64 results to a relative "
            f"{RTOL:g}, which {name} rounding alone can miss; compute in float64.")


def expect(name: str, got: Any, expected: Any, hint: str = "") -> None:
    """Student mode: raise ``AssertionError`` unless ``got`` matches ``expected``."""
    g, e = to_plain(got), to_plain(expected)
    if not values_match(g, e):
        try:
            what = describe_mismatch(g, e)
        except Exception:  # noqa: BLE001 - an odd value still gets the plain message
            what = f"expected {describe(e)}, got {describe(g)}"
        msg = f"[{name}] {what}.{precision_note(got)}"
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
