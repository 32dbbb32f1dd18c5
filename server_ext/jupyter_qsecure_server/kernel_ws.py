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
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeGuard

from jupyter_client.session import DELIM
from jupyter_server.services.kernels.connection.base import (
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

from jupyter_qsecure.vault.masking import mask_message
from jupyter_qsecure.vault.stream_masking import StreamMasker, mask_bytes

from .identity import stable_user

V1 = "v1.kernel.websocket.jupyter.org"
#: Executions with a held stream tail, at most (each holds at most the longest value):
#: beyond, the oldest is released. Only output after an execution's end (threads) can
#: stay held, until more of its output, a restart or the disconnect.
MAX_HELD_EXECUTIONS = 256


def _bytes(part: Any) -> bytes:
    return part.bytes if hasattr(part, "bytes") else bytes(part)


def _content_frame(frames: Any) -> bytes | None:
    """The content frame (JSON, as the kernel sent it) of a ZMQ message's frames, or None."""
    try:
        i = frames.index(DELIM)  # identities, DELIM, signature, header, parent, metadata, content
        content = frames[i + 5]
    except (AttributeError, ValueError, IndexError):
        return None
    return content if isinstance(content, bytes) else None


def _has_text(content: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(content, dict) and isinstance(content.get("text"), str)


class QSecureKernelConnection(ZMQChannelsWebsocketConnection):
    """ZMQ channels websocket connection with credential injection and output masking."""

    _incoming_tail: asyncio.Future[None] | None = None
    _streams: StreamMasker | None = None
    #: legacy protocol: the content frame of the message being handed to _on_zmq_reply
    _raw_content: bytes | None = None
    #: parent msg_id → (zmq stream, header, parent header) of the execution's last stream
    #: message with a held tail; oldest first
    _held: dict[Any, tuple[Any, dict[str, Any], dict[str, Any]]]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._held = {}

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
    def handle_outgoing_message(self, stream: Any, outgoing_msg: list[Any]) -> None:
        """Legacy protocol: keep the content frame for the screen while jupyter_server
        deserialises the message and hands it to :meth:`_on_zmq_reply` (same call)."""
        if self.subprotocol == V1:
            super().handle_outgoing_message(stream, outgoing_msg)
            return
        self._raw_content = _content_frame(outgoing_msg)
        try:
            super().handle_outgoing_message(stream, outgoing_msg)
        finally:
            self._raw_content = None

    # Stream text goes through the carry-over (StreamMasker), keyed by the execution (parent
    # msg_id) across stdout and stderr. A held tail is released on evidence only: more
    # stream text of that execution, any other iopub message of it (status idle ends it;
    # display_data, error... must stay after the text), a kernel (re)start, a disconnect.
    # Not the execute_reply: it comes on the shell channel, which is not ordered with
    # iopub, and ipykernel sends it before its last stream flush. Never on a clock.
    def _on_zmq_reply(self, stream: Any, msg_or_list: Any) -> None:
        # the frame of this message, if it came through handle_outgoing_message; taken once
        raw_content, self._raw_content = self._raw_content, None
        service = self._service
        # the masker and its raw screening together: a worker thread may swap in a new build
        masker, raw_screening = service.masking() if service is not None else (None, False)
        if masker is None:
            if self._streams is not None:
                self._release_all()  # with the values they were held for
            super()._on_zmq_reply(stream, msg_or_list)
            return
        if self._streams is None:
            self._streams = StreamMasker(masker)
        elif self._streams.masker is not masker:
            self._streams.masker = masker  # held tails are raw: matched against the new values
        channel = getattr(stream, "channel", None)
        if self.subprotocol == V1:
            self._reply_v1(stream, channel, msg_or_list, masker, raw_screening)
        else:
            self._reply_legacy(stream, channel, msg_or_list, masker, raw_content)

    def _reply_legacy(
        self,
        stream: Any,
        channel: Any,
        msg: dict[str, Any],
        masker: Any,
        raw_content: bytes | None = None,
    ) -> None:
        header = msg.get("header") or {}
        parent = msg.get("parent_header") or {}
        content = msg.get("content")
        if channel == "iopub" and header.get("msg_type") == "stream" and _has_text(content):
            metadata = msg.get("metadata") or {}
            masked_metadata = (  # usually empty: nothing to mask
                mask_message({"metadata": metadata}, masker)["metadata"] if metadata else metadata
            )
            clean = masked_metadata == metadata
            if self._stream(
                stream, header, parent, lambda: masked_metadata, clean, content, masker, raw_content
            ):
                super()._on_zmq_reply(stream, msg)  # nothing masked or held back
            return
        if channel == "iopub":
            self._before_iopub(stream, header, lambda: parent, lambda: content)
        masked = mask_message(msg, masker)
        buffers = msg.get("buffers")
        if buffers:
            masked["buffers"] = self._mask_buffers(masker, buffers)
        super()._on_zmq_reply(stream, masked)

    def _reply_v1(
        self, stream: Any, channel: Any, msg_list: Any, masker: Any, raw_screening: bool
    ) -> None:
        """v1 protocol: frames stay encoded unless something in them must change.

        Most messages hold no injected value: when the raw JSON of content and metadata
        contains no form of any value (valid because JSON escaping leaves these values
        unchanged, see ``raw_screening``), the original frames are forwarded untouched,
        after any stream text held for the same execution.
        """
        parts = [_bytes(p) for p in msg_list]
        unpack = self.session.unpack

        def contains_any(part: bytes) -> bool:
            return bool(masker.contains_any(part.decode("utf-8", "surrogateescape")))

        header = unpack(parts[0])
        if channel == "iopub" and header.get("msg_type") == "stream":
            content = unpack(parts[3])
            if _has_text(content):
                if raw_screening and not contains_any(parts[2]):
                    metadata_of, clean = (lambda: unpack(parts[2])), True
                else:
                    metadata = unpack(parts[2])
                    masked_metadata = mask_message({"metadata": metadata}, masker)["metadata"]
                    metadata_of, clean = (lambda: masked_metadata), masked_metadata == metadata
                parent = unpack(parts[1])
                if self._stream(
                    stream, header, parent, metadata_of, clean, content, masker, parts[3]
                ):
                    super()._on_zmq_reply(stream, msg_list)  # nothing masked or held back
                return
        if channel == "iopub":
            self._before_iopub(stream, header, lambda: unpack(parts[1]), lambda: unpack(parts[3]))
        buffers = self._mask_buffers(masker, parts[4:])
        if raw_screening and not any(contains_any(part) for part in parts[2:4]):
            if buffers == parts[4:]:
                super()._on_zmq_reply(stream, msg_list)
            else:
                super()._on_zmq_reply(stream, [*parts[:4], *buffers])
            return
        masked = mask_message(
            {
                "header": header,
                "parent_header": unpack(parts[1]),
                "metadata": unpack(parts[2]),
                "content": unpack(parts[3]),
            },
            masker,
        )
        pack = self.session.pack
        super()._on_zmq_reply(
            stream,
            [parts[0], parts[1], pack(masked["metadata"]), pack(masked["content"]), *buffers],
        )

    def _stream(
        self,
        stream: Any,
        header: dict[str, Any],
        parent: dict[str, Any],
        metadata_of: Callable[[], Any],
        metadata_clean: bool,
        content: dict[str, Any],
        masker: Any,
        raw_content: bytes | None = None,
    ) -> bool:
        """A stream message through the carry-over: True if it can go out as it came.

        Otherwise what is safe to show now is sent here, as one or more stream messages.
        ``raw_content``: the content frame ``content`` was decoded from, screened instead
        of the text where that is exact (``Masker.passes``).
        """
        original: str = content["text"]
        streams = self._streams
        assert streams is not None
        key = parent.get("msg_id")
        stream_name = content.get("name")
        if (  # the common case: plain stdout/stderr text that needs nothing, nothing held
            metadata_clean
            and len(content) == 2
            and isinstance(stream_name, str)
            and not streams.holds(key)
            and masker.passes(original, raw_content)
            and masker.mask(stream_name) == stream_name
        ):
            self._held.pop(key, None)
            return True
        # values cut by ANSI codes or JSON escapes are masked in this message's visible
        # text first; the carry-over then matches what is left across messages
        text: str = masker.mask_rendered(original)
        name = masker.mask(str(content.get("name", "stdout")))  # "stdout" or "stderr", really
        rest = {k: v for k, v in content.items() if k not in ("name", "text")}
        masked_rest = mask_message({"content": rest}, masker)["content"] if rest else rest
        pieces = self._write(stream, header, parent, name, text)
        unchanged = masked_rest == rest and name == content.get("name")
        if metadata_clean and unchanged and pieces == [(name, original)]:
            return True
        msg = {
            "header": header,
            "parent_header": parent,
            "metadata": metadata_of(),
            "content": masked_rest,
        }
        self._send_pieces(stream, msg, pieces, name)
        return False

    # ---- the carry-over ----------------------------------------------------------------------
    def _write(
        self, stream: Any, header: dict[str, Any], parent: dict[str, Any], name: str, text: str
    ) -> list[tuple[str, str]]:
        """Feed one stream message's text; what to send now, as (name, text) pieces."""
        streams = self._streams
        assert streams is not None
        key = parent.get("msg_id")
        pieces = streams.write(key, name, text)
        self._held.pop(key, None)
        if streams.holds(key):
            self._held[key] = (stream, header, parent)  # newest last
            if len(self._held) > MAX_HELD_EXECUTIONS:  # output of long-finished executions
                self._release(next(iter(self._held)), stream)
        return pieces

    def _send_pieces(
        self, stream: Any, msg: dict[str, Any], pieces: list[tuple[str, str]], name: str
    ) -> None:
        """Send the pieces of a stream message: the last piece of its own stream keeps
        its header (and metadata); pieces released for the other stream get new ones."""
        last_own = max((i for i, (n, _) in enumerate(pieces) if n == name), default=-1)
        for i, (piece_name, text) in enumerate(pieces):
            if i == last_own:
                content = {**msg["content"], "name": name, "text": text}
                self._send(stream, msg["header"], msg["parent_header"], msg["metadata"], content)
            else:
                self._send_new(stream, msg["header"], msg["parent_header"], piece_name, text)

    def _before_iopub(
        self,
        stream: Any,
        header: dict[str, Any],
        parent_of: Callable[[], Any],
        content_of: Callable[[], Any],
    ) -> None:
        """Release the held tail of this message's execution before the message goes out."""
        if not self._held:
            return  # the common case: nothing held, nothing unpacked
        key = (parent_of() or {}).get("msg_id")
        if key in self._held:
            self._release(key, stream)
        if self._held and header.get("msg_type") == "status":
            state = (content_of() or {}).get("execution_state")
            if state == "starting":  # a (re)started kernel continues no earlier output
                self._release_all()

    def _release(self, key: Any, stream: Any = None) -> None:
        held = self._held.pop(key, None)
        streams = self._streams
        if streams is None:
            return
        pieces = streams.release(key)
        if held is None:
            return
        held_stream, header, parent = held
        for name, text in pieces:
            self._send_new(stream or held_stream, header, parent, name, text)

    def _release_all(self) -> None:
        for key in list(self._held):
            self._release(key)

    def _mask_buffers(self, masker: Any, buffers: Any) -> list[Any]:
        """Binary buffers with every value overwritten (same length); unchanged ones as given."""
        out = []
        for buffer in buffers:
            data = _bytes(buffer)
            masked = mask_bytes(masker, data)
            out.append(buffer if masked == data else masked)
        return out

    def _send_new(
        self, stream: Any, header: dict[str, Any], parent: dict[str, Any], name: str, text: str
    ) -> None:
        """A stream message of our own (released or re-cut text), like the kernel's."""
        new_header = dict(header)
        new_header["msg_id"] = uuid.uuid4().hex
        new_header["date"] = datetime.now(timezone.utc).isoformat()
        new_header["msg_type"] = "stream"
        self._send(stream, new_header, parent, {}, {"name": name, "text": text})

    def _send(
        self,
        stream: Any,
        header: dict[str, Any],
        parent: dict[str, Any],
        metadata: dict[str, Any],
        content: dict[str, Any],
    ) -> None:
        if stream.closed():
            return  # the connection is going away: nothing more reaches the browser
        if self.subprotocol == V1:
            pack = self.session.pack
            parts = [pack(header), pack(parent), pack(metadata), pack(content)]
            ZMQChannelsWebsocketConnection._on_zmq_reply(self, stream, parts)
        else:
            msg = {
                "header": header,
                "parent_header": parent,
                "metadata": metadata,
                "content": content,
                "buffers": [],
                "msg_id": header["msg_id"],
                "msg_type": header.get("msg_type", "stream"),
            }
            ZMQChannelsWebsocketConnection._on_zmq_reply(self, stream, msg)

    def on_kernel_restarted(self) -> None:
        self._release_all()
        super().on_kernel_restarted()

    def on_restart_failed(self) -> None:
        self._release_all()
        super().on_restart_failed()

    # ZMQChannelsWebsocketConnection.disconnect is synchronous; its base declares it async.
    def disconnect(self) -> None:  # type: ignore[override]
        try:
            self._release_all()
        except Exception:  # noqa: S110 - closing anyway
            pass
        super().disconnect()
