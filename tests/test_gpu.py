"""The torch path on CUDA against cuDNN. Skipped without a CUDA device."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import tconv_lib
from tconv_lib import nn

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CASES = [  # (input shape, weight shape, stride, padding, output_padding, groups, dilation)
    ((2, 4, 7), (4, 3, 4), 3, 1, 2, 1, 1),
    ((2, 4, 6, 5), (4, 2, 3, 3), 2, 1, 1, 2, 1),
    ((2, 8, 6, 6), (8, 4, 4, 4), 2, 1, 0, 1, 1),
    ((1, 4, 5, 6), (4, 3, 3, 2), (2, 1), (1, 0), (1, 0), 1, (2, 1)),
    ((1, 2, 4, 4, 4), (2, 2, 2, 2, 2), 2, 0, 0, 1, 1),
    ((3, 5, 5), (3, 2, 2, 2), 2, 0, 1, 1, 1),                   # unbatched 2-D
]
FN = {3: F.conv_transpose1d, 4: F.conv_transpose2d, 5: F.conv_transpose3d}


@pytest.mark.parametrize("method", ["auto", *tconv_lib.METHODS])
@pytest.mark.parametrize("case", CASES)
def test_cuda_matches_cudnn_float64(method, case) -> None:
    xs, ws, s, p, op, g, d = case
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(xs, device="cuda", dtype=torch.float64, generator=gen)
    w = torch.randn(ws, device="cuda", dtype=torch.float64, generator=gen)
    b = torch.randn(ws[1] * g, device="cuda", dtype=torch.float64, generator=gen)
    expected = FN[len(ws)](x, w, b, s, p, op, g, d)
    got = tconv_lib.conv_transpose(x, w, b, s, p, op, g, d, method=method)
    assert got.device == x.device
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", ["auto", *tconv_lib.METHODS])
@pytest.mark.parametrize("ndim", [4, 5])
def test_cuda_channels_last_strides_match_cudnn(method, ndim) -> None:
    """A channels-last input on CUDA: cuDNN's output strides, its values in float64."""
    fmt = torch.channels_last if ndim == 4 else torch.channels_last_3d
    x = torch.randn((2, 8) + (5,) * (ndim - 2), device="cuda", dtype=torch.float64)
    x = x.contiguous(memory_format=fmt)
    w = torch.randn((8, 4) + (4,) * (ndim - 2), device="cuda", dtype=torch.float64)
    expected = FN[ndim](x, w, None, 2, 1)
    strides = FN[ndim](x.float(), w.float(), None, 2, 1).stride()
    got = tconv_lib.conv_transpose(x, w, None, 2, 1, method=method)
    assert got.stride() == strides, (got.stride(), strides)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_cuda_low_precision(dtype) -> None:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    x = torch.randn(4, 16, 8, 8, device="cuda")
    w = torch.randn(16, 8, 4, 4, device="cuda")
    expected = F.conv_transpose2d(x.double(), w.double(), stride=2, padding=1)
    got = tconv_lib.conv_transpose(x.to(dtype), w.to(dtype), stride=2, padding=1)
    assert got.dtype == dtype and got.is_cuda
    tol = {torch.float16: 3e-2, torch.bfloat16: 2e-1, torch.float32: 1e-4}[dtype]
    torch.testing.assert_close(got.double(), expected, rtol=tol, atol=tol * 20)


def test_cuda_module_gradients() -> None:
    torch.manual_seed(0)
    theirs = torch.nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, groups=2).double().cuda()
    ours = nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, groups=2).double().cuda()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 4, 5, 5, device="cuda", dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    ours(x).square().sum().backward()
    theirs(x2).square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad)
    assert torch.autograd.gradcheck(
        lambda a: nn.conv_transpose_autograd(a, ours.weight.detach(), None, 2, 1, 1, 2),
        (x[:1].detach().requires_grad_(),))


def test_numpy_and_cuda_never_mix() -> None:
    import numpy as np

    with pytest.raises(TypeError, match="NumPy array"):
        tconv_lib.conv_transpose(torch.zeros(1, 1, 3, device="cuda"), np.zeros((1, 1, 2)))


def test_cuda_every_col2im_route_matches_cudnn_float64() -> None:
    """Each GPU route (the Triton kernel too) on every case of tests/test_gpu_routes.py."""
    from test_gpu_routes import CASES, problem

    from tconv_lib.methods import col2im_gpu

    checked = set()
    for name, case in CASES.items():
        x, w, geo, expected = problem(case, torch.float64, "cuda")
        for route, fn in col2im_gpu.routes(x, w, geo).items():
            torch.testing.assert_close(fn(x, w, geo), expected, rtol=1e-10, atol=1e-10,
                                       msg=lambda m, r=route, n=name: f"{r} on {n}: {m}")
            checked.add(route)
    assert set(col2im_gpu.ROUTES) <= checked, set(col2im_gpu.ROUTES) - checked


def test_cuda_autotune_times_once_and_reuses() -> None:
    from tconv_lib import _autotune

    _autotune.set_enabled(True)
    x = torch.randn(4, 16, 12, 12, device="cuda")
    w = torch.randn(16, 8, 4, 4, device="cuda")
    first = tconv_lib.conv_transpose(x, w, stride=2, padding=1)
    timed = _autotune.measured()
    assert len(timed) == 1 and len(next(iter(timed.values()))) >= 3, timed
    again = tconv_lib.conv_transpose(x, w, stride=2, padding=1)
    assert _autotune.measured() == timed, "a known problem was timed again"
    torch.testing.assert_close(first, again)
    expected = F.conv_transpose2d(x.double(), w.double(), stride=2, padding=1)
    torch.testing.assert_close(first.double(), expected, rtol=1e-4, atol=1e-4)


def test_cuda_bench_host_and_kernel_time() -> None:
    from tconv_lib import bench

    a = torch.randn(512, 512, device="cuda")
    kernel = bench.kernel_time(lambda: a @ a)
    host = bench.host_time(lambda: a @ a, torch.cuda.synchronize)
    assert kernel is not None and 0 < kernel < 1, kernel
    assert 0 < host < 1, host
