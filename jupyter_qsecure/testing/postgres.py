"""Run a REAL, throwaway PostgreSQL cluster for tests and benchmarks.

:func:`throwaway_postgres` runs ``initdb`` and ``pg_ctl start -w`` (the real
server binaries: Debian's ``postgresql`` package installs them under
``/usr/lib/postgresql/VERSION/bin``) on a free 127.0.0.1 port, and stops and
deletes the cluster on exit::

    with throwaway_postgres() as pg:
        url = pg.create_database("ledger_1")   # postgresql://qsecure:PW@127.0.0.1:PORT/ledger_1
        ...

The superuser ``qsecure`` gets a password generated at run time (given to
``initdb --pwfile``, never on a command line); every connection, local or TCP,
authenticates with scram-sha-256. The Unix socket lives in the data directory,
so nothing touches ``/var/run/postgresql``; ``fsync`` stays on, so durability
behaves as in production. Readiness is ``pg_ctl start -w`` (which waits until the
server accepts connections), never a sleep.

PostgreSQL refuses to run as root. When the caller is root (CI containers), the
cluster lives in a fresh ``mkdtemp`` directory under the system temp folder
(not under pytest's 0700 temp dirs, which the server user could not enter),
owned by the unprivileged ``postgres`` OS user (created by the Debian package),
and ``initdb``/``pg_ctl`` run through ``runuser -u postgres --``.

``QSECURE_PG_BINDIR`` names a folder holding ``initdb`` and ``pg_ctl`` to use
instead of the ones found on ``PATH`` or under ``/usr/lib/postgresql``.

This module does not import pytest; the fixtures are in
:mod:`jupyter_qsecure.testing.pytest_plugin_postgres`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ports import LOOPBACK, free_loopback_port

__all__ = [
    "PostgresServer",
    "PostgresStartError",
    "PostgresUnavailable",
    "find_postgres_bindir",
    "throwaway_postgres",
]

BINDIR_ENV = "QSECURE_PG_BINDIR"
SUPERUSER = "qsecure"
SERVICE_USER = "postgres"
STARTUP_TIMEOUT = 60
_START_ATTEMPTS = 5
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (tests that need them are skipped)."""


class PostgresStartError(RuntimeError):
    """The cluster could not be created or started; the message holds the log tail."""


def _version_key(path: str) -> tuple[int, ...]:
    name = Path(path).parent.name  # /usr/lib/postgresql/<version>/bin
    return tuple(int(p) for p in re.findall(r"\d+", name)) or (0,)


def find_postgres_bindir() -> Path:
    """Folder holding ``initdb`` and ``pg_ctl``, or raise :class:`PostgresUnavailable`."""
    override = os.environ.get(BINDIR_ENV)
    candidates: list[Path] = []
    if override:
        candidates.append(Path(override))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        candidates.append(Path(found))
    for folder in candidates:
        if all(os.access(folder / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    if override:
        raise PostgresUnavailable(f"{BINDIR_ENV}={override} holds no initdb/pg_ctl/postgres")
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or under "
        "/usr/lib/postgresql/*/bin; install the Debian package `postgresql` (.ci/setup does)"
    )


@dataclass
class PostgresServer:
    """A running throwaway cluster; :attr:`url` points at its default database."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    dbname: str
    datadir: Path
    bindir: Path
    _run_as: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``postgresql://user:password@127.0.0.1:port/dbname`` (holds the password)."""
        return self.url_for(self.dbname)

    def url_for(self, dbname: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str | None = None, **kwargs: Any) -> Any:
        """A psycopg connection (autocommit) to ``dbname`` (default: :attr:`dbname`)."""
        import psycopg

        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(self.url_for(dbname or self.dbname), **kwargs)

    def create_database(self, name: str) -> str:
        """Create an empty database ``name``; returns its URL."""
        from psycopg import sql

        if not _NAME.match(name):
            raise ValueError(f"database name {name!r}: use letters, digits and _ only")
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting anyone still connected to it."""
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def log_tail(self, lines: int = 40) -> str:
        log = self.datadir.parent / "postgres.log"
        try:
            text = log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:]).replace(self.password, "***")


def _service_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise PostgresStartError(
            f"running as root, and there is no {SERVICE_USER!r} OS user to run PostgreSQL as "
            "(PostgreSQL refuses to run as root); install the Debian package `postgresql`, "
            "which creates it, or run the tests as an unprivileged user"
        ) from None


def _temp_parent(user: pwd.struct_passwd | None) -> str | None:
    """A temp folder the service user can enter (the system one; /tmp if TMPDIR is private)."""
    if user is None:
        return None
    chosen = Path(tempfile.gettempdir()).resolve()
    for folder in (chosen, *chosen.parents):
        if not folder.stat().st_mode & stat.S_IXOTH:
            return "/tmp"  # noqa: S108 - world-traversable on every Debian system
    return str(chosen)


class _Cluster:
    def __init__(self, bindir: Path, base: Path, user: pwd.struct_passwd | None) -> None:
        self.bindir = bindir
        self.base = base
        self.datadir = base / "data"
        self.logfile = base / "postgres.log"
        self.user = user
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C", TZ="UTC")
        self.env = env

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user.pw_name, "--", *command]
        result = subprocess.run(
            command,
            cwd=self.base,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT + 30,
            check=False,
        )
        if check and result.returncode != 0:
            raise PostgresStartError(
                f"{tool} {args[0] if args else ''} failed (exit {result.returncode}):\n"
                f"{(result.stdout + result.stderr).strip()[-2000:]}\n{self.log_tail()}"
            )
        return result

    def log_tail(self) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return ""

    def own(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)


@contextlib.contextmanager
def throwaway_postgres(*, dbname: str = "postgres") -> Iterator[PostgresServer]:
    """Start a fresh PostgreSQL cluster on a free loopback port; stop and delete it on exit."""
    bindir = find_postgres_bindir()
    user = _service_user()
    base = Path(tempfile.mkdtemp(prefix="qsecure-pg-", dir=_temp_parent(user)))
    cluster = _Cluster(bindir, base, user)
    password = secrets.token_urlsafe(24)
    started = False
    try:
        cluster.own(base)
        pwfile = base / "pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        cluster.own(pwfile)
        try:
            cluster.run(
                "initdb",
                "-D",
                str(cluster.datadir),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",  # only initdb's own final flush; the server keeps fsync on
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with open(cluster.datadir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                "\n# jupyter-qsecure throwaway cluster\n"
                f"listen_addresses = '{LOOPBACK}'\n"
                f"unix_socket_directories = '{cluster.datadir}'\n"
                "fsync = on\n"
                "synchronous_commit = on\n"
                "max_connections = 200\n"
            )
        port = 0
        for _attempt in range(_START_ATTEMPTS):
            port = free_loopback_port()
            result = cluster.run(
                "pg_ctl",
                "start",
                "-D",
                str(cluster.datadir),
                "-l",
                str(cluster.logfile),
                "-w",
                "-t",
                str(STARTUP_TIMEOUT),
                "-o",
                f"-p {port}",
                check=False,
            )
            if result.returncode == 0:
                started = True
                break
            if "already in use" not in cluster.log_tail().lower():
                raise PostgresStartError(
                    f"pg_ctl start failed (exit {result.returncode}):\n"
                    f"{(result.stdout + result.stderr).strip()}\n{cluster.log_tail()}"
                )
        if not started:
            raise PostgresStartError(
                f"no free port after {_START_ATTEMPTS} attempts:\n{cluster.log_tail()}"
            )
        yield PostgresServer(
            host=LOOPBACK,
            port=port,
            user=SUPERUSER,
            password=password,
            dbname=dbname,
            datadir=cluster.datadir,
            bindir=bindir,
            _run_as=user.pw_name if user else None,
        )
    finally:
        if started:
            stopped = cluster.run(
                "pg_ctl", "stop", "-D", str(cluster.datadir), "-m", "fast", "-w", check=False
            )
            if stopped.returncode != 0:
                cluster.run(
                    "pg_ctl",
                    "stop",
                    "-D",
                    str(cluster.datadir),
                    "-m",
                    "immediate",
                    "-w",
                    check=False,
                )
        shutil.rmtree(base, ignore_errors=True)
