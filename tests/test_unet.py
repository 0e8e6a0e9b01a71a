"""tconv_lib.unet: shape planning (the paper's 572 -> 388), output shapes of every upsampler,
clear errors for impossible sizes, the dataset and the metrics."""

from __future__ import annotations

import pytest
import torch

from tconv_lib import unet


def test_paper_plan_572_to_388():
    plan = unet.plan_shapes(572, depth=4, mode="valid")
    assert [lv.enc_out for lv in plan[::-1]] == [568, 280, 136, 64, 28]
    assert plan[-1].dec_out == 388
    # the paper's figure: 64x64 skip cropped to the 56x56 up-convolved map
    assert (plan[1].enc_out, plan[1].up, plan[1].crop) == (64, 56, 8)


def test_paper_network_shapes_with_few_channels():
    torch.manual_seed(0)
    net = unet.UNet(1, 2, base=1, depth=4, mode="valid", up="tconv_k2s2", norm=False)
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 572, 572)).shape == (1, 2, 388, 388)


@pytest.mark.parametrize("up", unet.UPSAMPLERS)
@pytest.mark.parametrize("size", [16, 32, 40])
def test_same_mode_keeps_size(up, size):
    torch.manual_seed(0)
    net = unet.UNet(1, 3, base=2, depth=2, mode="same", up=up)
    with torch.no_grad():
        out, feats = net(torch.zeros(2, 1, size, size), return_features=True)
    assert out.shape == (2, 3, size, size)
    assert [f.shape[-1] for f in feats] == [size // 2, size]


@pytest.mark.parametrize("up", unet.UPSAMPLERS)
def test_valid_mode_matches_plan(up):
    size = 44
    plan = unet.plan_shapes(size, depth=2, mode="valid", up=up)
    net = unet.UNet(1, 1, base=2, depth=2, mode="valid", up=up)
    with torch.no_grad():
        assert net(torch.zeros(1, 1, size, size)).shape[-1] == plan[-1].dec_out == 4


def test_impossible_sizes_raise_clear_errors():
    with pytest.raises(ValueError, match=r"encoder level 1 .*odd size 279"):
        unet.plan_shapes(570, depth=4, mode="valid")
    with pytest.raises(ValueError, match=r"too small"):
        unet.plan_shapes(20, depth=4, mode="valid")
    with pytest.raises(ValueError, match=r"level 2 .*odd size 9"):
        unet.plan_shapes(36, depth=3, mode="same")
    net = unet.UNet(1, 1, base=2, depth=2, mode="same")
    with pytest.raises(ValueError, match="odd size"):
        net(torch.zeros(1, 1, 30, 30))
    with pytest.raises(ValueError, match="up must be one of"):
        unet.UNet(up="bicubic")
    with pytest.raises(ValueError, match="mode must be"):
        unet.plan_shapes(64, mode="full")


def test_valid_sizes_are_the_ones_plan_accepts():
    sizes = unet.valid_sizes(4, candidates=range(180, 600))
    assert 572 in sizes and 570 not in sizes
    assert all((b - a) % 16 == 0 for a, b in zip(sizes, sizes[1:], strict=False))


def test_dataset_is_deterministic_and_masks_binary():
    x1, y1 = unet.make_shapes_dataset(4, 24, seed=3)
    x2, y2 = unet.make_shapes_dataset(4, 24, seed=3)
    assert x1.shape == y1.shape == (4, 1, 24, 24)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert set(y1.unique().tolist()) <= {0.0, 1.0} and y1.sum() > 0


def test_iou_and_dice_known_answers():
    a = torch.tensor([1, 1, 0, 0])
    b = torch.tensor([1, 0, 1, 0])
    assert unet.iou(a, b) == pytest.approx(1 / 3)
    assert unet.dice(a, b) == pytest.approx(0.5)
    assert unet.iou(a, a) == unet.dice(a, a) == 1.0
    zero = torch.zeros(4)
    assert unet.iou(zero, zero) == 1.0


def test_center_crop_and_concat():
    skip = torch.arange(36.0).reshape(1, 1, 6, 6)
    up = torch.zeros(1, 2, 4, 4)
    out = unet.crop_and_concat(skip, up)
    assert out.shape == (1, 3, 4, 4)
    assert torch.equal(out[0, 0], skip[0, 0, 1:5, 1:5])
    with pytest.raises(ValueError, match="larger"):
        unet.center_crop(up, (5, 5))


def test_a_few_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    x, y = unet.make_shapes_dataset(32, 16, seed=0)
    net = unet.UNet(1, 1, base=2, depth=1, mode="same", up="tconv_k2s2")
    losses = unet.train(net, x, y, steps=30, batch_size=8, lr=1e-2, seed=0)
    assert len(losses) == 30 and sum(losses[-5:]) < sum(losses[:5])
    scores = unet.evaluate(net, x, y)
    assert 0.0 <= scores["iou"] <= scores["dice"] <= 1.0


def test_deterministic_leaves_the_cpu_settings_alone():
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark)
    with unet.deterministic("cpu"):
        inside = (torch.are_deterministic_algorithms_enabled(),
                  torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    assert inside == before
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark) == before


@pytest.mark.gpu
@pytest.mark.parametrize("up", ["tconv_k3s2p1op1", "pixelshuffle_icnr"])
def test_train_and_evaluate_on_cuda(up):
    """The chapter's code path on a GPU: training runs there, deterministically, and the
    predictions come back to the CPU."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    x, y = unet.make_shapes_dataset(32, 16, seed=0)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = unet.UNet(1, 1, base=4, depth=2, mode="same", up=up).cuda()
        losses = unet.train(net, x, y, steps=25, batch_size=8, lr=1e-2, seed=0)
        assert all(p.is_cuda for p in net.parameters())
        logits = unet.predict(net, x)
        assert logits.device.type == "cpu" and logits.shape == y.shape
        runs.append((losses, logits, unet.evaluate(net, x, y)))
    (l1, p1, s1), (l2, p2, s2) = runs
    assert sum(l1[-5:]) < sum(l1[:5])
    assert l1 == l2 and torch.equal(p1, p2) and s1 == s2      # same seed, same numbers
    assert 0.0 <= s1["iou"] <= s1["dice"] <= 1.0
    assert torch.are_deterministic_algorithms_enabled() == was_deterministic   # restored


@pytest.mark.parametrize("call, exc, fragments", [
    (lambda: unet.plan_shapes(64.0, 2, "same"), TypeError, ["size", "int", "64.0"]),
    (lambda: unet.plan_shapes(64, 2.0, "same"), TypeError, ["depth", "int", "2.0"]),
    (lambda: unet.plan_shapes(-4, 2, "same"), ValueError, ["size", "at least 1", "-4"]),
    (lambda: unet.UNet(depth=-1), ValueError, ["depth", "at least 0", "-1"]),
    (lambda: unet.center_crop(torch.zeros(1, 1, 4, 4), (-1, 4)), ValueError,
     ["size", "non-negative", "(-1, 4)"]),
    (lambda: unet.center_crop(torch.zeros(4, 4), (1, 1, 1)), ValueError,
     ["size", "1 to x.ndim = 2", "(1, 1, 1)"]),
    (lambda: unet.iou(torch.ones(1, 2), torch.ones(2, 2)), ValueError,
     ["pred", "target", "same shape", "(1, 2)", "(2, 2)"]),
    (lambda: unet.dice(torch.ones(2, 1), torch.zeros(2, 2)), ValueError,
     ["same shape", "(2, 1)", "(2, 2)"]),
    (lambda: unet.make_shapes_dataset(4.0), TypeError, ["n", "int", "4.0"]),
    (lambda: unet.make_shapes_dataset(4, max_shapes=0), ValueError, ["max_shapes", "0"]),
    (lambda: unet.train(unet.UNet(), torch.zeros(4, 1, 16, 16), torch.zeros(3, 1, 16, 16)),
     ValueError, ["same number", "(4, 1, 16, 16)", "(3, 1, 16, 16)"]),
    (lambda: unet.train(unet.UNet(), torch.zeros(4, 1, 16, 16), torch.zeros(4, 1, 16, 16),
                        batch_size=0), ValueError, ["batch_size", "at least 1", "0"]),
], ids=["float size", "float depth", "negative size", "negative depth", "negative crop",
        "crop of more axes", "iou broadcast", "dice broadcast", "float n", "no shapes",
        "masks for other images", "empty batches"])
def test_bad_arguments_are_named(call, exc, fragments) -> None:
    """These used to plan with floats (sizes 16.0 ...), crop to an empty map, fail with an
    IndexError or a zip error, or score broadcast masks (IoU 1.0 for (1, 2) against (2, 2))."""
    with pytest.raises(exc) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"


def test_scores_are_those_of_equal_shapes() -> None:
    pred = torch.tensor([[1, 0, 1, 1]], dtype=torch.bool)
    target = torch.tensor([[1, 1, 0, 1]], dtype=torch.bool)
    assert unet.iou(pred, target) == 2 / 4
    assert unet.dice(pred, target) == 2 * 2 / 6
