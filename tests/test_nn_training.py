"""Training with tconv_lib's modules as a user does: small models (a DCGAN generator, U-Net-style
decoders in 1-D and 3-D) trained a few Adam steps next to the same models built from torch.nn
with copied weights (float64), and tconv_lib.unet's model and helpers as a training loop meets
them."""

from __future__ import annotations

import copy

import pytest
import torch

from tconv_lib import nn, unet

TORCH = {1: torch.nn.ConvTranspose1d, 2: torch.nn.ConvTranspose2d, 3: torch.nn.ConvTranspose3d}
OURS = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


def _generator() -> torch.nn.Module:
    """A DCGAN generator in miniature: 1x1 noise to 16x16 images."""
    layers: list[torch.nn.Module] = []
    for c_in, c_out, s, p in ((6, 8, 1, 0), (8, 4, 2, 1), (4, 3, 2, 1)):
        layers += [torch.nn.ConvTranspose2d(c_in, c_out, 4, s, p, bias=False),
                   torch.nn.BatchNorm2d(c_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-2], torch.nn.Tanh())


class _Decoder(torch.nn.Module):
    """Two upsamplings with skip connections, the first one sized by ``output_size``."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        conv = {1: torch.nn.Conv1d, 3: torch.nn.Conv3d}[dims]
        self.up1 = TORCH[dims](6, 3, 2, stride=2)
        self.up2 = TORCH[dims](3, 2, 3, stride=2, padding=1, output_padding=1, groups=1)
        self.mix1, self.mix2 = conv(6, 3, 3, padding=1), conv(4, 1, 1)

    def forward(self, x: torch.Tensor, skip1: torch.Tensor, skip2: torch.Tensor) -> torch.Tensor:
        x = self.up1(x, output_size=skip1.shape[2:])
        x = torch.relu(self.mix1(torch.cat([x, skip1], 1)))
        return self.mix2(torch.cat([self.up2(x), skip2], 1))


def _with_tconv_lib(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose ConvTranspose modules are tconv_lib's, with the same weights."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) in TORCH.values():
                ours = OURS[len(child.kernel_size)](
                    child.in_channels, child.out_channels, child.kernel_size, child.stride,
                    child.padding, child.output_padding, child.groups, child.bias is not None,
                    child.dilation, dtype=child.weight.dtype)
                ours.load_state_dict(child.state_dict())
                setattr(parent, name, ours)
    return model


def _inputs(dims: int, step: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(step)
    if dims == 2:
        return (torch.randn(3, 6, 1, 1, dtype=torch.float64, generator=gen),)
    return tuple(torch.randn((2, c) + (n,) * dims, dtype=torch.float64, generator=gen)
                 for c, n in ((6, 2), (3, 5), (2, 10)))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_adam_steps_match_torch_nn(dims) -> None:
    """Three Adam steps, each accumulating the gradients of two backward calls: the losses,
    the gradients and the updated parameters of the model with tconv_lib's modules are
    torch.nn's own (float64)."""
    torch.manual_seed(0)
    theirs = (_generator() if dims == 2 else _Decoder(dims)).double()
    ours = _with_tconv_lib(theirs)
    assert sum(isinstance(m, tuple(OURS.values()))
               for m in ours.modules()) == (3 if dims == 2 else 2)
    opts = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in (ours, theirs)]
    for step in range(3):
        losses, grads = [], []
        for model, opt in zip((ours, theirs), opts, strict=True):
            opt.zero_grad()
            for half in range(2):                     # gradient accumulation
                loss = model(*_inputs(dims, 2 * step + half)).square().mean()
                loss.backward()
            losses.append(loss.detach())
            grads.append([p.grad.clone() for p in model.parameters()])
            opt.step()
        torch.testing.assert_close(losses[0], losses[1])
        for a, b in zip(*grads, strict=True):
            torch.testing.assert_close(a, b)
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_predict_and_evaluate_leave_the_models_mode() -> None:
    """A training loop that scores the model between steps keeps training it in train mode
    (before, predict left it in eval mode: BatchNorm then used its running statistics)."""
    torch.manual_seed(0)
    net = unet.UNet(1, 1, base=2, depth=1)
    images, masks = unet.make_shapes_dataset(4, 8)
    net.train()
    unet.evaluate(net, images, masks)
    assert net.training and all(m.training for m in net.modules())
    net.eval()
    unet.predict(net, images)
    assert not any(m.training for m in net.modules())


@pytest.mark.parametrize(("call", "exc", "fragments"), [
    (lambda: unet.UNet(0, 1), ValueError, ["in_channels", "at least 1", "0"]),
    (lambda: unet.UNet(1, 1.5), TypeError, ["out_channels", "int", "1.5"]),
    (lambda: unet.UNet(1, 1, base=2, depth=1, norm=False)(torch.zeros(1, 8, 8)), ValueError,
     ["x", "(N, C, H, W)", "in_channels = 1", "(1, 8, 8)"]),
    (lambda: unet.UNet(3, 1, base=2, depth=1)(torch.zeros(2, 1, 8, 8)), ValueError,
     ["x", "in_channels = 3", "(2, 1, 8, 8)"]),
], ids=["no input channels", "float output channels", "unbatched input", "wrong channels"])
def test_unet_names_bad_channels_and_input_shapes(call, exc, fragments) -> None:
    """Before: UNet(0, 1) and UNet(1, 0) were built, UNet(1, 1.5) failed in torch's Conv2d
    ('in_channels must be divisible by groups'), and an unbatched (C, H, W) input was
    concatenated along H, failing in a later convolution with a channel count of neither."""
    with pytest.raises(exc) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"


def test_convert_puts_tconv_libs_modules_into_a_built_model() -> None:
    """nn.convert: every torch.nn.ConvTranspose*d of a model replaced in place, holding the same
    Parameter objects (an optimizer made before trains the converted model), in its mode, with
    the given method; the result trains as the torch.nn model does."""
    torch.manual_seed(0)
    theirs = _generator().double()
    model = copy.deepcopy(theirs)
    model[3].eval()
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    assert nn.convert(model, method="scatter") is model
    assert [type(m) for m in model if isinstance(m, torch.nn.ConvTranspose2d)] == [
        nn.ConvTranspose2d] * 3
    assert [m.method for m in model if isinstance(m, nn.ConvTranspose2d)] == ["scatter"] * 3
    assert all(a is b for a, b in zip(model.parameters(), params, strict=True))
    assert not model[3].training and model[0].training
    model[3].train()
    opts = [opt, torch.optim.Adam(theirs.parameters(), lr=1e-2)]
    for step in range(2):
        for net, o in zip((model, theirs), opts, strict=True):
            o.zero_grad()
            net(*_inputs(2, step)).square().mean().backward()
            o.step()
        for a, b in zip(model.parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(a, b)
    up = torch.nn.ConvTranspose3d(2, 2, 3, stride=2, bias=False, dilation=2)
    ours = nn.convert(up)
    assert type(ours) is nn.ConvTranspose3d and ours.weight is up.weight and ours.bias is None
    assert repr(ours) == repr(up)
    assert nn.convert(ours) is ours
    with pytest.raises(ValueError, match="method must be .* got method='fast'"):
        nn.convert(torch.nn.ReLU(), method="fast")
