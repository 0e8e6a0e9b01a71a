"""The book's downloads as a reader uses them outside the browser: each page's ``.ipynb``
opened in plain Jupyter, or run with ``jupyter nbconvert --execute`` in a folder of its own.

The chapters are MyST notebooks; Jupyter shows MyST's roles and directives as raw text, so the
download is rewritten for it (book/_ext/notebook_download.py). Static checks run on the
chapters' sources; the rest read the built book (``make book`` first) and skip without it."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

pytestmark = pytest.mark.xdist_group("book")

CHAPTERS = ["intro", "01_matrix", "02_three_views", "03_gradient", "04_shapes_padding",
            "05_fast", "06_checkerboard", "07_unet", "glossary", "references"]
# MyST that Jupyter's Markdown shows as it is written
RAW = re.compile(r"\{(glue|term|doc|cite|ref|numref|download)[:a-z]*\}`|^(`{3,}|:{3,})\{"
                 r"|^\([\w:.-]+\)=\s*$", re.M)


class _AnyGlue(dict):
    """Glued values for a chapter's source, which has no outputs: every name has one."""

    def __contains__(self, key) -> bool:
        return True

    def __missing__(self, key) -> str:
        return "'1.5'"


def _converted(chapter: str):
    import nbformat
    from myst_nb.core.read import read_myst_markdown_notebook
    from notebook_download import Targets, bibliography, for_jupyter

    text = (ROOT / "book" / f"{chapter}.md").read_text(encoding="utf-8")
    nb = nbformat.from_dict(read_myst_markdown_notebook(text))
    cites, entries = bibliography([ROOT / "book" / "references.bib"])
    targets = Targets(root=ROOT, docdir=ROOT / "book", cites=cites, bibliography=entries)
    return for_jupyter(nb, targets, glued=_AnyGlue())


def _markdown(nb) -> str:
    cells = nb["cells"] if isinstance(nb, dict) else nb.cells
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def _raw(text: str) -> list[str]:
    return [text[max(0, m.start() - 30):m.end() + 30] for m in RAW.finditer(text)]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_download_has_no_myst_markup(chapter: str) -> None:
    """Every role and directive a chapter uses becomes Markdown Jupyter renders."""
    source = (ROOT / "book" / f"{chapter}.md").read_text(encoding="utf-8")
    assert chapter == "references" or _raw(source), f"{chapter}: no MyST found: check broken?"
    left = _raw(_markdown(_converted(chapter)))
    assert not left, f"{chapter}: MyST left in the download: {left}"


def test_the_download_shows_the_included_source() -> None:
    """A ``literalinclude`` becomes a code block of the lines the book shows (Sphinx's reader
    with the directive's options), naming the file."""
    from types import SimpleNamespace

    from sphinx.directives.code import LiteralIncludeReader

    text = _markdown(_converted("05_fast"))
    config = SimpleNamespace(source_encoding="utf-8-sig")
    padded, _ = LiteralIncludeReader(str(ROOT / "tconv_lib" / "_workspace.py"),
                                     {"pyobject": "padded", "start-at": "return",
                                      "dedent": None}, config).read()
    assert f"*From `tconv_lib/_workspace.py`:*\n\n```python\n{padded}```" in text
    body, _ = LiteralIncludeReader(str(ROOT / "tconv_lib" / "methods" / "col2im.py"),
                                   {"pyobject": "conv_transpose"}, config).read()
    assert body.strip() in text


def test_roles_become_their_text() -> None:
    """Citations read as the book's author-year labels, terms as their text, a link to another
    page as a link to its notebook, an admonition as a quote with its title."""
    intro = _markdown(_converted("intro"))
    assert "[Long et al., 2015]" in intro
    assert "Odena et al. [2016]" in intro
    assert "[glossary](glossary.ipynb)" in intro
    ch5 = _markdown(_converted("05_fast"))
    assert "> **Reading path**" in ch5
    assert "exercise\n> `exercises/ex7_subpixel/ex7_subpixel.ipynb` practises" in ch5
    assert "one GEMM plus" in ch5 and "{term}" not in ch5
    captions = [c.source for c in _converted("01_matrix").cells if c.source.startswith("**")]
    assert captions and captions[0].startswith("**Figure.** The convolution matrix $C$ of")
    refs = _markdown(_converted("references"))
    assert "- Andrew Aitken, Christian Ledig" in refs


def test_glue_works_without_myst_nb(monkeypatch) -> None:
    """``pip install`` of the project has no MyST-NB (it is in the ``book`` extra), so a
    chapter's notebook or its ``.md`` (jupytext) run in plain Jupyter failed at its first cell,
    ``from myst_nb import glue``. Every chapter imports it in a ``try`` whose ``except
    ImportError`` defines a ``glue`` that does nothing."""
    import ast

    from myst_nb.core.read import read_myst_markdown_notebook

    monkeypatch.setitem(sys.modules, "myst_nb", None)        # import myst_nb: ImportError
    checked = 0
    for md in sorted((ROOT / "book").glob("*.md")):
        nb = read_myst_markdown_notebook(md.read_text(encoding="utf-8"))
        for cell in nb.cells:
            if cell.cell_type != "code" or "myst_nb" not in cell.source:
                continue
            tree = ast.parse(cell.source)
            found = [s for s in tree.body if any(
                isinstance(n, ast.ImportFrom) and n.module == "myst_nb" for n in ast.walk(s))]
            assert all(isinstance(s, ast.Try) for s in found), (
                f"{md.name} imports myst_nb outside a try: plain Jupyter stops there")
            for stmt in found:
                scope: dict = {}
                exec(compile(ast.Module([stmt], []), md.name, "exec"), scope)
                assert scope["glue"]("x", 1, display=False) is None
                checked += 1
    assert checked >= 8, f"only {checked} chapters import glue: check broken?"


def test_cells_the_book_collapses_are_collapsed_in_jupyter() -> None:
    """The prose says "click to show" of a collapsed cell: JupyterLab and Notebook 7 collapse
    a cell whose ``metadata.jupyter`` says so."""
    cells = [c for c in _converted("05_fast").cells if c.cell_type == "code"]
    for cell in cells:
        tags, shown = set(cell.metadata.get("tags", [])), cell.metadata.get("jupyter", {})
        assert shown.get("source_hidden", False) == bool(tags & {"hide-input", "remove-input"})
        assert shown.get("outputs_hidden", False) == ("hide-output" in tags)
    assert any(c.metadata.get("jupyter", {}).get("outputs_hidden") for c in cells)


def test_an_image_output_becomes_the_image(tmp_path: Path) -> None:
    """Chapter 5 shows recorded plots as MyST ``{image}`` outputs: in the download each is the
    PNG itself with its alt text and width."""
    import base64

    import nbformat
    from notebook_download import Targets, for_jupyter

    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "a.png").write_bytes(b"\x89PNG fake")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("show_plot(path)")
    cell.outputs = [nbformat.v4.new_output(
        "display_data", data={"text/markdown": "```{image} /plots/a.png\n:alt: bars of x\n"
                                               ":width: 720px\n```",
                              "text/html": "<img>", "text/plain": "[plot a.png]"})]
    nb.cells = [cell]
    for_jupyter(nb, Targets(root=tmp_path, docdir=tmp_path), glued={})
    out = nb.cells[1].outputs[0]
    assert base64.b64decode(out["data"]["image/png"]) == b"\x89PNG fake"
    assert out["data"]["text/plain"] == "bars of x"
    assert set(out["data"]) == {"image/png", "text/plain"}
    assert out["metadata"] == {"image/png": {"width": 720}}


# --- the built book's downloads ----------------------------------------------------------

def _download(built_book: Path, chapter: str) -> dict:
    return json.loads((built_book / "_sources" / "book" / f"{chapter}.ipynb")
                      .read_text(encoding="utf-8"))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_built_download_reads_in_jupyter(built_book: Path, chapter: str) -> None:
    nb = _download(built_book, chapter)
    left = _raw(_markdown(nb))
    assert not left, f"{chapter}.ipynb shows MyST as text in Jupyter: {left}"
    assert "".join(nb["cells"][0]["source"]).startswith("*This notebook was downloaded")
    saved = nb["metadata"].get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {}).get("state", {})
    views = [o["data"]["application/vnd.jupyter.widget-view+json"] for c in nb["cells"]
             for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    widgets = [v for v in views if v.get("model_id") not in saved]
    assert not widgets, f"{chapter}.ipynb: widgets with no saved state ('model not found')"
    images = [o for c in nb["cells"] for o in c.get("outputs", [])
              if "{image}" in "".join(o.get("data", {}).get("text/markdown", ""))]
    assert not images, f"{chapter}.ipynb: {len(images)} plots shown as MyST text"


def test_the_built_download_says_how_to_see_the_animation(built_book: Path) -> None:
    """Chapter 2's animation is HTML with a script: a downloaded notebook is not trusted, so
    Jupyter shows it without its script, and a note under it says how to see it."""
    from notebook_download import SCRIPTED

    cells = _download(built_book, "02_three_views")["cells"]
    scripted = [i for i, c in enumerate(cells) if any(
        "<script" in "".join(o.get("data", {}).get("text/html", "")) for o in c.get("outputs", []))]
    assert scripted, "02_three_views.ipynb: no scripted output: check broken?"
    assert all("".join(cells[i + 1]["source"]) == SCRIPTED for i in scripted)


def test_the_built_download_numbers_figures_as_the_book(built_book: Path) -> None:
    text = _markdown(_download(built_book, "05_fast"))
    page = (built_book / "book" / "05_fast.html").read_text(encoding="utf-8")
    number = re.search(r'href="#fig-ch5-bench-newest"><span class="std std-numref">([^<]+)<',
                       page)
    assert number, "05_fast.html: no reference to fig-ch5-bench-newest: check broken?"
    assert f"is {number[1]};" in text
    assert f"**{number[1]}.** The newest benchmark plot of each kind" in text   # its caption
    plots = [o for c in _download(built_book, "05_fast")["cells"] for o in c.get("outputs", [])
             if o.get("metadata", {}).get("image/png", {}).get("width") == 720]
    assert plots and all("".join(o["data"]["text/plain"]).startswith("Two bar charts from ")
                         for o in plots)


def test_the_downloaded_intro_runs_without_the_book(built_book: Path, tmp_path: Path) -> None:
    """The introduction's notebook runs top to bottom in a folder of its own with MyST-NB not
    importable (a reader's plain ``pip install``): the glue fallback is what makes it run."""
    import nbformat
    from nbclient import NotebookClient

    block = tmp_path / "block"
    (block / "myst_nb").mkdir(parents=True)
    (block / "myst_nb" / "__init__.py").write_text("raise ImportError('not installed')\n")
    nb = nbformat.read(built_book / "_sources" / "book" / "intro.ipynb", as_version=4)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(block), str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=False,
                   resources={"metadata": {"path": str(tmp_path)}}).execute(env=env)
    ran = [c for c in nb.cells if c.cell_type == "code" and c.get("execution_count")]
    assert ran, "no code cell ran"
