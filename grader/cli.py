"""tconv-grader (also python -m grader): grade the tconv exercises with nbgrader; check yours.

The command line: one module per subcommand builds its parser (``add_parser``); this one adds
the examples, the shared placeholders (:data:`METAVARS`) and the error handling."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import textwrap
from pathlib import Path

from grader import autograde, check, collect, extension, feedback, release, report, validate
from grader.gradebook import UsageError

EPILOG = """instructor workflow:
  tconv-grader release                      solutions/ -> exercises/
  tconv-grader validate                     solutions score full marks, stubs zero
  tconv-grader collect SUBMISSIONS --course DIR
  tconv-grader autograde --course DIR [--jobs N]
  tconv-grader feedback --course DIR
  tconv-grader report --course DIR
  tconv-grader extension ASSIGNMENT --student ID --days N --course DIR
  tconv-grader migrate --from sqlite:///DIR/gradebook.db --to postgresql://...
students:
  tconv-grader check exercises/ex1_shapes/ex1_shapes.ipynb

`tconv-grader COMMAND --help` gives each command's options and examples. DIR is the course
directory (instructor state: submissions, gradebook, feedback, reports), kept outside the
repository."""

#: examples and what comes next, shown under each instructor command's --help
EXAMPLES = {
    "release": r"""examples:
  tconv-grader release                     every assignment: solutions/ -> exercises/
  tconv-grader release ex3_matrix          one assignment
  tconv-grader release -o /tmp/preview     into another folder, to look before publishing
  tconv-grader release --course ~/tconv-2026   and record the grade cells in its gradebook

The release is what students get: commit exercises/ (or publish the -o folder) after validate.

next: tconv-grader validate""",
    "validate": r"""examples:
  tconv-grader validate                    every assignment (after each release)
  tconv-grader validate ex2_scatter -j 2   one assignment, two notebooks at a time
  tconv-grader validate --released /tmp/preview   a release made with release -o

Exit status 0 when valid; 1 with what differs; 2 for bad arguments.""",
    "collect": r"""layouts:
  <student>/<assignment>/<notebook>.ipynb     a folder tree (nbgrader exchange, shared drive)
  <student>_<assignment>_<notebook>.ipynb     an LMS zip or flat folder (nbgrader zip_collect)
  <student>_<assignment>_attempt_<YYYY-MM-DD-HH-MM-SS>_<notebook>.ipynb

examples:
  tconv-grader collect ~/Downloads/ex1_shapes.zip --course ~/tconv-2026
  tconv-grader collect /srv/inbound --course ~/tconv-2026
  tconv-grader collect canvas.zip --course ~/tconv-2026 \
      --regexp '^(?P<student_id>[a-z]+)_(late_)?\d+_\d+_(?P<file_id>.+)$'

Collecting again is safe: identical files change nothing, and an older copy never replaces a
newer one. A copy kept with only a file's time (no hand-in time in its name or beside it: perhaps
the download's) is not compared with a hand-in time: a copy with one, collected later, replaces
it (a resubmission), and is listed. Every file not imported is listed with the reason.

next: tconv-grader autograde --course DIR""",
    "autograde": r"""examples:
  tconv-grader autograde --course ~/tconv-2026                    all that is not graded yet
  tconv-grader autograde ex2_scatter --course ~/tconv-2026 -j 8   one assignment, 8 at a time
  tconv-grader autograde --course ~/tconv-2026 --student amy --force   regrade one student
  tconv-grader autograde --course ~/tconv-2026 --cell-timeout 60       allow slower cells

A re-run grades only new or re-collected submissions; Ctrl-C keeps every grade committed so
far. A broken submission (syntax error, endless loop, huge output, unreadable file) scores
what it earns; it never stops the batch or touches another student's grade. Flagged (for
report's flags.txt): a cell over a limit, truncated output, an edited test cell, an unreadable,
empty or misnamed notebook. An error in the student's own code (a syntax error) is not a flag:
the feedback page names it. A submission graded earlier whose folder under DIR/submitted/ is
gone since (withdrawn) is named in the summary: report scores it 0.

next: tconv-grader feedback --course DIR, then tconv-grader report --course DIR""",
    "feedback": r"""Writes DIR/feedback/<student>/<assignment>/feedback.html and, per
student, an index.html linking every assignment (or saying "no submission received"); a student
of the class list with no submission gets an index too. Only pages whose content changed are
written (a regrade, a hand grade); the others keep their file and time, and the summary names
the students whose pages changed. A page with no submission behind it any more (withdrawn: its
submitted or autograded folder deleted) is removed, and the summary names it.

examples:
  tconv-grader feedback --course ~/tconv-2026
  tconv-grader feedback ex2_scatter --course ~/tconv-2026 --student amy --student bo
  tconv-grader feedback --course ~/tconv-2026 --force     write every page again
  tconv-grader feedback --course ~/tconv-2026 --student cy   no submission: an index saying so
  tconv-grader feedback --course ~/tconv-2026 --keep-comments bo/ex2_scatter

Run it again after grading written answers by hand: the pages then show the final score.

A comment you wrote in formgrader on an answer the student changed since (a resubmission) is
left off the page and named. If it still applies to the new answer as written, --keep-comments
STUDENT/ASSIGNMENT (or STUDENT/ASSIGNMENT/NOTEBOOK/CELL) shows it again as it stands; changing
its text in formgrader does too. A written answer's comment also waits for its hand grade:
grade it again in formgrader ('Mark graded' keeps the earlier grade).""",
    "report": r"""examples:
  tconv-grader report --course ~/tconv-2026
  tconv-grader report --course ~/tconv-2026 -o ~/grades-2026-12-07
  tconv-grader report --course ~/tconv-2026 --late-penalty 10%/day   then run feedback again

A late submission (after the due date nbgrader keeps: `nbgrader db assignment add ASSIGNMENT
--duedate "2026-12-01 17:00:00 UTC" --db sqlite:///DIR/gradebook.db`, plus the student's
extension: `tconv-grader extension --help`) is flagged with how late, and its feedback page says
so; no points are taken unless --late-penalty sets a rule. report writes the points taken into
the gradebook too (nbgrader's late_submission_penalty), so `nbgrader export` gives the same
scores as scores.csv.

Upload scores.csv (one row per student) to the LMS once no total is provisional.

A submission autograded earlier whose folder DIR/submitted/<student>/<assignment>/ is gone
since (withdrawn, or collected by mistake; its autograded/ folder deleted too or not) scores 0
with status withdrawn, and is named; to count it again, collect it again and run autograde.

A student with no submission at all (none collected, or every file refused by collect) is in
the reports only once the gradebook knows them: import the class list first, with nbgrader's
own command (a CSV with the columns id, first_name, last_name, email):
  nbgrader db student import --db sqlite:///DIR/gradebook.db roster.csv""",
    "extension": r"""examples:
  tconv-grader extension ex2_scatter --student amy --days 3 --course ~/tconv-2026
  tconv-grader extension ex2_scatter --student amy --student bo --hours 36 --course ~/tconv-2026
  tconv-grader extension ex2_scatter --student amy --remove --course ~/tconv-2026
  tconv-grader extension --course ~/tconv-2026            list every extension granted

The due date itself is nbgrader's: `nbgrader db assignment add ASSIGNMENT --duedate
"2026-12-01 17:00:00 UTC" --db sqlite:///DIR/gradebook.db`. A new extension replaces the
student's earlier one for that assignment.

next: tconv-grader report --course DIR, then tconv-grader feedback --course DIR""",
    "check": r"""examples:
  tconv-grader check exercises/ex1_shapes/ex1_shapes.ipynb    one notebook
  tconv-grader check exercises/*/*.ipynb                      every notebook, and a total
  tconv-grader check exercises/ex8_unet/ex8_unet.ipynb -q     without progress messages

It prints each test cell (PASS or FAIL with what was expected and what came back), errors in
your own cells, written answers still blank and a score estimate. The estimate counts the
visible tests only: hidden tests run at grading and written answers are graded by hand, so your
grade may be lower. Your notebook file is not changed.

Exit status 0 when every visible test passes; 1 otherwise; 2 for bad arguments.""",
    "migrate": r"""examples:
  tconv-grader migrate --from ~/tconv-2026/gradebook.db --to postgresql://grader:PW@db/tconv
  tconv-grader migrate --from ~/tconv-2026/gradebook.db --to postgresql://... --check-only

Then pass the same URL as --db to autograde, feedback and report.""",
}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs: a plain paragraph is wrapped to the terminal; a paragraph with
    a list or examples (a line that is indented or starts with '*') is kept as written."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        # argparse measures the subcommands' names one indent short, so 'autograde' got its
        # help on the next line: measure them where they are shown
        if action.help is not argparse.SUPPRESS and hasattr(action, "_get_subactions"):
            self._indent()
            for sub in action._get_subactions():
                self._action_max_length = max(self._action_max_length, self._current_indent
                                              + len(self._format_action_invocation(sub)))
            self._dedent()

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for para in text.split("\n\n"):
            lines = para.splitlines()
            if any(line.startswith((" ", "*")) for line in lines):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(textwrap.fill(" ".join(line.strip() for line in lines), width,
                                         initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(out)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit status 2 with the usage line, as argparse
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tconv-grader", description=__doc__.split("\n")[0],
                epilog=EPILOG, formatter_class=_HelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for mod in (release, validate, collect, autograde, feedback, report, extension, check):
        mod.add_parser(sub)
    try:  # optional: gradebook migration (SQLite -> PostgreSQL), owned by grader.migrate
        from grader import migrate
    except ImportError:  # pragma: no cover
        migrate = None
    if migrate is not None:
        migrate.add_parser(sub)
    # descriptions come from the modules' docstrings: drop their reST literal quotes
    for name, parser in sub.choices.items():
        parser.formatter_class = _HelpFormatter
        if name in EXAMPLES:
            parser.epilog = EXAMPLES[name]
    for parser in (p, *sub.choices.values()):
        parser.description = _placeholders((parser.description or "").replace("``", ""))
        for action in parser._actions:
            if action.option_strings and action.dest in METAVARS:
                action.metavar = METAVARS[action.dest]
            if action.type in (int, float):
                action.type = _number(action.type, action.metavar)
            action.help = action.help and _placeholders(action.help)
    return p


#: the placeholder of each option's value (by its dest) in every command's --help and usage
#: line, the same in every command, as the README, the examples above and the module
#: docstrings write them: ``--course DIR``, ``--db URL``, ``--jobs N``, ``--timeout SECONDS``;
#: it replaces a module's own metavar, so one table decides
METAVARS = {"course": "DIR", "db": "URL", "solutions": "DIR", "released": "DIR",
            "output": "DIR", "jobs": "N", "timeout": "SECONDS", "cell_timeout": "SECONDS",
            "notebook_timeout": "SECONDS", "memory": "MIB", "regexp": "PATTERN",
            "student": "ID", "days": "N", "hours": "N", "scheduler": "ADDRESS", "src": "URL",
            "dst": "URL"}


#: what a number option's value is, by its placeholder, in argparse's error for a bad one
NUMBER_RULES = {"SECONDS": "a number of seconds", "MIB": "a whole number of MiB",
                "N": "a whole number"}


def _number(kind: type, metavar: str | None):
    """argparse's type for an ``int`` or ``float`` option: a value that is no number (or, for a
    float, not finite: ``nan``, ``inf``) is an error naming the option, the rule and the value
    (``argument --cell-timeout: must be a number of seconds; got 'abc'``), not argparse's
    ``invalid float value``. The option's own checks (above 0, ...) come after."""
    rule = NUMBER_RULES.get(metavar or "", "a whole number" if kind is int else "a number")

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be {rule}; got {text!r}")
        return value
    parse.__name__ = kind.__name__
    return parse


def _placeholders(text: str) -> str:
    """Help text with the course directory called DIR, as in the usage line (the modules'
    docstrings and help strings also write it ``<course>``)."""
    return text.replace("<course>", METAVARS["course"])


#: commands that create the course directory; every other --course must already exist
CREATES_COURSE = {"collect", "release"}


#: the folders a course directory holds, which --course is sometimes given by mistake
COURSE_PARTS = ("submitted", "autograded", "feedback", "reports")


def check_course(args: argparse.Namespace) -> None:
    course = getattr(args, "course", None)
    if course is None:
        return
    path = Path(course).expanduser()
    parent = path.resolve().parent
    if (path.resolve().name in COURSE_PARTS and path.is_dir()
            and ((parent / "gradebook.db").exists() or (parent / "submitted").is_dir())):
        raise UsageError(f"--course must be the course directory, not a folder inside it; got "
                         f"{course} (its {path.resolve().name}/ folder: did you mean --course "
                         f"{parent}?)")
    if args.command in CREATES_COURSE:
        return
    if not path.is_dir():
        raise UsageError(f"--course must be an existing course directory; got {course} "
                         f"({'not a directory' if path.exists() else 'no such directory'}; "
                         f"`tconv-grader collect SUBMISSIONS --course {course}` creates it)")


def main(argv: list[str] | None = None) -> int:
    """The ``tconv-grader`` command; returns its exit status."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # here, so a closed pipe is caught below, not at exit
    except BrokenPipeError:
        # the reader went away (`tconv-grader collect ... | head`): stop quietly, as cat does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _main(argv: list[str] | None) -> int:
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
