"""col2im's windows path (tconv_lib.methods._windows): phase planes by GEMMs over shifted windows
of a zero-padded input (one GEMM per shift accumulated in place on torch, or the shifted windows
stacked for one GEMM), checked against PyTorch in float64 on both backends."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from test_fast_paths import case_tensors, check_on

import tconv_lib
from tconv_lib._args import check_transpose
from tconv_lib.bench import SUITE
from tconv_lib.methods import _windows, col2im

# (spatial, kernel, stride, padding, output_padding, dilation) whose taps split evenly:
# d divides s and s/d divides k on every axis.
SPLIT = [
    ((5, 4), 4, 2, 1, 0, 1),                  # the DCGAN layer
    ((9,), 16, 8, 4, 0, 1),                   # conv1d-k16s8: a stride above 4
    ((3, 2), 8, 4, 2, 0, 1),                  # FCN-like, k = 2s
    ((6, 5), 3, 2, 2, 1, 2),                  # dilated-k3s2d2: one plane per axis (R = 1)
    ((4, 5), 4, 4, 1, 2, 2),                  # d = 2 divides s = 4: R = 2, M = 2
    ((3, 4, 3), 4, 2, 1, 1, 1),               # 3-D with output_padding
    ((5, 6), (4, 6), (2, 3), (0, 2), (1, 2), 1),
    ((4, 3), 2, 2, 1, 0, 1),                  # k == s with padding (M = 1)
    ((7,), 6, 2, 5, 1, 1),                    # padding past the first block
]
GROUPS = [(2, 3, 4, 1), (3, 4, 6, 2), (1, 4, 6, 1)]   # (n, c_in, c_out, groups)


@pytest.fixture
def windows_always(monkeypatch):
    """Take the windows wherever the taps split, whatever the sizes."""
    monkeypatch.setattr(_windows, "MIN_SAVING", {"numpy": 0, "torch": 0})
    monkeypatch.setattr(_windows, "MAX_BORDER_RATIO", math.inf)


# (backend, stacked): torch accumulates one GEMM per shift or stacks the windows (stacks());
# NumPy always stacks.
ROUTES = [("torch", False), ("torch", True), ("numpy", True)]


def stack_when(monkeypatch, stacked: bool) -> None:
    monkeypatch.setattr(_windows, "MIN_STACK_RATIO", 0 if stacked else math.inf)


def windows_taken(x, w, args) -> bool:
    _, geo, _ = check_transpose(x, w, None, *args)
    return _windows.applies(x, w, geo, col2im.residue_step(x, geo), col2im.phase_blocks(x, geo))


@pytest.mark.parametrize("sizes", GROUPS, ids=str)
@pytest.mark.parametrize("backend,stacked", ROUTES, ids=str)
@pytest.mark.parametrize("case", SPLIT, ids=str)
def test_windows_match_torch(case, backend: str, stacked: bool, sizes, windows_always,
                             monkeypatch) -> None:
    stack_when(monkeypatch, stacked)
    n, c_in, c_out, g = sizes
    x, w, b, args = case_tensors(case, n, c_in, c_out, g, seed=11, bias=True)
    assert windows_taken(x, w, args)
    _, geo, _ = check_transpose(x, w, None, *args)
    arrays = (x, w) if backend == "torch" else (x.numpy(), w.numpy())
    assert _windows.stacks(*arrays, geo) == stacked
    check_on(backend, x, w, b, *args)


@pytest.mark.parametrize("chunk_bytes", [1, 1 << 30], ids=["sample", "one"])
@pytest.mark.parametrize("backend,stacked", ROUTES, ids=str)
@pytest.mark.parametrize("case", SPLIT[:4], ids=str)
def test_windows_in_chunks_of_samples(case, backend: str, stacked: bool, chunk_bytes: int,
                                      windows_always, monkeypatch) -> None:
    """A shift never reaches into the previous sample of a chunk: its padding is zero."""
    stack_when(monkeypatch, stacked)
    monkeypatch.setattr(_windows, "CHUNK_BYTES", chunk_bytes)
    x, w, b, args = case_tensors(case, 5, 3, 4, 1, seed=12)
    check_on(backend, x, w, b, *args)


@pytest.mark.parametrize("backend,stacked", ROUTES, ids=str)
def test_windows_never_read_stale_scratch(backend: str, stacked: bool, windows_always,
                                          nan_scratch, monkeypatch) -> None:
    """Every scratch element (padded input, windows, planes) is written before it is read."""
    stack_when(monkeypatch, stacked)
    for case in SPLIT[:6]:
        x, w, b, args = case_tensors(case, 2, 3, 4, 1, seed=13)
        check_on(backend, x, w, b, *args)


def test_windows_only_where_the_taps_split(windows_always) -> None:
    split = [((6, 6), 4, 2, 1, 0, 1), ((6, 6), 3, 2, 2, 1, 2)]
    uneven = [((6, 6), 3, 2, 1, 1, 1),        # k = 3 is not a multiple of s/d = 2
              ((6, 6), 3, 2, 1, 1, 3),        # d = 3 does not divide s = 2
              ((6, 6), 4, 8, 1, 0, 2)]        # s = 8 > 4: the planes keep every residue
    for case, expect in [(c, True) for c in split] + [(c, False) for c in uneven]:
        x, w, _, args = case_tensors(case, 2, 1, 8, 1, seed=0)
        assert windows_taken(x, w, args) is expect, case


def test_windows_weigh_rows_and_border() -> None:
    """The windows need fewer rows than the columns by the backend's margin, and little border."""
    def taken(backend: str, c_in: int, c_out: int, spatial: tuple[int, ...]) -> bool:
        x, w, _, args = case_tensors((spatial, 4, 2, 1, 0, 1), 1, c_in, c_out, 1, seed=0)
        if backend == "numpy":
            x, w = x.numpy(), w.numpy()
        return windows_taken(x, w, args)

    # 4 residues: column rows C_out*16 over window rows C_in*4 is 4 * C_out / C_in
    assert taken("numpy", 8, 4, (16, 16)) and not taken("torch", 8, 4, (16, 16))
    assert taken("torch", 4, 4, (16, 16)) and not taken("numpy", 9, 4, (16, 16))
    assert not taken("numpy", 4, 4, (4, 4)), "a 5x5 grid for a 4x4 input is 56 % border"


def test_windows_leave_gradients_to_the_columns(windows_always) -> None:
    """The planes are accumulated in place, so a call that records gradients takes the columns,
    and its gradients still match PyTorch's."""
    x, w, _, args = case_tensors(SPLIT[0], 2, 3, 8, 1, seed=14)
    x.requires_grad_(True)
    assert not windows_taken(x, w, args)
    with torch.no_grad():
        assert windows_taken(x, w, args)
    y = tconv_lib.conv_transpose(x, w, None, *args, method="col2im")
    (gx,) = torch.autograd.grad(y.square().sum(), x)
    x_ref = x.detach().requires_grad_(True)
    (gx_ref,) = torch.autograd.grad(torch.nn.functional.conv_transpose2d(
        x_ref, w, None, *args).square().sum(), x_ref)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-10)


def test_suite_shapes_that_take_the_windows() -> None:
    """Where the suite's layers go through the planes (k != s, not depthwise): the windows
    where the columns are several times larger, the columns elsewhere."""
    chosen = {}
    for shape in SUITE:
        if shape.kernel == shape.stride or shape.groups > 1:
            continue
        small = replace(shape, n=1)
        for backend in ("torch", "numpy"):
            x = torch.zeros((1, small.c_in) + small.spatial)
            w = torch.zeros((small.c_in, small.c_out) + (small.kernel,) * small.ndim)
            if backend == "numpy":
                x, w = x.numpy(), w.numpy()
            args = (small.stride, small.padding, small.output_padding, 1, small.dilation)
            chosen[shape.name, backend] = windows_taken(x, w, args)
    assert {k for k, v in chosen.items() if v} == {
        ("fcn32s", "torch"), ("fcn32s", "numpy"), ("conv1d-k16s8", "torch"),
        ("conv1d-k16s8", "numpy"), ("dcgan-16to32", "numpy")}, chosen


def test_torch_stacks_where_the_planes_dwarf_the_input() -> None:
    """FCN-32s (21504 plane rows, 21 input channels): extra accumulating GEMMs would re-read
    and re-write every plane, so torch stacks the windows; the 1-D k16 s8 layer (1024 plane rows,
    256 channels) keeps one GEMM per shift; NumPy always stacks."""
    chosen = {}
    for shape in SUITE:
        if shape.name not in ("fcn32s", "conv1d-k16s8"):
            continue
        x = torch.zeros((1, shape.c_in) + shape.spatial)
        w = torch.zeros((shape.c_in, shape.c_out) + (shape.kernel,) * shape.ndim)
        _, geo, _ = check_transpose(x, w, None, shape.stride, shape.padding,
                                    shape.output_padding, 1, shape.dilation)
        chosen[shape.name] = (_windows.stacks(x, w, geo), _windows.stacks(x.numpy(), w.numpy(),
                                                                           geo))
    assert chosen == {"fcn32s": (True, True), "conv1d-k16s8": (False, True)}, chosen
