"""``tconv-grader collect PATH --course DIR``: import submissions into ``<course>/submitted``.

PATH is either

* a folder tree ``<student>/<assignment>/<notebook>.ipynb`` (what nbgrader's exchange or a
  shared drive gives you; also inside wrapping folders, as in a zip of that tree, or as
  ``<student>/<notebook>.ipynb`` when the notebook's name says the assignment), or
* an LMS download: a ``.zip`` (or a flat folder) of files named, following nbgrader's
  ``zip_collect`` conventions (``FileNameCollectorPlugin``), ``<student>_<assignment>_<notebook>
  .ipynb``, optionally ``<student>_<assignment>_attempt_<YYYY-MM-DD-HH-MM-SS>_<notebook>.ipynb``.
  ``--regexp`` overrides the pattern; it must define the named groups ``student_id`` and
  ``file_id`` and may define ``assignment_id`` (else the assignment is the one whose released
  notebook ``file_id`` names) and ``timestamp`` (as nbgrader's plugin does). It is matched
  against each file's path inside PATH (``ex1/amy_ex1_shapes.ipynb``), so it may start with ``^``.

Each accepted notebook is written to ``<course>/submitted/<student>/<assignment>/<notebook>.ipynb``
with ``timestamp.txt`` (from the file name, else the zip entry's or file's modification time).
The newest copy wins and nothing is dropped without a word: of several attempts of one notebook
the latest is kept (the others are listed), and a notebook already collected is replaced only by
one at least as new (an older download collected later is listed and skipped), times compared
as times. A time that was a file's modification time (no hand-in time in the name or beside the
file: perhaps the download's) is not compared with a hand-in time: a copy with a hand-in time
collected later replaces it, and is listed as such. Collecting the
same files again changes nothing. Files that match no assignment (or no pattern) are listed and
skipped. A browser's or LMS's re-download name (``ex3_matrix (1).ipynb``, ``ex3_matrix(2).ipynb``)
is stored under the expected name when it is the only candidate among the files collected; each
such rename is listed.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
import shutil
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from grader.gradebook import REPO, Course, UsageError, assignments_in, next_command, notebooks_of

STUDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
#: a browser's or LMS's name for a second download of <name>.ipynb: "<name> (1)", "<name>(2)"
REDOWNLOAD_RE = re.compile(r"^(?P<name>.+?) ?\((?P<n>\d+)\)$")
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")


@dataclass
class Collected:
    imported: list[tuple[str, str, str]] = field(default_factory=list)  # student, assignment, nb
    unmatched: list[tuple[str, str]] = field(default_factory=list)  # file, reason
    renamed: list[tuple[str, str]] = field(default_factory=list)  # file, stored as
    attention: list[tuple[str, str]] = field(default_factory=list)  # imported; file, warning
    superseded: list[tuple[str, str]] = field(default_factory=list)  # not imported: file, why
    #: imported over a copy whose time was a file's modification time, not a hand-in time, and
    #: later than this one's: file, what was replaced
    replaced: list[tuple[str, str]] = field(default_factory=list)
    empty: list[tuple[str, str]] = field(default_factory=list)  # ... empty, content kept: same
    unchanged: int = 0            # imported notebooks identical to what was already there
    same: set[tuple[str, str, str]] = field(default_factory=set)  # ... which ones
    pattern: str = ""             # the file-name regexp used for LMS names
    no_pattern: list[str] = field(default_factory=list)  # LMS names the pattern did not match
    underscore_ids: list[str] = field(default_factory=list)  # ... with a '_' in the student id
    #: student/assignment whose timestamp.txt this run wrote from a file's modification time (no
    #: time in the file name, no timestamp.txt beside it): perhaps the download's, not the hand-in's
    file_times: list[str] = field(default_factory=list)


@dataclass
class _Item:
    """One notebook to import: who, what, from which file (``shown`` as in messages)."""
    student: str
    assignment: str
    notebook: str
    file: Path
    ts: str
    shown: str
    noted: bool = False  # already listed with a reason
    file_time: bool = False  # ts is the file's (zip entry's) modification time


def default_regexp(assignments: list[str], student: str = r"[^_/]+?") -> str:
    """nbgrader's ``<student>_<assignment>[_attempt_<timestamp>]_<notebook>`` for these
    assignments; ``student`` is the student id's pattern (by default no ``_`` in it)."""
    alts = "|".join(re.escape(a) for a in sorted(assignments, key=len, reverse=True)) or r"[^_]+"
    return (r"^(?:.*/)?(?P<student_id>" + student + r")_(?P<assignment_id>" + alts + r")"
            r"(?:_attempt_(?P<timestamp>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}))?"
            r"_(?P<file_id>[^/]+)$")


def underscore_regexp(assignments: list[str]) -> str:
    """:func:`default_regexp` with student ids that may contain ``_`` (``mary_jane``)."""
    return default_regexp(assignments, r"[^/]+?")


def _assignment_of(nb: str, nb_names: dict[str, set[str]]) -> str:
    """The assignment whose released notebooks include ``nb`` (or the notebook ``nb`` is a
    re-download of); ``""`` when none or several do."""
    for name in (nb, redownload_of(nb)):
        owners = [a for a, names in nb_names.items() if name in names]
        if len(owners) == 1:
            return owners[0]
    return ""


def _parse_ts(text: str) -> dt.datetime:
    """A timestamp from a file name: nbgrader's ``YYYY-MM-DD-HH-MM-SS``, else any form
    ``dateutil`` reads (as nbgrader's zip_collect does); in UTC, without a time zone."""
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d-%H-%M-%S")
    except ValueError:
        from dateutil.parser import parse

        t = parse(text)
        return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def redownload_of(nb: str) -> str | None:
    """``ex3_matrix`` for ``ex3_matrix (1)`` or ``ex3_matrix(2)``; else ``None``."""
    m = REDOWNLOAD_RE.match(nb)
    return m["name"] if m else None


def _fmt_ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def _is_tree(root: Path) -> bool:
    return any(p.is_dir() for p in root.iterdir()) and not any(
        p.is_file() and p.suffix == ".ipynb" for p in root.iterdir())


def _open_zip(path: Path) -> zipfile.ZipFile:
    """The archive at ``path``; a usage error that tells no zip from a damaged one."""
    try:
        return zipfile.ZipFile(path)
    except OSError as exc:
        raise UsageError(f"PATH must be a readable folder or .zip archive; got {path} "
                         f"({exc.strerror or exc})") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as exc:
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head not in ZIP_MAGIC:
            raise UsageError(f"PATH must be a folder or a .zip archive; got {path} (not a zip)"
                             ) from exc
        raise UsageError(f"PATH must be a folder or a readable .zip archive; got {path} "
                         f"(damaged zip ({exc}): it starts like a zip but cannot be read, a "
                         "truncated download? download it again)") from exc


def _extract(path: Path, root: Path, result: Collected) -> dict[Path, dt.datetime]:
    """Unpack the zip at ``path`` into ``root``; ``{file: the entry's modification time}``.
    A damaged or unsafe entry is skipped and listed; the others are still unpacked."""
    stamps = {}
    with _open_zip(path) as zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir() or "__MACOSX" in name or Path(name).name.startswith("."):
                continue
            target = (root / name).resolve()
            if not target.is_relative_to(root.resolve()):
                result.unmatched.append((name, "unsafe path in archive"))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                target.unlink(missing_ok=True)  # one damaged member: skip it, say why
                result.unmatched.append((name, f"damaged in the archive ({exc})"))
                continue
            stamps[target] = dt.datetime(*info.date_time)
    return stamps


def _no_pattern(shown: str, known: list[str], result: Collected, custom: bool = False) -> str:
    """Why an LMS file name matched no pattern, with a hint at ``--regexp`` when the student id
    seems to contain ``_`` (the default pattern takes it up to the first ``_``)."""
    result.no_pattern.append(shown)
    if custom:
        return "file name does not match --regexp"
    why = "file name matches no <student>_<assignment>_<notebook>.ipynb pattern"
    m = re.match(underscore_regexp(known), shown) if known else None
    if m and "_" in m["student_id"]:
        result.underscore_ids.append(shown)
        return (f"{why}: the student id {m['student_id']!r} contains '_', which the pattern "
                "does not allow; pass --regexp (see below)")
    return f"{why} with a known assignment ({', '.join(known) or 'none'})"


def _resolve_redownloads(items: list[_Item], nb_names: dict[str, set[str]], course: Course,
                         result: Collected) -> None:
    """Store a re-download (``<nb> (1).ipynb``) under the expected ``<nb>.ipynb`` when it is the
    student's only such file for the assignment and ``<nb>.ipynb`` is not among the files
    collected (one already submitted is replaced only if the re-download is at least as new, as
    for any notebook: so collecting the same files twice changes nothing); list every rename,
    and every re-download left as it is."""
    by_sub: dict[tuple[str, str], list[_Item]] = {}
    for it in items:
        by_sub.setdefault((it.student, it.assignment), []).append(it)
    for (s, a), its in by_sub.items():
        for expected in sorted(nb_names[a]):
            copies = [it for it in its if redownload_of(it.notebook) == expected]
            if not copies:
                continue
            names = sorted({f"{it.notebook}.ipynb" for it in copies})
            if any(it.notebook == expected for it in its):
                why = (f"not renamed: {expected}.ipynb is there too, and only it is graded; "
                       "imported under its own name")
            elif len(names) > 1:
                why = (f"not renamed to {expected}.ipynb: several re-downloads "
                       f"({', '.join(names)}); imported under their own names, they will be "
                       "flagged as a wrong file name (keep one and collect again)")
            else:
                for it in copies:
                    result.renamed.append((it.shown, f"{s}/{a}/{expected}.ipynb"))
                    it.notebook = expected
                continue
            for it in copies:
                result.attention.append((it.shown, why))
                it.noted = True


def collect(course: Course, path: Path, regexp: str | None = None, progress: bool = True
            ) -> Collected:
    from nbgrader.plugins.zipcollect import FileNameCollectorPlugin
    from tqdm import tqdm

    known = assignments_in(course.solutions)
    nb_names = {a: set(notebooks_of(course.solutions, a)) for a in known}
    result = Collected(pattern=regexp or default_regexp(known))
    items: list[_Item] = []
    state = load_state(course)
    file_times, replaced = state["file_times"], state["replaced"]
    with tempfile.TemporaryDirectory(prefix="tconv-collect-") as tmp:
        if path.is_file():
            root = Path(tmp)
            stamps = _extract(path, root, result)
        elif path.is_dir():
            root, stamps = path, {}
        else:
            raise UsageError(f"PATH must be an existing folder or .zip archive; got {path}")

        def mtime(f: Path) -> dt.datetime:
            return stamps.get(f.resolve()) or dt.datetime.fromtimestamp(
                f.stat().st_mtime, tz=dt.timezone.utc).replace(tzinfo=None)

        files = sorted(p for p in root.rglob("*") if p.is_file()
                       and ".ipynb_checkpoints" not in p.parts and not p.name.startswith("."))
        tree = _is_tree(root)
        plugin = FileNameCollectorPlugin(named_regexp=result.pattern)
        for f in files:
            rel = f.relative_to(root)
            shown = str(rel)
            if f.suffix != ".ipynb":
                if f.name != "timestamp.txt":
                    result.unmatched.append((shown, "not a notebook (.ipynb)"))
                continue
            parts = rel.parts
            # a tree: <student>/<assignment>/<nb>.ipynb, also inside wrapping folders (a zip
            # of the folder "submissions/"), or <student>/<nb>.ipynb (the notebook's name says
            # which assignment)
            in_tree = tree and ((len(parts) >= 3 and parts[-2] in known) or len(parts) == 3 or
                                (len(parts) == 2 and _assignment_of(f.stem, nb_names)))
            if in_tree:
                s, nb = parts[-3 if len(parts) >= 3 else 0], f.stem
                a = parts[-2] if len(parts) >= 3 else _assignment_of(nb, nb_names)
                ts_file = f.parent / "timestamp.txt"
                ts = ts_file.read_text().strip() if ts_file.exists() else _fmt_ts(mtime(f))
                file_time = not ts_file.exists()
            else:
                # the name as shown (relative to PATH), so a --regexp may start with '^'
                gd = plugin.collect(shown)
                if not gd:
                    result.unmatched.append((shown, _no_pattern(shown, known, result,
                                                                custom=bool(regexp))))
                    continue
                s = gd["student_id"]
                nb = Path(gd["file_id"]).stem
                a = gd.get("assignment_id") or _assignment_of(nb, nb_names)
                if not a:
                    result.unmatched.append((shown, f"--regexp has no (?P<assignment_id>...) "
                                             f"group and the notebook {nb!r} is none of the "
                                             "released ones, so its assignment is unknown"))
                    continue
                file_time = not gd.get("timestamp")
                if gd.get("timestamp"):
                    try:
                        ts = _fmt_ts(_parse_ts(gd["timestamp"]))
                    except (ValueError, OverflowError):
                        result.unmatched.append((shown, f"timestamp {gd['timestamp']!r} from "
                                                 "the file name is not a date and time"))
                        continue
                else:
                    ts = _fmt_ts(mtime(f))
            if a not in known:
                result.unmatched.append((shown, f"no assignment named {a!r} "
                                         f"(known: {', '.join(known)})"))
                continue
            if not STUDENT_RE.match(s):
                fix = (f"rename the folder {s!r} (the student id the gradebook, the reports and "
                       "the feedback folder will use)" if in_tree
                       else "rename the file or pass --regexp")
                result.unmatched.append((shown, f"student id {s!r} is not a plain identifier "
                                         "(ASCII letters, digits and . _ @ + -, starting with a "
                                         f"letter or digit); {fix}"))
                continue
            items.append(_Item(s, a, nb, f, ts, shown, file_time=file_time))
        _resolve_redownloads(items, nb_names, course, result)
        for it in items:
            if it.notebook not in nb_names[it.assignment] and not it.noted:
                result.attention.append(
                    (it.shown, f"assignment {it.assignment} has no notebook {it.notebook!r} "
                     f"(expected {', '.join(sorted(nb_names[it.assignment]))}); imported under "
                     "its own name, it will be flagged as a wrong file name"))
        # later attempts of the same notebook replace earlier ones, which are listed; an empty
        # file (an LMS's entry for a failed upload) never replaces a notebook with content
        latest: dict[tuple[str, str, str], _Item] = {}
        for it in items:
            key = (it.student, it.assignment, it.notebook)
            if key not in latest or _newness(it) >= _newness(latest[key]):
                if key in latest:
                    _supersede(latest[key], it, result)
                latest[key] = it
            else:
                _supersede(it, latest[key], result)
        for (s, a, nb), it in tqdm(sorted(latest.items()), desc="collect", unit="file",
                                   disable=not progress, file=sys.stderr):
            dest = course.submitted / s / a
            target = dest / f"{nb}.ipynb"
            stamp = dest / "timestamp.txt"
            stored = stamp.read_text().strip() if stamp.exists() else ""
            if target.exists() and target.read_bytes() == it.file.read_bytes():
                # the same notebook again (a second download of the same files): nothing
                # changes, not even its time, so nothing is regraded
                result.unchanged += 1
                result.same.add((s, a, nb))
                result.imported.append((s, a, nb))
                continue
            # a file's time (perhaps the download's) kept, a hand-in time now: not comparable
            incomparable = file_times.get(f"{s}/{a}") == stored and not it.file_time
            older = target.exists() and _older(it.ts, stored)
            if target.exists() and _sha(it.file) in replaced.get(f"{s}/{a}/{nb}", ()):
                result.superseded.append(
                    (it.shown, f"replaced on an earlier collect by the copy of {s}/{a}/{nb}"
                     f".ipynb now kept ({stored}), which had a hand-in time where this one "
                     f"has a file's time (to grade this file instead, delete {dest} and "
                     "collect again)"))
                continue
            if older and not incomparable:  # an older copy never replaces a newer one
                result.superseded.append(
                    (it.shown, f"older ({it.ts}) than {s}/{a}/{nb}.ipynb already collected "
                     f"({stored}), which is kept (to grade this file instead, delete "
                     f"{dest} and collect again)"))
                continue
            if not _has_content(it) and target.exists() and target.stat().st_size:
                result.empty.append(
                    (it.shown, f"{EMPTY}; {s}/{a}/{nb}.ipynb already collected ({stored}) is "
                     "kept"))
                continue
            if not _has_content(it):
                result.attention.append(
                    (it.shown, f"{EMPTY}: imported, it scores 0 (nothing to grade); ask the "
                     "student to upload the notebook again"))
            if older and _has_content(it):
                replaced.setdefault(f"{s}/{a}/{nb}", []).append(_sha(target))
                # the time kept was a file's modification time (perhaps the download's), this
                # copy's a hand-in time or a later file time: the two cannot be compared, and
                # this copy came in later, so it is the resubmission
                result.replaced.append(
                    (it.shown, f"replaces {s}/{a}/{nb}.ipynb collected earlier: its time "
                     f"({stored}) was a file's modification time (perhaps the download's), not "
                     f"a hand-in time, so this copy, collected later, is taken as the newer; "
                     f"timestamp.txt now holds its hand-in time {it.ts} (if it is the earlier "
                     f"attempt after all, delete {dest} and collect the other copy again)"))
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(it.file, target)
            if older or not _older(it.ts, stored):
                stamp.write_text(it.ts + "\n")
                if it.file_time:
                    result.file_times.append(f"{s}/{a}")
                    file_times[f"{s}/{a}"] = it.ts
                else:
                    file_times.pop(f"{s}/{a}", None)
            result.imported.append((s, a, nb))
    save_state(course, state)
    return result


#: ``<course>/STATE``, what collect remembers between runs: ``"file_times"``,
#: ``{"student/assignment": text}`` for each timestamp.txt it wrote from a file's (zip entry's)
#: modification time, not a hand-in time (the name's ``_attempt_`` time or a timestamp.txt beside
#: the notebook), an entry counting while timestamp.txt still holds that text (one corrected by
#: hand is a hand-in time); ``"replaced"``, ``{"student/assignment/notebook": [sha256, ...]}``:
#: copies such a time could not be compared with, replaced by a copy with a hand-in time (the
#: same copy collected again is not imported again)
STATE = ".collect.json"


def load_state(course: Course) -> dict[str, dict]:
    import json

    try:
        data = json.loads((course.root / STATE).read_text())
    except (OSError, ValueError):
        data = {}
    data = data if isinstance(data, dict) else {}
    return {k: dict(data.get(k) or {}) for k in ("file_times", "replaced")}


def save_state(course: Course, state: dict[str, dict]) -> None:
    import json

    from grader.gradebook import atomic_write_text

    path = course.root / STATE
    if any(state.values()) or path.exists():
        course.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(state, indent=1, sort_keys=True) + "\n")


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def when(text: str) -> dt.datetime | None:
    """The UTC time a timestamp (timestamp.txt, a file name's) says, as nbgrader reads it
    (``nbgrader.utils.parse_utc``); ``None`` when it holds none."""
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(text.strip()) if text.strip() else None
    except (ValueError, OverflowError, TypeError):
        return None


def _older(new: str, stored: str) -> bool:
    """Whether the time ``new`` is before the time ``stored`` (timestamp.txt's text): compared
    as times, so two ways of writing them (``2026-12-01 16:00:00 UTC``, ``...T16:00:00+01:00``)
    compare right; a side that holds no time is never the older, nor is anything older than
    it."""
    a, b = when(new), when(stored)
    return a is not None and b is not None and a < b


EMPTY = "empty file (0 bytes)"


def _newness(it: _Item) -> tuple[bool, dt.datetime]:
    """Which of several copies of one notebook is kept: one with content, then the latest."""
    return _has_content(it), when(it.ts) or dt.datetime.min


def _has_content(it: _Item) -> bool:
    return it.file.stat().st_size > 0


def _supersede(old: _Item, new: _Item, result: Collected) -> None:
    """List ``old``, an earlier attempt of the notebook ``new`` replaces (or an empty file)."""
    if not _has_content(old) and _has_content(new):
        result.empty.append(
            (old.shown, f"{EMPTY}; the notebook in {new.shown} ({new.ts}) is kept"))
        return
    result.superseded.append(
        (old.shown, f"an earlier attempt ({old.ts}) of {new.student}/{new.assignment}/"
         f"{new.notebook}.ipynb; the later {new.shown} ({new.ts}) is kept"))


def check_regexp(regexp: str | None) -> None:
    if not regexp:
        return
    try:
        rx = re.compile(regexp)
    except re.error as exc:
        raise UsageError(f"--regexp must be a valid regular expression; got "
                         f"{regexp!r} ({exc})") from exc
    if not {"student_id", "file_id"} <= set(rx.groupindex):
        raise UsageError("--regexp must define the named groups (?P<student_id>...) and "
                         f"(?P<file_id>...); got {regexp!r}")


def _remove_if_empty(root: Path) -> None:
    """Remove ``root`` (a course directory this run created) unless a file was written in it."""
    if root.is_dir() and not any(p.is_file() for p in root.rglob("*")):
        shutil.rmtree(root)


def _case_clashes(course: Course, imported: set[str]) -> list[list[str]]:
    """Groups of student ids of the course that differ only in case (``Amy`` and ``amy``), each
    with one just imported: two gradebook students, one report row each, for one person."""
    ids = [p.name for p in course.submitted.iterdir() if p.is_dir()] \
        if course.submitted.is_dir() else []
    groups: dict[str, list[str]] = {}
    for i in ids:
        groups.setdefault(i.lower(), []).append(i)
    return [sorted(g) for _, g in sorted(groups.items()) if len(g) > 1 and set(g) & imported]


def _print_result(res: Collected, course: Course) -> None:
    fresh = [k for k in res.imported if k not in res.same]
    students = sorted({s for s, _, _ in fresh})
    same = (f"; {res.unchanged} more unchanged (already collected, nothing to regrade)"
            if res.unchanged else "")
    print(f"imported {len(fresh)} notebook(s) from {len(students)} student(s) into "
          f"{course.submitted}{same}")
    if res.renamed:
        print(f"{len(res.renamed)} re-download(s) stored under the expected notebook name:")
        for f, dest in res.renamed:
            print(f"  {f}: renamed to {dest}")
    # an empty file is not imported however new it is: not under the heading of older copies
    for files, what in ((res.attention, "file(s) imported but needing attention"),
                        (res.replaced, "file(s) imported over a copy collected earlier whose "
                                       "time was a file's, not a hand-in time"),
                        (res.superseded, "older file(s) not imported (a newer copy is kept)"),
                        (res.empty, "empty file(s) not imported (the notebook with content is "
                                    "kept)"),
                        (res.unmatched, "file(s) not imported")):
        if files:
            print(f"{len(files)} {what}:")
            for f, why in files:
                print(f"  {f}: {why}")
    clashes = _case_clashes(course, {s for s, _, _ in res.imported})
    if clashes:
        print(f"{len(clashes)} student id(s) differ from another only in case (the same "
              "student? rename the files and collect again, or merge the folders under "
              f"{course.submitted}):")
        for ids in clashes:
            print(f"  {', '.join(ids)}")
    if res.file_times:
        which = sorted(set(res.file_times))
        shown = ", ".join(which[:10]) + (f" and {len(which) - 10} more" if len(which) > 10
                                         else "")
        print(f"note: {len(which)} submission(s) had no hand-in time in their file names (no "
              "_attempt_<YYYY-MM-DD-HH-MM-SS>_, no timestamp.txt beside them): their "
              "timestamp.txt, which lateness is measured against, holds the file's modification "
              "time (in a zip, the entry's time as the archive stores it: the zipping "
              "machine's clock, no time zone, taken as UTC). If that is when you downloaded "
              "them, not when they were handed in, correct timestamp.txt (autograde then "
              "grades it again, with that time) before a due date or late penalty counts it: "
              f"{shown}")
    if res.no_pattern:
        print(f"{len(res.no_pattern)} file name(s) did not match the pattern for LMS names; "
              "if your LMS names files another way, pass --regexp (the pattern now: "
              f"{res.pattern})")
    if res.underscore_ids:
        known = assignments_in(course.solutions)
        print(f"  for student ids with '_' ({len(res.underscore_ids)} file(s)), collect again "
              f"with --regexp {shlex.quote(underscore_regexp(known))}")


def main(args) -> int:
    check_regexp(args.regexp)
    root = Path(args.course).expanduser().resolve()
    new = not root.exists()
    try:
        course = Course.open(root, None, args.solutions)
        res = collect(course, Path(args.path).expanduser().resolve(), args.regexp,
                      progress=not args.quiet)
    except BaseException:
        if new:  # a failed collect leaves no empty course directory behind
            _remove_if_empty(root)
        raise
    _print_result(res, course)
    if res.imported:
        print(f"next: {next_command('autograde', args)}")
        return 0
    seen = len(res.unmatched) + len(res.attention) + len(res.superseded) + len(res.empty)
    print(f"warning: nothing imported from {args.path} "
          f"({f'none of its {seen} file(s) could be imported; see above' if seen else 'no files'})",
          file=sys.stderr)
    if new:  # nor does one that imported nothing
        _remove_if_empty(root)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("collect", help="import submissions (folder tree or LMS zip)",
                       description=__doc__.split("\n\n")[0])  # layouts, examples: grader.cli
    p.add_argument("path", metavar="PATH", help="folder tree or .zip of submissions")
    p.add_argument("--course", required=True,
                   help="course directory (instructor state; created if missing)")
    p.add_argument("--solutions", default=str(REPO / "solutions"),
                   help="instructor source (default: the repository's solutions/)")
    p.add_argument("--regexp", help="Python regexp for LMS file names, with the named groups "
                   "student_id and file_id (nbgrader's FileNameCollectorPlugin.named_regexp; "
                   "default: the layouts below)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=main)
