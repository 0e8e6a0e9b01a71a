"""tconv_lib.artifacts with bad arguments: named errors, not ZeroDivisionError or zip errors.

The measures take NumPy or torch input; PyTorch's own layers (``nn.PixelShuffle``,
``F.interpolate``) refuse the same scales.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from tconv_lib import artifacts

X = np.random.default_rng(0).standard_normal((2, 8, 8))


@pytest.mark.parametrize("fn", [artifacts.checkerboard_score, artifacts.periodic_component,
                                artifacts.block_edge_ratio])
@pytest.mark.parametrize("kw, exc, fragments", [
    (dict(stride=0), ValueError, ["stride", "positive", "(0, 0)"]),
    (dict(ndim=0), ValueError, ["ndim", "positive", "ndim=0"]),
    (dict(ndim=-1), ValueError, ["ndim", "positive", "ndim=-1"]),
    (dict(ndim=True), TypeError, ["ndim", "int", "True"]),
    (dict(ndim=2.0), TypeError, ["ndim", "int", "2.0"]),
], ids=["stride 0", "ndim 0", "ndim -1", "ndim True", "ndim 2.0"])
def test_period_arguments_are_named(fn, kw, exc, fragments) -> None:
    """stride 0 used to divide by zero; ndim 0 or -1 failed inside zip."""
    with pytest.raises(exc) as info:
        fn(X, **({"stride": 2} | kw))
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"


def test_scores_still_measure() -> None:
    checker = (-1.0) ** np.add.outer(np.arange(8), np.arange(8))
    assert artifacts.checkerboard_score(checker) == pytest.approx(1.0)
    assert artifacts.checkerboard_score(torch.as_tensor(checker)[None], 2, 2) == pytest.approx(1.0)


@pytest.mark.parametrize("make, exc, fragment", [
    (lambda: artifacts.icnr_(torch.zeros(4, 2, 3, 3), 2.0), TypeError, "scale=2.0"),
    (lambda: artifacts.icnr_(torch.zeros(4, 2, 3, 3), True), TypeError, "scale=True"),
    (lambda: artifacts.icnr_(torch.zeros(4, 2), 2), ValueError, "(4, 2)"),
    (lambda: artifacts.ResizeConv(2, 2, 0), ValueError, "scale=0"),
    (lambda: artifacts.PixelShuffleUp(2, 2, 0, icnr=False), ValueError, "scale=0"),
], ids=["icnr float", "icnr bool", "icnr 2-D weight", "resize 0", "pixel shuffle 0"])
def test_scales_are_checked_when_the_layer_is_made(make, exc, fragment) -> None:
    """ResizeConv(scale=0) used to be built and fail in forward inside F.interpolate;
    icnr_(scale=2.0) failed inside torch.empty."""
    with pytest.raises(exc, match=f"(scale|weight) must be .*{re.escape(fragment)}"):
        make()
    with pytest.raises(RuntimeError):          # PyTorch's interpolation refuses a 0 scale too
        torch.nn.functional.interpolate(torch.zeros(1, 2, 4, 4), scale_factor=0)
