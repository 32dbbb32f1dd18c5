"""Mask injected credentials in everything a kernel sends to the browser.

The engine behind the kernel websocket connection (no Jupyter Server imports)::

    masker = Masker({"db_password": value, ...})     # once per set of injected values
    masker.mask(text)                                 # every form → «secret:db_password»
    streams = StreamMasker(masker)                    # one per websocket connection
    safe = mask_message(msg, masker, streams)         # any channel, deserialised message
    streams.flush(key)                                # held-back stream tail, masked

Forms searched for each value are :func:`jupyter_qsecure.scan.exact.encoded_forms`
(raw, JSON and HTML escaping, URL encoding, hex, base64 at three alignments,
base64url) plus the body of Python's ``repr`` (what an ``execute_result`` shows for
a returned string). Matching is leftmost-longest, in one pass over the text.

Speed: every text is encoded to UTF-8 once and searched by Aho-Corasick automata in
Rust. With more than 64 forms the search first runs shards of at most 64 forms, which
the library executes with its SIMD ("Teddy") searcher at several GB/s; only a text
that really contains a form is searched again by the full automaton for
leftmost-longest matches. Most texts contain no form and cost one encode plus the
shards.

Nothing here logs or shows a value: placeholders and warnings carry secret names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# ahocorasick-rs (Rust, maintained by G-Research): GB/s SIMD search, 10-100x pyahocorasick and re.
import ahocorasick_rs

from ..scan.exact import MIN_VALUE_LENGTH, encoded_forms
from .stream_masking import StreamMasker  # re-exported: it lives there now

__all__ = [
    "MIN_VALUE_LENGTH",
    "Masker",
    "StreamMasker",
    "forms_for",
    "mask_message",
    "placeholder",
]

logger = logging.getLogger(__name__)

SHARD_SIZE = 64  # the library's SIMD searcher handles up to 64 patterns
SHORT_TEXT = 256  # bytes: below this one search by the full automaton beats the shards
DFA_LIMIT = 250_000  # total pattern bytes up to which the full automaton is a DFA
_ENCODING = ("utf-8", "surrogatepass")  # JSON can carry lone surrogates; never fail

Match = tuple[int, int, int]  # (pattern index, start, end) in characters


def placeholder(name: str) -> str:
    """What replaces a value: names the secret, never shows (or sizes) the value."""
    return f"«secret:{name}»"


def forms_for(value: str) -> list[str]:
    """Every form of ``value`` that is masked: the scanner's encodings plus ``repr``."""
    forms = list(encoded_forms(value))
    body = repr(value)[1:-1]
    if body and body not in forms:
        forms.append(body)
    return forms


class Masker:
    """Replaces injected values, and their encodings, by ``«secret:NAME»``.

    Immutable; build one per set of injected values (name → value). Values shorter
    than :data:`MIN_VALUE_LENGTH` are ignored (they would match everywhere) and
    listed in :attr:`ignored`. When two names share a value or a form, the first name
    in sorted order is the one shown.
    """

    __slots__ = (
        "_full",
        "_longest",
        "_placeholders",
        "_prefix_hashes",
        "_shards",
        "_shortest",
        "_starts",
        "_tail_chars",
        "ignored",
        "names",
    )

    names: tuple[str, ...]
    ignored: tuple[str, ...]
    _full: ahocorasick_rs.BytesAhoCorasick | None
    _shards: tuple[ahocorasick_rs.BytesAhoCorasick, ...] | None
    _starts: ahocorasick_rs.BytesAhoCorasick | None
    _placeholders: tuple[str, ...]
    _longest: int
    _shortest: int
    _tail_chars: frozenset[str]
    _prefix_hashes: frozenset[int]

    def __init__(self, secrets: Mapping[str, str]) -> None:
        owner: dict[str, str] = {}  # form → secret name
        names, ignored = [], []
        for name in sorted(secrets):
            value = secrets[name]
            if not isinstance(value, str) or len(value) < MIN_VALUE_LENGTH:
                logger.warning(
                    "secret %r is not masked: its value is shorter than %d characters",
                    name,
                    MIN_VALUE_LENGTH,
                )
                ignored.append(name)
                continue
            names.append(name)
            for form in forms_for(value):
                owner.setdefault(form, name)
        patterns = sorted(owner)
        encoded = [p.encode(*_ENCODING) for p in patterns]
        full = starts = None
        shards: tuple[ahocorasick_rs.BytesAhoCorasick, ...] | None = None
        if encoded:
            kind = ahocorasick_rs.MATCHKIND_LEFTMOST_LONGEST
            dfa = ahocorasick_rs.Implementation.DFA if sum(map(len, encoded)) <= DFA_LIMIT else None
            full = ahocorasick_rs.BytesAhoCorasick(encoded, matchkind=kind, implementation=dfa)
            if len(encoded) > SHARD_SIZE:  # sorted: shards of similar forms search faster
                shards = tuple(
                    ahocorasick_rs.BytesAhoCorasick(encoded[i : i + SHARD_SIZE], matchkind=kind)
                    for i in range(0, len(encoded), SHARD_SIZE)
                )
            # where a form may start in a stream's tail (first 3 characters; all forms have 4+)
            starts = ahocorasick_rs.BytesAhoCorasick(
                sorted({p[:3].encode(*_ENCODING) for p in patterns})
            )
        set_ = object.__setattr__
        set_(self, "names", tuple(names))
        set_(self, "ignored", tuple(ignored))
        set_(self, "_full", full)
        set_(self, "_shards", shards)
        set_(self, "_starts", starts)
        set_(self, "_placeholders", tuple(placeholder(owner[p]) for p in patterns))
        # For StreamMasker: which text tails could be the start of a form.
        set_(self, "_longest", max(map(len, patterns), default=0))
        set_(self, "_shortest", min(map(len, patterns), default=0))
        set_(self, "_tail_chars", frozenset(c for p in patterns for c in p[:-1]))
        set_(
            self,
            "_prefix_hashes",
            frozenset(hash(p[:k]) for p in patterns for k in range(1, len(p))),
        )
        if any(self._find(text) for text in self._placeholders):  # a name spelling out a value
            set_(self, "_placeholders", tuple(placeholder(f"#{i}") for i in range(len(patterns))))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:  # names only, never values
        return f"Masker(names={list(self.names)!r}, forms={len(self._placeholders)})"

    def __bool__(self) -> bool:
        return self._full is not None

    @property
    def longest_form(self) -> int:
        """Length of the longest form: a stream holds back at most one less."""
        return self._longest

    def contains_any(self, text: str) -> bool:
        """Whether ``text`` contains any value or encoded form."""
        return bool(self._find(text, first_only=True))

    def mask(self, text: str) -> str:
        """``text`` with every value and encoded form replaced by its placeholder."""
        found = self._find(text)
        return _render(text, found, self._placeholders) if found else text

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """Every masked range of ``text``: (start, end, placeholder), in order, not overlapping."""
        return [(start, end, self._placeholders[index]) for index, start, end in self._find(text)]

    def split(self, text: str) -> tuple[str, str]:
        """(masked text safe to emit now, raw tail to hold until more text proves what it is).

        ``mask(a + b) == emit + mask(tail + b)`` for the returned pair; see :class:`StreamMasker`.
        """
        return self._split(text)

    def _find(self, text: str, first_only: bool = False) -> list[Match]:
        """Leftmost-longest, non-overlapping matches, as character offsets."""
        if self._full is None or len(text) < self._shortest:
            return []
        data = text.encode(*_ENCODING)
        if self._shards is not None and len(data) > SHORT_TEXT:
            for shard in self._shards:
                hit = shard.find_matches_as_indexes(data)
                if hit:
                    if first_only:  # contains_any: any match will do
                        return hit
                    break
            else:
                return []
        found: list[Match] = self._full.find_matches_as_indexes(data)
        if not found or text.isascii():
            return found
        out, byte, char = [], 0, 0  # UTF-8 byte offsets → character offsets
        for index, start, end in found:
            char += len(data[byte:start].decode(*_ENCODING))
            first = char
            char += len(data[start:end].decode(*_ENCODING))
            out.append((index, first, char))
            byte = end
        return out

    def _tail_starts(self, text: str) -> list[int]:
        """Offsets ``p`` (ascending) where ``text[p:]`` is a proper prefix of a form."""
        n = len(text)
        if not n or text[-1] not in self._tail_chars or self._starts is None:
            return []  # e.g. output ending in a newline: the common case, nothing held
        low = max(0, n - self._longest + 1)
        window = text[low:]
        data = window.encode(*_ENCODING)
        found = {
            start for _, start, _ in self._starts.find_matches_as_indexes(data, overlapping=True)
        }
        if not window.isascii():  # UTF-8 byte offsets → character offsets
            found = {len(data[:start].decode(*_ENCODING)) for start in found}
        candidates = sorted({low + start for start in found} | {n - 2, n - 1})
        hashes = self._prefix_hashes  # a hash collision only holds back a little more
        return [p for p in candidates if p >= low and hash(text[p:]) in hashes]

    def _split(self, text: str) -> tuple[str, str]:
        """(masked text safe to emit now, raw tail to hold back until more text comes).

        The cut is placed so that emitting ``mask(head)`` now and masking the tail
        together with whatever follows gives exactly ``mask(whole stream)``: it is
        the first offset, not inside an accepted match, where a form could start
        and run past the end of ``text``.
        """
        found = self._find(text)
        starts = self._tail_starts(text)
        if not starts:
            return (_render(text, found, self._placeholders) if found else text), ""
        accepted: list[Match] = []
        pos, k, cut = 0, 0, len(text)
        for match in found + [(-1, len(text), len(text))]:
            while k < len(starts) and starts[k] < pos:
                k += 1  # inside an accepted match: cannot start a match any more
            if k < len(starts) and starts[k] <= match[1]:
                cut = starts[k]
                break
            accepted.append(match)
            pos = match[2]
        accepted = [m for m in accepted if m[0] >= 0]
        return _render(text[:cut], accepted, self._placeholders), text[cut:]


def _render(text: str, found: Iterable[Match], placeholders: tuple[str, ...]) -> str:
    parts, last = [], 0
    for index, start, end in found:
        parts.append(text[last:start])
        parts.append(placeholders[index])
        last = end
    parts.append(text[last:])
    return "".join(parts)


def _mask_value(value: Any, mask: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {
            (mask(k) if isinstance(k, str) else k): _mask_value(v, mask) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_value(v, mask) for v in value]
    if isinstance(value, tuple):
        return tuple(_mask_value(v, mask) for v in value)
    return value


def mask_message(
    msg: Mapping[str, Any], masker: Masker, stream: StreamMasker | None = None
) -> dict[str, Any]:
    """A copy of a deserialised Jupyter message with ``content`` and ``metadata`` masked.

    Every string is masked, recursively, keys included: MIME bundles of any type
    (base64 images are strings and are scanned), ``application/json`` values,
    tracebacks, ``ename``/``evalue``, completion matches, ``user_expressions``,
    payloads, comm data. ``header`` and ``parent_header`` are protocol fields, not
    user output, and are kept. Binary ``buffers`` are kept as they are: they are
    raw bytes (arrays, images) whose meaning only the comm's code knows; the
    save-time scanner's exact matching covers what lands in a notebook.

    With ``stream``, an iopub ``stream`` message's text goes through the carry-over
    for (parent ``msg_id``, stream name); its text may then be shorter, or empty.
    """
    out = dict(msg)
    if not masker:
        return out
    mask = masker.mask
    content = msg.get("content")
    header = msg.get("header") or {}
    msg_type = header.get("msg_type", msg.get("msg_type"))
    if (
        stream is not None
        and msg_type == "stream"
        and isinstance(content, dict)
        and isinstance(content.get("text"), str)
    ):
        key = ((msg.get("parent_header") or {}).get("msg_id"), content.get("name"))
        out["content"] = {
            k: (stream.feed(key, v) if k == "text" else _mask_value(v, mask))
            for k, v in content.items()
        }
    elif content is not None:
        out["content"] = _mask_value(content, mask)
    if "metadata" in msg:
        out["metadata"] = _mask_value(msg["metadata"], mask)
    return out
