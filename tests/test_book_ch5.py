"""Chapter 5 (``book/05_fast.md``) as built: each recorded benchmark plot has an alt text of its
own, computed from its result file; the constants its prose (and chapter 7's) once typed are
glued from where the code keeps them; and the chapter's claim that a transposed convolution
with ``k > s`` is a ``ceil(k/s)``-sized convolution followed by a pixel shuffle holds, in
PyTorch float64, exactly as the prose spells out the construction."""

from __future__ import annotations

import ast
import ctypes
import html.parser
import json
import math
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

pytestmark = pytest.mark.xdist_group("book")


class _Images(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[tuple[str, str]] = []      # (src, alt)

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "img":
            a = dict(attrs)
            self.images.append((a.get("src") or "", a.get("alt") or ""))


def _bench_reports() -> list[tuple[Path, dict]]:
    """Every ``tconv_lib.bench`` result file with its plot (the files chapter 5 shows)."""
    found = []
    for path in sorted(RESULTS.glob("*.json")):
        rep = json.loads(path.read_text(encoding="utf-8"))
        if (isinstance(rep, dict) and {"config", "machine", "results"} <= rep.keys()
                and path.with_suffix(".png").exists()):
            found.append((path, rep))
    return found


def test_each_benchmark_plot_has_an_alt_text_of_its_own(built_book: Path) -> None:
    """A screen reader hears what each plot shows: its file, machine and input type, and auto's
    numbers from that file (geometric mean, lowest and highest speed-up, with their shapes).
    Before, the newest plots shared one alt text and the older ones another (11 plots, 2 texts)."""
    parser = _Images()
    parser.feed((built_book / "book" / "05_fast.html").read_text(encoding="utf-8"))
    by_file = {Path(src).name: alt for src, alt in parser.images}
    reports = _bench_reports()
    assert reports, "no benchmark result file with a plot in benchmarks/results/"
    alts, problems = [], []
    for path, rep in reports:
        png = path.with_suffix(".png").name
        alt = by_file.get(png)
        if alt is None:
            problems.append(f"{png}: not shown as an image of its own name")
            continue
        alts.append(alt)
        speed = {name: r["methods"]["auto"]["speedup_vs_torch"]
                 for name, r in rep["results"].items()
                 if "speedup_vs_torch" in r["methods"].get("auto", {})}
        geomean = math.exp(sum(map(math.log, speed.values())) / len(speed))
        slow, fast = min(speed, key=speed.get), max(speed, key=speed.get)
        expected = [path.name, rep["machine"]["device_name"],
                    f"{rep['config']['backend']} inputs", f"{len(rep['results'])} shapes",
                    f"{geomean:.2f}×", f"{speed[slow]:.2f}× on {slow}",
                    f"{speed[fast]:.2f}× on {fast}"]
        missing = [e for e in expected if e not in alt]
        if missing:
            problems.append(f"{png}: alt text lacks {missing}: {alt!r}")
    assert not problems, "\n".join(problems)
    assert len(set(alts)) == len(alts), "two benchmark plots share an alt text"


def _glued(built_book: Path, chapter: str) -> dict[str, object]:
    """The values a chapter's cells glued, from its executed notebook."""
    nb = json.loads((built_book / "_sources" / "book" / f"{chapter}.ipynb")
                    .read_text(encoding="utf-8"))
    values = {}
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            book = out.get("metadata", {}).get("scrapbook", {})
            text = out.get("data", {}).get(book.get("mime_prefix", "") + "text/plain")
            if book.get("name") and text is not None:
                values[book["name"]] = ast.literal_eval("".join(text))
    return values


def _sources() -> dict[str, object]:
    """Where the constants the chapters once typed come from."""
    import torch

    from tconv_lib import backend
    from tconv_lib.bench import SUITE
    from tconv_lib.unet import plan_shapes

    shape = {s.name: s for s in SUITE}
    fcn, mid = shape["fcn32s"], shape["dcgan-16to32"]
    eps = torch.finfo(torch.bfloat16).eps
    bits = 1 - int(math.log2(eps))
    big = torch.tensor(2.0 ** bits, dtype=torch.bfloat16)
    plan = plan_shapes(572, depth=4, mode="valid", up="tconv_k2s2")
    gpu = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(RESULTS.glob("cuda-*.json"))]
    gpu = [r for r in gpu if any(x.get("autotune_routes_s") for x in r["results"].values())]
    tf32 = ({False: "TF32 off on both sides", True: "TF32 on"}.get(
        gpu[-1]["machine"].get("tf32"), "TF32 not recorded") if gpu else "(not measured)")
    first = shape["dcgan-4to8"]
    row = first.c_out * first.kernel ** first.ndim     # its weight as (C_in, C_out k^D)
    return {
        # chapter 5: the strided weight rows of the per-block route, padded by one 64-byte
        # cache line where they are a multiple of 256 bytes apart (_workspace.padded)
        ("05_fast", "ch5_w_row"): row,
        ("05_fast", "ch5_w_row_kib"): row * 4 // 1024,
        ("05_fast", "ch5_w_row_padded"): row + 16 if row * 4 % 256 == 0 else row,
        ("05_fast", "ch5_pad_span"): 256,
        # chapter 5: glibc's largest mmap threshold, mallopt(3): 4 MiB * sizeof(long)
        ("05_fast", "ch5_mmap_max_mib"): 4 * ctypes.sizeof(ctypes.c_long),
        ("05_fast", "ch5_huge_page_mib"): backend._HUGE_PAGE >> 20,
        ("05_fast", "ch5_page_kib"): __import__("mmap").PAGESIZE >> 10,
        ("05_fast", "ch5_bf16_bits"): bits,
        ("05_fast", "ch5_bf16_big"): f"{big.item():g}",
        ("05_fast", "ch5_bf16_gap"): f"{big.item() * eps:g}",
        ("05_fast", "ch5_bf16_sum"): f"{(big + 1).item():g}",
        ("05_fast", "ch5_fcn_k"): fcn.kernel,
        ("05_fast", "ch5_fcn_s"): fcn.stride,
        ("05_fast", "ch5_fcn_phases"): fcn.stride ** fcn.ndim,
        ("05_fast", "ch5_fcn_kk"): f"{fcn.kernel} × {fcn.kernel}",
        ("05_fast", "ch5_dcgan_mid_channels"): f"{mid.c_in}→{mid.c_out}",
        ("05_fast", "ch5_cl_layer"): (f"k = {mid.kernel}, s = {mid.stride}, "
                                      f"p = {mid.padding}, {mid.spatial[-1]} inputs, "
                                      f"{mid.out_spatial[-1]} outputs"),
        ("05_fast", "ch5_gpu_tf32"): tf32,            # the newest GPU file's own record
        # chapter 7: the paper's tile and what plan_shapes makes of it
        ("07_unet", "ch7_in"): plan[-1].enc_in,        # level 0 is plan's last row
        ("07_unet", "ch7_tile"): f"{plan[-1].enc_in}×{plan[-1].enc_in}",
        ("07_unet", "ch7_out"): plan[-1].dec_out,
    }


# what the prose typed before, and must not type again: (chapter, pattern of the typed text)
TYPED_BEFORE = [
    ("05_fast", r"\b32 MiB"), ("05_fast", r"\b2 MiB pages"), ("05_fast", r"\b4 KiB"),
    ("05_fast", r"128→64"), ("05_fast", r"keeps 8 significant"), ("05_fast", r"next to 256"),
    ("05_fast", r"16 inputs, 32 outputs"), ("05_fast", r"FCN's"), ("05_fast", r"TF32 off"),
    ("05_fast", r"twice as slow"), ("05_fast", r"a fifth slower"), ("05_fast", r"\b256 bytes"),
    ("05_fast", r"\b4096 floats"),
    ("07_unet", r"572 → 388"), ("07_unet", r"\b572×572\b"), ("07_unet", r"64 to 1024"),
    ("07_unet", r"maps 572\b"),
]


def test_constants_reach_the_prose_by_glue(built_book: Path) -> None:
    """Constants that the code knows (glibc's mmap ceiling, page sizes, bfloat16's precision,
    the suite's shapes, the U-Net's tile and output) are glued from it, not typed: the glued
    value equals its source, and the typed text is gone from the prose."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_book_build import _prose

    glued = {ch: _glued(built_book, ch) for ch in ("05_fast", "07_unet")}
    wrong = [f"{ch} {key}: glued {glued[ch].get(key)!r}, source {want!r}"
             for (ch, key), want in _sources().items() if glued[ch].get(key) != want]
    assert not wrong, "\n".join(wrong)
    typed = []
    for chapter, pattern in TYPED_BEFORE:
        prose = _prose((ROOT / "book" / f"{chapter}.md").read_text(encoding="utf-8"))
        typed += [f"{chapter}: {m.group()!r}" for m in re.finditer(pattern, prose)]
    assert not typed, "typed into the prose instead of glued:\n" + "\n".join(typed)


@pytest.mark.parametrize(("k", "s", "p"), [(5, 2, 0), (4, 2, 1), (7, 3, 2), (3, 2, 1), (6, 3, 0)])
def test_k_above_s_is_a_convolution_then_a_pixel_shuffle(k: int, s: int, p: int) -> None:
    """The construction chapter 5 states for ``k > s``: sub-kernels ``w[..., a::s, b::s]``
    zero-padded at their end to ``M = ceil(k/s)`` taps and flipped, the input zero-padded by
    ``M - 1`` on every side, an ``M x M`` convolution to ``s^2 C_out`` channels, the pixel
    shuffle, and a crop of ``p`` at the start of each axis; PyTorch float64 is the oracle."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(k * 100 + s * 10 + p)
    c_in, c_out, i = 3, 4, 6
    x = torch.randn(2, c_in, i, i + 1, generator=gen, dtype=torch.float64)
    w = torch.randn(c_in, c_out, k, k, generator=gen, dtype=torch.float64)
    expected = F.conv_transpose2d(x, w, stride=s, padding=p)
    m = -(-k // s)
    padded = torch.zeros(c_in, c_out, m * s, m * s, dtype=torch.float64)
    padded[..., :k, :k] = w
    # channel c s^2 + a s + b of the 1x1-shuffle layout: output c, phase (a, b)
    sub = torch.stack([padded[..., a::s, b::s].flip(-2, -1)
                       for a in range(s) for b in range(s)], dim=2)   # (C_in, C_out, s^2, M, M)
    w_conv = sub.permute(1, 2, 0, 3, 4).reshape(c_out * s * s, c_in, m, m)
    y = F.pixel_shuffle(F.conv2d(F.pad(x, (m - 1,) * 4), w_conv), s)
    oh, ow = expected.shape[-2:]
    assert y.shape[-2] >= p + oh and y.shape[-1] >= p + ow
    torch.testing.assert_close(y[..., p:p + oh, p:p + ow], expected, rtol=0, atol=1e-12)
