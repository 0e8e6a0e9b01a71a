"""Shape arithmetic against PyTorch, and the Dumoulin & Visin relationships."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tconv_lib import shapes


def _torch_tsize(i, k, s, p, op, d):
    x = torch.zeros(1, 1, i, dtype=torch.float64)
    w = torch.zeros(1, 1, k, dtype=torch.float64)
    return F.conv_transpose1d(x, w, None, s, p, op, 1, d).shape[-1]


def _torch_csize(i, k, s, p, d):
    return F.conv1d(torch.zeros(1, 1, i), torch.zeros(1, 1, k), None, s, p, d).shape[-1]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(i=st.integers(1, 12), k=st.integers(1, 6), s=st.integers(1, 4), p=st.integers(0, 4),
       d=st.integers(1, 3), data=st.data())
def test_sizes_match_torch(i, k, s, p, d, data) -> None:
    op = data.draw(st.integers(0, max(s, d) - 1))
    o = shapes.conv_transpose_output_size(i, k, s, p, op, d)
    if o >= 1:
        assert o == _torch_tsize(i, k, s, p, op, d)
    if i + 2 * p >= d * (k - 1) + 1:
        assert shapes.conv_output_size(i, k, s, p, d) == _torch_csize(i, k, s, p, d)


@pytest.mark.parametrize("i, k, s, p, d", list(itertools.product([1, 3, 5], [1, 3, 4], [1, 2, 3],
                                                                 [0, 1], [1, 2])))
def test_output_size_range_is_what_torch_accepts(i, k, s, p, d) -> None:
    sizes = shapes.output_size_range(i, k, s, p, d)
    module = torch.nn.ConvTranspose1d(1, 1, k, s, p, dilation=d).double()
    x = torch.zeros(1, 1, i, dtype=torch.float64)
    for target in range(sizes.start - 2, sizes.stop + 2):
        if target < 1:
            continue
        if target in sizes:
            assert module(x, output_size=[target]).shape[-1] == target
            op = shapes.output_padding_for(i, target, k, s, p, d)
            assert _torch_tsize(i, k, s, p, op, d) == target
        else:
            with pytest.raises(ValueError, match=f"target output size {target} is unreachable"):
                shapes.output_padding_for(i, target, k, s, p, d)
            with pytest.raises(ValueError):
                module(x, output_size=[target])


@pytest.mark.parametrize("o, k, s, p", list(itertools.product([1, 2, 4], [1, 2, 3, 4], [1, 2, 3],
                                                              [0, 1])))
def test_conv_input_sizes_is_the_ambiguity(o, k, s, p) -> None:
    found = shapes.conv_input_sizes(o, k, s, p)
    brute = [n for n in range(1, 40) if n + 2 * p >= k and _torch_csize(n, k, s, p, 1) == o]
    assert found == brute
    # output_padding j takes a size-o map back to the j-th candidate.
    for n in found:
        op = shapes.output_padding_for(o, n, k, s, p)
        assert _torch_tsize(o, k, s, p, op, 1) == n


def _dv_cases():
    """(relationship, params) under each relationship's own preconditions.

    Numbering is the guide's: 1-6 convolution, 7 pooling, 8-14 transposed, 15 dilated; "15T"
    is the unnumbered dilated transposed case (:func:`shapes.dilated_transposed_size`).
    """
    for i, k in itertools.product(range(3, 9), range(1, 5)):
        if k <= i:
            yield 1, dict(i=i, k=k)
            yield 8, dict(i=i - k + 1, k=k)
        for p in range(0, 3):
            if i + 2 * p >= k:
                yield 2, dict(i=i, k=k, p=p)
            if (i - k + 2 * p + 1) >= 1 and k - p - 1 >= 0:
                yield 9, dict(i=i - k + 2 * p + 1, k=k, p=p)
        if k % 2 == 1:
            yield 3, dict(i=i, k=k, p=k // 2)
            yield 10, dict(i=i, k=k, p=k // 2)
        yield 4, dict(i=i, k=k, p=k - 1)
        yield 11, dict(i=i + k - 1, k=k, p=k - 1)
        for s in range(1, 4):
            if k <= i:
                yield 5, dict(i=i, k=k, s=s)
                yield 7, dict(i=i, k=k, s=s)
                if (i - k) % s == 0:
                    yield 12, dict(i=(i - k) // s + 1, k=k, s=s)
            for p in range(0, 3):
                if i + 2 * p >= k:
                    yield 6, dict(i=i, k=k, s=s, p=p)
                    a = (i + 2 * p - k) % s
                    yield 14, dict(i=(i + 2 * p - k) // s + 1, k=k, s=s, p=p, a=a)
                    if a == 0:
                        yield 13, dict(i=(i + 2 * p - k) // s + 1, k=k, s=s, p=p)
                for d in range(1, 4):
                    if i + 2 * p >= d * (k - 1) + 1:
                        yield 15, dict(i=i, k=k, s=s, p=p, d=d)
                        a = (i + 2 * p - d * (k - 1) - 1) % s
                        yield "15T", dict(i=(i + 2 * p - d * (k - 1) - 1) // s + 1, k=k, s=s,
                                          p=p, d=d, a=a)


DV = list(_dv_cases())
CONV, POOL = {1, 2, 3, 4, 5, 6, 15}, {7}


def test_every_relationship_is_covered() -> None:
    assert {n for n, _ in DV} == set(shapes.RELATIONSHIPS) | {"15T"}
    assert set(shapes.RELATIONSHIPS) == set(range(1, 16))


def _size_by(n, params) -> int:
    if n == "15T":
        return shapes.dilated_transposed_size(**params)
    return shapes.relationship(n, **params)


@pytest.mark.parametrize("n, params", DV[::3] + [c for c in DV if c[0] in POOL][:12])
def test_relationship_matches_torch(n, params) -> None:
    got = _size_by(n, params)
    i, k = params["i"], params["k"]
    s, p, d, a = params.get("s", 1), params.get("p", 0), params.get("d", 1), params.get("a", 0)
    if n in CONV:
        assert got == _torch_csize(i, k, s, p, d)
    elif n in POOL:
        pooled = torch.nn.functional.max_pool1d(torch.zeros(1, 1, i), k, stride=s)
        assert got == pooled.shape[-1]
    else:
        # Transposed relationships: PyTorch's conv_transpose with the guide's p (crop), op = a.
        assert got == _torch_tsize(i, k, s, p, a, d)
        # ... and the transposed output is the size the matching convolution started from.
        assert shapes.conv_output_size(got, k, s, p, d) == i


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="stride must be positive, got stride=0"):
        shapes.conv_transpose_output_size(3, 3, 0)
    with pytest.raises(ValueError, match="padding must be non-negative, got padding=-1"):
        shapes.conv_output_size(3, 3, 1, -1)
    with pytest.raises(ValueError, match=r"n must be one of 1\.\.15 .*got n=16"):
        shapes.relationship(16, 3, 3)


@pytest.mark.parametrize("fn, args, name", [
    (shapes.conv_output_size, (8.0, 3), "i=8.0"),
    (shapes.conv_output_size, (8.5, 3), "i=8.5"),
    (shapes.conv_output_size, (8, 3, True), "stride=True"),
    (shapes.conv_output_size, (None, 3), "i=None"),
    (shapes.conv_transpose_output_size, (4, 3, 2.5), "stride=2.5"),
    (shapes.max_output_padding, (2.0,), "stride=2.0"),
    (shapes.output_padding_for, (4, 8.0, 3, 2, 1), "target=8.0"),
    (shapes.output_padding_for, (4, True, 1), "target=True"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_sizes_must_be_ints(fn, args, name) -> None:
    """A float used to come back as a float size (8.5 -> 6.0), True as 1."""
    with pytest.raises(TypeError, match=f"must be an int, got {re.escape(name)}"):
        fn(*args)
    with pytest.raises(TypeError, match="stride=float"):           # PyTorch refuses one too
        torch.nn.functional.conv1d(torch.zeros(1, 1, 8), torch.zeros(1, 1, 3), stride=2.0)


def test_integer_like_sizes_give_plain_ints() -> None:
    got = shapes.conv_transpose_output_size(np.int64(4), torch.tensor(3), np.int32(2), 1)
    assert type(got) is int and got == _torch_tsize(4, 3, 2, 1, 0, 1)
    assert type(shapes.conv_output_size(np.int64(8), 3)) is int


def test_shape_arguments_of_different_lengths_are_named() -> None:
    with pytest.raises(ValueError, match=r"one entry per spatial axis.*kernel=\(3,\)"):
        shapes.conv_output_shape((8, 5), (3,), (1, 1), (0, 0), (1, 1))
    with pytest.raises(ValueError, match=r"one entry per spatial axis.*stride=\(2, 2, 2\)"):
        shapes.conv_transpose_output_shape((4, 3), (3, 3), (2, 2, 2), (1, 0), (1, 0), (1, 1))


def test_messages_name_the_right_argument() -> None:
    with pytest.raises(ValueError, match="o must be positive, got o=0"):   # was "i=0"
        shapes.conv_input_sizes(0, 3, 2, 1)
    # padding 3 crops everything: no "reachable sizes are 1..-5"
    with pytest.raises(ValueError, match="no size is reachable .*largest would be -5"):
        shapes.output_padding_for(1, 1, 1, 1, 3)
    with pytest.raises(RuntimeError):
        torch.nn.functional.conv_transpose1d(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1),
                                             padding=3)


@pytest.mark.parametrize("n, params, rule", [
    (1, dict(i=5, k=3, p=2), "p=0"),
    (3, dict(i=5, k=4, p=2), "odd k"),
    (4, dict(i=5, k=3, p=1), "p = k - 1 = 2"),
    (5, dict(i=7, k=3, s=2, d=2), "d=1"),
    (9, dict(i=4, k=4, s=2, p=2), "s=1"),
    (12, dict(i=3, k=3, s=2, a=1), "a=0"),
], ids=str)
def test_relationship_refuses_arguments_outside_its_preconditions(n, params, rule) -> None:
    """The guide's formula would be a wrong size for these arguments (PyTorch says which)."""
    i, k = params["i"], params["k"]
    s, p, d, a = params.get("s", 1), params.get("p", 0), params.get("d", 1), params.get("a", 0)
    truth = _torch_tsize(i, k, s, p, a, d) if n >= 8 else _torch_csize(i, k, s, p, d)
    with pytest.raises(ValueError, match=f"relationship {n} .*assumes .*{re.escape(rule)}"):
        shapes.relationship(n, **params)
    formula = {1: (i - k) + 1, 3: i, 4: i + (k - 1), 5: (i - k) // s + 1,
               9: i + (k - 1) - 2 * p, 12: s * (i - 1) + k}[n]
    assert formula != truth


def test_relationship_and_dilated_transposed_check_values() -> None:
    with pytest.raises(ValueError, match="s must be positive, got s=0"):   # was ZeroDivisionError
        shapes.relationship(5, 5, 3, s=0)
    with pytest.raises(ValueError, match="0 <= a < s.*a=2, s=2"):
        shapes.dilated_transposed_size(3, 3, 2, 1, 2, a=2)
    with pytest.raises(RuntimeError, match="output padding must be smaller"):
        torch.nn.functional.conv_transpose1d(torch.zeros(1, 1, 3), torch.zeros(1, 1, 3),
                                             stride=2, output_padding=2)
