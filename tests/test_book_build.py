"""Static checks of the built book (``_build/html``): offline assets, downloads, executed cells."""

from __future__ import annotations

import html
import html.parser
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.xdist_group("book")

CHAPTERS = ["intro", "01_matrix", "02_three_views", "03_gradient", "04_shapes_padding",
            "05_fast", "06_checkerboard", "07_unet", "glossary", "references"]
# each chapter's exercise notebooks (solutions/README.md: the assignment -> chapter table)
EXERCISES = {"01_matrix": ["ex3_matrix"], "02_three_views": ["ex2_scatter"],
             "03_gradient": ["ex4_gradients"],
             "04_shapes_padding": ["ex1_shapes", "ex5_conventions"],
             "05_fast": ["ex7_subpixel"], "06_checkerboard": ["ex6_checkerboard"],
             "07_unet": ["ex8_unet"]}
# MyST markup that did not become a role or directive shows up in the page as literal text
RAW_MARKUP = ("{glue", "{term}", "{doc}", "{cite}", "{ref}", "{download}", "```{")
# a tag that makes the browser load something: script/img/iframe src, stylesheet/preload href
LOADING = re.compile(r"<(script|img|iframe|audio|video|source|embed)\b[^>]*\bsrc=[\"']([^\"']+)"
                     r"|<link\b[^>]*\bhref=[\"']([^\"']+)", re.I)


def _pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.parts
                  and "_sources" not in p.parts)


class _Text(html.parser.HTMLParser):
    """The text a reader sees: everything but scripts, styles and code blocks (``<pre>``, which
    hold code cells, their outputs and literalincludes; inline ``<code>`` is kept)."""

    SKIP = {"script", "style", "pre"}

    def __init__(self) -> None:
        super().__init__()
        self.depth, self.parts = 0, []

    def handle_starttag(self, tag: str, attrs) -> None:
        self.depth += tag in self.SKIP

    def handle_endtag(self, tag: str) -> None:
        self.depth -= tag in self.SKIP and self.depth > 0

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.parts.append(data)


def _text(page: Path) -> str:
    parser = _Text()
    parser.feed(page.read_text(encoding="utf-8"))
    return "".join(parser.parts)


def test_no_raw_myst_markup_is_rendered(built_book: Path) -> None:
    found = []
    for page in _pages(built_book):
        text = _text(page)
        for raw in RAW_MARKUP:
            for m in re.finditer(re.escape(raw), text):
                around = text[max(0, m.start() - 40):m.end() + 30]
                found.append(f"{page.relative_to(built_book)}: ...{around!r}")
    assert not found, "MyST markup rendered as text:\n" + "\n".join(found)


def test_the_raw_markup_check_sees_inline_code(tmp_path: Path) -> None:
    """The check above reads inline code (where a backticked role ends up) but not code blocks."""
    page = tmp_path / "p.html"
    page.write_text("<p>ran on <code>{glue:text}</code>x``</p><pre>f'{ref}'</pre>"
                    "<script>'{doc}'</script>", encoding="utf-8")
    assert _text(page) == "ran on {glue:text}x``"


def test_every_chapter_is_built(built_book: Path) -> None:
    missing = [c for c in CHAPTERS if not (built_book / "book" / f"{c}.html").is_file()]
    assert not missing, f"chapters missing from the build: {missing}"


def test_nothing_outside_the_book_is_built(built_book: Path) -> None:
    stray = [str(p.relative_to(built_book)) for p in _pages(built_book)
             if p.parent != built_book and p.parent != built_book / "book"]
    assert not stray, f"pages built from outside book/: {stray}"


def test_no_asset_is_loaded_from_the_network(built_book: Path) -> None:
    remote = []
    for page in _pages(built_book):
        for m in LOADING.finditer(page.read_text(encoding="utf-8")):
            url = m.group(2) or m.group(3)
            if re.match(r"(https?:)?//", url):
                remote.append(f"{page.relative_to(built_book)}: {url}")
    assert not remote, "assets loaded from outside the site:\n" + "\n".join(remote)


def test_mathjax_is_served_locally(built_book: Path) -> None:
    page = (built_book / "book" / "01_matrix.html").read_text(encoding="utf-8")
    srcs = re.findall(r"<script[^>]*src=\"([^\"]*tex-chtml[^\"]*)\"", page)
    assert srcs, "no MathJax script tag on chapter 1"
    local = (built_book / "book" / srcs[0].split("?")[0]).resolve()
    assert local.is_file() and local.stat().st_size > 100_000, f"MathJax file missing: {local}"
    fonts = list((built_book / "_static" / "mathjax" / "es5" / "output" / "chtml" / "fonts"
                  / "woff-v2").glob("*.woff"))
    assert fonts, "MathJax CHTML fonts are not in the site"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_page_offers_its_executed_notebook(built_book: Path, chapter: str) -> None:
    page = (built_book / "book" / f"{chapter}.html").read_text(encoding="utf-8")
    links = re.findall(r"href=\"([^\"]*_sources/[^\"]+\.ipynb)\"", page)
    assert links, f"{chapter}.html has no .ipynb download link"
    nb_path = (built_book / "book" / links[0]).resolve()
    assert nb_path.is_file(), f"{chapter}: download link {links[0]} points to a missing file"
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    errors = [o.get("ename") for c in code for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{chapter}: cells raised {errors}"
    if chapter in EXERCISES:
        assert any(c.get("outputs") for c in code), f"{chapter}: no cell output in the notebook"


@pytest.mark.parametrize("chapter", sorted(EXERCISES))
def test_chapter_structure(built_book: Path, chapter: str) -> None:
    src = (ROOT / "book" / f"{chapter}.md").read_text(encoding="utf-8")
    html = (built_book / "book" / f"{chapter}.html").read_text(encoding="utf-8")
    for part in ("Learning goals", "Pitfalls", "Summary"):
        assert part in src, f"{chapter} has no {part!r} section"
    assert re.search(r"^(import tconv_lib|from tconv_lib import)", src, re.M), \
        f"{chapter} does not import tconv_lib"
    assert "{literalinclude} /tconv_lib/" in src, f"{chapter} shows no library source"
    assert "<img" in html, f"{chapter} has no figure"
    assert 'class="math' in html, f"{chapter} has no math"
    terms = re.findall(r'href="glossary\.html#(term-[^"]+)"', html)
    assert terms, f"{chapter} links no glossary term"
    glossary = (built_book / "book" / "glossary.html").read_text(encoding="utf-8")
    missing = [t for t in terms if f'id="{t}"' not in glossary]
    assert not missing, f"{chapter}: glossary anchors that do not exist: {missing}"


@pytest.mark.parametrize("chapter", sorted(EXERCISES))
def test_chapter_links_its_exercise(built_book: Path, chapter: str) -> None:
    """The exercise notebook is shipped with the site and the chapter links to it."""
    html = (built_book / "book" / f"{chapter}.html").read_text(encoding="utf-8")
    for ex in EXERCISES[chapter]:
        hrefs = re.findall(rf'href="([^"#]*/{ex}\.ipynb)"', html)
        assert hrefs, f"{chapter}.html has no link to {ex}.ipynb"
        for href in hrefs:
            target = (built_book / "book" / href).resolve()
            assert target.is_relative_to(built_book.resolve()) and target.is_file(), \
                f"{chapter}: the link {href} to {ex} points to no file of the site"
            shipped = (ROOT / "exercises" / ex / f"{ex}.ipynb").read_bytes()
            assert target.read_bytes() == shipped, \
                f"{chapter}: {href} is not the released exercises/{ex}/{ex}.ipynb"


def test_references_and_glossary(built_book: Path) -> None:
    refs = (built_book / "book" / "references.html").read_text(encoding="utf-8")
    for name in ("Dumoulin", "Odena", "Shi", "Long", "Ronneberger", "Zeiler", "Aitken"):
        assert name in refs, f"reference by {name} missing"
    glossary = (built_book / "book" / "glossary.html").read_text(encoding="utf-8")
    assert re.search(r'<dl class="[^"]*glossary', glossary) and "output_padding" in glossary


def _exercise_table(readme: Path) -> dict[str, str]:
    """``{exercise: chapter number}`` from a README table whose rows start with `exN_name`."""
    rows = re.findall(r"^\| `(ex\d_\w+)` \|.*\| (\d+) \|$", readme.read_text(encoding="utf-8"),
                      re.M)
    return {ex: str(int(ch)) for ex, ch in rows}


@pytest.mark.parametrize("readme", ["README.md", "solutions/README.md", "book/intro.md"])
def test_readme_tables_list_every_exercise_with_its_chapter(readme: str) -> None:
    table = _exercise_table(ROOT / readme)
    released = sorted(p.name for p in (ROOT / "exercises").iterdir() if p.is_dir())
    assert sorted(table) == released, (readme, sorted(table), released)
    linked = {ex: str(int(chapter[:2])) for chapter, exs in EXERCISES.items() for ex in exs}
    assert table == linked, readme


@pytest.mark.parametrize("chapter", sorted(EXERCISES))
def test_every_figure_has_a_description(built_book: Path, chapter: str) -> None:
    """A screen reader reads an image's alt text: it must describe the figure, not be the
    file name myst-nb falls back to (set per cell with ``mystnb: image: alt:``)."""
    page = (built_book / "book" / f"{chapter}.html").read_text(encoding="utf-8")
    imgs = re.findall(r"<img\b[^>]*>", page)
    assert imgs, f"{chapter} has no figure"
    for img in imgs:
        alt = re.search(r'\balt="([^"]*)"', img)
        text = alt[1] if alt else ""
        assert len(text.split()) >= 6 and not re.search(r"\.(png|svg|jpe?g)\b", text), \
            f"{chapter}: figure without a description: {img[:160]}"


# the prose of a chapter with its code cells, directives, math, inline code and roles removed
_NOT_PROSE = [re.compile(p, re.S | re.M) for p in (
    r"\A---\n.*?\n---\n",                              # jupytext front matter
    r"^(```+|~~~+)[^\n]*\n.*?^\1\s*$",                 # code cells and directives
    r"\$\$.*?\$\$", r"\$[^$\n]*\$",                    # display and inline math
    r"\{[\w:-]+\}`[^`]*`", r"`[^`]*`")]                # roles ({glue:text}, {term}, ...), code
# a result typed into the prose: a decimal number or a percentage
_TYPED_RESULT = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])|\d+(\.\d+)?\s*%")
# typed on purpose: an input of an experiment, not a result
_TYPED_INPUTS = {("06_checkerboard", "10 %")}


# a figure caption in a code cell's metadata (``mystnb: figure: caption: |``): prose too
_CAPTION = re.compile(r"^    caption: \|\n((?:      [^\n]*\n)+)", re.M)


def _prose(src: str) -> str:
    captions = "\n".join(m.group(1) for m in _CAPTION.finditer(src))
    for pattern in _NOT_PROSE:
        src = pattern.sub("", src)
        captions = pattern.sub("", captions)
    return src + "\n" + captions


def test_the_prose_types_no_decimal_or_percentage() -> None:
    """The book's rule: numbers that code computes reach the prose through glue. Decimals and
    percentages are what a computed result looks like, so none may be typed into the prose."""
    typed = []
    for page in sorted((ROOT / "book").glob("*.md")):
        for m in _TYPED_RESULT.finditer(_prose(page.read_text(encoding="utf-8"))):
            if (page.stem, m.group()) not in _TYPED_INPUTS:
                typed.append(f"{page.name}: {m.group()!r}")
    assert not typed, "numbers typed into the prose instead of glued:\n" + "\n".join(typed)


def test_the_typed_number_check_sees_prose_only() -> None:
    src = ("---\nkernelspec: 3.11\n---\n# T\nIt is 0.85 here, 12 % there, {glue:text}`a` and "
           "$0.5$ and `1.5`.\n```{code-cell} ipython3\nprint(0.25)\n```\n")
    assert [m.group() for m in _TYPED_RESULT.finditer(_prose(src))] == ["0.85", "12 %"]
    cell = ("```{code-cell} ipython3\n---\nmystnb:\n  figure:\n    caption: |\n      Error 0.25"
            " at {glue:text}`e` and $1.5$.\n    name: fig-x\n---\nprint(0.75)\n```\n")
    assert [m.group() for m in _TYPED_RESULT.finditer(_prose(cell))] == ["0.25"]


class _Pre(html.parser.HTMLParser):
    """The text of every ``<pre>`` block of a page (code cells, their outputs, literalincludes)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth, self.blocks = 0, []

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "pre":
            self.depth += 1
            self.blocks.append("")

    def handle_endtag(self, tag: str) -> None:
        self.depth -= tag == "pre" and self.depth > 0

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.blocks[-1] += data


@pytest.mark.parametrize("chapter", sorted(EXERCISES))
def test_printed_output_is_shown_as_printed(built_book: Path, chapter: str) -> None:
    """Every cell's stdout appears on the page exactly as the cell printed it. The kernel sends
    it in chunks that can end mid-line; joined carelessly (MyST-NB's ``merge_streams`` alone)
    they gain blank lines or broken lines wherever a chunk ended."""
    nb = json.loads((built_book / "_sources" / "book" / f"{chapter}.ipynb").read_text("utf-8"))
    parser = _Pre()
    parser.feed((built_book / "book" / f"{chapter}.html").read_text(encoding="utf-8"))
    checked, missing = 0, []
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] != "code" or {"remove-output", "remove-cell"} & set(tags):
            continue
        printed = "".join("".join(o["text"]) for o in cell.get("outputs", [])
                          if o["output_type"] == "stream" and o["name"] == "stdout").strip()
        if not printed or any(c in printed for c in "\r\b\x1b"):   # rewritten when shown
            continue
        checked += 1
        if not any(printed in block for block in parser.blocks):
            missing.append(printed[:120])
    assert checked, f"{chapter}: no printed output found: parser broken?"
    assert not missing, f"{chapter}: printed output not shown as printed: {missing}"


def test_split_stdout_chunks_are_joined_exactly() -> None:
    """The book's extension joins the chunks before MyST-NB's merge, which then only trims."""
    import sys

    import nbformat
    from myst_nb.core import render

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    from tconv_book import _install_exact_stream_merge

    _install_exact_stream_merge()
    chunks = ["a -> 4   (the figure)", "\nb -> 2\n\n", "c d", "e\n"]
    outputs = [nbformat.from_dict({"output_type": "stream", "name": "stdout", "text": t})
               for t in chunks[:1]]
    outputs.append(nbformat.from_dict({"output_type": "display_data", "data": {},
                                       "metadata": {}}))
    outputs += [nbformat.from_dict({"output_type": "stream", "name": "stdout", "text": t})
                for t in chunks[1:]]
    merged = render.coalesce_streams(outputs)
    assert [o.get("text") for o in merged] == ["".join(chunks).rstrip() + "\n", None]
    assert outputs[0]["text"] == chunks[0]                  # the cached notebook is untouched


# a glued value as the prose shows it: MyST-NB's {glue:text} span
PASTED = re.compile(r'<span class="pasted-text">(.*?)</span>', re.S)


@pytest.mark.parametrize("chapter", ["intro"] + sorted(EXERCISES))
def test_glued_values_read_as_prose(built_book: Path, chapter: str) -> None:
    """``{glue:text}`` pastes a value verbatim: Markdown in it is not rendered (a backtick shows
    as a backtick), and a value that is empty or Python's ``nan``/``inf``/``None`` reads as a
    bug in the sentence around it."""
    page = (built_book / "book" / f"{chapter}.html").read_text(encoding="utf-8")
    values = [html.unescape(v) for v in PASTED.findall(page)]
    bad = [v for v in values if "`" in v or "**" in v or v.strip() in {"", "nan", "inf", "-inf",
                                                                         "None"}]
    assert not bad, f"{chapter}: glued values that do not read as prose: {bad}"


# characters of monospace text that fit one output box at desktop width (the theme's 14 px code
# font in the 1280 px layout shows 76 of them before the box scrolls)
OUTPUT_COLUMNS = 76


@pytest.mark.parametrize("chapter", ["intro"] + sorted(EXERCISES))
def test_printed_lines_fit_the_output_box(built_book: Path, chapter: str) -> None:
    """A printed line longer than the output box hides its end behind a scroll bar, usually the
    number the prose is about. A cell whose output is prose-like wraps (tag ``wrap-output``); one
    that prints a table meant to scroll says so (tag ``wide-output``, book/_static/tconv.css)."""
    nb = json.loads((built_book / "_sources" / "book" / f"{chapter}.ipynb").read_text("utf-8"))
    too_wide = []
    for cell in nb["cells"]:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell["cell_type"] != "code" or {"wrap-output", "wide-output", "remove-output"} & tags:
            continue
        printed = "".join("".join(o["text"]) for o in cell.get("outputs", [])
                          if o["output_type"] == "stream")
        too_wide += [line for line in printed.splitlines() if len(line) > OUTPUT_COLUMNS]
    assert not too_wide, (f"{chapter}: printed lines wider than {OUTPUT_COLUMNS} columns (shorten "
                          f"them, or tag the cell wrap-output or wide-output): {too_wide}")


# characters of monospace text that a literalinclude box shows without scrolling, measured in
# headless Chromium (14 px DejaVu Sans Mono): 76 at 1280 px, like the output box, and at least
# that from 1024 px up (book/_static/tconv.css narrows the page contents at 1200-1290 px;
# test_book_browser.py measures it); 89 from 1420 px on; 60 on a 390 px phone (a smaller
# font there, book/_static/tconv.css), where longer library lines scroll
INCLUDE_COLUMNS = 76
# a literalinclude directive of a MyST chapter: its fence, path, and options as a YAML block
# between ``---`` lines or as ``:option: value`` lines
_INCLUDE = re.compile(r"^(?P<fence>`{3,}|~{3,}|:{3,})\{literalinclude\}[ \t]+(?P<path>\S+)[ \t]*\n"
                      r"(?:---\n(?P<yaml>(?s:.*?))^---\n)?(?P<options>(?:[ \t]*:[\w-]+:.*\n)*)",
                      re.M)


def _literalincludes(chapter: Path) -> list[tuple[int, Path, dict]]:
    """``(line of the directive, included file, options)`` for each literalinclude of a MyST
    chapter, the options converted as Sphinx's directive converts them (``:dedent:`` alone is
    ``None``, ``:lines:`` a string)."""
    import yaml
    from sphinx.directives.code import LiteralInclude

    src = chapter.read_text(encoding="utf-8")
    found = []
    for m in _INCLUDE.finditer(src):
        raw = {str(k): v for k, v in (yaml.safe_load(m.group("yaml") or "") or {}).items()}
        for line in m.group("options").splitlines():
            name, _, value = line.strip()[1:].partition(":")
            raw[name] = value.strip()
        options = {name: LiteralInclude.option_spec[name](None if value in ("", None) else
                                                          str(value))
                   for name, value in raw.items()}
        path = m.group("path")
        # "/x" is relative to the Sphinx source directory (the repository root), "x" to the page
        target = ROOT / path.lstrip("/") if path.startswith("/") else chapter.parent / path
        found.append((src.count("\n", 0, m.start()) + 1, target, options))
    return found


def _shown_lines(target: Path, options: dict) -> list[tuple[int | None, str]]:
    """The lines the book shows for one literalinclude, read by Sphinx's own reader (pyobject,
    start-after/at, end-before/at, lines, dedent, prepend/append, tab-width), each with its line
    number in ``target`` (``None`` where the shown range is not one run of the file's lines)."""
    from types import SimpleNamespace

    from sphinx.directives.code import LiteralIncludeReader

    config = SimpleNamespace(source_encoding="utf-8-sig")     # Sphinx's default
    text, _ = LiteralIncludeReader(str(target), options, config).read()
    try:
        match = LiteralIncludeReader(str(target), {**options, "lineno-match": True}, config)
        match.read()
        start = match.lineno_start
    except ValueError:                # disjoint :lines:, or :prepend:/:append: lines of its own
        start = None
    return [(None if start is None else start + n, line)
            for n, line in enumerate(text.splitlines())]


def _shown_path(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def _too_wide_included_lines(chapter: Path, columns: int = INCLUDE_COLUMNS) -> list[str]:
    wide = []
    for directive_line, target, options in _literalincludes(chapter):
        for line_no, line in _shown_lines(target, options):
            if len(line) > columns:
                where = f"line {line_no}" if line_no else "a line"
                wide.append(f"{chapter.name}:{directive_line} shows {where} of "
                            f"{_shown_path(target)}, {len(line)} columns: {line.strip()!r}")
    return wide


def test_included_library_lines_fit_the_code_box() -> None:
    """The chapters show the library's real source (``literalinclude``), whose lines may run to
    ruff's 100 columns; the code box shows only ``INCLUDE_COLUMNS`` of them at desktop width and
    scrolls the rest away. Every line a chapter includes fits: wrap it in the library, or narrow
    the directive's range (``:pyobject:``, ``:start-after:``, ``:lines:``, ``:dedent:``)."""
    chapters = sorted((ROOT / "book").glob("*.md"))
    included = [inc for chapter in chapters for inc in _literalincludes(chapter)]
    assert included, "no literalinclude found in book/*.md: parser broken?"
    wide = [w for chapter in chapters for w in _too_wide_included_lines(chapter)]
    assert not wide, (f"{len(wide)} included lines wider than the code box's "
                      f"{INCLUDE_COLUMNS} columns:\n" + "\n".join(wide))


def _empty_header_cells(text: str) -> list[str]:
    """The header rows of a Markdown source's pipe tables that have an empty cell."""
    lines = text.splitlines()
    found = []
    for row, rule in zip(lines, lines[1:], strict=False):
        if (row.lstrip().startswith("|") and re.fullmatch(r"\s*\|?(\s*:?-{3,}:?\s*\|)+\s*"
                                                          r"(:?-{3,}:?)?\s*", rule)):
            cells = row.strip().strip("|").split("|")
            if any(not c.strip() for c in cells):
                found.append(row.strip())
    return found


def test_table_headers_have_no_empty_cell() -> None:
    """A table's header cell names its column for a screen reader, which announces it with
    every cell below (axe's empty-table-header, minor: chapter 4's comparison of PyTorch,
    TensorFlow, Keras and JAX had an empty first header)."""
    assert _empty_header_cells("| | a |\n| --- | --- |\n| x | 1 |") == ["| | a |"]
    assert _empty_header_cells("| k | a |\n|---|:--:|\n") == []
    empty = [f"{md.name}: {row}" for md in sorted((ROOT / "book").glob("*.md"))
             for row in _empty_header_cells(md.read_text(encoding="utf-8"))]
    assert not empty, "table header rows with an empty cell:\n" + "\n".join(empty)


def test_ch3_names_the_calls_of_the_module_backward_it_shows() -> None:
    """Chapter 3 introduces ``ConvTransposeFunction.backward`` (shown below its paragraph) by
    the functions it calls: every function the paragraph names in code is one the backward
    calls, and every ``gradients`` function it calls is named. (The paragraph said it called
    ``gradients.bias_grad`` after the backward had come to sum the bias itself.)"""
    import ast

    tree = ast.parse((ROOT / "tconv_lib" / "nn.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body
               if isinstance(n, ast.ClassDef) and n.name == "ConvTransposeFunction")
    backward = next(n for n in cls.body
                    if isinstance(n, ast.FunctionDef) and n.name == "backward")
    called = {c.func.attr if isinstance(c.func, ast.Attribute) else c.func.id
              for c in ast.walk(backward) if isinstance(c, ast.Call)
              and isinstance(c.func, ast.Attribute | ast.Name)}
    from_gradients = {c.func.attr for c in ast.walk(backward) if isinstance(c, ast.Call)
                      and isinstance(c.func, ast.Attribute)
                      and getattr(c.func.value, "id", None) == "gradients"}
    src = (ROOT / "book" / "03_gradient.md").read_text(encoding="utf-8")
    paragraph = src[:src.index("{literalinclude} /tconv_lib/nn.py")].split("\n\n")[-2]
    named = {n.split(".")[-1] for n in re.findall(r"`([\w.]+)`", paragraph)}
    functions = {n for n in named if n.islower() and "_" in n or n == "conv"} - {"output_padding"}
    assert functions, f"no function named before the backward's listing: {paragraph!r}"
    assert functions <= called, f"named but not called: {sorted(functions - called)}"
    assert from_gradients <= named, f"called but not named: {sorted(from_gradients - named)}"


def test_the_include_check_reads_what_sphinx_shows(tmp_path: Path) -> None:
    """The check resolves options as Sphinx does: the object alone, dedented, a sub-range."""
    lib = tmp_path / "lib.py"
    lib.write_text("import os\n\n\nclass A:\n    def f(self):\n        return '" + "x" * 70
                   + "'\n\n    def g(self):\n        pass\n# start\nY = 1\n# end\n",
                   encoding="utf-8")
    chapter = tmp_path / "ch.md"
    chapter.write_text("# T\n\n```{literalinclude} lib.py\n:pyobject: A.f\n:dedent:\n```\n\n"
                       ":::{literalinclude} lib.py\n:start-after: # start\n:end-before: # end\n"
                       ":::\n\n```{literalinclude} lib.py\n:pyobject: A\n"
                       ":lines: 1,5-\n```\n\n```{literalinclude} lib.py\n---\npyobject: A.g\n"
                       "dedent: 4\n---\n```\n", encoding="utf-8")
    includes = _literalincludes(chapter)
    assert [(n, t.name, o) for n, t, o in includes] == [
        (3, "lib.py", {"pyobject": "A.f", "dedent": None}),
        (8, "lib.py", {"start-after": "# start", "end-before": "# end"}),
        (13, "lib.py", {"pyobject": "A", "lines": "1,5-"}),
        (18, "lib.py", {"pyobject": "A.g", "dedent": 4})]
    assert _shown_lines(lib, includes[0][2]) == [(5, "def f(self):"),
                                                 (6, "    return '" + "x" * 70 + "'")]
    assert _shown_lines(lib, {"start-after": "# start", "end-before": "# end"}) == [(11, "Y = 1")]
    assert _shown_lines(lib, includes[2][2]) == [(None, "class A:"), (None, "    def g(self):"),
                                                 (None, "        pass")]
    wide = _too_wide_included_lines(chapter, columns=80)
    assert len(wide) == 1 and wide[0].startswith("ch.md:3 shows line 6 of ") and "83 col" in wide[0]


# characters of a code cell's source that its input box shows without scrolling, measured in
# headless Chromium like INCLUDE_COLUMNS (14 px DejaVu Sans Mono, 1280 px window): 75, one fewer
# than the output box; 73 in a hide-input cell, whose box sits inside the <details> block the
# reader opens with "show". remove-input and remove-cell cells are never shown.
CELL_COLUMNS = 75
HIDDEN_CELL_COLUMNS = 73
_HIDDEN_INPUT = {"hide-input", "hide-cell"}
_NOT_SHOWN = {"remove-input", "remove-cell"}
# a MyST code cell: its fence, options as a YAML block between ``---`` lines or as
# ``:option: value`` lines, then the source up to the closing fence
_CODE_CELL = re.compile(r"^(?P<fence>`{3,}|~{3,})\{code-cell\}[^\n]*\n"
                        r"(?:---\n(?P<yaml>(?s:.*?))^---\n|(?P<options>(?:[ \t]*:[\w-]+:.*\n)*))"
                        r"(?P<source>(?s:.*?))^(?P=fence)[ \t]*$", re.M)


def _code_cells(chapter: Path) -> list[tuple[int, int, set[str], str]]:
    """``(line of the fence, line of the first source line, tags, source)`` for each code cell
    of a MyST chapter."""
    import yaml

    src = chapter.read_text(encoding="utf-8")
    found = []
    for m in _CODE_CELL.finditer(src):
        options = yaml.safe_load(m.group("yaml") or "") or {}
        for line in (m.group("options") or "").splitlines():
            name, _, value = line.strip()[1:].partition(":")
            options[name] = yaml.safe_load(value.strip() or "null")
        found.append((src.count("\n", 0, m.start()) + 1, src.count("\n", 0, m.start("source")) + 1,
                      set(options.get("tags") or []), m.group("source")))
    return found


def _too_wide_cell_lines(chapter: Path) -> list[str]:
    wide = []
    for fence, first, tags, source in _code_cells(chapter):
        if tags & _NOT_SHOWN:
            continue
        columns = HIDDEN_CELL_COLUMNS if tags & _HIDDEN_INPUT else CELL_COLUMNS
        for n, line in enumerate(source.splitlines()):
            if len(line) > columns:
                wide.append(f"{chapter.name}:{first + n} (line {n + 1} of the cell at line "
                            f"{fence}): {len(line)} columns, the box shows {columns}: "
                            f"{line.strip()!r}")
    return wide


def test_code_cell_lines_fit_the_code_box() -> None:
    """A code cell's line longer than its input box hides its end behind a scroll bar. Every
    line a reader can see fits (hidden cells too: "show" opens them): break it inside brackets,
    move a trailing comment onto its own line, or split a string into adjacent literals."""
    from myst_nb.core.read import read_myst_markdown_notebook

    chapters = sorted((ROOT / "book").glob("*.md"))
    for chapter in chapters:           # the parser finds what MyST-NB executes, tags included
        nb = read_myst_markdown_notebook(chapter.read_text(encoding="utf-8"))
        executed = [(c.source.strip("\n"), set(c.metadata.get("tags", [])))
                    for c in nb.cells if c.cell_type == "code"]
        assert [(source.strip("\n"), tags) for *_, tags, source in _code_cells(chapter)] \
            == executed, f"{chapter.name}: code cells parsed differently from MyST-NB"
    assert any(_code_cells(chapter) for chapter in chapters), "no code cell found: parser broken?"
    wide = [w for chapter in chapters for w in _too_wide_cell_lines(chapter)]
    assert not wide, (f"{len(wide)} code cell lines wider than their box ({CELL_COLUMNS} columns, "
                      f"{HIDDEN_CELL_COLUMNS} in a hide-input cell):\n" + "\n".join(wide))


def test_the_cell_check_reads_what_the_reader_sees(tmp_path: Path) -> None:
    """Source lines only (not the options block), the narrower hide-input box, remove-input
    cells skipped; each long line named by chapter, line and length."""
    chapter = tmp_path / "ch.md"
    chapter.write_text("# T\n\n```{code-cell} ipython3\nx = 1\nprint('" + "x" * 70 + "')\n```\n\n"
                       "```{code-cell} ipython3\n:tags: [hide-input]\ny = '" + "y" * 68 + "'\n```\n"
                       "\n```{code-cell} ipython3\n---\ntags: [remove-input]\n---\nz = '"
                       + "z" * 90 + "'\n```\n\n```{code-cell} ipython3\n---\nmystnb:\n  figure:\n"
                       "    caption: " + "c" * 80 + "\n---\nw = 2\n```\n", encoding="utf-8")
    cells = _code_cells(chapter)
    assert [(fence, first, tags) for fence, first, tags, _ in cells] == [
        (3, 4, set()), (8, 10, {"hide-input"}), (13, 17, {"remove-input"}), (20, 26, set())]
    assert cells[3][3] == "w = 2\n"
    wide = _too_wide_cell_lines(chapter)
    assert [w.rsplit(": ", 1)[0] for w in wide] == [
        "ch.md:5 (line 2 of the cell at line 3): 79 columns, the box shows 75",
        "ch.md:10 (line 1 of the cell at line 8): 74 columns, the box shows 73"]


# widest figure, in pixels, that the 690-pixel content column shows at no less than 3/4 of its
# size (matplotlib's 100 dpi: a figsize up to 9 inches wide)
FIGURE_PIXELS = 900


@pytest.mark.parametrize("chapter", sorted(EXERCISES))
def test_figures_are_not_shrunk_past_reading(built_book: Path, chapter: str) -> None:
    """The page scales a wide figure down to the content column, and its labels with it: a
    12-inch figure's 8-point titles end up about 4 pixels tall. Figures a cell draws stay at most
    9 inches wide; an image shown at a width the cell chooses (``Image(..., width=)``) is
    exempt."""
    import base64
    import struct

    nb = json.loads((built_book / "_sources" / "book" / f"{chapter}.ipynb").read_text("utf-8"))
    wide, seen = [], 0
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if not png or "width" in out.get("metadata", {}).get("image/png", {}):
                continue
            seen += 1
            width = struct.unpack(">I", base64.b64decode("".join(png))[16:20])[0]
            if width > FIGURE_PIXELS:
                wide.append((width, "".join(cell["source"])[:60]))
    assert seen, f"{chapter}: no figure found: parser broken?"
    assert not wide, f"{chapter}: figures wider than {FIGURE_PIXELS} px: {wide}"


class _Figures(html.parser.HTMLParser):
    """Every ``<img>`` of a page, with the caption of the ``<figure>`` around it ("" if none)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[dict] = []                  # figures being read: their images, caption
        self.images: list[tuple[str, str]] = []     # (img tag's alt, caption)
        self.in_caption = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "figure":
            self.open.append({"imgs": [], "caption": ""})
        elif tag == "figcaption":
            self.in_caption += 1
        elif tag == "img":
            alt = dict(attrs).get("alt") or ""
            if self.open:
                self.open[-1]["imgs"].append(alt)
            else:
                self.images.append((alt, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "figcaption":
            self.in_caption -= self.in_caption > 0
        elif tag == "figure" and self.open:
            fig = self.open.pop()
            self.images += [(alt, " ".join(fig["caption"].split())) for alt in fig["imgs"]]

    def handle_data(self, data: str) -> None:
        if self.in_caption and self.open:
            self.open[-1]["caption"] += data


def _captioned_images(page: str) -> list[tuple[str, str]]:
    parser = _Figures()
    parser.feed(page)
    return parser.images


# images that may stand without a numbered caption: (chapter, start of its alt text) -> why
UNCAPTIONED: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize("chapter", sorted(EXERCISES))
def test_every_figure_has_a_numbered_caption(built_book: Path, chapter: str) -> None:
    """A figure is read with its caption and referred to by its number, as in a textbook: every
    image a cell shows sits in a ``<figure>`` whose caption starts "Fig. <chapter>.<n>" (the
    cell's ``mystnb: figure:`` metadata, with a ``name`` so that Sphinx numbers it)."""
    page = (built_book / "book" / f"{chapter}.html").read_text(encoding="utf-8")
    images = _captioned_images(page)
    assert images, f"{chapter} has no figure"
    number = re.compile(rf"Fig\. {int(chapter[:2])}\.\d+ \S")
    bad = [f"{alt[:70]!r}: caption {caption[:40]!r}" for alt, caption in images
           if not number.match(caption)
           and not any(c == chapter and alt.startswith(a) for c, a in UNCAPTIONED)]
    assert not bad, f"{chapter}: figures without a numbered caption:\n" + "\n".join(bad)


def test_a_cell_of_several_plots_is_one_figure(built_book: Path) -> None:
    """Chapter 5 shows the newest recorded benchmark plot of each kind from one cell: one
    figure, one caption and one number for all of them (book/_ext/tconv_book.py, item 6), not a
    figure per image repeating the caption."""
    page = (built_book / "book" / "05_fast.html").read_text(encoding="utf-8")
    captions = [caption for _, caption in _captioned_images(page)]
    shared = {c for c in captions if captions.count(c) > 1}
    assert shared, "05_fast: no figure holds more than one image"
    numbers = re.findall(r'<span class="caption-number">(Fig\. [\d.]+)', page)
    assert len(numbers) == len(set(numbers)), f"05_fast: a figure number twice: {numbers}"


def test_the_caption_check_pairs_images_with_their_figure() -> None:
    page = ('<p><img alt="loose"></p><figure><div><img alt="a"><img alt="b"></div>'
            '<figcaption><p><span>Fig. 5.2 </span>Two <em>plots</em>.</p></figcaption></figure>'
            '<figure><img alt="bare"></figure>')
    assert _captioned_images(page) == [("loose", ""), ("a", "Fig. 5.2 Two plots."),
                                       ("b", "Fig. 5.2 Two plots."), ("bare", "")]
