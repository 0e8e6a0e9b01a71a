"""Shape arithmetic against PyTorch, and the Dumoulin & Visin relationships."""

from __future__ import annotations

import itertools

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
