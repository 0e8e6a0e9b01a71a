"""col2im's GPU routes and the autotuner that picks among them.

The routes are plain torch code (plus one Triton kernel), so each is checked here on CPU tensors
in float64 against ``torch.nn.functional``; ``tests/test_gpu.py`` repeats that on CUDA. The
Triton kernel runs under Triton's interpreter (``TRITON_INTERPRET=1``) when no GPU is present.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch
import torch.nn.functional as F

# conftest.py sets TRITON_INTERPRET=1 when there is no GPU (before any kernel is decorated)
assert torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"

from tconv_lib import _autotune  # noqa: E402
from tconv_lib._args import check_transpose  # noqa: E402
from tconv_lib.bench import SUITE, quick_version  # noqa: E402
from tconv_lib.methods import col2im_gpu  # noqa: E402

FN = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}

# (input shape, weight shape, (stride, padding, output_padding, groups, dilation))
CASES = {
    "2-D k4 s2 p1": ((3, 4, 5, 6), (4, 3, 4, 4), (2, 1, 0, 1, 1)),
    "2-D k3 s2 p1 op1, one sample": ((1, 4, 5, 5), (4, 2, 3, 3), (2, 1, 1, 1, 1)),
    "2-D mixed axes, groups": ((2, 6, 4, 5), (6, 2, 3, 2), ((2, 1), (1, 0), (1, 0), 2, (1, 2))),
    "2-D dilated, op >= s": ((2, 3, 5, 4), (3, 2, 3, 2), ((1, 2), (1, 0), (1, 1), 1, (2, 3))),
    "2-D k == s, padded": ((2, 3, 4, 4), (3, 2, 2, 2), (2, 1, 0, 1, 1)),
    "2-D k == s, no padding": ((2, 3, 4, 3), (3, 5, 3, 3), (3, 0, 0, 1, 1)),
    "1-D k16 s8 p4": ((2, 3, 9), (3, 2, 16), (8, 4, 0, 1, 1)),
    "1-D k < s": ((2, 2, 5), (2, 3, 2), (3, 0, 2, 1, 1)),
    "3-D k == s": ((2, 3, 3, 2, 3), (3, 2, 2, 2, 2), (2, 0, 0, 1, 1)),
    "3-D general": ((1, 2, 3, 3, 2), (2, 2, 3, 2, 3), (2, 1, 0, 1, 1)),
    "depthwise 2-D": ((2, 4, 5, 6), (4, 1, 4, 4), (2, 1, 0, 4, 1)),
    "depthwise 2-D, multiplier 2, dilated": ((2, 3, 5, 4), (3, 2, 3, 3), (2, 2, 1, 3, 2)),
    "depthwise 1-D": ((2, 3, 7), (3, 2, 5), (3, 1, 2, 3, 1)),
    "depthwise 3-D": ((1, 2, 3, 3, 3), (2, 1, 2, 3, 2), (2, 0, 1, 2, 1)),
}
for _shape in SUITE:                        # every suite shape, scaled down
    _q = quick_version(_shape)
    CASES[f"suite {_q.name}"] = (
        (_q.n, _q.c_in) + _q.spatial, (_q.c_in, _q.c_out // _q.groups) + (_q.kernel,) * _q.ndim,
        (_q.stride, _q.padding, _q.output_padding, _q.groups, _q.dilation))


def problem(case, dtype=torch.float64, device="cpu"):
    xs, ws, args = case
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(xs, generator=gen, dtype=torch.float64).to(device, dtype)
    w = torch.randn(ws, generator=gen, dtype=torch.float64).to(device, dtype)
    _, geo, _ = check_transpose(x, w, None, *args)
    expected = FN[len(ws) - 2](x.double(), w.double(), None, *args)
    return x, w, geo, expected


try:
    import triton  # noqa: F401
    HAVE_TRITON = True
except ImportError:
    HAVE_TRITON = False

# On CPU tensors the Triton routes run under the interpreter; with a GPU present Triton compiles
# for it instead, and tests/test_gpu.py runs every route on CUDA tensors.
CPU_TRITON = HAVE_TRITON and not torch.cuda.is_available()
ROUTE_CASES = [(name, route) for name, case in CASES.items()
               for route in col2im_gpu.routes(*problem(case)[:3], triton=CPU_TRITON)]


@pytest.mark.parametrize(("case", "route"), ROUTE_CASES, ids=[f"{c}-{r}" for c, r in ROUTE_CASES])
def test_every_route_matches_pytorch_float64(case: str, route: str, monkeypatch) -> None:
    from tconv_lib import backend

    monkeypatch.setattr(backend, "on_gpu", backend.is_torch)    # the GPU's branches, on CPU
    x, w, geo, expected = problem(CASES[case])
    got = col2im_gpu.route(route)(x, w, geo)
    assert got.shape == expected.shape, (
        f"route {route!r}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}")
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10,
                               msg=lambda m: f"route {route!r} on {case}: {m}")
    assert got.is_contiguous(), f"route {route!r} returned a non-contiguous view"


def test_routes_offered_follow_the_geometry() -> None:
    def names(case: str, triton: bool = False) -> list[str]:
        return list(col2im_gpu.routes(*problem(CASES[case])[:3], triton=triton))

    assert names("2-D k4 s2 p1") == ["fold", "fold_channel_major", "planes"]
    assert names("2-D k3 s2 p1 op1, one sample") == ["fold", "planes"]   # N == 1: no copy
    assert names("2-D dilated, op >= s") == ["planes"]         # fold cannot add the extra row
    assert names("2-D k == s, padded") == ["fold", "fold_channel_major", "shuffle", "planes"]
    assert names("3-D k == s") == ["shuffle", "planes"]
    assert names("3-D general") == ["planes"]
    assert names("depthwise 2-D") == ["taps", "depthwise_fold"]
    assert names("depthwise 3-D") == ["taps"]
    triton_cols = ["triton_cols", "triton_cols_channel_major"]
    assert names("2-D k4 s2 p1", True) == ["fold", "fold_channel_major", *triton_cols,
                                           "triton_cols_transposed", "planes"]
    assert names("2-D mixed axes, groups", True) == ["fold", "fold_channel_major",
                                                     *triton_cols, "planes"]   # g > 1
    assert names("2-D dilated, op >= s", True) == [*triton_cols, "triton_cols_transposed",
                                                   "planes"]
    assert names("3-D k == s", True) == ["shuffle", "planes"]
    assert names("depthwise 2-D", True) == ["taps", "depthwise_fold", "triton"]
    assert names("depthwise 3-D", True) == ["taps"]
    # by default, Triton only for CUDA tensors
    x, w, geo, _ = problem(CASES["depthwise 2-D"])
    assert "triton" not in col2im_gpu.routes(x, w, geo)


# ---------------------------------------------------------------- the autotuner's logic

@pytest.fixture
def tuner():
    was = _autotune.enabled()
    _autotune.set_enabled(True)
    yield _autotune
    _autotune.set_enabled(was)


def fake_routes(values: dict[str, float], calls: list[str], raises: str = "") -> dict:
    def make(name: str, value: float):
        def run():
            calls.append(name)
            if name == raises:
                raise RuntimeError("no kernel for this shape")
            return torch.full((3,), value)
        return run
    return {name: make(name, v) for name, v in values.items()}


def test_autotune_picks_the_fastest_and_remembers_it(tuner) -> None:
    calls: list[str] = []
    routes = fake_routes({"a": 1.0, "b": 1.0, "c": 1.0}, calls)
    speeds = {"a": 3e-3, "b": 1e-3, "c": 2e-3}
    timed: list[str] = []

    def timer(fn):
        name = next(k for k, v in routes.items() if v is fn)
        timed.append(name)
        return speeds[name]

    assert tuner.choose("p", routes, timer, tuner.close_enough) == "b"
    assert sorted(timed) == ["a", "b", "c"]
    assert tuner.measured()["p"] == speeds
    timed.clear()
    assert tuner.choose("p", routes, timer, tuner.close_enough) == "b"
    assert timed == [], "a known problem must not be timed again"
    speeds["c"] = 1e-6          # a different key is timed afresh
    assert tuner.choose("q", routes, timer, tuner.close_enough) == "c"


def test_autotune_skips_wrong_and_failing_routes(tuner) -> None:
    calls: list[str] = []
    routes = fake_routes({"default": 1.0, "wrong": 1.5, "broken": 1.0, "ok": 1.0}, calls,
                         raises="broken")
    speeds = {"default": 3.0, "wrong": 0.1, "broken": 0.1, "ok": 2.0}

    def timer(fn):
        return speeds[next(k for k, v in routes.items() if v is fn)]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert tuner.choose("p", routes, timer, tuner.close_enough) == "ok"
    text = " ".join(str(w.message) for w in caught)
    assert "'wrong' disagrees" in text and "'broken' failed" in text, text
    assert set(tuner.measured()["p"]) == {"default", "ok"}


def test_autotune_default_errors_propagate_and_off_means_default(tuner) -> None:
    calls: list[str] = []
    with pytest.raises(RuntimeError, match="no kernel"):
        tuner.choose("p", fake_routes({"d": 1.0, "e": 1.0}, calls, raises="d"),
                     lambda fn: 1.0, tuner.close_enough)
    tuner.set_enabled(False)
    calls.clear()
    assert tuner.choose("p", fake_routes({"d": 1.0, "e": 1.0}, calls),
                        lambda fn: pytest.fail("timed while disabled"),
                        tuner.close_enough) == "d"
    assert calls == [], "a disabled autotuner runs nothing itself"
    with pytest.raises(ValueError, match="at least one route"):
        tuner.choose("p", {}, lambda fn: 1.0, tuner.close_enough)


def test_autotune_does_not_decide_on_non_finite_data(tuner) -> None:
    calls: list[str] = []
    routes = fake_routes({"d": float("nan"), "e": float("nan")}, calls)
    assert tuner.choose("p", routes, lambda fn: pytest.fail("timed"), tuner.close_enough) == "d"
    assert "p" not in tuner.measured(), "the next call with finite data must decide"


def test_per_call_rounds_and_the_slow_route_shortcut() -> None:
    asked: list[int] = []

    def fast(calls: int) -> float:          # 0.1 ms a call
        asked.append(calls)
        return 1e-4

    assert _autotune.per_call(fast, rounds=3, round_s=1e-3) == 1e-4
    assert asked == [1, 10, 10, 10]         # one probe, then three rounds of 10 calls
    asked.clear()

    def slow(calls: int) -> float:          # 0.2 s a call: measured once
        asked.append(calls)
        return 0.2

    assert _autotune.per_call(slow) == 0.2 and asked == [1]


def test_close_enough() -> None:
    ref = torch.tensor([1.0, -2.0, 4.0])
    assert _autotune.close_enough(ref + 1e-3, ref)
    assert not _autotune.close_enough(ref + 1.0, ref)                 # off by a whole term
    assert not _autotune.close_enough(ref[:2], ref)                   # shape
    assert not _autotune.close_enough(ref.double(), ref)              # dtype
    assert not _autotune.close_enough(torch.tensor([1.0, float("inf"), 4.0]), ref)
    assert _autotune.close_enough(torch.empty(0), torch.empty(0))
    assert not _autotune.close_enough(ref.double() + 1e-6, ref.double())   # float64: tighter


def test_no_autotune_off_cuda(monkeypatch) -> None:
    """CPU tensors (here pretending to be on a GPU) take the default route, untimed."""
    from tconv_lib import backend

    monkeypatch.setattr(backend, "on_gpu", backend.is_torch)
    monkeypatch.setattr(_autotune, "choose", lambda *a: pytest.fail("autotuned a CPU tensor"))
    x, w, geo, expected = problem(CASES["2-D k4 s2 p1"])
    torch.testing.assert_close(col2im_gpu.conv_transpose(x, w, geo), expected)


def test_problem_key_separates_what_can_change_the_choice(monkeypatch) -> None:
    x, w, geo, _ = problem(CASES["2-D k4 s2 p1"], torch.float32)
    key = col2im_gpu.problem_key(x, w, geo)
    assert hash(key) == hash(col2im_gpu.problem_key(x.clone(), w.clone(), geo))
    assert key != col2im_gpu.problem_key(x.double(), w.double(), geo)
    assert key != col2im_gpu.problem_key(x.transpose(2, 3), w, geo)      # another layout
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    assert key != col2im_gpu.problem_key(x, w, geo)


# ---------------------------------------------------------------- the Triton kernel

@pytest.mark.skipif(not HAVE_TRITON, reason="needs Triton")
@pytest.mark.parametrize("route", ["triton", "triton_cols", "triton_cols_channel_major",
                                   "triton_cols_transposed"])
def test_triton_routes_in_float32_over_several_blocks(route: str) -> None:
    """Several position blocks per channel, a masked tail, a channel multiplier, float32."""
    from tconv_lib.methods import _triton_col2im

    device = "cuda" if torch.cuda.is_available() else "cpu"
    c_in = 2 if route == "triton" else 3
    case = ((2, c_in, 23, 31), (c_in, 2, 4, 4), (2, 1, 1, 2 if route == "triton" else 1, 1))
    x, w, geo, expected = problem(case, torch.float32, device)
    assert 47 * 62 > _triton_col2im.BLOCK
    got = col2im_gpu.route(route)(x, w, geo)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)
