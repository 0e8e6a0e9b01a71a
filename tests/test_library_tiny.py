"""Small problems (tconv_lib._small): the product with the cached 0/1 gather matrix that ``auto``,
``conv`` and the weight gradient take below a work threshold gives PyTorch float64's values and
gradients on both sides of that threshold, and the benchmark suite's shapes never take it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from oracle import torch_conv, torch_conv_transpose

import tconv_lib
from tconv_lib import _small, bench, gradients, nn
from tconv_lib._args import check_transpose

# (input shape, C_out, kernel, stride, padding, output_padding, groups, dilation)
TINY = [
    ((1, 4, 5, 5), 8, 3, 1, 0, 0, 1, 1),
    ((1, 4, 5, 5), 8, 3, 2, 1, 1, 1, 1),
    ((2, 4, 4, 5), 6, (2, 3), (3, 2), (1, 0), (2, 1), 2, 1),
    ((1, 4, 5, 5), 4, 3, 2, 2, 1, 4, 2),              # depthwise, dilated
    ((2, 3, 7), 6, 4, 3, 1, 2, 3, 1),                 # 1-D, groups
    ((1, 2, 12), 2, 3, 2, 0, 1, 1, 2),                # 1-D, dilation sharing the stride
    ((1, 2, 3, 3, 3), 2, 2, 2, 0, 0, 1, 1),           # 3-D, k == s
    ((1, 2, 3, 2, 3), 4, (3, 2, 2), (2, 1, 3), 1, (1, 0, 2), 2, 1),
    ((1, 2, 6, 6, 6), 4, 3, 2, 1, 1, 1, 1),           # 3-D past the whole G's entry bound
    ((2, 4, 5, 4, 6), 4, 3, (2, 1, 2), (1, 0, 2), 1, 2, (1, 2, 1)),   # 3-D, groups, dilation
]
IDS = [f"{len(s[0]) - 2}d-" + "-".join(map(str, s[0])) + f"-k{s[2]}s{s[3]}g{s[6]}d{s[7]}"
       for s in TINY]
SIDES = ["small", "other route"]


def arrays(case, dtype=torch.float64, seed=0):
    shape, c_out, k, s, p, op, g, d = case
    nd = len(shape) - 2
    kernel = k if isinstance(k, tuple) else (k,) * nd
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=dtype)
    w = torch.randn((shape[1], c_out // g) + kernel, generator=gen, dtype=dtype)
    b = torch.randn(c_out, generator=gen, dtype=dtype)
    return x, w, b, dict(stride=s, padding=p, output_padding=op, groups=g, dilation=d)


@pytest.fixture
def route(request, monkeypatch):
    """``"small"``: the real thresholds, which every TINY case is under; ``"other route"``:
    thresholds of zero, so the same call takes the routes of larger problems. Yields the list
    of the small route's calls (``conv_transpose``, ``conv``, ``conv_weight_grad``)."""
    taken: list[str] = []
    if request.param == "other route":
        monkeypatch.setattr(_small, "MAX_WORK", 0)
    for name in ("conv_transpose", "conv", "conv_weight_grad"):
        real = getattr(_small, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            taken.append(_name)
            return _real(*args, **kwargs)
        monkeypatch.setattr(_small, name, spy)
    yield request.param, taken


def check_route(route, taken: list[str], name: str) -> None:
    side, _ = route
    assert (name in taken) == (side == "small"), (side, taken)


@pytest.mark.parametrize("route", SIDES, indirect=True)
@pytest.mark.parametrize("case", TINY, ids=IDS)
def test_values_match_pytorch_float64(case, route) -> None:
    x, w, b, kw = arrays(case)
    expected = torch_conv_transpose(x, w, b, **kw)
    for xs, ws, bs in ((x, w, b), (x.numpy(), w.numpy(), b.numpy())):
        route[1].clear()
        got = tconv_lib.conv_transpose(xs, ws, bs, **kw)
        assert type(got) is type(xs) and got.dtype == xs.dtype
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-12)
        check_route(route, route[1], "conv_transpose")
        got1 = tconv_lib.conv_transpose(xs[0], ws, bs, **kw)        # unbatched
        np.testing.assert_allclose(np.asarray(got1), expected[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("route", SIDES, indirect=True)
@pytest.mark.parametrize("case", TINY, ids=IDS)
def test_float32_is_close_to_float64(case, route) -> None:
    x, w, b, kw = arrays(case, torch.float32)
    expected = torch_conv_transpose(x, w, b, **kw)
    for xs, ws, bs in ((x, w, b), (x.numpy(), w.numpy(), b.numpy())):
        got = np.asarray(tconv_lib.conv_transpose(xs, ws, bs, **kw))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("route", SIDES, indirect=True)
@pytest.mark.parametrize("case", TINY, ids=IDS)
def test_module_forward_and_backward_match_torch_nn(case, route) -> None:
    x, w, b, kw = arrays(case)
    nd = x.ndim - 2
    ours = getattr(nn, f"ConvTranspose{nd}d")(w.shape[0], w.shape[1] * kw["groups"],
                                              tuple(w.shape[2:]), dtype=torch.float64, **kw)
    theirs = getattr(torch.nn, f"ConvTranspose{nd}d")(w.shape[0], w.shape[1] * kw["groups"],
                                                      tuple(w.shape[2:]), dtype=torch.float64,
                                                      **kw)
    with torch.no_grad():
        for m in (ours, theirs):
            m.weight.copy_(w)
            m.bias.copy_(b)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), theirs(xb)
    torch.testing.assert_close(ya, yb, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    for got, expected in ((xa.grad, xb.grad), (ours.weight.grad, theirs.weight.grad),
                          (ours.bias.grad, theirs.bias.grad)):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    for name in ("conv_transpose", "conv", "conv_weight_grad"):
        check_route(route, route[1], name)


@pytest.mark.parametrize("route", SIDES, indirect=True)
@pytest.mark.parametrize("case", TINY[:5] + TINY[-2:], ids=IDS[:5] + IDS[-2:])
def test_conv_and_its_gradients_on_numpy_match_pytorch(case, route) -> None:
    """The forward convolution and both of its gradients, on NumPy arrays (3-D: by axes)."""
    x, w, _, kw = arrays(case)
    y = torch.as_tensor(torch_conv_transpose(x, w, None, **kw))      # a conv's input size
    del kw["output_padding"]
    wc = w          # (C_in, C_out/g, *k): the layout of a convolution from C_out to C_in
    expected = torch_conv(y, wc, None, kw["stride"], kw["padding"], kw["dilation"],
                          kw["groups"])
    got = tconv_lib.conv(y.numpy(), wc.numpy(), None, kw["stride"], kw["padding"],
                         kw["dilation"], kw["groups"])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    yr = y.clone().requires_grad_()
    wr = wc.clone().requires_grad_()
    out = F.__dict__[f"conv{y.ndim - 2}d"](yr, wr, None, kw["stride"], kw["padding"],
                                          kw["dilation"], kw["groups"])
    g = torch.randn_like(out)
    gy, gw = torch.autograd.grad(out, (yr, wr), g)
    geo = (kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    np.testing.assert_allclose(gradients.conv_weight_grad(
        y.numpy(), g.numpy(), tuple(wc.shape[2:]), *geo), gw.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gradients.conv_input_grad(
        g.numpy(), wc.numpy(), tuple(y.shape[2:]), *geo), gy.numpy(), rtol=1e-12, atol=1e-12)
    check_route(route, route[1], "conv")
    check_route(route, route[1], "conv_weight_grad")


@pytest.mark.parametrize("route", SIDES, indirect=True)
def test_gradgradcheck_through_the_small_route(route) -> None:
    x, w, b, kw = arrays(((1, 2, 4), 4, 3, 2, 1, 1, 2, 1))
    x, w, b = (t.requires_grad_() for t in (x, w, b))
    args = tuple(kw[k] for k in ("stride", "padding", "output_padding", "groups", "dilation"))
    assert torch.autograd.gradgradcheck(
        lambda x, w, b: nn.conv_transpose_autograd(x, w, b, *args), (x, w, b))
    check_route(route, route[1], "conv_transpose")


@pytest.mark.parametrize("route", SIDES, indirect=True)
def test_empty_batch_gives_pytorchs_shape_bias_and_zero_gradients(route) -> None:
    x, w, b, kw = arrays(TINY[1])
    x0 = x[:0]
    expected = F.conv_transpose2d(x0, w, b, **kw)
    got = tconv_lib.conv_transpose(x0.numpy(), w.numpy(), b.numpy(), **kw)
    assert got.shape == tuple(expected.shape)
    m = nn.ConvTranspose2d(4, 8, 3, dtype=torch.float64, **kw)
    xg = x0.clone().requires_grad_()
    m(xg).sum().backward()
    assert xg.grad.shape == x0.shape and m.weight.grad.abs().sum() == 0


def test_the_threshold_is_where_the_route_changes() -> None:
    """A problem whose gather product is exactly MAX_WORK multiply-adds takes the small route,
    and one with twice the channels does not; both give PyTorch's values."""
    geo = check_transpose(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 2, 2)), None, 2, 0, 0, 1, 1)[1]
    entries = 8 * 8 * 4 * 16                                 # (out) x taps x (in)
    rows = _small.MAX_WORK // entries
    assert rows * entries == _small.MAX_WORK
    for n_rows, small in ((rows, True), (2 * rows, False)):
        x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
        w = torch.randn(2, n_rows, 2, 2, dtype=torch.float64)
        assert _small.applies(n_rows, (8, 8), (4, 4), geo, x) is small
        np.testing.assert_allclose(tconv_lib.conv_transpose(x, w, stride=2).numpy(),
                                   torch_conv_transpose(x, w, stride=2), rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_summed_in_float32_and_rounded_once(dtype) -> None:
    """The half-precision rule holds on the small route: the float32 result, rounded once."""
    x, w, b, kw = arrays(TINY[1], torch.float32)
    x, w, b = x.to(dtype), w.to(dtype), b.to(dtype)
    wide = tconv_lib.conv_transpose(x.float(), w.float(), b.float(), **kw)
    assert torch.equal(tconv_lib.conv_transpose(x, w, b, **kw), wide.to(dtype))


def test_channels_last_input_gives_a_channels_last_output_like_pytorch() -> None:
    x, w, b, kw = arrays(TINY[1])
    x = x.contiguous(memory_format=torch.channels_last)
    got, expected = tconv_lib.conv_transpose(x, w, b, **kw), F.conv_transpose2d(x, w, b, **kw)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert got.stride() == expected.stride()
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_outputs_are_fresh_and_the_kept_matrix_is_never_written() -> None:
    x, w, b, kw = arrays(TINY[1])
    first = tconv_lib.conv_transpose(x, w, b, **kw)
    expected = first.clone()
    first.fill_(7.0)
    torch.testing.assert_close(tconv_lib.conv_transpose(x, w, b, **kw), expected)


def test_a_matrix_made_in_inference_mode_serves_a_call_with_gradients() -> None:
    x, w, b, kw = arrays(TINY[3], seed=3)
    _small._kept.clear()
    with torch.inference_mode():
        tconv_lib.conv_transpose(x, w, b, **kw)
    xg = x.clone().requires_grad_()
    tconv_lib.conv_transpose(xg, w, b, **kw).sum().backward()
    expected = x.clone().requires_grad_()
    F.conv_transpose2d(expected, w, b, **kw).sum().backward()
    torch.testing.assert_close(xg.grad, expected.grad)


def test_torch_func_per_sample_gradients_through_the_small_route() -> None:
    x, w, b, kw = arrays(TINY[1])
    x = torch.randn(3, *x.shape[1:], dtype=torch.float64)

    def loss(fn, w, xi):
        return fn(xi[None], w, b, **kw).square().sum()

    ours = torch.func.vmap(torch.func.grad(lambda w, xi: loss(tconv_lib.conv_transpose, w, xi)),
                           in_dims=(None, 0))(w, x)
    theirs = torch.func.vmap(torch.func.grad(lambda w, xi: loss(F.conv_transpose2d, w, xi)),
                             in_dims=(None, 0))(w, x)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_no_benchmark_suite_shape_takes_the_small_route() -> None:
    """The suite's shapes keep their routes: each is far over the threshold (checked on
    zero-strided arrays of the suite's sizes, which hold no memory)."""
    for s in bench.SUITE:
        x = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (s.n, s.c_in) + s.spatial,
                                            (0,) * (2 + s.ndim))
        w = np.zeros((s.c_in, s.c_out // s.groups) + (s.kernel,) * s.ndim, np.float32)
        _, geo, _ = check_transpose(x, w, None, s.stride, s.padding, s.output_padding, s.groups,
                                    s.dilation)
        assert tconv_lib.choose_method(x, w, None, s.stride, s.padding, s.output_padding,
                                       s.groups, s.dilation) == "col2im"
        assert not _small.applies(s.n * s.c_out, s.out_spatial, s.spatial, geo, x), s.name


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("where", ["input", "weight"])
def test_a_non_finite_entry_stays_in_its_footprint_as_in_pytorch(bad, where) -> None:
    """A product with the gather matrix multiplies every entry by its zeros (inf * 0 is NaN),
    so a single non-finite pixel or tap must not take the small route: the NaN/inf pattern of
    conv_transpose, conv and the weight gradient is PyTorch's, not a whole plane of NaN."""
    x, w, _, kw = arrays(TINY[1])
    xc = torch.randn(1, 8, 6, 6, dtype=torch.float64)     # an input of the convolution by w
    for a in (x, xc) if where == "input" else (w,):
        a[0, 0, 1, 2] = bad
    for name, a, b in (("conv_transpose", tconv_lib.conv_transpose(x, w, **kw),
                        F.conv_transpose2d(x, w, **kw)),
                       ("conv", tconv_lib.conv(xc, w, stride=2, padding=1),
                        F.conv2d(xc, w, stride=2, padding=1))):
        assert torch.equal(a.isnan(), b.isnan()), (
            f"{name}: NaN at {int(a.isnan().sum())} entries, PyTorch at {int(b.isnan().sum())}")
        assert torch.equal(a.isinf(), b.isinf()), (
            f"{name}: inf at {int(a.isinf().sum())} entries, PyTorch at {int(b.isinf().sum())}")
    if where == "input":
        go = torch.ones(1, 8, 3, 3, dtype=torch.float64)
        ours = gradients.conv_weight_grad(x, go, (3, 3), stride=2, padding=1)
        theirs = torch.nn.grad.conv2d_weight(x, (8, 4, 3, 3), go, stride=2, padding=1)
        assert torch.equal(ours.isnan(), theirs.isnan()), (int(ours.isnan().sum()),
                                                          int(theirs.isnan().sum()))


# A repeated tiny call goes by its kept plan (tconv_lib._small.conv_transpose_auto and its
# partners): the checks, the route, the output's size and layout are worked out once per call
# signature. What follows checks the key: nothing that changes the result may share a plan.


def test_a_repeated_call_builds_its_plan_once_and_gives_fresh_outputs(monkeypatch) -> None:
    builds: list[int] = []
    real = _small._transpose_plan
    monkeypatch.setattr(_small, "_transpose_plan",
                        lambda *a: builds.append(1) or real(*a))
    _small._plans.clear()
    x, w, b, kw = arrays(TINY[1])
    outs = [tconv_lib.conv_transpose(x, w, b, **kw) for _ in range(3)]
    assert builds == [1]
    expected = torch_conv_transpose(x, w, b, **kw)
    outs[0].fill_(7.0)                         # the later outputs share nothing with it
    for y in outs[1:]:
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_plans_are_kept_per_dtype_layout_and_batching() -> None:
    """float32 and float64, contiguous and channels-last, batched and unbatched calls of one
    geometry each get their own plan and PyTorch's dtype, strides and shape."""
    x, w, b, kw = arrays(TINY[1])
    for dtype in (torch.float64, torch.float32, torch.float64):
        xs, ws, bs = x.to(dtype), w.to(dtype), b.to(dtype)
        for fmt in (torch.contiguous_format, torch.channels_last, torch.contiguous_format):
            xf = xs.contiguous(memory_format=fmt)
            got, expected = (tconv_lib.conv_transpose(xf, ws, bs, **kw),
                             F.conv_transpose2d(xf, ws, bs, **kw))
            assert got.dtype == dtype and got.stride() == expected.stride()
            torch.testing.assert_close(got, expected)
        got1 = tconv_lib.conv_transpose(xs[0], ws, bs, **kw)
        torch.testing.assert_close(got1, F.conv_transpose2d(xs[0], ws, bs, **kw))


@pytest.mark.parametrize("bad", [True, 2.0, np.float64(2.0)])
def test_an_argument_equal_to_a_planned_int_still_gets_its_error(bad) -> None:
    """``True == 1`` and ``2.0 == 2`` hash alike: a plan made for the int must not serve them."""
    x, w, b, _ = arrays(TINY[0])
    tconv_lib.conv_transpose(x, w, b, stride=1)
    tconv_lib.conv_transpose(x, w, b, stride=2)
    with pytest.raises(TypeError, match="stride"):
        tconv_lib.conv_transpose(x, w, b, stride=bad)
    with pytest.raises(TypeError, match="stride"):
        tconv_lib.conv(x, w.transpose(0, 1).contiguous(), None, stride=bad)


def test_autocast_after_a_plan_casts_as_pytorch_does() -> None:
    x, w, b, kw = arrays(TINY[1], torch.float32)
    tconv_lib.conv_transpose(x, w, b, **kw)                        # the float32 plan
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, expected = (tconv_lib.conv_transpose(x, w, b, **kw),
                         F.conv_transpose2d(x, w, b, **kw))
    assert got.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected.float(), rtol=2e-2, atol=5e-2)


def test_the_plan_store_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(_small, "MAX_PLANS", 4)
    _small._plans.clear()
    for size in range(3, 12):
        x = torch.randn(1, 2, size, dtype=torch.float64)
        w = torch.randn(2, 2, 3, dtype=torch.float64)
        np.testing.assert_allclose(tconv_lib.conv_transpose(x, w, stride=2).numpy(),
                                   torch_conv_transpose(x, w, stride=2), rtol=1e-12)
        assert len(_small._plans) <= 4
    assert len(_small._plans) == 4


def test_a_non_finite_value_after_a_finite_call_leaves_the_plan() -> None:
    """The plan is keyed on sizes, not values: a call with a NaN after a finite one of the same
    sizes still keeps the NaN to its footprint (conv_transpose, conv, weight gradient)."""
    x, w, _, kw = arrays(TINY[1])
    xc = torch.randn(1, 8, 6, 6, dtype=torch.float64)
    go = torch.ones(1, 8, 3, 3, dtype=torch.float64)
    for bad in (False, True):
        if bad:
            x[0, 0, 1, 2] = xc[0, 0, 1, 2] = float("nan")
        pairs = ((tconv_lib.conv_transpose(x, w, **kw), F.conv_transpose2d(x, w, **kw)),
                 (tconv_lib.conv(xc, w, stride=2, padding=1), F.conv2d(xc, w, stride=2, padding=1)),
                 (gradients.conv_weight_grad(x, go, (3, 3), stride=2, padding=1),
                  torch.nn.grad.conv2d_weight(x, (8, 4, 3, 3), go, stride=2, padding=1)))
        for got, expected in pairs:
            assert torch.equal(got.isnan(), expected.isnan())
            torch.testing.assert_close(got, expected, equal_nan=True)


class _SkipNet(torch.nn.Module):
    """A decoder step that sizes its upsampling by a skip tensor, as a U-Net does."""

    def __init__(self, layers) -> None:
        super().__init__()
        self.down = torch.nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.up = layers.ConvTranspose2d(4, 2, 3, stride=2, padding=1)
        self.up1 = layers.ConvTranspose1d(2, 2, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.up(self.down(x), output_size=x.shape)              # the whole shape, traced
        row = x[:, :, 0]
        z = self.up1(row[:, :, ::2], output_size=[row.shape[-1]])   # a list of traced sizes
        return y + x, z


def test_fx_traces_a_module_given_a_computed_output_size() -> None:
    """``output_size=skip.shape`` is a Proxy while fx traces: the module records one call of
    ``conv_transpose_to_size`` (the size is read when the GraphModule runs), and the traced
    model matches torch.nn's, forward and backward, on both sizes the input may have. Before,
    tracing failed (torch.nn's ``_output_padding`` took ``len`` of the Proxy)."""
    ours, theirs = _SkipNet(nn).double(), _SkipNet(torch.nn).double()
    ours.load_state_dict(theirs.state_dict())
    traced = torch.fx.symbolic_trace(ours)
    for shape in ((2, 2, 7, 8), (1, 2, 6, 5)):
        x = torch.randn(shape, dtype=torch.float64)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = traced(xa), theirs(xb)
        for a, b in zip(ya, yb, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        sum(t.square().sum() for t in ya).backward()
        sum(t.square().sum() for t in yb).backward()
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-12, atol=1e-12)
    for (name, a), b in zip(traced.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12, msg=name)
