"""Find exact values (the credentials the server injected into a kernel) and their encodings.

Given the set of values, every encoded form is computed once: the value itself,
JSON string escaping (ASCII and not), HTML escaping, URL encoding (``quote`` with
and without ``/`` safe, ``quote_plus``), hex (lower and upper case), and base64 at
the three byte alignments the value can have inside a longer encoded payload
(only the characters that depend on the value alone), each also as base64url.
All forms go into one Aho-Corasick automaton (:mod:`.valuesearch`, shared with
output masking), so a text is searched in a single pass however many values there
are, and values of any length work.

Not supported, deliberately: other encodings (gzip, rot13, per-character
splitting); values shorter than :data:`MIN_VALUE_LENGTH` (they would match
everywhere); base64 forms whose value-only part is shorter than
:data:`MIN_ENCODED_LENGTH`.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from .._lru import LRU
from .models import Detection
from .valuesearch import ValueSearch

MIN_VALUE_LENGTH = 4
MIN_ENCODED_LENGTH = 8
EXACT_TYPE = "Injected Secret"


def _base64_cores(raw: bytes) -> list[str]:
    """Base64 characters determined by ``raw`` alone, at offsets 0, 1 and 2 mod 3."""
    cores = []
    for k in range(3):
        encoded = base64.b64encode(b"\0" * k + raw).decode("ascii").rstrip("=")
        head = -(-8 * k // 6)  # chars that mix prefix bits
        tail = (8 * (k + len(raw))) // 6  # chars fully inside the value
        core = encoded[head:tail]
        if len(core) >= MIN_ENCODED_LENGTH:
            cores.append(core)
    return cores


def encoded_forms(value: str) -> dict[str, str]:
    """Every form of ``value`` searched for → the encoding's name."""
    forms: dict[str, str] = {}

    def add(form: str, name: str) -> None:
        if form and form not in forms:
            forms[form] = name

    add(value, "")
    add(json.dumps(value)[1:-1], "json")
    add(json.dumps(value, ensure_ascii=False)[1:-1], "json")
    add(html.escape(value), "html")
    add(html.escape(value, quote=False), "html")
    add(quote(value, safe=""), "url")
    add(quote(value), "url")
    add(quote_plus(value, safe=""), "url")
    raw = value.encode("utf-8")
    add(raw.hex(), "hex")
    add(raw.hex().upper(), "hex")
    for core in _base64_cores(raw):
        add(core, "base64")
        add(core.translate(str.maketrans("+/", "-_")), "base64url")
    return forms


def whole_forms(values: Iterable[str]) -> list[tuple[str, int, str]]:
    """(form, index of its value, encoding name) for each value's :func:`encoded_forms`."""
    return [
        (form, i, name)
        for i, value in enumerate(values)
        for form, name in encoded_forms(value).items()
    ]


def fragment_sources(value: str) -> list[str]:
    """The forms of ``value`` whose runs count as fragments.

    Raw, JSON- and HTML-escaped, ``repr``'s body; each cut at line breaks, raw or
    escaped: a run does not continue over one (and a held stream tail never ends in
    a newline).
    """
    forms = dict.fromkeys(
        [
            value,
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
            html.escape(value),
            html.escape(value, quote=False),
            repr(value)[1:-1],
        ]
    )
    pieces = dict.fromkeys(piece for form in forms for piece in _LINE_BREAK.split(form))
    return [piece for piece in pieces if piece]


_LINE_BREAK = re.compile(r"[\r\n]+|(?:\\[rn])+")


_CACHE: LRU[tuple[frozenset[str], int], tuple[tuple[str, ...], ValueSearch]] = LRU(8)


class ExactMatcher:
    """Finds a fixed set of values, and their common encodings, in texts.

    With ``min_fragment`` (0: off), also any run of at least that many characters of
    a value (type ``Injected Secret (fragment)``). Built on the same one-pass engine
    as output masking (:mod:`jupyter_qsecure.scan.valuesearch`); the last few engines
    are cached by value set, since the save gate asks for one on every save.
    """

    values: frozenset[str]

    def __init__(self, values: Iterable[str], *, min_fragment: int = 0) -> None:
        self.values = frozenset(
            v for v in values if isinstance(v, str) and len(v) >= MIN_VALUE_LENGTH
        )
        key = (self.values, min_fragment)
        cached = _CACHE.get(key)
        if cached is None:
            ordered = tuple(sorted(self.values))
            fragments = [(src, i) for i, v in enumerate(ordered) for src in fragment_sources(v)]
            engine = ValueSearch(
                whole_forms(ordered), fragments if min_fragment else (), min_fragment=min_fragment
            )
            cached = (ordered, engine)
            _CACHE.put(key, cached)
        self._ordered, self._engine = cached

    def __bool__(self) -> bool:
        return bool(self._engine)

    def __repr__(self) -> str:  # never show the values
        return f"ExactMatcher({len(self.values)} values, {self._engine!r})"

    def find(self, text: str) -> list[Detection]:
        """Every occurrence of a value, an encoded form or (if enabled) a fragment in ``text``."""
        if not self._engine or not text:
            return []
        out = []
        for start, end, owner, name in self._engine.find(text):
            value = self._ordered[owner]
            kind = EXACT_TYPE if not name else f"{EXACT_TYPE} ({name})"
            out.append(Detection(kind, text[start:end], start, end, fingerprint_of=value))
        return out
