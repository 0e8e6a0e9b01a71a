"""Correct answers of another type: which ones pass, and what the others are told.

The grader compares a student's value with the expected one as plain data
(:func:`grader.testing.to_plain`, then :func:`grader.testing.values_match`). ``to_plain`` takes
exact types only, so that a subclass cannot smuggle its own ``__eq__``; the types of NumPy and
PyTorch that a correct answer plausibly comes in are converted (a ``torch.Size`` to a tuple of
ints, a NumPy number of any width to a Python number, a tensor or a ``numpy.matrix`` to an
array). The table ``VARIANTS`` lists, per exercise and with the exercise's docstring as the
contract, what a correct student might return and whether it passes; a refused one gets a
message saying what was expected, what came back and how to return it.

Checked three ways: in student mode (``expect``, as ``tconv-grader check`` and JupyterLab run
it), through the grading sandbox's recorders (the harness's private copy of ``to_plain``, the
records' JSON framing; ``run_notebook`` with and without bubblewrap), and through a real
``tconv-grader autograde`` of a tiny assignment (scores and the messages in ``results.json``).
Subclasses and classes that lie about their type stay refused (``test_lookalikes_are_refused``;
the attack submissions are in ``test_attacks.py``). ``solutions/CORRECT.md`` C22/C23 run whole
exercises with a ``torch.Size`` answer (``test_solutions.py``).

Grading tells what ``check`` tells: a float32 answer that failed by rounding gets the same note
(the record keeps a float array's width), and where a cell also runs hidden tests (answers not
shown) a refused type still gets its advice, naming only what kind of type it is unless Python,
NumPy, SciPy or PyTorch gives the name: a student's class can be named after hidden test text
(the tiny assignment's ``leaky_types`` student tries it; nothing of it reaches results.json).
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pytest
import scipy.sparse
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.testing import (
    Unserialisable,
    describe,
    describe_mismatch,
    describe_unshown,
    expect,
    precision_note,
    shown_type,
    to_plain,
    values_match,
)

Pair = collections.namedtuple("Pair", "low high")


def _matrix(rows) -> np.matrix:
    """``np.asmatrix(rows)`` without NumPy's PendingDeprecationWarning (still a NumPy type)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.asmatrix(rows)


def _message(got, expected) -> str:
    """What ``expect`` says of ``got`` ('' when it passes)."""
    try:
        expect("case", got, expected, hint="h")
    except AssertionError as exc:
        return str(exc)
    return ""


def _plain_only(value) -> bool:
    """Every leaf of ``value`` is of an exact plain type (no NumPy scalar, no tuple subclass)."""
    t = type(value)
    if t is list or t is tuple:
        return all(_plain_only(v) for v in value)
    if t is dict:
        return all(type(k) is str and _plain_only(v) for k, v in value.items())
    return value is None or t in (bool, int, float, str) or (
        t is np.ndarray and value.dtype.kind in "biuf")


# (id, what the student returned, expected, passes, words of the message when refused)
# expected values as the test cells compute them; `got` is built when the test runs.
ALL_TYPES = "only Python's, NumPy's and PyTorch's own types are compared"
VARIANTS = [
    # ex1 Tasks 1 and 3, ex8's sizes: a length, an output_padding (an int)
    ("ex1_int_np_int64", lambda: np.int64(7), 7, True, ()),
    ("ex1_int_np_intp", lambda: np.intp(7), 7, True, ()),
    ("ex1_int_np_int32", lambda: np.int32(7), 7, True, ()),
    ("ex1_int_np_uint8", lambda: np.uint8(7), 7, True, ()),
    ("ex1_int_np_uint16", lambda: np.uint16(7), 7, True, ()),
    ("ex1_int_np_uint32", lambda: np.uint32(7), 7, True, ()),
    ("ex1_int_np_uint64", lambda: np.uint64(7), 7, True, ()),
    ("ex1_int_np_longlong", lambda: np.longlong(7), 7, True, ()),
    ("ex1_int_np_ulonglong", lambda: np.ulonglong(7), 7, True, ()),
    ("ex1_int_float", lambda: 7.0, 7, True, ()),
    ("ex1_int_np_float64", lambda: np.float64(7.0), 7, True, ()),
    ("ex1_int_0d_array", lambda: np.array(7), 7, True, ()),
    ("ex1_int_0d_tensor", lambda: torch.tensor(7), 7, True, ()),
    ("ex1_int_tensor_item", lambda: torch.tensor([3, 7])[1].item(), 7, True, ()),
    ("ex1_int_shape_entry", lambda: torch.zeros(1, 1, 7).shape[-1], 7, True, ()),
    ("ex1_int_one_tuple", lambda: (7,), 7, False,
     ("expected 7 (an int)", "got (7,) (a tuple of 1 item)", "return the number itself")),
    ("ex1_int_one_size", lambda: torch.zeros(1, 1, 7).shape[-1:], 7, False,
     ("expected 7 (an int)", "got (7,) (a tuple of 1 item)", "return the number itself")),
    ("ex1_int_one_array", lambda: np.array([7]), 7, False,
     ("expected the number 7", "an array of shape (1,)")),
    ("ex1_int_bool", lambda: True, 1, False,
     ("expected 1 (an int)", "got True (a bool)", "return an int")),
    ("ex1_int_str", lambda: "7", 7, False, ("expected 7, got '7'",)),
    ("ex1_int_fraction", lambda: __import__("fractions").Fraction(7), 7, False,
     ("expected 7 (an int)", "got Fraction", ALL_TYPES, "int(x) converts")),
    # ex1 Task 2, ex8 Task 3: (low, high) and (n, out), a pair of ints
    ("ex1_pair_list", lambda: [5, 6], (5, 6), True, ()),
    ("ex1_pair_ndarray", lambda: np.array([5, 6]), (5, 6), True, ()),
    ("ex1_pair_np_int64", lambda: (np.int64(5), np.int64(6)), (5, 6), True, ()),
    ("ex1_pair_np_uint64", lambda: (np.uint64(5), np.uint64(6)), (5, 6), True, ()),
    ("ex1_pair_torch_size", lambda: torch.zeros(1, 1, 5, 6).shape[-2:], (5, 6), True, ()),
    ("ex1_pair_tensor", lambda: torch.tensor([5, 6]), (5, 6), True, ()),
    ("ex1_pair_0d_tensors", lambda: (torch.tensor(5), torch.tensor(6)), (5, 6), True, ()),
    ("ex1_pair_floats", lambda: (5.0, 6.0), (5, 6), True, ()),
    ("ex8_pair_np_uint32_list", lambda: [np.uint32(44), np.uint32(4)], (44, 4), True, ()),
    ("ex1_pair_namedtuple", lambda: Pair(5, 6), (5, 6), False,
     ("expected (5, 6) (a tuple of ints)", "got Pair, a subclass of tuple", ALL_TYPES,
      "return a tuple of ints, e.g. tuple(int(v) for v in x)")),
    ("ex1_pair_map", lambda: map(int, (5, 6)), (5, 6), False,
     ("got map, an iterator", "return a tuple of ints")),
    ("ex1_pair_range", lambda: range(5, 7), (5, 6), False,
     ("got range", "return a tuple of ints")),
    ("ex1_pair_set", lambda: {5, 6}, (5, 6), False, ("got set", "return a tuple of ints")),
    ("ex1_pair_torch_max", lambda: torch.max(torch.tensor([[5, 6]]), 0), (5, 6), False,
     ("got max, a subclass of tuple",)),
    # ex5: (padding, output_padding, crop_end) and the decoder's per-axis output_padding
    ("ex5_triple_list", lambda: [0, 1, 1], (0, 1, 1), True, ()),
    ("ex5_triple_np_int64", lambda: tuple(np.array([0, 1, 1])), (0, 1, 1), True, ()),
    ("ex5_triple_np_uint8", lambda: tuple(np.array([0, 1, 1], dtype=np.uint8)), (0, 1, 1),
     True, ()),
    ("ex5_decoder_torch_size", lambda: torch.Size([1, 0]), (1, 0), True, ()),
    ("ex5_decoder_ndarray", lambda: np.array([1, 0]), (1, 0), True, ()),
    # ex2, ex3, ex4, ex7, ex8: arrays (float64 in the tests)
    ("ex2_array_tensor", lambda: torch.tensor([2.0, 4.0, 9.0]), np.array([2.0, 4.0, 9.0]),
     True, ()),
    ("ex2_array_list", lambda: [2.0, 4.0, 9.0], np.array([2.0, 4.0, 9.0]), True, ()),
    ("ex2_array_int_values", lambda: np.array([2, 4, 9]), np.array([2.0, 4.0, 9.0]), True, ()),
    ("ex2_array_float32_exact", lambda: np.array([2.0, 4.5, 9.25], dtype=np.float32),
     np.array([2.0, 4.5, 9.25]), True, ()),
    ("ex2_array_float16_exact", lambda: np.array([2.0, 4.5], dtype=np.float16),
     np.array([2.0, 4.5]), True, ()),
    ("ex2_array_longdouble", lambda: np.array([2.0, 4.5], dtype=np.longdouble),
     np.array([2.0, 4.5]), True, ()),
    ("ex2_array_np_matrix", lambda: _matrix(np.eye(2)), np.eye(2), True, ()),
    ("ex2_array_view", lambda: np.arange(12.0).reshape(3, 4)[:, ::2],
     np.arange(12.0).reshape(3, 4)[:, ::2].copy(), True, ()),
    ("ex4_array_requires_grad", lambda: torch.ones(2, 2, requires_grad=True) * 3,
     np.full((2, 2), 3.0), True, ()),
    ("ex4_array_parameter", lambda: torch.nn.Parameter(torch.ones(2)), np.ones(2), True, ()),
    ("ex4_array_tensor_for_tensor", lambda: torch.ones(2, dtype=torch.float32),
     torch.ones(2, dtype=torch.float64), True, ()),
    ("ex7_array_nested_list_of_tensors", lambda: [[torch.ones(2)], [torch.zeros(2)]],
     np.array([[[1.0, 1.0]], [[0.0, 0.0]]]), True, ()),
    ("ex7_array_tuple_of_arrays", lambda: (np.ones(2), np.zeros(2)),
     np.array([[1.0, 1.0], [0.0, 0.0]]), True, ()),
    ("ex3_array_csr", lambda: scipy.sparse.csr_matrix(np.eye(2)), np.eye(2), False,
     ("expected array of shape (2, 2)", "got csr_matrix, a SciPy sparse matrix", ALL_TYPES,
      ".toarray()")),
    ("ex3_array_sparse_tensor", lambda: torch.eye(2).to_sparse(), np.eye(2), False,
     ("got torch.Tensor[float32], a sparse tensor", ".to_dense()")),
    ("ex2_array_complex", lambda: np.array([2.0, 4.0]) + 0j, np.array([2.0, 4.0]), False,
     ("got ndarray[complex128]", "torch tensor of real numbers")),
    ("ex2_array_complex_tensor", lambda: torch.tensor([2.0, 4.0]) + 0j,
     np.array([2.0, 4.0]), False, ("got torch.Tensor[complex64], a complex tensor",)),
    ("ex2_array_masked", lambda: np.ma.masked_array([2.0, 4.0]), np.array([2.0, 4.0]), False,
     ("got MaskedArray, a subclass of numpy.ndarray", "return a NumPy array")),
    ("ex7_array_ragged_list", lambda: [np.ones(2), np.ones(3)], np.ones((2, 2)), False,
     ("expected array of shape (2, 2)",)),
    ("ex6_array_object", lambda: np.array([1, "a"], dtype=object), np.array([1, 2]), False,
     ("got ndarray[object]",)),
    # ex6: overlap counts (an integer array) and is_even (a bool)
    ("ex6_counts_long_tensor", lambda: torch.tensor([1, 1, 2, 1]), np.array([1, 1, 2, 1]),
     True, ()),
    ("ex6_counts_uint8", lambda: np.array([1, 1, 2, 1], dtype=np.uint8),
     np.array([1, 1, 2, 1]), True, ()),
    ("ex6_even_np_bool", lambda: np.int64(4) % 2 == 0, True, True, ()),
    ("ex6_even_0d_bool_array", lambda: np.array(True), True, True, ()),
    ("ex6_even_0d_bool_tensor", lambda: torch.tensor(4) % 2 == 0, True, True, ()),
    ("ex6_even_list_np_bool", lambda: [np.bool_(False), np.bool_(True)], [False, True], True,
     ()),
    ("ex6_even_int", lambda: 1, True, False,
     ("expected True (a bool)", "got 1 (an int)", "return True or False")),
    ("ex6_even_float", lambda: 0.0, False, False,
     ("expected False (a bool)", "got 0.0 (a number)", "return True or False")),
    ("ex6_even_str", lambda: "yes", True, False, ("expected True, got 'yes'",)),
]


@pytest.mark.parametrize("case", VARIANTS, ids=[c[0] for c in VARIANTS])
def test_variant_passes_or_is_told_what_to_return(case) -> None:
    """Student mode: ``expect`` passes an accepted variant, and what it records is plain (the
    same value the grader compares); a refused one fails with a message naming both types."""
    _, make, expected, passes, words = case
    got = make()
    plain = to_plain(got)
    assert values_match(plain, to_plain(expected)) is passes
    message = _message(got, expected)
    if passes:
        assert message == "" and _plain_only(plain), (message, plain)
    else:
        assert message.startswith("[case] ") and message.endswith(". Hint: h"), message
        missing = [w for w in words if w not in message]
        assert not missing, f"{missing} not in {message!r}"


def test_conversions_give_exact_python_values() -> None:
    """torch.Size becomes a tuple of exact ints; NumPy's own numbers become Python numbers of
    the same value (a uint64 above int64's range, a long double, a bool)."""
    size = to_plain(torch.zeros(2, 3, 4).shape)
    assert size == (2, 3, 4) and type(size) is tuple and all(type(v) is int for v in size)
    big = to_plain(np.uint64(2**64 - 1))
    assert big == 2**64 - 1 and type(big) is int
    assert type(to_plain(np.longdouble(2.5))) is float and to_plain(np.longdouble(2.5)) == 2.5
    assert to_plain(np.bool_(True)) is True and to_plain(np.float16(0.5)) == 0.5
    nested = to_plain({"a": [np.int8(-3), (np.uint16(9),)], "b": torch.Size([1])})
    assert nested == {"a": [-3, (9,)], "b": (1,)} and _plain_only(nested)
    matrix = to_plain(_matrix([[1.0, 2.0]]))
    assert type(matrix) is np.ndarray and matrix.shape == (1, 2)
    for refused in (np.complex128(1), np.datetime64("2026-01-01"), np.str_("a"), 1j):
        assert isinstance(to_plain(refused), Unserialisable), refused


def test_values_match_never_raises_on_ragged_values() -> None:
    """A ragged list beside an array is no match, not a ValueError: in grading that error would
    stop the judging of the whole notebook (a grader error, every cell 0)."""
    ragged = [[1.0, 2.0], [3.0]]
    for got, expected in ((ragged, np.ones((2, 2))), (np.ones((2, 2)), ragged),
                          ([np.ones(2), np.ones(3)], np.ones((2, 2)))):
        assert values_match(to_plain(got), to_plain(expected)) is False
        assert describe_mismatch(to_plain(got), to_plain(expected)).startswith("expected")


def test_integers_are_compared_exactly() -> None:
    """A count or a size off by one is wrong however large it is: two ints, and two integer
    arrays (any width, uint64 past 2**63 too), match only when equal; the tolerance is for
    floats (an int against a float still gets it). Before, 10**7 + 1 matched 10**7 (relative
    1e-6), and a mismatch summary printed both as 3e+07."""
    assert values_match(10**7 + 1, 10**7) is False and values_match(10**7, 10**7) is True
    assert values_match((2**62 + 1, 3), (2**62, 3)) is False
    assert values_match(7, 7.0) is True and values_match(7.0000001, 7) is True
    big = np.arange(200, dtype=np.int64) * 10**7
    off = big.copy()
    off[3] += 1
    assert values_match(off, big) is False and values_match(big.copy(), big) is True
    assert describe_mismatch(off, big) == (
        "arrays of shape (200,) differ at 1 of 200 entries; largest difference 1; first at "
        "index 3: expected 30000000, got 30000001")
    u = np.array([2**64 - 1, 2**63], dtype=np.uint64)
    assert values_match(u, u.copy()) is True
    assert values_match(u, np.array([-1, -(2**63)], dtype=np.int64)) is False  # the wrapped one
    assert values_match(np.array([5], dtype=np.uint8), np.array([5])) is True


# ---- what must stay refused ----------------------------------------------------------------------
class _SaysEqual(type):
    """A metaclass that says its classes equal any other (``int``, ``tuple``, ``np.int64``)."""

    def __eq__(cls, other):
        return True

    __hash__ = type.__hash__


class _MetaInt(int, metaclass=_SaysEqual):
    def __sub__(self, other):
        return 0

    def __rsub__(self, other):
        return 0

    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class _NumpyNamed(np.int64):
    """A subclass of NumPy's int64 that calls itself numpy.int64."""

    __module__ = "numpy"
    __qualname__ = "int64"

    def __eq__(self, other):
        return True

    __hash__ = np.int64.__hash__


class Size(tuple):  # noqa: N801 - the point is the name
    """A tuple subclass that calls itself torch.Size."""

    __module__ = "torch"

    def __eq__(self, other):
        return True

    __hash__ = tuple.__hash__


class _TensorSub(torch.Tensor):
    pass


class _ArraySub(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(other), dtype=bool)


class _StrKey(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


LOOKALIKES = [
    ("int_with_lying_metaclass", lambda: _MetaInt(0), 6),
    ("numpy_named_int64_subclass", lambda: _NumpyNamed(0), 6),
    ("tuple_named_torch_size", lambda: Size((0, 0)), (5, 6)),
    ("tensor_subclass", lambda: torch.zeros(2).as_subclass(_TensorSub), np.ones(2)),
    ("ndarray_subclass", lambda: np.zeros(2).view(_ArraySub), np.ones(2)),
    ("namedtuple", lambda: Pair(0, 0), (5, 6)),
    ("dict_with_str_subclass_key", lambda: {_StrKey("b"): 1}, {"a": 1}),
]


@pytest.mark.parametrize("case", LOOKALIKES, ids=[c[0] for c in LOOKALIKES])
def test_lookalikes_are_refused(case) -> None:
    """A subclass, or a class whose metaclass says it equals ``int`` (``t in (int, ...)``
    would ask it), is not plain data: it never matches, even a wrong answer whose ``__eq__``
    says yes, and the message names its type."""
    _, make, expected = case
    plain = to_plain(make())
    assert isinstance(plain, Unserialisable), plain
    assert not values_match(plain, to_plain(expected))
    message = _message(make(), expected)
    assert "not plain data" in message and plain.type_name in message, message


# ---- through the grading sandbox's recorders ----------------------------------------------------
HARNESS_CASES = {
    # name: (expression in the notebook, expected, passes, words of the grader's message)
    "size": ("torch.zeros(1, 1, 5, 6).shape[-2:]", (5, 6), True, ()),
    "uint64": ("np.uint64(7)", 7, True, ()),
    # a uint64 array past int64's range kept its values (it wrapped to negative ints)
    "uint64_big": ("np.array([2**64 - 1, 2**63], dtype=np.uint64)",
                   np.array([2**64 - 1, 2**63], dtype=np.uint64), True, ()),
    "uint64_big_wrong": ("np.array([2**63 + 1], dtype=np.uint64)",
                         np.array([2**63], dtype=np.uint64), False,
                         ("got array of shape (1,): [9223372036854775809]",)),
    "uint16_pair": ("(np.uint16(44), np.uint16(4))", (44, 4), True, ()),
    "longdouble": ("np.longdouble(2.5)", 2.5, True, ()),
    "matrix": ("np.asmatrix(np.eye(2))", np.eye(2), True, ()),
    "bool_tensor": ("torch.tensor(4) % 2 == 0", True, True, ()),
    "zero_d_array": ("np.array(7)", 7, True, ()),  # was recorded 1-d: check passed, grading not
    "zero_d_tensor": ("torch.tensor(2.5)", 2.5, True, ()),
    "namedtuple": ("collections.namedtuple('Pair', 'low high')(5, 6)", (5, 6), False,
                   ("got Pair, a subclass of tuple", "return a tuple of ints")),
    "one_tuple": ("torch.zeros(1, 1, 7).shape[-1:]", 7, False, ("a tuple of 1 item",)),
    "int_for_bool": ("1", True, False, ("expected True (a bool)", "got 1 (an int)")),
    "lookalike": ("SizeLike((5, 6))", (5, 6), False, ("got SizeLike, a subclass of tuple",)),
    # a float answer keeps its width in the record (values exact), so grading can tell a float32
    # answer that failed by rounding what check tells it
    "float32_tensor": ("(torch.ones(3) + 3e-6) - 1", np.full(3, 3e-6), False,
                       ("differ at 3 of 3 entries",)),
    "float32_nested": ("(np.float32([1.5]), 2.5)", [np.array([1.5]), 2.5], True, ()),
    "float16_tensor": ("torch.tensor([0.5, 2.0], dtype=torch.float16)", np.array([0.5, 2.0]),
                       True, ()),
    "bfloat16_tensor": ("torch.tensor([0.5, 2.0], dtype=torch.bfloat16)", np.array([0.5, 2.0]),
                        True, ()),
    "float64_tensor": ("torch.tensor([0.5], dtype=torch.float64)", np.array([0.5]), True, ()),
}
# the dtype of each float array a record holds, and the rounding note's dtype ('' for none)
HARNESS_WIDTHS = {"float32_tensor": ("float32", "float32"),
                  "float16_tensor": ("float16", "float16"),
                  "bfloat16_tensor": ("float32", "float32"), "float64_tensor": ("float64", ""),
                  "matrix": ("float64", ""), "float32_nested": ("float32", "float32")}
LOOKALIKE_SRC = """\
class SizeLike(tuple):
    __module__ = "torch"
    def __eq__(self, other):
        return True
    __hash__ = tuple.__hash__
"""


def _graded(src: str, gid: str):
    return new_code_cell(src, metadata={"nbgrader": {
        "grade": True, "solution": False, "locked": True, "points": 1, "grade_id": gid,
        "schema_version": 3}})


@pytest.fixture(params=[False, True], ids=["plain", "bwrap"])
def sandbox(request) -> bool:
    if request.param:
        from skips import need_sandbox

        need_sandbox()
    return request.param


@pytest.mark.xdist_group("sandbox")
def test_the_grading_recorders_convert_the_same(tmp_path: Path, sandbox: bool) -> None:
    """In grading the harness records ``to_plain(value)`` with its private copy of
    grader.testing and frames it as JSON; the grader compares the records later, outside. Each
    variant is judged there as in student mode, and a refused one is described the same way."""
    from grader.execute import Limits, run_notebook

    setup = ("from grader.testing import expect, expect_raises\nimport collections\n"
             "import numpy as np\nimport torch\n" + LOOKALIKE_SRC)
    checks = "\n".join(f"expect({name!r}, {expr}, None)"
                       for name, (expr, *_rest) in HARNESS_CASES.items())
    nb = new_notebook(cells=[new_markdown_cell("types"), new_code_cell(setup),
                             _graded(checks, "t")])
    limits = Limits(cell_timeout=120.0, notebook_timeout=240.0)  # torch may not be preloaded
    ex = run_notebook(nb, workdir=tmp_path, limits=limits, sandbox=sandbox)
    assert [c.status for c in ex.cells] == ["ok", "ok"], ex.cells
    for name, (_, expected, passes, words) in HARNESS_CASES.items():
        record = ex.records[f"t/{name}"]
        assert values_match(record, to_plain(expected)) is passes, (name, record)
        if passes:
            assert _plain_only(record), (name, record)
        else:
            message = describe_mismatch(record, to_plain(expected))
            missing = [w for w in words if w not in message]
            assert not missing, f"{name}: {missing} not in {message!r}"
    for name, (dtype, note) in HARNESS_WIDTHS.items():
        record = ex.records[f"t/{name}"]
        array = record if isinstance(record, np.ndarray) else record[0]
        assert array.dtype == np.dtype(dtype), (name, array.dtype)
        assert precision_note(record) == (f" Your answer is {note}: the tests compare with "
                                          f"float64 results to a relative 1e-06, which {note} "
                                          "rounding alone can miss; compute in float64."
                                          if note else ""), name


# ---- what grading tells: the rounding note, and a refused type where answers are not shown ---
NOTE32 = ("Your answer is float32: the tests compare with float64 results to a relative 1e-06, "
          "which float32 rounding alone can miss; compute in float64.")
SECRET = "ORCHID4721"  # stands for hidden test text a student's code read from its caller


def _judged(records: dict, expected: dict, hidden_names=(), has_hidden=False,
            status: str = "ok", error: str | None = None, points: list | None = None
            ) -> list[str]:
    """The messages ``autograde._judge`` gives one test cell ``c`` with these records, which
    ran to ``status`` (``error``); the cell's points are appended to ``points``."""
    from grader.autograde import _judge
    from grader.execute import CellRun, Execution

    spec = {"cell_type": "code", "points": 1.0, "hidden_names": list(hidden_names),
            "has_hidden": has_hidden, "hints": {}}
    ex = Execution({f"c/{k}": v for k, v in records.items()},
                   [CellRun(0, "c", status, error, "")], [], 0.0)
    cells = _judge({"c": spec}, {f"c/{k}": v for k, v in expected.items()}, ex)
    if points is not None:
        points.append(cells["c"]["points"])
    return [t["message"] for t in cells["c"]["tests"]]


def test_a_stopped_cell_tells_what_it_reached_and_scores_nothing() -> None:
    """A test cell that stopped: the tests it reached say passed or what came back (as `check`
    says), the rest 'not reached' with the stop; it scores 0. When it stopped after its last
    visible test (in a hidden one, say), one line still says why the cell scores 0."""
    points: list = []
    assert _judged({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}, status="error",
                   error="ValueError: later", points=points) == [
        "[a] passed", "[b] expected 3, got 2.",
        "[c] not reached: the cell stopped with ValueError: later."]
    assert _judged({"a": 1, "h": 5}, {"a": 1, "h": 5, "i": 6}, hidden_names=("h", "i"),
                   has_hidden=True, status="error", error="ValueError: ORCHID4721",
                   points=points) == [
        "[a] passed", "hidden test passed", "hidden test failed",
        "the cell stopped with ValueError"]
    assert _judged({"a": 1}, {"a": 1}, points=points) == ["[a] passed"]
    assert points == [0.0, 0.0, 1.0]


def test_grading_says_what_check_says_of_a_float32_answer() -> None:
    """A float32 answer that fails by rounding is told why in grading as in ``check``: the
    record keeps the answer's width, and the note follows the mismatch (visible-only cell), the
    expected value (a cell with hidden tests) or a hidden test's outcome (no value of either).
    A float64 answer, and a passing float32 one, get no note."""
    got = (torch.ones(3) + 3e-6) - 1                    # float32: 25 ulps, not 3e-6
    want = to_plain((torch.ones(3, dtype=torch.float64) + 3e-6) - 1)
    check = _message(got, want).replace("[case]", "[v]").removesuffix(" Hint: h")
    assert check.endswith("." + " " + NOTE32), check
    assert _judged({"v": to_plain(got)}, {"v": want}) == [check]
    assert _judged({"v": to_plain(got), "h": to_plain(got)}, {"v": want, "h": want},
                   hidden_names=["h"], has_hidden=True) == [
        f"[v] expected {describe(want)}; your answer is not shown (this cell also runs hidden "
        f"tests). {NOTE32}", f"hidden test failed. {NOTE32}"]
    wrong64 = to_plain(got.double())
    assert _judged({"v": wrong64, "h": wrong64}, {"v": want, "h": want}, hidden_names=["h"],
                   has_hidden=True)[1] == "hidden test failed"
    assert "Your answer" not in _judged({"v": wrong64}, {"v": want})[0]
    assert _judged({"v": to_plain(torch.ones(2))}, {"v": np.ones(2)}) == ["[v] passed"]
    # a nested float32 array, as check sees it in a tuple of tensors
    assert NOTE32 in _judged({"v": (to_plain(got), 1)}, {"v": (want, 1)})[0]
    assert NOTE32 in _message((got, 1), (want, 1))


# refused answers whose type text a student's class chose, with a secret in it
REFUSED = [
    (f"{SECRET}, a subclass of tuple", (5, 6), "a subclass of tuple", "return a tuple of ints"),
    (f"{SECRET}, an iterator", (5, 6), "an iterator", "return a tuple of ints"),
    (f"{SECRET}, a subclass of torch.Tensor", np.ones(2), "a subclass of torch.Tensor",
     "return a NumPy array"),
    (f"{SECRET}_matrix, a SciPy sparse matrix", np.ones(2), "a SciPy sparse matrix",
     ".toarray()"),
    (f"ndarray[[('{SECRET}', '<f8')]]", np.ones(2), "a NumPy array of other than real numbers",
     "return a NumPy array"),
    (f"torch.Tensor[{SECRET}], a sparse tensor", np.ones(2), "a sparse torch tensor",
     ".to_dense()"),
    (f"dict with a key of type {SECRET}", {"a": 1},
     "a dict with a key that is not a str, a number, a bool or None", "return a dict"),
    (SECRET, 7, "an object of another type (its name is not shown here)", "return an int"),
    # names the language or a library gives are told as they are
    ("map, an iterator", (5, 6), "map, an iterator", "return a tuple of ints"),
    ("range", (5, 6), "range", "return a tuple of ints"),
    ("Fraction", 7, "Fraction", "int(x) converts"),
    ("numpy.complex128", 2.5, "numpy.complex128", "float(x) converts"),
    ("csr_matrix, a SciPy sparse matrix", np.ones(2), "csr_matrix, a SciPy sparse matrix",
     ".toarray()"),
    ("ndarray[object]", np.ones(2), "ndarray[object]", "return a NumPy array"),
    ("torch.Tensor[complex64], a complex tensor", np.ones(2),
     "torch.Tensor[complex64], a complex tensor", "real numbers"),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c[2] + "|" + c[0][:24] for c in REFUSED])
def test_a_refused_type_is_told_where_answers_are_not_shown(case) -> None:
    """In a cell with hidden tests a refused answer's type and the advice reach the student,
    but a class the student's code defines is named after anything (hidden test text it read
    from its caller), so only what kind of type it is is told; the visible-only cell names it."""
    type_name, expected, shown, advice = case
    assert shown_type(type_name) == shown
    plain = to_plain(expected)
    got = Unserialisable(type_name)
    [message] = _judged({"v": got}, {"v": plain}, has_hidden=True)
    assert message.startswith(f"[v] {describe_unshown(got, plain)}.") and (
        "your answer is not shown (this cell also runs hidden tests), but it is "
        f"{shown}: not plain data") in message and advice in message, message
    assert SECRET not in message
    assert type_name in _judged({"v": got}, {"v": plain})[0]  # visible-only: as check says it


@pytest.mark.parametrize("got, expected, says", [
    (1, True, "but it is an int: return True or False"),
    (True, 1, "but it is a bool: return an int"),
    ((7,), 7, "but it is a tuple of 1 item: return the number itself"),
    (None, np.ones(2), "but it is None: return a NumPy array or a torch tensor"),
    (SECRET, 2.5, "but it is a str: return a number"),
    ({SECRET: 1}, (1, 2), "but it is a dict: return a tuple of ints"),
    (np.full(3, 4721.0), np.ones(2), ""),      # a shape can carry numbers: never told
    ([4721.0, 1.0], 2.5, ""),
    (SECRET, "ValueError", ""),                 # expect_raises: the name of what was raised
])
def test_the_kind_of_an_unshown_answer_is_told_not_its_values(got, expected, says) -> None:
    """A plain answer of the wrong kind (a number for a bool, None, a str) is told so where
    answers are not shown; its values, text, length and shape never are."""
    [message] = _judged({"v": to_plain(got)}, {"v": to_plain(expected)}, has_hidden=True)
    assert "your answer is not shown (this cell also runs hidden tests)" in message, message
    assert (says in message) if says else message.endswith("(this cell also runs hidden tests).")
    assert SECRET not in message and "4721" not in message and "(3,)" not in message, message


# ---- a real autograde of a tiny assignment ------------------------------------------------------
ASSIGNMENT = "types_tiny"
SOLUTION = '''\
import numpy as np


def size_pair(n):
    """(n, n + 1), a tuple of ints."""
    ### BEGIN SOLUTION
    return (n, n + 1)
    ### END SOLUTION


def length(n):
    """2 n, an int."""
    ### BEGIN SOLUTION
    return 2 * n
    ### END SOLUTION


def is_even(n):
    """True when n is even."""
    ### BEGIN SOLUTION
    return n % 2 == 0
    ### END SOLUTION


def offsets(n):
    """n entries of (1 + 3e-6) - 1, an array."""
    ### BEGIN SOLUTION
    return (np.ones(n) + 3e-6) - 1
    ### END SOLUTION
'''
TESTS = {"test_pair": 'expect("pair", size_pair(3), (3, 4), hint="a pair")',
         "test_length": 'expect("length", length(3), 6, hint="twice")',
         "test_even": 'expect("even", is_even(4), True, hint="4 is even")',
         "test_offsets": 'expect("offsets", offsets(3), np.full(3, 3e-6), hint="1 + 3e-6 - 1")',
         # a cell with hidden tests: answers are not shown there, nor anything hidden
         "test_hidden": 'expect("pair_again", size_pair(5), (5, 6), hint="a pair")\n'
                        'expect("offsets_again", offsets(2), np.full(2, 3e-6))\n'
                        "### BEGIN HIDDEN TESTS\n"
                        'expect("pair_hidden", size_pair(4721), (4721, 4722))\n'
                        'expect("offsets_hidden", offsets(4), np.full(4, 3e-6))\n'
                        "### END HIDDEN TESTS"}
FLOAT32 = "def offsets(n):\n    return (np.ones(n, dtype=np.float32) + np.float32(3e-6)) - 1\n"
# a class named after the int constants of the calling cell (in test_hidden: the hidden test's
# input 4721), the same text as a structured array's field name; printed, to show it ran
LEAKY = """\
import sys
import numpy as np

def _loot():
    consts = sys._getframe(2).f_code.co_consts
    name = "LEAK" + "x".join(str(c) for c in consts if type(c) is int)
    print("LEAKED", name)
    return name

def size_pair(n):
    return type(_loot(), (tuple,), {})((n, n + 1))

def offsets(n):
    return np.zeros(n, dtype=[(_loot(), "f8")])
"""
SUBMISSIONS = {
    # student: (solution cell, points deserved out of 5)
    "other_types": ("import numpy as np\nimport torch\n"
                    "def size_pair(n):\n    return torch.zeros(n, n + 1).shape\n"
                    "def length(n):\n    return np.uint16(2 * n)\n"
                    "def is_even(n):\n    return np.int64(n) % 2 == 0\n"
                    "def offsets(n):\n    return torch.ones(n, dtype=torch.float64) + 3e-6 - 1\n",
                    5.0),
    "refused_types": ("import collections\nimport numpy as np\n"
                      "def size_pair(n):\n"
                      "    return collections.namedtuple('Pair', 'low high')(n, n + 1)\n"
                      "def length(n):\n    return (2 * n,)\n"
                      "def is_even(n):\n    return int(n % 2 == 0)\n" + FLOAT32, 0.0),
    "leaky_types": (LEAKY + "def length(n):\n    return 2 * n\n"
                    "def is_even(n):\n    return n % 2 == 0\n", 2.0),
}
ADVICE = ("not plain data (only Python's, NumPy's and PyTorch's own types are compared); return "
          "a tuple of ints, e.g. tuple(int(v) for v in x)")
UNSHOWN = "your answer is not shown (this cell also runs hidden tests)"
TWO_OFFSETS = describe((np.ones(2) + 3e-6) - 1)  # the solution's offsets(2), as shown
MESSAGES = {
    "test_pair": f"[pair] expected (3, 4) (a tuple of ints), got Pair, a subclass of tuple: "
                 f"{ADVICE}. Hint: a pair",
    "test_length": "[length] expected 6 (an int), got (6,) (a tuple of 1 item): return the "
                   "number itself, e.g. x[0], not a sequence of one. Hint: twice",
    "test_even": "[even] expected True (a bool), got 1 (an int): return True or False (bool(x) "
                 "converts a NumPy or torch truth value). Hint: 4 is even",
    # test_offsets: what check says of the same answer (the test compares the two)
    "test_hidden": [f"[pair_again] expected (5, 6) (a tuple of ints); {UNSHOWN}, but it is a "
                    f"subclass of tuple: {ADVICE}. Hint: a pair",
                    f"[offsets_again] expected {TWO_OFFSETS}; {UNSHOWN}. {NOTE32}",
                    "hidden test failed", f"hidden test failed. {NOTE32}"],
}


def _assignment(solution: str):
    nbg = {"schema_version": 3, "locked": True, "solution": False, "grade": False}
    cells = [new_markdown_cell("# Types", metadata={"nbgrader": {**nbg, "grade_id": "intro"}}),
             new_code_cell("from grader.testing import expect, expect_raises\nimport numpy as np",
                           metadata={"nbgrader": {**nbg, "grade_id": "setup"}}),
             new_code_cell(solution, metadata={"nbgrader": {
                 **nbg, "locked": False, "solution": True, "grade_id": "answers"}})]
    cells += [new_code_cell(src, metadata={"nbgrader": {
        **nbg, "grade": True, "points": 1, "grade_id": gid}}) for gid, src in TESTS.items()]
    return new_notebook(cells=cells)


@pytest.mark.xdist_group("sandbox")
def test_autograde_scores_other_types_and_explains_refused_ones(tmp_path: Path) -> None:
    """``tconv-grader autograde`` end to end: NumPy's and PyTorch's own types score full marks
    (before, a torch.Size and an np.uint16 lost 2 of 3 points), and each refused type is told
    in results.json what was expected and how to return it, also in a cell with hidden tests
    (its kind only: the leaky student's class, named after the hidden tests' values, is not
    named); a float32 answer that fails by rounding gets check's note (it got none: the record
    was float64)."""
    from grader_class import sandbox_args
    from gradingbatch import ROOT, env, scores

    solutions = tmp_path / "solutions"
    (solutions / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(_assignment(SOLUTION), solutions / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    course = tmp_path / "course"
    for i, (student, (code, _)) in enumerate(SUBMISSIONS.items()):
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(_assignment(code), folder / f"{ASSIGNMENT}.ipynb")
        (folder / "timestamp.txt").write_text(f"2026-12-07 07:0{i}:00.000000 UTC\n")
    db = f"sqlite:///{course / 'gradebook.db'}"
    proc = subprocess.run([sys.executable, "-m", "grader", "autograde", ASSIGNMENT, "--course",
                           str(course), "--solutions", str(solutions), "--db", db, "--timeout",
                           "60", "--quiet", *sandbox_args()], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    got = scores(db, ASSIGNMENT)
    assert {s: got[s][0] for s in SUBMISSIONS} == {s: v[1] for s, v in SUBMISSIONS.items()}
    # a value that is not plain data is worth a human look (it is flagged, not scored)
    assert {s: got[s][2] for s in SUBMISSIONS} == {"other_types": False, "refused_types": True,
                                                   "leaky_types": True}

    def results(student: str) -> dict:
        return json.loads((course / "autograded" / student / ASSIGNMENT
                           / "results.json").read_text())["notebooks"][ASSIGNMENT]

    refused = results("refused_types")
    assert refused["flags"] == [
        "not plain data (Pair, a subclass of tuple) in test value 'test_pair/pair'",
        "not plain data in a test value of cell 'test_hidden'"]
    messages = {gid: [t["message"] for t in c["tests"]] for gid, c in refused["cells"].items()}
    # the float32 answer is told what `check` tells it, note included
    answer = (np.ones(3, dtype=np.float32) + np.float32(3e-6)) - 1
    check = _message(answer, (np.ones(3) + 3e-6) - 1).replace("[case]", "[offsets]")
    assert check.endswith(f". {NOTE32} Hint: h"), check
    assert messages.pop("test_offsets") == [check.replace("Hint: h", "Hint: 1 + 3e-6 - 1")]
    assert messages == {gid: m if isinstance(m, list) else [m] for gid, m in MESSAGES.items()}

    # the leaky student's class names did reach the grader (so this can fail): in the visible
    # -only cell its name is told; in the cell with hidden tests it carries their values, and
    # neither it nor the hidden tests' values are anywhere in what the student is shown
    leaky = results("leaky_types")
    graded = (course / "autograded" / "leaky_types" / ASSIGNMENT
              / f"{ASSIGNMENT}.ipynb").read_text()
    assert "LEAKED LEAK5x2x4721x4" in graded, "the leak did not run"
    told = json.dumps({k: leaky[k] for k in ("cells", "flags", "code_errors") if k in leaky})
    assert "got LEAK3, a subclass of tuple" in told
    for needle in ("4721", "4722"):
        assert needle not in told, needle
    assert [t["message"] for t in leaky["cells"]["test_hidden"]["tests"]][:2] == [
        f"[pair_again] expected (5, 6) (a tuple of ints); {UNSHOWN}, but it is a subclass of "
        f"tuple: {ADVICE}. Hint: a pair",
        f"[offsets_again] expected {TWO_OFFSETS}; {UNSHOWN}, but it is a NumPy array of other "
        f"than real numbers: {ALL_TYPES.join(('not plain data (', ')'))}; return a NumPy array "
        "or a torch tensor of real numbers."]
