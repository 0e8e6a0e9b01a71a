"""The downloaded notebook, for plain Jupyter (item 8 of :mod:`tconv_book`).

A page's ``.ipynb`` download is its executed notebook, whose markdown is MyST: Jupyter shows
``{glue:text}`` roles, ``literalinclude`` directives (with no code), admonitions and the
benchmark plots' ``{image}`` outputs as raw text. :func:`for_jupyter` rewrites it: roles become
their text (a glued value as the book shows it, a figure's number, a citation's authors and
year, a link to the sibling notebook), directives become Markdown (the included source lines,
a quoted admonition, the glossary and the bibliography as paragraphs), an ``{image}`` output
becomes the PNG with its alt text, a figure's caption a cell after it, a cell the book
collapses is collapsed in Jupyter, and a widget output whose state was not saved is dropped.
:func:`targets` collects what a page's roles point at from the Sphinx build.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from sphinx.application import Sphinx


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


def targets(app: Sphinx, pagename: str) -> Targets:
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
