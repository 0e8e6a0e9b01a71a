"""The book shows its code cells without the ``glue`` plumbing that hands numbers to the prose
(``book/_ext/tconv_book.py``), keeps it in the collapsed "numbers for the prose" cells, and
keeps it in the notebook a reader downloads (which must still run)."""

from __future__ import annotations

import html.parser
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from tconv_book import shown_source  # noqa: E402

pytestmark = pytest.mark.xdist_group("book")


CELL = '''import numpy as np
from myst_nb import glue

x = np.arange(3)
glue("n", len(x),
     display=False)
for j in range(3):
    print(j)
    glue(f"b{j}", j, display=False)
for j in range(2):
    glue(f"c{j}", j, display=False)
if x[0]:
    glue("d", 1, display=False)
else:
    print(2)
y = 2; glue("e", y)
print(x)
glue("f", 3)
'''


def test_glue_statements_leave_the_shown_source_and_nothing_else_does():
    assert shown_source(CELL) == '''import numpy as np

x = np.arange(3)
for j in range(3):
    print(j)
if x[0]:
    glue("d", 1, display=False)
else:
    print(2)
y = 2; glue("e", y)
print(x)'''


@pytest.mark.parametrize("code", [
    "x = 1\nprint(x)",                        # nothing to drop
    "%timeit f()\nglue('a', 1)",              # IPython syntax: shown as written
    "result = glue('a', 1)",                  # a value is kept: not plumbing
    "from myst_nb import glue, glue_figure",  # imports more than glue
])
def test_code_that_is_not_plain_plumbing_is_shown_as_written(code):
    assert shown_source(code) == code


def test_the_import_with_its_stand_in_is_plumbing():
    """The chapters import ``glue`` in a ``try`` with a stand-in for plain Jupyter
    (tests/test_book_download.py): the book shows neither."""
    cell = ("import numpy as np\ntry:\n    from myst_nb import glue  # prose\n"
            "except ImportError:  # plain Jupyter\n    def glue(name, value, display=True):\n"
            "        pass\n\nx = np.arange(3)")
    assert shown_source(cell) == "import numpy as np\n\nx = np.arange(3)"
    other = "try:\n    from myst_nb import glue\nexcept Exception:\n    glue = print\nx = 1"
    assert shown_source(other) == other           # anything else is shown as written


def test_a_cell_of_plumbing_only_shows_nothing():
    assert shown_source("from myst_nb import glue\n\nglue('a', 1)\nglue('b', 2)\n") == ""


class _Cells(html.parser.HTMLParser):
    """``(hidden, source)`` of every code cell's input on a built page."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []            # per open div: "cell", "hidden", "input" or ""
        self.cells: list[tuple[bool, str]] = []
        self.hidden = False

    def handle_starttag(self, tag, attrs) -> None:
        if tag != "div":
            return
        classes = (dict(attrs).get("class") or "").split()
        kind = ("input" if "cell_input" in classes else
                "cell" if "cell" in classes else "")
        if kind == "cell":
            self.hidden = "tag_hide-input" in classes
        if kind == "input":
            self.cells.append((self.hidden, ""))
        self.stack.append(kind)

    def handle_endtag(self, tag) -> None:
        if tag == "div" and self.stack:
            self.stack.pop()

    def handle_data(self, data) -> None:
        if "input" in self.stack:
            hidden, text = self.cells[-1]
            self.cells[-1] = (hidden, text + data)


@pytest.fixture(scope="module")
def cells(built_book: Path) -> dict[str, list[tuple[bool, str]]]:
    out = {}
    for page in sorted((built_book / "book").glob("*.html")):
        parser = _Cells()
        parser.feed(page.read_text(encoding="utf-8"))
        out[page.stem] = parser.cells
    return out


def test_shown_cells_have_no_glue_and_collapsed_ones_keep_it(cells) -> None:
    shown = {p: [t for hidden, t in c if not hidden] for p, c in cells.items()}
    assert sum(map(len, shown.values())) > 50, "too few code cells found: parser broken?"
    leaks = {p: [t[:80] for t in texts if "glue(" in t or "myst_nb" in t]
             for p, texts in shown.items()}
    assert not any(leaks.values()), leaks
    collapsed = [t for c in cells.values() for hidden, t in c if hidden]
    assert collapsed and any("glue(" in t for t in collapsed)


def test_the_downloaded_notebook_keeps_the_glue_calls(built_book: Path) -> None:
    nb = json.loads((built_book / "_sources" / "book" / "intro.ipynb").read_text("utf-8"))
    source = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "from myst_nb import glue" in source and "glue(" in source
