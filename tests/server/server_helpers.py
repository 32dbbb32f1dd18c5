"""Helpers shared by the server tests (``from server_helpers import start, refused``).

A minimal kernel websocket client speaking both kernel protocols, and contents-API
calls. The fixtures they use (OpenBao, the qsecure kernel) live in ``conftest.py``:
pytest loads every ``conftest.py`` as a module named ``conftest``, so plain helpers
cannot be imported from there reliably.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)
from tornado.httpclient import HTTPClientError

V1 = "v1.kernel.websocket.jupyter.org"

#: Kernel code (``.format(name=...)``) printing the digest and the text of secret ``name``,
#: or the error's class and message.
GET_CODE = (
    "from jupyter_qsecure import secrets\n"
    "import hashlib\n"
    "try:\n"
    "    v = secrets.get({name!r})\n"
    "    print('digest', hashlib.sha256(v.encode()).hexdigest())\n"
    "    print('raw', v)\n"
    "except Exception as e:\n"
    "    print(type(e).__name__, e)\n"
)


def digest(value: str) -> str:
    """The SHA-256 hex digest ``GET_CODE`` prints for ``value``."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class Build:
    """One masker the server built: in which thread, and over which names (no values)."""

    on_loop: bool  # an event loop was running in the building thread
    thread: str
    names: tuple[str, ...]


class KernelClient:
    """A minimal websocket kernel client for one protocol."""

    def __init__(self, ws: Any, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self.session = uuid.uuid4().hex

    async def execute(self, code: str, timeout: float = 60) -> list[dict[str, Any]]:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "session": self.session,
            "username": "test",
            "version": "5.3",
            "date": "",
        }
        content = {"code": code, "silent": False, "store_history": True, "allow_stdin": False}
        if self.protocol == V1:
            parts = [json.dumps(p).encode() for p in (header, {}, {}, content)]
            await self.ws.write_message(serialize_msg_to_ws_v1(parts, "shell"), binary=True)
        else:
            await self.ws.write_message(
                json.dumps(
                    {
                        "header": header,
                        "parent_header": {},
                        "metadata": {},
                        "content": content,
                        "channel": "shell",
                        "buffers": [],
                    }
                )
            )
        received: list[dict[str, Any]] = []
        got_reply = got_idle = False
        while not (got_reply and got_idle):
            raw = await asyncio.wait_for(self.ws.read_message(), timeout)
            assert raw is not None, "websocket closed"
            msg = self._decode(raw)
            if (msg.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            received.append(msg)
            if msg["channel"] == "shell" and msg["header"]["msg_type"] == "execute_reply":
                got_reply = True
            if (
                msg["header"]["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
            ):
                got_idle = True
        return received

    def _decode(self, raw: Any) -> dict[str, Any]:
        """The message as the browser sees it; binary buffers (bytes) under ``buffers``."""
        if self.protocol == V1:
            channel, parts = deserialize_msg_from_ws_v1(raw)
            header, parent, metadata, content = (json.loads(p) for p in parts[:4])
            return {
                "channel": channel,
                "header": header,
                "parent_header": parent,
                "metadata": metadata,
                "content": content,
                "buffers": [bytes(p) for p in parts[4:]],
            }
        if isinstance(raw, bytes):  # legacy protocol, a message with binary buffers
            msg = deserialize_binary_message(raw)
            buffers = [bytes(b) for b in msg.pop("buffers")]
            msg = json.loads(json.dumps(msg, default=str))  # parsed dates back to text
            return {**msg, "buffers": buffers}
        return {**json.loads(raw), "buffers": []}


def stdout_of(messages: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in messages if m["header"]["msg_type"] == "stream")


async def start(
    jp_fetch: Any, jp_ws_fetch: Any, kernel: str, protocol: str
) -> tuple[str, KernelClient]:
    response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": kernel}))
    kernel_id = json.loads(response.body)["id"]
    return kernel_id, await connect(jp_ws_fetch, kernel_id, protocol)


async def connect(jp_ws_fetch: Any, kernel_id: str, protocol: str) -> KernelClient:
    """A new websocket client of ``kernel_id``. Connect anew after a restart, as
    JupyterLab does: the server handles a new connection's messages only once its
    IOPub subscription is live (its "nudge"), whereas an open connection's IOPub
    socket re-subscribes to the restarted kernel on its own schedule, and what the
    kernel publishes before that is lost."""
    kwargs = {"subprotocols": [V1]} if protocol == V1 else {}
    ws = await jp_ws_fetch("api", "kernels", kernel_id, "channels", **kwargs)
    assert (ws.selected_subprotocol == V1) == (protocol == V1)
    return KernelClient(ws, protocol)


def extension_config(*, enforce_auth: bool = True, **qsecure: Any) -> dict[str, Any]:
    """A server config: the extension on, ``QSecure`` traits ``qsecure`` and, unless
    ``enforce_auth`` is false, no unauthenticated access to any handler."""
    server: dict[str, Any] = {"jpserver_extensions": {"jupyter_qsecure_server": True}}
    if enforce_auth:
        server["allow_unauthenticated_access"] = False
    return {"ServerApp": server, "QSecure": qsecure}


class KernelSession:
    """One qsecure kernel with a websocket client on ``protocol``: started by the first
    :meth:`client`, shut down by :meth:`close` (the ``kernel_session`` fixture of
    ``conftest.py`` closes it after the test)."""

    def __init__(self, jp_fetch: Any, jp_ws_fetch: Any, kernel: str, protocol: str) -> None:
        self.fetch, self.ws_fetch = jp_fetch, jp_ws_fetch
        self.kernel, self.protocol = kernel, protocol
        self.kernel_id = ""
        self._client: KernelClient | None = None

    async def client(self) -> KernelClient:
        if self._client is None:
            self.kernel_id, self._client = await start(
                self.fetch, self.ws_fetch, self.kernel, self.protocol
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            self._client.ws.close()
            await self.fetch("api", "kernels", self.kernel_id, method="DELETE")
            self._client = None


async def put(jp_fetch: Any, path: str, model: dict[str, Any]) -> Any:
    """Save ``model`` at ``path`` through the contents API."""
    return await jp_fetch("api", "contents", path, method="PUT", body=json.dumps(model))


async def refused(jp_fetch: Any, path: str, model: dict[str, Any]) -> dict[str, Any]:
    """Save ``model``, expect the gate's 422, return its JSON body."""
    with pytest.raises(HTTPClientError) as info:
        await put(jp_fetch, path, model)
    assert info.value.code == 422
    assert info.value.response is not None
    return dict(json.loads(info.value.response.body))
