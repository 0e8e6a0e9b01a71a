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

# (id, kwargs overriding the good call, expected exception, fragments tconv_lib's message must
# contain (the argument, the rule, the value), a regex PyTorch's message must match)
BAD = [
    ("zero stride", dict(stride=0), ValueError, ["stride", "positive", "0"],
     "non-positive stride"),
    ("negative stride", dict(stride=(1, -2)), ValueError, ["stride", "positive", "-2"],
     "non-positive stride"),
    ("zero dilation", dict(dilation=0), ValueError, ["dilation", "positive", "0"],
     "dilation should be greater than zero"),
    ("negative dilation", dict(dilation=-1), ValueError, ["dilation", "positive", "-1"],
     "dilation should be greater than zero"),
    ("negative padding", dict(padding=-1), ValueError, ["padding", "non-negative", "-1"],
     "negative padding"),
    ("negative output_padding", dict(output_padding=-1), ValueError,
     ["output_padding", "non-negative", "-1"], "negative output_padding"),
    ("output_padding >= stride", dict(stride=2, output_padding=2), ValueError,
     ["output_padding", "max(stride, dilation)", "(2, 2)"],
     "output padding must be smaller than either stride or dilation"),
    ("output_padding >= dilation > stride", dict(stride=1, dilation=2, output_padding=2),
     ValueError, ["output_padding", "max(stride, dilation)", "output_padding=(2, 2)",
                  "stride=(1, 1)", "dilation=(2, 2)"],
     "output padding must be smaller than either stride or dilation"),
    ("groups not dividing", dict(groups=3), ValueError, ["groups", "divid", "3"],
     "expected weight to be divisible by 3"),
    ("zero groups", dict(groups=0), ValueError, ["groups", "positive", "0"],
     "non-positive groups"),
    ("bool groups", dict(groups=True), TypeError, ["groups", "int", "True"],
     "'groups' must be int, not bool"),
    ("bool stride", dict(stride=True), TypeError, ["stride", "int", "True"],
     "'stride' must be tuple of ints, not bool"),
    ("float stride", dict(stride=2.0), TypeError, ["stride", "int", "2.0"],
     "'stride' must be tuple of ints, not float"),
    ("channel mismatch", dict(input=R.standard_normal((2, 5, 5, 5))), ValueError,
     ["channels", "5", "C_in", "4"], "to have 4 channels, but got 5 channels"),
    ("zero C_out/groups", dict(weight=R.standard_normal((4, 0, 3, 3)), bias=None), ValueError,
     ["weight.shape[1]", "C_out/groups", "at least 1", "(4, 0, 3, 3)"],
     "non-empty 2D or 4D weight tensor expected"),
    ("bias shape", dict(bias=R.standard_normal(4)), ValueError, ["bias", "(3,)", "(4,)"],
     "expected bias to be 1-dimensional with 3 elements"),
    ("bias not an array", dict(bias=[1.0, 2.0, 3.0]), TypeError,
     ["bias", "NumPy array or a torch tensor", "list"], "'bias' (.* )?must be Tensor, not list"),
    ("input not an array", dict(input=X.tolist()), TypeError,
     ["input", "NumPy array or a torch tensor", "list"], "'input' (.* )?must be Tensor, not list"),
    ("kernel dims differ", dict(weight=R.standard_normal((4, 3, 3))), ValueError,
     ["input", "dims", "weight.shape"], r"Expected 2D \(unbatched\) or 3D \(batched\) input"),
    ("weight without spatial dims", dict(weight=R.standard_normal((4, 3))), ValueError,
     ["weight", "at least 3 dims", "(4, 3)"], "weight should have at least three dimensions"),
    ("integer input", dict(input=np.ones((2, 4, 5, 5), dtype=np.int64)), TypeError,
     ["input", "floating", "int64"], "expected scalar type"),
    ("mismatched dtypes", dict(weight=W.astype(np.float32)), TypeError,
     ["dtype", "float64", "float32"], "expected scalar type Double but found Float"),
    ("empty output", dict(padding=4), ValueError, ["output size", "positive", "padding"],
     "Output size is too small"),
    ("too many dims", dict(input=R.standard_normal((1, 2, 4, 5, 5))), ValueError,
     ["input", "dims", "(1, 2, 4, 5, 5)"], r"Expected 3D \(unbatched\) or 4D \(batched\) input"),
    ("too few dims", dict(input=R.standard_normal((5, 5))), ValueError,
     ["input", "4 dims", "3 dims", "(5, 5)"], r"Expected 3D \(unbatched\) or 4D \(batched\)"),
    ("empty spatial input", dict(input=np.zeros((2, 4, 0, 5))), ValueError,
     ["empty", "(2, 4, 0, 5)"], "Only zero batch or zero channel inputs are supported"),
    ("dict stride", dict(stride={2: 1, 3: 1}), TypeError, ["stride", "tuple of 2 ints", "dict"],
     "'stride' must be tuple of ints, not dict"),
    ("set padding", dict(padding={1}), TypeError, ["padding", "tuple of 2 ints", "set {1}"],
     "'padding' must be tuple of ints, not set"),
    ("generator dilation", dict(dilation=iter((1, 2))), TypeError,
     ["dilation", "tuple of 2 ints", "tuple_iterator"], "'dilation' must be tuple of ints"),
    ("stride tuple of wrong length", dict(stride=(1, 2, 3)), ValueError,
     ["stride", "one per spatial dimension", "(1, 2, 3)"],
     "expected stride to be a single integer value or a list of 2 values"),
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


@pytest.mark.parametrize("kw, exc, fragments", [b[1:4] for b in BAD], ids=[b[0] for b in BAD])
def test_tconv_lib_refuses_with_clear_message(kw, exc, fragments) -> None:
    with pytest.raises(exc) as info:
        _call_tconv(kw)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"


@pytest.mark.parametrize("kw, torch_says", [(b[1], b[4]) for b in BAD], ids=[b[0] for b in BAD])
def test_pytorch_refuses_the_same(kw, torch_says) -> None:
    # NotImplementedError is a RuntimeError; the message shows it is the same rule, not a crash
    with pytest.raises((RuntimeError, ValueError, TypeError), match=torch_says):
        _call_torch(kw)


def test_refuses_before_computing(monkeypatch) -> None:
    from tconv_lib import methods

    called = []
    monkeypatch.setitem(methods.IMPLEMENTATIONS, "scatter", lambda *a: called.append(a))
    with pytest.raises(ValueError):
        tconv_lib.conv_transpose(X, W, stride=0, method="scatter")
    assert called == []


@pytest.mark.parametrize("odd", ["weight", "bias"])
def test_mixed_numpy_and_torch(odd: str) -> None:
    args = dict(input=torch.as_tensor(X), weight=torch.as_tensor(W), bias=torch.as_tensor(B))
    args[odd] = args[odd].numpy()
    with pytest.raises(TypeError) as info:
        tconv_lib.conv_transpose(**args)
    for fragment in (f"{odd} is a NumPy array", "input is a torch tensor", "one kind"):
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"
    with pytest.raises(TypeError, match=f"'{odd}' .*must be Tensor, not numpy.ndarray"):
        F.conv_transpose2d(**args)                 # PyTorch refuses a NumPy array too


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.bool])
def test_torch_integer_dtypes_refused(dtype) -> None:
    x, w = torch.as_tensor(X).to(dtype), torch.as_tensor(W).to(dtype)
    with pytest.raises(TypeError) as info:
        tconv_lib.conv_transpose(x, w)
    name = str(dtype).removeprefix("torch.")
    for fragment in ("input", "floating dtype", f"input.dtype={name}"):
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"
    if dtype == torch.int64:
        # A deliberate difference: PyTorch's CPU kernel computes int64 (wrapping on overflow);
        # tconv_lib computes in floating point only and says so.
        assert F.conv_transpose2d(x, w).dtype == torch.int64
    else:
        with pytest.raises(RuntimeError, match="not implemented for"):
            F.conv_transpose2d(x, w)


def test_bias_of_another_dtype_refused() -> None:
    # PyTorch's CPU kernel quietly casts such a bias; tconv_lib asks for one dtype throughout.
    b32 = B.astype(np.float32)
    with pytest.raises(TypeError) as info:
        tconv_lib.conv_transpose(X, W, b32)
    for fragment in ("one dtype", "input.dtype=float64", "bias.dtype=float32"):
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"
    with pytest.raises(TypeError, match="bias.dtype=int64"):
        tconv_lib.conv_transpose(X, W, np.ones(3, dtype=np.int64))
    assert _call_torch(dict(bias=b32)).dtype == torch.float64


@pytest.mark.parametrize("kw", [
    dict(stride=np.int64(2)), dict(stride=(np.int32(2), 1), padding=np.int64(1)),
    dict(groups=np.int64(1)), dict(output_padding=torch.tensor(1), stride=2),
    dict(dilation=[np.int64(2), 1]), dict(padding=(np.uint8(1), torch.tensor(0)))],
    ids=str)
def test_integer_like_arguments_accepted_like_pytorch(kw) -> None:
    """NumPy integer scalars and 0-d integer tensors are ints to PyTorch (``__index__``)."""
    np.testing.assert_allclose(_call_tconv(kw), _call_torch(kw).numpy(), rtol=1e-12,
                               atol=1e-12)
    from tconv_lib._args import check_transpose

    geo = check_transpose(X, W, B, **(dict(stride=1, padding=0, output_padding=0, groups=1,
                                           dilation=1) | kw))[1]
    for value in (*geo.stride, *geo.padding, *geo.output_padding, *geo.dilation, geo.groups):
        assert type(value) is int


def test_unknown_method() -> None:
    with pytest.raises(ValueError, match="method must be 'auto' or one of .*'fft'"):
        tconv_lib.conv_transpose(X, W, method="fft")
    for method in (None, ["col2im"]):           # a list used to raise "unhashable type"
        with pytest.raises(TypeError, match=r"method must be a str.*col2im.*got method="):
            tconv_lib.conv_transpose(X, W, method=method)


def test_forward_conv_errors() -> None:
    with pytest.raises(ValueError, match="input has 3 channels but weight expects C_in"):
        tconv_lib.conv(R.standard_normal((1, 3, 8)), R.standard_normal((2, 2, 3)))
    with pytest.raises(ValueError, match="output size must be positive"):
        tconv_lib.conv(R.standard_normal((1, 2, 2)), R.standard_normal((2, 2, 3)))
    x, w0 = R.standard_normal((1, 2, 8)), R.standard_normal((0, 2, 3))
    with pytest.raises(ValueError, match=r"weight.shape\[0\] \(C_out\).*at least 1.*\(0, 2, 3\)"):
        tconv_lib.conv(x, w0)
    with pytest.raises(RuntimeError, match="expected weight to be at least 1 at dimension 0"):
        F.conv1d(torch.as_tensor(x), torch.as_tensor(w0))
    with pytest.raises(ValueError, match=r"at least 3 dims \(C_out, C_in/groups, \*kernel\).*"
                                         r"weight.shape=\(2, 2\)"):
        tconv_lib.conv(x, R.standard_normal((2, 2)))


# conv_matrix runs conv's rules on one sample of ``input_size``:
# (id, kwargs overriding the good call, exception, message fragments, PyTorch refuses it too)
W_CONV = R.standard_normal((4, 3, 3, 3))            # (C_out, C_in/groups, kh, kw)
MATRIX_BAD = [
    ("groups not dividing C_out", dict(groups=3), ValueError,
     ["groups", "divid", "weight.shape[0]=4", "groups=3"], True),
    ("zero groups", dict(groups=0), ValueError, ["groups", "positive", "0"], True),
    ("integer weight", dict(weight=np.ones((4, 3, 3, 3), dtype=np.int64)), TypeError,
     ["weight", "floating", "int64"], False),
    ("weight not an array", dict(weight=W_CONV.tolist()), TypeError,
     ["weight", "NumPy array or a torch tensor", "list"], False),
    ("weight without spatial dims", dict(weight=R.standard_normal((4, 3))), ValueError,
     ["weight", "at least 3 dims", "(4, 3)"], False),
    ("zero stride", dict(stride=0), ValueError, ["stride", "positive", "0"], True),
    ("negative padding", dict(padding=(0, -1)), ValueError,
     ["padding", "non-negative", "-1"], True),
    ("zero dilation", dict(dilation=0), ValueError, ["dilation", "positive", "0"], True),
    ("float stride", dict(stride=1.5), TypeError, ["stride", "int", "1.5"], True),
    ("input_size of wrong length", dict(input_size=(5, 5, 5)), ValueError,
     ["input_size", "one per spatial dimension", "(5, 5, 5)"], False),
    ("empty input_size", dict(input_size=(0, 5)), ValueError,
     ["input_size", "positive", "(0, 5)"], True),
    ("output too small", dict(input_size=(2, 5)), ValueError,
     ["output size must be positive", "(2, 5)", "kernel=(3, 3)"], True),
    ("output_size too large", dict(output_size=(4, 3)), ValueError,
     ["output_size", "between 1 and", "(3, 3)", "(4, 3)"], False),
]


@pytest.mark.parametrize("kw, exc, fragments, torch_too", [b[1:] for b in MATRIX_BAD],
                         ids=[b[0] for b in MATRIX_BAD])
def test_conv_matrix_refuses_with_clear_message(kw, exc, fragments, torch_too) -> None:
    args = dict(weight=W_CONV, input_size=(5, 5), stride=1, padding=0, dilation=1,
                groups=1) | kw
    with pytest.raises(exc) as info:
        tconv_lib.conv_matrix(**args)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"
    if torch_too:                       # the same convolution in PyTorch is refused as well
        groups = args["groups"]
        size = args["input_size"]
        x = torch.zeros((1, 3 * max(groups, 1)) + tuple(size), dtype=torch.float64)
        with pytest.raises((RuntimeError, ValueError, TypeError)):
            F.conv2d(x, torch.as_tensor(args["weight"]), None, args["stride"], args["padding"],
                     args["dilation"], groups)


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


def test_the_quick_check_accepts_only_what_the_full_checks_accept() -> None:
    """backend.plainly_compatible is a shortcut: it may say no to a good call (the full checks
    then run), never yes to a bad one."""
    import itertools

    import numpy as np
    import torch

    from tconv_lib import backend

    def full_ok(*arrays) -> bool:
        named = dict(zip(("input", "weight", "bias"), arrays, strict=True))
        try:
            backend.check_same_kind(**named)
            backend.check_float_dtypes(**named)
        except TypeError:
            return False
        return True

    class SubTensor(torch.Tensor):
        pass

    pool = [np.zeros(2, np.float32), np.zeros(2, np.float64), np.zeros(2, np.int64),
            np.zeros(2, ">f4"),
            torch.zeros(2), torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.int32),
            torch.zeros(2, dtype=torch.bfloat16), torch.zeros(2).as_subclass(SubTensor),
            torch.zeros(2, dtype=torch.complex64), [0.0, 1.0], None]
    quick_yes = 0
    for a, b, c in itertools.product(pool, repeat=3):
        if a is None or b is None:
            continue
        if backend.plainly_compatible(a, b, c):
            quick_yes += 1
            assert full_ok(a, b, c), (type(a), type(b), type(c))
    assert quick_yes >= 8      # and it does take the plain cases
    assert backend.plainly_compatible(torch.zeros(1), torch.zeros(1), None)
    assert backend.plainly_compatible(np.zeros(1), np.zeros(1), np.zeros(1))


def test_padding_strings_are_refused_with_the_int_to_use() -> None:
    """F.conv2d takes padding='same'; tconv_lib.conv does not, and says which int is 'same'
    (it used to say the string 'same' was a tuple of the wrong length)."""
    x, w = R.standard_normal((1, 4, 7, 6)), R.standard_normal((3, 4, 3, 5))
    with pytest.raises(TypeError) as info:
        tconv_lib.conv(x, w, padding="same", dilation=2)
    for fragment in ("padding", "the string 'same'", "dilation*(kernel_size-1)//2"):
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"
    same = F.conv2d(torch.as_tensor(x), torch.as_tensor(w), padding="same", dilation=2)
    np.testing.assert_allclose(tconv_lib.conv(x, w, padding=(2, 4), dilation=2), same.numpy(),
                               rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match="the string 'valid'"):
        tconv_lib.conv_transpose(X, W, padding="valid")
