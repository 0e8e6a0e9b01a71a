"""tconv_lib.gradients used directly, and empty batches through every public operation.

The gradient functions check their arguments as ``conv_transpose`` does: an ``input_size``,
``kernel_size`` or ``grad_output`` that no convolution with these arguments connects is refused
with the sizes named, never answered with an array of some other problem. PyTorch float64
(autograd, ``torch.nn.grad``) is the oracle.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tconv_lib
from tconv_lib import gradients
from tconv_lib import nn as tnn

KW = dict(stride=2, padding=1, dilation=1, groups=2)


def _conv_case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(6, 2, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    y = F.conv2d(x, w, None, **KW)
    go = torch.randn(y.shape, dtype=torch.float64, generator=g)
    gx, gw = torch.autograd.grad(y, (x, w), go)
    return x.detach(), w.detach(), go, gx, gw


def _fragments(info, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"


def test_input_size_that_the_convolution_does_not_connect_is_refused() -> None:
    x, w, go, gx, _ = _conv_case()
    # (7, 7) convolves to (4, 4), not grad_output's (3, 3): the result used to be (5, 5)
    with pytest.raises(ValueError) as info:
        gradients.conv_input_grad(go, w, (7, 7), **KW)
    _fragments(info, "grad_output", "(3, 3)", "input_size (7, 7)", "gives (4, 4)")
    with pytest.raises(RuntimeError):
        torch.nn.grad.conv2d_input((2, 4, 7, 7), w, go, **KW)
    torch.testing.assert_close(gradients.conv_input_grad(go, w, (5, 5), **KW), gx)


@pytest.mark.parametrize("size", [5, (5, 5), torch.Size([2, 4, 5, 5]), (np.int64(5), 5)],
                         ids=str)
def test_input_size_forms(size) -> None:
    """One int, one per spatial axis, or torch.nn.grad's whole (N, C, *spatial) shape."""
    x, w, go, gx, _ = _conv_case()
    torch.testing.assert_close(gradients.conv_input_grad(go, w, size, **KW), gx)
    torch.testing.assert_close(torch.nn.grad.conv2d_input(x.shape, w, go, **KW), gx)


def test_input_grad_names_conv_channels() -> None:
    """Not in conv_transpose's terms (C_in), which the caller of a conv gradient never wrote."""
    _, w, go, _, _ = _conv_case()
    with pytest.raises(ValueError, match=r"weight.shape\[0\]=6 \(C_out\).*groups=4"):
        gradients.conv_input_grad(go, w, (5, 5), 2, 1, 1, 4)
    with pytest.raises(ValueError, match=r"grad_output has 5 channels.*\(C_out\) = 6"):
        gradients.conv_input_grad(go[:, :5], w, (5, 5), **KW)
    with pytest.raises(RuntimeError):
        torch.nn.grad.conv2d_input((2, 8, 5, 5), w, go, 2, 1, 1, 4)


def test_grad_output_of_another_size_is_refused() -> None:
    x, w, go, _, gw = _conv_case()
    with pytest.raises(ValueError) as info:        # used to return a (6, 2, 3, 3) "gradient"
        gradients.conv_weight_grad(x, go[:, :, :2], (3, 3), **KW)
    _fragments(info, "grad_output", "(2, 3)", "input (5, 5)", "gives (3, 3)")
    with pytest.raises(RuntimeError):
        torch.nn.grad.conv2d_weight(x, w.shape, go[:, :, :2], **KW)
    torch.testing.assert_close(gradients.conv_weight_grad(x, go, (3, 3), **KW), gw)


@pytest.mark.parametrize("kw, exc, fragments", [
    (dict(stride=0), ValueError, ["stride", "positive", "0"]),
    (dict(groups=3), ValueError, ["groups", "divid", "groups=3"]),
    (dict(dilation=True), TypeError, ["dilation", "int", "True"]),
    (dict(kernel_size=(3, 0)), ValueError, ["kernel_size", "positive", "(3, 0)"]),
    (dict(kernel_size=(5, 5)), ValueError, ["grad_output", "kernel=(5, 5)", "gives (2, 2)"]),
], ids=["zero stride", "groups not dividing", "bool dilation", "zero kernel", "kernel too big"])
def test_weight_grad_arguments_are_checked(kw, exc, fragments) -> None:
    x, _, go, _, _ = _conv_case()
    args = dict(input=x, grad_output=go, kernel_size=(3, 3)) | KW | kw
    with pytest.raises(exc) as info:
        gradients.conv_weight_grad(**args)
    _fragments(info, *fragments)


def test_arrays_of_two_kinds_are_refused() -> None:
    x, w, go, _, _ = _conv_case()
    with pytest.raises(TypeError) as info:
        gradients.conv_weight_grad(x.numpy(), go, (3, 3), **KW)
    _fragments(info, "one kind", "input is a NumPy array", "grad_output is a torch tensor")
    with pytest.raises(ValueError) as info:
        gradients.conv_input_grad(go[0, 0], w, (5, 5), **KW)
    _fragments(info, "grad_output", "4 dims", "(3, 3)")


def test_torch_nn_grad_argument_order_is_named() -> None:
    """torch.nn.grad puts the size first (input) or second (weight); here it comes last."""
    x, w, go, gx, gw = _conv_case()
    torch.testing.assert_close(torch.nn.grad.conv2d_input(x.shape, w, go, **KW), gx)
    with pytest.raises(TypeError, match=r"got the size .*\(grad_output, weight, input_size"):
        gradients.conv_input_grad(x.shape, w, go, **KW)
    torch.testing.assert_close(torch.nn.grad.conv2d_weight(x, w.shape, go, **KW), gw)
    with pytest.raises(TypeError, match=r"got the size .*\(input, grad_output, kernel_size"):
        gradients.conv_weight_grad(x, w.shape, go, **KW)


def test_kernel_size_says_how_many_spatial_dims() -> None:
    """One int cannot tell an unbatched 2-D (C, H, W) from a batched 1-D (N, C, L): with 3 it
    used to return a (3, 5, 3) 'gradient' of the 1-D reading for this 2-D problem."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 5, 5, dtype=torch.float64, generator=g)
    w = torch.randn(4, 4, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    y = F.conv2d(x, w, stride=2, padding=1)
    go = torch.randn(y.shape, dtype=torch.float64, generator=g)
    (gw,) = torch.autograd.grad(y, (w,), go)
    with pytest.raises(TypeError, match="kernel_size must be a tuple .*got kernel_size=3"):
        gradients.conv_weight_grad(x, go, 3, 2, 1)
    torch.testing.assert_close(gradients.conv_weight_grad(x, go, (3, 3), 2, 1), gw)
    # batched, a whole weight shape is taken as torch.nn.grad.conv2d_weight takes it
    torch.testing.assert_close(gradients.conv_weight_grad(x[None], go[None], w.shape, 2, 1), gw)


def test_unbatched_weight_gradient() -> None:
    x, w, go, _, _ = _conv_case()
    w = w.clone().requires_grad_()
    y = F.conv2d(x[0], w, None, **KW)               # unbatched, as PyTorch allows
    (gw,) = torch.autograd.grad(y, (w,), go[0])
    torch.testing.assert_close(gradients.conv_weight_grad(x[0], go[0], (3, 3), **KW), gw)


def test_transposed_gradients_check_sizes() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    kw = dict(stride=2, padding=1, dilation=2)
    y = F.conv_transpose2d(x, w, None, output_padding=1, **kw)
    go = torch.randn(y.shape, dtype=torch.float64, generator=g)
    gx, gw = torch.autograd.grad(y, (x, w), go)
    torch.testing.assert_close(gradients.conv_transpose_input_grad(go, w, (5, 5), **kw), gx)
    torch.testing.assert_close(
        gradients.conv_transpose_weight_grad(x.detach(), go, (3, 3), **kw), gw)
    with pytest.raises(ValueError) as info:        # used to return a (5, 5) slice
        gradients.conv_transpose_input_grad(go, w, (9, 9), **kw)
    _fragments(info, "grad_output", "(12, 12)", "input_size (9, 9)", "19..20", "not 12")
    with pytest.raises(ValueError) as info:
        gradients.conv_transpose_weight_grad(x.detach(), go[..., :10], (3, 3), **kw)
    _fragments(info, "grad_output", "(12, 10)", "input (5, 5)", "11..12", "not 10")


@pytest.mark.parametrize("op", [0, 1, 2])
def test_transposed_weight_gradient_with_output_padding_beyond_the_stride(op: int) -> None:
    """dilation 3 > stride 1 allows output_padding up to 2, which reaches past the sizes whose
    convolution gives the input back; padding 2 > stride means those positions still count."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 2, 4, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(2, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    y = F.conv_transpose1d(x, w, stride=1, padding=2, output_padding=op, dilation=3)
    go = torch.randn(y.shape, dtype=torch.float64, generator=g)
    gx, gw = torch.autograd.grad(y, (x, w), go)
    kw = dict(stride=1, padding=2, dilation=3)
    torch.testing.assert_close(gradients.conv_transpose_weight_grad(x.detach(), go, (3,), **kw), gw)
    torch.testing.assert_close(gradients.conv_transpose_input_grad(go, w.detach(), 4, **kw), gx)
    torch.testing.assert_close(
        gradients.conv_transpose_weight_grad(x.detach()[0], go[0], (3,), **kw),
        torch.autograd.grad(F.conv_transpose1d(x[:1], w, None, 1, 2, op, 1, 3), w, go[:1])[0])


def test_bias_grad_needs_a_batched_gradient() -> None:
    go = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(gradients.bias_grad(go), go.sum((0, 2, 3)))
    with pytest.raises(ValueError, match=r"batched.*grad_output.shape=\(3, 4\)"):
        gradients.bias_grad(go[0, :, 0])


# --- empty batches (N=0), which PyTorch allows -------------------------------------------------


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_conv_on_an_empty_batch(kind: str) -> None:
    x, w = torch.zeros(0, 4, 5, 5, dtype=torch.float64), torch.ones(6, 2, 3, 3,
                                                                   dtype=torch.float64)
    expected = F.conv2d(x, w, None, 2, 1, 1, 2)
    if kind == "numpy":
        x, w = x.numpy(), w.numpy()
    y = tconv_lib.conv(x, w, None, 2, 1, 1, 2)       # used to fail reshaping 0 elements
    assert tuple(y.shape) == tuple(expected.shape) == (0, 6, 3, 3)


def test_conv_transpose_on_an_empty_batch_stays_in_the_graph() -> None:
    x = torch.zeros(0, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.ones(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    ref = F.conv_transpose2d(x, w, stride=2)
    y = tconv_lib.conv_transpose(x, w, stride=2)
    assert y.shape == ref.shape and y.requires_grad == ref.requires_grad is True
    ours = torch.autograd.grad(y.sum(), (x, w))      # used to raise: y had no grad_fn
    theirs = torch.autograd.grad(ref.sum(), (x, w))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


def test_module_backward_on_an_empty_batch() -> None:
    torch.manual_seed(0)
    theirs = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2).double()
    ours = tnn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2).double()
    ours.load_state_dict(theirs.state_dict())
    grads = []
    for module in (ours, theirs):
        x = torch.zeros(0, 4, 5, 5, dtype=torch.float64, requires_grad=True)
        module.zero_grad()
        module(x).sum().backward()                    # used to fail in the backward
        grads.append((x.grad, module.weight.grad, module.bias.grad))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(
        gradients.conv_weight_grad(torch.zeros(0, 4, 5, 5), torch.zeros(0, 6, 3, 3), (3, 3), 2, 1,
                                   groups=2), torch.zeros(6, 2, 3, 3))


def test_the_memoised_checks_never_vouch_for_a_bad_call() -> None:
    """The gradient checks are memoised on shapes and arguments (the nn backward runs them on
    every step); a good call must not let an equal-looking bad one through."""
    x, w, go, gx, gw = _conv_case()
    torch.testing.assert_close(gradients.conv_input_grad(go, w, (5, 5), **KW), gx)
    torch.testing.assert_close(gradients.conv_weight_grad(x, go, (3, 3), **KW), gw)
    with pytest.raises(TypeError, match="stride"):
        gradients.conv_input_grad(go, w, (5, 5), 2.0, 1, 1, 2)
    with pytest.raises(TypeError, match="groups"):
        gradients.conv_weight_grad(x, go, (3, 3), 2, 1, 1, True)
    with pytest.raises(ValueError, match="input_size"):
        gradients.conv_input_grad(go, w, (7, 7), **KW)
    with pytest.raises(TypeError, match="one kind"):               # kinds are checked each call
        gradients.conv_weight_grad(x.numpy(), go, (3, 3), **KW)
    torch.testing.assert_close(gradients.conv_input_grad(go, w, [5, 5], **KW), gx)


# --- parity with PyTorch: the forms PyTorch accepts ------------------------------------------

FWD = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TRANSPOSED = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}
SWEEP = [  # (spatial size, kernel, stride, padding, dilation, groups)
    ((7,), 3, 2, 1, 2, 2),
    ((6,), 1, 3, 0, 1, 1),
    ((7, 6), 3, 2, 1, 1, 2),
    ((6, 7), 2, 3, 0, 2, 1),
    ((5, 4, 5), 2, 2, 1, 1, 2),
]


def _layout(t: torch.Tensor, layout: str, dims: int):
    if layout == "numpy":
        return t.numpy()
    if layout == "float32":
        return t.float()
    if layout == "strided":                      # a non-contiguous view of the same values
        return t.repeat_interleave(2, -1)[..., ::2]
    if layout == "channels_last" and t.ndim == dims + 2:
        return t.contiguous(memory_format=CHANNELS_LAST[dims])
    return t


def _as_torch(a) -> torch.Tensor:
    return torch.from_numpy(a) if isinstance(a, np.ndarray) else a


LAYOUTS = ["float64", "unbatched", "float32", "strided", "channels_last", "numpy"]


@pytest.mark.parametrize("case, layout", [
    pytest.param(case, layout, id=f"{case}-{layout}") for case in SWEEP for layout in LAYOUTS
    if not (layout == "channels_last" and len(case[0]) == 1)])
@pytest.mark.parametrize("form", ["int", "tuple", "list"])
def test_gradients_match_pytorch_in_every_form(case, layout, form) -> None:
    """The four gradients against autograd of F.conv*d / F.conv_transpose*d, with the
    arguments as ints, tuples or lists, unbatched, in float32, non-contiguous, channels-last
    and as NumPy arrays."""
    size, k, s, p, d, g = case
    dims = len(size)
    gen = torch.Generator().manual_seed(len(size) * 10 + k)
    n = 1 if layout == "unbatched" else 2
    x = torch.randn((n, 2 * g) + size, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn((3 * g, 2) + (k,) * dims, dtype=torch.float64, generator=gen,
                    requires_grad=True)
    y = FWD[dims](x, w, None, s, p, d, g)
    go = torch.randn(y.shape, dtype=torch.float64, generator=gen)
    gx, gw = torch.autograd.grad(y, (x, w), go)
    # the transposed convolution that maps go's size back onto x's: its input is go
    op = tuple((i + 2 * p - d * (k - 1) - 1) % s for i in size)
    xt = go.clone().requires_grad_()
    wt = torch.randn(w.shape, dtype=torch.float64, generator=gen, requires_grad=True)
    yt = TRANSPOSED[dims](xt, wt, None, s, p, op, g, d)
    assert yt.shape == x.shape
    gx_t, gw_t = torch.autograd.grad(yt, (xt, wt), x.detach())
    kw = dict(stride=s, padding=p, dilation=d, groups=g)
    if form != "int":
        kw.update({a: (kw[a],) * dims if form == "tuple" else [kw[a]] * dims
                   for a in ("stride", "padding", "dilation")})

    def data(t):
        return _layout(t.detach()[0] if layout == "unbatched" else t.detach(), layout, dims)

    def weight(t):
        return _layout(t.detach(), layout, dims)

    def expect(got, want, batched_data: bool) -> None:
        want = want[0] if layout == "unbatched" and batched_data else want
        got = _as_torch(got)
        assert got.shape == want.shape
        tol = dict(atol=1e-4, rtol=1e-4) if layout == "float32" else {}
        assert got.dtype == (torch.float32 if layout == "float32" else torch.float64)
        torch.testing.assert_close(got.double(), want, **tol)

    expect(gradients.conv_input_grad(data(go), weight(w), size, **kw), gx, True)
    expect(gradients.conv_weight_grad(data(x), data(go), (k,) * dims, **kw), gw, False)
    expect(gradients.conv_transpose_input_grad(data(x), weight(wt), tuple(go.shape[2:]), **kw),
           gx_t, True)
    expect(gradients.conv_transpose_weight_grad(data(go), data(x), (k,) * dims, **kw), gw_t,
           False)


def test_gradients_are_differentiable_like_torch_nn_grad() -> None:
    """With tensors that require grad, the results are in the graph and their own gradients
    are torch.nn.grad's."""
    x, w, go, _, _ = _conv_case()
    x, w, go = (t.clone().requires_grad_() for t in (x, w, go))
    pairs = [(gradients.conv_input_grad(go, w, (5, 5), **KW),
              torch.nn.grad.conv2d_input(x.shape, w, go, **KW), (go, w)),
             (gradients.conv_weight_grad(x, go, (3, 3), **KW),
              torch.nn.grad.conv2d_weight(x, w.shape, go, **KW), (x, go))]
    for ours, theirs, wrt in pairs:
        v = torch.randn_like(theirs)
        for a, b in zip(torch.autograd.grad(ours, wrt, v), torch.autograd.grad(theirs, wrt, v),
                        strict=True):
            torch.testing.assert_close(a, b)


def test_unbatched_gradients_take_whole_shapes() -> None:
    """x.shape and w.shape of an unbatched call, as torch.nn.grad takes them batched."""
    x, w, go, _, _ = _conv_case()
    x, w = x[0].clone().requires_grad_(), w.clone().requires_grad_()
    y = F.conv2d(x, w, None, **KW)
    gx, gw = torch.autograd.grad(y, (x, w), go[0])
    torch.testing.assert_close(gradients.conv_input_grad(go[0], w.detach(), x.shape, **KW), gx)
    torch.testing.assert_close(gradients.conv_weight_grad(x.detach(), go[0], w.shape, **KW), gw)
    wt = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    yt = F.conv_transpose2d(x, wt, None, 2, 1, 0, 1)
    gt = torch.randn_like(yt)
    gx_t, gw_t = torch.autograd.grad(yt, (x, wt), gt)
    torch.testing.assert_close(
        gradients.conv_transpose_input_grad(gt, wt.detach(), x.shape, 2, 1), gx_t)
    torch.testing.assert_close(
        gradients.conv_transpose_weight_grad(x.detach(), gt, wt.shape, 2, 1), gw_t)


@pytest.mark.parametrize("call, fragments", [
    (lambda x, w, go: gradients.conv_input_grad(go, w, (3, 4, 5, 5), **KW),
     ["input_size", "(N, C_in, *spatial)", "N=2, C_in=4", "(3, 4, 5, 5)"]),
    (lambda x, w, go: gradients.conv_input_grad(go, w, (2, 5, 5, 5), **KW),
     ["input_size", "N=2, C_in=4", "(2, 5, 5, 5)"]),
    (lambda x, w, go: gradients.conv_input_grad(go[0], w, (5, 5, 5), **KW),
     ["input_size", "(C_in, *spatial)", "C_in=4", "(5, 5, 5)"]),
    (lambda x, w, go: gradients.conv_weight_grad(x, go, (7, 2, 3, 3), **KW),
     ["kernel_size", "(C_out, C_in/groups, *kernel)", "C_out=6, C_in/groups=2",
      "(7, 2, 3, 3)"]),
    (lambda x, w, go: gradients.conv_weight_grad(x[0], go[0], (6, 3, 3, 3), **KW),
     ["kernel_size", "C_out=6, C_in/groups=2", "(6, 3, 3, 3)"]),
    (lambda x, w, go: gradients.conv_transpose_input_grad(x, w[:4], (2, 6, 3, 3), **KW),
     ["input_size", "N=2, C_in=4", "(2, 6, 3, 3)"]),
    (lambda x, w, go: gradients.conv_transpose_weight_grad(go, x, (6, 3, 3, 3), **KW),
     ["kernel_size", "(C_in, C_out/groups, *kernel)", "C_in=6, C_out/groups=2"]),
], ids=["N", "C", "unbatched C", "C_out", "unbatched C_in/groups", "transposed N/C",
        "transposed C_out/groups"])
def test_whole_shapes_that_describe_another_call_are_refused(call, fragments) -> None:
    """Their leading entries used to be dropped unread; PyTorch refuses most such shapes and
    answers a wrong N with a gradient of that batch size."""
    x, w, go, _, _ = _conv_case()
    with pytest.raises(ValueError) as info:
        call(x, w, go)
    _fragments(info, *fragments)
    assert torch.nn.grad.conv2d_input((3, 4, 5, 5), w, go, **KW).shape[0] == 3


def test_bias_grad_of_an_unbatched_gradient() -> None:
    """spatial_dims tells (C_out, *spatial) from (N, C_out, *spatial); without it an unbatched
    (C_out, H, W) was summed over its channels as if batched."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(4, 5, 5, dtype=torch.float64, generator=g)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, generator=g)
    b = torch.randn(3, dtype=torch.float64, generator=g, requires_grad=True)
    y = F.conv_transpose2d(x, w, b, stride=2)                       # unbatched, (3, 11, 11)
    go = torch.randn(y.shape, dtype=torch.float64, generator=g)
    (gb,) = torch.autograd.grad(y, (b,), go)
    torch.testing.assert_close(gradients.bias_grad(go, spatial_dims=2), gb)
    torch.testing.assert_close(gradients.bias_grad(go[None], spatial_dims=2), gb)
    torch.testing.assert_close(gradients.bias_grad(go[None].numpy(), 2), gb.numpy())
    with pytest.raises(ValueError, match=r"4 dims .* or 3 .*spatial_dims=2.*shape=\(11, 11\)"):
        gradients.bias_grad(go[0], spatial_dims=2)
    with pytest.raises(ValueError, match="spatial_dims must be positive.*spatial_dims=0"):
        gradients.bias_grad(go, spatial_dims=0)
    with pytest.raises(TypeError, match="spatial_dims must be an int.*True"):
        gradients.bias_grad(go, spatial_dims=True)
    with pytest.raises(TypeError, match="floating dtype.*int64"):       # used to sum ints
        gradients.bias_grad(go[None].long())
