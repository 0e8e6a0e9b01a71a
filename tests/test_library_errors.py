"""Bad input: tconv_lib refuses it before computing, naming the argument, the rule and the value.

For every kind of bad input that PyTorch refuses, both must refuse it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tconv_lib

R = np.random.default_rng(0)
X = R.standard_normal((2, 4, 5, 5))
W = R.standard_normal((4, 3, 3, 3))
B = R.standard_normal(3)

# (id, kwargs overriding the good call, expected exception, fragments the message must contain)
BAD = [
    ("zero stride", dict(stride=0), ValueError, ["stride", "positive", "0"]),
    ("negative stride", dict(stride=(1, -2)), ValueError, ["stride", "positive", "-2"]),
    ("zero dilation", dict(dilation=0), ValueError, ["dilation", "positive", "0"]),
    ("negative padding", dict(padding=-1), ValueError, ["padding", "non-negative", "-1"]),
    ("negative output_padding", dict(output_padding=-1), ValueError,
     ["output_padding", "non-negative", "-1"]),
    ("output_padding >= stride", dict(stride=2, output_padding=2), ValueError,
     ["output_padding", "max(stride, dilation)", "(2, 2)"]),
    ("groups not dividing", dict(groups=3), ValueError, ["groups", "divid", "3"]),
    ("zero groups", dict(groups=0), ValueError, ["groups", "positive", "0"]),
    ("channel mismatch", dict(input=R.standard_normal((2, 5, 5, 5))), ValueError,
     ["channels", "5", "C_in", "4"]),
    ("bias shape", dict(bias=R.standard_normal(4)), ValueError, ["bias", "(3,)", "(4,)"]),
    ("kernel dims differ", dict(weight=R.standard_normal((4, 3, 3))), ValueError,
     ["input", "dims", "weight.shape"]),
    ("integer input", dict(input=np.ones((2, 4, 5, 5), dtype=np.int64)), TypeError,
     ["input", "floating", "int64"]),
    ("mismatched dtypes", dict(weight=W.astype(np.float32)), TypeError,
     ["dtype", "float64", "float32"]),
    ("empty output", dict(padding=4), ValueError, ["output size", "positive", "padding"]),
    ("too many dims", dict(input=R.standard_normal((1, 2, 4, 5, 5))), ValueError,
     ["input", "dims", "(1, 2, 4, 5, 5)"]),
    ("empty spatial input", dict(input=np.zeros((2, 4, 0, 5))), ValueError,
     ["empty", "(2, 4, 0, 5)"]),
    ("stride tuple of wrong length", dict(stride=(1, 2, 3)), ValueError,
     ["stride", "one per spatial dimension", "(1, 2, 3)"]),
]


def _call_tconv(kw):
    args = dict(input=X, weight=W, bias=B, stride=1, padding=0, output_padding=0, groups=1,
                dilation=1) | kw
    return tconv_lib.conv_transpose(**args)


def _call_torch(kw):
    args = dict(input=X, weight=W, bias=B, stride=1, padding=0, output_padding=0, groups=1,
                dilation=1) | kw
    t = {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in args.items()}
    fn = {3: F.conv_transpose1d, 4: F.conv_transpose2d, 5: F.conv_transpose3d}.get(
        t["weight"].ndim, F.conv_transpose2d)
    return fn(**t)


@pytest.mark.parametrize("kw, exc, fragments", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_tconv_lib_refuses_with_clear_message(kw, exc, fragments) -> None:
    with pytest.raises(exc) as info:
        _call_tconv(kw)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"


@pytest.mark.parametrize("kw", [b[1] for b in BAD], ids=[b[0] for b in BAD])
def test_pytorch_refuses_the_same(kw) -> None:
    with pytest.raises((RuntimeError, ValueError, TypeError, IndexError)):
        _call_torch(kw)


def test_refuses_before_computing(monkeypatch) -> None:
    from tconv_lib import methods

    called = []
    monkeypatch.setitem(methods.IMPLEMENTATIONS, "scatter", lambda *a: called.append(a))
    with pytest.raises(ValueError):
        tconv_lib.conv_transpose(X, W, stride=0, method="scatter")
    assert called == []


def test_mixed_numpy_and_torch() -> None:
    with pytest.raises(TypeError, match="NumPy array.*torch tensor|torch tensor.*NumPy array"):
        tconv_lib.conv_transpose(X, torch.as_tensor(W))
    with pytest.raises(TypeError):
        F.conv_transpose2d(torch.as_tensor(X), W)  # PyTorch refuses a NumPy weight too


def test_unknown_method() -> None:
    with pytest.raises(ValueError, match="method must be 'auto' or one of .*'fft'"):
        tconv_lib.conv_transpose(X, W, method="fft")


def test_forward_conv_errors() -> None:
    with pytest.raises(ValueError, match="input has 3 channels but weight expects C_in"):
        tconv_lib.conv(R.standard_normal((1, 3, 8)), R.standard_normal((2, 2, 3)))
    with pytest.raises(ValueError, match="output size must be positive"):
        tconv_lib.conv(R.standard_normal((1, 2, 2)), R.standard_normal((2, 2, 3)))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mixed_devices() -> None:
    x = torch.as_tensor(X, device="cuda")
    with pytest.raises(TypeError, match="cuda.*cpu|cpu.*cuda"):
        tconv_lib.conv_transpose(x, torch.as_tensor(W))
    with pytest.raises(RuntimeError):
        F.conv_transpose2d(x, torch.as_tensor(W))


def test_empty_batch_is_allowed_like_pytorch() -> None:
    x = np.zeros((0, 4, 5, 5))
    y = tconv_lib.conv_transpose(x, W, B, stride=2)
    assert y.shape == tuple(_call_torch(dict(input=x, stride=2)).shape) == (0, 3, 11, 11)


def test_the_validation_cache_never_lets_a_bad_argument_through():
    """Checks are memoised on shapes and arguments; a good call must not vouch for a bad one
    that compares equal to it (``True == 1``, ``2.0 == 2``)."""
    good = tconv_lib.conv_transpose(X, W, B, stride=2, groups=1)
    np.testing.assert_array_equal(tconv_lib.conv_transpose(X, W, B, stride=[2, 2]), good)
    with pytest.raises(TypeError, match="stride"):
        tconv_lib.conv_transpose(X, W, B, stride=2.0, groups=1)
    with pytest.raises(TypeError, match="groups"):
        tconv_lib.conv_transpose(X, W, B, stride=2, groups=True)
    with pytest.raises((TypeError, ValueError), match="stride"):
        tconv_lib.conv_transpose(X, W, B, stride=(2, 2.0), groups=1)
    with pytest.raises(ValueError, match="bias"):  # same input and weight, other bias shape
        tconv_lib.conv_transpose(X, W, R.standard_normal(4), stride=2)
    tconv_lib.conv(X, np.ones((3, 4, 3, 3)), None, 1, 1)
    with pytest.raises(TypeError, match="padding"):
        tconv_lib.conv(X, np.ones((3, 4, 3, 3)), None, 1, 1.0)
