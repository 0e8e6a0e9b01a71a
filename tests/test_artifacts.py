"""tconv_lib.artifacts: overlap maps against hand-derived answers, the checkerboard metric on
known signals, and the fixes at initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tconv_lib import artifacts


def test_overlap_map_k3_s2_by_hand():
    # input of 4 ones, kernel [1,1,1] painted every 2: 1 1+1 1 1+1 1 1+1 1 -> [1,1,2,1,2,1,2,1,1]
    m = artifacts.overlap_map(3, 2, input_size=4)
    assert m.tolist() == [1, 1, 2, 1, 2, 1, 2, 1, 1]
    assert artifacts.interior(m, 3).tolist() == [2, 1, 2, 1, 2]


def test_overlap_map_k4_s2_constant_interior():
    m = artifacts.overlap_map(4, 2, input_size=6)
    assert m.shape == (14,)
    assert set(artifacts.interior(m, 4).tolist()) == {2}
    assert m[:3].tolist() == [1, 1, 2]          # the borders are not even


def test_overlap_map_2d_is_outer_product():
    m1 = artifacts.overlap_map(3, 2, input_size=5)
    m2 = artifacts.overlap_map((3, 3), 2, input_size=5)
    np.testing.assert_array_equal(m2, np.outer(m1, m1))


def test_overlap_map_3d_and_dilation():
    m = artifacts.overlap_map((2, 3, 4), (2, 2, 2), input_size=(3, 3, 3))
    assert m.shape == (6, 7, 8)
    # dilation 2 with stride 2: every tap lands on even positions -> odd positions are holes
    md = artifacts.overlap_map(3, 2, input_size=5, dilation=2)
    assert artifacts.interior(md, 3, dilation=2).tolist() == [3, 0, 3, 0, 3]


@pytest.mark.parametrize("k,s,d,counts", [(3, 2, 1, [2, 1]), (4, 2, 1, [2, 2]),
                                          (5, 2, 1, [3, 2]), (1, 2, 1, [1, 0]),
                                          (5, 3, 1, [2, 2, 1]), (3, 2, 2, [3, 0]),
                                          (3, 2, 3, [2, 1])])
def test_overlap_counts_matches_the_map(k, s, d, counts):
    assert artifacts.overlap_counts(k, s, d) == counts
    inner = artifacts.interior(artifacts.overlap_map(k, s, dilation=d), k, d)
    start = d * (k - 1)
    assert [int(inner[(r - start) % s]) for r in range(s)] == counts


def test_unevenness_and_is_even():
    assert artifacts.unevenness(5, 2) == 1.5
    assert artifacts.unevenness((5, 5), 2) == 2.25
    assert artifacts.unevenness(3, 2) == 2.0
    assert artifacts.unevenness(4, 2) == 1.0
    assert artifacts.unevenness(1, 2) == math.inf
    for k in range(1, 9):
        for s in range(1, 5):
            assert artifacts.is_even(k, s) == (k % s == 0)
            assert artifacts.is_even(k, s) == (artifacts.unevenness(k, s) == 1.0)
    assert not artifacts.is_even((4, 3), 2)


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="stride"):
        artifacts.overlap_map(3, 0)
    with pytest.raises(ValueError, match="kernel_size"):
        artifacts.unevenness(0, 2)
    with pytest.raises(ValueError, match="stride"):
        artifacts.checkerboard_score(np.ones((1, 1)), stride=2)


def test_score_zero_on_constant_and_balanced_signals():
    assert artifacts.checkerboard_score(np.ones((8, 8))) == 0.0
    assert artifacts.checkerboard_score(np.zeros((2, 3, 8, 8))) == 0.0
    ramp = np.add.outer(np.arange(16.0), np.arange(16.0))
    # a ramp's phases differ by half a step: 3/(n^2-1) of its energy, tiny but not zero
    assert artifacts.checkerboard_score(ramp) == pytest.approx(3 / 255)
    # even overlap (k=4, s=2) with an all-ones kernel: constant interior, score 0
    even = artifacts.interior(artifacts.overlap_map((4, 4), 2, input_size=6), 4)
    assert artifacts.checkerboard_score(even) == 0.0


def test_score_one_on_checkerboards():
    i, j = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
    assert artifacts.checkerboard_score((-1.0) ** (i + j)) == pytest.approx(1.0)
    stripes = (-1.0) ** i + 5.0
    assert artifacts.checkerboard_score(stripes) == pytest.approx(1.0)
    assert artifacts.checkerboard_score(np.cos(np.pi * np.arange(10.0)), ndim=1) == \
        pytest.approx(1.0)


def test_score_equals_spectral_share_at_subperiod_frequencies():
    x = np.random.default_rng(0).normal(size=(3, 2, 16, 24)) + 0.3 * (-1.0) ** np.arange(24)
    centred = x - x.mean(axis=(-2, -1), keepdims=True)
    power = np.abs(np.fft.fft2(centred)) ** 2
    expected = power[..., ::8, ::12].sum() / power.sum()
    assert artifacts.checkerboard_score(x, stride=2) == pytest.approx(expected, rel=1e-10)
    assert artifacts.checkerboard_score(torch.from_numpy(x), stride=2) == \
        pytest.approx(expected, rel=1e-10)


def test_periodic_component_is_a_projection():
    x = np.random.default_rng(1).normal(size=(9, 10))      # cropped to 8 x 10
    p = artifacts.periodic_component(x, 2)
    assert p.shape == (8, 10)
    np.testing.assert_allclose(artifacts.periodic_component(p, 2), p, atol=1e-12)


def test_tconv_at_init_makes_checkerboard_fixes_do_not():
    torch.manual_seed(0)
    x = torch.ones(1, 4, 8, 8)
    inner = (..., slice(4, -4), slice(4, -4))
    tconv = torch.nn.ConvTranspose2d(4, 3, 3, stride=2)
    assert artifacts.checkerboard_score(tconv(x)[inner]) > 0.5
    for fix in (artifacts.ResizeConv(4, 3, mode="nearest"),
                artifacts.ResizeConv(4, 3, mode="bilinear"),
                artifacts.PixelShuffleUp(4, 3, icnr=True)):
        assert artifacts.checkerboard_score(fix(x)[inner]) < 1e-12
    assert artifacts.checkerboard_score(artifacts.PixelShuffleUp(4, 3, icnr=False)(x)[inner]) > 0.5


def test_icnr_equals_conv_then_nearest_upsampling():
    torch.manual_seed(0)
    shuffle = artifacts.PixelShuffleUp(2, 3, icnr=True)
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    shuffle = shuffle.double()
    # the first phase of each channel is the sub-kernel; ICNR copies it to all four phases
    sub = shuffle.conv.weight[::4]
    ref = torch.nn.functional.conv2d(x, sub, shuffle.conv.bias[::4], padding=1)
    ref = torch.nn.functional.interpolate(ref, scale_factor=2, mode="nearest")
    torch.testing.assert_close(shuffle(x), ref)
    with pytest.raises(ValueError, match="scale"):
        artifacts.icnr_(torch.empty(6, 2, 3, 3), 2)


def test_block_edge_ratio_known_answers():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((128, 128))
    blocks = np.kron(noise[:32, :32], np.ones((2, 2)))          # nearest-neighbour x2
    checker = (-1.0) ** np.add.outer(np.arange(16), np.arange(16))
    assert artifacts.block_edge_ratio(np.ones((8, 8))) == 1.0
    assert artifacts.block_edge_ratio(blocks) == math.inf
    assert artifacts.block_edge_ratio(checker) == pytest.approx(1.0)
    assert artifacts.block_edge_ratio(noise) == pytest.approx(1.0, abs=0.05)
    assert artifacts.block_edge_ratio(np.arange(16.0), ndim=1) == pytest.approx(1.0)
    # a staircase: steps of 1/3 inside each pair, 2/3 across -> (2/3)^2 / (1/3)^2 = 4
    stairs = (np.arange(8.0)[:, None] + np.array([0.0, 1 / 3])).ravel()
    assert artifacts.block_edge_ratio(stairs, ndim=1) == pytest.approx(4.0)
    # torch input, period 4, and several images pooled
    up4 = torch.from_numpy(np.kron(noise[:8, :8], np.ones((4, 4))))
    assert artifacts.block_edge_ratio(up4, 4) == math.inf
    batch = np.stack([noise[:64, :64], blocks])
    assert 1.0 < artifacts.block_edge_ratio(batch) < math.inf


def test_block_edge_ratio_errors_name_the_argument():
    with pytest.raises(ValueError, match="stride must be at least 2"):
        artifacts.block_edge_ratio(np.ones((4, 4)), 1)
    with pytest.raises(ValueError, match="must exceed the stride"):
        artifacts.block_edge_ratio(np.ones((2, 2)), 2)
    with pytest.raises(ValueError, match="ndim=2"):
        artifacts.block_edge_ratio(np.ones(5), 2)


def _interior_of_constant_input(kernel: list[float], s: int, n: int = 8) -> np.ndarray:
    """A 1-D transposed convolution of ``n`` ones with ``kernel``, border cropped."""
    y = torch.nn.functional.conv_transpose1d(torch.ones(1, 1, n, dtype=torch.float64),
                                             torch.tensor([[kernel]], dtype=torch.float64),
                                             stride=s)[0, 0].numpy()
    return artifacts.interior(y, len(kernel))


@pytest.mark.parametrize(("kernel", "s"), [
    ([0.5, 1.0, 0.5], 2),             # uneven overlap (2 does not divide 3), equal phase sums
    ([1.0, 2.0, 3.0, 4.0], 2),        # even overlap (2 divides 4), phase sums 4 and 6
    ([1.0, 1.0, 1.0, 1.0], 2),        # even overlap, equal sums
    ([1.0, 1.0, 1.0], 2),             # uneven overlap, sums 2 and 1
    ([0.2, 0.7, 0.1, 0.5, 0.4, 0.1], 3),
])
def test_constant_in_constant_out_exactly_when_phase_sums_are_equal(kernel, s):
    """Chapter 6: s | k is neither necessary nor sufficient for a flat output; the kernel's
    s phase sums (taps r, r + s, ...) decide."""
    sums = [sum(kernel[r::s]) for r in range(s)]
    flat = np.ptp(_interior_of_constant_input(kernel, s)) < 1e-12
    assert flat == bool(np.ptp(sums) < 1e-12), (kernel, s, sums)


@pytest.mark.parametrize(("k", "s"), [(2, 2), (3, 2), (4, 2), (5, 2), (3, 3), (4, 3)])
def test_border_is_at_most_k_minus_1_and_empty_when_k_equals_s(k, s):
    """Chapter 6: only among the first and last d(k-1) positions can a count fall short of the
    interior's, and none does when k == s."""
    m = artifacts.overlap_map(k, s, input_size=8)
    periodic = [artifacts.overlap_counts(k, s)[q % s] for q in range(m.size)]
    short = [q for q in range(m.size) if m[q] < periodic[q]]
    assert all(q < k - 1 or q > m.size - k for q in short), (k, s, short)
    if k == s:
        assert short == [], m.tolist()


def test_with_dilation_k_equals_s_still_has_a_short_border():
    """``interior``'s docstring and chapter 6: 'none short when k == s' holds for d == 1 only;
    k = s = 2, d = 3 leaves border positions with no copy while the interior has one."""
    m = artifacts.overlap_map(2, 2, dilation=3, input_size=6)
    inner = artifacts.interior(m, 2, 3)
    assert set(inner.tolist()) == {1}, m.tolist()
    border = np.concatenate([m[:3], m[-3:]])
    assert 0 in border.tolist(), m.tolist()
    assert "``d == 1``" in artifacts.interior.__doc__


@pytest.mark.parametrize("shape, s, ndim", [((20000, 4, 4), 2, 2), ((20000, 3, 4, 6), 2, 3),
                                            ((20000, 9), 3, 1)])
def test_white_noise_scores_its_expected_share(shape, s, ndim) -> None:
    """Pooled white noise: (s^D - 1)/(P - 1), P the positions left after cropping to multiples
    of s (the mean takes one of the P dimensions), not (s^D - 1)/P."""
    x = np.random.default_rng(7).standard_normal(shape)
    p = math.prod(v - v % s for v in shape[-ndim:])
    expected = (s ** ndim - 1) / (p - 1)
    assert artifacts.checkerboard_score(x, s, ndim) == pytest.approx(expected, rel=0.03)
    assert abs(artifacts.checkerboard_score(x, s, ndim) - (s ** ndim - 1) / p) > \
        abs(artifacts.checkerboard_score(x, s, ndim) - expected)
