"""Identities that hold for every parameter set: adjointness, VJP of conv, the matrix view."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings

import tconv_lib
from tests._strategies import Problem, problems

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _batched(prob: Problem) -> np.ndarray:
    return prob.x if prob.x.ndim == prob.weight.ndim else prob.x[None]


def _forward_restricted(z, prob: Problem, in_spatial):
    """conv(z, w) cut to the transposed input's size (they differ only if op >= stride)."""
    y = tconv_lib.conv(z, prob.weight, None, prob.stride, prob.padding, prob.dilation,
                       prob.groups)
    return y[(Ellipsis,) + tuple(slice(0, n) for n in in_spatial)]


@SETTINGS
@given(prob=problems())
def test_adjoint_dot_product(prob: Problem) -> None:
    x = _batched(prob)
    y = tconv_lib.conv_transpose(x, prob.weight, None, prob.stride, prob.padding,
                                 prob.output_padding, prob.groups, prob.dilation)
    z = np.random.default_rng(7).standard_normal(y.shape)
    lhs = np.vdot(_forward_restricted(z, prob, x.shape[2:]), x)
    rhs = np.vdot(z, y)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-9)


@SETTINGS
@given(prob=problems())
def test_transpose_is_vjp_of_conv(prob: Problem) -> None:
    x = torch.as_tensor(_batched(prob))
    w = torch.as_tensor(prob.weight)
    y = tconv_lib.conv_transpose(x, w, None, prob.stride, prob.padding, prob.output_padding,
                                 prob.groups, prob.dilation)
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


def test_transposed_is_not_inverse() -> None:
    # C^T C is not the identity: a transposed convolution does not undo a convolution.
    w = np.array([[[1.0, 2.0, 3.0]]])
    c = tconv_lib.conv_matrix(w, 6, stride=2).toarray()
    assert not np.allclose(c.T @ c, np.eye(6))
