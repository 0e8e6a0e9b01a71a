"""Local Sphinx extension for the tconv book (loaded via ``sphinx.local_extensions``).

1. Every MyST-Markdown notebook page gets a working ``.ipynb`` download: the executed notebook
   (outputs merged from jupyter-cache) is written next to the page's sources and the book
   theme's download menu links to it. (The theme only does this when launch buttons are
   configured, and this book has none: it must work without the network.)
2. sphinx-thebe (always loaded by Jupyter Book) is switched off: its scripts point at a CDN and
   this book has no live kernels.
3. The vendored MathJax (``book/_static/mathjax``) must exist; the build fails otherwise.
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx


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


def setup(app: Sphinx) -> dict:
    app.connect("env-before-read-docs", _drop_thebe, priority=900)
    app.connect("builder-inited", _check_mathjax)
    app.connect("html-page-context", _add_ipynb_download, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
