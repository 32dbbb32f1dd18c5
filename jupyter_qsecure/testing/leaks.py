"""Test helpers: does any run of a secret survive in what a browser would receive?

Answers are booleans and counts, never the matching text, so a failing assertion
does not print a secret into the test output.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import ahocorasick_rs

from ..scan.exact import fragment_sources
from ..scan.rendered import visible_text

__all__ = ["leaks", "service_account_json", "strings_in", "windows"]


def windows(value: str, k: int = 12) -> set[str]:
    """Every ``k``-character window of ``value`` and of its escaped forms, line by line."""
    out: set[str] = set()
    for source in fragment_sources(value):
        out.update(source[i : i + k] for i in range(len(source) - k + 1))
    if len(value) < k:
        out.add(value)
    return out


_PLACEHOLDER = re.compile(r"«secret:[^«»]*»")


def views(text: str) -> Iterator[str]:
    """``text`` and what a person sees of it: tags, ANSI codes and JSON escapes removed.

    Placeholders are cut out first: their labels (``sa.private_key_id``) may spell a
    key name of the document they stand for, which is no leak.
    """
    text = _PLACEHOLDER.sub("\0", text)
    yield text
    for kind, screen in (("html", "<"), ("ansi", "\x1b"), ("json", "\\")):
        if screen in text:
            yield visible_text(text, kind)[0]
    if "<" in text and "\x1b" in text:
        yield visible_text(visible_text(text, "ansi")[0], "html")[0]


def leaks(texts: Iterable[str], value: str, k: int = 12) -> int:
    """How many of ``texts`` show a run of ``k`` characters of ``value`` (or all of a shorter one)."""
    search = ahocorasick_rs.AhoCorasick(sorted(windows(value, k)))
    return sum(
        1 for text in texts if any(search.find_matches_as_indexes(view) for view in views(text))
    )


def strings_in(obj: Any) -> Iterator[str]:
    """Every string in a JSON-like structure, keys included; numbers as their JSON text."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for key, child in obj.items():
            yield from strings_in(key)
            yield from strings_in(child)
    elif isinstance(obj, (list, tuple)):
        for child in obj:
            yield from strings_in(child)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield repr(obj)


def service_account_json(project: str = "qsecure-test") -> str:
    """A fake Google service-account key, ~2,300 characters, with a fresh RSA key (PEM)."""
    import json
    import secrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    account = f"runner-{secrets.token_hex(4)}"
    return json.dumps(
        {
            "type": "service_account",
            "project_id": project,
            "private_key_id": secrets.token_hex(20),
            "private_key": pem,
            "client_email": f"{account}@{project}.iam.gserviceaccount.com",
            "client_id": str(secrets.randbelow(10**21)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
        },
        indent=2,
    )
