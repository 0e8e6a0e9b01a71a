"""The seeds' worked examples, reproduced exactly, and their symbolic 2x2-kernel examples."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import tconv_lib
from tests.oracle import torch_conv_transpose


@pytest.mark.parametrize("method", tconv_lib.METHODS)
def test_seed_1d_example(method: str) -> None:
    x, w = np.array([[[2.0, 3.0]]]), np.array([[[1.0, 2.0, 3.0]]])
    y = tconv_lib.conv_transpose(x, w, stride=2, method=method)
    assert y[0, 0].tolist() == [2.0, 4.0, 9.0, 6.0, 9.0]
    assert y.tolist() == torch_conv_transpose(x, w, stride=2).tolist()


@pytest.mark.parametrize("method", tconv_lib.METHODS)
def test_seed_2d_example(method: str) -> None:
    x = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    w = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]]).reshape(1, 1, 3, 3)
    y = tconv_lib.conv_transpose(x, w, stride=2, padding=1, method=method)
    assert y[0, 0].tolist() == [[0.0, 0.0, 0.0], [2.0, 4.0, 2.0], [0.0, 0.0, 0.0]]
    assert y.tolist() == torch_conv_transpose(x, w, stride=2, padding=1).tolist()
    # The seed's 5x5 canvas before cropping: padding=0 gives it, and cropping 1 recovers y.
    canvas = tconv_lib.conv_transpose(x, w, stride=2, method=method)
    assert canvas[0, 0].tolist() == [[1, 1, 3, 2, 2], [0, 0, 0, 0, 0], [2, 2, 4, 2, 2],
                                     [0, 0, 0, 0, 0], [-3, -3, -7, -4, -4]]
    assert canvas[0, 0, 1:-1, 1:-1].tolist() == y[0, 0].tolist()


def _symbolic(method: str, stride: int, padding: int = 0) -> list[list[set[str]]]:
    """Which products a*w11, ... land in each output cell, by bilinearity and one-hot inputs."""
    names_x, names_w = "abcd", ["w11", "w12", "w21", "w22"]
    out = None
    for (xi, xn), (wi, wn) in itertools.product(enumerate(names_x), enumerate(names_w)):
        x = np.zeros(4)
        x[xi] = 1.0
        w = np.zeros(4)
        w[wi] = 1.0
        y = tconv_lib.conv_transpose(x.reshape(1, 1, 2, 2), w.reshape(1, 1, 2, 2),
                                     stride=stride, padding=padding, method=method)[0, 0]
        if out is None:
            out = [[set() for _ in row] for row in y]
        for r, c in zip(*np.nonzero(y), strict=True):
            out[r][c].add(f"{xn}{wn}")
    return out


@pytest.mark.parametrize("method", tconv_lib.METHODS)
def test_symbolic_stride2_no_overlap(method: str) -> None:
    # Seed example: [[a, b], [c, d]] with a 2x2 kernel, stride 2 -> 4x4 without overlap.
    assert _symbolic(method, 2) == [
        [{"aw11"}, {"aw12"}, {"bw11"}, {"bw12"}],
        [{"aw21"}, {"aw22"}, {"bw21"}, {"bw22"}],
        [{"cw11"}, {"cw12"}, {"dw11"}, {"dw12"}],
        [{"cw21"}, {"cw22"}, {"dw21"}, {"dw22"}],
    ]


@pytest.mark.parametrize("method", tconv_lib.METHODS)
def test_symbolic_stride1_overlaps_add(method: str) -> None:
    # Stride 1: copies overlap and add; the centre receives one term from every input element.
    assert _symbolic(method, 1) == [
        [{"aw11"}, {"aw12", "bw11"}, {"bw12"}],
        [{"aw21", "cw11"}, {"aw22", "bw21", "cw12", "dw11"}, {"bw22", "dw12"}],
        [{"cw21"}, {"cw22", "dw21"}, {"dw22"}],
    ]


@pytest.mark.parametrize("method", tconv_lib.METHODS)
def test_symbolic_1d_with_padding(method: str) -> None:
    # Seed: [x1, x2] * [w1, w2, w3], stride 2, padding 1 -> [x1 w2, x1 w3 + x2 w1, x2 w2].
    got = []
    for xi, wi in itertools.product(range(2), range(3)):
        x, w = np.zeros((1, 1, 2)), np.zeros((1, 1, 3))
        x[0, 0, xi], w[0, 0, wi] = 1.0, 1.0
        got.append(tconv_lib.conv_transpose(x, w, stride=2, padding=1, method=method)[0, 0])
    terms = [{f"x{xi + 1}w{wi + 1}" for (xi, wi), y in zip(
        itertools.product(range(2), range(3)), got, strict=True) if y[pos] != 0}
        for pos in range(3)]
    assert terms == [{"x1w2"}, {"x1w3", "x2w1"}, {"x2w2"}]


def test_torch_modules_load_on_first_use() -> None:
    """``tconv_lib.unet`` and ``tconv_lib.artifacts`` work after a plain ``import tconv_lib``
    (they used to raise AttributeError unless imported by name), as ``tconv_lib.nn`` does."""
    import subprocess
    import sys

    code = ("import tconv_lib; print(tconv_lib.unet.plan_shapes(572)[-1].dec_out, "
            "tconv_lib.artifacts.overlap_counts(3, 2), tconv_lib.nn.ConvTranspose2d.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out == ["388", "[2,", "1]", "ConvTranspose2d"]


# ---------------------------------------------------------------------------------------------
# The seeds' other numeric claims (notes/seed-coverage.md), each computed, never trusted: the
# sizes, parameter counts and tables they state, and the slips the book corrects.

def _torch_len(fn, n: int, k: int, **kw) -> int:
    import torch
    return fn(torch.zeros(1, 1, n, dtype=torch.float64),
              torch.zeros(1, 1, k, dtype=torch.float64), **kw).shape[-1]


def test_seed_output_padding_example_31_and_32() -> None:
    """Stride-2 3x3 convolutions with padding 1 take both 31 and 32 to 16, and a transposed one
    from 16 returns 31, or 32 with output_padding=1 (deterministically: never 'might')."""
    import torch.nn.functional as F

    from tconv_lib import shapes
    assert [_torch_len(F.conv1d, n, 3, stride=2, padding=1) for n in (31, 32)] == [16, 16]
    assert shapes.conv_input_sizes(16, k=3, stride=2, padding=1) == [31, 32]
    assert [_torch_len(F.conv_transpose1d, 16, 3, stride=2, padding=1, output_padding=op)
            for op in (0, 1)] == [31, 32]
    # The forward formula needs its floor: without it 32 would give a fractional size.
    assert (32 + 2 * 1 - 3) / 2 + 1 == 16.5
    assert shapes.conv_output_size(32, 3, stride=2, padding=1) == 16


def test_seed_doubling_needs_output_padding() -> None:
    """k=3, s=2, p=1 doubles only with output_padding=1 (the seed's '= 2 H_in' leaves it
    unnamed); without it the size is 2H - 1. k=4, s=2, p=1 doubles with none."""
    import torch.nn.functional as F

    from tconv_lib import shapes
    for h in range(1, 40):
        assert shapes.conv_transpose_output_size(h, 3, 2, 1, 1) == 2 * h
        assert _torch_len(F.conv_transpose1d, h, 3, stride=2, padding=1, output_padding=1) == 2 * h
        assert _torch_len(F.conv_transpose1d, h, 3, stride=2, padding=1) == 2 * h - 1
        assert _torch_len(F.conv_transpose1d, h, 4, stride=2, padding=1) == 2 * h
    assert _torch_len(F.conv_transpose1d, 50, 4, stride=2, padding=1) == 100  # the 1-D example


def test_seed_autoencoder_and_decoder_sizes() -> None:
    """The seed's autoencoder: three k3 s2 p1 convolutions 224 -> 112 -> 56 -> 28, three k4 s2 p1
    transposed convolutions back up to 224; its modules' shapes 32 -> 16 -> 32."""
    import torch
    from torch import nn

    from tconv_lib import shapes
    enc = [224]
    for _ in range(3):
        enc.append(shapes.conv_output_size(enc[-1], 3, stride=2, padding=1))
    dec = [enc[-1]]
    for _ in range(3):
        dec.append(shapes.conv_transpose_output_size(dec[-1], 4, 2, 1))
    assert enc == [224, 112, 56, 28] and dec == [28, 56, 112, 224]
    torch.manual_seed(0)
    down = nn.Conv2d(64, 32, 3, stride=2, padding=1).double()
    up = nn.ConvTranspose2d(32, 64, 3, stride=2, padding=1, output_padding=1).double()
    with torch.no_grad():
        y = down(torch.zeros(1, 64, 32, 32, dtype=torch.float64))
        assert tuple(y.shape) == (1, 32, 16, 16) and tuple(up(y).shape) == (1, 64, 32, 32)


def test_seed_parameter_counts() -> None:
    """Conv2d(64 -> 32) and ConvTranspose2d(32 -> 64), 3x3: 18,432 weights each; with biases the
    counts differ, since each layer has one bias per output channel."""
    from torch import nn

    import tconv_lib.nn

    def count(m):
        return sum(p.numel() for p in m.parameters())
    assert count(nn.Conv2d(64, 32, 3, bias=False)) == 18_432
    assert count(nn.ConvTranspose2d(32, 64, 3, bias=False)) == 18_432
    assert count(tconv_lib.nn.ConvTranspose2d(32, 64, 3, bias=False)) == 18_432
    assert count(nn.Conv2d(64, 32, 3)) == 18_432 + 32
    assert count(nn.ConvTranspose2d(32, 64, 3)) == 18_432 + 64


def test_seed_contribution_count_table() -> None:
    """The seed's stride-2 3x3 count table is the corner of the overlap map: its first row and
    column are border (fewer copies), not part of the periodic interior."""
    from tconv_lib import artifacts
    m = artifacts.overlap_map((3, 3), 2, input_size=3)
    assert m[:4, :6].tolist() == [[1, 1, 2, 1, 2, 1], [1, 1, 2, 1, 2, 1],
                                  [2, 2, 4, 2, 4, 2], [1, 1, 2, 1, 2, 1]]
    ones = np.ones((1, 1, 3, 3))
    assert m.tolist() == torch_conv_transpose(ones, ones, stride=2)[0, 0].tolist()
    assert sorted(np.unique(artifacts.interior(m, (3, 3))).tolist()) == [1, 2, 4]


def test_seed_zero_insertion_diagram() -> None:
    """2x2 input, 3x3 kernel, stride 2: s - 1 zeros give 3x3, padding k - 1 - p = 1 gives 5x5, and
    the stride-1 convolution gives 3x3, not the diagram's 4x4; 4x4 needs one more zero row and
    column at the far end (output_padding=1). The kernel must be flipped: the unflipped one
    ('the same kernel') gives another result."""
    from tconv_lib import backend
    from tconv_lib.methods import zero_insert
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 1, 2, 2)), rng.standard_normal((1, 1, 3, 3))
    up = zero_insert.insert_zeros(x, (2, 2))
    assert up.shape[2:] == (3, 3)
    padded = backend.crop_or_pad(up, (-1, -1), (5, 5))
    flipped = zero_insert.flip_swap_kernel(w, groups=1)
    y = tconv_lib.conv(padded, flipped)
    assert y.shape[2:] == (3, 3)
    assert np.allclose(y, torch_conv_transpose(x, w, stride=2, padding=1))
    assert not np.allclose(tconv_lib.conv(padded, w), y)
    y4 = tconv_lib.conv(backend.crop_or_pad(up, (-1, -1), (6, 6)), flipped)
    assert y4.shape[2:] == (4, 4)
    assert np.allclose(y4, torch_conv_transpose(x, w, stride=2, padding=1, output_padding=1))
    # s zeros instead of s - 1 would give a different (wrong) size
    assert zero_insert.insert_zeros(np.ones((1, 1, 5)), (3,)).shape[-1] == (5 - 1) * 3 + 1


def test_seed_gradient_index_direction() -> None:
    """The input gradient of a stride-s convolution pairs g[j] with w[t] where j*s + t = q (output
    position times stride plus tap = input position), as autograd says; the reverse pairing
    q*s + t = j, the slip of one seed's first formula, is a different operation."""
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(1)
    n, k, s = 9, 3, 2
    x = torch.tensor(rng.standard_normal((1, 1, n)), requires_grad=True)
    w = torch.tensor(rng.standard_normal((1, 1, k)))
    y = F.conv1d(x, w, stride=s)
    g = torch.tensor(rng.standard_normal(tuple(y.shape)))
    y.backward(g)
    gv, wv, o = g[0, 0].numpy(), w[0, 0].numpy(), y.shape[-1]
    right = [sum(gv[j] * wv[t] for j in range(o) for t in range(k) if j * s + t == q)
             for q in range(n)]
    wrong = [sum(gv[j] * wv[t] for j in range(o) for t in range(k) if q * s + t == j)
             for q in range(n)]
    assert np.allclose(right, x.grad[0, 0].numpy())
    assert not np.allclose(wrong, x.grad[0, 0].numpy())


def test_seed_gradient_check_needs_output_padding_at_stride_2() -> None:
    """The seed checks conv2d's input gradient against conv_transpose2d at stride 1; at stride 2
    the same call is one row and column short of an 8x8 input until output_padding=1."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(0)
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(16, 3, 3, 3, dtype=torch.float64)
    for stride, op in ((1, 0), (2, 1)):
        x.grad = None
        y = F.conv2d(x, w, stride=stride, padding=1)
        g = torch.randn_like(y)
        y.backward(g)
        if stride == 2:
            assert F.conv_transpose2d(g, w, stride=2, padding=1).shape[2:] == (7, 7)
        back = tconv_lib.conv_transpose(g, w, stride=stride, padding=1, output_padding=op)
        assert torch.allclose(back, x.grad)


def test_seed_figure_labels_mix_two_convolutions() -> None:
    """'i=4, k=3, p=2, s=1' labels the guide's no-padding transposed convolution with the forward
    input size and the equivalent direct convolution's padding p' = k - 1: as PyTorch arguments
    those give 4 -> 2, while the figure's layer reads 2 pixels and returns 4 (padding=0)."""
    import torch.nn.functional as F

    from tconv_lib import shapes
    assert shapes.conv_output_size(4, 3) == 2
    assert _torch_len(F.conv_transpose1d, 2, 3) == 4
    assert _torch_len(F.conv_transpose1d, 4, 3, padding=2) == 2
