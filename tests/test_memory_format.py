"""Output memory layout: every method and ``conv`` give the strides PyTorch's own call gives
(channels-last when a 4-D/5-D torch input or weight is channels-last, else standard), with the
values of PyTorch's call in float64; NumPy outputs are in C order.

The strides are PyTorch's float32 call's: its CPU fallback for 3-D float64 and float16
(``slow_conv3d``) returns the standard layout whatever the operands', unlike its oneDNN path,
its 2-D calls and CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tconv_lib
from tconv_lib import _small, backend
from tconv_lib._args import check_transpose
from tconv_lib.methods import col2im

CL = {4: torch.channels_last, 5: torch.channels_last_3d}
TRANSPOSED = {3: F.conv_transpose1d, 4: F.conv_transpose2d, 5: F.conv_transpose3d}
FORWARD = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}

# (input shape, weight shape, stride, padding, groups); the first keeps col2im's channels-last
# route (C_out >= the input's last axis), the rest take other routes
PROBLEMS = [
    ((2, 8, 5, 5), (8, 16, 4, 4), 2, 1, 1),
    ((2, 8, 5, 7), (8, 3, 3, 3), 2, 0, 1),
    ((2, 8, 5, 5), (8, 2, 4, 4), 2, 1, 4),
    ((2, 4, 3, 4, 3), (4, 6, 2, 2, 2), 2, 0, 1),
    ((3, 8, 1, 1), (8, 4, 3, 3), 2, 0, 1),      # 1x1: standard and channels-last strides agree
    ((2, 1, 5, 5), (1, 4, 3, 3), 1, 1, 1),      # one channel: the same
    ((2, 6, 9), (6, 4, 3), 2, 1, 1),            # 1-D: no channels-last format
]
LAYOUTS = ["standard", "input channels-last", "weight channels-last", "both channels-last"]


def arrays(problem, layout: str, seed: int = 0):
    x_shape, w_shape, *_ = problem
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(x_shape, generator=gen, dtype=torch.float64)
    w = torch.randn(w_shape, generator=gen, dtype=torch.float64)
    if len(x_shape) in CL and layout in ("input channels-last", "both channels-last"):
        x = x.contiguous(memory_format=CL[len(x_shape)])
    if len(w_shape) in CL and layout in ("weight channels-last", "both channels-last"):
        w = w.contiguous(memory_format=CL[len(w_shape)])
    return x, w


@pytest.mark.parametrize("method", ("auto",) + tconv_lib.METHODS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("problem", PROBLEMS, ids=str)
def test_conv_transpose_strides_match_torch(problem, layout: str, method: str) -> None:
    x, w = arrays(problem, layout)
    stride, padding, groups = problem[2:]
    b = torch.linspace(-1, 1, w.shape[1] * groups, dtype=torch.float64)
    ref = TRANSPOSED[x.dim()](x, w, b, stride, padding, groups=groups)
    strides = TRANSPOSED[x.dim()](x.float(), w.float(), b.float(), stride, padding,
                                  groups=groups).stride()
    y = tconv_lib.conv_transpose(x, w, b, stride, padding, groups=groups, method=method)
    assert y.stride() == strides, (
        f"{method}, {layout}: expected PyTorch's strides {strides}, got {y.stride()}")
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)


def test_channels_last_route_writes_a_channels_last_output(monkeypatch) -> None:
    """The route that computes with the channels innermost keeps them there (its final copy
    is then a plain one, and nothing is copied after it), exactly."""
    x, w = arrays(PROBLEMS[0], "input channels-last", seed=3)
    _, geo, _ = check_transpose(x, w, None, 2, 1, 0, 1, 1)
    assert col2im.cpu_route(x, w, geo) == "channels last"
    seen = []

    def in_memory_format(y, memory_format):
        seen.append(y.is_contiguous(memory_format=memory_format))
        return y.contiguous(memory_format=memory_format)

    monkeypatch.setattr(backend, "in_memory_format", in_memory_format)
    monkeypatch.setattr(_small, "MAX_WORK", 0)      # not the small problems' route
    y = tconv_lib.conv_transpose(x, w, stride=2, padding=1)
    assert seen == [True], "the route's own output was not channels-last already"
    assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
    torch.testing.assert_close(y, F.conv_transpose2d(x, w, stride=2, padding=1),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("problem", PROBLEMS[:4], ids=str)
def test_conv_strides_match_torch(problem, layout: str) -> None:
    """``conv`` with the same weight (read as (C_out, C_in/groups, *k)) on the transposed
    call's output."""
    x, w = arrays(problem, layout, seed=1)
    stride, padding, groups = problem[2:]
    y_in = TRANSPOSED[x.dim()](x, w, None, stride, padding, groups=groups)
    if layout in ("input channels-last", "both channels-last"):
        y_in = y_in.contiguous(memory_format=CL[y_in.dim()])
    ref = FORWARD[x.dim()](y_in, w, None, stride, padding, groups=groups)
    strides = FORWARD[x.dim()](y_in.float(), w.float(), None, stride, padding,
                               groups=groups).stride()
    y = tconv_lib.conv(y_in, w, None, stride, padding, groups=groups)
    assert y.stride() == strides, f"{layout}: expected {strides}, got {y.stride()}"
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)


def test_unbatched_channels_last_view_matches_torch() -> None:
    """An unbatched (C, H, W) view of HWC data: PyTorch adds the batch axis, so do we."""
    x = torch.randn(5, 5, 8, dtype=torch.float64).permute(2, 0, 1)
    w = torch.randn(8, 16, 4, 4, dtype=torch.float64)
    ref = F.conv_transpose2d(x, w, stride=2, padding=1)
    y = tconv_lib.conv_transpose(x, w, stride=2, padding=1)
    assert y.stride() == ref.stride()
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ("auto",) + tconv_lib.METHODS)
def test_numpy_outputs_are_c_ordered(method: str) -> None:
    x, w = (a.numpy() for a in arrays(PROBLEMS[1], "standard", seed=2))
    y = tconv_lib.conv_transpose(x, w, stride=2, method=method)
    assert y.flags.c_contiguous, f"{method}: strides {y.strides}"
    np.testing.assert_allclose(y, F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w),
                                                     stride=2).numpy(), rtol=1e-12, atol=1e-12)


def test_group_view_with_zero_sized_axes() -> None:
    """(N, C, *sp) -> (N, g, C/g, prod(sp)) when a spatial size or the batch is zero."""
    for shape in [(0, 4, 3, 3), (2, 4, 0, 3)]:
        v = backend.group_view(np.zeros(shape), 2)
        assert v.shape == (shape[0], 2, 2, shape[2] * shape[3])
