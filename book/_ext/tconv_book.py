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
8. The downloaded notebook reads as a notebook in plain Jupyter (``for_jupyter``). Its markdown
   is MyST, which Jupyter shows as raw text: ``{glue:text}`` roles, ``literalinclude``
   directives with no code, admonitions as code blocks, benchmark plots (MyST ``{image}``
   outputs) as their directive's text. In the download, the roles become their text (a glued
   value as the book shows it, a figure's number, a citation's authors and year, a link to the
   sibling notebook), the directives become Markdown (the included source lines themselves, a
   quoted admonition, the glossary and the bibliography as paragraphs), and an ``{image}``
   output becomes the PNG itself with its alt text, a figure's caption a cell after it, and a
   cell the book collapses (``hide-input``, ``hide-output``; ``remove-input``, the prose's
   bookkeeping) is collapsed in Jupyter (``metadata.jupyter``), a widget's output, whose state
   is not saved, is left for the reader's run to make. A first cell says what the
   notebook needs to run. The page's ``.md`` download stays the MyST source. Both run without
   MyST-NB (in the ``book`` extra, not in ``pip install`` of the project): the chapters import
   ``glue`` in a ``try`` whose ``except ImportError`` defines one that does nothing, plumbing
   that the book does not show (item 4; tests/test_book_download.py).
"""

from __future__ import annotations

import ast
import base64
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

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


# --- 8. the downloaded notebook, for plain Jupyter ------------------------------------------

@dataclass
class Targets:
    """What the roles of one page point at, as the built book shows them."""

    root: Path                                          # the repository (``/path`` targets)
    docdir: Path                                        # the page's folder (``path`` targets)
    numref: dict[str, str] = field(default_factory=dict)    # label -> "Fig. 5.2"
    ref: dict[str, str] = field(default_factory=dict)       # label -> section title
    titles: dict[str, str] = field(default_factory=dict)    # docname ("book/intro") -> title
    cites: dict[str, tuple[str, str]] = field(default_factory=dict)   # key -> (names, year)
    bibliography: list[str] = field(default_factory=list)  # formatted entries (Markdown)
    config: object = None                               # Sphinx's config (literalinclude)


NOTE = ("*This notebook was downloaded from the book \u201ctconv: transposed convolution, end "
        "to end\u201d. It runs top to bottom in a fresh kernel with the project installed "
        "(`pip install -e .` in the course's repository). The numbers in the text are those "
        "of the book's build, which the cells compute again; MyST-NB's `glue` (the `book` "
        "extra) hands them to the book's prose, and without it `glue` does nothing.{extra}*")
NOTE_BENCH = (" Benchmark files and plots are read from `benchmarks/results/` of the checkout "
              "the project was installed from; without one the cells say so and skip them.")
SCRIPTED = ("*The output above is run by its own JavaScript, which Jupyter runs only in a "
            "notebook you trust: run the cell (or trust the notebook) to see it.*")
WIDGET = "application/vnd.jupyter.widget-view+json"
_ROLE = re.compile(r"\{(?P<role>[a-z]+(?::[a-z]+)?)\}`(?P<body>[^`]*)`")
_TITLED = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
_FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[a-z-]+)\}\s*(?P<args>.*)$")
_TARGET = re.compile(r"^\([\w:.-]+\)=\s*$")
_IMAGE_OUTPUT = re.compile(r"^```\{image\}\s+(?P<path>\S+)\s*\n(?P<opts>(?::[\w-]+:.*\n?)*)```",
                           re.M)


def _titled(body: str) -> tuple[str | None, str]:
    m = _TITLED.match(body.strip())
    return (m["text"], m["target"]) if m else (None, body.strip())


def _cite(keys: str, targets: Targets, textual: bool) -> str:
    out = []
    for key in (k.strip() for k in keys.split(",")):
        names, year = targets.cites.get(key, (key, ""))
        if not year:
            out.append(names)
        else:
            out.append(f"{names} [{year}]" if textual else f"{names}, {year}")
    return "; ".join(out) if textual else f"[{'; '.join(out)}]"


def _role(m: re.Match, glued: dict[str, str], targets: Targets) -> str:
    role, body = m["role"], m["body"]
    if role.startswith("glue"):
        from myst_nb.core.variables import format_plain_text

        key, _, fmt = body.partition(":")
        if key not in glued:
            return m[0]
        return format_plain_text(glued[key], fmt)
    text, target = _titled(body)
    if role == "term":
        return text or target
    if role.startswith("cite"):
        return _cite(target, targets, textual=role == "cite:t")
    if role == "numref":
        number = targets.numref.get(target)
        if number is None:
            return text or target
        if text and "%s" in text:
            return text.replace("%s", number.split()[-1])
        return text or number
    if role == "ref":
        return text or targets.ref.get(target, target)
    if role == "doc":
        doc = Path(target).name
        title = text or targets.titles.get(f"book/{doc}", doc)
        return f"[{title}]({doc}.ipynb)"
    if role == "download":              # a file of the course's repository, by its path
        path = target.lstrip("/")
        return f"`{path}`" if text in (None, Path(path).name) else f"{text} (`{path}`)"
    return m[0]


def _roles(text: str, glued: dict[str, str], targets: Targets) -> str:
    return _ROLE.sub(lambda m: _role(m, glued, targets), text)


def _directive(name: str, args: str, options: dict[str, str], body: list[str],
               glued: dict[str, str], targets: Targets) -> list[str] | None:
    """Markdown for one directive, or None to keep it as written."""
    if name == "literalinclude":
        from sphinx.directives.code import LiteralInclude, LiteralIncludeReader

        path = targets.root / args[1:] if args.startswith("/") else targets.docdir / args
        config = targets.config or SimpleNamespace(source_encoding="utf-8-sig")
        spec = LiteralInclude.option_spec          # the options as the directive reads them
        opts = {k: spec[k](v or None) for k, v in options.items() if k in spec}
        text, _ = LiteralIncludeReader(str(path), opts, config).read()
        rel = path.resolve().relative_to(targets.root.resolve()).as_posix()
        language = options.get("language", "python" if path.suffix == ".py" else "")
        head = [f"*From `{rel}`:*", ""]
        if options.get("caption"):
            head = [f"*{options['caption']}* (`{rel}`)", ""]
        return head + [f"```{language}", *text.rstrip("\n").split("\n"), "```"]
    if name in ("admonition", "note", "tip", "warning", "important", "seealso", "hint"):
        title = args.strip() or name.capitalize()
        inner = _markdown("\n".join(body), glued, targets).split("\n")
        return [f"> **{_roles(title, glued, targets)}**", ">",
                *[f"> {line}".rstrip() for line in inner]]
    if name == "glossary":
        out: list[str] = []
        for line in body:
            if line.strip() and not line[0].isspace():
                out += ["", f"**{line.strip()}**  "]
            elif line.strip():
                out.append(_roles(line.strip(), glued, targets))
        return out[1:] if out and not out[0] else out
    if name == "bibliography":
        return [f"- {entry}" for entry in targets.bibliography]
    return None


def _markdown(text: str, glued: dict[str, str], targets: Targets) -> str:
    """A MyST markdown cell as plain (Jupyter) Markdown."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        m = _FENCE.match(line)
        if _TARGET.match(line):
            i += 1
            continue
        if not m:
            out.append(_roles(line, glued, targets))
            i += 1
            continue
        fence, j = m["fence"], i + 1
        while j < len(lines) and lines[j].strip() != fence:
            j += 1
        block = lines[i + 1:j]
        options: dict[str, str] = {}
        if block and block[0].strip() == "---":          # YAML options
            end = block.index("---", 1) if "---" in block[1:] else 0
            for opt in block[1:end]:
                key, _, value = opt.partition(":")
                options[key.strip()] = value.strip()
            block = block[end + 1:]
        while block and re.match(r"^:[\w-]+:", block[0]):
            key, _, value = block[0][1:].partition(":")
            options[key] = value.strip()
            block = block[1:]
        new = _directive(m["name"], m["args"], options, block, glued, targets)
        out.extend(lines[i:j + 1] if new is None else new)
        i = j + 1
    return "\n".join(out)


def _glued(nb) -> dict[str, str]:
    """name -> text/plain of every value the notebook's cells glued."""
    values = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            book = out.get("metadata", {}).get("scrapbook", {})
            text = out.get("data", {}).get(book.get("mime_prefix", "") + "text/plain")
            if book.get("name") and text is not None:
                values[book["name"]] = "".join(text)
    return values


def _image_output(out, root: Path) -> None:
    """A MyST ``{image}`` markdown output as the image itself (PNG, its alt text as text)."""
    text = "".join(out.get("data", {}).get("text/markdown", ""))
    m = _IMAGE_OUTPUT.match(text.strip())
    if not m or not m["path"].endswith(".png"):
        return
    path = root / m["path"].lstrip("/")
    if not path.is_file():
        return
    opts = dict(re.findall(r"^:([\w-]+):\s*(.*)$", m["opts"], re.M))
    out["data"] = {"image/png": base64.b64encode(path.read_bytes()).decode("ascii"),
                   "text/plain": opts.get("alt", path.name)}
    width = opts.get("width", "").removesuffix("px")
    out["metadata"] = {"image/png": {"width": int(width)}} if width.isdigit() else {}


def for_jupyter(nb, targets: Targets, glued: dict[str, str] | None = None):
    """The executed notebook ``nb`` (nbformat) as a reader's download (item 8), in place;
    ``glued``: the glued values' text (those of ``nb``'s outputs by default)."""
    import nbformat

    glued = _glued(nb) if glued is None else glued
    bench = False
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "markdown":
            cell.source = _markdown(cell.source, glued, targets)
        elif cell.cell_type == "code":
            bench |= "benchmarks" in cell.source
            tags = set(cell.metadata.get("tags", []))   # collapsed in the book: in Jupyter too
            hidden = {"source_hidden": bool(tags & {"hide-input", "remove-input", "hide-cell"}),
                      "outputs_hidden": bool(tags & {"hide-output", "hide-cell"})}
            if any(hidden.values()):
                cell.metadata.setdefault("jupyter", {}).update(
                    {k: v for k, v in hidden.items() if v})
            for out in cell.get("outputs", []):
                _image_output(out, targets.root)
            if "widgets" not in nb.metadata:    # a widget with no saved state: "model not
                cell.outputs = [o for o in cell.get("outputs", [])   # found"; run the cell
                                if WIDGET not in o.get("data", {})]
            if any("<script" in "".join(o.get("data", {}).get("text/html", ""))
                   for o in cell.get("outputs", [])):
                cells.append(nbformat.v4.new_markdown_cell(SCRIPTED))
            figure = cell.metadata.get("mystnb", {}).get("figure", {})
            if figure.get("caption"):       # Jupyter shows no cell metadata: a caption cell
                number = targets.numref.get(figure.get("name", ""), "Figure")
                caption = _markdown(figure["caption"].strip(), glued, targets)
                cells.append(nbformat.v4.new_markdown_cell(f"**{number}.** {caption}"))
    nb.cells = cells
    note = NOTE.format(extra=NOTE_BENCH if bench else "")
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(note))
    return nb


def bibliography(bibfiles: list[Path]) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """Each entry's (authors, year) for a citation, and every entry formatted (Markdown)."""
    from pybtex.database import parse_file
    from pybtex.plugin import find_plugin

    cites, entries = {}, []
    style = find_plugin("pybtex.style.formatting", "plain")()
    backend = find_plugin("pybtex.backends", "markdown")()
    for bib in bibfiles:
        data = parse_file(str(bib))
        for key, entry in data.entries.items():
            people = entry.persons.get("author", [])
            last = [" ".join(p.last_names).replace("{", "").replace("}", "") for p in people]
            names = (last[0] if len(last) == 1 else " and ".join(last) if len(last) == 2
                     else f"{last[0]} et al." if last else key)
            cites[key] = (names, entry.fields.get("year", ""))
        entries += [e.text.render(backend).replace("\n", " ") for e in style.format_entries(
            data.entries[k] for k in sorted(data.entries, key=lambda k: cites[k]))]
    return cites, entries


def _targets(app: Sphinx, pagename: str) -> Targets:
    env = app.env
    std = env.get_domain("std")
    numref, ref = {}, {}
    for label, (docname, labelid, section) in std.labels.items():
        ref[label] = section
        nums = env.toc_fignumbers.get(docname, {}).get("figure", {}).get(labelid)
        if nums:
            numref[label] = app.config.numfig_format["figure"] % ".".join(map(str, nums))
    if not hasattr(app, "_tconv_bib"):
        app._tconv_bib = bibliography([Path(app.confdir) / bib for bib in
                                       getattr(app.config, "bibtex_bibfiles", [])])
    cites, entries = app._tconv_bib
    return Targets(root=Path(app.confdir), docdir=Path(app.env.doc2path(pagename)).parent,
                   numref=numref, ref=ref,
                   titles={d: t.astext() for d, t in env.titles.items()}, cites=cites,
                   bibliography=entries, config=app.config)


def _add_ipynb_download(app: Sphinx, pagename: str, templatename: str, context: dict,
                        doctree) -> None:
    if doctree is None or not context.get("sourcename", "").endswith((".md", ".md.txt")):
        return
    text = _executed_notebook(app, pagename)
    if text is None:
        return
    import nbformat

    nb = for_jupyter(nbformat.reads(text, as_version=4), _targets(app, pagename))
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
