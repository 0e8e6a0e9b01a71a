"""Edge cases a PyTorch user meets when trying tconv_lib as a drop-in for
``F.conv_transpose*d`` / ``nn.ConvTranspose*d``, with PyTorch in float64 as the oracle: byte
orders, empty inputs as the caller passed them, and ``torch.jit.trace``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tconv_lib
from tconv_lib import nn as tnn

R = np.random.default_rng(0)
X = R.standard_normal((2, 4, 5, 5))
W = R.standard_normal((4, 3, 3, 3))


@pytest.mark.parametrize("swapped", ["input", "weight", "bias"])
def test_byte_swapped_numpy_arrays_are_named_with_the_fix(swapped: str) -> None:
    """A float64 array in the other byte order (read from a file, say) is float64 by name:
    the message says the byte order is the problem and how to convert it, as
    ``torch.from_numpy`` refuses it too (it said 'must have a floating dtype (float32,
    float64), got input.dtype=>f8')."""
    arrays = {"input": X, "weight": W, "bias": np.zeros(3)}
    arrays[swapped] = arrays[swapped].astype(arrays[swapped].dtype.newbyteorder())
    for fn in (tconv_lib.conv_transpose, tconv_lib.conv):
        with pytest.raises(TypeError) as err:
            fn(arrays["input"], arrays["weight"], arrays["bias"])
        message = str(err.value)
        for fragment in (swapped, "byte order", "float64", "newbyteorder('=')"):
            assert fragment in message, (fragment, message)
    with pytest.raises(ValueError, match="byte order"):
        torch.from_numpy(arrays[swapped])
    fixed = {k: v.astype(v.dtype.newbyteorder("=")) for k, v in arrays.items()}
    y = tconv_lib.conv_transpose(fixed["input"], fixed["weight"], fixed["bias"], stride=2)
    ref = F.conv_transpose2d(*(torch.from_numpy(fixed[k]) for k in ("input", "weight", "bias")),
                             stride=2)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-12, atol=1e-12)


def test_other_dtypes_in_the_other_byte_order_still_name_the_dtype() -> None:
    with pytest.raises(TypeError, match=r"floating dtype .*got input.dtype=>i8"):
        tconv_lib.conv_transpose(X.astype(">i8"), W)


@pytest.mark.parametrize("fn, shape, weight", [
    (tconv_lib.conv_transpose, (0, 4, 4), np.ones((0, 2, 3, 3))),
    (tconv_lib.conv_transpose, (4, 0, 5), W),
    (tconv_lib.conv, (3, 0, 4), np.ones((2, 3, 1, 1)))])
def test_an_empty_unbatched_input_is_named_by_its_own_shape(fn, shape, weight) -> None:
    """An empty unbatched input is reported with the shape the caller passed, (0, 4, 4), not
    the batched (1, 0, 4, 4) the checks see."""
    with pytest.raises(ValueError) as err:
        fn(np.ones(shape), weight)
    assert f"input.shape={shape}" in str(err.value), str(err.value)


def test_an_empty_spatial_axis_is_refused_even_in_an_empty_batch() -> None:
    """PyTorch's support for a zero spatial size in an empty batch is partial (it answers
    some geometries and fails inside others with a reshape error); tconv_lib refuses all,
    saying that only the batch may be empty."""
    with pytest.raises(ValueError) as err:
        tconv_lib.conv_transpose(np.ones((0, 4, 0, 5)), W, stride=2, padding=1)
    for fragment in ("input.shape=(0, 4, 0, 5)", "spatial size", "only the batch may be empty"):
        assert fragment in str(err.value), (fragment, str(err.value))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_modules_trace_with_torch_jit_like_pytorch(dims: int) -> None:
    """``torch.jit.trace`` of a module (channels-last input where there is one) gives
    PyTorch's values on a batch of another size, forward and backward (the memory-format
    check crashed under tracing: 'AssertionError: Expected bool, got Tensor')."""
    torch.manual_seed(0)
    kw = dict(stride=2, padding=1, output_padding=1, groups=2)
    cls = {1: torch.nn.ConvTranspose1d, 2: torch.nn.ConvTranspose2d,
           3: torch.nn.ConvTranspose3d}[dims]
    ref = cls(4, 6, 3, **kw).double()
    mod = getattr(tnn, cls.__name__)(4, 6, 3, **kw).double()
    mod.load_state_dict(ref.state_dict())
    layout = {2: torch.channels_last, 3: torch.channels_last_3d}.get(dims,
                                                                      torch.contiguous_format)
    x = torch.randn((2, 4) + (4,) * dims, dtype=torch.float64).contiguous(memory_format=layout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # TracerWarnings for the Python shape checks
        traced = torch.jit.trace(mod, x)
    x3 = torch.randn((3, 4) + (4,) * dims, dtype=torch.float64,
                     requires_grad=True)
    y = traced(x3)
    ref_x3 = x3.detach().clone().requires_grad_()
    y_ref = ref(ref_x3)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y_ref)
    torch.testing.assert_close(torch.autograd.grad(y, x3, g)[0],
                               torch.autograd.grad(y_ref, ref_x3, g)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_a_trace_after_a_torch_func_transform_gives_pytorchs_values(dims: int) -> None:
    """The small route's gather matrix (``tconv_lib._small``, kept between calls) is made
    outside any ``torch.func`` transform: made inside one it was the transform's wrapper,
    which dies with it, and a later ``torch.jit.trace`` failed sizing it ('Unsupported value
    kind: Tensor'), so a trace's outcome hung on which tests had run before it."""
    torch.manual_seed(1)
    cls = {1: torch.nn.ConvTranspose1d, 2: torch.nn.ConvTranspose2d,
           3: torch.nn.ConvTranspose3d}[dims]
    ref = cls(2, 2, 3, stride=2, padding=1).double()
    mod = getattr(tnn, cls.__name__)(2, 2, 3, stride=2, padding=1).double()
    mod.load_state_dict(ref.state_dict())
    x = torch.randn((1, 2) + (3,) * dims, dtype=torch.float64)
    gx = torch.func.grad(lambda v: mod(v).square().sum())(x)
    ref_x = x.clone().requires_grad_()
    torch.testing.assert_close(gx, torch.autograd.grad(ref(ref_x).square().sum(), ref_x)[0])
    x4 = torch.randn((1, 2) + (4,) * dims, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # TracerWarnings for the Python shape checks
        traced = torch.jit.trace(mod, x4)
    x2 = torch.randn((2, 2) + (4,) * dims, dtype=torch.float64)
    torch.testing.assert_close(traced(x2), ref(x2), rtol=1e-12, atol=1e-12)


JIT_WARNING = "ignore:`torch.jit.script` is deprecated:DeprecationWarning"   # torch's own,
# on first use of forward-mode AD (torch/_decomp/decompositions_for_jvp.py), F.conv_* alike


@pytest.mark.filterwarnings(JIT_WARNING)
@pytest.mark.parametrize("method", ["auto", "scatter", "phase"])
@pytest.mark.parametrize("transform", ["grad", "vmap input", "vmap unbatched", "vmap weight",
                                       "per-sample grads", "jvp", "jacrev", "jacfwd",
                                       "hessian", "forward_ad"])
def test_the_function_takes_torch_func_transforms_like_pytorch(transform: str,
                                                                method: str) -> None:
    """``tconv_lib.conv_transpose`` itself (not only the modules) under torch.func and
    forward-mode AD, as ``F.conv_transpose1d`` (vmap and jvp failed inside the methods: 'vmap:
    inplace arithmetic ... is not possible', 'Trying to use forward AD with mm_out that does
    not support it because it is an out= function')."""
    from torch.func import grad, hessian, jacfwd, jacrev, jvp, vmap

    gen = torch.Generator().manual_seed(5)
    x, w, b = (torch.randn(s, dtype=torch.float64, generator=gen)
               for s in ((3, 4, 5), (4, 3, 3), (6,)))

    def run(f):
        def loss(xx, ww, bb):
            return f(xx, ww, bb).pow(2).sum()

        if transform == "grad":
            return grad(loss, argnums=(0, 1, 2))(x, w, b)
        if transform == "vmap input":
            return vmap(f, in_dims=(1, None, None))(x[:, None].expand(-1, 2, -1, -1), w, b)
        if transform == "vmap unbatched":
            return vmap(f, in_dims=(0, None, None))(x, w, b)
        if transform == "vmap weight":
            return vmap(f, in_dims=(None, 0, 0))(x, torch.stack([w, -w]), torch.stack([b, b]))
        if transform == "per-sample grads":
            return vmap(grad(loss, argnums=1), in_dims=(0, None, None))(x[:, None], w, b)
        if transform == "jvp":
            return jvp(f, (x, w, b), (torch.ones_like(x), w, torch.ones_like(b)))
        if transform == "jacrev":
            return jacrev(f, argnums=(0, 1))(x[:1, :, :2], w, b)
        if transform == "jacfwd":
            return jacfwd(f, argnums=(0, 1))(x[:1, :, :2], w, b)
        if transform == "hessian":
            return hessian(loss)(x[:1, :, :2], w, b)
        import torch.autograd.forward_ad as fwAD
        with fwAD.dual_level():
            return fwAD.unpack_dual(f(fwAD.make_dual(x, torch.ones_like(x)), w, b)).tangent

    def ours(xx, ww, bb):
        return tconv_lib.conv_transpose(xx, ww, bb, 2, 1, 1, 2, method=method)

    def theirs(xx, ww, bb):
        return F.conv_transpose1d(xx, ww, bb, 2, 1, 1, 2)

    torch.testing.assert_close(run(ours), run(theirs))


@pytest.mark.parametrize("gpu_routes", [False, True], ids=["cpu routes", "gpu routes"])
@pytest.mark.parametrize("dims, mult, stride", [(1, 1, 2), (2, 1, 2), (2, 2, 1), (3, 1, 2)])
def test_depthwise_calls_that_record_gradients_match_pytorch(dims: int, mult: int, stride: int,
                                                             gpu_routes: bool,
                                                             monkeypatch) -> None:
    """One input channel per group (groups == C_in) on tensors that require gradients: the
    outer-product route (on a GPU the default ``taps`` route, run here on CPU tensors by
    pretending the CPU is a GPU) wrote its products with ``out=``, which autograd refuses
    ('mul(): functions with out=... arguments don't support automatic differentiation'). Two
    calls before one backward, as a model makes them, so no reused buffer may hold what the
    backward reads."""
    if gpu_routes:
        from tconv_lib import backend

        monkeypatch.setattr(backend, "on_gpu", backend.is_torch)
    gen = torch.Generator().manual_seed(dims)
    x1, x2 = (torch.randn((2, 4) + (5,) * dims, dtype=torch.float64, generator=gen,
                          requires_grad=True) for _ in range(2))
    w = torch.randn((4, mult) + (3,) * dims, dtype=torch.float64, generator=gen,
                    requires_grad=True)
    b = torch.randn(4 * mult, dtype=torch.float64, generator=gen, requires_grad=True)
    reference = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[dims]
    kw = dict(stride=stride, padding=1, groups=4)

    def loss(f):
        return f(x1, w, b, **kw).pow(2).sum() + f(x2, w, b, **kw).pow(3).sum()

    ours = torch.autograd.grad(loss(tconv_lib.conv_transpose), (x1, x2, w, b))
    theirs = torch.autograd.grad(loss(reference), (x1, x2, w, b))
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


def test_conv_transpose_autograd_names_numpy_arrays() -> None:
    """NumPy arrays given to the autograd function are refused with the function to use (it
    failed in autograd's machinery: 'AssertionError: save_for_forward expects all arguments
    to be tensors'); PyTorch's F.conv_transpose2d refuses them with a TypeError too."""
    with pytest.raises(TypeError) as err:
        tnn.conv_transpose_autograd(X, W, stride=2)
    for fragment in ("torch tensors", "tconv_lib.conv_transpose", "numpy.ndarray"):
        assert fragment in str(err.value), (fragment, str(err.value))
    with pytest.raises(TypeError, match="must be Tensor"):
        F.conv_transpose2d(X, W, stride=2)


@pytest.mark.parametrize("method", tconv_lib.METHODS)
def test_output_padding_beyond_the_full_output_holds_the_bias_alone(method: str) -> None:
    """What the docstring says of ``output_padding`` (it said the added positions 'hold
    computed values (and bias), not zeros', which holds only for the first ``padding``)."""
    x, w, b = np.ones((1, 1, 2)), np.ones((1, 1, 3)), np.array([0.5])
    for padding, expected in ((0, [1.5, 1.5, 2.5, 1.5, 1.5, 0.5]), (1, [1.5, 2.5, 1.5, 1.5])):
        y = tconv_lib.conv_transpose(x, w, b, stride=2, padding=padding, output_padding=1,
                                     method=method)
        ref = F.conv_transpose1d(*map(torch.from_numpy, (x, w, b)), stride=2, padding=padding,
                                 output_padding=1)
        np.testing.assert_allclose(y[0, 0], expected)
        np.testing.assert_allclose(y, ref.numpy())
    doc = " ".join(tconv_lib.conv_transpose.__doc__.split())
    assert "not zeros" not in doc
    assert "any beyond the full output hold the bias alone" in doc


@pytest.mark.parametrize("layout", ["sparse_coo", "mkldnn"])
@pytest.mark.parametrize("which", ["input", "weight"])
def test_tensors_that_are_not_dense_are_named(layout: str, which: str) -> None:
    """A sparse or MKL-DNN tensor is refused with its layout and the conversion (it failed
    deep inside a method: "Could not run 'aten::as_strided' with arguments from the
    'SparseCPU' backend", "reshape is not implemented for sparse tensors")."""
    arrays = {"input": torch.from_numpy(X).float(), "weight": torch.from_numpy(W).float()}
    arrays[which] = (arrays[which].to_sparse() if layout == "sparse_coo"
                     else arrays[which].to_mkldnn())
    for fn in (tconv_lib.conv_transpose, tconv_lib.conv):
        with pytest.raises(TypeError) as err:
            fn(arrays["input"], arrays["weight"])
        for fragment in (f"{which} must be a dense (strided) torch tensor",
                         f"{which}.layout=torch.", f"{which}.to_dense()"):
            assert fragment in str(err.value), (fragment, str(err.value))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_leaves_float64_modules_alone_like_pytorch(dtype: torch.dtype) -> None:
    """torch.autocast casts float32 (and half) arguments of F.conv_transpose*d, never float64
    ones: a float64 module inside an autocast region stays float64 (tconv_lib's module cast
    it to the autocast dtype, a silent loss of precision PyTorch does not make)."""
    torch.manual_seed(0)
    theirs = torch.nn.ConvTranspose2d(2, 3, 3, stride=2).double()
    ours = tnn.ConvTranspose2d(2, 3, 3, stride=2).double()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    with torch.autocast("cpu", dtype=dtype):
        y_theirs, y_ours = theirs(x), ours(x)
        y_fn = tnn.conv_transpose_autograd(x, ours.weight, ours.bias, stride=2)
    assert y_theirs.dtype == y_ours.dtype == y_fn.dtype == torch.float64
    torch.testing.assert_close(y_ours, y_theirs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y_fn, y_theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ("auto",) + tconv_lib.METHODS)
def test_the_functions_follow_autocast_like_pytorch(method: str) -> None:
    """Under torch.autocast, F.conv_transpose2d and F.conv2d cast float32 arguments to the
    autocast dtype and return it. tconv_lib's functions do the same for every method (the
    result depended on the method: float32 at full precision for auto, float32 holding
    bfloat16-rounded values for scatter and phase, bfloat16 for zero_insert and matrix; a
    bfloat16 activation with float32 weights was refused)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 5, 5, generator=gen)
    w = torch.randn(8, 4, 3, 3, generator=gen) / 6
    b = torch.randn(4, generator=gen)
    exact = F.conv_transpose2d(x.double(), w.double(), b.double(), stride=2)
    exact_conv = F.conv2d(x.double(), w.double().transpose(0, 1), b.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for xx in (x, x.bfloat16()):
            y = tconv_lib.conv_transpose(xx, w, b, stride=2, method=method)
            assert y.dtype == F.conv_transpose2d(xx, w, b, stride=2).dtype == torch.bfloat16
            torch.testing.assert_close(y.double(), exact, rtol=0.05, atol=0.1)
        w_conv = w.transpose(0, 1).contiguous()
        y = tconv_lib.conv(x, w_conv, b)
        assert y.dtype == F.conv2d(x, w_conv, b).dtype == torch.bfloat16
        torch.testing.assert_close(y.double(), exact_conv, rtol=0.05, atol=0.1)


def test_shape_helpers_name_an_int_given_for_a_tuple() -> None:
    """shapes.conv_transpose_output_shape/conv_output_shape take one entry per axis for every
    argument; an int is named (it failed with "object of type 'int' has no len()")."""
    from tconv_lib import shapes

    with pytest.raises(TypeError, match=r"kernel must have one entry per spatial axis .*"
                                        r"got kernel=3"):
        shapes.conv_transpose_output_shape((5, 5), 3, (2, 2), (1, 1), (1, 1), (1, 1))
    with pytest.raises(TypeError, match=r"stride must have one entry per spatial axis"):
        shapes.conv_output_shape((5, 5), (3, 3), 2, (1, 1), (1, 1))
    assert shapes.conv_transpose_output_shape(np.array([5, 5]), torch.Size([3, 3]), [2, 2],
                                              (1, 1), (1, 1), (1, 1)) == (10, 10)


# Half precision on the CPU: PyTorch's oneDNN kernel sums in float32 and rounds once. tconv_lib
# rounded each GEMM block's partial sum (bfloat16: up to 2.5x PyTorch's error), and ran float16
# GEMMs, which are about 20x slower than float32 ones on the CPU.
HALF_GEOMETRIES = [
    # (input shape, weight shape, keyword arguments): every output takes several taps
    ((2, 16, 6, 6), (16, 8, 4, 4), {"stride": 2, "padding": 1}),
    ((2, 16, 9), (16, 4, 5), {"stride": 3, "padding": 1}),
    ((2, 16, 5, 5), (16, 8, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
    ((2, 16, 6, 6), (16, 1, 4, 4), {"stride": 2, "padding": 1, "groups": 16}),
    ((2, 8, 5, 5), (8, 4, 3, 3), {"stride": 2, "padding": 2, "dilation": 2}),
    ((1, 4, 3, 3, 3), (4, 2, 3, 3, 3), {"stride": 2}),
]


def _half_problem(x_shape: tuple, w_shape: tuple, dtype: torch.dtype, seed: int = 0) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(x_shape, generator=gen).to(dtype)
    w = (torch.randn(w_shape, generator=gen) / w_shape[0] ** 0.5).to(dtype)
    b = torch.randn(w_shape[1], generator=gen).to(dtype)
    return x, w, b


@pytest.mark.parametrize("method", ("auto",) + tconv_lib.METHODS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("case", range(len(HALF_GEOMETRIES)))
def test_half_precision_on_the_cpu_is_rounded_once(case: int, dtype: torch.dtype,
                                                   method: str) -> None:
    """A bfloat16 or float16 transposed convolution on the CPU is the float32 one rounded once,
    bias included, for every method, and so no further from PyTorch float64 than PyTorch's own
    half-precision call."""
    x_shape, w_shape, kw = HALF_GEOMETRIES[case]
    x, w, b = _half_problem(x_shape, w_shape, dtype)
    if kw.get("groups", 1) > 1:
        b = b[:1].expand(w_shape[1] * kw["groups"]).contiguous()
    fn = {3: F.conv_transpose1d, 4: F.conv_transpose2d, 5: F.conv_transpose3d}[len(x_shape)]
    y = tconv_lib.conv_transpose(x, w, b, method=method, **kw)
    assert y.dtype == dtype
    wide = tconv_lib.conv_transpose(x.float(), w.float(), b.float(), method=method, **kw)
    assert torch.equal(y, wide.to(dtype)), (
        f"{dtype} result is not the float32 one rounded once: max difference "
        f"{(y.float() - wide.to(dtype).float()).abs().max():.3g}")
    exact = fn(x.double(), w.double(), b.double(), **kw)
    ours = (y.double() - exact).abs().max().item()
    theirs = (fn(x, w, b, **kw).double() - exact).abs().max().item()
    assert ours <= theirs * 1.001 + 1e-12, (
        f"{dtype} max error {ours:.3g} against PyTorch's {theirs:.3g} (float64 oracle)")


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("with_bias", [False, True])
def test_bfloat16_one_tap_problems_round_once(memory_format: torch.memory_format,
                                              with_bias: bool) -> None:
    """Where no output takes more than one tap (k <= s, d = 1: U-Net's 2x2 up-convolution),
    a bfloat16 call without bias keeps its bfloat16 GEMM, whose float32 sum is rounded once:
    the same bits as PyTorch's. With a bias it is summed in float32 too (adding it to the
    rounded GEMM output gave up to 1.9x PyTorch's error). Either way, in the caller's memory
    format and no further from PyTorch float64 than PyTorch's own bfloat16 call."""
    x, w, b = _half_problem((2, 16, 5, 5), (16, 8, 2, 2), torch.bfloat16)
    b = b if with_bias else None
    x = x.contiguous(memory_format=memory_format)
    y = tconv_lib.conv_transpose(x, w, b, stride=2)
    theirs = F.conv_transpose2d(x, w, b, stride=2)
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=memory_format)
    if b is None:
        assert torch.equal(y, theirs)
    else:
        wide = tconv_lib.conv_transpose(x.float(), w.float(), b.float(), stride=2)
        assert torch.equal(y, wide.bfloat16())
    exact = F.conv_transpose2d(x.double(), w.double(), None if b is None else b.double(),
                               stride=2)
    assert ((y.double() - exact).abs().max().item()
            <= (theirs.double() - exact).abs().max().item() * 1.001 + 1e-12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("case", range(len(HALF_GEOMETRIES)))
def test_half_precision_convolution_and_gradients_round_once(case: int,
                                                             dtype: torch.dtype) -> None:
    """The forward convolution and the modules' gradients (input: a convolution; weight: a
    GEMM per tap summed over the batch) on the CPU in bfloat16 or float16 are no further from
    PyTorch float64 than PyTorch's own half-precision autograd (its input gradient was up to
    3.1x PyTorch's error, its convolution summed each tap's rounded GEMM output)."""
    x_shape, w_shape, kw = HALF_GEOMETRIES[case]
    x, w, b = _half_problem(x_shape, w_shape, dtype)
    conv_fn = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[len(x_shape)]
    tconv_fn = {3: F.conv_transpose1d, 4: F.conv_transpose2d,
                5: F.conv_transpose3d}[len(x_shape)]
    conv_kw = {k: v for k, v in kw.items() if k != "output_padding"}
    w_conv = w.transpose(0, 1).contiguous() if kw.get("groups", 1) == 1 else w
    y = tconv_lib.conv(x, w_conv, **conv_kw)
    assert y.dtype == dtype
    assert torch.equal(y, tconv_lib.conv(x.float(), w_conv.float(), **conv_kw).to(dtype))
    exact = conv_fn(x.double(), w_conv.double(), **conv_kw)
    assert ((y.double() - exact).abs().max().item() <= (
        conv_fn(x, w_conv, **conv_kw).double() - exact).abs().max().item() * 1.001 + 1e-12)

    def grads(fn: object, precision: torch.dtype) -> list[torch.Tensor]:
        xx = x.to(precision, copy=True).requires_grad_()
        ww = w.to(precision, copy=True).requires_grad_()
        out = fn(xx, ww, **kw)
        gen = torch.Generator().manual_seed(1)
        out.backward(torch.randn(out.shape, generator=gen).to(dtype).to(precision))
        return [xx.grad.double(), ww.grad.double()]

    exact = grads(tconv_fn, torch.float64)
    theirs = grads(tconv_fn, dtype)
    ours = grads(lambda a, b_, **k: tnn.conv_transpose_autograd(a, b_, None, **k), dtype)
    for name, o, t, e in zip(("input", "weight"), ours, theirs, exact, strict=True):
        err, ref = (o - e).abs().max().item(), (t - e).abs().max().item()
        assert err <= ref * 1.001 + 1e-12, (
            f"{dtype} {name} gradient: max error {err:.3g} against PyTorch's {ref:.3g}")
