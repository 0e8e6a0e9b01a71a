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
