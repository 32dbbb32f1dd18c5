"""Shared by the end-to-end benchmarks: a real Jupyter Server subprocess and a kernel client.

``Server`` runs ``python -m jupyter_server`` on a free loopback port with its own
JUPYTER_CONFIG_DIR / JUPYTER_DATA_DIR / JUPYTER_RUNTIME_DIR / QSECURE_DATA_DIR (below
``root``); ``KernelClient`` talks to a kernel through the kernel websocket like
JupyterLab does (``v1.kernel.websocket.jupyter.org``, or the legacy JSON protocol).
Each benchmark subclasses ``KernelClient`` with the ``execute`` it measures with.

The benchmarks are run as ``python benchmarks/X.py``, so this folder is on
``sys.path`` and they ``from _jupyter_harness import ...``. Nothing secret is printed:
a ``Server`` is never shown with its token, and ``log_tail`` redacts the token and
everything in ``redact``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from jupyter_server.services.kernels.connection.base import (
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_qsecure.config import ENV_OVERRIDES
from jupyter_qsecure.testing.ports import LOOPBACK, free_loopback_port
from jupyter_qsecure.vault.process import parent_death_preexec

V1 = "v1.kernel.websocket.jupyter.org"
LEGACY = "legacy"
STARTUP_TIMEOUT = 90.0

_Client = TypeVar("_Client", bound="KernelClient")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def find_py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class PySpy:
    """py-spy attached to one process until :meth:`stop` (raw collapsed stacks in ``out``)."""

    def __init__(  # noqa: D107
        self, binary: str, pid: int, out: Path, rate: int, extra: tuple[str, ...] = ()
    ) -> None:
        self.out = out
        self.rate = rate
        self.started = time.monotonic()
        command = [binary, "record", "-p", str(pid), "-o", str(out), "-f", "raw"]
        command += ["-r", str(rate), "--nonblocking", *extra]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def stop(self) -> tuple[Path | None, float, str]:
        """(the stacks file or None, seconds recorded, what went wrong if None)."""
        seconds = time.monotonic() - self.started
        self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            return None, seconds, "py-spy did not finish"
        if not self.out.exists():
            return None, seconds, "py-spy wrote nothing: " + err.decode(errors="replace")[-300:]
        return self.out, seconds, ""


def clean_environment() -> dict[str, str]:
    hidden = {v for variables in ENV_OVERRIDES.values() for v in variables}
    hidden |= {"JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_PATH"}
    for variable in hidden:
        os.environ.pop(variable, None)
    return {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}


# ---- servers ---------------------------------------------------------------------------------
@dataclass
class Server:
    """One ``python -m jupyter_server`` subprocess. Never printed with its token.

    ``name``: for messages ("server NAME ..."; unnamed: "the Jupyter server ...").
    ``extension``: load jupyter_qsecure_server (and write ``qsecure`` as c.QSecure.*).
    ``config_tail``: Python appended to the server's config file.
    ``token_on_command_line``: pass the token and ``limit_rate=False`` as options
    instead of writing them into the 0600 config file (where ``ps`` cannot show them).
    ``stop_timeout``: seconds ``kill`` waits after SIGTERM before SIGKILL.
    """

    root: Path
    name: str = ""
    extension: bool = True
    qsecure: dict[str, Any] = field(default_factory=dict, repr=False)
    env_extra: dict[str, str] = field(default_factory=dict, repr=False)
    token: str = field(default_factory=lambda: secrets.token_hex(24), repr=False)
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    redact: list[str] = field(default_factory=list, repr=False)
    config_tail: str = field(default="", repr=False)
    token_on_command_line: bool = False
    stop_timeout: float = 15.0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{LOOPBACK}:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    @property
    def data_dir(self) -> Path:
        return self.root / "qsecure"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        for hidden in [self.token, *self.redact]:
            if hidden:
                text = text.replace(hidden, "<redacted>")
        return "\n".join(text.splitlines()[-lines:])

    def start(self, env_base: dict[str, str], kernel_path: Path) -> None:
        for sub in ("config", "data", "runtime", "qsecure", "files", "ipython"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        lines = [
            f"c.ServerApp.jpserver_extensions = {{'jupyter_qsecure_server': {self.extension!r}}}",
            "c.ServerApp.allow_unauthenticated_access = False",
        ]
        if not self.token_on_command_line:
            lines += [
                "c.ZMQChannelsWebsocketConnection.limit_rate = False",
                # in the 0600 config file, not on the command line (where `ps` shows it)
                f"c.IdentityProvider.token = {self.token!r}",
            ]
        if self.extension:
            for key, value in {"data_dir": str(self.data_dir), **self.qsecure}.items():
                lines.append(f"c.QSecure.{key} = {value!r}")
        config_file = self.root / "config" / "bench_config.py"
        config_file.write_text("\n".join(lines) + "\n" + self.config_tail)
        config_file.chmod(0o600)
        env = dict(env_base)
        env.update(
            {
                "JUPYTER_CONFIG_DIR": str(self.root / "config"),
                "JUPYTER_DATA_DIR": str(self.root / "data"),
                "JUPYTER_RUNTIME_DIR": str(self.root / "runtime"),
                "JUPYTER_PATH": str(kernel_path),
                "QSECURE_DATA_DIR": str(self.data_dir),
                "IPYTHONDIR": str(self.root / "ipython"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.env_extra)
        on_command_line = self.token_on_command_line
        for attempt in range(3):
            self.port = free_loopback_port()
            argv = [
                sys.executable,
                "-m",
                "jupyter_server",
                f"--port={self.port}",
                "--port-retries=0",
                f"--ip={LOOPBACK}",
                *([f"--IdentityProvider.token={self.token}"] if on_command_line else []),
                "--no-browser",
                *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
                f"--ServerApp.root_dir={self.root / 'files'}",
                *(["--ZMQChannelsWebsocketConnection.limit_rate=False"] if on_command_line else []),
                f"--config={config_file}",
            ]
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    argv,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.root,
                    preexec_fn=parent_death_preexec(),  # noqa: PLW1509
                )
            if self._wait_ready():
                return
            in_use = "already in use" in self.log_tail(10).lower()
            self.kill()
            if not in_use or attempt == 2:
                what = f"server {self.name}" if self.name else "the Jupyter server"
                raise RuntimeError(f"{what} did not start (log tail below)")

    def _wait_ready(self) -> bool:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
                f"{self.url}/api/status", headers=self.headers
            )
            try:
                with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return False

    def kill(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


async def http(server: Server, method: str, path: str, body: Any = None) -> Any:
    request = HTTPRequest(
        f"{server.url}{path}",
        method=method,
        headers={**server.headers, "Content-Type": "application/json"},
        body=json.dumps(body) if body is not None else (b"" if method == "POST" else None),
        request_timeout=120,
    )
    response = await AsyncHTTPClient().fetch(request)
    return json.loads(response.body) if response.body else None


async def shutdown_server(server: Server, grace: float = 20.0) -> None:
    """Delete its kernels (revokes their credentials), ask it to stop, then make sure.

    Waits up to ``grace`` seconds for the graceful stop (e.g. a final ledger checkpoint).
    """
    if server.process is None or server.process.poll() is not None:
        server.process = None
        return
    try:
        for kernel in await http(server, "GET", "/api/kernels"):
            with contextlib.suppress(Exception):
                await http(server, "DELETE", f"/api/kernels/{kernel['id']}")
        await http(server, "POST", "/api/shutdown")
        process = server.process
        for _ in range(int(round(grace * 10))):
            if process.poll() is not None:
                break
            await asyncio.sleep(0.1)
    except Exception as exc:  # fall through to terminate/kill
        what = f"stop of {server.name}" if server.name else "server stop"
        print(f"  (graceful {what} failed: {type(exc).__name__})")
    server.kill()


@contextlib.contextmanager
def servers_stopped(servers: list[Server]) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:  # last resort, if the async shutdown did not run
            server.kill()


# ---- websocket kernel client -------------------------------------------------------------------
def decode(raw: Any, protocol: str = V1) -> dict[str, Any]:
    if protocol == V1:
        channel, parts = deserialize_msg_from_ws_v1(raw)  # type: ignore[no-untyped-call]
        header, parent, metadata, content = (json.loads(p) for p in parts[:4])
        return {
            "channel": channel,
            "header": header,
            "parent_header": parent,
            "metadata": metadata,
            "content": content,
        }
    return dict(json.loads(raw))


class KernelClient:
    """A minimal kernel websocket client (v1 binary protocol or legacy JSON).

    Subclasses add ``execute``. Class settings: ``max_message_size`` of the websocket;
    ``info_timeout`` for the kernel_info round trip when connecting, per message read or,
    with ``info_timeout_total``, for the whole round trip.
    """

    max_message_size = 256 * 1024 * 1024
    info_timeout = 120.0
    info_timeout_total = False

    def __init__(self, server: Server, kernel_id: str, protocol: str, ws: Any) -> None:  # noqa: D107
        self.server = server
        self.kernel_id = kernel_id
        self.protocol = protocol
        self.ws = ws
        self.session = uuid.uuid4().hex

    @classmethod
    async def open(
        cls: type[_Client],
        server: Server,
        kernel_name: str = "qsecure",
        protocol: str = V1,
        nodelay: bool = False,
    ) -> _Client:
        kernel_id = (await http(server, "POST", "/api/kernels", {"name": kernel_name}))["id"]
        return await cls.connect(server, kernel_id, protocol, nodelay)

    @classmethod
    async def connect(
        cls: type[_Client],
        server: Server,
        kernel_id: str,
        protocol: str = V1,
        nodelay: bool = False,
    ) -> _Client:
        query = f"session_id={uuid.uuid4().hex}" + ("&qsb_nodelay=1" if nodelay else "")
        request = HTTPRequest(
            f"{server.ws_url}/api/kernels/{kernel_id}/channels?{query}", headers=server.headers
        )
        kwargs: dict[str, Any] = {"subprotocols": [V1]} if protocol == V1 else {}
        ws = await websocket_connect(request, max_message_size=cls.max_message_size, **kwargs)
        if (ws.selected_subprotocol == V1) != (protocol == V1):
            raise RuntimeError(f"server selected subprotocol {ws.selected_subprotocol!r}")
        if nodelay:
            assert ws.protocol is not None
            ws.protocol.set_nodelay(True)
        client = cls(server, kernel_id, protocol, ws)
        await client.request(
            "kernel_info_request",
            {},
            "shell",
            "kernel_info_reply",
            timeout=cls.info_timeout,
            total=cls.info_timeout_total,
        )
        return client

    def _frame(self, msg_type: str, content: dict[str, Any], channel: str) -> tuple[str, Any]:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "session": self.session,
            "username": "bench",
            "version": "5.3",
            "date": "",
        }
        if self.protocol == V1:
            parts = [json.dumps(p).encode() for p in (header, {}, {}, content)]
            return msg_id, serialize_msg_to_ws_v1(parts, channel)  # type: ignore[no-untyped-call]
        return msg_id, json.dumps(
            {
                "header": header,
                "parent_header": {},
                "metadata": {},
                "content": content,
                "channel": channel,
                "buffers": [],
            }
        )

    def _light(self, raw: Any) -> tuple[str, str, str, Any]:
        """(channel, msg_type, parent msg_id, content-or-None): content only for status."""
        if self.protocol == V1:
            channel, parts = deserialize_msg_from_ws_v1(raw)  # type: ignore[no-untyped-call]
            header = json.loads(parts[0])
            msg_type = header.get("msg_type", "")
            parent = json.loads(parts[1]).get("msg_id", "") if len(parts) > 1 else ""
            wanted = msg_type in ("status", "input_request")
            content = json.loads(parts[3]) if wanted else None
            return channel, msg_type, parent, content
        msg = json.loads(raw)
        return (
            msg.get("channel", ""),
            msg["header"]["msg_type"],
            (msg.get("parent_header") or {}).get("msg_id", ""),
            msg.get("content"),
        )

    async def request(
        self,
        msg_type: str,
        content: dict[str, Any],
        channel: str,
        reply_type: str,
        timeout: float = 120.0,
        total: bool = False,
    ) -> None:
        """Send one message, wait for its reply; ``timeout`` per read, or overall if ``total``."""
        msg_id, frame = self._frame(msg_type, content, channel)
        deadline = time.monotonic() + timeout
        await self.ws.write_message(frame, binary=self.protocol == V1)
        while True:
            left = deadline - time.monotonic() if total else timeout
            raw = await asyncio.wait_for(self.ws.read_message(), left)
            if raw is None:
                raise RuntimeError("websocket closed")
            _, got_type, parent, _ = self._light(raw)
            if parent == msg_id and got_type == reply_type:
                return

    async def close(self, shutdown: bool = True) -> None:
        self.ws.close()
        if shutdown:
            with contextlib.suppress(Exception):
                await http(self.server, "DELETE", f"/api/kernels/{self.kernel_id}")
