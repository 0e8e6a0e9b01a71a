"""The repository as a newcomer meets it: what `make` and the tests write stays out of
`git status`, `make lint` (and so `make test`) lints every Python file of the project,
`make test-fast` runs its set on two workers, a failed `python -m venv` leaves no half-made
`.venv`, and every script in scripts/ answers `--help` without doing anything."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# not linted: generated (exercises/), built, or test data (tests/fixtures/: notebooks shaped
# like student submissions and nbgrader sources)
SKIP_DIRS = {".venv", ".git", "_build", ".jupyter_cache", "exercises", "test-artifacts",
             "node_modules", "fixtures"}


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.skip(f"needs {tool} on PATH")
    return path


def _make_env() -> dict[str, str]:
    """This environment without what a calling make passes down: run as `make test-fast
    PYTEST_ARGS=...`, make exports PYTEST_ARGS (and MAKEFLAGS) to every make these tests start."""
    drop = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "PYTEST_ARGS", "BENCH_ARGS",
            "PYTHON", "VENV"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _make_dry_run(*args: str) -> list[str]:
    """The commands `make -n ARGS` would run (printed, not run)."""
    done = subprocess.run([_need("make"), "-n", "--no-print-directory", "-C", str(ROOT), *args],
                          capture_output=True, text=True, timeout=60, env=_make_env())
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


# What `make book`, `make test`, an editor and a symlinked virtualenv leave in a checkout.
GENERATED = [".venv/bin/python", ".stamps/install", "_build/html/index.html",
             ".jupyter_cache/global.db", "book/_static/mathjax/VERSION",
             "tconv.egg-info/PKG-INFO", "tconv_lib/__pycache__/transpose.cpython-311.pyc",
             ".pytest_cache/v/cache/nodeids", ".hypothesis/examples/x", ".ruff_cache/CACHEDIR.TAG",
             "test-artifacts/screenshots/a.png",
             # `make bench-gpu` (scripts/gpu_check.sh) beside the JSON and PNG it records
             "benchmarks/results/gpu-facts.txt", "benchmarks/results/gpu-tests.log",
             "exercises/ex1_shapes/.ipynb_checkpoints/ex1_shapes-checkpoint.ipynb"]


@pytest.mark.parametrize("venv", ["folder", "symlink"])
def test_what_make_and_the_tests_write_stays_out_of_git_status(tmp_path: Path, venv: str) -> None:
    """A contributor may point `.venv` at an existing environment (a symlink): git must not
    offer it, or any build output, for commit."""
    git = _need("git")
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run([git, "init", "-q", str(repo)], check=True)
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    for rel in GENERATED:
        if venv == "symlink" and rel.startswith(".venv/"):
            continue
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("x")
    if venv == "symlink":
        (tmp_path / "elsewhere").mkdir()
        (repo / ".venv").symlink_to(tmp_path / "elsewhere")
    status = subprocess.run([git, "status", "--porcelain", "--untracked-files=all"], cwd=repo,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    assert status == ["?? .gitignore"], f".gitignore lets these into `git status`: {status}"


def test_no_tracked_file_is_ignored() -> None:
    """A build leftover committed by mistake (`_build/`, `tconv.egg-info/`, `test-artifacts/`)."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    # safe.directory: a CI checkout may belong to another user than the one running the tests
    done = subprocess.run([_need("git"), "-c", "safe.directory=*", "ls-files", "--cached",
                           "--ignored", "--exclude-standard"], cwd=ROOT, capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"git cannot list this checkout: {done.stderr.strip()}")
    assert not done.stdout.split(), f"tracked files that .gitignore ignores: {done.stdout.split()}"


def _project_sources() -> set[str]:
    """Every Python file and notebook of the project, but generated files and test data."""
    found = set()
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")
                   and d != "__pycache__"]
        for name in files:
            if name.endswith((".py", ".ipynb")):
                found.add(str((Path(folder) / name).relative_to(ROOT)))
    return found


def _ruff_commands(target: str) -> list[str]:
    return [ln for ln in _make_dry_run(target) if " -m ruff check " in ln]


def test_make_lint_covers_every_python_file_and_make_test_runs_it() -> None:
    lint = _ruff_commands("lint")
    assert len(lint) == 1, lint
    assert _ruff_commands("test") == lint, "`make test` must lint exactly as `make lint` does"
    paths = lint[0].split(" -m ruff check ", 1)[1].split()
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--show-files", *paths],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    checked = {str(Path(ln.strip()).resolve().relative_to(ROOT)) for ln in done.stdout.splitlines()
               if ln.strip().startswith("/")}
    sources = _project_sources()
    assert len(sources) > 50, sources
    missed = sorted(sources - checked)
    assert not missed, f"`make lint` does not lint {missed}"


def _pytest_command(*args: str) -> str:
    lines = [ln for ln in _make_dry_run("test-fast", *args) if " -m pytest " in ln]
    assert len(lines) == 1, lines
    return lines[0]


def test_make_test_fast_runs_the_whole_set_on_two_workers_and_one_file_in_one_process() -> None:
    whole = _pytest_command()
    assert '-m "not browser and not slow"' in whole and "-n 2 --dist loadgroup" in whole, whole
    one = _pytest_command("PYTEST_ARGS=tests/test_shapes.py")
    assert one.endswith("tests/test_shapes.py") and " -n " not in one, one


def test_a_failed_venv_leaves_no_half_made_venv(tmp_path: Path) -> None:
    """Debian's python3 without python3-venv creates `.venv/bin/python`, then fails: the next
    `make` took that for a working environment and failed later, on pip, without the reason."""
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\n"
                    '[ "$1" = -c ] && [ "$2" = "import ensurepip" ] && exit 0\n'
                    'if [ "$1" = -m ] && [ "$2" = venv ]; then\n'
                    '  mkdir -p "$3/bin" && touch "$3/bin/python"\n'
                    '  echo "The virtual environment was not created successfully because'
                    ' ensurepip is not available." >&2; exit 1\n'
                    "fi\n"
                    f'exec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    done = subprocess.run([_need("make"), "--no-print-directory", "-C", str(ROOT),
                           f"{venv}/bin/python", f"PYTHON={fake}", f"VENV={venv}"],
                          capture_output=True, text=True, timeout=120, env=_make_env())
    assert done.returncode != 0, done.stdout
    assert not venv.exists(), "a failed `python -m venv` left a half-made virtualenv behind"
    assert "python3-venv" in done.stderr, done.stderr


SCRIPTS = sorted(p.name for p in (ROOT / "scripts").glob("*.sh"))


def test_scripts_are_listed() -> None:
    assert {"build_book.sh", "gpu_check.sh", "sysdeps.sh"} <= set(SCRIPTS), SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help_and_names_a_bad_argument(script: str, tmp_path: Path) -> None:
    """`--help` prints the usage and does nothing else (no build, no benchmark, no install);
    an unknown option exits 2 naming it."""
    bash = _need("bash")
    env = {**os.environ, "PYTHON": "/bin/false", "PATH": os.environ.get("PATH", "")}
    before = sorted(p.name for p in tmp_path.iterdir())
    done = subprocess.run([bash, str(ROOT / "scripts" / script), "--help"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, (script, done.stdout, done.stderr)
    assert re.search(rf"usage: (bash )?(scripts/)?{re.escape(script)}", done.stdout), done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    bad = subprocess.run([bash, str(ROOT / "scripts" / script), "--bogus"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2, (script, bad.stdout, bad.stderr)
    assert "--bogus" in bad.stderr and "usage" in bad.stderr, bad.stderr


def test_ci_run_installs_make_first_then_runs_exactly_make_test(tmp_path: Path) -> None:
    """On a bare image (no make): apt-get update, apt-get install make, then `make test` and
    nothing else (README: CI runs `make test`). apt-get, id and make are stand-ins here."""
    bash, chmod = _need("bash"), _need("chmod")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "log"
    for tool in ("dirname", "cat"):
        (bin_ / tool).symlink_to(_need(tool))
    (bin_ / "python3").symlink_to(sys.executable)
    (bin_ / "bash").symlink_to(bash)
    stand_ins = {
        "id": "echo 0\n",
        "apt-get": (f'echo "apt-get $*" >> {log}\n'
                    'case "$*" in *install*make*)\n'
                    f"  printf '#!/bin/sh\\necho \"make $*\" >> {log}\\n' > {bin_}/make\n"
                    f"  {chmod} +x {bin_}/make ;;\nesac\n"),
    }
    for name, body in stand_ins.items():
        (bin_ / name).write_text("#!/bin/sh\n" + body)
        (bin_ / name).chmod(0o755)
    done = subprocess.run([bash, str(ROOT / ".ci" / "run")], env={"PATH": str(bin_)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert log.read_text().splitlines() == [
        "apt-get update -qq", "apt-get install -y -qq --no-install-recommends make",
        "make test"], log.read_text()


@pytest.mark.parametrize("target", ["validate", "bench-grader"])
def test_grading_targets_install_only_the_sandbox(target: str) -> None:
    """`make validate` needs bubblewrap, not Chromium, npm and a PostgreSQL server."""
    sysdeps = [ln for ln in _make_dry_run(target) if "sysdeps.sh" in ln and "venv" not in ln]
    assert sysdeps == ["bash scripts/sysdeps.sh sandbox"], sysdeps


def test_every_module_starts_with_a_docstring() -> None:
    """CONTRIBUTING.md: 'Every module starts with a docstring saying what it is for'."""
    import ast

    modules = sorted(p for p in _project_sources() if p.endswith(".py"))
    assert len(modules) > 40, modules
    bare = [p for p in modules if not ast.get_docstring(ast.parse((ROOT / p).read_text()))]
    assert not bare, f"modules without a docstring saying what they are for: {bare}"


def test_make_bench_refuses_an_out_that_both_runs_would_write() -> None:
    """`make bench` runs the torch and the NumPy benchmark with the same BENCH_ARGS: with
    --out FILE the NumPy run overwrote the torch run's results."""
    done = subprocess.run([_need("make"), "-n", "--no-print-directory", "-C", str(ROOT), "bench",
                           "BENCH_ARGS=--quick --out /tmp/tconv-x.json"], capture_output=True,
                          text=True, timeout=60, env=_make_env())
    assert done.returncode != 0 and "tconv_lib.bench" not in done.stdout, done.stdout
    assert "BENCH_ARGS" in done.stderr and "--out /tmp/tconv-x.json" in done.stderr, done.stderr
    assert any("-m tconv_lib.bench --backend numpy --quick" in ln
               for ln in _make_dry_run("bench", "BENCH_ARGS=--quick"))


@pytest.mark.parametrize("uid", ["0", "1000"])
def test_sysdeps_updates_apt_first_as_root_and_names_the_package_otherwise(
        tmp_path: Path, uid: str) -> None:
    """scripts/sysdeps.sh venv with a python3 that lacks ensurepip: as root, `apt-get update`
    then `apt-get install python3-venv`; as another user without sudo, the line to run."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "log"
    for name, body in {"id": f"echo {uid}\n", "apt-get": f'echo "apt-get $*" >> {log}\n',
                       "python3": '[ "$2" = "import ensurepip" ] && exit 1; exit 0\n'}.items():
        (bin_ / name).write_text("#!/bin/sh\n" + body)
        (bin_ / name).chmod(0o755)
    done = subprocess.run([_need("bash"), str(ROOT / "scripts" / "sysdeps.sh"), "venv"],
                          env={"PATH": str(bin_)}, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    if uid == "0":
        assert log.read_text().splitlines() == [
            "apt-get update -qq", "apt-get install -y -qq --no-install-recommends python3-venv"]
    else:
        assert not log.exists()
        assert "sudo apt-get install python3-venv" in done.stderr, done.stderr
        assert "python3-venv -> make cannot create .venv" in done.stderr, done.stderr
