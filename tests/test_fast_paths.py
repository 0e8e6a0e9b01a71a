"""Every method against PyTorch float64 at the benchmark suite's parameter combinations.

The shapes of :data:`tconv_lib.bench.SUITE` keep their kernel, stride, padding, output_padding,
dilation and grouping pattern but shrink to a few channels and pixels, so the fast paths
(``col2im``'s block adds, the pixel-shuffle copy, the depthwise outer product) are exercised
exactly where the benchmark times them, on NumPy arrays and on torch tensors.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tconv_lib
from tconv_lib.bench import SUITE, Shape


def small(shape: Shape) -> Shape:
    g = min(shape.groups, 4)
    c_in = 3 * g if shape.groups == 1 else g
    c_out = 2 * g if shape.groups == 1 else g
    return replace(shape, n=min(shape.n, 2), c_in=c_in, c_out=c_out, groups=g,
                   spatial=tuple(3 + a for a in range(len(shape.spatial))))


def problem(shape: Shape, seed: int, batched: bool = True):
    """Random float64 input and weight of ``shape``, its arguments, and PyTorch's output."""
    gen = torch.Generator().manual_seed(seed)
    lead = (shape.n, shape.c_in) if batched else (shape.c_in,)
    x = torch.randn(lead + shape.spatial, generator=gen, dtype=torch.float64)
    w = torch.randn((shape.c_in, shape.c_out // shape.groups) + (shape.kernel,) * shape.ndim,
                    generator=gen, dtype=torch.float64)
    args = (shape.stride, shape.padding, shape.output_padding, shape.groups, shape.dilation)
    return x, w, args, getattr(F, f"conv_transpose{shape.ndim}d")(x, w, None, *args)


def run_on(backend: str, x, w, b, *args, method: str = "col2im") -> torch.Tensor:
    """``tconv_lib.conv_transpose`` on torch tensors, or on NumPy copies of them."""
    if backend == "numpy":
        return torch.from_numpy(np.ascontiguousarray(tconv_lib.conv_transpose(
            x.numpy(), w.numpy(), None if b is None else b.numpy(), *args, method=method)))
    return tconv_lib.conv_transpose(x, w, b, *args, method=method)


def case_tensors(case: tuple, n: int, c_in: int, c_out: int, groups: int, seed: int,
                 bias: bool = False) -> tuple:
    """``(x, w, b, args)`` in float64 for a ``(spatial, kernel, stride, padding,
    output_padding, dilation)`` case; ``args`` in PyTorch's order after the bias."""
    spatial, k, s, p, op, d = case
    kernel = (k,) * len(spatial) if isinstance(k, int) else k
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((n, c_in) + spatial, generator=gen, dtype=torch.float64)
    w = torch.randn((c_in, c_out // groups) + kernel, generator=gen, dtype=torch.float64)
    b = torch.randn(c_out, generator=gen, dtype=torch.float64) if bias else None
    return x, w, b, (s, p, op, groups, d)


def check_on(backend: str, x, w, b, *args, method: str = "col2im") -> None:
    """The backend's result equals PyTorch's float64 ``conv_transpose{1,2,3}d``."""
    expected = getattr(F, f"conv_transpose{w.ndim - 2}d")(x, w, b, *args)
    torch.testing.assert_close(run_on(backend, x, w, b, *args, method=method), expected,
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", ["auto", *tconv_lib.METHODS])
@pytest.mark.parametrize("shape", [small(s) for s in SUITE], ids=lambda s: s.name)
@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_suite_geometry_matches_torch(shape: Shape, method: str, backend: str) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((shape.n, shape.c_in) + shape.spatial, generator=gen, dtype=torch.float64)
    w = torch.randn((shape.c_in, shape.c_out // shape.groups) + (shape.kernel,) * shape.ndim,
                    generator=gen, dtype=torch.float64)
    b = torch.randn(shape.c_out, generator=gen, dtype=torch.float64)
    args = (shape.stride, shape.padding, shape.output_padding, shape.groups, shape.dilation)
    expected = getattr(F, f"conv_transpose{shape.ndim}d")(x, w, b, *args)
    assert tuple(expected.shape[2:]) == shape.out_spatial
    got = run_on(backend, x, w, b, *args, method=method)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape", [small(s) for s in SUITE[:4]], ids=lambda s: s.name)
def test_unbatched_fast_path(shape: Shape) -> None:
    x, w, args, expected = problem(shape, 2, batched=False)
    torch.testing.assert_close(tconv_lib.conv_transpose(x, w, None, *args), expected,
                               rtol=1e-10, atol=1e-10)


def test_auto_picks_the_fast_path() -> None:
    x, w = np.zeros((1, 2, 4, 4)), np.zeros((2, 3, 4, 4))
    assert tconv_lib.conv_transpose(x, w, stride=2, padding=1).shape == (1, 3, 8, 8)
    assert tconv_lib.choose_method(x, w, stride=2, padding=1) == "col2im"
    assert tconv_lib.choose_method(x[0], w, None, 2, 1) == "col2im"          # unbatched
    with pytest.raises(ValueError, match=r"output_padding.*=\(2, 2\)"):   # checked
        tconv_lib.choose_method(x, w, stride=2, output_padding=2)


# Depthwise geometries for col2im's per-tap path: channel multiplier > 1, kernels smaller than
# the stride (phases without a tap), dilation, output_padding, 1-D and 3-D.
DEPTHWISE = [
    # (spatial, groups, mult, kernel, stride, padding, output_padding, dilation)
    ((7, 6), 5, 1, 4, 2, 1, 0, 1),
    ((5, 4), 3, 2, (3, 2), (2, 3), (1, 0), (1, 2), 1),
    ((6,), 4, 3, 2, 3, 0, 2, 1),
    ((5, 5), 4, 1, 3, 2, 2, 1, 2),
    ((3, 4, 3), 2, 2, 2, 2, 0, 1, 1),
    ((4, 4), 6, 1, 1, 3, 1, 0, 1),
    ((6, 5), 3, 2, 2, 2, 0, 1, 3),            # d = 3: residue 1 has only a tap one row down
    ((4, 5), 2, 1, 1, 2, 0, 1, 1),            # k < s with s = 2 last: pairs with a zero plane
    ((2, 5), 2, 1, 4, (4, 2), (3, 1), 0, 1),  # padding crops residues 1 and 2 of axis 0 away
]


def check_depthwise(case: tuple, backend: str, seed: int) -> None:
    """A ``DEPTHWISE`` case (batch 2, float64) on ``backend`` equals PyTorch's result."""
    spatial, g, mult, k, s, p, op, d = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((2, g) + spatial, generator=gen, dtype=torch.float64)
    w = torch.randn((g, mult) + ((k,) * len(spatial) if isinstance(k, int) else k),
                    generator=gen, dtype=torch.float64)
    check_on(backend, x, w, None, s, p, op, g, d)


@pytest.mark.parametrize("blocked", [False, True], ids=["one-block", "one-group-per-block"])
@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("case", DEPTHWISE, ids=str)
def test_depthwise_per_tap_path(case, backend: str, blocked: bool, monkeypatch) -> None:
    from tconv_lib.methods import _depthwise

    if blocked:  # a budget of one byte: every block holds a single group
        monkeypatch.setattr(_depthwise, "PLANE_BLOCK_BYTES", 1)
        monkeypatch.setattr(_depthwise, "PAIRS_BLOCK_BYTES", 1)
    check_depthwise(case, backend, seed=3)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_depthwise_writes_pairs_where_col2im_would(backend: str, monkeypatch) -> None:
    """On torch with s = 2 last, the depthwise planes go through col2im's pairwise shuffle."""
    from tconv_lib.methods import col2im

    calls, real = [], col2im.shuffle_pairs
    monkeypatch.setattr(col2im, "shuffle_pairs", lambda *a: calls.append(a) or real(*a))
    for case in DEPTHWISE:
        calls.clear()
        check_depthwise(case, backend, seed=5)
        stride = case[4] if isinstance(case[4], tuple) else (case[4],) * len(case[0])
        expected = backend == "torch" and stride[-1] == 2 and max(stride) <= 4
        assert bool(calls) == expected, f"{case}: pairs {bool(calls)}, expected {expected}"


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_depthwise_never_reads_stale_scratch(backend: str, nan_scratch) -> None:
    """The padded grid, the planes and the products are written before they are read."""
    for case in DEPTHWISE:
        check_depthwise(case, backend, seed=4)


@pytest.mark.parametrize("shape", [small(s) for s in SUITE], ids=lambda s: s.name)
def test_gpu_code_paths_on_cpu_tensors(shape: Shape, monkeypatch) -> None:
    """The paths col2im takes on a GPU (``fold`` for 1-D/2-D, one permuted pixel-shuffle copy,
    one depthwise block), run on CPU tensors by pretending the CPU is a GPU."""
    from tconv_lib import backend

    monkeypatch.setattr(backend, "on_gpu", backend.is_torch)
    x, w, args, expected = problem(shape, 4)
    torch.testing.assert_close(tconv_lib.conv_transpose(x, w, None, *args), expected,
                               rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(tconv_lib.conv_transpose(x[0], w, None, *args), expected[0],
                               rtol=1e-10, atol=1e-10)
    if x.dim() in (4, 5):      # a channels-last input: the same values, a channels-last output
        fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
        y = tconv_lib.conv_transpose(x.contiguous(memory_format=fmt), w, None, *args)
        torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-10)
        assert y.is_contiguous(memory_format=fmt)


def test_gpu_path_without_fold_when_output_padding_reaches_the_stride(monkeypatch) -> None:
    """``output_padding >= stride`` (allowed when ``dilation > stride``) adds a block row that
    ``fold`` cannot express: the GPU path must fall back to the block adds."""
    from tconv_lib import backend
    from tconv_lib._args import check_transpose
    from tconv_lib.methods import col2im_gpu

    monkeypatch.setattr(backend, "on_gpu", backend.is_torch)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn((2, 3, 5, 4), generator=gen, dtype=torch.float64)
    w = torch.randn((3, 2, 3, 2), generator=gen, dtype=torch.float64)
    args = ((1, 2), (1, 0), (1, 1), 1, (2, 3))          # op 1 >= stride 1 on the first axis
    assert not col2im_gpu.fold_applies(check_transpose(x, w, None, *args)[1])
    assert col2im_gpu.fold_applies(check_transpose(x, w, None, 2, 1, 1, 1, 2)[1])
    torch.testing.assert_close(tconv_lib.conv_transpose(x, w, None, *args),
                               F.conv_transpose2d(x, w, None, *args), rtol=1e-10, atol=1e-10)


# Branches that only torch takes, each against the NumPy path that computes the same thing
# another way: (input shape, weight shape, (stride, padding, output_padding, groups, dilation),
# method, pretend the CPU is a GPU, the torch-only function that must run).
TORCH_BRANCHES = {
    "matrix: torch.sparse, not scipy.sparse": (
        (2, 4, 5, 4), (4, 3, 3, 2), (2, 1, 1, 2, 1), "matrix", False, (torch.sparse, "mm")),
    "col2im 2-D: fold (GPU), not block adds": (
        (2, 3, 5, 6), (3, 2, 3, 3), ((2, 1), 1, (1, 0), 1, 1), "col2im", True,
        ("col2im_gpu", "fold")),
    "col2im 1-D: fold (GPU), not block adds": (
        (2, 3, 7), (3, 2, 4), (3, 1, 2, 1, 1), "col2im", True,
        ("col2im_gpu", "fold")),
    "depthwise: addcmul_, not a product into scratch": (
        (2, 4, 5, 5), (4, 2, 3, 3), (2, 1, 1, 4, 1), "col2im", False,
        (torch.Tensor, "addcmul_")),
    "k == s tiles: last-axis pairs as complex numbers, not two strided copies": (
        (2, 4, 5, 3), (4, 3, 2, 2), (2, 0, 0, 1, 1), "col2im", False, (torch, "complex")),
    "3-D pixel shuffle: one permuted copy (GPU), not per-phase copies": (
        (1, 2, 3, 3, 2), (2, 2, 3, 2, 3), (2, 1, 0, 1, 1), "col2im", True, None),
}


@pytest.mark.parametrize("case", TORCH_BRANCHES.values(), ids=TORCH_BRANCHES.keys())
def test_torch_only_branches_agree_with_numpy(case, monkeypatch) -> None:
    from tconv_lib import backend
    from tconv_lib.methods import col2im_gpu

    xs, ws, args, method, pretend_gpu, spied = case
    if pretend_gpu:
        monkeypatch.setattr(backend, "on_gpu", backend.is_torch)     # NumPy is never "on GPU"
    calls = []
    if spied is not None:
        owner, name = (col2im_gpu, spied[1]) if spied[0] == "col2im_gpu" else spied
        real = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, **k: calls.append(name) or real(*a, **k))
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(xs, generator=gen, dtype=torch.float64)
    w = torch.randn(ws, generator=gen, dtype=torch.float64)
    y_numpy = tconv_lib.conv_transpose(x.numpy(), w.numpy(), None, *args, method=method)
    assert calls == []
    y_torch = tconv_lib.conv_transpose(x, w, None, *args, method=method)
    assert spied is None or calls, f"the torch branch {spied} did not run"
    np.testing.assert_allclose(y_torch.numpy(), y_numpy, rtol=1e-12, atol=1e-12)
    expected = getattr(F, f"conv_transpose{len(xs) - 2}d")(x, w, None, *args)
    torch.testing.assert_close(y_torch, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("layout", ["aligned", "odd offset", "grad"])
def test_interleave_into_pairs_or_copies(dtype: torch.dtype, layout: str) -> None:
    """backend.interleave_into writes even/odd into [..., 0]/[..., 1], whichever way it goes:
    one complex write when the pairs are aligned float32/float64 pairs and nothing records a
    gradient, else two copies (which keep autograd's graph)."""
    from tconv_lib import backend

    gen = torch.Generator().manual_seed(3)
    even, odd = (torch.randn(3, 4, 5, generator=gen).to(dtype) for _ in range(2))
    base = torch.full((3, 4, 11), float("nan"), dtype=dtype)
    target = base[..., 1:].unflatten(-1, (5, 2)) if layout == "odd offset" else \
        base[..., :10].unflatten(-1, (5, 2))
    if layout == "grad":
        even.requires_grad_(True)
    backend.interleave_into(target, even, odd)
    assert torch.equal(target[..., 0], even.detach()), "even elements not at [..., 0]"
    assert torch.equal(target[..., 1], odd), "odd elements not at [..., 1]"
    assert target.requires_grad == (layout == "grad"), "the copy branch must keep the graph"
    untouched = base[..., 0] if layout == "odd offset" else base[..., 10]
    assert torch.isnan(untouched).all(), "wrote outside the target"


@pytest.mark.parametrize("missing", ["even", "odd"])
def test_interleave_into_zeros_for_a_missing_side(missing: str) -> None:
    """``None`` on one side writes zeros there (a residue no tap reaches)."""
    from tconv_lib import backend

    values = torch.arange(1.0, 7.0).reshape(2, 3)
    target = torch.full((2, 3, 2), float("nan"))
    backend.interleave_into(target, None if missing == "even" else values,
                            None if missing == "odd" else values)
    zeros, filled = (0, 1) if missing == "even" else (1, 0)
    assert torch.equal(target[..., zeros], torch.zeros(2, 3)), f"{missing} side not zeroed"
    assert torch.equal(target[..., filled], values)


# s = 2 on the last axis: the torch pixel shuffle writes planes two by two (shuffle_pairs), with
# no zeroing pass first. Padding odd and even (the pairs start on either residue), odd output
# widths (a last column with no partner), residues without taps on the last axis or before it
# (dilation sharing a factor with the stride), padding cropping whole residues away, 1-D to 3-D.
PAIRS = [
    # (spatial, kernel, stride, padding, output_padding, dilation)
    ((4, 5), 4, 2, 1, 0, 1),
    ((4, 5), 3, 2, 1, 1, 1),
    ((3, 4), 3, 2, 0, 0, 1),
    ((3, 4), 3, 2, 1, 0, 1),
    ((5, 6), 3, 2, 2, 1, 2),
    ((4, 5), 3, (3, 2), (1, 2), 0, (3, 2)),
    ((2, 3), 4, (4, 2), (3, 1), 0, 1),
    ((5,), 2, 2, 3, 1, 1),
    ((2, 3, 4), (2, 3, 3), (1, 3, 2), (0, 1, 1), 0, 1),
]


@pytest.mark.parametrize("case", PAIRS, ids=str)
def test_pixel_shuffle_in_pairs(case, monkeypatch, block_adds) -> None:
    """Every output element is written (the output starts as NaN) and equals PyTorch's."""
    from tconv_lib import backend
    from tconv_lib.methods import col2im

    real_empty, calls = backend.empty_cpu, []

    def nan_filled(*args, **kwargs):
        y = real_empty(*args, **kwargs)
        y[...] = float("nan")
        return y

    monkeypatch.setattr(backend, "empty_cpu", nan_filled)
    real_pairs = col2im.shuffle_pairs
    monkeypatch.setattr(col2im, "shuffle_pairs",
                        lambda *a, **k: calls.append(1) or real_pairs(*a, **k))
    monkeypatch.setattr(col2im, "_MAX_POSITIONS_BATCH_INNER", 0)    # pairs: batch outside
    x, w, b, args = case_tensors(case, 2, 3, 4, 1, seed=11, bias=True)
    check_on("torch", x, w, b, *args)
    assert calls, "the pixel shuffle did not go pair by pair"


# Dilations sharing a factor with the stride: taps land only on residues that are multiples of
# gcd(s, d), and col2im keeps planes for those alone (residue_step); every other output
# residue must come out zero (plus bias). Mixed axes, output_padding up to max(s, d) - 1.
SHARED_FACTOR = [
    # (spatial, kernel, stride, padding, output_padding, dilation)
    ((5, 6), 3, 2, 2, 1, 2),
    ((4, 5), 2, 4, 1, 3, 2),
    ((6,), 3, 2, 0, 3, 4),
    ((3, 4, 3), 2, (2, 3, 2), 1, (1, 2, 1), (2, 3, 2)),
    ((5, 5), (3, 2), (4, 2), (2, 0), (1, 0), (6, 1)),
]


@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("case", SHARED_FACTOR, ids=str)
def test_col2im_planes_only_where_taps_land(case, backend: str, block_adds) -> None:
    from tconv_lib._args import check_transpose
    from tconv_lib.methods import col2im

    x, w, b, args = case_tensors(case, 2, 3, 4, 1, seed=5, bias=True)
    _, geo, _ = check_transpose(x, w, None, *args)
    assert max(col2im.residue_step(x, geo)) > 1, "the case should skip some residues"
    check_on(backend, x, w, b, *args)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_huge_page_outputs_are_fresh_and_right(backend: str, monkeypatch) -> None:
    """Outputs past backend.HUGE_PAGE_MIN_BYTES: torch tensors are advised onto huge pages
    (NumPy advises its own large arrays), and stay ordinary arrays: right values, fresh each
    call (never the workspace), writable, resizable."""
    from tconv_lib import _small
    from tconv_lib import backend as be

    advised: list[tuple[int, int]] = []
    monkeypatch.setattr(_small, "MAX_WORK", 0)        # the larger problems' routes
    monkeypatch.setattr(be, "HUGE_PAGE_MIN_BYTES", 1)
    monkeypatch.setattr(be.empty_cpu, "__defaults__", (1,))
    monkeypatch.setattr(be, "_advise_huge_pages", lambda a, n: advised.append((a, n)))
    x, w, args, expected = problem(replace(small(SUITE[4]), spatial=(9, 7)), 6)
    if backend == "numpy":
        x, w = x.numpy(), w.numpy()
    first = tconv_lib.conv_transpose(x, w, None, *args)
    second = tconv_lib.conv_transpose(x, w, None, *args)
    got = torch.as_tensor(np.asarray(first)) if backend == "numpy" else first
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    if backend == "torch":
        assert (first.data_ptr(), first.numel() * 8) in advised, advised
    else:
        assert not advised, advised
    first[...] = 0                                   # writable, and shares nothing with ...
    assert float(abs(second).sum()) > 0              # ... the next call's result
    if backend == "torch":
        first.resize_(3)                             # an ordinary, resizable tensor


def test_huge_page_advice_covers_whole_pages_inside_the_array(monkeypatch) -> None:
    from tconv_lib import backend as be

    calls = []

    class FakeLibc:
        def madvise(self, start: int, length: int, advice: int) -> int:
            calls.append((start, length, advice))
            return 0

    monkeypatch.setattr(be, "_libc", FakeLibc())
    mib = 1 << 20
    be._advise_huge_pages(5 * mib + 64, 7 * mib)          # [5 MiB + 64, 12 MiB + 64)
    be._advise_huge_pages(3 * mib, mib)                   # no whole 2 MiB page inside
    assert [c[:2] for c in calls] == [(6 * mib, 6 * mib)], calls
    be._advise_huge_pages(4 * mib, 4 * mib)               # exactly [4, 8) MiB
    assert calls[-1][:2] == (4 * mib, 4 * mib)


@pytest.mark.parametrize("batch_inner", [False, True], ids=["batch-outer", "batch-inner"])
@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("case", SHARED_FACTOR + [((3, 4), 4, 2, 1, 0, 1), ((5,), 5, 3, 2, 1, 1),
                                                  ((2, 3, 2), 3, 2, 1, 1, 1)], ids=str)
def test_col2im_batch_axis_inner_or_outer(case, backend: str, batch_inner: bool,
                                          monkeypatch, block_adds) -> None:
    """Both layouts of the columns and phase planes (batch before or after the positions)."""
    from tconv_lib._args import check_transpose
    from tconv_lib.methods import col2im

    monkeypatch.setattr(col2im, "_MAX_POSITIONS_BATCH_INNER", 10 ** 9 if batch_inner else 0)
    x, w, b, args = case_tensors(case, 3, 4, 4, 2, seed=7)
    _, geo, _ = check_transpose(x, w, None, *args)
    assert col2im.batch_inner(x, geo) == batch_inner
    check_on(backend, x, w, b, *args)


TILED = [
    # (n, c_in, c_out, groups, spatial, kernel = stride)
    (3, 4, 6, 1, (5, 3), 2),
    (2, 6, 4, 2, (4, 3, 2), 2),
    (4, 3, 2, 1, (7,), 3),
    (1, 4, 4, 4, (3, 5), (3, 2)),
    (2, 3, 2, 1, (3, 2), (6, 2)),           # a stride above 4: one permuted copy per chunk
]


@pytest.mark.parametrize("chunk_bytes", [1, 6000, 1 << 30], ids=["row", "rows-or-samples", "one"])
@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("case", TILED, ids=str)
def test_tiled_in_chunks(case, backend: str, chunk_bytes: int, monkeypatch) -> None:
    """k == s without padding: one GEMM and one copy per chunk of rows or samples."""
    from tconv_lib._args import check_transpose
    from tconv_lib.methods import col2im

    monkeypatch.setattr(col2im, "CHUNK_BYTES", {"numpy": chunk_bytes, "torch": chunk_bytes})
    n, c_in, c_out, g, spatial, k = case
    x, w, b, args = case_tensors((spatial, k, k, 0, 0, 1), n, c_in, c_out, g, seed=8)
    _, geo, _ = check_transpose(x, w, None, *args)
    assert col2im.tiles_in_chunks(geo)
    check_on(backend, x, w, b, *args)


@pytest.mark.parametrize("chunk_bytes", [1, 5000, 1 << 30], ids=["sample", "samples", "one"])
@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("shape", [replace(small(s), n=5) for s in SUITE
                                   if s.groups == 1 and s.kernel != s.stride],
                         ids=lambda s: s.name)
def test_col2im_in_chunks_of_samples(shape: Shape, backend: str, chunk_bytes: int,
                                     monkeypatch, block_adds) -> None:
    """Overlapping taps: GEMM, block adds and shuffle per chunk of whole samples."""
    from tconv_lib.methods import col2im

    monkeypatch.setattr(col2im, "SAMPLE_CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(col2im, "_MAX_POSITIONS_BATCH_INNER", 0)   # chunks need batch outside
    x, w, args, _ = problem(shape, 9)
    check_on(backend, x, w, None, *args)
