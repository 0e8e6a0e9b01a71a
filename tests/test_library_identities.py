"""Identities that hold for every parameter set: adjointness, VJP of conv, the matrix view."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

import tconv_lib
from tests._strategies import Problem, problems

# 60 cases per method and identity: every method is checked, and CI stays fast.
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _batched(prob: Problem) -> np.ndarray:
    return prob.x if prob.x.ndim == prob.weight.ndim else prob.x[None]


def _forward_restricted(z, prob: Problem, in_spatial):
    """conv(z, w) cut to the transposed input's size (they differ only if op >= stride)."""
    y = tconv_lib.conv(z, prob.weight, None, prob.stride, prob.padding, prob.dilation,
                       prob.groups)
    return y[(Ellipsis,) + tuple(slice(0, n) for n in in_spatial)]


@pytest.mark.parametrize("method", tconv_lib.METHODS)
@SETTINGS
@given(prob=problems())
def test_adjoint_dot_product(method: str, prob: Problem) -> None:
    x = _batched(prob)
    y = tconv_lib.conv_transpose(x, prob.weight, None, prob.stride, prob.padding,
                                 prob.output_padding, prob.groups, prob.dilation, method=method)
    z = np.random.default_rng(7).standard_normal(y.shape)
    lhs = np.vdot(_forward_restricted(z, prob, x.shape[2:]), x)
    rhs = np.vdot(z, y)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method", tconv_lib.METHODS)
@SETTINGS
@given(prob=problems())
def test_transpose_is_vjp_of_conv(method: str, prob: Problem) -> None:
    x = torch.as_tensor(_batched(prob))
    w = torch.as_tensor(prob.weight)
    y = tconv_lib.conv_transpose(x, w, None, prob.stride, prob.padding, prob.output_padding,
                                 prob.groups, prob.dilation, method=method)
    z = torch.zeros(y.shape, dtype=torch.float64, requires_grad=True)
    fwd = [torch.nn.functional.conv1d, torch.nn.functional.conv2d,
           torch.nn.functional.conv3d][w.ndim - 3]
    out = fwd(z, w, None, prob.stride, prob.padding, prob.dilation, prob.groups)
    out = out[(Ellipsis,) + tuple(slice(0, n) for n in x.shape[2:])]
    (vjp,) = torch.autograd.grad(out, z, grad_outputs=x)
    torch.testing.assert_close(y, vjp, rtol=1e-10, atol=1e-10)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(prob=problems(max_dims=2))
def test_matrix_method_equals_explicit_transpose(prob: Problem) -> None:
    x = _batched(prob)
    out_shape = prob.out_shape()
    c_out = prob.weight.shape[1] * prob.groups
    # Explicit C, column by column: C e_j = conv(e_j) for every basis vector of the output space.
    n_cols = c_out * int(np.prod(out_shape))
    basis = np.eye(n_cols).reshape((n_cols, c_out) + out_shape)
    columns = _forward_restricted(basis, prob, x.shape[2:]).reshape(n_cols, -1)
    c_explicit = columns.T                                    # (C_in * P_in, C_out * P_out)
    expected = (c_explicit.T @ x.reshape(x.shape[0], -1).T).T.reshape((x.shape[0], c_out)
                                                                      + out_shape)
    got = tconv_lib.conv_transpose(x, prob.weight, None, prob.stride, prob.padding,
                                   prob.output_padding, prob.groups, prob.dilation,
                                   method="matrix")
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    c = tconv_lib.conv_matrix(prob.weight, out_shape, prob.stride, prob.padding, prob.dilation,
                              prob.groups, output_size=x.shape[2:])
    np.testing.assert_allclose(c.toarray(), c_explicit, rtol=0, atol=1e-12)


def test_conv_matrix_times_x_is_conv() -> None:
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 2, 3, 2))
    x = rng.standard_normal((4, 7, 6))
    c = tconv_lib.conv_matrix(w, (7, 6), stride=(2, 1), padding=1, groups=2)
    y = tconv_lib.conv(x, w, None, (2, 1), 1, 1, 2)
    np.testing.assert_allclose(c @ x.reshape(-1), y.reshape(-1), rtol=1e-12)
    ct = tconv_lib.conv_matrix(torch.as_tensor(w), (7, 6), stride=(2, 1), padding=1, groups=2)
    np.testing.assert_allclose(ct.to_dense().numpy(), c.toarray())


def _gram_by_hand(w: list[float], n: int, stride: int, padding: int = 0) -> np.ndarray:
    """(C^T C)[a, b] = sum over output positions j of C[j, a] C[j, b], where C[j, j*s + t - p]
    = w[t]: written out from the definition, without tconv_lib."""
    k = len(w)
    outputs = (n + 2 * padding - k) // stride + 1
    gram = np.zeros((n, n))
    for j in range(outputs):
        hits = [(j * stride + t - padding, w[t]) for t in range(k)
                if 0 <= j * stride + t - padding < n]
        for a, wa in hits:
            for b, wb in hits:
                gram[a, b] += wa * wb
    return gram


@pytest.mark.parametrize("stride, padding", [(2, 0), (1, 0), (2, 1), (3, 1)])
def test_transposed_is_not_inverse(stride: int, padding: int) -> None:
    # C^T C is not the identity: a transposed convolution does not undo a convolution.
    w = [1.0, 2.0, 3.0]
    c = tconv_lib.conv_matrix(np.array([[w]]), 6, stride=stride, padding=padding).toarray()
    gram = c.T @ c
    np.testing.assert_array_equal(gram, _gram_by_hand(w, 6, stride, padding))
    if (stride, padding) == (2, 0):
        # rows [1 2 3 0 0 0] and [0 0 1 2 3 0]: the diagonal sums the squared taps that hit
        # each input (position 2 is hit by tap 3 of row 0 and tap 1 of row 1: 9 + 1), the
        # off-diagonal entries are overlaps, and input 5 is never read at all
        np.testing.assert_array_equal(np.diag(gram), [1, 4, 10, 4, 9, 0])
        assert gram[0, 1] == 1 * 2 and gram[2, 3] == 1 * 2 and gram[2, 4] == 1 * 3
        assert gram[1, 2] == 2 * 3 and gram[0, 3] == 0
    assert not np.allclose(gram, np.eye(6))
