"""The course directory and the nbgrader gradebook behind every instructor command.

A course directory (``--course DIR``, outside the repository) holds the instructor's working
state, laid out as nbgrader expects::

    DIR/gradebook.db                                  nbgrader gradebook (SQLite by default)
    DIR/submitted/<student>/<assignment>/<nb>.ipynb   collected submissions (+ timestamp.txt)
    DIR/autograded/<student>/<assignment>/<nb>.ipynb  restored + executed notebooks
    DIR/autograded/<student>/<assignment>/results.json  per-test outcomes and flags (for report)
    DIR/feedback/<student>/...                        per-student HTML
    DIR/reports/                                      grades.csv, histograms, most-failed tests
    DIR/.cache/expected/                              solution records, keyed by source hash

The gradebook is a real ``nbgrader.api.Gradebook``; the grade-cell, solution-cell and source-cell
rows come from nbgrader's own ``SaveCells`` run over ``solutions/`` (see :func:`sync_source`),
exactly as ``nbgrader generate_assignment`` would create them.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.dbretry import redact

REPO = Path(__file__).resolve().parent.parent
COURSE_ID = "tconv"


class UsageError(Exception):
    """Bad command-line input; the CLI prints it and exits with status 2."""


@dataclass
class Course:
    root: Path
    db_url: str
    solutions: Path = REPO / "solutions"

    @classmethod
    def open(cls, root: str | os.PathLike, db: str | None = None,
             solutions: str | os.PathLike | None = None) -> Course:
        root_p = Path(root).expanduser().resolve()
        if root_p.exists() and not root_p.is_dir():
            raise UsageError(f"--course must be a directory; got a file: {root_p}")
        root_p.mkdir(parents=True, exist_ok=True)
        if root_p.is_relative_to(REPO) and not root_p.is_relative_to(REPO / "test-artifacts"):
            raise UsageError(f"--course must be outside the repository (instructor state is kept "
                             f"out of it); got {root_p}")
        url = db or f"sqlite:///{root_p / 'gradebook.db'}"
        sol = Path(solutions).resolve() if solutions else REPO / "solutions"
        return cls(root=root_p, db_url=url, solutions=sol)

    # -- paths -----------------------------------------------------------------------------
    @property
    def submitted(self) -> Path:
        return self.root / "submitted"

    @property
    def autograded(self) -> Path:
        return self.root / "autograded"

    @property
    def feedback(self) -> Path:
        return self.root / "feedback"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def cache(self) -> Path:
        return self.root / ".cache"

    def results_path(self, student: str, assignment: str) -> Path:
        return self.autograded / student / assignment / "results.json"

    def withdrawn(self, student: str, assignment: str) -> bool:
        """Whether a submission of the gradebook has no submission behind it here any more
        (:meth:`withdrawn_why`): its grades stay in the gradebook, nothing stands behind them."""
        return self.withdrawn_why(student, assignment) is not None

    def withdrawn_why(self, student: str, assignment: str) -> str | None:
        """Why a submission is withdrawn (deleted, or collected by mistake), or ``None``:

        * autograded here, and ``submitted/<student>/<assignment>/`` is gone since (its
          ``results.json`` is still under ``autograded/``);
        * both its ``submitted/`` folder and its ``results.json`` are gone (both folders
          deleted), in a course whose gradebook is its own ``gradebook.db``: the gradebook
          still has its grades (call this only for a submission the gradebook holds). With a
          ``--db`` shared by several graders such a submission may be graded on another
          machine: not withdrawn.
        """
        sub = self.submitted / student / assignment
        if sub.is_dir():
            return None
        if self.results_path(student, assignment).exists():
            return f"{sub} is gone since it was autograded"
        if self.default_db:
            return f"{sub} and its results.json under {self.autograded} are gone"
        return None

    def elsewhere_why(self, student: str, assignment: str) -> str | None:
        """For a submission the gradebook holds, with a ``--db`` (shared by several graders):
        why it cannot be told here whether it stands, or ``None``. Neither its ``submitted/``
        folder nor its ``results.json`` is under this course directory: graded by another
        grader sharing the gradebook, or both folders deleted here. The gradebook does not
        record where a submission was graded, so nothing tells the two apart: it counts as the
        gradebook has it, and report and feedback say so."""
        if self.default_db:
            return None
        sub = self.submitted / student / assignment
        if sub.is_dir() or self.results_path(student, assignment).exists():
            return None
        return (f"neither {sub} nor its results.json under {self.autograded} is here: "
                "graded by another grader sharing --db, or both folders deleted here (the "
                "gradebook does not record which), so it counts as the gradebook has it")

    @property
    def default_db(self) -> bool:
        """True when the gradebook is the course's own ``gradebook.db`` (no ``--db``)."""
        return self.db_url == f"sqlite:///{self.root / 'gradebook.db'}"

    @property
    def db_arg(self) -> str:
        """How messages name the gradebook: ``--db`` or ``--course`` (its ``gradebook.db``)."""
        return "--course gradebook" if self.default_db else "--db"

    def require_gradebook(self) -> None:
        """For commands that only read the gradebook: a SQLite file that does not exist is a
        usage error (nbgrader would create an empty gradebook there and report nothing)."""
        path = sqlite_file(self.db_url)
        if path is None or path.exists():
            return
        if self.default_db:
            raise UsageError(f"--course {self.root} holds no graded submissions: its gradebook "
                             f"{path} does not exist (run `tconv-grader autograde --course "
                             f"{self.root}` first, or pass --db)")
        relative = ""
        if self.db_url.startswith("sqlite:///") and not self.db_url.startswith("sqlite:////"):
            relative = (f"; three slashes make the path relative to the current folder, "
                        f"an absolute one takes four: sqlite:////{self.db_url[10:]}")
        raise UsageError(f"--db must name an existing gradebook; got {redact(self.db_url)} "
                         f"(no such file: {path}{relative})")

    def gradebook(self):
        """An ``nbgrader.api.Gradebook`` on the course database (a context manager)."""
        return connect_gradebook(self.db_url, self.db_arg)

    def grades(self, student: str, assignment: str) -> list[tuple[str, Any]] | None:
        """``(notebook name, nbgrader Grade)`` for every grade cell of one submission.

        ``None`` when the gradebook has no such submission. Read inside one session, so the
        rows' ``cell`` and scores are loaded before it closes.
        """
        from nbgrader.api import MissingEntry

        with self.gradebook() as gb:
            try:
                sub = gb.find_submission(assignment, student)
            except MissingEntry:
                return None
            rows = [(snb.name, g) for snb in sub.notebooks for g in snb.grades]
            for _, g in rows:  # load what callers read while the session is open
                _ = (g.cell.cell_type, g.cell.name, g.auto_score, g.manual_score)
            return rows


def connect_gradebook(db_url: str, arg: str = "--db"):
    """An ``nbgrader.api.Gradebook`` on ``db_url`` (schema created if needed, race-free).

    A URL that cannot be parsed or a database that cannot be reached is a :class:`UsageError`
    naming ``arg`` and the URL without its password (not SQLAlchemy's long traceback).
    """
    from sqlalchemy.exc import SQLAlchemyError

    try:
        try:  # race-free schema creation for several graders sharing one database
            from grader.dbretry import connect
        except ImportError:  # pragma: no cover - dbretry is optional
            from nbgrader.api import Gradebook

            return Gradebook(db_url, COURSE_ID)
        return connect(db_url, COURSE_ID)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"{arg} cannot connect to {redact(db_url)}: "
                         f"{_scrub_url(first, db_url)}") from exc


_USERINFO = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def _scrub_url(text: str, url: str) -> str:
    """``text`` with ``url`` and any ``user:password@`` in it redacted."""
    if url in text:
        text = text.replace(url, redact(url))
    return _USERINFO.sub(r"\1***@", text)


def sqlite_file(db_url: str) -> Path | None:
    """The file of a SQLite gradebook URL (a plain path counts as one); ``None`` for other
    databases, in-memory SQLite or a URL that does not parse (connecting will say why)."""
    if "://" not in db_url:
        return Path(db_url).expanduser().resolve()
    try:
        from sqlalchemy.engine import make_url

        url = make_url(db_url)
    except Exception:  # noqa: BLE001 - reported when the gradebook is opened
        return None
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).expanduser().resolve()


def assignments_in(solutions: Path) -> list[str]:
    """Assignment names under ``solutions/`` (a folder holding at least one notebook)."""
    if not solutions.is_dir():
        return []
    return sorted(p.name for p in solutions.iterdir()
                  if p.is_dir() and not p.name.startswith((".", "_")) and any(p.glob("*.ipynb")))


def notebooks_of(solutions: Path, assignment: str) -> list[str]:
    """Notebook ids (file stems) of one assignment's source, sorted."""
    return sorted(p.stem for p in (solutions / assignment).glob("*.ipynb")
                  if not p.name.startswith("."))


def check_assignment(solutions: Path, assignment: str, arg: str = "ASSIGNMENT") -> None:
    known = assignments_in(solutions)
    if assignment not in known:
        raise UsageError(f"{arg} must name an assignment under {solutions} "
                         f"({', '.join(known) or 'none found'}); got {assignment!r}")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a reader (or a crash) sees the old or new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def next_command(command: str, args: Any) -> str:
    """``tconv-grader COMMAND --course DIR ...``: the next step of the workflow, with the options
    of this run that the next command needs again (``--db`` as a placeholder: its URL may hold
    a password), ready to copy."""
    import shlex

    parts = ["tconv-grader", command, "--course", shlex.quote(str(args.course))]
    db = getattr(args, "db", None)
    own = f"sqlite:///{Path(args.course).expanduser().resolve() / 'gradebook.db'}"
    if db and db != own:
        parts += ["--db", "URL"]
    solutions = getattr(args, "solutions", None)
    if solutions and command in {"autograde", "feedback"} and \
            Path(solutions).resolve() != REPO / "solutions":
        parts += ["--solutions", shlex.quote(str(solutions))]
    return " ".join(parts)


def comment_hash(text: str) -> str:
    """A formgrader comment as ``results.json`` records it (one said of an earlier answer): a
    hash of its text, so an edit of the comment tells."""
    import hashlib

    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:16]


def dump_json(obj: Any) -> str:
    """Stable JSON (sorted keys, fixed indentation, trailing newline)."""
    return json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def sync_source(course: Course, assignment: str) -> dict[str, Any]:
    """Record the assignment's cells in the course gradebook with nbgrader's own ``SaveCells``.

    Runs nbgrader's generate_assignment preprocessor chain over each source notebook (see
    :func:`grader.release.release_notebook`), which creates/updates the assignment, notebook,
    grade-cell, solution-cell, task-cell and source-cell rows. Returns ``{notebook: released nb}``.
    """
    from grader.release import load_source, release_notebook

    with course.gradebook() as gb:
        gb.update_or_create_assignment(assignment)
    out = {}
    for nb_id in notebooks_of(course.solutions, assignment):
        src = load_source(course.solutions / assignment / f"{nb_id}.ipynb")
        out[nb_id] = release_notebook(src, assignment, nb_id, course.db_url)
    return out
