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


def test_backward_uses_tconv_lib(monkeypatch) -> None:
    calls = []
    real = gradients.conv_transpose_input_grad
    monkeypatch.setattr(gradients, "conv_transpose_input_grad",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    ours, _, x = _pair((2, 2, 2, 3, 2, 1, 1, 1, 1))
    ours(x.requires_grad_()).sum().backward()
    assert calls == [1]


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
