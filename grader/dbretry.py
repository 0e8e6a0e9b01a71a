"""Gradebooks on any SQLAlchemy URL, safe for several graders writing at once.

nbgrader's :class:`~nbgrader.api.Gradebook` works with any SQLAlchemy URL, but it creates rows
with check-then-insert (``update_or_create_student`` looks the student up, then inserts), and
its constructor creates the schema (``create_all``, an ``alembic_version`` table, the course row)
without a lock. With one grader on SQLite that never matters; with several ``tconv-grader
autograde`` processes sharing a PostgreSQL gradebook two of them can insert the same row (the
same assignment's cells, the course row, the schema itself) and one gets a unique-constraint
error. This module makes both safe:

* :func:`open_gradebook` serialises the constructor with a PostgreSQL advisory lock (and retries
  it on any backend), so the first graders on an empty database do not race on the schema;
* :func:`exclusive` holds a named advisory lock around work nbgrader does without retrying
  (recording an assignment's cells with ``SaveCells``);
* :func:`retrying` runs one unit of gradebook work (one submission's writes, idempotent: it only
  uses ``update_or_create_*`` and sets scores) and, when it hits a unique-constraint violation,
  a deadlock or a serialisation failure, rolls the session back and runs it again.

``postgresql://`` URLs get SQLAlchemy's psycopg (3) driver explicitly (``postgresql+psycopg://``),
the one the ``cluster`` extra installs, whatever SQLAlchemy's default driver is.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

#: advisory-lock key for schema creation ("tconv" in ASCII)
_SCHEMA_LOCK = 0x74636F6E76


def normalize_url(url: str) -> str:
    """SQLAlchemy URL for ``url``: a plain path becomes ``sqlite:///path``; ``postgres://`` and
    ``postgresql://`` select the psycopg driver."""
    if "://" not in url:
        return "sqlite:///" + os.path.abspath(url)
    scheme, rest = url.split("://", 1)
    if scheme in ("postgres", "postgresql"):
        return "postgresql+psycopg://" + rest
    return url


def is_postgres(url: str) -> bool:
    return normalize_url(url).startswith("postgresql")


def redact(url: str) -> str:
    """``url`` without its password, for messages. A plain path (a SQLite file) is shown as it
    is; a password with a raw ``@`` in it (it should be written ``%40``) is still hidden whole,
    up to the authority's last ``@``; a URL that does not parse is shown only without ``@``."""
    import re

    from sqlalchemy.engine import make_url

    if "://" not in url:
        return url
    m = re.match(r"^([A-Za-z][\w+.-]*://)([^/?#]*)@([^/?#@]*)(.*)$", url, re.S)
    if m and m[2].count("@") and ":" in m[2]:
        return f"{m[1]}{m[2].split(':', 1)[0]}:***@{m[3]}{m[4]}"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a message must not fail on a malformed URL
        return url.split("://", 1)[0] + "://<redacted>" if "@" in url else url


_ALEMBIC_HEAD: list[str] = []


def _alembic_head() -> str:
    """nbgrader's schema revision, read in-process from its alembic scripts (cached)."""
    if not _ALEMBIC_HEAD:
        from alembic.script import ScriptDirectory
        from nbgrader.dbutil import ALEMBIC_DIR

        _ALEMBIC_HEAD.append(ScriptDirectory(ALEMBIC_DIR).get_heads()[0])
    return _ALEMBIC_HEAD[0]


def _fast_alembic_stamp() -> None:
    # nbgrader stamps a NEW gradebook by running the `alembic heads` command in a subprocess
    # (seconds of imports, and it needs `alembic` on PATH, which a non-activated venv lacks).
    # The same revision comes from alembic's Python API in a fraction of a second; fall back to
    # nbgrader's own way if that fails.
    import nbgrader.api

    if getattr(nbgrader.api.get_alembic_version, "_tconv", False):
        return
    original = nbgrader.api.get_alembic_version

    def get_alembic_version() -> str:
        try:
            return _alembic_head()
        except Exception:  # noqa: BLE001 - nbgrader's subprocess is the reference
            if shutil.which("alembic") is None:
                bindir = os.path.dirname(sys.executable)
                os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
            return original()

    get_alembic_version._tconv = True  # type: ignore[attr-defined]
    nbgrader.api.get_alembic_version = get_alembic_version


def is_retryable(exc: BaseException) -> bool:
    """A concurrent-writer conflict worth retrying (not a bug in what we write)."""
    from nbgrader.api import InvalidEntry
    from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

    if isinstance(exc, InvalidEntry | IntegrityError):
        return True
    if isinstance(exc, OperationalError | DBAPIError):
        text = str(exc).lower()
        return any(s in text for s in ("deadlock", "could not serialize", "database is locked",
                                       "duplicate key", "unique constraint"))
    return False


def _backoff(attempt: int) -> None:
    time.sleep(min(2.0, 0.02 * 2 ** attempt) * (0.5 + random.random()))


def _lock_key(name: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def exclusive(url: str, name: str | None = None) -> Iterator[None]:
    """Hold a PostgreSQL session advisory lock named ``name`` (a no-op on other databases).

    For work that nbgrader does with check-then-insert and no retry of its own, e.g. recording
    an assignment's cells (``SaveCells``) while another grader does the same.
    """
    url = normalize_url(url)
    if not is_postgres(url):
        yield
        return
    from sqlalchemy import create_engine, text

    key = _SCHEMA_LOCK if name is None else _lock_key(name)
    engine = create_engine(url, future=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
    finally:
        engine.dispose()


def connect(url: str, course_id: str = "default_course", attempts: int = 8):
    """A new :class:`nbgrader.api.Gradebook` on ``url`` (schema created if needed, race-free)."""
    from nbgrader.api import Gradebook

    url = normalize_url(url)
    _fast_alembic_stamp()
    for attempt in range(attempts):
        try:
            with exclusive(url):
                return Gradebook(url, course_id=course_id)
        except Exception as exc:
            if attempt == attempts - 1 or not is_retryable(exc):
                raise
            _backoff(attempt)
    raise AssertionError("unreachable")


@contextmanager
def open_gradebook(url: str, course_id: str = "default_course") -> Iterator:
    """``with open_gradebook(url) as gb:`` -- :func:`connect`, closed afterwards."""
    gb = connect(url, course_id=course_id)
    try:
        yield gb
    finally:
        gb.close()


def retrying(gb, work: Callable[[object], T], attempts: int = 8) -> T:
    """Run ``work(gb)``; on a concurrent-writer conflict roll back and run it again.

    ``work`` must be idempotent (look up or create, then set values): a retry after a partial
    commit must end in the same state as one clean run.
    """
    for attempt in range(attempts):
        try:
            return work(gb)
        except Exception as exc:
            gb.db.rollback()
            if attempt == attempts - 1 or not is_retryable(exc):
                raise
            _backoff(attempt)
    raise AssertionError("unreachable")


def _cell_rows(url: str, assignment: str, course_id: str) -> dict | None:
    """The rows nbgrader's SaveCells writes for ``assignment``, as comparable plain data."""
    from nbgrader.api import MissingEntry

    with open_gradebook(url, course_id=course_id) as gb:
        try:
            a = gb.find_assignment(assignment)
        except MissingEntry:
            return None
        return {nb.name: (
            sorted((c.name, c.max_score, c.cell_type) for c in nb.grade_cells),
            sorted(c.name for c in nb.solution_cells),
            sorted((c.name, c.max_score) for c in nb.task_cells),
            sorted((c.name, c.cell_type, bool(c.locked), c.source, c.checksum)
                   for c in nb.source_cells),
        ) for nb in a.notebooks}


def sync_source_shared(course, assignment: str) -> dict:
    """:func:`grader.gradebook.sync_source` for graders that share one gradebook.

    nbgrader's ``SaveCells`` deletes and re-creates a notebook's cells whenever the notebook has
    no submission yet, so a second grader starting on the same assignment would pull the rows
    from under the first one (already grading, nothing committed yet). Here the release chain
    first runs against a throwaway SQLite gradebook; when the shared gradebook already holds
    exactly those rows it is not touched; otherwise (first run, or the source changed) SaveCells
    runs on it as usual. All of it under one advisory lock per gradebook (PostgreSQL), not one
    per assignment: nbgrader's ``SaveCells`` opens its own ``Gradebook``, which creates the
    ``default_course`` row outside :func:`connect`'s lock, so two graders syncing different
    assignments at once could both insert it (a unique violation).
    """
    import dataclasses
    import tempfile

    from grader.gradebook import COURSE_ID, sync_source

    with exclusive(course.db_url, "sync_source"):
        have = _cell_rows(course.db_url, assignment, COURSE_ID)
        if have is not None:
            with tempfile.TemporaryDirectory(prefix="tconv-sync-") as tmp:
                scratch = dataclasses.replace(course, db_url=f"sqlite:///{tmp}/gradebook.db")
                released = sync_source(scratch, assignment)
                want = _cell_rows(scratch.db_url, assignment, COURSE_ID)
            if want == have:
                return released
        return sync_source(course, assignment)
