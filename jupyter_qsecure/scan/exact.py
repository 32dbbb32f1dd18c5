"""Find exact values (the credentials the server injected into a kernel) and their encodings.

Given the set of values, every encoded form is computed once: the value itself,
JSON string escaping (ASCII and not), HTML escaping, URL encoding (``quote`` with
and without ``/`` safe, ``quote_plus``), hex (lower and upper case), and base64 at
the three byte alignments the value can have inside a longer encoded payload
(only the characters that depend on the value alone), each also as base64url.
All forms go into one trie-shaped regular expression, so a text is searched in a
single pass however many values there are.

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
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

from .models import Detection

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


def _trie_regex(words: Iterable[str]) -> str:
    trie: dict[str, dict] = {}  # type: ignore[type-arg]
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:  # type: ignore[type-arg]
        ends = "" in node
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            return "(?:" + body + ")?"
        return body

    return build(trie)


@dataclass
class ExactMatcher:
    """Finds a fixed set of values, and their common encodings, in texts."""

    values: frozenset[str]
    _forms: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    _regex: re.Pattern[str] | None = field(default=None, repr=False)

    def __init__(self, values: Iterable[str]) -> None:
        self.values = frozenset(
            v for v in values if isinstance(v, str) and len(v) >= MIN_VALUE_LENGTH
        )
        self._forms = {}
        for value in sorted(self.values):
            for form, name in encoded_forms(value).items():
                self._forms.setdefault(form, (value, name))
        self._regex = re.compile(_trie_regex(self._forms)) if self._forms else None

    def __bool__(self) -> bool:
        return self._regex is not None

    def __repr__(self) -> str:  # never show the values
        return f"ExactMatcher({len(self.values)} values, {len(self._forms)} forms)"

    def find(self, text: str) -> list[Detection]:
        """Every occurrence of a value or an encoded form in ``text``."""
        if self._regex is None or not text:
            return []
        out = []
        for m in self._regex.finditer(text):
            value, name = self._forms[m.group(0)]
            kind = EXACT_TYPE if not name else f"{EXACT_TYPE} ({name})"
            out.append(Detection(kind, m.group(0), m.start(), m.end(), fingerprint_of=value))
        return out
