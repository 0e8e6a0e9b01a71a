"""Every method against PyTorch float64 at the benchmark suite's parameter combinations.

The shapes of :data:`tconv_lib.bench.SUITE` keep their kernel, stride, padding, output_padding,
dilation and grouping pattern but shrink to a few channels and pixels, so the fast paths
(``col2im``'s block adds, the pixel-shuffle copy, the depthwise outer product) are exercised
exactly where the benchmark times them, on NumPy arrays and on torch tensors.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tconv_lib
from tconv_lib.bench import SUITE, Shape


def small(shape: Shape) -> Shape:
    g = min(shape.groups, 4)
    c_in = 3 * g if shape.groups == 1 else g
    c_out = 2 * g if shape.groups == 1 else g
    return replace(shape, n=min(shape.n, 2), c_in=c_in, c_out=c_out, groups=g,
                   spatial=tuple(3 + a for a in range(len(shape.spatial))))


@pytest.mark.parametrize("method", ["auto", *tconv_lib.METHODS])
@pytest.mark.parametrize("shape", [small(s) for s in SUITE], ids=lambda s: s.name)
@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_suite_geometry_matches_torch(shape: Shape, method: str, backend: str) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((shape.n, shape.c_in) + shape.spatial, generator=gen, dtype=torch.float64)
    w = torch.randn((shape.c_in, shape.c_out // shape.groups) + (shape.kernel,) * shape.ndim,
                    generator=gen, dtype=torch.float64)
    b = torch.randn(shape.c_out, generator=gen, dtype=torch.float64)
    args = (shape.stride, shape.padding, shape.output_padding, shape.groups, shape.dilation)
    expected = getattr(F, f"conv_transpose{shape.ndim}d")(x, w, b, *args)
    assert tuple(expected.shape[2:]) == shape.out_spatial
    if backend == "numpy":
        got = torch.from_numpy(np.ascontiguousarray(tconv_lib.conv_transpose(
            x.numpy(), w.numpy(), b.numpy(), *args, method=method)))
    else:
        got = tconv_lib.conv_transpose(x, w, b, *args, method=method)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape", [small(s) for s in SUITE[:4]], ids=lambda s: s.name)
def test_unbatched_fast_path(shape: Shape) -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn((shape.c_in,) + shape.spatial, generator=gen, dtype=torch.float64)
    w = torch.randn((shape.c_in, shape.c_out // shape.groups) + (shape.kernel,) * shape.ndim,
                    generator=gen, dtype=torch.float64)
    args = (shape.stride, shape.padding, shape.output_padding, shape.groups, shape.dilation)
    expected = getattr(F, f"conv_transpose{shape.ndim}d")(x, w, None, *args)
    torch.testing.assert_close(tconv_lib.conv_transpose(x, w, None, *args), expected,
                               rtol=1e-10, atol=1e-10)


def test_auto_picks_the_fast_path() -> None:
    x, w = np.zeros((1, 2, 4, 4)), np.zeros((2, 3, 4, 4))
    assert tconv_lib.conv_transpose(x, w, stride=2, padding=1).shape == (1, 3, 8, 8)
    from tconv_lib._args import check_transpose

    _, geo, _ = check_transpose(x, w, None, 2, 1, 0, 1, 1)
    assert tconv_lib.choose_method(x, w, geo) == "col2im"
