"""col2im's reused scratch memory (tconv_lib._workspace) never leaks into a result.

The column buffer and phase planes are kept between calls; these tests check that an earlier
result survives later calls, that threads do not share buffers, that autograd still records the
products, and that buffers above the size cap are simply not kept.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tconv_lib
from tconv_lib import _threads, _workspace


# (input shape, weight shape, stride, padding, output_padding): the per-sample and the
# channel-major GEMM, the k == s copy, the large-stride permuted copy (one where a reshape of
# the planes could be a view: N = C_out = 1 and one input position), 1-D and 3-D.
@pytest.fixture(autouse=True)
def columns_not_windows():
    """These tests are about the column buffer: keep col2im off its windows path
    (tests/test_windows.py covers that one), on a patcher of its own that a test's
    ``monkeypatch.undo()`` leaves in place."""
    from tconv_lib.methods import _windows

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_windows, "MIN_SAVING", {"numpy": 10 ** 9, "torch": 10 ** 9})
        yield


CASES = [
    ((3, 4, 16, 16), (4, 5, 4, 4), 2, 1, 0),
    ((2, 3, 5, 6), (3, 2, 3, 3), 2, 1, 1),
    ((1, 6, 7, 7), (6, 4, 2, 2), 2, 0, 0),
    ((1, 2, 1, 1), (2, 1, 8, 8), 8, 0, 0),
    ((2, 2, 3, 2), (2, 3, 12, 10), (6, 5), (3, 2), 0),
    ((2, 3, 9), (3, 2, 4), 3, 1, 2),
    ((1, 2, 3, 2, 3), (2, 3, 2, 2, 2), 2, 0, 0),
]


def _problem(case, seed: int):
    xs, ws, s, p, op = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(xs, generator=gen, dtype=torch.float64)
    w = torch.randn(ws, generator=gen, dtype=torch.float64)
    ref = getattr(F, f"conv_transpose{len(xs) - 2}d")(x, w, None, s, p, op)
    return x, w, (s, p, op), ref


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_earlier_results_survive_later_calls(backend: str) -> None:
    _workspace.clear()
    kept = []
    for seed in range(2):  # every case twice: the second round reuses the first round's buffers
        for case in CASES:
            x, w, args, ref = _problem(case, seed)
            if backend == "numpy":
                x, w = x.numpy(), w.numpy()
            kept.append((tconv_lib.conv_transpose(x, w, None, *args), ref))
    for got, ref in kept:
        torch.testing.assert_close(torch.as_tensor(np.asarray(got)), ref, rtol=1e-10,
                                   atol=1e-10)


def test_threads_do_not_share_buffers() -> None:
    results: dict[int, list] = {}

    def work(tid: int) -> None:
        out = []
        for i in range(12):
            x, w, args, ref = _problem(CASES[(tid + i) % 3], 10 * tid + i)
            out.append((tconv_lib.conv_transpose(x, w, None, *args), ref))
        results[tid] = out

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1, 2, 3]
    for out in results.values():
        for got, ref in out:
            torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


def test_autograd_through_the_array_operations() -> None:
    """Tensors that need gradients get a fresh product (``out=`` is not differentiable)."""
    x, w, args, _ = _problem(CASES[0], 3)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    xt, wt = x.clone().requires_grad_(), w.clone().requires_grad_()
    tconv_lib.conv_transpose(xr, wr, None, *args).square().sum().backward()
    F.conv_transpose2d(xt, wt, None, *args).square().sum().backward()
    torch.testing.assert_close(xr.grad, xt.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(wr.grad, wt.grad, rtol=1e-10, atol=1e-10)


def test_buffers_above_the_cap_are_not_kept(monkeypatch) -> None:
    _workspace.clear()
    monkeypatch.setattr(_workspace, "MAX_CACHED_BYTES", 64)
    x, w, args, ref = _problem(CASES[0], 4)
    torch.testing.assert_close(tconv_lib.conv_transpose(x, w, None, *args), ref, rtol=1e-10,
                               atol=1e-10)
    assert getattr(_workspace._local, "buffers", {}) == {}
    monkeypatch.undo()
    tconv_lib.conv_transpose(x, w, None, *args)
    kept = _workspace._local.buffers
    assert {k[0] for k in kept} == {"cols", "planes"}
    # kept at the largest size asked for: a smaller problem reuses the same memory
    before = {k: v.data_ptr() for k, v in kept.items()}
    x2, w2, args2, ref2 = _problem(CASES[1], 5)
    torch.testing.assert_close(tconv_lib.conv_transpose(x2, w2, None, *args2), ref2,
                               rtol=1e-10, atol=1e-10)
    assert {k: v.data_ptr() for k, v in _workspace._local.buffers.items()} == before


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_cached_bytes_counts_the_kept_buffers_and_clear_frees_them(backend: str,
                                                                   monkeypatch) -> None:
    # one thread: NumPy chunks would otherwise run as tasks with workspaces of their own
    monkeypatch.setattr(_threads, "_count", 1)
    _workspace.clear()
    assert _workspace.cached_bytes() == 0
    x, w, args, _ = _problem(CASES[0], 6)            # (3, 4, 16, 16) * (4, 5, 4, 4), stride 2
    if backend == "numpy":
        x, w = x.numpy(), w.numpy()
    tconv_lib.conv_transpose(x, w, None, *args, method="col2im")
    n, positions, c_out, taps = 3, 16 * 16, 5, 4 * 4
    # at least the column buffer: every (C_out, tap) row for every input position, float64
    assert _workspace.cached_bytes() >= 8 * n * positions * c_out * taps
    assert _workspace.cached_bytes() == sum(
        b.shape[0] * b.dtype.itemsize for b in _workspace._local.buffers.values())
    _workspace.clear()
    assert _workspace.cached_bytes() == 0


def test_a_call_with_gradients_leaves_the_cached_buffers_out_of_its_graph() -> None:
    """After col2im records gradients through its planes, the kept buffers carry no autograd
    history, and a later call that writes a buffer with ``out=`` (depthwise) still works."""
    _workspace.clear()
    x, w, args, _ = _problem(CASES[0], 7)
    x.requires_grad_(True)
    tconv_lib.conv_transpose(x, w, None, *args, method="col2im").sum().backward()
    kept = _workspace._local.buffers
    assert "planes" in {k[0] for k in kept}
    assert not any(b.requires_grad for b in kept.values())
    xd = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    wd = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(
        tconv_lib.conv_transpose(xd, wd, None, 2, 1, 0, 3, method="col2im"),
        F.conv_transpose2d(xd, wd, None, 2, 1, 0, 3), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n,itemsize,expected", [(512, 4, 528), (4096, 4, 4112), (64, 4, 80),
                                                 (100, 4, 100), (32, 8, 40), (31, 8, 31),
                                                 (48, 4, 48)])
def test_padded_rows_avoid_multiples_of_256_bytes(n: int, itemsize: int, expected: int) -> None:
    """A row of a multiple of 256 bytes gets one 64-byte cache line more; others stay."""
    got = _workspace.padded(n, itemsize)
    assert got == expected, f"padded({n}, {itemsize}): expected {expected}, got {got}"
    assert (got * itemsize) % 256 != 0


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_empty_rows_is_a_writable_view_with_padded_rows(backend: str) -> None:
    """The rows of the last axis start padded(n) elements apart, and writes through the view
    (and through reshapes that split its leading axes) reach the kept buffer."""
    xp = torch if backend == "torch" else np
    like = xp.zeros(1, dtype=xp.float32)
    _workspace.clear()
    view = _workspace.empty_rows(xp, like, (2, 3, 64), "test rows")
    assert tuple(view.shape) == (2, 3, 64)
    row_stride = view.stride(1) if backend == "torch" else view.strides[1] // 4
    assert row_stride == 80, f"rows 80 elements apart expected, got {row_stride}"
    view[...] = 0
    split = view.reshape(6, 64) if backend == "torch" else np.reshape(view, (6, 64))
    split[4] = 7.0
    again = _workspace.empty_rows(xp, like, (2, 3, 64), "test rows")
    assert float(again[1, 1].sum()) == 7.0 * 64, "a write through the reshaped view was lost"
    _workspace.clear()
