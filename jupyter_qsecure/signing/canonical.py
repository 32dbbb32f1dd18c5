"""Canonical JSON (RFC 8785, JCS): the ``rfc8785`` library, with a fast path.

``rfc8785`` serialises in pure Python (about 0.1 ms for a job manifest), and the job
broker canonicalises several documents per job. For the values most documents are made
of, the standard library's C encoder already produces the RFC 8785 bytes, so
:func:`canonical_json` uses it when, and only when, that is provably the case:

- objects are ``dict`` with ``str`` keys that are all ASCII (so sorting by code point,
  as ``sort_keys`` does, equals RFC 8785's sort by UTF-16 code units);
- arrays are ``list``; scalars are ``str``, ``bool``, ``None`` and ``int`` within
  +/-(2**53 - 1) (the integers RFC 8785 can represent exactly);
- a ``float`` only when its ``repr`` has no exponent and no ``.0`` ending (Python
  writes ``1e-05``, ``1e+16`` and ``2.0`` where ECMAScript writes ``0.00001``,
  ``10000000000000000`` and ``2``); ``rfc8785`` itself writes every other float as its
  ``repr``, and ``json`` writes floats as their ``repr``, so the bytes are equal.

String escaping is the same in both (``\\b \\t \\n \\f \\r \\" \\\\``, other control
characters as lowercase ``\\u00xx``, everything else as UTF-8), and a lone surrogate,
which RFC 8785 cannot encode, fails the UTF-8 encoding and goes to ``rfc8785``. Any
other value (floats, subclasses, tuples, non-ASCII keys, other types) goes to
``rfc8785`` unchanged, so results and errors stay the library's.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

__all__ = ["canonical_json"]

_MAX_SAFE_INTEGER = 2**53 - 1
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8, ECMAScript number formatting."""
    try:
        if _plain(value):
            return _ENCODER.encode(value).encode("utf-8")
    except (RecursionError, UnicodeEncodeError):
        pass
    return rfc8785.dumps(value)


def _plain(value: Any) -> bool:
    """True when ``json`` encodes ``value`` exactly as RFC 8785 does (see the module doc)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER)
    if kind is float:  # e.g. Aer's time_taken: written as repr by both (see the module doc)
        text = repr(value)
        return "e" not in text and "n" not in text and not text.endswith(".0")
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii() or not _plain(item):
                return False
        return True
    if kind is list:
        for item in value:
            if not _plain(item):
                return False
        return True
    return False
