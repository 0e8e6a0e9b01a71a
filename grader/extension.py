"""``tconv-grader extension ASSIGNMENT --student ID --days N --course DIR``: give a student extra
time for one assignment (nbgrader's ``extension``: the student's due date is the assignment's
plus the extension), or take it back (``--remove``); without ASSIGNMENT, list the extensions.

nbgrader keeps an extension on the student's submission in the gradebook
(``Gradebook.grant_extension``), which exists only once the student has handed something in.
So the course keeps the extensions it grants in ``<course>/extensions.json``: written into the
gradebook at once when the submission is there, else by ``autograde`` when it grades the
submission. ``report`` and ``feedback`` then measure lateness from the later due date. An
extension replaces the student's earlier one for that assignment (they do not add up).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shlex
from pathlib import Path

from grader.collect import STUDENT_RE
from grader.gradebook import (
    REPO,
    Course,
    UsageError,
    assignments_in,
    atomic_write_text,
    sqlite_file,
)
from grader.late import duration

FILE = "extensions.json"
#: the longest extension accepted, in days (a typo such as --days 300 instead of 3 is refused)
MAX_DAYS = 366


def path(root: Path) -> Path:
    return Path(root) / FILE


def load(root: Path) -> dict[str, dict[str, float]]:
    """``{assignment: {student: seconds}}`` (none without the file); a file that holds no such
    table is a usage error naming it (it was edited by hand)."""
    p = path(root)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"{p} must be a JSON table of extensions; got {exc}") from exc
    try:
        return {str(a): {str(s): float(v) for s, v in by.items()} for a, by in data.items()}
    except (AttributeError, TypeError, ValueError) as exc:
        raise UsageError(f"{p} must map each assignment to {{student: seconds}}; got "
                         f"{json.dumps(data)[:200]}") from exc


def save(root: Path, table: dict[str, dict[str, float]]) -> None:
    table = {a: dict(sorted(by.items())) for a, by in sorted(table.items()) if by}
    if table:
        atomic_write_text(path(root), json.dumps(table, indent=1) + "\n")
    else:
        path(root).unlink(missing_ok=True)


def of(root: Path, student: str, assignment: str) -> dt.timedelta | None:
    """The extension the course granted ``student`` for ``assignment`` (``None``: none)."""
    seconds = load(root).get(assignment, {}).get(student)
    return None if seconds is None else dt.timedelta(seconds=seconds)


def apply(sub, root: Path) -> bool:
    """Set the gradebook submission ``sub``'s extension to the course's (when it granted one);
    whether that changed it (the caller commits)."""
    ext = of(root, sub.student.id, sub.assignment.name)
    if ext is None or sub.extension == ext:
        return False
    sub.extension = ext
    return True


def _amount(days: float | None, hours: float | None) -> float:
    """Seconds of ``--days`` and ``--hours`` together (each checked by :func:`_time`)."""
    seconds = (days or 0.0) * 86400 + (hours or 0.0) * 3600
    if seconds > MAX_DAYS * 86400:
        raise UsageError(f"--days and --hours must add up to at most {MAX_DAYS} days; got "
                         f"{duration(seconds)}")
    return seconds


def _time(unit: str):
    """argparse's type for ``--days``/``--hours``: a number above 0, at most :data:`MAX_DAYS`
    days (argparse then names the option: ``argument --days: must be ...; got 'x'``)."""
    import argparse

    scale = 1 if unit == "days" else 24

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0 or value > MAX_DAYS * scale:
            raise argparse.ArgumentTypeError(
                f"must be a number of {unit} above 0 (at most {MAX_DAYS} days); got {text!r}")
        return value
    return parse


def _listing(course: Course, table: dict[str, dict[str, float]]) -> list[str]:
    """One line per extension: who, which assignment, how long, and the student's due date."""
    due = {}
    if _gradebook_exists(course):   # none yet: no due dates (and none is created)
        with course.gradebook() as gb:
            due = {a.name: a.duedate for a in gb.assignments}
    lines = []
    for a, by in sorted(table.items()):
        for s, seconds in sorted(by.items()):
            when = (f"; due {due[a] + dt.timedelta(seconds=seconds):%Y-%m-%d %H:%M:%S} UTC"
                    if due.get(a) else "; the assignment has no due date in the gradebook")
            lines.append(f"  {s}/{a}: {duration(seconds)}{when}")
    return lines


def _gradebook_exists(course: Course) -> bool:
    """Whether the gradebook is there (a SQLite file that does not exist is never created)."""
    file = sqlite_file(course.db_url)
    return file is None or file.exists()


def _assignments(course: Course) -> list[str]:
    """The assignments of the gradebook and of ``--solutions``, sorted."""
    names = set(assignments_in(course.solutions))
    if _gradebook_exists(course):
        with course.gradebook() as gb:
            names |= {a.name for a in gb.assignments}
    return sorted(names)


def main(args) -> int:
    course = Course.open(args.course, args.db, args.solutions)
    table = load(course.root)
    if not course.default_db:
        course.require_gradebook()   # a --db naming no gradebook is a typo, never created
    if args.assignment is None:
        if args.student or args.days is not None or args.hours is not None or args.remove:
            raise UsageError("ASSIGNMENT must be given with --student, --days, --hours or "
                             "--remove (without them, extension lists the extensions); got none")
        lines = _listing(course, table) if table else []
        print(f"{len(lines)} extension(s) in {path(course.root)}" + (":" if lines else ""))
        if lines:
            print("\n".join(lines))
        return 0
    known = _assignments(course)
    if args.assignment not in known:
        raise UsageError(f"ASSIGNMENT must name an assignment of the gradebook or under "
                         f"{course.solutions} ({', '.join(known) or 'none found'}); got "
                         f"{args.assignment!r}")
    if not args.student:
        raise UsageError("--student must be given at least once (the student id, as in the "
                         "gradebook and DIR/submitted/); got none")
    for s in args.student:
        if not STUDENT_RE.match(s):
            raise UsageError(f"--student must be a student id (ASCII letters, digits and "
                             f". _ @ + -, starting with a letter or digit); got {s!r}")
    if args.remove and (args.days is not None or args.hours is not None):
        given = " ".join(f"{o} {v:g}" for o, v in (("--days", args.days), ("--hours", args.hours))
                         if v is not None)
        raise UsageError(f"--remove takes no --days or --hours (it takes the extension back); "
                         f"got --remove with {given}")
    if not args.remove and args.days is None and args.hours is None:
        raise UsageError("--days or --hours must give the extension (or --remove take it "
                         "back); got neither")
    seconds = 0.0 if args.remove else _amount(args.days, args.hours)
    by = table.setdefault(args.assignment, {})
    for s in args.student:
        if args.remove:
            by.pop(s, None)
        else:
            by[s] = seconds
    if not _gradebook_exists(course):   # no gradebook yet: nothing due, no submission
        now, later, unknown, due = [], list(args.student), [], None
    else:
        now, later, unknown, due = _grant(course, args, seconds)
    save(course.root, table)
    _print(course, args, seconds, now, later, unknown, due)
    return 0


def _grant(course: Course, args, seconds: float):
    """The extension written into the gradebook for each student with a submission: ``(those
    students, the others, ids the gradebook and submitted/ do not know, the due date)``."""
    from nbgrader.api import MissingEntry

    now, later, unknown = [], [], []
    with course.gradebook() as gb:
        try:
            due = gb.find_assignment(args.assignment).duedate
        except MissingEntry:
            due = None
        known_students = {st.id for st in gb.students}
        for s in args.student:
            try:
                sub = gb.find_submission(args.assignment, s)
            except MissingEntry:
                later.append(s)
                if s not in known_students and not (course.submitted / s).is_dir():
                    unknown.append(s)
                continue
            sub.extension = None if args.remove else dt.timedelta(seconds=seconds)
            now.append(s)
        gb.db.commit()
    return now, later, unknown, due


def _print(course: Course, args, seconds: float, now: list[str], later: list[str],
           unknown: list[str], due) -> None:
    what = ("removed" if args.remove else f"of {duration(seconds)} granted")
    until = "" if args.remove or due is None else \
        f" (due {due + dt.timedelta(seconds=seconds):%Y-%m-%d %H:%M:%S} UTC)"
    print(f"extension: {args.assignment} extension {what}{until} for "
          f"{', '.join(args.student)}; saved in {path(course.root)}")
    if now:
        print(f"  in the gradebook now: {', '.join(now)}")
    if later:
        print(f"  no submission yet: {', '.join(later)} "
              + ("(nothing in the gradebook to change)" if args.remove else
                 "(autograde writes it into the gradebook when it grades the submission)"))
    if unknown:
        print(f"warning: {', '.join(unknown)}: not a student of the gradebook and nothing "
              "collected from them yet: check the id (the class list's id)")
    if due is None:
        print(f"note: {args.assignment} has no due date in the gradebook, so no submission of "
              "it is late, extension or not: `nbgrader db assignment add "
              f"{args.assignment} --duedate ...` sets one")
    q = shlex.quote(str(course.root))
    if now:
        print(f"next: tconv-grader report --course {q}, then tconv-grader feedback --course {q} "
              "(lateness and any late penalty follow the new due date)")


def add_parser(sub) -> None:
    p = sub.add_parser("extension", help="give a student extra time for an assignment",
                       description=__doc__.rstrip())
    p.add_argument("assignment", nargs="?", metavar="ASSIGNMENT",
                   help="the assignment (without it: list the course's extensions)")
    p.add_argument("--course", required=True, help="course directory (instructor state)")
    p.add_argument("--db", help="SQLAlchemy URL of the gradebook (default: "
                   "sqlite:///<course>/gradebook.db)")
    p.add_argument("--solutions", default=str(REPO / "solutions"),
                   help="instructor source, whose assignments are known besides the "
                   "gradebook's (default: the repository's solutions/)")
    p.add_argument("--student", action="append", default=[],
                   help="the student (repeatable)")
    p.add_argument("--days", type=_time("days"), help="days of extra time, a fraction too "
                   "(no default: give --days, --hours or both)")
    p.add_argument("--hours", type=_time("hours"), help="hours of extra time (added to --days)"
                   " (no default: give --days, --hours or both)")
    p.add_argument("--remove", action="store_true", help="take the extension back")
    p.set_defaults(func=main)
