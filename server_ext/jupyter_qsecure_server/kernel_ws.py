"""The kernel websocket connection: credentials in, masked output out.

Credentials are attached to each ``execute_request`` on its way from the browser
to the kernel (``metadata["qsecure"]``), never to the kernel's environment or
any file. Everything the kernel sends to the browser, on every channel, passes
through the masker first: outside the kernel, where user code cannot undo it.
Both websocket protocols are handled (legacy JSON and ``v1.kernel.websocket``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timezone
from typing import Any

from jupyter_server.services.kernels.connection.base import (
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from tornado.ioloop import IOLoop

from jupyter_qsecure.vault.masking import StreamMasker, mask_message

from .identity import stable_user

V1 = "v1.kernel.websocket.jupyter.org"
#: How long a held-back stream tail (a possible start of a secret) may wait.
FLUSH_DELAY_SECONDS = 0.05


def _bytes(part: Any) -> bytes:
    return part.bytes if hasattr(part, "bytes") else bytes(part)


class QSecureKernelConnection(ZMQChannelsWebsocketConnection):
    """ZMQ channels websocket connection with credential injection and output masking."""

    _incoming_tail: asyncio.Future[None] | None = None
    _stream_masker: StreamMasker | None = None
    _stream_masker_for: Any = None
    _flush_handle: Any = None
    _held_headers: dict[Any, tuple[Any, dict[str, Any], dict[str, Any]]]

    @property
    def _service(self) -> Any:
        return self.websocket_handler.settings.get("qsecure_credentials")

    @property
    def _user(self) -> str:
        # A stable name, not Jupyter's per-session anonymous id: quotas follow it.
        return stable_user(self.websocket_handler)

    # ---- browser -> kernel -----------------------------------------------------------------
    def handle_incoming_message(self, incoming_msg: Any) -> None:
        service = self._service
        pending = self._incoming_tail is not None and not self._incoming_tail.done()
        if service is None or (not pending and not self._is_execute_request(incoming_msg)):
            super().handle_incoming_message(incoming_msg)
            return
        # Keep the browser's order: messages queue behind an execute_request whose
        # credentials are still being fetched.
        previous = self._incoming_tail
        self._incoming_tail = asyncio.ensure_future(self._forward(previous, incoming_msg))

    async def _forward(self, previous: asyncio.Future[None] | None, incoming_msg: Any) -> None:
        if previous is not None:
            try:
                await previous
            except Exception:  # noqa: S110 - the previous message's failure was logged there
                pass
        try:
            if self._is_execute_request(incoming_msg):
                incoming_msg = await self._with_credentials(incoming_msg)
        except Exception as exc:
            self.log.error("jupyter-qsecure: could not attach credentials: %s", type(exc).__name__)
        super().handle_incoming_message(incoming_msg)

    def _is_execute_request(self, ws_msg: Any) -> bool:
        # Cheap screen first: most incoming messages (comms, completions, kernel info)
        # cannot be one, and need not be parsed twice.
        if isinstance(ws_msg, (bytes, bytearray)) and b"execute_request" not in ws_msg:
            return False
        if isinstance(ws_msg, str) and "execute_request" not in ws_msg:
            return False
        try:
            if self.subprotocol == V1:
                channel, msg_list = deserialize_msg_from_ws_v1(ws_msg)
                if channel != "shell":
                    return False
                header = self.session.unpack(msg_list[0])
            else:
                msg = json.loads(ws_msg) if isinstance(ws_msg, (str, bytes)) else ws_msg
                if msg.get("channel", "shell") != "shell":
                    return False
                header = msg.get("header") or {}
            return bool(header.get("msg_type") == "execute_request")
        except Exception:
            return False

    async def _with_credentials(self, ws_msg: Any) -> Any:
        metadata = await self._service.metadata_for(self.kernel_id, self._user)
        if self.subprotocol == V1:
            channel, msg_list = deserialize_msg_from_ws_v1(ws_msg)
            meta = self.session.unpack(msg_list[2]) if len(msg_list) > 2 and msg_list[2] else {}
            meta["qsecure"] = metadata
            msg_list = list(msg_list)
            msg_list[2] = self.session.pack(meta)
            return serialize_msg_to_ws_v1(msg_list, channel)
        msg = json.loads(ws_msg)
        msg.setdefault("metadata", {})["qsecure"] = metadata
        return json.dumps(msg)

    # ---- kernel -> browser -----------------------------------------------------------------
    def _on_zmq_reply(self, stream: Any, msg_or_list: Any) -> None:
        service = self._service
        masker = service.masker() if service is not None else None
        if masker is None:
            super()._on_zmq_reply(stream, msg_or_list)
            return
        if self._stream_masker is None or self._stream_masker_for is not masker:
            self._flush_all(stream_override=None)
            self._stream_masker = StreamMasker(masker)
            self._stream_masker_for = masker
            self._held_headers = {}
        channel = getattr(stream, "channel", None)
        if self.subprotocol == V1:
            self._reply_v1(stream, channel, msg_or_list, masker, service.raw_screening)
            return
        msg = msg_or_list
        msg_type = (msg.get("header") or {}).get("msg_type")
        if channel == "iopub" and msg_type != "stream":
            self._flush_all(stream_override=stream)  # held tails go out before what follows
        masked = mask_message(msg, masker, self._stream_masker)
        if msg_type == "stream" and not self._note_stream(stream, msg, masked):
            return
        super()._on_zmq_reply(stream, masked)

    def _note_stream(self, stream: Any, msg: dict[str, Any], masked: dict[str, Any]) -> bool:
        """Remember a stream's headers for a later flush; False if nothing is to be sent now."""
        key = (
            (msg.get("parent_header") or {}).get("msg_id"),
            (msg.get("content") or {}).get("name"),
        )
        self._held_headers[key] = (stream, msg["header"], msg.get("parent_header") or {})
        self._schedule_flush()
        return bool((masked.get("content") or {}).get("text"))

    def _reply_v1(
        self, stream: Any, channel: Any, msg_list: Any, masker: Any, raw_screening: bool
    ) -> None:
        """v1 protocol: frames stay encoded unless something in them must change.

        Most messages hold no injected value: when the raw JSON of content and metadata
        contains no form of any value (valid because JSON escaping leaves these values
        unchanged, see ``raw_screening``), the original frames are forwarded untouched.
        """
        parts = [_bytes(p) for p in msg_list]
        header = self.session.unpack(parts[0])
        msg_type = header.get("msg_type")
        unpack = self.session.unpack
        if msg_type != "stream":
            if channel == "iopub":
                self._flush_all(stream_override=stream)
            if raw_screening and not any(
                masker.contains_any(part.decode("utf-8", "surrogateescape")) for part in parts[2:4]
            ):
                super()._on_zmq_reply(stream, msg_list)
                return
        msg = {
            "header": header,
            "parent_header": unpack(parts[1]),
            "metadata": unpack(parts[2]),
            "content": unpack(parts[3]),
        }
        masked = mask_message(msg, masker, self._stream_masker)
        if msg_type == "stream":
            if not self._note_stream(stream, msg, masked):
                return
            if masked["content"] == msg["content"] and masked["metadata"] == msg["metadata"]:
                super()._on_zmq_reply(stream, msg_list)  # nothing masked or held back
                return
        packed = [
            parts[0],
            parts[1],
            self.session.pack(masked["metadata"]),
            self.session.pack(masked["content"]),
            *parts[4:],
        ]
        super()._on_zmq_reply(stream, packed)

    def _schedule_flush(self) -> None:
        if self._stream_masker is None or not self._stream_masker.pending_keys():
            return
        if self._flush_handle is None:
            self._flush_handle = IOLoop.current().call_later(FLUSH_DELAY_SECONDS, self._timed_flush)

    def _timed_flush(self) -> None:
        self._flush_handle = None
        self._flush_all(stream_override=None)

    def _flush_all(self, stream_override: Any) -> None:
        masker = self._stream_masker
        if masker is None:
            return
        for key in list(masker.pending_keys()):
            text = masker.flush(key)
            held = self._held_headers.pop(key, None)
            if not text or held is None:
                continue
            stream, header, parent = held
            self._emit_stream(stream_override or stream, header, parent, key[1], text)

    def _emit_stream(
        self, stream: Any, header: dict[str, Any], parent: dict[str, Any], name: str, text: str
    ) -> None:
        new_header = dict(header)
        new_header["msg_id"] = uuid.uuid4().hex
        new_header["date"] = datetime.now(timezone.utc).isoformat()
        content = {"name": name, "text": text}
        if self.subprotocol == V1:
            parts = [
                self.session.pack(new_header),
                self.session.pack(parent),
                self.session.pack({}),
                self.session.pack(content),
            ]
            ZMQChannelsWebsocketConnection._on_zmq_reply(self, stream, parts)
        else:
            msg = {
                "header": new_header,
                "parent_header": parent,
                "metadata": {},
                "content": content,
                "buffers": [],
                "msg_id": new_header["msg_id"],
                "msg_type": "stream",
            }
            ZMQChannelsWebsocketConnection._on_zmq_reply(self, stream, msg)

    def disconnect(self) -> None:
        try:
            self._flush_all(stream_override=None)
        except Exception:  # noqa: S110 - closing anyway
            pass
        super().disconnect()
