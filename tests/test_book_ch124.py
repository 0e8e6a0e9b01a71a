"""Chapters 1, 2 and 4 against PyTorch float64: the numbers glued into their prose and the
claims their text makes (the convolution's output size and its floor, which convolution
matrices are Toeplitz, the block rule of the 2-D matrix, the stride-1 centre count, the size
formula's range, the doubling that needs ``output_padding``, TensorFlow's ``'VALID'`` sizes,
the table of output sizes). PyTorch is the oracle; the book's glued values come from the built
book (``_build/jupyter_execute/book/*.glue.json``, written by ``make book``)."""

from __future__ import annotations

import ast
import html
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.xdist_group("book")

ROOT = Path(__file__).resolve().parents[1]
GLUE = ROOT / "_build" / "jupyter_execute" / "book"


@pytest.fixture(autouse=True)
def _float64():
    """PyTorch's default dtype float64 in this module's tests only (exact comparisons)."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _glued(built_book: Path, chapter: str) -> dict[str, str]:
    """The chapter's glued values as the prose shows them (strings unquoted)."""
    path = GLUE / f"{chapter}.glue.json"
    assert path.is_file(), f"{path} missing: the book was built without its glue records"
    out = {}
    for name, rec in json.loads(path.read_text()).items():
        text = rec["data"]["text/plain"]
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        out[name] = str(value)
    return out


def _torch_conv_matrix(weight: torch.Tensor, input_size: tuple[int, ...], **kw) -> np.ndarray:
    """C of ``F.conv{1,2}d(., weight, **kw)`` on one sample, read off unit vectors."""
    conv = {1: F.conv1d, 2: F.conv2d}[len(input_size)]
    n = int(np.prod(input_size))
    eye = torch.eye(n).reshape((n, 1) + input_size)
    return conv(eye, weight, **kw).reshape(n, -1).T.numpy()


def _is_toeplitz(m: np.ndarray) -> bool:
    return bool(np.array_equal(m[:-1, :-1], m[1:, 1:]))


# --- chapter 1 -----------------------------------------------------------------------------------

def test_ch1_output_size_and_its_floor(built_book: Path) -> None:
    """The example's o (5 inputs, k = 3, s = 2), C's shape, and the lengths that share o."""
    g = _glued(built_book, "01_matrix")
    w = torch.tensor([[[1.0, 2.0, 3.0]]])
    o = F.conv1d(torch.zeros(1, 1, 5), w, stride=2).shape[-1]
    assert g["ch1_o_formula"].endswith(f"= {o}")
    # the glued arithmetic is the floor formula's, and evaluates to o
    inner = re.fullmatch(r"⌊\((\d+) − (\d+) − 1\)/(\d+)⌋ \+ 1 = \d+", g["ch1_o_formula"])
    assert inner, g["ch1_o_formula"]
    i, dk, s = map(int, inner.groups())
    assert (i - dk - 1) // s + 1 == o
    assert g["ch1_c_shape"] == f"{o} × 5"
    same = [n for n in range(3, 30) if F.conv1d(torch.zeros(1, 1, n), w, stride=2).shape[-1] == o]
    assert g["ch1_same_o"] == " and ".join(map(str, same))


def test_ch1_which_matrices_are_toeplitz(built_book: Path) -> None:
    """Only the 1-D stride-1 matrix is Toeplitz; the 2-D stride-1 one is not (the pitfall used
    to say stride 1 was enough)."""
    g = _glued(built_book, "01_matrix")
    w1 = torch.tensor([[[1.0, 2.0, 3.0]]])
    w2 = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    cases = {"1-D, stride 1": _torch_conv_matrix(w1, (5,)),
             "1-D, stride 2": _torch_conv_matrix(w1, (5,), stride=2),
             "2-D, stride 1": _torch_conv_matrix(w2, (5, 5))}
    expected = "; ".join(f"{name} {'yes' if _is_toeplitz(m) else 'no'}"
                         for name, m in cases.items())
    assert g["ch1_toeplitz_cases"] == expected
    assert [_is_toeplitz(m) for m in cases.values()] == [True, False, False]


@pytest.mark.parametrize("s,p,d", [(1, 0, 1), (1, 1, 2), (2, 1, 1), (2, 1, 2), (3, 2, 1)])
def test_ch1_block_rule(s: int, p: int, d: int) -> None:
    """Block (a, b) of the 2-D C is the 1-D matrix of kernel row (b - a s + p)/d, or zero; the
    blocks are Toeplitz-arranged (depend on b - a only) at stride 1 and not at stride 2."""
    n = 7
    w2 = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    kw = dict(stride=s, padding=p, dilation=d)
    c = _torch_conv_matrix(w2, (n, n), **kw)
    m = F.conv1d(torch.zeros(1, 1, n), torch.zeros(1, 1, 3), **kw).shape[-1]
    blocks = c.reshape(m, m, n, n).transpose(0, 2, 1, 3)
    for a, b in itertools.product(range(m), range(n)):
        t, off = divmod(b - a * s + p, d)
        want = np.zeros((m, n))
        if off == 0 and 0 <= t < 3:
            want = _torch_conv_matrix(w2[:, :, t], (n,), **kw)
        assert np.array_equal(blocks[a, b], want), (a, b)
    arranged = all(np.array_equal(blocks[a, b], blocks[a + 1, b + 1])
                   for a in range(m - 1) for b in range(n - 1))
    assert arranged == (s == 1)


# --- chapter 2 -----------------------------------------------------------------------------------

def test_ch2_stride1_centre_collects_one_product_per_input(built_book: Path) -> None:
    """2x2 input, 2x2 kernel, stride 1: the centre output entry is a sum of 4 products, one
    from each input (the old glue was the maximum over all entries, not the centre's count)."""
    g = _glued(built_book, "02_three_views")
    pairs = []
    for j in itertools.product(range(2), range(2)):
        for t in itertools.product(range(2), range(2)):
            x, w = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
            x[(0, 0) + j] = w[(0, 0) + t] = 1.0
            if F.conv_transpose2d(x, w)[0, 0, 1, 1] != 0:
                pairs.append((j, t))
    assert g["ch2_2d_s1_centre"] == str(len(pairs))
    assert g["ch2_2d_s1_centre_inputs"] == str(len({j for j, _ in pairs}))


def test_ch2_names_follow_the_transposed_convolution(built_book: Path) -> None:
    """View (a) says the transposed convolution reads i values and returns o: with chapter 1's
    C (5 inputs, k = 3, s = 2) that is i = 2, o = 5 in PyTorch."""
    g = _glued(built_book, "02_three_views")
    y = F.conv_transpose1d(torch.zeros(1, 1, 2), torch.zeros(1, 1, 3), stride=2)
    assert (g["ch2_c_rows"], g["ch2_c_cols"]) == ("2", str(y.shape[-1]))
    text = (ROOT / "book" / "02_three_views.md").read_text()
    assert "$i$ = {glue:text}`ch2_c_rows` and $o$ = {glue:text}`ch2_c_cols`" in text


# --- chapter 4 -----------------------------------------------------------------------------------

def test_ch4_size_formula_range(built_book: Path) -> None:
    """The grid of chapter 4: the formula holds exactly where o >= 1 and op < max(s, d), and
    PyTorch refuses every other combination in it."""
    g = _glued(built_book, "04_shapes_padding")
    checked = refused = 0
    for i, k, s, d in itertools.product((1, 2, 5), (1, 2, 3, 4), (1, 2, 3), (1, 2)):
        for p, op in itertools.product(range(d * (k - 1) + 3), range(max(s, d) + 1)):
            o = (i - 1) * s - 2 * p + d * (k - 1) + op + 1
            try:
                y = F.conv_transpose1d(torch.zeros(1, 1, i), torch.zeros(1, 1, k), stride=s,
                                       padding=p, output_padding=op, dilation=d)
            except RuntimeError:
                assert o < 1 or op >= max(s, d)
                refused += 1
                continue
            assert o >= 1 and op < max(s, d) and y.shape[-1] == o
            checked += 1
    assert (g["ch4_checked"], g["ch4_refused"]) == (f"{checked:,}", f"{refused:,}")


def test_ch4_k3_s2_p1_doubles_only_with_output_padding(built_book: Path) -> None:
    g = _glued(built_book, "04_shapes_padding")
    lo, hi, n_minus, n_double = map(int, re.fullmatch(
        r"PyTorch, every i from (\d+) to (\d+): (\d+) of \d+ give 2i − 1 without it, "
        r"(\d+) give 2i with it", g["ch4_doubling_checked"]).groups())
    lengths = range(lo, hi + 1)

    def out(n: int, op: int) -> int:
        return F.conv_transpose1d(torch.zeros(1, 1, n), torch.zeros(1, 1, 3), stride=2,
                                  padding=1, output_padding=op).shape[-1]

    assert n_minus == sum(out(n, 0) == 2 * n - 1 for n in lengths) == len(lengths)
    assert n_double == sum(out(n, 1) == 2 * n for n in lengths) == len(lengths)


def test_ch4_tf_valid_accepts_every_length_that_convolves_back(built_book: Path) -> None:
    """TF's 'VALID' takes any output_shape whose VALID convolution has length i (TF's rule
    ceil((n - k + 1)/s) = i): the chapter said TF 'returns' the smallest, like Keras."""
    g = _glued(built_book, "04_shapes_padding")
    i, k, s = 4, 3, 2
    tf_rule = [n for n in range(1, 30) if -(-(n - k + 1) // s) == i]
    torch_rule = [n for n in range(k, 30)
                  if F.conv1d(torch.zeros(1, 1, n), torch.zeros(1, 1, k), stride=s).shape[-1] == i]
    assert tf_rule == torch_rule
    assert g["ch4_tf_valid_ok"] == "output_shape " + " or ".join(map(str, tf_rule))
    assert g["ch4_valid_back"] == ", ".join(map(str, tf_rule))


def test_ch4_size_table_matches_pytorch(built_book: Path) -> None:
    """The printed table of o for i = 4: every entry is PyTorch's output length (the old table
    printed '-' for p > k - 1, which PyTorch accepts, e.g. k = 1, p = 1 gives 2)."""
    page = (built_book / "book" / "04_shapes_padding.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    # the printed output, after the print call that makes it
    start = text.rindex("o for i=4, d=1, op=0 (rows: k; columns: s, p)")
    lines = text[start:].splitlines()
    cols = [tuple(map(int, c)) for c in re.findall(r"\((\d+), (\d+)\)", lines[1])]
    assert len(cols) == 6
    rows = 0
    for line in lines[2:]:
        cells = line.split()
        if not cells or not cells[0].isdigit() or len(cells) != len(cols) + 1:
            break
        k = int(cells[0])
        for (s, p), cell in zip(cols, cells[1:], strict=True):
            y = F.conv_transpose1d(torch.zeros(1, 1, 4), torch.zeros(1, 1, k), stride=s,
                                   padding=p)
            assert cell == str(y.shape[-1]), (k, s, p, cell)
        rows += 1
    assert rows == 5


def _ints(t: torch.Tensor) -> str:
    return str(t.round().to(torch.int64).tolist())


def test_ch2_worked_examples_glued_from_pytorch(built_book: Path) -> None:
    """The 1-D and 2-D examples' numbers in chapter 2's prose, recomputed with PyTorch."""
    g = _glued(built_book, "02_three_views")
    x, w = torch.tensor([[[2.0, 3.0]]]), torch.tensor([[[1.0, 2.0, 3.0]]])
    y = F.conv_transpose1d(x, w, stride=2)
    assert g["ch2_y1"] == _ints(y[0, 0])
    assert g["ch2_y1_p1"] == _ints(F.conv_transpose1d(x, w, stride=2, padding=1)[0, 0])
    assert g["ch2_stroke0"] == _ints(2 * w[0, 0]) and g["ch2_stroke1"] == _ints(3 * w[0, 0])
    assert g["ch2_overlap_sum"] == f"6 + 3 = {y[0, 0, 2].item():g}"
    x2 = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    k2 = torch.tensor([[[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]]]])
    canvas = F.conv_transpose2d(x2, k2, stride=2)[0, 0]
    out = F.conv_transpose2d(x2, k2, stride=2, padding=1)[0, 0]
    assert (g["ch2_canvas_side"], g["ch2_out_side"]) == (str(canvas.shape[0]), str(out.shape[0]))
    assert g["ch2_mid_row"] == _ints(out[1])
    assert g["ch2_zi_out_op"] == "{0} × {0}".format(F.conv_transpose2d(
        x2, k2, stride=2, padding=1, output_padding=1).shape[-1])
    # rank of C^T C for the stride-2 convolution of 5 inputs: C read off unit vectors
    c = _torch_conv_matrix(w, (5,), stride=2)
    rank = np.linalg.matrix_rank(c.T @ c)
    assert (g["ch2_rank"], g["ch2_lost"]) == (str(rank), str(5 - rank))


def test_ch4_glued_sizes_from_pytorch(built_book: Path) -> None:
    """Chapter 4's glued sizes, recomputed with PyTorch's layers."""
    g = _glued(built_book, "04_shapes_padding")

    def t_len(i: int, k: int, **kw) -> int:
        return F.conv_transpose1d(torch.zeros(1, 1, i), torch.zeros(1, 1, k), **kw).shape[-1]

    def c_len(i: int, k: int, **kw) -> int:
        return F.conv1d(torch.zeros(1, 1, i), torch.zeros(1, 1, k), **kw).shape[-1]

    assert g["ch4_pad_lengths"] == ", ".join(str(t_len(3, 3, stride=2, padding=p))
                                             for p in range(3))
    back = [n for n in range(1, 60) if c_len(n, 3, stride=2, padding=1) == 16]
    assert g["ch4_sizes"] == " and ".join(map(str, back))
    assert [t_len(16, 3, stride=2, padding=1, output_padding=op) for op in (0, 1)] == back
    assert g["ch4_no_floor"] == f"{(back[-1] + 2 - 3) / 2 + 1:g}"
    assert g["ch4_steps_out"] == str(t_len(50, 4, stride=2, padding=1))
    assert g["ch4_fig8_right"] == f"2 → {t_len(2, 3)}"
    assert g["ch4_fig8_wrong"] == f"4 → {t_len(4, 3, padding=2)}"
    assert g["ch4_valid_first"] == str(t_len(4, 3, stride=2))
    rule = [t_len(2, 3, dilation=3, output_padding=op) for op in range(3)]
    assert g["ch4_rule_functional"] == ", ".join(map(str, rule))
    assert g["ch4_rule_module"] == ", ".join(str(n) for n in rule if c_len(n, 3, dilation=3) == 2)
    up = torch.nn.ConvTranspose2d(4, 6, 3, groups=2)
    down = torch.nn.Conv2d(6, 4, 3, groups=2)
    assert up.weight.numel() == down.weight.numel()
    assert (g["ch4_bias_up"], g["ch4_bias_down"]) == (str(up.bias.numel()),
                                                      str(down.bias.numel()))


def test_ch4_guide_count_and_relationships(built_book: Path) -> None:
    """The guide's relationships the chapter counts (15) and checks (those plus 15T)."""
    from tconv_lib import shapes

    g = _glued(built_book, "04_shapes_padding")
    assert sorted(shapes.RELATIONSHIPS) == list(range(1, 16))
    assert g["ch4_n_guide"] == str(len(shapes.RELATIONSHIPS))
    assert g["ch4_n_rel"] == str(len(shapes.RELATIONSHIPS) + 1)
