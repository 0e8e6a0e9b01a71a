"""col2im's channels-last route (tconv_lib.methods._channels_last): the GEMM X^T W (one, or one
per block of taps over only the inputs whose taps land), block adds into a buffer with the
channels innermost, one transposing copy; checked against PyTorch in float64 on both backends,
and its tap bookkeeping against a brute-force count."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from test_fast_paths import case_tensors, check_on

from tconv_lib._args import check_transpose
from tconv_lib.methods import _channels_last, col2im

# (spatial, kernel, stride, padding, output_padding, dilation), each with every residue
# receiving taps (gcd(s, d) == 1), so the route applies once C_out >= the last input axis.
CASES = [
    ((5, 4), 4, 2, 1, 0, 1),            # DCGAN: taps 1 and 2 fill every block (copy, no zeroing)
    ((5, 4), 3, 2, 1, 1, 1),            # k3 s2 op1: no block fills, the buffer is zeroed
    ((4, 3), 2, 3, 0, 1, 1),            # k < s: columns no tap reaches stay zero
    ((4, 4), 3, 3, 1, 2, 2),            # d = 2 with s = 3: a block's columns step by 2
    ((3, 4), 4, 2, 3, 1, 1),            # padding crops whole blocks of taps away
    ((5, 3), 5, 3, 2, 1, 1),            # output not a multiple of s: the buffer is cropped
    ((6,), 6, 4, 1, 3, 1),              # 1-D
    ((3, 2, 3), 4, 2, 1, 0, 1),         # 3-D
    ((4, 3), (3, 4), (2, 3), (1, 0), (1, 2), (1, 1)),   # anisotropic
]


def route_of(x, w, args) -> str:
    _, geo, _ = check_transpose(x, w, None, *args)
    return col2im.cpu_route(x, w, geo)


def gemms_per_block(monkeypatch, gemms: str) -> None:
    """Force one GEMM over all taps, or one per block of taps (block_gemms), whatever the
    share of cropped pairs."""
    monkeypatch.setattr(_channels_last, "MIN_CROPPED", 0.0 if gemms == "per block" else 2.0)


@pytest.mark.parametrize("gemms", ["one", "per block"])
@pytest.mark.parametrize("chunk", ["sample", "one"])
@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_channels_last_matches_torch(case, backend: str, chunk: str, gemms: str, nan_scratch,
                                     monkeypatch) -> None:
    """Every output element right, in chunks of one sample or the whole batch in one, with
    one GEMM or one per block of taps, and every scratch buffer handed out full of NaN."""
    x, w, b, args = case_tensors(case, 3, 4, 8, 1, seed=21, bias=True)
    per_sample = x[0, 0].numel() * w[0, 0].numel() * 8 * x.dtype.itemsize
    size = per_sample if chunk == "sample" else 1 << 30
    monkeypatch.setattr(_channels_last, "CHUNK_BYTES", {"numpy": size, "torch": size})
    monkeypatch.setattr(_channels_last, "BLOCK_CHUNK_BYTES", size)
    monkeypatch.setattr(col2im, "_MAX_POSITIONS_BATCH_INNER", 0)   # tiny inputs: batch inner
    gemms_per_block(monkeypatch, gemms)
    arrays = (x, w) if backend == "torch" else (x.numpy(), w.numpy())
    assert route_of(*arrays, args) == "channels last"
    _, geo, _ = check_transpose(x, w, None, *args)
    assert _channels_last.skips_cropped(x, geo) == (gemms == "per block")
    check_on(backend, x, w, b, *args)


# Dilations sharing a factor g = gcd(s, d) with the stride: taps reach only the outputs
# o = -p (mod g), the buffer keeps those alone and the rest must come out zero (plus bias).
GAPS = [
    ((5, 4), 3, 2, 2, 1, 2),                                # dilated-k3s2d2
    ((4, 4), 3, 2, 1, 1, 2),                                # odd padding: the odd outputs
    ((4, 5), 2, 4, 1, 3, 2),
    ((6,), 3, 2, 0, 3, 4),
    ((3, 4, 3), 2, (2, 3, 2), 1, (1, 2, 1), (2, 3, 2)),
]


@pytest.mark.parametrize("gemms", ["one", "per block"])
@pytest.mark.parametrize("case", GAPS, ids=str)
def test_channels_last_zeros_where_no_tap_lands(case, gemms: str, nan_scratch,
                                                monkeypatch) -> None:
    """NumPy takes the route for these and torch keeps the planes (cpu_route); the route's
    own result is right on both, with the output and every scratch buffer full of NaN."""
    gemms_per_block(monkeypatch, gemms)
    from tconv_lib import backend

    real_empty = backend.empty_cpu

    def nan_filled(*args, **kwargs):
        y = real_empty(*args, **kwargs)
        y[...] = float("nan")
        return y

    monkeypatch.setattr(backend, "empty_cpu", nan_filled)
    monkeypatch.setattr(col2im, "_MAX_POSITIONS_BATCH_INNER", 0)
    x, w, b, args = case_tensors(case, 3, 4, 8, 1, seed=23, bias=True)
    assert route_of(x.numpy(), w.numpy(), args) == "channels last"
    assert route_of(x, w, args) == "block adds"
    check_on("numpy", x, w, b, *args)
    _, geo, _ = check_transpose(x, w, None, *args)
    expected = getattr(torch.nn.functional, f"conv_transpose{w.ndim - 2}d")(x, w, None, *args)
    torch.testing.assert_close(_channels_last.conv_transpose(x, w, geo), expected,
                               rtol=1e-10, atol=1e-10)


def brute_force_writes(k: int, s: int, p: int, d: int, i: int, o: int) -> set:
    """``(tap, input, output)`` for every tap that lands inside an output of size ``o``."""
    return {(t, a, a * s + t * d - p) for t in range(k) for a in range(i)
            if 0 <= a * s + t * d - p < o}


@pytest.mark.parametrize("k,s,p,d", list(itertools.product([1, 2, 3, 4, 5], [1, 2, 3, 4],
                                                           [0, 1, 2, 4], [1, 2, 3])))
def test_axis_blocks_write_each_tap_once(k: int, s: int, p: int, d: int) -> None:
    """The blocks expand to exactly the (tap, input, output) triples that land in the output,
    and a block marked ``fills`` covers every buffer position once."""
    g, r = _channels_last.reached(s, p, d)
    for i in (1, 2, 5):
        for op in range(max(s, d)):
            o = (i - 1) * s - 2 * p + d * (k - 1) + op + 1
            if o <= 0:
                continue
            rows, blocks = _channels_last.axis_blocks(k, s, p, d, i, o)
            assert rows == -(-o // s)
            width = s // g
            got = []
            for blk in blocks:
                taps = range(k)[blk.taps]
                columns = range(width)[blk.columns]
                assert len(taps) == len(columns), blk
                for a, j in zip(range(i)[blk.src], range(rows)[blk.dst], strict=True):
                    got += [(t, a, g * (j * width + c) + r)
                            for t, c in zip(taps, columns, strict=True)]
                if blk.fills:
                    filled = sorted(j * width + c for j in range(rows)[blk.dst] for c in columns)
                    assert filled == list(range(rows * width)), (k, s, p, d, i, op, blk)
            expected = brute_force_writes(k, s, p, d, i, o)
            inside = {w for w in got if w[2] < o}   # past o: the cropped part of the last block
            assert len(got) == len(set(got)), f"a tap written twice: {blocks}"
            assert inside == expected, (
                f"k={k} s={s} p={p} d={d} i={i} op={op}: expected {sorted(expected)}, "
                f"the blocks write {sorted(inside)}")


def out_size(i: int, k: int, s: int, p: int, d: int) -> int:
    return (i - 1) * s - 2 * p + d * (k - 1) + 1


CROPPED = [(spatial, ksp) for spatial in [(1,), (4,), (2, 3), (4, 4), (3, 2, 2), (16, 16)]
           for ksp in [(4, 2, 1, 1), (3, 2, 1, 1), (5, 3, 4, 1), (3, 2, 2, 2), (2, 2, 0, 1),
                       (6, 2, 5, 1)]
           if all(out_size(i, *ksp) > 0 for i in spatial)]


@pytest.mark.parametrize("spatial,ksp", CROPPED, ids=str)
def test_cropped_fraction_counts_the_taps_padding_removes(spatial, ksp) -> None:
    """The share of (input, tap) pairs that land outside the output's blocks of ``s``
    positions (the last block may reach past the output's end), against a brute-force count
    of the pairs that land inside them."""
    k, s, p, d = ksp
    geo_args = [(k, s, p, d, i, out_size(i, k, s, p, d)) for i in spatial]
    landing = 1
    for k_, s_, p_, d_, i, o in geo_args:
        landing *= len(brute_force_writes(k_, s_, p_, d_, i, -(-o // s_) * s_))
    expected = 1 - landing / (k ** len(spatial) * math.prod(spatial))
    got = _channels_last.cropped_fraction((k,) * len(spatial),
                                          [_channels_last.axis_blocks(*a) for a in geo_args],
                                          spatial)
    assert got == pytest.approx(expected, abs=1e-12), (
        f"k={k} s={s} p={p} d={d} input {spatial}: expected {expected:.4f} of the pairs "
        f"cropped, got {got:.4f}")


def test_tiny_inputs_take_one_gemm_per_block(monkeypatch) -> None:
    """DCGAN's 4x4 layer crops 23 % of its pairs: the channels-last route with one GEMM per
    block of taps, although the input is tiny (batch_inner); its 16x16 layer (6 %) keeps one
    GEMM; and the GEMMs run over only the inputs whose taps land."""
    x, w, _, args = case_tensors(((4, 4), 4, 2, 1, 0, 1), 2, 3, 4, 1, seed=2)
    _, geo, _ = check_transpose(x, w, None, *args)
    assert col2im.batch_inner(x, geo)
    assert route_of(x, w, args) == route_of(x.numpy(), w.numpy(), args) == "channels last"
    assert _channels_last.skips_cropped(x, geo)
    x16, w16, _, args16 = case_tensors(((16, 16), 4, 2, 1, 0, 1), 2, 3, 16, 1, seed=2)
    _, geo16, _ = check_transpose(x16, w16, None, *args16)
    assert not _channels_last.skips_cropped(x16, geo16)
    products = []
    real = _channels_last._workspace.matmul

    def counting(xp, a, b, shape, slot, rows=False):
        products.append(int(a.shape[0]) * int(b.shape[1]))
        return real(xp, a, b, shape, slot, rows=rows)

    monkeypatch.setattr(_channels_last._workspace, "matmul", counting)
    check_on("torch", x, w, None, *args)
    # 2 samples x (14 landing pairs per axis)^2 x C_out 4 products, none for cropped pairs
    assert sum(products) == 2 * 14 * 14 * 4, (
        f"expected 1568 output elements of GEMMs (one GEMM over all pairs: 2048), got "
        f"{sum(products)}")


def test_route_needs_short_rows_and_small_samples(monkeypatch) -> None:
    """Taken for short input rows (the last axis no longer than C_out), not for long ones,
    not with gradients, not on torch for residues without taps, and not once a sample's
    columns outgrow a chunk."""
    monkeypatch.setattr(col2im, "_MAX_POSITIONS_BATCH_INNER", 0)
    case = ((5, 4), 4, 2, 1, 0, 1)
    x, w, _, args = case_tensors(case, 2, 3, 4, 1, seed=1)
    assert route_of(x, w, args) == "channels last"
    x5, w5, _, args5 = case_tensors(((5, 5), 4, 2, 1, 0, 1), 2, 3, 4, 1, seed=1)
    assert route_of(x5, w5, args5) == "block adds"                  # rows of 5 > C_out = 4
    assert route_of(x.requires_grad_(), w, args) == "block adds"
    xd, wd, _, argsd = case_tensors(((5, 4), 3, 2, 2, 1, 2), 2, 3, 4, 1, seed=1)
    assert route_of(xd, wd, argsd) == "block adds"           # gcd(s, d) = 2, on torch only
    assert route_of(xd.numpy(), wd.numpy(), argsd) == "channels last"
    per_sample = 5 * 4 * 16 * 4 * x.dtype.itemsize
    monkeypatch.setattr(_channels_last, "CHUNK_BYTES", {"numpy": per_sample,
                                                        "torch": per_sample - 1})
    x = x.detach()
    assert route_of(x, w, args) == "block adds"
    assert route_of(x.numpy(), w.numpy(), args) == "channels last"


def test_gradients_take_the_block_adds(monkeypatch) -> None:
    """With autograd recording, the planes' route runs and the gradients match PyTorch's."""
    monkeypatch.setattr(col2im, "_MAX_POSITIONS_BATCH_INNER", 0)
    x, w, _, args = case_tensors(((5, 4), 4, 2, 1, 0, 1), 2, 3, 4, 1, seed=3)
    x.requires_grad_()
    w.requires_grad_()
    import tconv_lib

    tconv_lib.conv_transpose(x, w, None, *args).square().sum().backward()
    gx, gw = x.grad, w.grad
    x.grad = w.grad = None
    torch.nn.functional.conv_transpose2d(x, w, None, *args).square().sum().backward()
    torch.testing.assert_close(gx, x.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gw, w.grad, rtol=1e-10, atol=1e-10)
