"""A private PostgreSQL cluster for the tests: ``initdb`` in a temporary directory, removed afterwards.

Theory of operation
-------------------
:class:`PostgresCluster` runs Debian's PostgreSQL 15 binaries (``/usr/lib/postgresql/15/bin``,
or ``$PYIPSEC_PG_BIN``) without touching the system cluster: ``initdb`` writes a new data
directory under a fresh temporary directory (trust authentication, no fsync, ``--no-sync``),
and ``pg_ctl start`` serves it on a Unix socket in that directory only (``listen_addresses``
empty, unless ``tcp_host`` asks for a TCP address too, e.g. a namespace address for daemons in
other network namespaces). PostgreSQL refuses to run as root, so as root the directory is
handed to the ``postgres`` user and the binaries run through ``runuser``; as any other user
they run as that user. The start waits for the server (``pg_ctl -w``) and takes well under a
second or two with ``fsync=off``.

:meth:`stop` and :meth:`start` stop and restart the same cluster (the outage tests);
:meth:`remove` (also ``__exit__``) stops it immediately and deletes the directory. Each
cluster has its own directory and socket, so clusters of parallel test workers never meet.
:attr:`dsn` is a libpq URI for the ``postgres`` database as the superuser ``postgres``;
:meth:`create_database` makes a further database (one per test) and returns its URI.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import pytest

__all__ = ["PG_BIN", "PostgresCluster", "postgres_available", "require_postgres"]

PG_BIN = Path(os.environ.get("PYIPSEC_PG_BIN", "/usr/lib/postgresql/15/bin"))
_PORT = 5432  # each cluster has its own socket directory, so the port can be the same


def postgres_available() -> str | None:
    """None if a cluster can be started here, else why not."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL binaries not found in {PG_BIN} (Debian package postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, but there is no postgres user to run the cluster as"
    return None


class PostgresCluster:
    def __init__(self, *, tcp_host: str | None = None, port: int = _PORT) -> None:
        self.tcp_host = tcp_host
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="pyipsec-pg-"))
        self.data = self.dir / "data"
        self._as_root = os.geteuid() == 0
        self.running = False
        if self._as_root:
            entry = pwd.getpwnam("postgres")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self.dir.chmod(0o755)  # tests running as root connect through the socket in it

    # -- commands -------------------------------------------------------------------------------

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.dir)

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            log = self.dir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} failed ({result.returncode}): {result.stderr.strip()}\n{tail}")

    def init(self) -> PostgresCluster:
        result = self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        self._check(result, "initdb")
        return self

    def start(self) -> None:
        listen = self.tcp_host or ""
        options = (
            f"-F -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            f" -k {self.dir} -p {self.port} -c listen_addresses='{listen}'"
            " -c max_connections=50 -c shared_buffers=16MB"
        )
        result = self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )
        self._check(result, "pg_ctl start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        if not self.running:
            return
        result = self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        self._check(result, "pg_ctl stop")
        self.running = False

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        try:
            self.init()
            self.start()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()

    # -- addresses ------------------------------------------------------------------------------

    def uri(self, database: str = "postgres") -> str:
        """A libpq URI for ``database`` over the Unix socket."""
        return f"postgresql://postgres@/{database}?host={quote(str(self.dir), safe='')}&port={self.port}"

    @property
    def dsn(self) -> str:
        return self.uri()

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = self._run(
            str(PG_BIN / "psql"),
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.dir),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-c",
            sql,
        )
        self._check(result, f"psql {sql!r}")
        return result.stdout

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.uri(name)


def require_postgres() -> None:
    """Skip the calling test without PostgreSQL, except under ``CI=true``, where it fails."""
    problem = postgres_available()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL prerequisite missing under CI=true: {problem}", pytrace=False)
    pytest.skip(problem)
