"""``tconv-grader collect PATH --course DIR``: import submissions into ``<course>/submitted``.

PATH is either

* a folder tree ``<student>/<assignment>/<notebook>.ipynb`` (what nbgrader's exchange or a
  shared drive gives you), or
* an LMS download: a ``.zip`` (or a flat folder) of files named, following nbgrader's
  ``zip_collect`` conventions (``FileNameCollectorPlugin``), ``<student>_<assignment>_<notebook>
  .ipynb``, optionally ``<student>_<assignment>_attempt_<YYYY-MM-DD-HH-MM-SS>_<notebook>.ipynb``.
  ``--regexp`` overrides the pattern; it must define the named groups ``student_id`` and
  ``file_id`` and may define ``assignment_id`` and ``timestamp`` (as nbgrader's plugin does).

Each accepted notebook is written to ``<course>/submitted/<student>/<assignment>/<notebook>.ipynb``
with ``timestamp.txt`` (from the file name, else the zip entry's or file's modification time).
Files that match no assignment (or no pattern) are listed and skipped.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from grader.gradebook import REPO, Course, UsageError, assignments_in, notebooks_of

STUDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.@+-]*$")


@dataclass
class Collected:
    imported: list[tuple[str, str, str]] = field(default_factory=list)  # student, assignment, nb
    unmatched: list[tuple[str, str]] = field(default_factory=list)  # file, reason


def default_regexp(assignments: list[str]) -> str:
    alts = "|".join(re.escape(a) for a in sorted(assignments, key=len, reverse=True)) or r"[^_]+"
    return (r"^(?:.*/)?(?P<student_id>[^_/]+?)_(?P<assignment_id>" + alts + r")"
            r"(?:_attempt_(?P<timestamp>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}))?"
            r"_(?P<file_id>[^/]+)$")


def _fmt_ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def _is_tree(root: Path) -> bool:
    return any(p.is_dir() for p in root.iterdir()) and not any(
        p.is_file() and p.suffix == ".ipynb" for p in root.iterdir())


def collect(course: Course, path: Path, regexp: str | None = None, progress: bool = True
            ) -> Collected:
    from nbgrader.plugins.zipcollect import FileNameCollectorPlugin
    from tqdm import tqdm

    known = assignments_in(course.solutions)
    nb_names = {a: set(notebooks_of(course.solutions, a)) for a in known}
    result = Collected()
    items: list[tuple[str, str, str, Path, str, str]] = []  # s, a, nb, file, ts, shown
    with tempfile.TemporaryDirectory(prefix="tconv-collect-") as tmp:
        if path.is_file():
            if not zipfile.is_zipfile(path):
                raise UsageError(f"PATH must be a folder or a .zip archive; got {path} (not a zip)")
            root = Path(tmp)
            stamps = {}
            with zipfile.ZipFile(path) as zf:
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
        plugin = FileNameCollectorPlugin(named_regexp=regexp or default_regexp(known))
        for f in files:
            rel = f.relative_to(root)
            shown = str(rel)
            if f.suffix != ".ipynb":
                if f.name != "timestamp.txt":
                    result.unmatched.append((shown, "not a notebook (.ipynb)"))
                continue
            if tree and len(rel.parts) == 3:
                s, a, nb = rel.parts[0], rel.parts[1], f.stem
                ts_file = f.parent / "timestamp.txt"
                ts = ts_file.read_text().strip() if ts_file.exists() else _fmt_ts(mtime(f))
            else:
                gd = plugin.collect(str(f))
                if not gd:
                    result.unmatched.append((shown, "file name matches no "
                                             "<student>_<assignment>_<notebook>.ipynb pattern"))
                    continue
                s = gd["student_id"]
                a = gd.get("assignment_id") or ""
                nb = Path(gd["file_id"]).stem
                if gd.get("timestamp"):
                    ts = _fmt_ts(dt.datetime.strptime(gd["timestamp"], "%Y-%m-%d-%H-%M-%S"))
                else:
                    ts = _fmt_ts(mtime(f))
            if a not in known:
                result.unmatched.append((shown, f"no assignment named {a!r} "
                                         f"(known: {', '.join(known)})"))
                continue
            if not STUDENT_RE.match(s):
                result.unmatched.append((shown, f"student id {s!r} is not a plain identifier"))
                continue
            if nb not in nb_names[a]:
                result.unmatched.append(
                    (shown, f"assignment {a} has no notebook {nb!r} (expected "
                     f"{', '.join(sorted(nb_names[a]))}); imported under its own name, "
                     "it will be flagged as a wrong file name"))
            items.append((s, a, nb, f, ts, shown))
        # later attempts of the same notebook replace earlier ones
        latest: dict[tuple[str, str, str], tuple[Path, str]] = {}
        for s, a, nb, f, ts, _ in items:
            key = (s, a, nb)
            if key not in latest or ts >= latest[key][1]:
                latest[key] = (f, ts)
        for (s, a, nb), (f, ts) in tqdm(sorted(latest.items()), desc="collect", unit="file",
                                        disable=not progress, file=sys.stderr):
            dest = course.submitted / s / a
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest / f"{nb}.ipynb")
            stamp = dest / "timestamp.txt"
            if not stamp.exists() or stamp.read_text().strip() < ts:
                stamp.write_text(ts + "\n")
            result.imported.append((s, a, nb))
    return result


def main(args) -> int:
    course = Course.open(args.course, None, args.solutions)
    if args.regexp:
        try:
            rx = re.compile(args.regexp)
        except re.error as exc:
            raise UsageError(f"--regexp must be a valid regular expression; got "
                             f"{args.regexp!r} ({exc})") from exc
        if not {"student_id", "file_id"} <= set(rx.groupindex):
            raise UsageError("--regexp must define the named groups (?P<student_id>...) and "
                             f"(?P<file_id>...); got {args.regexp!r}")
    res = collect(course, Path(args.path).expanduser().resolve(), args.regexp,
                  progress=not args.quiet)
    students = sorted({s for s, _, _ in res.imported})
    print(f"imported {len(res.imported)} notebook(s) from {len(students)} student(s) into "
          f"{course.submitted}")
    if res.unmatched:
        print(f"{len(res.unmatched)} file(s) not imported or needing attention:")
        for f, why in res.unmatched:
            print(f"  {f}: {why}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("collect", help="import submissions (folder tree or LMS zip)",
                       description=__doc__.split("\n\n")[0],
                       epilog="Layouts: <student>/<assignment>/<notebook>.ipynb, or a zip/folder "
                              "of <student>_<assignment>_<notebook>.ipynb files.")
    p.add_argument("path", metavar="PATH", help="folder tree or .zip of submissions")
    p.add_argument("--course", required=True, help="course directory (instructor state)")
    p.add_argument("--solutions", default=str(REPO / "solutions"),
                   help="instructor source (default: %(default)s)")
    p.add_argument("--regexp", help="named-group regexp for LMS file names (nbgrader "
                   "FileNameCollectorPlugin.named_regexp)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=main)
