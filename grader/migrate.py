"""``tconv-grader migrate``: move a course's gradebook to another database (SQLite -> PostgreSQL).

    tconv-grader migrate --from sqlite:///course/gradebook.db --to postgresql://user@host/course

Every table of nbgrader's schema (``nbgrader.api.Base.metadata``) is copied row by row, parents
before children (``sorted_tables``), in ONE transaction on the destination, together with the
``alembic_version`` stamp, so nbgrader and later nbgrader upgrades see the same gradebook.
nbgrader's ids are UUID strings, so there are no sequences to reset. The destination must not
already hold a gradebook (an empty database, or one with empty tables).

Afterwards both sides are opened with nbgrader's own :class:`~nbgrader.api.Gradebook` and compared
through its API (students, assignments, every submission's score and max score, every grade's
auto/manual/extra-credit score, every comment); the result is printed and a difference makes the
command fail. ``--check-only`` runs just that comparison.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

from grader.dbretry import normalize_url, open_gradebook, redact

CHUNK = 1000


class MigrationError(RuntimeError):
    pass


@dataclass
class Comparison:
    students: int = 0
    assignments: int = 0
    submissions: int = 0
    grades: int = 0
    comments: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        head = (f"{self.students} students, {self.assignments} assignments, "
                f"{self.submissions} submissions, {self.grades} grades, {self.comments} comments")
        if self.ok:
            return f"check: identical through nbgrader's Gradebook API ({head})"
        lines = [f"check: {len(self.differences)} DIFFERENCES ({head})"]
        lines += ["  " + d for d in self.differences[:50]]
        if len(self.differences) > 50:
            lines.append(f"  ... and {len(self.differences) - 50} more")
        return "\n".join(lines)


def _engine(url: str):
    from sqlalchemy import create_engine

    return create_engine(normalize_url(url), future=True)


def _require_source(url: str) -> None:
    from sqlalchemy import inspect

    u = normalize_url(url)
    if u.startswith("sqlite:///") and not os.path.exists(u[len("sqlite:///"):]):
        raise MigrationError(f"--from must name an existing gradebook; got {url} "
                             "(no such gradebook file)")
    engine = _engine(u)
    try:
        if "assignment" not in inspect(engine).get_table_names():
            raise MigrationError(f"--from must be an nbgrader gradebook; got {redact(u)} "
                                 "(no 'assignment' table)")
    finally:
        engine.dispose()


def course_ids(url: str) -> list[str]:
    from nbgrader.api import Course
    from sqlalchemy import select

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(select(Course.__table__.c.id)))
    finally:
        engine.dispose()


def copy_tables(src_url: str, dst_url: str) -> dict[str, int]:
    """Copy every nbgrader table (and the alembic stamp); returns rows copied per table."""
    from nbgrader.api import Base
    from sqlalchemy import MetaData, Table, func, inspect, select

    _require_source(src_url)
    src, dst = _engine(src_url), _engine(dst_url)
    counts: dict[str, int] = {}
    try:
        Base.metadata.create_all(bind=dst)
        with dst.connect() as conn:
            for table in Base.metadata.sorted_tables:
                n = conn.execute(select(func.count()).select_from(table)).scalar_one()
                if n:
                    raise MigrationError(
                        f"--to must be an empty database; got {redact(normalize_url(dst_url))}"
                        f" (it already holds a gradebook: {n} rows in table {table.name!r}; "
                        "migrate into an empty database, or compare the two with --check-only)")
        src_tables = set(inspect(src).get_table_names())
        with src.connect() as sconn, dst.begin() as dconn:
            for table in Base.metadata.sorted_tables:
                counts[table.name] = 0
                if table.name not in src_tables:
                    continue
                result = sconn.execute(select(table))
                while rows := result.mappings().fetchmany(CHUNK):
                    dconn.execute(table.insert(), [dict(r) for r in rows])
                    counts[table.name] += len(rows)
            if "alembic_version" in src_tables:
                version = Table("alembic_version", MetaData(), autoload_with=src)
                stamp = [dict(r) for r in sconn.execute(select(version)).mappings()]
                version.create(bind=dconn, checkfirst=True)
                dconn.execute(version.delete())
                if stamp:
                    dconn.execute(version.insert(), stamp)
    finally:
        src.dispose()
        dst.dispose()
    return counts


def snapshot(gb) -> dict:
    """Everything a course's grades consist of, read through nbgrader's Gradebook API."""
    snap: dict = {"students": sorted(s.id for s in gb.students), "assignments": {}}
    for assignment in gb.assignments:
        subs = {}
        for sub in assignment.submissions:
            notebooks = {}
            for nb in sub.notebooks:
                notebooks[nb.name] = {
                    # (auto_score, manual_score, extra_credit, needs_manual_grade, max_score)
                    "grades": {g.name: (g.auto_score, g.manual_score, g.extra_credit,
                                        g.needs_manual_grade, g.max_score)
                               for g in nb.grades},
                    "comments": {c.name: (c.auto_comment, c.manual_comment) for c in nb.comments},
                    "flagged": nb.flagged,
                }
            subs[sub.student.id] = {"score": sub.score, "max_score": sub.max_score,
                                    "timestamp": sub.timestamp, "notebooks": notebooks}
        snap["assignments"][assignment.name] = {"max_score": assignment.max_score,
                                                "submissions": subs}
    return snap


def compare(src_url: str, dst_url: str) -> Comparison:
    """Compare two gradebooks through nbgrader's Gradebook API."""
    _require_source(src_url)
    ids = course_ids(src_url) or ["default_course"]
    with open_gradebook(src_url, course_id=ids[0]) as a:
        left = snapshot(a)
    with open_gradebook(dst_url, course_id=ids[0]) as b:
        right = snapshot(b)
    cmp = Comparison(students=len(left["students"]), assignments=len(left["assignments"]))
    diff = cmp.differences
    if left["students"] != right["students"]:
        only_l = sorted(set(left["students"]) - set(right["students"]))
        only_r = sorted(set(right["students"]) - set(left["students"]))
        diff.append(f"students differ: only in --from {only_l}, only in --to {only_r}")
    for name in sorted(set(left["assignments"]) | set(right["assignments"])):
        la, ra = left["assignments"].get(name), right["assignments"].get(name)
        if la is None or ra is None:
            diff.append(f"assignment {name}: only in {'--to' if la is None else '--from'}")
            continue
        if la["max_score"] != ra["max_score"]:
            diff.append(f"{name}: max_score {la['max_score']} != {ra['max_score']}")
        for student in sorted(set(la["submissions"]) | set(ra["submissions"])):
            ls, rs = la["submissions"].get(student), ra["submissions"].get(student)
            if ls is None or rs is None:
                side = "--to" if ls is None else "--from"
                diff.append(f"{name}/{student}: submission only in {side}")
                continue
            cmp.submissions += 1
            for key in ("score", "max_score", "timestamp"):
                if ls[key] != rs[key]:
                    diff.append(f"{name}/{student}: {key} {ls[key]} != {rs[key]}")
            for nb in sorted(set(ls["notebooks"]) | set(rs["notebooks"])):
                ln, rn = ls["notebooks"].get(nb), rs["notebooks"].get(nb)
                if ln is None or rn is None:
                    diff.append(f"{name}/{student}/{nb}: notebook missing on one side")
                    continue
                cmp.grades += len(ln["grades"])
                cmp.comments += len(ln["comments"])
                for part in ("grades", "comments"):
                    for cell in sorted(set(ln[part]) | set(rn[part])):
                        if ln[part].get(cell) != rn[part].get(cell):
                            diff.append(f"{name}/{student}/{nb}/{cell}: {part[:-1]} "
                                        f"{ln[part].get(cell)} != {rn[part].get(cell)}"[:400])
                if ln["flagged"] != rn["flagged"]:
                    diff.append(f"{name}/{student}/{nb}: flagged "
                                f"{ln['flagged']} != {rn['flagged']}")
    return cmp


def migrate(src_url: str, dst_url: str, *, out=print) -> Comparison:
    counts = copy_tables(src_url, dst_url)
    total = sum(counts.values())
    out(f"migrate: copied {total} rows in {sum(1 for n in counts.values() if n)} tables "
        f"from {redact(normalize_url(src_url))} to {redact(normalize_url(dst_url))}")
    result = compare(src_url, dst_url)
    out(result.summary())
    return result


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``migrate`` on the ``tconv-grader`` subcommand parser."""
    p = subparsers.add_parser(
        "migrate", help="move a gradebook to another database (e.g. SQLite -> PostgreSQL)",
        description=__doc__.split("\n\n")[0])
    _arguments(p)
    return p


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="src", required=True, metavar="URL",
                   help="source gradebook: sqlite:///path/gradebook.db (or a path)")
    p.add_argument("--to", dest="dst", required=True, metavar="URL",
                   help="destination gradebook, an empty database, e.g. "
                   "postgresql://user:password@host:5432/dbname")
    p.add_argument("--check-only", action="store_true",
                   help="do not copy; only compare the two gradebooks through nbgrader's API")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.check_only:
            result = compare(args.src, args.dst)
            print(result.summary())
        else:
            result = migrate(args.src, args.dst)
    except MigrationError as exc:
        print(f"tconv-grader migrate: error: {exc}", file=sys.stderr)
        return 2
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m grader.migrate --from URL --to URL [--check-only]``."""
    parser = argparse.ArgumentParser(prog="tconv-grader migrate",
                                     description=__doc__.split("\n\n")[0])
    _arguments(parser)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
