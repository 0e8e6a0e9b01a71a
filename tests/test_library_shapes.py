"""PyTorch's two rules for output_padding, as tconv_lib.shapes states them.

``nn.ConvTranspose*d(...)(x, output_size=...)`` accepts ``output_padding < stride`` (the
``"module"`` rule); ``F.conv_transpose*d(..., output_padding=...)`` accepts
``output_padding < max(stride, dilation)`` (the ``"functional"`` rule). They differ only when
``dilation > stride``, so the grid below has many such cases.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import tconv_lib
from tconv_lib import shapes

GRID = list(itertools.product([1, 2, 4], [1, 3], [1, 2, 3], [0, 1], [1, 2, 3]))  # i, k, s, p, d


def _module_size(i, k, s, p, d, target):
    """What ``nn.ConvTranspose1d(..., output_size=[target])`` produces, or None if refused."""
    module = torch.nn.ConvTranspose1d(1, 1, k, s, p, dilation=d, bias=False).double()
    try:
        return module(torch.zeros(1, 1, i, dtype=torch.float64), output_size=[target]).shape[-1]
    except (ValueError, RuntimeError):
        return None


def _functional_size(i, k, s, p, d, op):
    """What ``F.conv_transpose1d(..., output_padding=op)`` produces, or None if refused."""
    try:
        return F.conv_transpose1d(torch.zeros(1, 1, i, dtype=torch.float64),
                                  torch.zeros(1, 1, k, dtype=torch.float64), None, s, p, op, 1,
                                  d).shape[-1]
    except RuntimeError:
        return None


@pytest.mark.parametrize("i, k, s, p, d", GRID)
def test_module_rule_is_what_output_size_accepts(i, k, s, p, d) -> None:
    sizes = shapes.output_size_range(i, k, s, p, d)                  # rule="module"
    assert sizes == shapes.output_size_range(i, k, s, p, d, rule="module")
    low = shapes.conv_transpose_output_size(i, k, s, p, 0, d)
    accepted = [t for t in range(1, low + max(s, d) + 2) if _module_size(i, k, s, p, d, t) == t]
    assert list(sizes) == accepted
    for target in accepted:
        op = shapes.output_padding_for(i, target, k, s, p, d)
        assert 0 <= op <= shapes.max_output_padding(s, d) == s - 1
        assert _functional_size(i, k, s, p, d, op) == target


@pytest.mark.parametrize("i, k, s, p, d", GRID)
def test_functional_rule_is_what_output_padding_accepts(i, k, s, p, d) -> None:
    sizes = shapes.output_size_range(i, k, s, p, d, rule="functional")
    produced = [n for op in range(max(s, d) + 2)
                if (n := _functional_size(i, k, s, p, d, op)) is not None and n >= 1]
    assert list(sizes) == produced
    assert shapes.max_output_padding(s, d, rule="functional") == max(s, d) - 1
    low = shapes.conv_transpose_output_size(i, k, s, p, 0, d)
    x, w = torch.zeros(1, 1, i, dtype=torch.float64), torch.zeros(1, 1, k, dtype=torch.float64)
    for target in sizes:
        op = shapes.output_padding_for(i, target, k, s, p, d, rule="functional")
        assert op == target - low
        # tconv_lib.conv_transpose follows the functional rule, like F.conv_transpose1d
        assert tconv_lib.conv_transpose(x, w, None, s, p, op, 1, d).shape[-1] == target


def test_the_rules_differ_exactly_when_dilation_exceeds_stride() -> None:
    for i, k, s, p, d in GRID:
        module = shapes.output_size_range(i, k, s, p, d)
        functional = shapes.output_size_range(i, k, s, p, d, rule="functional")
        low = shapes.conv_transpose_output_size(i, k, s, p, 0, d)
        extra = [n for n in range(low + s, low + d) if n >= 1]       # empty unless d > s
        assert list(functional) == list(module) + extra
    # k=3, s=1, d=3 from length 2: output_size= accepts only 8; output_padding 1, 2 give 9, 10,
    # whose forward convolution is longer than 2 again
    assert list(shapes.output_size_range(2, 3, 1, 0, 3)) == [8]
    assert list(shapes.output_size_range(2, 3, 1, 0, 3, rule="functional")) == [8, 9, 10]
    assert shapes.conv_output_size(10, 3, 1, 0, 3) == 4
    with pytest.raises(ValueError, match=r"target output size 9 is unreachable.*8\.\.8 "
                                         r"\(output_padding 0\.\.0, the module rule\)"):
        shapes.output_padding_for(2, 9, 3, 1, 0, 3)
    assert shapes.output_padding_for(2, 9, 3, 1, 0, 3, rule="functional") == 1


def test_unknown_rule_refused() -> None:
    with pytest.raises(ValueError, match="rule must be 'module'.*'functional'.*got rule='nn'"):
        shapes.output_size_range(4, 3, 2, rule="nn")


@pytest.mark.parametrize(("i", "k", "s", "p", "d"), GRID)
def test_output_padding_extends_into_the_crop_then_beyond_the_canvas(i, k, s, p, d) -> None:
    """Chapter 4's claim, against PyTorch: output ``q`` is canvas entry ``q + p`` where that
    exists and the bias alone beyond it; so of the ``op`` entries that ``output_padding`` adds,
    the first ``min(op, p)`` are canvas values ``padding`` would have cropped and the other
    ``op - p`` hold the bias alone."""
    rng = torch.Generator().manual_seed(i * 1000 + k * 100 + s * 10 + p + d)
    x = torch.randn(1, 1, i, generator=rng, dtype=torch.float64)
    w = torch.randn(1, 1, k, generator=rng, dtype=torch.float64)
    bias = torch.tensor([0.25], dtype=torch.float64)
    canvas = F.conv_transpose1d(x, w, None, s, 0, 0, 1, d)[0, 0]
    for op in range(max(s, d)):
        o = shapes.conv_transpose_output_size(i, k, s, p, op, d)
        if o < 1:
            continue
        ref = F.conv_transpose1d(x, w, bias, s, p, op, 1, d)[0, 0]
        ours = torch.as_tensor(tconv_lib.conv_transpose(x, w, bias, stride=s, padding=p,
                                                        output_padding=op, dilation=d))[0, 0]
        torch.testing.assert_close(ours, ref)
        expected = torch.stack([canvas[q + p] + bias[0] if q + p < canvas.numel() else bias[0]
                                for q in range(o)])
        torch.testing.assert_close(ref, expected, msg=lambda m, op=op: (
            f"op={op}, p={p}: output q should be canvas[q + p] (+ bias), else the bias; {m}"))
        if o - op >= 1:                              # the size without output_padding exists
            added = torch.arange(o - op, o) + p      # canvas positions of the added entries
            assert int((added < canvas.numel()).sum()) == min(op, p), (op, p, added.tolist())
