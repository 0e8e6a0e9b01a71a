"""tconv_lib.nn: drop-in ConvTranspose*d modules whose backward is tconv_lib's own operations."""

from __future__ import annotations

import pytest
import torch

from tconv_lib import gradients, nn

CONFIGS = [  # (dims, C_in, C_out, kernel, stride, padding, output_padding, groups, dilation)
    (1, 2, 3, 3, 2, 1, 1, 1, 1),
    (1, 4, 2, 4, 3, 0, 2, 2, 1),
    (2, 2, 4, (3, 2), (2, 1), (1, 0), (1, 0), 2, (1, 2)),
    (2, 3, 3, 2, 2, 0, 0, 3, 1),
    (2, 2, 2, 3, 1, 2, 1, 1, 2),
    (3, 2, 2, (2, 1, 2), (2, 1, 1), 0, (1, 0, 0), 1, 1),
]
MODULES = {1: (nn.ConvTranspose1d, torch.nn.ConvTranspose1d),
           2: (nn.ConvTranspose2d, torch.nn.ConvTranspose2d),
           3: (nn.ConvTranspose3d, torch.nn.ConvTranspose3d)}


def _pair(cfg, bias=True):
    dims, c_in, c_out, k, s, p, op, g, d = cfg
    ours_cls, theirs_cls = MODULES[dims]
    torch.manual_seed(0)
    theirs = theirs_cls(c_in, c_out, k, s, p, op, g, bias, d).double()
    ours = ours_cls(c_in, c_out, k, s, p, op, g, bias, d).double()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn((2, c_in) + (3,) * dims, dtype=torch.float64)
    return ours, theirs, x


@pytest.mark.parametrize("cfg", CONFIGS)
def test_forward_and_backward_match_torch(cfg) -> None:
    ours, theirs, x = _pair(cfg)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), theirs(xb)
    torch.testing.assert_close(ya, yb)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad)
    torch.testing.assert_close(ours.bias.grad, theirs.bias.grad)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_gradcheck_and_gradgradcheck(cfg) -> None:
    dims, c_in, c_out, k, s, p, op, g, d = cfg
    ours, _, x = _pair(cfg)
    x = x[:1].requires_grad_()
    w = ours.weight.detach().clone().requires_grad_()
    b = ours.bias.detach().clone().requires_grad_()

    def f(x, w, b):
        return nn.conv_transpose_autograd(x, w, b, s, p, op, g, d)

    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


def test_output_size_argument() -> None:
    ours, theirs, x = _pair((2, 2, 3, 3, 2, 1, 0, 1, 1))
    for size in ([5, 5], [6, 5], [6, 6]):
        torch.testing.assert_close(ours(x, output_size=size), theirs(x, output_size=size))
    with pytest.raises(ValueError):
        ours(x, output_size=[8, 8])


def test_unbatched_and_state_dict_compatible() -> None:
    ours, theirs, x = _pair((1, 2, 3, 3, 2, 1, 1, 1, 1))
    torch.testing.assert_close(ours(x[0]), theirs(x[0]))
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert isinstance(ours, torch.nn.ConvTranspose1d)


def test_backward_uses_tconv_lib_without_checking_again(monkeypatch) -> None:
    """The module's backward is tconv_lib's own arithmetic, conv (input gradient) and
    gradients.conv_weight_grad (weight gradient), called without the checked
    gradients.conv_transpose_* entries, whose argument checks repeated the forward's."""
    calls = []
    for module, name in ((nn, "conv"), (gradients, "conv_weight_grad")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name,
                            lambda *a, _real=real, _name=name, **k: calls.append(_name)
                            or _real(*a, **k))
    for name in ("conv_transpose_input_grad", "conv_transpose_weight_grad"):
        monkeypatch.setattr(gradients, name, lambda *a, _name=name, **k: pytest.fail(_name))
    ours, theirs, x = _pair((2, 2, 2, 3, 2, 1, 1, 1, 1))
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours(xa).square().sum().backward()
    theirs(xb).square().sum().backward()
    assert sorted(calls) == ["conv", "conv_weight_grad"]
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad)
    torch.testing.assert_close(ours.bias.grad, theirs.bias.grad)


def test_conv_gradients_match_autograd() -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.conv2d(x, w, None, (2, 1), (1, 0), (1, 2), 2)
    g = torch.randn_like(y)
    gx, gw = torch.autograd.grad(y, (x, w), g)
    torch.testing.assert_close(
        gradients.conv_input_grad(g, w.detach(), (9, 8), (2, 1), (1, 0), (1, 2), 2), gx)
    torch.testing.assert_close(
        gradients.conv_weight_grad(x.detach(), g, (3, 2), (2, 1), (1, 0), (1, 2), 2), gw)


def test_padding_mode_refused() -> None:
    m = nn.ConvTranspose2d(1, 1, 3)
    m.padding_mode = "reflect"
    with pytest.raises(ValueError, match="padding_mode must be 'zeros'.*'reflect'"):
        m(torch.zeros(1, 1, 4, 4))


@pytest.mark.parametrize("dims", [1, 2])
def test_autocast_casts_like_pytorch(dims) -> None:
    """Under torch.autocast a float32 module meets bfloat16 activations: PyTorch's module casts
    both (it used to be a TypeError here, 'all arrays must share one dtype')."""
    cfg = CONFIGS[0] if dims == 1 else CONFIGS[2]
    ours, theirs, x = _pair(cfg)
    ours, theirs, x = ours.float(), theirs.float(), x.float()
    exact = theirs.double()(x.double()).detach()                 # the float64 oracle
    theirs.float()
    results = {}
    for name, module in (("ours", ours), ("theirs", theirs)):
        module.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = module(x.bfloat16())
        y.float().sum().backward()
        results[name] = (y, module.weight.grad)
    (ya, ga), (yb, gb) = results["ours"], results["theirs"]
    assert ya.dtype == yb.dtype == torch.bfloat16
    assert ga.dtype == gb.dtype == torch.float32
    torch.testing.assert_close(ya.double(), exact, atol=0.1, rtol=0.05)
    torch.testing.assert_close(ga, gb, atol=0.1, rtol=0.05)


def test_meta_tensors_give_shapes_like_pytorch() -> None:
    """Shape inference on the 'meta' device, where autocast does not exist (the autocast check
    must not ask it)."""
    ours = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1, device="meta")
    theirs = torch.nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1,
                                      device="meta")
    x = torch.empty(2, 4, 5, 5, device="meta")
    assert ours(x).shape == theirs(x).shape == (2, 3, 10, 10)
    assert ours(x).device.type == "meta"


# --- parity with torch.nn.ConvTranspose*d -----------------------------------------------------

PARITY = [  # (dims, C_in, C_out, kernel, stride, padding, output_padding, groups, dilation)
    (1, 4, 6, 3, 2, 1, 1, 2, 1),
    (2, 2, 3, (3, 2), (2, 1), (1, 0), (1, 0), 1, (1, 2)),
    (2, 4, 4, [2, 3], [1, 2], [0, 1], [0, 1], 4, [2, 1]),
    (3, 2, 4, 2, (2, 1, 1), 0, (1, 0, 0), 2, 1),
]
CL = {2: torch.channels_last, 3: torch.channels_last_3d}


def _made(cfg, bias=True):
    """The module of each library made from the same seed (no state_dict copied)."""
    dims, *args = cfg
    args.insert(7, bias)
    made = []
    for cls in MODULES[dims]:
        torch.manual_seed(7)
        made.append(cls(*args))
    return made


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("cfg", PARITY)
def test_module_is_made_like_torch(cfg, bias) -> None:
    """repr, attributes, parameter shapes, dtypes and initialisation from the same seed."""
    ours, theirs = _made(cfg, bias)
    assert repr(ours) == repr(theirs)
    for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding",
                 "output_padding", "groups", "dilation", "padding_mode", "transposed"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    sd_ours, sd_theirs = ours.state_dict(), theirs.state_dict()
    assert list(sd_ours) == list(sd_theirs) == (["weight", "bias"] if bias else ["weight"])
    for name, value in sd_theirs.items():
        assert sd_ours[name].shape == value.shape and sd_ours[name].dtype == value.dtype
        torch.testing.assert_close(sd_ours[name], value, rtol=0, atol=0)


@pytest.mark.parametrize("layout", ["unbatched", "float32", "strided", "channels_last",
                                    "module_channels_last"])
@pytest.mark.parametrize("cfg", PARITY)
def test_forward_and_backward_in_every_layout(cfg, layout) -> None:
    dims = cfg[0]
    if "channels_last" in layout and dims == 1:
        return                                   # no channels-last layout for 1-D
    ours, theirs = _made(cfg)
    dtype = torch.float32 if layout == "float32" else torch.float64
    ours, theirs = ours.to(dtype), theirs.to(dtype)
    if layout == "module_channels_last":
        ours, theirs = (m.to(memory_format=CL[dims]) for m in (ours, theirs))
    x = torch.randn(((3,) if layout != "unbatched" else ()) + (cfg[1],) + (4,) * dims,
                    dtype=dtype)
    if layout == "strided":
        x = x.repeat_interleave(2, -1)[..., ::2]
    if "channels_last" in layout:
        x = x.contiguous(memory_format=CL[dims])
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else {}
    xa, xb = (x.detach().clone(memory_format=torch.preserve_format).requires_grad_()
              for _ in range(2))
    ya, yb = ours(xa), theirs(xb)
    assert ya.shape == yb.shape and ya.dtype == yb.dtype
    torch.testing.assert_close(ya, yb, **tol)
    g = torch.randn_like(yb)
    ya.backward(g)
    yb.backward(g)
    for a, b in ((xa.grad, xb.grad), (ours.weight.grad, theirs.weight.grad),
                 (ours.bias.grad, theirs.bias.grad)):
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("batched", [True, False])
def test_output_size_in_every_form(batched) -> None:
    """Every reachable size, as a list, a tuple, a torch.Size or a whole shape, and an
    unreachable one refused as PyTorch refuses it."""
    cfg = (2, 2, 3, 3, (2, 3), 1, 0, 1, 1)
    ours, theirs = _made(cfg)
    ours, theirs = ours.double(), theirs.double()
    x = torch.randn(((2,) if batched else ()) + (2, 4, 5), dtype=torch.float64)
    lead = list(x.shape[:-3]) + [3]
    for h in (7, 8):
        for w in (13, 14, 15):
            for size in ([h, w], (h, w), torch.Size([h, w]), lead + [h, w]):
                torch.testing.assert_close(ours(x, size), theirs(x, size))
                torch.testing.assert_close(ours(x, output_size=size),
                                           theirs(x, output_size=size))
    for bad in ([9, 13], [7], lead + [7]):
        with pytest.raises(ValueError) as theirs_error:
            theirs(x, bad)
        with pytest.raises(ValueError) as ours_error:
            ours(x, bad)
        assert str(ours_error.value) == str(theirs_error.value)


def _functional_pair(bias=True):
    ours, theirs = _made(PARITY[0], bias)
    ours, theirs = ours.double(), theirs.double()
    params = {k: v.detach() for k, v in theirs.named_parameters()}
    x = torch.randn(3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    return ours, theirs, params, x


JIT_WARNING = "ignore:`torch.jit.script` is deprecated:DeprecationWarning"   # torch's own,
# on first use of forward-mode AD (torch/_decomp/decompositions_for_jvp.py), F.conv_* alike


@pytest.mark.filterwarnings(JIT_WARNING)
@pytest.mark.parametrize("transform", ["grad", "vmap input", "vmap unbatched", "vmap params",
                                       "per-sample grads", "jvp", "jacrev", "jacfwd",
                                       "hessian", "forward_ad"])
def test_torch_func_transforms_like_pytorch(transform) -> None:
    """torch.func took the module's autograd.Function only with setup_context (it raised
    'must override the setup_context staticmethod'), forward mode needed a jvp rule, and a
    vmap of the backward (per-sample gradients, jacrev) wrote into unbatched arrays."""
    from torch.func import functional_call, grad, hessian, jacfwd, jacrev, jvp, vmap

    ours, theirs, params, x = _functional_pair()
    ensemble = {k: torch.stack([v, 2 * v, -v]) for k, v in params.items()}

    def run(m):
        def loss(p, xx):
            return functional_call(m, p, (xx,)).pow(2).sum()

        if transform == "grad":
            return grad(loss)(params, x)
        if transform == "vmap input":
            return vmap(m, in_dims=1)(x[:, None].expand(-1, 2, -1, -1))
        if transform == "vmap unbatched":
            return vmap(m)(x)
        if transform == "vmap params":
            return (vmap(lambda p: functional_call(m, p, (x,)))(ensemble),
                    vmap(lambda p, xx: functional_call(m, p, (xx,)))(ensemble, x[:, None]))
        if transform == "per-sample grads":
            return vmap(grad(loss), in_dims=(None, 0))(params, x[:, None])
        if transform == "jvp":
            tangents = {k: torch.ones_like(v) for k, v in params.items()}
            return (jvp(m, (x,), (torch.ones_like(x),)),
                    jvp(lambda p: functional_call(m, p, (x,)), (params,), (tangents,)))
        if transform == "jacrev":
            return jacrev(m)(x[:1, :, :2])
        if transform == "jacfwd":
            return jacfwd(m)(x[:1, :, :2])
        if transform == "hessian":
            return hessian(lambda xx: m(xx).pow(2).sum())(x[:1, :, :2])
        import torch.autograd.forward_ad as fwAD
        with fwAD.dual_level():
            return fwAD.unpack_dual(m(fwAD.make_dual(x, torch.ones_like(x)))).tangent

    torch.testing.assert_close(run(ours), run(theirs))


@pytest.mark.filterwarnings(JIT_WARNING)
def test_gradcheck_forward_mode() -> None:
    """Forward mode, and forward over reverse (gradcheck's batched checks use the legacy
    torch._vmap_internals, which the backward's slicing does not get through; torch.func's
    vmap does, as test_torch_func_transforms_like_pytorch checks)."""
    ours, _, params, x = _functional_pair()
    x = x[:1].clone().requires_grad_()
    w, b = (params[k].clone().requires_grad_() for k in ("weight", "bias"))

    def f(x, w, b):
        return nn.conv_transpose_autograd(x, w, b, 2, 1, 1, 2)

    assert torch.autograd.gradcheck(f, (x, w, b), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(f, (x, w, b), check_fwd_over_rev=True)


def test_method_is_a_checked_keyword_that_repr_shows() -> None:
    """``method`` is given when the module is made (before, only by setting the attribute
    afterwards: ``method=`` was a TypeError from torch's __init__), checked there with the
    argument named, shown by ``repr`` when it is not "auto", and kept by deepcopy and
    torch.save."""
    import copy
    import io

    torch.manual_seed(0)
    ours = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, method="phase").double()
    theirs = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).double()
    theirs.load_state_dict(ours.state_dict())
    assert repr(ours) == ("ConvTranspose2d(2, 3, kernel_size=(3, 3), stride=(2, 2), "
                          "padding=(1, 1), method='phase')")
    assert repr(nn.ConvTranspose1d(2, 3, 3)) == repr(torch.nn.ConvTranspose1d(2, 3, 3))
    buffer = io.BytesIO()
    torch.save(ours, buffer)
    buffer.seek(0)
    skipped = torch.nn.utils.skip_init(nn.ConvTranspose2d, 2, 3, 3, stride=2, method="phase")
    for copied in (copy.deepcopy(ours), torch.load(buffer, weights_only=False), skipped):
        assert copied.method == "phase"
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x))
    for bad, exc in (("fft", ValueError), (None, TypeError)):
        with pytest.raises(exc, match=f"method must be .*'auto' or one of scatter.*got "
                                      f"method={bad!r}"):
            nn.ConvTranspose3d(1, 1, 2, method=bad)
