"""Other frameworks' conventions: JAX checked against jax.lax, TF against its documented rules."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tconv_lib import conventions as cv
from tests.oracle import torch_conv_transpose
from tests.skips import in_ci

R = np.random.default_rng(0)


def _jax():
    if in_ci():
        import jax  # CI installs the [jax] extra: a missing JAX is a failure there
    else:
        jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


JAX_CASES = [(k, s, d, i, pad, tk) for k, s, d, i in itertools.product(
    [1, 2, 3, 5], [1, 2, 3], [1, 2], [1, 4])
    for pad in ["SAME", "VALID", ((1, 0),), ((3, 1),)] for tk in [False, True]
    if min(cv.from_jax(k, s, pad, d).output_size((i,), (k,))) >= 1]


@pytest.mark.parametrize("k, s, d, i, pad, tk", JAX_CASES)
def test_from_jax_matches_lax_conv_transpose_1d(k, s, d, i, pad, tk) -> None:
    jax = _jax()
    x = R.standard_normal((2, i, 3))
    rhs = R.standard_normal((k, 4, 3) if tk else (k, 3, 4))
    ref = np.asarray(jax.lax.conv_transpose(x, rhs, (s,), pad, rhs_dilation=(d,),
                                            transpose_kernel=tk))
    args = cv.from_jax(k, s, pad, d)
    got = args(np.moveaxis(x, -1, 1), cv.jax_kernel_to_torch(rhs, "HIO", tk))
    np.testing.assert_allclose(np.moveaxis(got, 1, -1), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("pad", ["SAME", "VALID", ((2, 1), (0, 1)), "consistent"])
def test_from_jax_2d_default_layout(pad) -> None:
    jax = _jax()
    x = R.standard_normal((2, 5, 4, 3))                     # NHWC
    rhs = R.standard_normal((3, 2, 3, 6))                   # HWIO
    uc = pad == "consistent"
    p = ((1, 1), (0, 1)) if uc else pad
    ref = np.asarray(jax.lax.conv_transpose(x, rhs, (2, 3), p, use_consistent_padding=uc))
    args = cv.from_jax((3, 2), (2, 3), p, use_consistent_padding=uc)
    got = args(np.moveaxis(x, -1, 1), cv.jax_kernel_to_torch(rhs, "HWIO"))
    np.testing.assert_allclose(np.moveaxis(got, 1, -1), ref, rtol=1e-10, atol=1e-10)


def _tf_conv(z, w, strides, padding, dilations):
    """TF's forward convolution, its documented rule written out (not tconv_lib's).

    'SAME': ``out = ceil(n / s)``, ``pad_total = max((out - 1)*s + (k - 1)*d + 1 - n, 0)``,
    ``pad_total // 2`` before and the rest after; 'VALID': no padding.
    """
    pads = []
    for n, k, s, d in zip(z.shape[2:], w.shape[2:], strides, dilations, strict=True):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0) if padding == "SAME" else 0
        pads.append((total // 2, total - total // 2))
    flat = [v for pair in reversed(pads) for v in pair]        # F.pad lists the last axis first
    conv = [F.conv1d, F.conv2d, F.conv3d][z.ndim - 3]
    return conv(F.pad(z, flat), w, stride=strides, dilation=dilations)


def _tf_output_shapes(i, k, s, d, padding):
    """Every ``output_shape`` TF accepts: those whose forward convolution has length ``i``."""
    kd = d * (k - 1) + 1
    low = (i - 1) * s + 1 if padding == "SAME" else (i - 1) * s + kd
    return range(low, low + s)


def _check_tf_adjoint(i, k, s, d, padding, out) -> None:
    """TF's conv_transpose is by definition the gradient of its forward conv: <conv(z), x> =
    <z, conv_transpose(x)> for every x and z. (Some TF kernels refuse stride > 1 together with
    dilation > 1; the rule, and so the identity, is defined for both.)"""
    nd = len(i)
    args = cv.from_tf(i, k, s, padding, output_shape=out, dilations=d)
    assert args.output_size(i, k) == out
    x = torch.as_tensor(R.standard_normal((2, 3) + i))
    kernel_tf = R.standard_normal(k + (4, 3))               # (*k, C_out, C_in), TF's layout
    w = torch.as_tensor(np.transpose(kernel_tf, (nd + 1, nd) + tuple(range(nd))))
    np.testing.assert_array_equal(cv.tf_kernel_to_torch(kernel_tf), w.numpy())
    y = args(x, w)
    assert tuple(y.shape) == (2, 4) + out
    z = torch.as_tensor(R.standard_normal((2, 4) + out))
    fwd = _tf_conv(z, w, s, padding, d)
    assert fwd.shape == x.shape
    torch.testing.assert_close(torch.vdot(fwd.flatten(), x.flatten()),
                               torch.vdot(z.flatten(), y.flatten()))


@pytest.mark.parametrize("k, s, d, i, padding, out", [
    (k, s, d, i, padding, out)
    for k, s, d, i in itertools.product([1, 2, 3, 4, 5], [1, 2, 3], [1, 2], [1, 4])
    for padding in ["SAME", "VALID"] for out in _tf_output_shapes(i, k, s, d, padding)])
def test_from_tf_is_adjoint_of_tf_forward_conv(k, s, d, i, padding, out) -> None:
    _check_tf_adjoint((i,), (k,), (s,), (d,), padding, (out,))


@pytest.mark.parametrize("i, k, s, d, padding, out", [
    ((4, 3), (3, 2), (2, 1), (1, 1), "SAME", (7, 3)),           # output_shape below i*s
    ((3, 5), (3, 4), (2, 3), (1, 1), "SAME", (6, 13)),          # k=4 > s=3, out = i*s - 2
    ((3, 3), (3, 3), (2, 2), (2, 1), "SAME", (5, 6)),           # dilation 2 on one axis
    ((4, 2), (2, 3), (3, 2), (2, 2), "SAME", (12, 3)),          # dilation > stride
    ((3, 4), (3, 2), (2, 3), (1, 2), "VALID", (8, 14)),         # VALID, one above the least
    ((2, 3), (4, 3), (3, 1), (2, 2), "VALID", (12, 7)),         # dilated, largest output
])
def test_from_tf_2d_kernels_dilation_and_output_shape(i, k, s, d, padding, out) -> None:
    assert all(o in _tf_output_shapes(*a, padding) for o, a in zip(
        out, zip(i, k, s, d, strict=True), strict=True))
    _check_tf_adjoint(i, k, s, d, padding, out)


def test_tf_same_k3_s2_is_shifted_from_torch_padding1_op1() -> None:
    x, w = R.standard_normal((1, 1, 4)), R.standard_normal((1, 1, 3))
    args = cv.from_tf(4, 3, 2, "SAME")
    assert args.crop == ((0, 1),)                            # asymmetric: not expressible by p/op
    tf_out = args(x, w)
    pt_out = torch_conv_transpose(x, w, None, 2, 1, 1)
    assert tf_out.shape == pt_out.shape == (1, 1, 8)
    assert not np.allclose(tf_out, pt_out)
    np.testing.assert_allclose(tf_out[..., 1:], pt_out[..., :-1])   # one pixel apart


def test_from_tf_symmetric_cases_use_plain_padding() -> None:
    args = cv.from_tf(4, 4, 2, "SAME")
    assert args.crop is None and args.padding == (1,) and args.output_padding == (0,)
    args = cv.from_tf(4, 3, 2, "VALID", output_shape=10)
    assert args.crop is None and args.padding == (0,) and args.output_padding == (1,)


@pytest.mark.parametrize("padding, output_padding, expected", [
    ("same", None, 8), ("valid", None, 9), ("same", 1, 8), ("valid", 1, 10), ("same", 0, 7)])
def test_keras_output_length(padding, output_padding, expected) -> None:
    # Keras' rules for k=3, s=2, i=4 (keras.utils.conv_utils.deconv_output_length).
    assert cv.keras_output_length(4, 3, 2, padding, output_padding) == expected
    args = cv.from_keras(4, 3, 2, padding, output_padding)
    assert args.output_size((4,), (3,)) == (expected,)


def test_inconsistent_tf_output_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="output_shape 11 is inconsistent with input size 4"):
        cv.from_tf(4, 3, 2, "SAME", output_shape=11)
    with pytest.raises(ValueError, match="padding must be 'SAME' or 'VALID'"):
        cv.from_tf(4, 3, 2, "FULL")


def test_jax_kernel_spec_checked() -> None:
    with pytest.raises(ValueError, match="rhs_spec must name every axis"):
        cv.jax_kernel_to_torch(np.zeros((3, 3, 2, 2)), "HWI")


@pytest.mark.parametrize("fn, args, exc, fragments", [
    (cv.from_tf, ((4, 4), 3, 0, "SAME"), ValueError, ["strides", "positive", "0"]),
    (cv.from_tf, ((4, 4), 0, 2, "SAME"), ValueError, ["kernel_size", "positive", "0"]),
    (cv.from_tf, ((0, 4), 3, 2, "SAME"), ValueError, ["input_size", "positive", "(0, 4)"]),
    (cv.from_tf, ((4, 4), 3, 2, "SAME", (8, 0)), ValueError, ["output_shape", "(8, 0)"]),
    (cv.from_keras, ((4, 4), 3, 0, "same"), ValueError, ["strides", "positive", "0"]),
    (cv.from_keras, ((4, 4), 3, 2, "same", 2), ValueError,
     ["output_padding", "smaller than strides", "output_padding=2", "strides=2"]),
    (cv.keras_output_length, (4, 3, 2, "bogus"), ValueError, ["padding", "'bogus'"]),
    (cv.from_jax, (3, 0, "SAME"), ValueError, ["strides", "positive", "0"]),
    (cv.from_jax, (0, 2, "SAME"), ValueError, ["kernel_size", "positive", "0"]),
    (cv.from_jax, ((3, 3), (2, 2), [1, 1]), TypeError, ["(low, high) pair", "[1, 1]"]),
    (cv.jax_kernel_to_torch, (np.zeros((3, 3, 2, 4)), "HIIO"), ValueError,
     ["rhs_spec", "one 'I', one 'O'", "'HIIO'"]),
    (cv.tf_kernel_to_torch, (np.zeros((3, 3)),), ValueError, ["kernel", "3 dims", "(3, 3)"]),
], ids=["tf stride 0", "tf kernel 0", "tf input 0", "tf output 0", "keras stride 0",
        "keras output_padding", "keras padding", "jax stride 0", "jax kernel 0", "jax pairs",
        "jax spec", "tf kernel 2-D"])
def test_bad_arguments_are_named(fn, args, exc, fragments) -> None:
    """These used to divide by zero, fail inside zip/transpose, or return a meaningless
    TransposeArgs (a stride 0, a kernel 0, a crop of a 2-D array)."""
    with pytest.raises(exc) as info:
        fn(*args)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"


def test_keras_padding_is_case_insensitive_as_in_keras() -> None:
    same = cv.from_keras((5, 4), 3, 2, "same")
    assert cv.from_keras((5, 4), 3, 2, "SAME") == same
    assert cv.keras_output_length(4, 3, 2, "Same") == cv.keras_output_length(4, 3, 2, "same")
    x = torch.as_tensor(R.standard_normal((1, 2, 5, 4)))
    w = torch.as_tensor(R.standard_normal((2, 3, 3, 3)))
    # TF 'SAME' with stride 2 keeps the first full-output entries: a crop of (0, 1) per axis
    full = F.conv_transpose2d(x, w, stride=2)
    torch.testing.assert_close(same(x, w), full[..., :10, :8])


def test_transpose_args_check_the_bias_and_the_rank() -> None:
    args = cv.from_tf((4, 4), 3, 2, "SAME")                 # needs a crop: no torch padding
    x = torch.as_tensor(R.standard_normal((1, 2, 4, 4)))
    w = torch.as_tensor(R.standard_normal((2, 3, 3, 3)))
    b = torch.as_tensor(R.standard_normal(3))
    full = F.conv_transpose2d(x, w, b, stride=2)
    torch.testing.assert_close(args(x, w, b), full[..., :8, :8])
    with pytest.raises(ValueError, match=r"bias must have shape \(C_out,\) = \(3,\).*\(4,\)"):
        args(x, w, torch.zeros(4, dtype=torch.float64))     # used to fail inside the addition
    with pytest.raises(RuntimeError):
        F.conv_transpose2d(x, w, torch.zeros(4, dtype=torch.float64), stride=2)
    with pytest.raises(ValueError, match=r"2 spatial dimensions.*4 dims.*\(2, 3, 3\)"):
        args(x[..., 0], w[..., 0])
