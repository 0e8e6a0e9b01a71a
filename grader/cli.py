"""The ``tconv-grader`` command line (also ``python -m grader``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader import autograde, check, collect, feedback, release, report, validate
from grader.gradebook import UsageError

EPILOG = """instructor workflow:
  tconv-grader release                      solutions/ -> exercises/
  tconv-grader validate                     solutions score full marks, stubs zero
  tconv-grader collect SUBMISSIONS --course DIR
  tconv-grader autograde --course DIR [--jobs N]
  tconv-grader feedback --course DIR
  tconv-grader report --course DIR
  tconv-grader migrate --from sqlite:///DIR/gradebook.db --to postgresql://...
students:
  tconv-grader check exercises/ex1_shapes/ex1_shapes.ipynb"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit status 2 with the usage line, as argparse
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tconv-grader", description=__doc__.split("\n")[0],
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for mod in (release, validate, collect, autograde, feedback, report, check):
        mod.add_parser(sub)
    try:  # optional: gradebook migration (SQLite -> PostgreSQL), owned by grader.migrate
        from grader import migrate
    except ImportError:  # pragma: no cover
        migrate = None
    if migrate is not None:
        migrate.add_parser(sub)
    # descriptions come from the modules' docstrings: drop their reST literal quotes
    for parser in (p, *sub.choices.values()):
        parser.description = (parser.description or "").replace("``", "")
    return p


#: commands that create the course directory; every other --course must already exist
CREATES_COURSE = {"collect", "release"}


def check_course(args: argparse.Namespace) -> None:
    course = getattr(args, "course", None)
    if course is None or args.command in CREATES_COURSE:
        return
    path = Path(course).expanduser()
    if not path.is_dir():
        raise UsageError(f"--course must be an existing course directory; got {course} "
                         f"({'not a directory' if path.exists() else 'no such directory'}; "
                         f"`tconv-grader collect SUBMISSIONS --course {course}` creates it)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_course(args)
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"tconv-grader {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
