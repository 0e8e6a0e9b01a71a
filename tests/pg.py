"""A throwaway PostgreSQL server for the gradebook tests (Debian's ``postgresql`` package).

``scripts/sysdeps.sh`` installs the package; this module runs its ``initdb`` and ``pg_ctl``
(``/usr/lib/postgresql/<version>/bin``) in a temporary directory, as a non-root user (PostgreSQL
refuses to run as root: when the tests run as root a system user ``tconvpg`` is created with
``useradd`` and the server runs under ``runuser``), listening on 127.0.0.1 only, on a free port,
with no Unix socket, trust authentication and durability switched off (it is thrown away).

Use the ``postgres`` fixture (import it into a test module)::

    from pg import postgres_fixture  # noqa: F401

    def test_x(postgres):
        url = postgres.create_database("course1")   # postgresql://postgres@127.0.0.1:PORT/course1

Without the binaries the fixture skips, except under ``CI=true`` where sysdeps.sh must have
installed them, so there it fails.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from skips import skip_or_fail

PG_USER = "tconvpg"


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` that has initdb, pg_ctl and postgres."""
    def version(p: str) -> float:
        try:
            return float(Path(p).parent.name)
        except ValueError:
            return 0.0

    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True):
        bindir = Path(initdb).parent
        if (bindir / "pg_ctl").exists() and (bindir / "postgres").exists():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sbin(tool: str) -> str:
    return shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin") or tool


def _ensure_user() -> None:
    try:
        subprocess.run(["id", "-u", PG_USER], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        subprocess.run([_sbin("useradd"), "--system", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", PG_USER], check=True, capture_output=True)


class PostgresServer:
    """One running ``postgres`` process; :meth:`stop` shuts it down and removes its files."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        if self.bindir is None:
            raise FileNotFoundError("no /usr/lib/postgresql/*/bin/initdb "
                                    "(apt-get install postgresql)")
        self.as_root = os.geteuid() == 0
        if self.as_root:
            _ensure_user()
        self.tmp = Path(tempfile.mkdtemp(prefix="tconv-pg-"))
        self.datadir = self.tmp / "data"
        self.log = self.tmp / "server.log"
        if self.as_root:
            shutil.chown(self.tmp, PG_USER, PG_USER)
        self.port = 0
        self._running = False
        try:
            self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust",
                      "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
            self._start()
        except BaseException:
            self.stop()
            raise

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / tool), *args]
        if self.as_root:
            cmd = [_sbin("runuser"), "-u", PG_USER, "--", *cmd]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "LC_ALL": "C",
               "HOME": str(self.tmp)}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=self.tmp,
                              timeout=60)
        if proc.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({proc.returncode}): "
                               f"{proc.stdout}{proc.stderr}{log}")
        return proc

    def _start(self) -> None:
        last: Exception | None = None
        for _ in range(3):  # the free port may be taken between probing and binding: retry
            self.port = _free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                    "-c max_connections=200")
            try:
                self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.log), "-w", "-t", "30",
                          "-o", opts, "start")
                self._running = True
                return
            except RuntimeError as exc:
                last = exc
                time.sleep(0.2)
        raise RuntimeError(f"could not start PostgreSQL: {last}")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create an empty database ``name``; returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self._running:
            try:
                self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
            finally:
                self._running = False
        shutil.rmtree(self.tmp, ignore_errors=True)


def server_or_skip() -> PostgresServer:
    """Start a server, or skip the test (fail under CI) when PostgreSQL is not installed."""
    if find_bindir() is None:
        skip_or_fail("PostgreSQL not installed (scripts/sysdeps.sh installs Debian's postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        skip_or_fail("psycopg not installed (pip install -e '.[cluster]')")
    return PostgresServer()


@pytest.fixture(scope="session", name="postgres")
def postgres_fixture():
    server = server_or_skip()
    try:
        yield server
    finally:
        server.stop()
