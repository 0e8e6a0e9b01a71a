"""The seed rule (notes/seed-coverage.md): the course never copies the seeds' sentences or code,
and every book location that the coverage map names exists.

The four seed documents live outside the repository, in ``/work/shared/seeds`` or
``../shared/seeds`` next to the checkout; the tests that compare with them skip when neither is
there. The coverage map's locations are checked without them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED_DIRS = (Path("/work/shared/seeds"), ROOT.parent / "shared" / "seeds")
COVERAGE = ROOT / "notes" / "seed-coverage.md"
RUN = 10  # this many consecutive words shared with a seed count as a copy

# LaTeX control words and environment names are markup, not words: \begin{bmatrix} ... \end{...}
_LATEX = re.compile(r"\\(?:begin|end)\{[^}]*\}|\\[A-Za-z]+")
_FENCE = re.compile(r"^(`{3,}|~{3,})")
_LOCATION = re.compile(r"^\s*([\w.-]+\.md)\s*§\s*(.+?)\s*$")


def words(text: str) -> list[str]:
    """The text as lower-case words: punctuation, whitespace and LaTeX markup dropped."""
    return re.findall(r"[a-z0-9]+", _LATEX.sub(" ", text).lower())


def _is_prose(run: tuple[str, ...]) -> bool:
    """A run counts when at least half its words have a letter. Runs of numbers are data: the
    seeds' worked examples (their inputs, kernels and results) must be reproduced exactly."""
    return 2 * sum(any(c.isalpha() for c in w) for w in run) >= len(run)


def seed_runs(seeds: dict[str, str], n: int = RUN) -> dict[tuple[str, ...], str]:
    """Every prose run of ``n`` consecutive words of the seeds -> the seed it comes from."""
    runs: dict[tuple[str, ...], str] = {}
    for name, text in sorted(seeds.items()):
        ws = words(text)
        for i in range(len(ws) - n + 1):
            run = tuple(ws[i:i + n])
            if _is_prose(run):
                runs.setdefault(run, name)
    return runs


def copied_runs(text: str, runs: dict[tuple[str, ...], str], n: int = RUN) -> list[str]:
    """The seed runs that ``text`` contains, as 'seed: words'."""
    ws = words(text)
    found = {tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)} & runs.keys()
    return sorted(f"{runs[run]}: {' '.join(run)}" for run in found)


def course_texts(root: Path) -> dict[str, str]:
    """What a reader of the course reads: the chapters, the README, and the markdown cells of the
    exercise notebooks."""
    texts = {str(p.relative_to(root)): p.read_text(encoding="utf-8")
             for p in sorted((root / "book").glob("*.md"))}
    texts["README.md"] = (root / "README.md").read_text(encoding="utf-8")
    for nb in sorted((root / "exercises").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in nb.parts:
            continue
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        texts[str(nb.relative_to(root))] = "\n".join(
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells if c["cell_type"] == "markdown")
    return texts


def _seeds() -> dict[str, str]:
    for folder in SEED_DIRS:
        files = sorted(folder.glob("*.txt")) if folder.is_dir() else []
        if files:
            return {p.name: p.read_text(encoding="utf-8") for p in files}
    pytest.skip("the seed documents are not here (looked in "
                + " and ".join(str(d) for d in SEED_DIRS)
                + "): they live outside the repository, so there is nothing to compare with")


def headings(markdown: str) -> set[str]:
    """The text of every markdown heading, outside fenced blocks (a code cell's '# comment' is
    not a heading)."""
    found, fence = set(), None
    for line in markdown.splitlines():
        m = _FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
            elif (h := re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)):
                found.add(h.group(1))
        elif m and line.strip() == fence[0] * len(line.strip()) and len(line.strip()) >= len(fence):
            fence = None
    return found


def coverage_rows(text: str) -> list[dict[str, str]]:
    """The rows of the coverage table, as {column header: cell}."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in ln.strip().strip("|").split("|")), strict=True))
            for ln in lines[2:]]


def locations(cell: str) -> list[tuple[str, str]]:
    """``file.md § heading; ...`` -> [(file, heading), ...]; a part in another form raises."""
    out = []
    for part in cell.split(";"):
        m = _LOCATION.match(part)
        assert m, f"not a 'file.md § heading' location: {part!r}"
        out.append((m.group(1), m.group(2)))
    return out


# -- (a) no copied runs ------------------------------------------------------------------

def test_no_run_of_seed_words_in_the_course() -> None:
    runs = seed_runs(_seeds())
    assert len(runs) > 1000  # the seeds were read: thousands of runs to look for
    copies = {name: found for name, text in course_texts(ROOT).items()
              if (found := copied_runs(text, runs))}
    assert not copies, f"{RUN} or more consecutive words of a seed appear in: {copies}"


def _longest_seed_sentence(seeds: dict[str, str]) -> str:
    """A real prose sentence of a seed, chosen here rather than pasted into the repository."""
    sentences = [s for text in seeds.values() for line in text.splitlines()
                 for s in re.split(r"(?<=[.!?])\s+", line.strip())
                 if len(words(s)) >= RUN + 2 and not re.search(r"[$`*|#]", s)]
    return max(sentences, key=lambda s: len(words(s)))


def test_the_check_finds_a_copied_sentence(tmp_path: Path) -> None:
    """(a) can fail: a seed sentence pasted into a copy of a chapter, and into a copy of an
    exercise notebook's markdown, is found; the real files stay clean."""
    seeds = _seeds()
    runs = seed_runs(seeds)
    sentence = _longest_seed_sentence(seeds)
    (tmp_path / "book").mkdir()
    for p in (ROOT / "book").glob("*.md"):
        shutil.copy(p, tmp_path / "book" / p.name)
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    notebook = next(p for p in sorted((ROOT / "exercises").rglob("*.ipynb"))
                    if ".ipynb_checkpoints" not in p.parts)
    nb_copy = tmp_path / notebook.relative_to(ROOT)
    nb_copy.parent.mkdir(parents=True)
    shutil.copy(notebook, nb_copy)
    assert not any(copied_runs(t, runs) for t in course_texts(tmp_path).values())

    chapter = tmp_path / "book" / "02_three_views.md"
    # case, punctuation and line breaks do not hide it
    chapter.write_text(chapter.read_text(encoding="utf-8") + "\n"
                       + sentence.upper().replace(" ", "\n", 3).replace(",", ""),
                       encoding="utf-8")
    nb = json.loads(nb_copy.read_text(encoding="utf-8"))
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": [sentence]})
    nb_copy.write_text(json.dumps(nb), encoding="utf-8")
    found = {name: copied_runs(text, runs) for name, text in course_texts(tmp_path).items()}
    assert found["book/02_three_views.md"], sentence
    assert found[str(nb_copy.relative_to(tmp_path))], sentence
    # nine words are allowed, ten are not
    nine = " ".join(words(sentence)[:RUN - 1])
    assert not copied_runs(nine, runs) and copied_runs(" ".join(words(sentence)[:RUN]), runs)


def test_numbers_and_markup_are_not_words() -> None:
    """The worked examples' numbers may be reproduced; LaTeX markup around them is not prose."""
    example = r"Input $\begin{bmatrix}1&2\\3&4\end{bmatrix}$, kernel $\begin{bmatrix}1&1&1\\" \
              r"0&0&0\\-1&-1&-1\end{bmatrix}$, stride 2, padding 1"
    assert words(example) == ["input", "1", "2", "3", "4", "kernel", "1", "1", "1", "0", "0",
                              "0", "1", "1", "1", "stride", "2", "padding", "1"]
    assert not _is_prose(tuple(words(example)[:RUN]))
    assert _is_prose(tuple("the kernel is flipped and the channels swapped 2 3 4".split()))


# -- (b) the coverage map names real places ------------------------------------------------

def test_every_coverage_location_exists() -> None:
    rows = coverage_rows(COVERAGE.read_text(encoding="utf-8"))
    assert len(rows) >= 50 and {"id", "seed", "kind", "book location"} <= rows[0].keys()
    assert len({r["id"] for r in rows}) == len(rows), "duplicate ids in the coverage map"
    assert {r["kind"] for r in rows} == {"point", "slip"}
    cache: dict[str, set[str]] = {}
    missing = []
    for row in rows:
        for file, heading in locations(row["book location"]):
            path = ROOT / "book" / file
            if not path.is_file():
                missing.append(f"{row['id']}: no file book/{file}")
                continue
            if heading not in cache.setdefault(file, headings(path.read_text(encoding="utf-8"))):
                missing.append(f"{row['id']}: no heading {heading!r} in book/{file}")
    assert not missing, missing


def test_headings_skip_code_cells() -> None:
    md = "# Title\n\n```{code-cell} ipython3\n# a comment\n```\n\n## `padding` crops\n" \
         "````md\n```\n# inside\n```\n````\n### Last ###\n"
    assert headings(md) == {"Title", "`padding` crops", "Last"}
    assert locations("a.md § One; b.md § Two: three") == [("a.md", "One"), ("b.md", "Two: three")]
    with pytest.raises(AssertionError):
        locations("a.md, One")


def test_every_seed_is_in_the_coverage_map() -> None:
    seeds = _seeds()
    listed = {r["seed"] for r in coverage_rows(COVERAGE.read_text(encoding="utf-8"))}
    assert {name[:3] for name in seeds} <= listed, (sorted(seeds), sorted(listed))
