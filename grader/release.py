"""``tconv-grader release``: generate the student release ``exercises/`` from ``solutions/``.

The notebooks go through nbgrader's own ``generate_assignment`` preprocessor chain (the list is
read from ``nbgrader.converters.GenerateAssignment.preprocessors``, so it is exactly nbgrader's:
IncludeHeaderFooter, InstantiateTests, LockCells, ClearSolutions, ClearOutput, CheckCellMetadata,
ComputeChecksums, SaveCells, ClearHiddenTests, ClearMarkScheme, ComputeChecksums,
CheckCellMetadata), configured by the repository's ``nbgrader_config.py``. ``SaveCells`` writes
into a gradebook: the course's with ``--course``, otherwise a temporary one.

The output is deterministic: notebooks are written by nbformat (sorted keys, fixed indentation,
no timestamps), other files are copied byte for byte, so ``release`` into a scratch directory
and ``diff -r`` against the committed ``exercises/`` is a valid freshness check.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

import nbformat

from grader.gradebook import REPO, UsageError, assignments_in, check_assignment, notebooks_of

SKIP_NAMES = {".ipynb_checkpoints", "__pycache__", ".DS_Store"}


def nbgrader_config():
    """The traitlets Config from the repository's ``nbgrader_config.py``."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()


def load_source(path: Path) -> nbformat.NotebookNode:
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - turn any parse failure into a clear message
        raise UsageError(f"source notebook {path} is not a valid notebook: {exc}") from exc
    return nb


def release_notebook(nb: nbformat.NotebookNode, assignment: str, notebook: str,
                     db_url: str) -> nbformat.NotebookNode:
    """Apply nbgrader's generate_assignment preprocessors to a copy of ``nb``.

    ``SaveCells`` records the grade/solution/source cells (source with hidden tests) in the
    gradebook at ``db_url``; the assignment row must exist (see grader.gradebook.sync_source).
    """
    from nbconvert.exporters.exporter import ResourcesDict
    from nbgrader.converters import GenerateAssignment

    from grader.gradebook import connect_gradebook

    with connect_gradebook(db_url) as gb:
        gb.update_or_create_assignment(assignment)
    cfg = nbgrader_config()
    chain = GenerateAssignment.class_traits()["preprocessors"].default()
    resources = ResourcesDict(None, {
        "nbgrader": {"notebook": notebook, "assignment": assignment, "db_url": db_url},
        "metadata": {"path": str(REPO / "solutions" / assignment)},
    })
    out = copy.deepcopy(nb)
    for cls in chain:
        pp = cls(config=cfg)
        out, resources = pp.preprocess(out, resources)
    return out


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = nbformat.writes(nb, version=4)
    if not text.endswith("\n"):
        text += "\n"
    path.write_text(text, encoding="utf-8")


def release(solutions: Path, out: Path, assignments: list[str] | None = None,
            db_url: str | None = None, progress: bool = True) -> list[Path]:
    """Regenerate ``out/<assignment>/`` for each assignment; returns the files written."""
    from tqdm import tqdm

    names = assignments or assignments_in(solutions)
    for a in names:
        check_assignment(solutions, a)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="tconv-release-") as tmp:
        url = db_url or f"sqlite:///{Path(tmp) / 'gradebook.db'}"
        for a in tqdm(names, desc="release", unit="assignment", disable=not progress):
            dest = out / a
            if dest.exists():
                shutil.rmtree(dest)
            dest.mkdir(parents=True)
            for src in sorted((solutions / a).rglob("*")):
                rel = src.relative_to(solutions / a)
                if any(part in SKIP_NAMES for part in rel.parts) or src.is_dir():
                    continue
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                if src.suffix == ".ipynb" and len(rel.parts) == 1:
                    nb = release_notebook(load_source(src), a, src.stem, url)
                    write_notebook(nb, target)
                else:
                    shutil.copyfile(src, target)
                written.append(target)
    return written


def solution_snippets(solutions: Path) -> list[tuple[str, str]]:
    """``(where, text)`` for every non-blank line between BEGIN/END SOLUTION or HIDDEN TESTS.

    Used by the tests that prove no solution code or hidden test leaks into ``exercises/``.
    """
    out = []
    for a in assignments_in(solutions):
        for nb_id in notebooks_of(solutions, a):
            nb = load_source(solutions / a / f"{nb_id}.ipynb")
            for i, cell in enumerate(nb.cells):
                for begin, end in (("BEGIN SOLUTION", "END SOLUTION"),
                                   ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS"),
                                   ("BEGIN MARK SCHEME", "END MARK SCHEME")):
                    inside = False
                    for line in cell.source.splitlines():
                        if begin in line:
                            inside = True
                            continue
                        if end in line:
                            inside = False
                            continue
                        if inside and line.strip():
                            out.append((f"{a}/{nb_id}.ipynb cell {i}", line.strip()))
    return out


def main(args) -> int:
    solutions = Path(args.solutions).resolve()
    out = Path(args.output).resolve()
    if not solutions.is_dir():
        raise UsageError(f"--solutions must be a directory; got {solutions}")
    db_url = args.db or None  # without --course, --db alone names the gradebook
    if args.course:
        from grader.gradebook import Course

        db_url = Course.open(args.course, args.db, solutions).db_url
    if db_url:  # a plain path is a SQLite file, as for the other commands' --db
        from grader.dbretry import normalize_url

        db_url = normalize_url(db_url)
    files = release(solutions, out, args.assignment or None, db_url, progress=not args.quiet)
    print(f"released {len(files)} file(s) into {out}")
    print(f"next: {validate_command(args)}")
    return 0


def validate_command(args) -> str:
    """``tconv-grader validate`` with this release's non-default folders."""
    import shlex

    parts = ["tconv-grader", "validate", *map(shlex.quote, args.assignment or [])]
    if Path(args.solutions).resolve() != REPO / "solutions":
        parts += ["--solutions", shlex.quote(str(args.solutions))]
    if Path(args.output).resolve() != REPO / "exercises":
        parts += ["--released", shlex.quote(str(args.output))]
    return " ".join(parts)


def add_parser(sub) -> None:
    p = sub.add_parser("release", help="generate exercises/ from solutions/ (nbgrader)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("assignment", nargs="*", metavar="ASSIGNMENT",
                   help="assignments to release (default: all under --solutions)")
    p.add_argument("--solutions", default=str(REPO / "solutions"),
                   help="instructor source, one folder per assignment (default: the "
                   "repository's solutions/)")
    p.add_argument("--output", "-o", default=str(REPO / "exercises"),
                   help="release folder to (re)generate; each assignment's folder in it is "
                   "replaced (default: the repository's exercises/)")
    p.add_argument("--course", help="course directory whose gradebook records the released "
                   "grade cells (nbgrader's SaveCells; default: none, a temporary gradebook "
                   "that is discarded)")
    p.add_argument("--db", help="SQLAlchemy URL of that gradebook (default: "
                   "sqlite:///<course>/gradebook.db with --course, else a temporary one)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=main)
