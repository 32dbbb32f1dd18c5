"""The fields of a structured secret, each a value of its own.

A secret is often a document: a service account's JSON key, a database URL, a PEM
key. Code prints one field of it (``creds["private_key"]``, ``url.password``, an
exception that quotes the part of a URL it could not parse), and that field alone
must be masked too. :func:`expand_secret` lists the secret and its fields, each with
a label ``NAME.field`` that the placeholder shows:

* JSON objects and arrays: every string leaf (``NAME.private_key``,
  ``NAME.client_email``, ``NAME.items.0``), recursively expanded itself;
* URLs with userinfo (``scheme://user:password@host/...``): ``NAME.password`` as
  written and percent-decoded, and ``NAME.userinfo``; a password may hold ``/``, ``@``
  and ``:`` unencoded (the last ``@`` before the host ends it);
* PEM blocks: every base64 line of the body as ``NAME`` (or ``NAME.field``), and the
  body without line breaks.

Leaves shorter than ``min_length`` are left out (they would match everywhere). The
document itself stays a value too: a run of its text (keys and punctuation included)
is masked like a run of any value.
Numbers and booleans inside JSON are not secrets' fields: they are left out too.
Deliberately not handled: other formats (YAML, INI, ``key=value`` DSNs), base64-
wrapped documents (a Kubernetes secret's data), nesting deeper than ``MAX_DEPTH``.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

__all__ = ["expand_secret"]

MAX_DEPTH = 8
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://(?P<rest>.*)\Z", re.DOTALL)
_PEM = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]+)-----\r?\n(?P<body>.*?)-----END (?P=label)-----",
    re.DOTALL,
)
_PEM_HEADER = re.compile(r"^[A-Za-z-]+:")  # Proc-Type:, DEK-Info: (encrypted PEM)


def expand_secret(name: str, value: str, min_length: int = 4) -> list[tuple[str, str]]:
    """``[(name, value), (name.field, field value), ...]``: the value first, no duplicates."""
    out: dict[str, str] = {}  # value -> label (the first label wins)
    _expand(name, value, min_length, out, 0)
    return [(label, v) for v, label in out.items()]


def _add(label: str, value: str, min_length: int, out: dict[str, str]) -> bool:
    if len(value) < min_length or value in out:
        return False
    out[value] = label
    return True


def _expand(label: str, value: str, min_length: int, out: dict[str, str], depth: int) -> None:
    if not _add(label, value, min_length, out) and depth:
        return
    if depth >= MAX_DEPTH:
        return
    stripped = value.strip()
    if stripped[:1] in ("{", "["):
        try:
            document = json.loads(stripped)
        except ValueError:
            document = None
        if isinstance(document, (dict, list)):
            _leaves(label, document, min_length, out, depth + 1)
            return
    if "-----BEGIN " in value:
        for match in _PEM.finditer(value):
            lines = [
                line.strip()
                for line in match.group("body").splitlines()
                if line.strip() and not _PEM_HEADER.match(line.strip())
            ]
            for line in lines:
                _add(label, line, min_length, out)
            _add(label, "".join(lines), min_length, out)
        return
    url = _URL.match(stripped)
    if url:
        rest = url.group("rest")
        host_start = rest.rfind("@")
        userinfo = rest[:host_start] if host_start > 0 else ""
        # "host/path/@x" has no userinfo: one with a "/" must have a ":" before it
        if userinfo and ("/" not in userinfo or ":" in userinfo.split("/", 1)[0]):
            user, colon, password = userinfo.partition(":")
            if colon:
                _expand(f"{label}.password", password, min_length, out, depth + 1)
                decoded = unquote(password)
                if decoded != password:
                    _expand(f"{label}.password", decoded, min_length, out, depth + 1)
            _add(f"{label}.userinfo", userinfo, min_length, out)


def _leaves(label: str, node: Any, min_length: int, out: dict[str, str], depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    if isinstance(node, dict):
        for key, child in node.items():
            _leaves(f"{label}.{key}", child, min_length, out, depth + 1)
    elif isinstance(node, list):
        for i, child in enumerate(node):
            _leaves(f"{label}.{i}", child, min_length, out, depth + 1)
    elif isinstance(node, str):
        _expand(label, node, min_length, out, depth)
