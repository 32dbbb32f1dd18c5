"""Mask injected credentials in everything a kernel sends to the browser.

The engine behind the kernel websocket connection (no Jupyter Server imports)::

    masker = Masker({"db_password": value, ...})     # once per set of injected values
    masker.mask(text)                                 # every form → «secret:db_password»
    streams = StreamMasker(masker)                    # one per websocket connection
    safe = mask_message(msg, masker, streams)         # any channel, deserialised message
    streams.flush(key)                                # held-back stream tail, masked

What is masked, for each value:

* every *form*: :func:`jupyter_qsecure.scan.exact.encoded_forms` (raw, JSON and HTML
  escaping, URL encoding, hex, base64 at three alignments, base64url) plus the body
  of Python's ``repr``; whole forms are matched leftmost-longest;
* every *fragment*: any run of at least ``min_fragment`` (default 12) characters of
  the value or of its JSON-/HTML-escaped or ``repr`` form, because formatters
  truncate and wrap long values (``%whos``, pandas, ``textwrap``, rich, contextual
  help, the debugger's variables, ``%xmode Verbose``); values shorter than that are
  matched whole only;
* every *field* of a structured value as a value of its own
  (:func:`jupyter_qsecure.vault.structured.expand_secret`: JSON string leaves, a URL's
  password and userinfo, PEM body lines), shown as ``«secret:NAME.field»``;
* the *visible text* of rendered output (:mod:`jupyter_qsecure.scan.rendered`):
  ``text/html`` and ``image/svg+xml`` with tags removed and entities decoded, any text
  with ANSI escape codes, any text with JSON's ``\\/`` escape, so a value cut by a
  syntax highlighter, terminal colours or ``<tspan>`` is still found; the source
  ranges it maps to are replaced;
* JSON numbers in message content and metadata that are (or hold) a value of digits;
* in binary buffers (:meth:`Masker.mask_bytes`), the UTF-8, hex and base64 forms,
  overwritten with ``*`` so the buffer keeps its size.

Speed: one Aho-Corasick pass (:mod:`jupyter_qsecure.scan.valuesearch`, Rust) per text
finds forms and fragment anchors together; the rendered passes run only when a cheap
screen (``<``, ``&``, ESC, ``\\/``) says they can matter.

Masking guards against accidents of honest work and ordinary library behaviour, not
against a user who deliberately transforms a value (reverses it, spaces it out).
Nothing here logs or shows a value: placeholders and warnings carry secret names.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..scan.exact import MIN_VALUE_LENGTH, encoded_forms, fragment_sources
from ..scan.rendered import source_pieces, visible_text
from ..scan.valuesearch import Span, ValueSearch
from .stream_masking import StreamMasker  # re-exported: it lives there now
from .structured import expand_secret

__all__ = [
    "DEFAULT_MIN_FRAGMENT",
    "MIN_FRAGMENT_FLOOR",
    "MIN_VALUE_LENGTH",
    "Masker",
    "StreamMasker",
    "forms_for",
    "mask_message",
    "placeholder",
]

logger = logging.getLogger(__name__)

DEFAULT_MIN_FRAGMENT = 12  # characters: a shorter run of a random value is noise
MIN_FRAGMENT_FLOOR = 8  # below this, fragments of ordinary words would be masked
RENDERED_MIME = {"text/html": "html", "image/svg+xml": "svg"}
_BINARY_KINDS = frozenset({"hex", "base64", "base64url"})
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def placeholder(name: str) -> str:
    """What replaces a value: names the secret, never shows (or sizes) the value."""
    return f"«secret:{name}»"


def forms_for(value: str) -> list[str]:
    """Every whole form of ``value`` that is masked: the scanner's encodings plus ``repr``."""
    return [form for form, _ in _named_forms(value)]


def _named_forms(value: str) -> list[tuple[str, str]]:
    forms = list(encoded_forms(value).items())
    body = repr(value)[1:-1]
    if body and all(body != form for form, _ in forms):
        forms.append((body, "repr"))
    return forms


_PLACEHOLDER = re.compile(r"«secret:[^«»]*»")


def _outside_placeholders(text: str, spans: list[Span]) -> list[Span]:
    """``spans`` without those inside a placeholder already in ``text``.

    A field's placeholder (``«secret:sa.private_key_id»``) can hold a run of its
    document (``private_key_id``); a second pass over masked text must leave it be.
    No run crosses a placeholder's edge: no value holds ``«`` or ``»``.
    """
    if not spans or "«" not in text:
        return spans
    ranges = [(m.start(), m.end()) for m in _PLACEHOLDER.finditer(text)]
    return [s for s in spans if not any(a <= s.start and s.end <= b for a, b in ranges)]


class Masker:
    """Replaces injected values, their encodings, fields and fragments by ``«secret:NAME»``.

    Immutable; build one per set of injected values (name → value). ``min_fragment``
    is the shortest run of a value that is masked on its own (0: whole forms only;
    otherwise at least :data:`MIN_FRAGMENT_FLOOR`). Values shorter than
    :data:`MIN_VALUE_LENGTH` are ignored (they would match everywhere) and listed in
    :attr:`ignored`. When two names share a value or a form, the first name in sorted
    order is the one shown.
    """

    __slots__ = ("_engine", "_numbers", "_placeholders", "ignored", "min_fragment", "names")

    names: tuple[str, ...]
    ignored: tuple[str, ...]
    min_fragment: int
    _engine: ValueSearch
    _placeholders: tuple[str, ...]
    _numbers: bool

    def __init__(
        self, secrets: Mapping[str, str], *, min_fragment: int = DEFAULT_MIN_FRAGMENT
    ) -> None:
        if (
            not isinstance(min_fragment, int)
            or (0 < min_fragment < MIN_FRAGMENT_FLOOR)
            or (min_fragment < 0)
        ):
            raise ValueError(
                f"min_fragment must be 0 (mask whole values only) or at least "
                f"{MIN_FRAGMENT_FLOOR} characters, not {min_fragment!r}: set "
                "QSecure.mask_fragment_min accordingly"
            )
        label_index: dict[str, int] = {}  # NAME or NAME.field -> owner index
        whole: list[tuple[str, int, str]] = []
        fragments: list[tuple[str, int]] = []
        names, ignored, numbers = [], [], False
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
            for label, part in expand_secret(name, value, MIN_VALUE_LENGTH):
                owner = label_index.setdefault(label, len(label_index))
                forms = _named_forms(part)
                if label != name:  # a field: its text forms (hex/base64 of a field is no accident)
                    forms = [(form, kind) for form, kind in forms if kind not in _BINARY_KINDS]
                whole.extend((form, owner, kind) for form, kind in forms)
                numbers = numbers or bool(_NUMBER.fullmatch(part))
                if min_fragment and len(part) >= min_fragment:
                    fragments.extend((src, owner) for src in fragment_sources(part))
        set_ = object.__setattr__
        set_(self, "names", tuple(names))
        set_(self, "ignored", tuple(ignored))
        set_(self, "min_fragment", min_fragment)
        set_(self, "_numbers", numbers)
        engine = ValueSearch(whole, fragments, min_fragment=min_fragment, raw_json=True)
        set_(self, "_engine", engine)
        set_(self, "_placeholders", tuple(placeholder(label) for label in label_index))
        if any(self._engine.find_whole(p) for p in self._placeholders):  # a name spells a value
            set_(
                self, "_placeholders", tuple(placeholder(f"#{i}") for i in range(len(label_index)))
            )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:  # names only, never values
        return f"Masker(names={list(self.names)!r}, min_fragment={self.min_fragment})"

    def __bool__(self) -> bool:
        return bool(self._engine)

    @property
    def longest_form(self) -> int:
        """Length of the longest form or fragment source: a held tail is shorter than twice it."""
        return self._engine.longest

    def contains_any(self, text: str) -> bool:
        """Whether ``text`` holds anything :meth:`mask_output` would mask, in any MIME type.

        Also right for the raw JSON of a message: escapes are decoded before the
        rendered passes are tried (an over-approximation: it may say yes to more).
        """
        if self._engine.find(text):
            return True
        if "\\" in text:
            text = visible_text(text, "json")[0]
            if self._engine.find(text):
                return True
        if "\x1b" in text:
            text = visible_text(text, "ansi")[0]
            if self._engine.find(text):
                return True
        return ("<" in text or "&" in text) and bool(
            self._engine.find(visible_text(text, "html")[0])
        )

    def mask(self, text: str) -> str:
        """``text`` with every form and fragment of a value replaced by its placeholder."""
        if len(text) < self._engine.shortest:  # e.g. "stdout", a dict key
            return text
        found = self._find(text)
        return self._render(text, found) if found else text

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """Every masked range of ``text``: (start, end, placeholder), in order, not overlapping."""
        return [(s.start, s.end, self._placeholders[s.owner]) for s in self._find(text)]

    def split(self, text: str) -> tuple[str, str]:
        """(masked text safe to emit now, raw tail to hold until more text proves what it is).

        The tail is the shortest one that more text could still make part of a match
        (the start of a form, or a run of a value that the value continues). For any
        continuation ``b``: ``mask(text + b) == emit + mask(tail + b)``.
        """
        spans, cut = self._engine.split(text)
        if not spans:  # the common case: nothing to replace
            return (text, "") if cut == len(text) else (text[:cut], text[cut:])
        spans = _outside_placeholders(text, spans)
        if cut == len(text):
            return (self._render(text, spans) if spans else text), ""
        return self._render(text[:cut], spans), text[cut:]

    def passes(self, text: str, raw: bytes | str | None = None) -> bool:
        """Whether stream ``text`` needs nothing: ``split(mask_rendered(text))`` is
        ``(text, "")``, so it can be shown as it is and nothing is held back.

        Exact (True only then): no ANSI code or JSON ``\\/`` escape to look behind, no
        form or fragment anchor anywhere (the engine's SIMD screen), and a last character
        no value continues from. The common case of kernel output, at the cost of one
        screen pass. ``raw``: the serialised JSON ``text`` was decoded from, when in hand
        (a message frame as received): the screen reads it instead of the text where that
        is exact, which saves encoding non-ASCII text (see ``ValueSearch.passes``).
        """
        return (
            "\x1b" not in text
            and ("\\" not in text or "\\/" not in text)
            and self._engine.passes(text, raw)
        )

    def may_mask(self, text: str) -> bool:
        """False only when :meth:`mask` leaves ``text`` and every substring of it as they
        are (one screen pass; True may be a false alarm). For many strings at once:
        ``masker.may_mask("\\0".join(strings))``."""
        return self._engine.may_find(text)

    def mask_rendered(self, text: str, mime: str | None = None) -> str:
        """Mask values cut up in the rendering: HTML/SVG markup (for those ``mime`` types),
        ANSI escape codes and JSON's ``\\/`` (any text). See :mod:`~jupyter_qsecure.scan.rendered`."""
        kind = RENDERED_MIME.get(mime or "")
        if kind is not None and ("<" in text or "&" in text):
            text = self._mask_visible(text, kind)
        if "\x1b" in text:
            text = self._mask_visible(text, "ansi")
        if "\\" in text and "\\/" in text:  # memchr first: "\\/" alone is a slow search
            text = self._mask_visible(text, "json")
        return text

    def mask_output(self, text: str, mime: str | None = None) -> str:
        """:meth:`mask_rendered` then :meth:`mask`: what a MIME value or other text needs."""
        if len(text) < self._engine.shortest:  # e.g. "stdout": no visible text is longer
            return text
        return self.mask(self.mask_rendered(text, mime))

    def mask_bytes(self, data: bytes | bytearray | memoryview) -> bytes:
        """``data`` with every form and fragment of a value (as UTF-8) overwritten by ``*``.

        For binary buffers (comm messages, binary files): the size and every other byte
        stay as they are. A fragment here is a run of ``min_fragment`` bytes.
        """
        raw = bytes(data)
        found = self._engine.find_bytes(raw)
        if not found:
            return raw
        out = bytearray(raw)
        for start, end, _, _ in found:
            out[start:end] = b"*" * (end - start)
        return bytes(out)

    def mask_number(self, number: int | float) -> int | float | str:
        """A JSON number that is, or holds, a value of digits → the masked string; else as is."""
        if not self._numbers:
            return number
        text = repr(number)
        masked = self.mask(text)
        return number if masked == text else masked

    def _find(self, text: str) -> list[Span]:
        return _outside_placeholders(text, self._engine.find(text))

    def _render(self, text: str, found: list[Span]) -> str:
        parts, last = [], 0
        for start, end, owner, _ in found:
            parts.append(text[last:start])
            parts.append(self._placeholders[owner])
            last = end
        parts.append(text[last:])
        return "".join(parts)

    def _mask_visible(self, source: str, kind: str) -> str:
        visible, index = visible_text(source, kind)
        if len(visible) == len(source):
            return source  # nothing removed or decoded: the plain search saw it all
        found = self._find(visible)
        if not found:
            return source
        edits: list[tuple[int, int, str]] = []
        for start, end, owner, _ in found:
            text = self._placeholders[owner]
            if kind in ("html", "svg"):
                text = html.escape(text)
            for i, (s, e) in enumerate(source_pieces(source, kind, index, start, end)):
                if edits and s < edits[-1][1]:  # one entity decoded into two spans
                    edits[-1] = (edits[-1][0], max(e, edits[-1][1]), edits[-1][2])
                else:
                    edits.append((s, e, text if i == 0 else ""))
        parts, last = [], 0
        for s, e, text in edits:
            parts.append(source[last:s])
            parts.append(text)
            last = e
        parts.append(source[last:])
        return "".join(parts)


def _mask_value(value: Any, mask: Callable[[str], str]) -> Any:
    """Every string in a JSON-like value through ``mask``, keys included (for file models)."""
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


def _mask_content(value: Any, masker: Masker, mime: str | None = None) -> Any:
    """A message's content or metadata: strings (rendered MIME types on their visible text
    too) and JSON numbers."""
    if isinstance(value, str):
        return masker.mask_output(value, mime)
    if isinstance(value, dict):
        return {
            (masker.mask(k) if isinstance(k, str) else k): _mask_content(
                v, masker, k if k in RENDERED_MIME else None
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_content(v, masker, mime) for v in value]
    if isinstance(value, tuple):
        return tuple(_mask_content(v, masker, mime) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return masker.mask_number(value)
    return value


def mask_message(
    msg: Mapping[str, Any],
    masker: Masker,
    stream: StreamMasker | None = None,
    raw: bytes | str | None = None,
) -> dict[str, Any]:
    """A copy of a deserialised Jupyter message with ``content`` and ``metadata`` masked.

    Every string is masked, recursively, keys included: MIME bundles of any type
    (base64 images are strings and are scanned; ``text/html`` and ``image/svg+xml``
    also on their visible text), ``application/json`` values (JSON numbers too),
    tracebacks (also on their text without ANSI codes), ``ename``/``evalue``,
    completion matches, ``user_expressions``, payloads, comm data. ``header`` and
    ``parent_header`` are protocol fields, not user output, and are kept. Binary
    ``buffers`` are kept as they are here: :meth:`Masker.mask_bytes` masks them where
    the websocket sends them.

    With ``stream``, an iopub ``stream`` message's text goes through the carry-over
    for (parent ``msg_id``, stream name); its text may then be shorter, or empty.

    ``raw``: the serialised JSON the message (or its ``content``) was decoded from, as
    received, when the caller holds it. Only a screen: plain stream text is then
    screened in it, not encoded again (:meth:`Masker.passes`); the result is the same.
    """
    out = dict(msg)
    if not masker:
        return out
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
        name = content.get("name")
        if len(content) == 2 and type(name) is str:
            # The common shape, {"name", "text"}: the generic layers below, inlined (this
            # runs for every line a kernel prints). Same result.
            text = content["text"]
            if stream.masker is not masker or stream.holds(key) or not masker.passes(text, raw):
                text = stream.feed(key, masker.mask_rendered(text))
            # else: the common case, nothing to mask or hold (what feed would return)
            out["content"] = {"name": masker.mask_output(name), "text": text}
            metadata = msg.get("metadata", out)
            if type(metadata) is dict and not metadata:
                out["metadata"] = {}
            elif metadata is not out:
                out["metadata"] = _mask_content(metadata, masker)
            return out
        out["content"] = {
            # the visible text first (values cut by codes), then the carry-over
            k: (
                stream.feed(key, masker.mask_rendered(v))
                if k == "text"
                else _mask_content(v, masker)
            )
            for k, v in content.items()
        }
    elif content is not None:
        out["content"] = _mask_content(content, masker)
    if "metadata" in msg:
        out["metadata"] = _mask_content(msg["metadata"], masker)
    return out
