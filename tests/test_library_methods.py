"""Every method of tconv_lib agrees with torch.nn.functional in float64 (property-based)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

import tconv_lib
from tests._strategies import Problem, problems
from tests.oracle import torch_conv, torch_conv_transpose

CASES = int(os.environ.get("TCONV_PROPERTY_CASES", "300"))
SETTINGS = settings(max_examples=CASES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _check(prob: Problem, method: str) -> None:
    expected = torch_conv_transpose(*prob.args)
    got = tconv_lib.conv_transpose(*prob.args, method=method)
    assert isinstance(got, np.ndarray)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    t_args = [torch.as_tensor(a) if isinstance(a, np.ndarray) else a for a in prob.args]
    got_t = tconv_lib.conv_transpose(*t_args, method=method)
    assert isinstance(got_t, torch.Tensor) and got_t.dtype == torch.float64
    np.testing.assert_allclose(got_t.numpy(), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", tconv_lib.METHODS)
@SETTINGS
@given(prob=problems())
def test_method_matches_torch(method: str, prob: Problem) -> None:
    _check(prob, method)


@SETTINGS
@given(prob=problems())
def test_auto_matches_torch(prob: Problem) -> None:
    """``auto`` runs ``col2im`` today. Its own test function gets its own derandomized seed
    (Hypothesis derives it from the function, which every ``method`` parameter above shares), so
    these cases are not the ones ``col2im`` already passed."""
    _check(prob, "auto")


@SETTINGS
@given(prob=problems())
def test_forward_conv_matches_torch(prob: Problem) -> None:
    # Reuse the geometry: a conv weight (C_out, C_in/g, *k) and an input big enough to be valid.
    rng = np.random.default_rng(0)
    g = prob.groups
    w = rng.standard_normal((prob.weight.shape[1] * g, prob.weight.shape[0] // g)
                            + prob.weight.shape[2:])
    x = rng.standard_normal((2, w.shape[1] * g) + tuple(
        d * (k - 1) + 1 + s for k, s, d in zip(w.shape[2:], prob.stride, prob.dilation,
                                                strict=True)))
    b = None if prob.bias is None else rng.standard_normal(w.shape[0])
    expected = torch_conv(x, w, b, prob.stride, prob.padding, prob.dilation, g)
    got = tconv_lib.conv(x, w, b, prob.stride, prob.padding, prob.dilation, g)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", tconv_lib.METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_dtypes_preserved(method: str, dtype) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 5, 6)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 2)).astype(dtype)
    y = tconv_lib.conv_transpose(x, w, None, (2, 1), (1, 0), (1, 0), method=method)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, torch_conv_transpose(x, w, None, (2, 1), (1, 0), (1, 0)),
                               rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4)


@pytest.mark.parametrize("method", tconv_lib.METHODS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_torch_low_precision(method: str, dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 5, 5, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 2, 3, 3, generator=gen, dtype=torch.float64)
    expected = torch.nn.functional.conv_transpose2d(x, w, stride=2, padding=1)
    got = tconv_lib.conv_transpose(x.to(dtype), w.to(dtype), stride=2, padding=1, method=method)
    assert got.dtype == dtype
    tol = {torch.float16: 2e-2, torch.bfloat16: 1e-1, torch.float32: 1e-4}[dtype]
    torch.testing.assert_close(got.double(), expected, rtol=tol, atol=tol * 10)


# k == s (and d == 1): phase's single-GEMM route. Every phase has one tap, so the method must
# do ONE matmul to s^D * C_out channels and a pixel shuffle, whatever the groups, bias, padding
# crop, output_padding (zeros past the canvas), batching or number of spatial dims.
K_EQUALS_S = [
    # (spatial, C_in, C_out/groups, groups, stride = kernel, padding, output_padding, batched)
    ((5,), 2, 3, 1, 2, 0, 0, True),
    ((4,), 4, 1, 2, 3, 1, 2, False),
    ((3, 4), 3, 2, 1, (2, 3), (1, 0), (1, 2), True),
    ((4, 4), 4, 2, 4, 2, 1, 0, True),
    ((3, 2), 2, 3, 2, (1, 2), 0, (0, 1), False),
    ((2, 3, 2), 2, 2, 2, 2, (0, 1, 0), (1, 0, 1), True),
]


def _count_matmuls(monkeypatch) -> list:
    import array_api_compat.numpy
    import array_api_compat.torch

    calls = []
    for xp in (array_api_compat.numpy, array_api_compat.torch):
        real = xp.matmul
        monkeypatch.setattr(xp, "matmul",
                            lambda *a, _real=real, **k: calls.append(a) or _real(*a, **k))
    return calls


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("case", K_EQUALS_S, ids=str)
def test_phase_k_equals_s_is_one_gemm_and_a_pixel_shuffle(case, backend, monkeypatch) -> None:
    spatial, c_in, c_out_g, g, s, p, op, batched = case
    nd = len(spatial)
    kernel = (s,) * nd if isinstance(s, int) else s
    rng = np.random.default_rng(sum(spatial) + g)
    x = rng.standard_normal(((2,) if batched else ()) + (c_in,) + spatial)
    w = rng.standard_normal((c_in, c_out_g) + kernel)
    b = rng.standard_normal(c_out_g * g)
    expected = torch_conv_transpose(x, w, b, s, p, op, g, 1)
    if backend == "torch":
        x, w, b = (torch.as_tensor(a) for a in (x, w, b))
    calls = _count_matmuls(monkeypatch)
    got = tconv_lib.conv_transpose(x, w, b, s, p, op, g, 1, method="phase")
    assert len(calls) == 1, f"{len(calls)} matmuls"
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-12)
    # the spy sees the general route too: a kernel one longer than the stride, s^D phases
    calls.clear()
    longer = rng.standard_normal((c_in, c_out_g) + tuple(k + 1 for k in kernel))
    tconv_lib.conv_transpose(np.asarray(x), longer, None, s, p, op, g, 1, method="phase")
    assert len(calls) > 1
