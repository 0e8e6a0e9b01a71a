"""Local Sphinx extension for the tconv book (loaded via ``sphinx.local_extensions``).

1. Every MyST-Markdown notebook page gets a working ``.ipynb`` download: the executed notebook
   (outputs merged from jupyter-cache) is written next to the page's sources and the book
   theme's download menu links to it. (The theme only does this when launch buttons are
   configured, and this book has none: it must work without the network.)
2. sphinx-thebe (always loaded by Jupyter Book) is switched off: its scripts point at a CDN and
   this book has no live kernels.
3. The vendored MathJax (``book/_static/mathjax``) must exist; the build fails otherwise.
4. Code cells are shown without their ``glue`` plumbing: the calls that hand computed numbers
   to the prose (and the ``myst_nb`` import) are dropped from the displayed source only. They
   still run, and the downloadable notebook keeps them. Cells collapsed behind "Show code cell
   source" (``hide-input``, the chapters' "numbers for the prose below" cells) keep every line:
   they are where a reader looks to see how a number in the text was computed.
5. A cell's printed output is shown as it was printed. The kernel sends stdout in chunks that
   may end mid-line (a flush before a figure, a timer); MyST-NB's ``merge_streams`` strips each
   chunk and ends it with a newline, which adds a blank line or breaks a line in two wherever a
   chunk happened to end. The chunks are joined exactly before MyST-NB sees them.
6. A cell's ``mystnb: figure:`` metadata (caption and name) makes one numbered figure of all its
   consecutive image outputs. MyST-NB wraps every output in a figure of its own, which repeats
   the caption and registers the name once per image (a duplicate-label warning); a cell that
   shows a list of recorded benchmark plots needs them under one caption.
7. The bibliography's entries are list items to assistive technology. Docutils writes each
   citation as ``<div role="doc-biblioentry">`` inside a ``<div role="list">``; DPUB-ARIA 1.1
   deprecated that role (use ``listitem``), so the list had no items a screen reader counts and
   axe reported aria-required-children (critical) on the references page. The role is
   rewritten to ``listitem`` in each page's body (tests/test_book_a11y.py).
8. The downloaded notebook reads as a notebook in plain Jupyter: its MyST (roles, directives,
   ``{image}`` outputs) becomes Markdown, in its own module, ``notebook_download``
   (:func:`notebook_download.for_jupyter`). The page's ``.md`` download stays the MyST source.
   Both run without MyST-NB (in the ``book`` extra, not in ``pip install`` of the project):
   the chapters import ``glue`` in a ``try`` whose ``except ImportError`` defines one that does
   nothing, plumbing that the book does not show (item 4; tests/test_book_download.py).
"""

from __future__ import annotations

import ast
from contextlib import contextmanager
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx


def _is_glue(stmt: ast.stmt) -> bool:
    """``glue(...)`` as a statement, or ``from myst_nb import glue``."""
    if isinstance(stmt, ast.ImportFrom):
        return stmt.module == "myst_nb" and all(a.name == "glue" for a in stmt.names)
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "glue")


def _bodies(stmt: ast.stmt) -> list[list[ast.stmt]]:
    return [b for b in (getattr(stmt, f, None) for f in ("body", "orelse", "finalbody"))
            if isinstance(b, list) and b and isinstance(b[0], ast.stmt)]


def _plumbing(stmt: ast.stmt) -> bool:
    """A glue statement, or a loop/branch/with that does nothing but glue, or the chapters'
    ``try: from myst_nb import glue`` / ``except ImportError:`` stand-in (item 8)."""
    if _is_glue(stmt):
        return True
    if isinstance(stmt, ast.Try) and stmt.body and all(_is_glue(s) for s in stmt.body):
        return all(isinstance(h.type, ast.Name) and h.type.id == "ImportError"
                   for h in stmt.handlers) and not stmt.orelse and not stmt.finalbody
    if not isinstance(stmt, ast.For | ast.If | ast.With):
        return False
    return all(_plumbing(s) for body in _bodies(stmt) for s in body)


def _drop(body: list[ast.stmt], lines: set[int]) -> None:
    """Add to ``lines`` the 1-based lines of ``body``'s plumbing, leaving no body empty."""
    if all(_plumbing(s) for s in body):
        return                          # the enclosing statement keeps at least this
    for stmt in body:
        if _plumbing(stmt):
            lines.update(range(stmt.lineno, stmt.end_lineno + 1))
        else:
            for inner in _bodies(stmt):
                _drop(inner, lines)


def _outside_plumbing(node: ast.AST):
    """Every statement under ``node`` that is neither plumbing nor inside plumbing."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.stmt) and _plumbing(child):
            continue
        if isinstance(child, ast.stmt):
            yield child
        yield from _outside_plumbing(child)


def shown_source(code: str) -> str:
    """``code`` as a reader sees it: without its glue plumbing (see the module docstring).

    Only whole lines go, and only lines no other statement shares; code that does not parse
    (IPython syntax) is shown as it is."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    drop: set[int] = set()
    if all(_plumbing(s) for s in tree.body):
        drop.update(range(1, len(code.splitlines()) + 1))
    else:
        _drop(tree.body, drop)
    kept = {n for stmt in _outside_plumbing(tree)
            if not any(isinstance(c, ast.stmt) for c in ast.iter_child_nodes(stmt))
            for n in range(stmt.lineno, stmt.end_lineno + 1)}
    drop -= kept
    lines = [line for i, line in enumerate(code.splitlines(), start=1) if i not in drop]
    out: list[str] = []
    for line in lines:                  # no run of blank lines where plumbing was
        if line.strip() or (out and out[-1].strip()):
            out.append(line)
    return "\n".join(out).strip("\n")


def merge_streams_exactly(outputs: list) -> list:
    """``outputs`` with each stream (stdout, stderr) joined into its first chunk, text exact.

    MyST-NB's own ``coalesce_streams`` runs afterwards, on one chunk per stream: it only strips
    the end and orders stderr before stdout."""
    merged: dict[str, dict] = {}
    out = []
    for output in outputs:
        if output.get("output_type") == "stream":
            name = output.get("name")
            if name in merged:
                merged[name]["text"] += output["text"]
                continue
            output = type(output)(output)           # a copy: the cached notebook is not ours
            merged[name] = output
        out.append(output)
    return out


def _install_exact_stream_merge() -> None:
    from myst_nb.core import render

    original = render.coalesce_streams
    if getattr(original, "tconv_exact", False):
        return

    def coalesce(outputs: list) -> list:
        return original(merge_streams_exactly(outputs))

    coalesce.tconv_exact = True
    render.coalesce_streams = coalesce


def _install_one_figure_per_cell() -> None:
    from myst_nb import sphinx_

    original = sphinx_.create_figure_context
    if getattr(original, "tconv_one_per_cell", False):
        return

    @contextmanager
    def one_figure(self, figure_options, line: int):
        figures = self.__dict__.setdefault("_tconv_cell_figures", {})
        last = self.current_node.children[-1] if self.current_node.children else None
        figure = figures.get(line)
        if not isinstance(figure_options, dict) or figure is None or last is not figure:
            with original(self, figure_options, line):
                if isinstance(figure_options, dict):
                    figures[line] = self.current_node      # the figure the context opened
                yield
            return
        # the cell's next output: into its figure, before the caption (and legend)
        tail = [c for c in figure.children if isinstance(c, nodes.caption | nodes.legend)]
        for child in tail:
            figure.remove(child)
        outer, self.current_node = self.current_node, figure
        try:
            yield
        finally:
            self.current_node = outer
            figure.extend(tail)

    one_figure.tconv_one_per_cell = True
    sphinx_.create_figure_context = one_figure


HIDDEN_TAGS = ("tag_hide-input", "tag_hide-cell")


def _hide_glue(app: Sphinx, doctree: nodes.document) -> None:
    for block in list(doctree.findall(nodes.literal_block)):
        parent = block.parent
        if not isinstance(parent, nodes.container) or "cell_input" not in parent["classes"]:
            continue
        cell = parent.parent
        if any(tag in cell.get("classes", []) for tag in HIDDEN_TAGS):
            continue
        text = block.astext()
        shown = shown_source(text)
        if shown == text:
            continue
        if not shown:                   # a cell of plumbing only: show its outputs alone
            cell.remove(parent)
            continue
        block.rawsource = shown
        block.children = [nodes.Text(shown)]


def _executed_notebook(app: Sphinx, pagename: str) -> str | None:
    """The page's notebook with its outputs, as JSON text (None if the page is no notebook).

    In ``cache`` mode MyST-NB renders outputs from jupyter-cache but writes the notebook to
    ``jupyter_execute`` without them, so the outputs are merged from the cache here.
    """
    import nbformat

    source = Path(app.env.doc2path(pagename))
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not executed.exists():
        return None
    try:
        from jupyter_cache import get_cache
        from myst_nb.core.read import read_myst_markdown_notebook

        nb = read_myst_markdown_notebook(source.read_text(encoding="utf-8"))
        cache = get_cache(app.env.mystnb_config.execution_cache_path)
        _, merged = cache.merge_match_into_notebook(nb)
        return nbformat.writes(merged)
    except Exception:  # no cached execution (e.g. no code cells): the written notebook is it
        return executed.read_text(encoding="utf-8")


def _add_ipynb_download(app: Sphinx, pagename: str, templatename: str, context: dict,
                        doctree) -> None:
    if doctree is None or not context.get("sourcename", "").endswith((".md", ".md.txt")):
        return
    text = _executed_notebook(app, pagename)
    if text is None:
        return
    import nbformat
    from notebook_download import for_jupyter, targets

    nb = for_jupyter(nbformat.reads(text, as_version=4), targets(app, pagename))
    text = nbformat.writes(nb)
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    context["ipynb_source"] = f"{pagename}.ipynb"


def _check_mathjax(app: Sphinx) -> None:
    path = app.config.mathjax_path
    if path.startswith(("http:", "https:", "//")):
        raise RuntimeError(f"mathjax_path must be a local file, got mathjax_path={path!r}")
    static = [Path(app.confdir) / p for p in app.config.html_static_path]
    if not any((d / path).is_file() for d in static):
        raise RuntimeError(f"MathJax not found at {path!r} under html_static_path {static}: "
                           "run scripts/build_book.sh, which vendors it from npm (mathjax@3)")


def _drop_thebe(app: Sphinx, env, docnames) -> None:
    def keep(js) -> bool:
        name = js[0] if isinstance(js, tuple) else getattr(js, "filename", None)
        attrs = js[1] if isinstance(js, tuple) else getattr(js, "attributes", {})
        body = str(attrs.get("body", "")) if isinstance(attrs, dict) else ""
        return not (str(name or "").endswith("sphinx-thebe.js") or "THEBE" in body)

    app.registry.js_files[:] = [js for js in app.registry.js_files if keep(js)]
    builder_js = getattr(app.builder, "_js_files", None)
    if builder_js is not None:
        builder_js[:] = [js for js in builder_js if keep(js)]


def _citations_as_list_items(app: Sphinx, pagename: str, templatename: str, context: dict,
                             doctree) -> None:
    body = context.get("body")
    if isinstance(body, str) and 'role="doc-biblioentry"' in body:
        context["body"] = body.replace('role="doc-biblioentry"', 'role="listitem"')


def setup(app: Sphinx) -> dict:
    app.connect("env-before-read-docs", _drop_thebe, priority=900)
    app.connect("builder-inited", _check_mathjax)
    app.connect("html-page-context", _add_ipynb_download, priority=400)
    app.connect("html-page-context", _citations_as_list_items)
    app.connect("doctree-read", _hide_glue)
    _install_exact_stream_merge()
    _install_one_figure_per_cell()
    return {"parallel_read_safe": True, "parallel_write_safe": True}
