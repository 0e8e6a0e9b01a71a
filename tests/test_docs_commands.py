"""The contributor docs match the tree: README's "How it fits together" names paths that exist and
every top-level folder and module, every `make` target the docs name exists and `make help`
describes every target, CONTRIBUTING.md's test map covers every test file, relative links reach
a file and a heading, and the docs' own test command runs every test file that reads them."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "CONTRIBUTING.md", "solutions/README.md")
ENTRY_INDENT = 10  # tree entries are indented 0, 2 or 4; wrapped descriptions 18 or more


def _tree_block() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^## How it fits together\n\n```\n(.*?)^```", text, re.S | re.M)
    assert m, "README.md has no fenced block under '## How it fits together'"
    return m.group(1)


def tree_paths(block: str) -> list[str]:
    """Repository paths of the block's entries: each line indented less than ENTRY_INDENT names
    one or more files/folders (`a.py, b.py   description`), relative to the folder entry above
    it with a smaller indent."""
    parents: list[tuple[int, str]] = []  # (indent, folder path)
    paths = []
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if not line.strip() or indent >= ENTRY_INDENT:
            continue
        names = [n.strip() for n in re.split(r"\s{2,}", line.strip())[0].split(",")]
        while parents and parents[-1][0] >= indent:
            parents.pop()
        base = parents[-1][1] if parents else ""
        for name in names:
            paths.append(base + name)
        if len(names) == 1 and names[0].endswith("/"):
            parents.append((indent, base + names[0]))
    return paths


def test_tree_parser_resolves_nesting() -> None:
    block = ("a/   x\n  b.py, c.py   y\n  d/   z\n    e.py   w\n                  wrapped text\n"
             "f.toml   v\n")
    assert tree_paths(block) == ["a/", "a/b.py", "a/c.py", "a/d/", "a/d/e.py", "f.toml"]


def test_every_path_in_the_readme_tree_exists() -> None:
    paths = tree_paths(_tree_block())
    assert len(paths) > 20, paths
    missing = [p for p in paths if not (ROOT / p).exists()
               or p.endswith("/") != (ROOT / p).is_dir()]
    assert not missing, f"README.md 'How it fits together' names paths that do not exist: {missing}"


def _ignored(name: str) -> bool:
    patterns = [ln.strip().rstrip("/") for ln in (ROOT / ".gitignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#") and "/" not in ln.strip().rstrip("/")]
    return any(fnmatch.fnmatch(name, pat) for pat in patterns)


def test_the_readme_tree_names_every_top_level_folder_and_module() -> None:
    block = _tree_block()
    paths = tree_paths(block)
    folders = {p.split("/")[0] for p in paths}
    top = sorted(d.name for d in ROOT.iterdir() if d.is_dir() and not _ignored(d.name)
                 and (not d.name.startswith(".") or d.name == ".ci"))
    unnamed = [d for d in top if d not in folders]
    assert not unnamed, f"README.md 'How it fits together' does not name the folders {unnamed}"

    modules = sorted(ROOT.glob("tconv_lib/**/*.py")) + sorted(ROOT.glob("grader/*.py"))
    unnamed = [str(m.relative_to(ROOT)) for m in modules
               if m.name not in ("__init__.py", "__main__.py") and m.name not in block
               and not re.search(rf"\b{m.stem}\b", _folder_entry(block, m.parent.name + "/"))]
    assert not unnamed, f"README.md 'How it fits together' does not name the modules {unnamed}"


def _folder_entry(block: str, folder: str) -> str:
    """The text of a folder's entry line and of the wrapped description lines after it."""
    lines = block.splitlines()
    for n, line in enumerate(lines):
        if line.strip().startswith(folder):
            text = line
            for more in lines[n + 1:]:
                if len(more) - len(more.lstrip(" ")) < ENTRY_INDENT:
                    break
                text += " " + more
            return text
    return ""


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):", text, re.M))


def test_every_make_target_the_docs_name_exists() -> None:
    targets = _makefile_targets()
    assert {"book", "test", "lint", "release"} <= targets, targets
    named = {(doc, t) for doc in DOCS
             for t in re.findall(r"`make ([a-z][\w-]*)", (ROOT / doc).read_text())}
    named |= {("README.md", t) for t in re.findall(
        r"`([a-z][\w-]*)`", (ROOT / "README.md").read_text().split("`make help` lists")[1]
        .split(")")[0])}
    assert len(named) > 10, named
    unknown = sorted((doc, t) for doc, t in named if t not in targets)
    assert not unknown, f"docs name make targets the Makefile lacks: {unknown}"


def test_make_help_describes_every_phony_target() -> None:
    text = (ROOT / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY:(.*)$", text, re.M).group(1).split()) - {"help", "venv"}
    helped = set(re.findall(r'^\t@echo "make ([\w-]+)', text, re.M))
    assert phony <= _makefile_targets(), phony - _makefile_targets()
    assert not phony - helped, f"`make help` does not describe {sorted(phony - helped)}"


def _expand(pattern: str) -> list[str]:
    m = re.search(r"\{([^}]*)\}", pattern)
    if not m:
        return [pattern]
    return [q for alt in m.group(1).split(",")
            for q in _expand(pattern[:m.start()] + alt + pattern[m.end():])]


def test_contributing_test_map_covers_every_test_file() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    table = text.split("## Which tests cover what")[1].split("\n## ")[0]
    patterns = [q for row in table.splitlines() if row.startswith("| ") and "`" in row
                for p in re.findall(r"`(tests/[^`]+)`", row.split("|")[2]) for q in _expand(p)]
    assert len(patterns) > 10, patterns
    files = {p.name for p in ROOT.glob("tests/test_*.py")}
    matched = {p: {f for f in files if fnmatch.fnmatch("tests/" + f, p)} for p in patterns}
    dead = [p for p, fs in matched.items() if not fs]
    assert not dead, f"CONTRIBUTING.md's test map names test files that do not exist: {dead}"
    unmapped = sorted(files - set().union(*matched.values()))
    assert not unmapped, (f"CONTRIBUTING.md's test map ('Which tests cover what') leaves out "
                          f"{unmapped}: add each to its area's row")


def test_contributing_library_command_matches_the_test_map() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    command = next(ln for ln in text.splitlines()
                   if ln.startswith(".venv/bin/python -m pytest -n 2 tests/test_library_"))
    row = next(ln for ln in text.splitlines() if ln.startswith("| library |"))
    assert re.findall(r"tests/\S+\.py", command) == re.findall(r"`(tests/[^`]+)`", row)


def test_paths_in_contributing_exist() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    paths = {p for p in re.findall(r"`([\w.][\w./-]*/[\w./-]*)`", text)
             if not p.startswith("/")}
    assert len(paths) > 5, paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"CONTRIBUTING.md names paths that do not exist: {missing}"


def test_the_readme_tree_names_every_script_benchmark_and_top_level_file() -> None:
    block = _tree_block()
    files = ([p for p in ROOT.iterdir() if p.is_file() and not p.name.startswith(".")
              and p.name not in ("README.md", "CONTRIBUTING.md", "LICENSE")]
             + sorted((ROOT / "scripts").glob("*")) + sorted((ROOT / "benchmarks").glob("*.py")))
    unnamed = sorted(str(p.relative_to(ROOT)) for p in files
                     if not re.search(rf"(?<![\w.]){re.escape(p.name)}(?![\w.])", block))
    assert not unnamed, f"README.md 'How it fits together' does not name {unnamed}"


def _github_anchors(md: Path) -> set[str]:
    """The anchors GitHub gives a file's headings (lower case, punctuation dropped, spaces
    to hyphens); headings inside fenced blocks are not headings."""
    text = re.sub(r"^```.*?^```", "", md.read_text(), flags=re.S | re.M)
    return {re.sub(r"[^\w\- ]", "", h.replace("`", "").strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", text, re.M)}


def test_github_anchor_rule(tmp_path: Path) -> None:
    md = tmp_path / "x.md"
    md.write_text("# For students: exercises → check → submit\n```\n# not a heading\n```\n"
                  "## `make` it\n")
    assert _github_anchors(md) == {"for-students-exercises--check--submit", "make-it"}


@pytest.mark.parametrize("doc", DOCS)
def test_every_relative_link_reaches_a_file_and_heading(doc: str) -> None:
    md = ROOT / doc
    text = re.sub(r"^```.*?^```", "", md.read_text(), flags=re.S | re.M)
    links = [ln for ln in re.findall(r"\]\(([^)\s]+)\)", text)
             if not re.match(r"[a-z]+:", ln)]
    broken = []
    for link in links:
        path, _, anchor = link.partition("#")
        target = (md.parent / path) if path else md
        if not target.exists():
            broken.append(f"{link} (no such file)")
        elif anchor and target.suffix == ".md" and anchor not in _github_anchors(target):
            broken.append(f"{link} (no such heading)")
    assert not broken, f"{doc} has broken links: {broken}"


def test_the_docs_test_command_runs_every_test_file_that_reads_the_docs() -> None:
    """CONTRIBUTING.md: 'The last line runs every test that reads README.md or CONTRIBUTING.md'."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    command = next(ln for ln in text.splitlines()
                   if ln.startswith(".venv/bin/python -m pytest") and "test_docs_commands" in ln)
    named = set(re.findall(r"tests/(test_\w+\.py)", command))
    readers = {p.name for p in ROOT.glob("tests/test_*.py")
               if re.search(r"[\"'](README|CONTRIBUTING)\.md[\"']", p.read_text())}
    assert readers - named == set(), f"the docs test command leaves out {sorted(readers - named)}"


def _doc_commands(doc: str) -> list[str]:
    """The shell commands of a doc: each line of its ```bash blocks (an indented block inside a
    list too) and each inline code span that starts with `make ` or `.venv/bin/python `, split
    at `&&`, without the trailing `# comment`."""
    text = (ROOT / doc).read_text()
    lines = [ln.strip() for block in re.findall(r"^ *```bash\n(.*?)^ *```", text, re.S | re.M)
             for ln in block.splitlines()]
    lines += re.findall(r"(?<!`)`((?:make|\.venv/bin/python) [^`]+)`", text)
    commands = []
    for line in lines:
        line = re.sub(r"\s+#\s.*$", "", line)
        commands += [c.strip() for c in line.split("&&") if c.strip()]
    return commands


def _problems(command: str, targets: set[str]) -> list[str]:
    import importlib.util

    words = command.split()
    found = []
    if words[0] == "make" and len(words) > 1 and words[1] not in targets:
        found.append(f"no make target {words[1]!r}")
    if re.fullmatch(r"(\.venv/bin/)?python3?", words[0]) and len(words) > 1:
        if words[1] == "-m":
            if importlib.util.find_spec(words[2]) is None:
                found.append(f"no module {words[2]!r}")
        elif not (ROOT / words[1]).exists():
            found.append(f"no file {words[1]!r}")
    for word in words[1:]:
        path, _, node = word.partition("::")
        if not re.match(r"(tests|solutions|exercises|scripts|book|benchmarks|grader|tconv_lib)/",
                        path):
            continue
        matches = [m for p in _expand(path) for m in ROOT.glob(p)]
        if not matches:
            found.append(f"no file {path!r}")
        elif node and not any(re.search(rf"^def {re.escape(node)}\b", m.read_text(), re.M)
                              for m in matches):
            found.append(f"no test {node!r} in {path}")
    return found


def test_doc_command_check_finds_what_does_not_exist() -> None:
    targets = {"book", "lint"}
    assert _problems("make lint", targets) == []
    assert _problems("make bogus PYTEST_ARGS=x", targets) == ["no make target 'bogus'"]
    assert _problems(".venv/bin/python -m no_such_module_here", targets) == \
        ["no module 'no_such_module_here'"]
    assert _problems(".venv/bin/python -m pytest tests/test_{shapes,nope}.py", targets) == []
    assert _problems(".venv/bin/python -m pytest tests/test_nope.py", targets) == \
        ["no file 'tests/test_nope.py'"]
    assert _problems(".venv/bin/python -m pytest tests/test_shapes.py::test_nope", targets) == \
        ["no test 'test_nope' in tests/test_shapes.py"]


@pytest.mark.parametrize("doc", DOCS)
def test_every_command_in_the_docs_names_what_exists(doc: str) -> None:
    """Each command a doc gives: its `make` target, `python -m` module, script, and every
    repository path (tests/..., with {a,b} and * expanded, and a test named by `::`) exist."""
    commands = _doc_commands(doc)
    assert commands, doc
    targets = _makefile_targets()
    problems = [f"{c}: {p}" for c in commands for p in _problems(c, targets)]
    assert not problems, f"{doc} gives commands naming what does not exist: {problems}"


@pytest.mark.parametrize("doc", DOCS)
def test_every_python_example_in_the_docs_runs(doc: str) -> None:
    """A ```python block in the docs is an example a reader pastes: it runs as written, and its
    asserts (e.g. README's library example against torch.nn.functional in float64) hold."""
    blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / doc).read_text(), re.S | re.M)
    if doc == "README.md":
        assert blocks, "README.md has no python example (its 'For library users' section)"
    for n, code in enumerate(blocks):
        try:
            exec(compile(code, f"{doc} python block {n + 1}", "exec"), {})  # noqa: S102
        except Exception as exc:
            pytest.fail(f"{doc}'s python block {n + 1} failed: {type(exc).__name__}: {exc}\n"
                        f"{code}")
