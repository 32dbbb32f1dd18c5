"""Files and terminals the server shows: injected values masked, exposures noted.

A kernel writes what it likes to disk (``run.log``, ``config.json``,
``results.csv``, a notebook with outputs); the server later sends those bytes to
the browser through the contents API, ``/files`` and downloads, nbconvert, and a
terminal's ``cat``. This module is the engine for those paths (no Jupyter Server
or Tornado imports); ``jupyter_qsecure_server.file_masking`` wires it in::

    masked, names = mask_model(model, masker)      # a contents model: text, base64, notebook
    files = FileMasker(masker)                     # a file's bytes, streamed in chunks
    out = files.feed(chunk) ... files.finish()     # files.names: secrets found
    term = TerminalMasking(service.masker)         # one per terminal websocket
    term.output(text) / term.release()             # release: before the user's input
    ExposureLog(ledger).record(...)                # "path held NAME", once per file version

One rule for file bytes: UTF-8 text has each value replaced by its
``«secret:NAME»`` placeholder (what the user reads), anything else (binary, or
text in another encoding from the first byte that is not UTF-8 on) has each value
overwritten in place by ``*`` of the same length, so offsets and the structure of
a binary file survive. A streamed file holds back only a tail that may still
become a value (:meth:`Masker.split`), so a value cut by a chunk boundary is
masked as if the file had been read whole.

Deliberately not covered: compressed files (gzip, zip, parquet pages), and text
in UTF-16/32 (searched only for forms whose UTF-8 bytes occur in it).
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

import nbformat

from .._lru import LRU
from ..identity import user_actor
from ..ledger import EntryFilter
from .masking import Masker, StreamMasker, _mask_value

__all__ = [
    "KIND",
    "ExposureLog",
    "FileMasker",
    "TerminalMasking",
    "mask_bytes",
    "mask_file_bytes",
    "mask_model",
    "mask_text",
    "secret_names",
]

logger = logging.getLogger(__name__)

#: Ledger entry kind: a file the server sent to the browser held an injected value.
KIND = "file.masked"
#: Bytes read from disk per step when a file is streamed.
CHUNK_SIZE = 256 * 1024

_PLACEHOLDER = re.compile(r"«secret:([^»]+)»")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a non-UTF-8 byte
_UNKNOWN = "?"  # a name, when the engine masked bytes that no text span explains


class _Ledger(Protocol):
    def append(self, kind: str, body: dict[str, Any], *, actor: str | None = None) -> Any: ...

    def entries(self, where: Any = None) -> list[Any]: ...


def secret_names(spans: Iterable[tuple[int, int, str]]) -> set[str]:
    """The secret names in :meth:`Masker.spans` output (parsed from the placeholders)."""
    names = set()
    for _, _, text in spans:
        found = _PLACEHOLDER.fullmatch(text)
        names.add(found.group(1) if found else _UNKNOWN)
    return names


def mask_text(text: str, masker: Masker) -> tuple[str, set[str]]:
    """``masker.mask(text)`` and the names of the secrets it replaced."""
    masked = masker.mask(text)
    if masked is text or masked == text:
        return text, set()
    names = secret_names(masker.spans(text)) or set(_PLACEHOLDER.findall(masked)) or {_UNKNOWN}
    return masked, names


def mask_bytes(data: bytes, masker: Masker) -> bytes:
    """Every value form in ``data`` overwritten by ``*`` of the same byte length.

    Uses the engine's ``Masker.mask_bytes`` when it has one; otherwise finds the
    forms on the UTF-8 reading of ``data`` (undecodable bytes kept as escapes, so
    offsets map back exactly) through the public :meth:`Masker.spans`.
    """
    native: Callable[[bytes], bytes] | None = getattr(masker, "mask_bytes", None)
    if native is not None:
        return native(data)
    return _mask_bytes_by_spans(data, masker)


def _mask_bytes_by_spans(data: bytes, masker: Masker) -> bytes:
    """:func:`mask_bytes` through ``Masker.spans`` (for an engine without ``mask_bytes``)."""
    text = data.decode("utf-8", "surrogateescape")
    spans = masker.spans(text)
    if not spans:
        return data
    out = bytearray(data)
    ascii_ = text.isascii()
    char = byte = 0  # a running character -> byte offset, for non-ASCII text
    for start, end, _ in spans:
        if ascii_:
            first, last = start, end
        else:
            byte += len(text[char:start].encode("utf-8", "surrogateescape"))
            first = byte
            byte += len(text[start:end].encode("utf-8", "surrogateescape"))
            last, char = byte, end
        out[first:last] = b"*" * (last - first)
    return bytes(out)


class FileMasker:
    """A file's bytes, fed in chunks of any size, masked as the file would be read whole.

    ``feed`` returns the masked bytes that are safe to send now and holds back at
    most one value's length (a tail that may still become a value); ``finish``
    returns the rest. The output is text-masked (placeholders) while every byte
    seen so far is UTF-8 and byte-masked (same length) from the first chunk that
    is not. :attr:`names` collects the secrets found.
    """

    __slots__ = ("_binary", "_decoder", "_held", "_masker", "names")

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        # surrogateescape: never fails, and encodes back to exactly the bytes read
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._held = ""
        self._binary = False
        self.names: set[str] = set()

    @property
    def binary(self) -> bool:
        """Whether the bytes seen so far included one that is not UTF-8 text."""
        return self._binary

    def feed(self, data: bytes) -> bytes:
        return self._emit(self._decoder.decode(data), final=False)

    def finish(self) -> bytes:
        return self._emit(self._decoder.decode(b"", final=True), final=True)

    def _emit(self, text: str, final: bool) -> bytes:
        if not self._binary and not text.isascii() and _ESCAPED_BYTE.search(text):
            self._binary = True
        whole = self._held + text if self._held else text
        masked: str | None = None
        if final:
            tail = ""
        else:
            masked, tail = self._masker.split(whole)
        self._held = tail
        head = whole[: len(whole) - len(tail)] if tail else whole
        if self._binary:
            raw = head.encode("utf-8", "surrogateescape")
            out = mask_bytes(raw, self._masker)
            if out != raw:
                self.names |= secret_names(self._masker.spans(head)) or {_UNKNOWN}
            return out
        if masked is None:
            masked = self._masker.mask(head)
        if masked is head or masked == head:
            return head.encode("utf-8")
        found = secret_names(self._masker.spans(head))
        self.names |= found or set(_PLACEHOLDER.findall(masked)) or {_UNKNOWN}
        return masked.encode("utf-8")


def mask_file_bytes(data: bytes, masker: Masker) -> tuple[bytes, set[str]]:
    """A whole file's bytes masked by the :class:`FileMasker` rule, and the names found."""
    files = FileMasker(masker)
    out = files.feed(data) + files.finish()
    return out, files.names


def mask_model(model: dict[str, Any], masker: Masker) -> tuple[dict[str, Any], set[str]]:
    """A contents-API model with every string masked, and the names of the secrets found.

    Notebooks: every string of the notebook JSON (sources, outputs, metadata, and
    the keys), returned as a ``NotebookNode`` again. Files in ``text`` format: the
    text. Files in ``base64`` format: the decoded bytes by the :class:`FileMasker`
    rule, encoded again. Directory listings: the names and paths of the entries.
    """
    names: set[str] = set()

    def mask(text: str) -> str:
        masked, found = mask_text(text, masker)
        names.update(found)
        return masked

    content = model.get("content")
    if model.get("format") == "base64" and isinstance(content, str):
        out: dict[str, Any] = _mask_value({k: v for k, v in model.items() if k != "content"}, mask)
        raw = base64.b64decode(content)
        masked, found = mask_file_bytes(raw, masker)
        names.update(found)
        if masked != raw:
            out["content"] = base64.b64encode(masked).decode("ascii")
            _rehash(out, masked)
        else:
            out["content"] = content
        return out, names
    if not masker.may_mask("\0".join(_strings(model))):
        return model, names  # the common case: one screen pass, no copy of the model
    out = _mask_value(model, mask)
    if names and isinstance(out.get("content"), str):
        _rehash(out, out["content"].encode("utf-8"))
    elif names and isinstance(out.get("content"), (dict, list)):
        _rehash(out, json.dumps(out["content"], ensure_ascii=False, default=str).encode("utf-8"))
    if model.get("type") == "notebook" and isinstance(out.get("content"), dict):
        out["content"] = nbformat.from_dict(out["content"])  # type: ignore[no-untyped-call]
    return out, names


def _strings(value: Any) -> list[str]:
    """Every string in a JSON-like value, dict keys included (what :func:`mask_model` masks)."""
    found: list[str] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            found.extend(k for k in item if isinstance(k, str))
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return found


def _rehash(model: dict[str, Any], shown: bytes) -> None:
    """A requested content hash, of what is shown: never a digest of bytes holding a value."""
    if model.get("hash") is None:
        return
    try:
        model["hash"] = hashlib.new(str(model.get("hash_algorithm")), shown).hexdigest()
    except (ValueError, TypeError):  # an algorithm hashlib does not know: no hash at all
        model["hash"] = hashlib.sha256(shown).hexdigest()
        model["hash_algorithm"] = "sha256"


class TerminalMasking:
    """A terminal's output stream, masked; a value split across reads is still masked.

    A terminal has no "end of output" signal, so a held tail (only ever a prefix of
    a value, see :class:`StreamMasker`) goes out with the next output or, by
    :meth:`release`, before the next message from the user is acted on. Never on
    a timer. ``current`` returns the server's masker now (None: nothing to mask);
    a new masker (values injected or dropped) first releases what the old one held.
    """

    _KEY = "stdout"

    def __init__(self, current: Callable[[], Masker | None]) -> None:
        self._current = current
        self._masker: Masker | None = None
        self._stream: StreamMasker | None = None

    def output(self, text: str) -> str:
        """What to send of ``text`` now (possibly less than it, or more: a released tail)."""
        masker = self._current()
        released = self.release() if masker is not self._masker else ""
        if masker is not self._masker:
            self._masker = masker
            self._stream = StreamMasker(masker) if masker else None
        if self._stream is None:
            return released + text
        return released + self._stream.feed(self._KEY, text)

    def release(self) -> str:
        """The held tail, masked (empty when nothing is held)."""
        return self._stream.flush(self._KEY) if self._stream is not None else ""


def configured_name(name: str) -> str:
    """The configured secret name behind a placeholder name (``ibm~2`` -> ``ibm``)."""
    return re.sub(r"~\d+$", "", name)


class ExposureLog:
    """Records in the ledger that a file the server sent held injected values.

    One entry (kind :data:`KIND`) per file version (path, modification time, size),
    naming the secrets, never a value; a later read of the same version records
    again only if it found a secret not yet named. Remembers the newest
    ``remember`` versions, seeded from the ledger so a restart does not repeat them.
    """

    def __init__(self, ledger: _Ledger, *, remember: int = 10_000) -> None:
        self._ledger = ledger
        self._seen: LRU[tuple[str, str | None, int | None], frozenset[str]] = LRU(remember)
        self._lock = threading.Lock()
        for entry in ledger.entries(EntryFilter(kinds=[KIND], last=remember)):
            body = entry.body
            key = (str(body.get("path")), body.get("modified"), body.get("size"))
            names = frozenset(body.get("secret_names") or ())
            self._seen.put(key, names | (self._seen.get(key) or frozenset()))

    def record(
        self,
        path: str,
        modified: datetime | str | None,
        size: int | None,
        names: Iterable[str],
        *,
        via: str,
        user: str,
        masker: Masker | None = None,
    ) -> bool:
        """Append an entry unless this version was already recorded with these names.

        ``path`` is masked with ``masker`` first (a file may be named after a value).
        Returns whether an entry was appended; raises what the ledger raises.
        """
        wanted = frozenset(configured_name(n) for n in names)
        if not wanted:
            return False
        if masker is not None:
            path = masker.mask(path)
        stamp = modified.isoformat() if isinstance(modified, datetime) else modified
        key = (path, stamp, size)
        with self._lock:
            seen = self._seen.get(key) or frozenset()
            if wanted <= seen:
                return False
            self._seen.put(key, seen | wanted)
        body = {
            "path": path,
            "modified": stamp,
            "size": size,
            "secret_names": sorted(seen | wanted),
            "via": via,
        }
        try:
            self._ledger.append(KIND, body, actor=user_actor(user))
        except BaseException:
            with self._lock:
                self._seen.put(key, seen)  # not recorded: the next read tries again
            raise
        return True
