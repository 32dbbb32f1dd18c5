"""The visible text of rendered output, with a map back to the source.

Syntax highlighters, terminal colours and JSON serialisers cut a value into pieces
that no exact search of the source finds: ``IPython.display.Code`` wraps every token
in ``<span>``, rich colours words with ANSI codes, SVG text is split over
``<tspan>`` elements, pandas ``to_json`` writes ``/`` as ``\\/``. What a person sees
is the *visible* text: markup and escape codes removed, entities and escapes
decoded. :func:`visible_text` computes it together with, for every visible
character, the offset in the source where it comes from, so a match found in the
visible text can be mapped back to the source ranges to replace
(:func:`source_pieces`).

Deliberately simple (regular expressions, no HTML parser): this guards against
ordinary library output, not against crafted markup. Not handled: text inside
attributes (the exact search of the source covers those), CSS-generated content,
``<script>``/``<style>`` bodies (kept as visible text: it can only cause extra
masking), right-to-left reordering.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Literal

__all__ = ["Kind", "source_pieces", "token_end", "visible_text"]

Kind = Literal["html", "svg", "ansi", "json"]

# A tag, comment, doctype or processing instruction; ``<`` must be followed by what
# can start one, so ``a < b`` stays text. Quoted attribute values may hold ``>``.
_TAG = re.compile(
    r"<!--.*?(?:-->|\Z)"
    r"|<!\[CDATA\["  # CDATA opener/closer: markup; the content between is text
    r"|\]\]>"
    r"|<[A-Za-z/!?](?:\"[^\"]*\"|'[^']*'|[^'\">])*>",
    re.DOTALL,
)
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?")
# ECMA-48: CSI (ESC [ or 0x9b), OSC (ESC ] ... BEL or ST), other two-byte escapes.
_ANSI = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\|\Z)"
    r"|\x1b[ -/]*[0-~]"
)
_JSON_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a surrogate pair
    r"|\\+/"  # \/, also as repr shows it (\\/): an escaped "/"
    r"|\\(?:u[0-9a-fA-F]{4}|[\"\\bfnrt])"
)
_JSON_SIMPLE = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}


def _decode_entity(token: str) -> str | None:
    decoded = html.unescape(token)
    return decoded if decoded != token else None


def _decode_json_escape(token: str) -> str:
    if token.endswith("/"):
        return "/"
    if len(token) == 12:  # a surrogate pair: one character
        high, low = int(token[2:6], 16), int(token[8:], 16)
        return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
    if token[1] == "u":
        return chr(int(token[2:], 16))
    return _JSON_SIMPLE[token[1]]


def visible_text(source: str, kind: str) -> tuple[str, list[int]]:
    """(visible text, source offset of each visible character) of ``source``.

    ``kind`` is ``"html"`` or ``"svg"`` (tags removed, entities decoded), ``"ansi"``
    (escape codes removed) or ``"json"`` (string escapes decoded, e.g. ``\\/``,
    ``\\n``, ``\\uXXXX``; leniently, any run of backslashes before ``/`` is an
    escaped ``/``, as the ``repr`` of ``to_json`` output shows it). A decoded entity or
    escape maps to the offset where it starts; :func:`token_end` gives where it ends. ``len(map) == len(visible)``.
    Raises ``ValueError`` for another ``kind``.
    """
    if kind in ("html", "svg"):
        return _markup(source)
    if kind == "ansi":
        return _strip(source, _ANSI)
    if kind == "json":
        return _decode(source, _JSON_ESCAPE, _decode_json_escape)
    raise ValueError(f"unknown kind {kind!r}: expected one of html, svg, ansi, json")


def _strip(source: str, pattern: re.Pattern[str]) -> tuple[str, list[int]]:
    parts: list[str] = []
    index: list[int] = []
    last = 0
    for m in pattern.finditer(source):
        parts.append(source[last : m.start()])
        index.extend(range(last, m.start()))
        last = m.end()
    parts.append(source[last:])
    index.extend(range(last, len(source)))
    return "".join(parts), index


def _decode(
    source: str, pattern: re.Pattern[str], decode: Callable[[str], str | None]
) -> tuple[str, list[int]]:
    parts: list[str] = []
    index: list[int] = []
    last = 0
    for m in pattern.finditer(source):
        decoded = decode(m.group(0))
        if decoded is None:  # not a known entity: literal text
            continue
        parts.append(source[last : m.start()])
        index.extend(range(last, m.start()))
        parts.append(decoded)
        index.extend([m.start()] * len(decoded))
        last = m.end()
    parts.append(source[last:])
    index.extend(range(last, len(source)))
    return "".join(parts), index


def _markup(source: str) -> tuple[str, list[int]]:
    parts: list[str] = []
    index: list[int] = []
    last = 0
    for m in _TAG.finditer(source):
        text, where = _decode(source[last : m.start()], _ENTITY, _decode_entity)
        parts.append(text)
        index.extend(last + i for i in where)
        last = m.end()
    text, where = _decode(source[last:], _ENTITY, _decode_entity)
    parts.append(text)
    index.extend(last + i for i in where)
    return "".join(parts), index


def token_end(source: str, kind: str, start: int) -> int:
    """End offset in ``source`` of the visible character that starts at ``start``."""
    if kind in ("html", "svg") and source.startswith("&", start):
        m = _ENTITY.match(source, start)
        if m and _decode_entity(m.group(0)) is not None:
            return m.end()
    elif kind == "json" and source.startswith("\\", start):
        m = _JSON_ESCAPE.match(source, start)
        if m:
            return m.end()
    return start + 1


def source_pieces(
    source: str, kind: str, index: list[int], start: int, end: int
) -> list[tuple[int, int]]:
    """Source ranges holding visible characters ``start:end``, contiguous pieces merged.

    Markup between the pieces (tags, escape codes) is not included, so replacing the
    first piece by a placeholder and deleting the others keeps the markup intact.
    """
    pieces: list[tuple[int, int]] = []
    for i in range(start, end):
        s = index[i]
        e = token_end(source, kind, s)
        if pieces and pieces[-1][1] >= s:
            if e > pieces[-1][1]:
                pieces[-1] = (pieces[-1][0], e)
        else:
            pieces.append((s, e))
    return pieces
