"""``tconv-grader`` command line: help everywhere, usage errors (exit 2) naming the argument,
``python -m grader`` equivalence, and the students' ``check``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader.cli import build_parser, main

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "grader" / "solutions"
COMMANDS = ["release", "validate", "collect", "autograde", "feedback", "report", "extension",
            "check", "migrate"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: tconv-grader {command}")
    assert "``" not in out, out      # the docstrings' reST quotes are not shown in a terminal


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_has_examples_that_parse(command, capsys):
    """Every command's --help ends with examples (an instructor's with what comes next; the
    students' check too), and each example is a command line the parser accepts."""
    import re
    import shlex

    from grader.cli import EXAMPLES

    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "\nexamples:\n" in out, out
    text = re.sub(r"\\\n\s*", " ", EXAMPLES[command])
    examples = [re.split(r"\s{2,}", line.strip())[0] for line in text.splitlines()
                if line.startswith("  tconv-grader ")]
    assert len(examples) >= 2, text
    for example in examples:
        assert example.split(" --")[0] in out, example
        args = build_parser().parse_args(shlex.split(example)[1:])
        assert args.command == command, example


def test_help_lists_every_subcommand_and_each_is_tested():
    """A new subcommand must join COMMANDS (its --help is tested) and the usage text."""
    import argparse

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(sub.choices) == sorted(COMMANDS)
    text = parser.format_help()
    assert "``" not in text, text
    for command in COMMANDS:
        assert f"tconv-grader {command} " in text, f"usage text lacks {command}"
    import re

    # each subcommand's summary on its own line, in one column ('autograde' was pushed below)
    lines = re.findall(r"^    ([a-z]+)( +)\S", text, re.M)
    assert sorted(name for name, _ in lines) == sorted(COMMANDS), text
    assert len({len(name + pad) for name, pad in lines}) == 1, text


def _subparsers() -> dict:
    import argparse

    parser = build_parser()
    return next(a for a in parser._actions
                if isinstance(a, argparse._SubParsersAction)).choices


def test_every_course_option_reads_dir_as_in_the_docs():
    """--course is DIR (and --db URL) in every command's usage line and option list, as the
    README, CONTRIBUTING.md, the examples and the summaries write it; no help text calls the
    course directory COURSE or <course>."""
    import re

    from grader.cli import EPILOG, EXAMPLES, METAVARS

    assert (METAVARS["course"], METAVARS["db"]) == ("DIR", "URL")
    with_course = []
    for name, sub in _subparsers().items():
        text = sub.format_help()
        for dest, shown in ((d, METAVARS[d]) for d in ("course", "db")):
            if any(a.dest == dest and a.option_strings for a in sub._actions):
                assert f"--{dest} {shown}" in text.split("\n\n")[0], (name, text)  # usage
                assert re.search(rf"^  --{dest} {shown} ", text, re.M), (name, text)
        with_course += [name] * ("--course DIR" in text)
        assert "COURSE" not in text and "<course>" not in text and "--db DB" not in text, text
    assert sorted(with_course) == ["autograde", "collect", "extension", "feedback", "release",
                                   "report"]
    docs = [(REPO / doc).read_text() for doc in ("README.md", "CONTRIBUTING.md")]
    placeholders = {m for text in [*docs, EPILOG, *EXAMPLES.values()]
                    for m in re.findall(r"--course ([A-Z][A-Z_]*)\b", text)}
    assert placeholders == {"DIR"}, placeholders


def _valued_options():
    """``(command, action)`` for every option of every command that takes a value."""
    return [(name, a) for name, sub in _subparsers().items() for a in sub._actions
            if a.option_strings and a.nargs != 0]


def test_no_option_shows_argparses_default_metavar():
    """No --help shows `--solutions SOLUTIONS`, `--jobs JOBS` or the like: every option that
    takes a value has a placeholder that says what it is (DIR, FILE, N, SECONDS, URL, ...),
    the same for an option of that name in every command."""
    import re

    shown: dict[str, set[str]] = {}
    for name, action in _valued_options():
        assert action.metavar, (name, action.option_strings)
        for opt in action.option_strings:
            assert action.metavar != opt.lstrip("-").replace("-", "_").upper(), (name, opt)
            shown.setdefault(opt, set()).add(action.metavar)
        assert action.metavar != action.dest.upper(), (name, action.dest)
    assert {opt: m for opt, m in shown.items() if len(m) > 1} == {}
    assert shown["--solutions"] == shown["--output"] == shown["--released"] == {"DIR"}
    assert shown["--jobs"] == {"N"} and shown["--timeout"] == {"SECONDS"}
    for name, sub in _subparsers().items():      # and as printed, usage line and options
        text = sub.format_help()
        for opt, metavar in re.findall(r"(--?[a-z][a-z-]*) ([A-Z][A-Z_]*)\b", text):
            assert metavar != opt.lstrip("-").replace("-", "_").upper(), (name, opt, text)


def test_every_time_or_memory_option_gives_its_unit_and_default():
    """A SECONDS or MIB option says its unit and its default in its help."""
    checked = 0
    for name, action in _valued_options():
        unit = {"SECONDS": "seconds", "MIB": "MiB", "N": None}.get(action.metavar, False)
        if unit is False:
            continue
        help_ = action.help % {"default": action.default}     # as --help expands it
        assert "default: " in help_, (name, action.option_strings, help_)
        if unit:
            assert unit in help_, (name, action.option_strings, help_)
        checked += 1
    assert checked >= 8, checked     # validate 2, autograde 4, check 2


def test_every_command_line_in_the_readme_parses():
    """Each `tconv-grader ...` line of the README's command blocks is one the parser accepts,
    with the command it names."""
    import re
    import shlex

    readme = (REPO / "README.md").read_text()
    lines = [ln for block in re.findall(r"^```bash\n(.*?)^```", readme, re.S | re.M)
             for ln in block.splitlines() if ln.startswith("tconv-grader ")]
    assert len(lines) >= 12, lines
    commands = set()
    for line in lines:
        argv = shlex.split(line, comments=True)[1:]
        args = build_parser().parse_args(argv)
        assert args.command == argv[0], line
        commands.add(args.command)
    assert commands == set(COMMANDS), commands


def test_python_m_grader_is_tconv_grader():
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, "-m", "grader", "--help"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == build_parser().format_help()


@pytest.mark.parametrize("argv,needle", [
    (["autograde", "--course", "{tmp}", "--jobs", "0"], "--jobs must be a positive integer; got 0"),
    (["autograde", "--course", "{tmp}", "--timeout", "-1"], "--timeout must be a positive"),
    (["autograde", "ex99", "--course", "{tmp}", "--solutions", str(FIXTURES),
      "--unsafe-no-sandbox"], "ASSIGNMENT must name an assignment"),
    (["collect", "{tmp}/nope", "--course", "{tmp}/c"], "PATH must be an existing folder"),
    (["collect", "{tmp}", "--course", "{tmp}/c", "--regexp", "(?P<x>a)"],
     "--regexp must define the named groups"),
    (["report", "--course", "{tmp}"], "holds no graded submissions"),
    (["feedback", "--course", "{tmp}"], "no autograded submissions"),
    (["report", "--course", "{tmp}/nope"],
     "--course must be an existing course directory; got {tmp}/nope (no such directory"),
    (["autograde", "--course", "{tmp}/nope"], "--course must be an existing course directory"),
    (["feedback", "--course", "{tmp}/nope"], "--course must be an existing course directory"),
    (["feedback", "--course", "{tmp}", "--solutions", "{tmp}/nope"], "--solutions must be an "
     "existing folder of instructor source; got {tmp}/nope (no such directory)"),
    (["autograde", "--course", "{tmp}", "--student", "nobody", "--solutions", str(FIXTURES),
      "--unsafe-no-sandbox"], "--student must name a student of the gradebook (the class "
     "list) or one with a submission under {tmp}/submitted; got 'nobody' (0 known: "),
    (["collect", "{tmp}/bad.zip", "--course", "{tmp}/c"], "PATH must be a folder or a readable "
     ".zip archive; got {tmp}/bad.zip (damaged zip (File is not a zip file): it starts like a "
     "zip but cannot be read, a truncated download?"),
    (["collect", "{tmp}/notes.zip", "--course", "{tmp}/c"], "PATH must be a folder or a .zip "
     "archive; got {tmp}/notes.zip (not a zip)"),
    (["report", "--course", "{tmp}", "--db", "sqlite:///{tmp}/typo.db"],
     "--db must name an existing gradebook; got sqlite:///{tmp}/typo.db (no such file: "
     "{tmp}/typo.db)"),
    (["feedback", "--course", "{tmp}", "--db", "{tmp}/typo.db"],
     "--db must name an existing gradebook; got {tmp}/typo.db (no such file: {tmp}/typo.db)"),
    (["report", "--course", "{tmp}", "--db", "postgresql://u:s3cret@localhost:1/x"],
     "--db cannot connect to postgresql://u:***@localhost:1/x: "),
    (["report", "--course", "{tmp}", "--db", "bogus://x"],
     "--db cannot connect to bogus://x: Can't load plugin: sqlalchemy.dialects:bogus"),
    (["report", "--course", "{tmp}", "--db", "postgresql://u:s3cret@localhost:port/x"],
     "--db cannot connect to postgresql://<redacted>: "),
    (["autograde", "--course", "{tmp}", "--db", "postgresql://u:s3cret@localhost:1/x"],
     "--db cannot connect to postgresql://u:***@localhost:1/x: "),
    (["autograde", "--course", "{tmp}", "--db", "bogus://x"],
     "--db cannot connect to bogus://x: Can't load plugin: sqlalchemy.dialects:bogus"),
    (["check", "{tmp}/missing.ipynb"], "NOTEBOOK must be an existing .ipynb file"),
    (["autograde", "--course", str(REPO / "grader")], "--course must be outside the repository"),
    (["migrate", "--from", "{tmp}/nope.db", "--to", "sqlite:///{tmp}/new.db"],
     "tconv-grader migrate: error: --from must name an existing gradebook; got {tmp}/nope.db "
     "(no such gradebook file)"),
])
def test_usage_errors_exit_2_and_name_the_argument(tmp_path, capsys, argv, needle):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 truncated, not really a zip")
    (tmp_path / "notes.zip").write_text("meeting notes, not a zip")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle.replace("{tmp}", str(tmp_path)) in err, err
    assert err.count("\n") == 1, err                  # one line, no traceback
    assert "s3cret" not in err                        # never the password
    assert not (tmp_path / "nope").exists()  # a missing --course is not created
    assert not (tmp_path / "c").exists()     # a failed collect leaves no empty course behind
    assert not (tmp_path / "typo.db").exists()        # nor an empty gradebook
    assert not (tmp_path / "gradebook.db").exists()


def test_autograde_student_on_the_class_list_with_nothing_submitted(tmp_path, capsys):
    """`autograde --student cy` for a student of the class list with nothing under submitted/
    says so and grades nothing (exit 0, no 'no submissions' warning for the class); a typo is
    a usage error naming the nearest ids, from the class list and submitted/ alike (it was one
    message for both: 'must name a student with a submission', no ids)."""
    from test_grader_report import small_class

    course = small_class(tmp_path / "course")
    (course.submitted / "dee" / "ex").mkdir(parents=True)  # dee: submitted, not on the list
    common = ["--course", str(course.root), "--unsafe-no-sandbox", "-q"]
    assert main(["autograde", "ex1_shapes", "--student", "cy", *common]) == 0
    out, err = capsys.readouterr()
    assert (f"  cy: no submission for ex1_shapes under {course.submitted / 'cy'}; nothing graded "
            f"(collect it first: `tconv-grader collect SUBMISSIONS --course {course.root}`)"
            ) in out, out
    assert "graded 0 submission(s)" in out and "warning: no submissions" not in err, err
    assert not (course.autograded / "cy").exists()
    assert main(["autograde", "--student", "cyy", "--student", "dea", *common]) == 2
    err = capsys.readouterr().err
    assert ("--student must name a student of the gradebook (the class list) or one with a "
            f"submission under {course.submitted}; got 'cyy', 'dea' (nearest to 'cyy': 'cy'; "
            "nearest to 'dea': 'dee'; 4 known: amy, bo, cy, dee)") in err, err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["autograde"])  # --course is required
    assert exc.value.code == 2
    assert "--course" in capsys.readouterr().err


def test_collect_folder_tree_and_zip(tmp_path, capsys):
    import zipfile

    nb = (FIXTURES / "fx_scatter" / "fx_scatter.ipynb").read_text()
    tree = tmp_path / "tree"
    (tree / "amy" / "fx_scatter").mkdir(parents=True)
    (tree / "amy" / "fx_scatter" / "fx_scatter.ipynb").write_text(nb)
    (tree / "bo" / "hw_other").mkdir(parents=True)
    (tree / "bo" / "hw_other" / "hw_other.ipynb").write_text(nb)
    course = tmp_path / "course"
    common = ["--course", str(course), "--solutions", str(FIXTURES), "-q"]
    assert main(["collect", str(tree), *common]) == 0
    out = capsys.readouterr().out
    assert "imported 1 notebook(s) from 1 student(s)" in out
    assert "bo/hw_other/hw_other.ipynb: no assignment named 'hw_other'" in out
    z = tmp_path / "lms.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("cy_fx_scatter_fx_scatter.ipynb", nb)
        zf.writestr("dee_fx_scatter_attempt_2026-01-02-03-04-05_fx_scatter.ipynb", nb)
        zf.writestr("garbage.ipynb", nb)
    assert main(["collect", str(z), *common]) == 0
    out = capsys.readouterr().out
    assert "imported 2 notebook(s)" in out and "garbage.ipynb" in out
    sub = course / "submitted"
    assert sorted(p.relative_to(sub).as_posix() for p in sub.rglob("*.ipynb")) == [
        "amy/fx_scatter/fx_scatter.ipynb", "cy/fx_scatter/fx_scatter.ipynb",
        "dee/fx_scatter/fx_scatter.ipynb"]
    assert (sub / "dee" / "fx_scatter" / "timestamp.txt").read_text().startswith(
        "2026-01-02 03:04:05")


def test_collect_skips_a_damaged_zip_member_and_says_why(tmp_path, capsys):
    import zipfile

    nb = (FIXTURES / "fx_scatter" / "fx_scatter.ipynb").read_text()
    z = tmp_path / "lms.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("amy_fx_scatter_fx_scatter.ipynb", nb)
        zf.writestr("bo_fx_scatter_fx_scatter.ipynb", nb)
    data = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        bo = zf.getinfo("bo_fx_scatter_fx_scatter.ipynb")
    at = bo.header_offset + 30 + len(bo.filename) + 100  # inside bo's stored bytes
    data[at] ^= 0xFF
    z.write_bytes(bytes(data))
    course = tmp_path / "course"
    assert main(["collect", str(z), "--course", str(course), "--solutions", str(FIXTURES),
                 "-q"]) == 0
    out = capsys.readouterr().out
    assert "imported 1 notebook(s) from 1 student(s)" in out
    assert "bo_fx_scatter_fx_scatter.ipynb: damaged in the archive (Bad CRC-32" in out, out
    assert not (course / "submitted" / "bo").exists()


def _children() -> list[str]:
    """Command lines of this process's living child processes (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                out.append((stat.parent / "cmdline").read_text().replace("\0", " "))
        except (OSError, IndexError, ValueError):
            continue
    return out


def _released_fixture(tmp_path):
    from grader.release import release

    release(FIXTURES, tmp_path / "rel", progress=False)
    return tmp_path / "rel" / "fx_scatter" / "fx_scatter.ipynb"


def test_check_reports_visible_tests_and_an_estimate(tmp_path, capfd, monkeypatch):
    import nbformat
    from grader_class import completed

    from grader.release import load_source

    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    stub = _released_fixture(tmp_path)
    good = tmp_path / "good.ipynb"
    nbformat.write(completed(load_source(FIXTURES / "fx_scatter" / "fx_scatter.ipynb"),
                             nbformat.read(stub, as_version=4)), good)
    assert main(["check", str(stub), "-q"]) == 1
    out, err = capfd.readouterr()       # capfd: the kernel's own stderr as well
    assert "FAIL  test_basic" in out
    # the stub is named by the function the test calls, with what to do about it
    assert "NotImplementedError: `scatter_1d` is still the released stub; replace its " in out
    assert "score estimate (visible tests only): 0 / 5" in out
    # the kernel ran over Unix sockets in a temporary folder: no TCP warning, nothing left over,
    # and it was shut down (no kernel process outlives the check)
    assert "without encryption" not in err, err
    assert sorted(p.name for p in stub.parent.iterdir()) == [stub.name]
    kernels = [c for c in _children() if "ipykernel" in c]
    assert kernels == [], kernels
    assert main(["check", str(good)]) == 0          # not quiet: a progress bar over the cells
    out, err = capfd.readouterr()
    code_cells = sum(c.cell_type == "code" for c in nbformat.read(good, as_version=4).cells)
    assert "good.ipynb: 100%" in err and f"{code_cells}/{code_cells}" in err, err
    assert "PASS  test_basic" in out and "PASS  test_more" in out
    assert "score estimate (visible tests only): 5 / 5" in out
    assert "random_stride3" not in out  # hidden tests are not in the student's copy
    # several notebooks at once: a section each and a total; full marks only if every one has
    assert main(["check", str(stub), str(good), "-q"]) == 1
    out = capfd.readouterr().out
    assert f"== {stub.name}\nFAIL  test_basic" in out and "== good.ipynb\nPASS  test_basic" in out
    assert out.rstrip().endswith("== all 2 notebooks: 5 / 10 (visible tests only)"), out


def _error(ename, evalue, frames):
    """A notebook ``error`` output whose traceback has these ``(line, function)`` frames."""
    tb = ["\x1b[0;31m-----\x1b[0m", f"\x1b[0;31m{ename}\x1b[0m  Traceback"]
    tb += [f"Cell \x1b[0;32mIn[{i + 3}], line {line}{f', in {fn}' if fn else ''}\x1b[0m"
           for i, (line, fn) in enumerate(frames)]
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": tb}


@pytest.mark.parametrize("error, message", [
    (_error("NotImplementedError", "", [(2, None), (7, "outer"), (5, "inner")]),
     "NotImplementedError: `inner` is still the released stub; replace its "
     "`raise NotImplementedError()` with your code"),
    (_error("NotImplementedError", "", [(4, None)]),
     "NotImplementedError: a solution cell this test runs is still the released stub; "
     "replace its `raise NotImplementedError()` with your code"),
    (_error("TypeError", "unsupported operand type(s)", [(3, None), (9, "scatter_1d")]),
     "TypeError: unsupported operand type(s) (raised in `scatter_1d`, line 9 of its cell)"),
    (_error("NameError", "name 'np' is not defined", [(1, None)]),
     "NameError: name 'np' is not defined (raised at line 1 of a cell)"),
    (_error("AssertionError", "basic: expected [1. 2.], got [0. 0.]\nhint: h",
            [(1, None), (40, "expect")]),
     "AssertionError: basic: expected [1. 2.], got [0. 0.]\nhint: h"),
    (_error("NotImplementedError", "only stride 1 here", [(6, "scatter_1d")]),
     "NotImplementedError: only stride 1 here (raised in `scatter_1d`, line 6 of its cell)"),
])
def test_check_explains_where_a_test_failed(error, message):
    from grader.check import explain

    assert explain(error) == message


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:pw@host:5432/db", "postgresql://u:***@host:5432/db"),
    # a raw '@' in the password (it should be %40): hidden whole, not up to its first '@'
    ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
])
def test_redact_hides_the_whole_password(url, shown):
    from grader.dbretry import redact

    assert redact(url) == shown


def test_autograde_with_nothing_collected_says_so(tmp_path, capsys):
    assert main(["autograde", "--course", str(tmp_path), "--solutions", str(FIXTURES),
                 "--unsafe-no-sandbox", "-q"]) == 0
    err = capsys.readouterr().err
    assert f"warning: no submissions under {tmp_path / 'submitted'}; collect them first" in err


def test_a_closed_pipe_stops_quietly() -> None:
    """`tconv-grader collect ... | head`: when the reader goes away, the command stops with
    the shell's SIGPIPE status and no traceback (a long listing used to end in BrokenPipeError)."""
    code = ("import sys\nfrom grader import cli\n"
            "def long_listing(args):\n    for i in range(20000):\n        print('line', i)\n"
            "    sys.exit(0)\n"
            "cli.check_course = long_listing\n"
            "sys.exit(cli.main(['report', '--course', 'nowhere']))\n")
    p = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.read(100)      # the reader takes a little, then goes away
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def _autograde_summary_of(flagged: dict, course, capsys, monkeypatch) -> str:
    """What ``autograde`` prints for a batch that graded ``flagged``'s submissions with those
    flags (the grading itself stubbed out)."""
    from grader import autograde

    monkeypatch.setattr(autograde, "autograde", lambda *a, **k: autograde.Summary(
        graded=sorted(flagged), flagged=flagged))
    assert main(["autograde", "--course", str(course), "--solutions", str(FIXTURES),
                 "--unsafe-no-sandbox", "-q"]) == 0
    return capsys.readouterr().out


def test_autograde_says_how_to_grade_a_notebook_under_another_name(tmp_path, capsys,
                                                                  monkeypatch):
    from grader import autograde

    flagged = {("wes", "ex1"): [f"ex1: {autograde.WRONG_NAME}found Ex1 FINAL.ipynb, expected "
                                "ex1.ipynb (scored 0)"], ("amy", "ex1"): ["ex1: x"]}
    out = _autograde_summary_of(flagged, tmp_path, capsys, monkeypatch)
    assert ("next: 1 submission(s) scored 0 for a notebook under another name (wes/ex1): if it "
            "is the assignment's notebook, rename it to the expected name in "
            f"{tmp_path / 'submitted'}/<student>/<assignment>/ and run autograde again") in out


def test_autograde_prints_the_first_flags_and_points_at_report_for_all(tmp_path, capsys,
                                                                      monkeypatch):
    import grader.report

    flagged = {(s, "ex1"): [f"ex1: odd {s}"] for s in ("amy", "bo", "cy")}
    monkeypatch.setattr(grader.report, "SHOWN", 2)
    out = _autograde_summary_of(flagged, tmp_path, capsys, monkeypatch)
    assert ("  flag amy/ex1: ex1: odd amy\n  flag bo/ex1: ex1: odd bo\n  ... and 1 more flag(s): "
            f"`tconv-grader report --course {tmp_path}` lists every one in flags.txt\n") in out
    assert "odd cy" not in out


def test_autograde_help_says_what_is_flagged_as_grading_does(tmp_path):
    """A syntax error scores what it earns and reaches the page, but is no flag: the help said
    every broken submission, a syntax error first, 'is flagged', and flags.txt had none."""
    import json
    import re

    from gradingbatch import ASSIGNMENT, SOLUTIONS, make_course

    from grader.autograde import autograde
    from grader.gradebook import Course

    make_course(tmp_path, ["syntax"])
    course = Course.open(tmp_path, None, SOLUTIONS)
    summary = autograde(course, jobs=1, sandbox=False, progress=False)
    rec = json.loads(course.results_path("st000_syntax", ASSIGNMENT).read_text())
    assert rec["flags"] == [] and summary.flagged == {}
    assert any("SyntaxError" in e for e in rec["notebooks"][ASSIGNMENT]["code_errors"])
    text = " ".join(_subparsers()["autograde"].format_help().split())
    flagged = [s for s in re.split(r"(?<=\.) ", text) if "flag" in s.lower()]
    claims = [s for s in flagged if "syntax error" in s and "not a flag" not in s]
    assert claims == [], claims
    assert "An error in the student's own code (a syntax error) is not a flag" in text


def test_the_readme_instructor_commands_start_in_the_environment_make_creates():
    """README's instructor commands (tconv-grader, and nbgrader's class list import, which runs
    `alembic`) are installed in .venv only: the section says to activate it first (it did not,
    and `nbgrader db student import` failed with FileNotFoundError: 'alembic')."""
    import re

    readme = (REPO / "README.md").read_text()
    section = readme.split("## For instructors", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```bash\n(.*?)^```", section, re.S | re.M)
    assert block, "the instructor section has no bash block"
    first = block.group(1).splitlines()[0]
    assert first.split("#")[0].split() == ["source", ".venv/bin/activate"], first
    assert "nbgrader db student import" in section and "`alembic`" in section
    bin_dir = Path(sys.executable).parent   # the environment the tests run in: make's .venv
    for tool in ("tconv-grader", "nbgrader", "alembic"):
        assert (bin_dir / tool).exists(), tool
    assert (bin_dir / "activate").exists()


def test_no_help_shows_a_path_of_this_machine():
    """--solutions (release, validate, collect, autograde), --output (release) and --released
    (validate) printed their default as this checkout's absolute path (`default:
    /home/.../solutions`), which no other machine has; the help says the repository's folder."""
    import os

    for name, sub in _subparsers().items():
        text = " ".join(sub.format_help().split())
        assert str(REPO) not in text and os.path.expanduser("~") + os.sep not in text, (name,
                                                                                      text)
        for opt, folder in (("--solutions", "solutions/"), ("--output", "exercises/"),
                            ("--released", "exercises/")):
            if any(opt in a.option_strings and a.default for a in sub._actions):
                assert f"the repository's {folder}" in text, (name, opt, text)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_solution_that_fails_its_own_tests_is_one_error_line(tmp_path, capsys, jobs):
    """The instructor's solution fails its own tests (its setup cell raises). With --jobs 2 the
    batch stopped with 'error: the solution of ... fails its own tests', then also warned 'no
    submissions under DIR/submitted; collect them first' (there was one); with --jobs 1 (no
    pool: the solution runs in the grader) it was a RuntimeError traceback. Now both: the error
    line, exit 1, no such warning, nothing graded."""
    import shutil

    import nbformat
    from grader_class import sandbox_args

    solutions = tmp_path / "solutions"
    shutil.copytree(Path(__file__).parent / "fixtures" / "grader" / "solutions", solutions)
    path = solutions / "fx_scatter" / "fx_scatter.ipynb"
    nb = nbformat.read(path, as_version=4)
    (tmp_path / "course" / "submitted" / "amy" / "fx_scatter").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "course" / "submitted" / "amy" / "fx_scatter" / path.name)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "setup":
            cell.source = "raise ValueError('broken setup')"
    nbformat.write(nb, path)
    assert main(["autograde", "--course", str(tmp_path / "course"), "--solutions",
                 str(solutions), "-j", jobs, "-q", *sandbox_args()]) == 1
    out, err = capsys.readouterr()
    assert "error: the solution of fx_scatter/fx_scatter.ipynb fails its own tests: " in err, err
    assert "no submissions" not in err and "graded 0 submission(s)" in out, (out, err)


@pytest.mark.parametrize("command", ["report", "feedback", "autograde", "collect"])
@pytest.mark.parametrize("part", ["submitted", "reports"])
def test_a_folder_inside_the_course_given_as_course_names_the_course(tmp_path, capsys, command,
                                                                      part):
    """`--course DIR/submitted` (a tab completion too far): report said the course held no
    gradebook and suggested running autograde on that folder; collect would have filed the
    class under DIR/submitted/submitted/. Now every command names the course directory."""
    course = tmp_path / "course"
    (course / "submitted").mkdir(parents=True)
    (course / "reports").mkdir()
    (course / "gradebook.db").write_bytes(b"")
    argv = {"collect": ["collect", str(tmp_path)]}.get(command, [command])
    assert main([*argv, "--course", str(course / part), "-q"]) == 2
    err = capsys.readouterr().err
    assert (f"--course must be the course directory, not a folder inside it; got "
            f"{course / part} (its {part}/ folder: did you mean --course {course}?)") in err, err
    assert sorted(p.name for p in (course / part).iterdir()) == []


def test_a_three_slash_sqlite_url_says_it_is_relative(tmp_path, capsys, monkeypatch):
    """`--db sqlite:///tmp/x.db` is relative to the current folder (SQLAlchemy's rule): the
    error named the resolved file only; now it says why and gives the four-slash URL."""
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--course", str(tmp_path), "--db", "sqlite:///srv/gb.db"]) == 2
    err = capsys.readouterr().err
    assert (f"--db must name an existing gradebook; got sqlite:///srv/gb.db (no such file: "
            f"{tmp_path / 'srv' / 'gb.db'}; three slashes make the path relative to the current "
            "folder, an absolute one takes four: sqlite:////srv/gb.db)") in err, err
