"""Stream output and binary buffers: the parts of masking that span messages or bytes.

A value printed in parts (two writes with a pause, a long ``!`` loop, one half on
stdout and the other on stderr) reaches the browser in several stream messages, which
the browser shows joined. :class:`StreamMasker` keeps, per execution (the parent
``msg_id``), the tail of its stream text that can still become a value, and releases
it on evidence only::

    streams = StreamMasker(masker)               # one per websocket connection
    streams.write(parent, "stdout", text)        # → [(name, masked text), ...] to send now
    streams.release(parent)                      # the end of the execution: held tail, masked

Never on a clock: a pause in the output is not evidence that a value has ended.
Everything ``write`` and ``release`` return for a parent, joined, equals
``masker.mask`` of all the text written for it, in the order written (stdout and
stderr together: the browser shows them next to each other).

:func:`mask_bytes` masks binary buffers (comm and display messages) in place of
each value's bytes, keeping their length.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .masking import Masker

__all__ = ["StreamMasker", "mask_bytes"]

logger = logging.getLogger(__name__)

Piece = tuple[str, str]  # (stream name, text)
_BYTES = ("utf-8", "surrogateescape")  # any bytes → text and back, one to one


class StreamMasker:
    """Carry-over of stream text per key (an execution), across stream names.

    ``write`` returns what is safe to show now and holds back only a tail that can
    still become a value (``Masker.split`` decides; at most the longest form, and
    nothing when the text ends with a character no form continues from, e.g. a
    newline). ``release`` returns the held tail, masked: call it when the execution
    ends (the kernel's ``idle`` for it), before forwarding any other message of the
    execution that must keep its place after the text, and on disconnect or restart.

    Text of several stream names under one key is matched as one text, in the order
    written. A value that crosses from one stream into the other is shown once, as
    its placeholder in the stream where it starts; the other stream's part of it is
    dropped, the rest of each stream's text keeps its name.

    The masker can be swapped (:attr:`masker`) when the set of values changes: held
    tails are raw text and are matched against the new values from then on.
    """

    __slots__ = ("_held", "_names", "masker")

    def __init__(self, masker: Masker) -> None:
        self.masker = masker
        self._held: dict[Hashable, str] = {}  # key → raw tail
        self._names: dict[Hashable, list[tuple[str, int]]] = {}  # key → the tail's (name, length)s

    def write(self, key: Hashable, name: str, text: str) -> list[Piece]:
        """(name, masked text) to send now, in order; empty texts are left out."""
        if not text:
            return []
        held = self._held.pop(key, None)
        if held is None:  # the common case: nothing held
            emit, tail = self.masker.split(text)
            if tail:
                self._held[key] = tail
                self._names[key] = [(name, len(tail))]
            return [(name, emit)] if emit else []
        names = self._names.pop(key)
        if names[-1][0] == name:
            names[-1] = (name, names[-1][1] + len(text))
        else:
            names.append((name, len(text)))
        whole = held + text
        emit, tail = self.masker.split(whole)
        cut = len(whole) - len(tail)
        if tail:
            self._held[key] = tail
            self._names[key] = _after(names, cut)
        return self._pieces(whole[:cut], emit, _before(names, cut))

    def release(self, key: Hashable) -> list[Piece]:
        """The held tail of ``key``, masked, as (name, text) pieces; nothing is held after."""
        held = self._held.pop(key, None)
        if held is None:
            return []
        names = self._names.pop(key)
        return self._pieces(held, self.masker.mask(held), names)

    def holds(self, key: Hashable) -> bool:
        """Whether a tail is held for ``key``."""
        return key in self._held

    def pending_keys(self) -> list[Hashable]:
        """Keys with a held tail, oldest first."""
        return list(self._held)

    def _pieces(self, raw: str, masked: str, names: list[tuple[str, int]]) -> list[Piece]:
        """``masked`` (``raw`` masked) cut into the stream names of ``raw``'s parts."""
        if len(names) == 1:
            return [(names[0][0], masked)] if masked else []
        pieces: list[Piece] = []
        spans = self.masker.spans(raw)
        k, start = 0, 0
        for name, length in names:
            end = start + length
            out = []
            pos = start
            while k < len(spans) and spans[k][0] < end:
                s, e, placeholder = spans[k]
                out.append(raw[pos:s] if s > pos else "")
                if s >= start:  # the match starts in this part: shown here
                    out.append(placeholder)
                pos = max(pos, e)
                if e > end:  # runs on into the next part
                    break
                k += 1
            out.append(raw[pos:end] if pos < end else "")
            _append(pieces, name, "".join(out))
            start = end
        if "".join(text for _, text in pieces) != masked:
            # The engine's split and spans disagree (they should not): stay masked, lose
            # only the stream names.
            logger.warning("stream masking: spans do not match the masked text; one stream used")
            return [(names[-1][0], masked)] if masked else []
        return pieces

    # ---- the single-stream interface of earlier versions (key per stream) ----------------
    def feed(self, key: Hashable, text: str) -> str:
        """Masked text safe to show now for a single stream ``key``."""
        if key not in self._held:  # the common case, as in write(), without the pieces
            if not text:
                return ""
            emit, tail = self.masker.split(text)
            if tail:
                self._held[key] = tail
                self._names[key] = [("", len(tail))]
            return emit
        names = self._names[key]
        if text and len(names) == 1 and not names[0][0]:
            # one unnamed part held (this interface's only kind): write() without pieces
            whole = self._held.pop(key) + text
            del self._names[key]
            emit, tail = self.masker.split(whole)
            if tail:
                self._held[key] = tail
                self._names[key] = [("", len(tail))]
            return emit
        return "".join(piece for _, piece in self.write(key, "", text))

    def flush(self, key: Hashable) -> str:
        """The held tail of a single stream ``key``, masked."""
        return "".join(piece for _, piece in self.release(key))


def _append(pieces: list[Piece], name: str, text: str) -> None:
    if not text:
        return
    if pieces and pieces[-1][0] == name:
        pieces[-1] = (name, pieces[-1][1] + text)
    else:
        pieces.append((name, text))


def _before(names: list[tuple[str, int]], cut: int) -> list[tuple[str, int]]:
    out, pos = [], 0
    for name, length in names:
        if pos >= cut:
            break
        out.append((name, min(length, cut - pos)))
        pos += length
    return out or [names[0]]


def _after(names: list[tuple[str, int]], cut: int) -> list[tuple[str, int]]:
    out, pos = [], 0
    for name, length in names:
        if pos + length > cut:
            out.append((name, pos + length - max(pos, cut)))
        pos += length
    return out


def mask_bytes(masker: Masker, data: bytes) -> bytes:
    """``data`` with every value, in any form the masker knows, overwritten by ``*``.

    Same length, so offsets into a binary buffer (arrays, images) stay valid. Uses
    ``Masker.mask_bytes`` when the engine has it.
    """
    engine = getattr(masker, "mask_bytes", None)
    if engine is not None:
        masked: bytes = engine(data)
        return masked
    return _mask_bytes(masker, data)


def _mask_bytes(masker: Masker, data: bytes) -> bytes:
    """Until the engine matches bytes itself: its spans over the bytes read as UTF-8.

    Undecodable bytes become lone surrogates (``surrogateescape``), so offsets map
    back one to one; a value's UTF-8 bytes and its ASCII forms (hex, base64, URL
    encoding...) are found wherever they are.
    """
    if not masker or not data:
        return data
    text = data.decode(*_BYTES)
    spans = masker.spans(text)
    if not spans:
        return data
    out = bytearray(data)
    if text.isascii():  # one byte per character
        for start, end, _ in spans:
            out[start:end] = b"*" * (end - start)
        return bytes(out)
    byte, char = 0, 0
    for start, end, _ in spans:
        byte += len(text[char:start].encode(*_BYTES))
        first = byte
        byte += len(text[start:end].encode(*_BYTES))
        out[first:byte] = b"*" * (byte - first)
        char = end
    return bytes(out)
