"""Refuse ledger bodies that look like they carry a secret value.

Entries carry hashes, lease ids and accessors, never secrets. This guard is a
fast, dependency-free first line (a handful of anchored patterns and field
names), deliberately narrower than the notebook scanner: it must never refuse
a SHA-256 hex digest, a UUID, a lease id or an accessor.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

from ..errors import InvalidEntry

#: Value patterns: (type name, compiled regex). Matched with ``search``.
_VALUE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("PEM private key", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")),
    ("Vault/OpenBao token", re.compile(r"\b(?:hv[sbr]|s|b|r)\.[A-Za-z0-9_-]{20,}")),
    ("AWS access key", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("OpenAI-style key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}")),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    (
        "JSON Web Token",
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ),
    ("URL with password", re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:[^/\s@]+@")),
    ("Authorization header", re.compile(r"(?i:\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{16,})")),
    ("Azure storage key", re.compile(r"(?i:AccountKey=[A-Za-z0-9+/=]{20,})")),
)
#: All value patterns in one alternation: one ``search`` per string on the hot path (a
#: ledger append); the group that matched names the type.
_ANY_VALUE = re.compile(
    "|".join(f"(?P<p{i}>{pattern.pattern})" for i, (_, pattern) in enumerate(_VALUE_PATTERNS))
)

#: No value pattern matches fewer characters ("a://b:c@" is the shortest match).
_SHORTEST_MATCH = 8

_SECRET_FIELD = re.compile(
    r"(?i)(?:^|_)(?:pass(?:word|wd|phrase)?|secret|token|api_?key|private_?key|"
    r"credential|client_secret|secret_id|access_key|auth)(?:$|_)"
)
_SAFE_FIELD = re.compile(
    r"(?i)(?:hash|hashed|digest|sha256|accessor|lease|_id$|_ids$|ttl|type|types|kind|name|"
    r"names|count|policies|policy|path|version|expires|expiry|renewable|issued|mount|role)"
)


@functools.lru_cache(maxsize=4096)
def _named_like_a_secret(key: str) -> bool:
    return bool(_SECRET_FIELD.search(key)) and not _SAFE_FIELD.search(key)


def _walk(value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """Yield (dotted path, last key, value) for every scalar in a JSON-like value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for position, item in enumerate(value):
            yield from _walk(item, f"{path}[{position}]")
    else:
        yield path, path.rsplit(".", 1)[-1].split("[", 1)[0], value


@functools.lru_cache(maxsize=4096)
def _key_named_like_a_secret(key: str) -> bool:
    """:func:`_named_like_a_secret` of the name :func:`_walk` derives from a dict key."""
    return _named_like_a_secret(key.rsplit(".", 1)[-1].split("[", 1)[0])


def _value_match(value: str) -> re.Match[str] | None:
    """Where ``value`` matches a secret-value pattern, or None."""
    if len(value) < _SHORTEST_MATCH or (
        value.isalnum() and "AKIA" not in value and "ASIA" not in value
    ):
        return None  # hashes, ids, words: only the AWS pattern matches letters and digits alone
    return _ANY_VALUE.search(value)


def _value_suspect(value: str) -> bool:
    return _value_match(value) is not None


def _suspect(value: Any, named_like_a_secret: bool) -> bool:
    """True if :func:`_check` would refuse ``value``: the hot path (every ledger append)
    walks without building the dotted paths that only an error message needs, and checks
    a dict's strings in its own loop (most values are)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str):
                if item and (
                    _key_named_like_a_secret(str(key))
                    or (len(item) >= _SHORTEST_MATCH and _value_suspect(item))
                ):
                    return True
            elif isinstance(item, (dict, list, tuple)) and _suspect(
                item, _key_named_like_a_secret(str(key))
            ):
                return True
        return False
    if isinstance(value, (list, tuple)):
        return any(_suspect(item, named_like_a_secret) for item in value)
    if not isinstance(value, str) or not value:
        return False
    return named_like_a_secret or _value_suspect(value)


def check_no_secrets(body: dict[str, Any], *, kind: str) -> None:
    """Raise :class:`InvalidEntry` naming the field if any value looks like a secret."""
    if _suspect(body, _named_like_a_secret("body")):
        _check(body, kind=kind)


def _check(body: dict[str, Any], *, kind: str) -> None:
    for path, key, value in _walk(body, "body"):
        if not isinstance(value, str) or not value:
            continue
        if _named_like_a_secret(key):
            raise InvalidEntry(
                f"ledger entry of kind {kind!r}: field {path!r} is named like a secret",
                hint="record the secret's keyed fingerprint, lease id or accessor, never its value "
                "(e.g. name the field 'token_accessor' or 'fingerprint')",
            )
        found = _value_match(value)
        if found is not None:
            type_name = _VALUE_PATTERNS[int(str(found.lastgroup)[1:])][0]
            raise InvalidEntry(
                f"ledger entry of kind {kind!r}: field {path!r} looks like a secret value "
                f"({type_name})",
                hint="record the secret's keyed fingerprint, lease id or accessor instead",
            )
