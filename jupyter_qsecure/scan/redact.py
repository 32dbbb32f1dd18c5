"""Replace found secrets by a visible placeholder naming their type: ``«secret:AWS Access Key»``.

For the save gate's ``redact`` mode. Works from a :class:`~.engine.ScanResult`,
whose internal matches carry each secret's span in its text unit; spans map back
to the notebook character for character where the text was not transformed. Where
it was (HTML, ANSI-coloured tracebacks, masked data URIs), the secret's literal
forms (as is, HTML-escaped, JSON-escaped) are replaced in the raw string, and if
none is found there, the whole string is replaced: redaction errs on the side of
removing too much. :func:`redact_notebook` re-scans its result and repeats that
fallback until the copy is clean.
"""

from __future__ import annotations

import copy
import html
import json
from collections.abc import MutableMapping
from typing import Any

from .engine import Scanner, ScanResult, default_scanner
from .extract import PathKey, as_text
from .fingerprints import FingerprintIndex
from .models import Match

PLACEHOLDER_PREFIX = "«secret:"


def placeholder_for(secret_type: str) -> str:
    """The visible placeholder that replaces a secret of ``secret_type``."""
    return f"{PLACEHOLDER_PREFIX}{secret_type}»"


def _get(root: Any, path: tuple[PathKey, ...]) -> tuple[Any, PathKey] | None:
    """The container of the string at ``path`` and its key there, or None if ``path`` does
    not lead to a container. A piece's path is never empty: it names a string inside the
    notebook (or the key of the text holder of :func:`redact_text`)."""
    *parents, key = path
    node = root
    for step in parents:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    return node, key


def _literal_forms(secret: str) -> list[str]:
    forms = [
        secret,
        html.escape(secret),
        html.escape(secret, quote=False),
        json.dumps(secret)[1:-1],
    ]
    return sorted({f for f in forms if f}, key=len, reverse=True)


def _apply(root: Any, matches: list[Match], result: ScanResult) -> None:
    spans: dict[tuple[PathKey, ...], list[tuple[int, int, str]]] = {}
    literals: dict[tuple[PathKey, ...], list[tuple[str, str]]] = {}
    for m in matches:
        unit = result.units[m.unit_index]
        placeholder = placeholder_for(m.finding.type)
        first = True
        for piece in unit.pieces:
            if piece.end <= m.start or piece.start >= m.end:
                if not (piece.start == piece.end == m.start):
                    continue
            if piece.exact:
                lo = max(m.start, piece.start) - piece.start
                hi = min(m.end, piece.end) - piece.start
                spans.setdefault(piece.path, []).append((lo, hi, placeholder if first else ""))
            else:
                literals.setdefault(piece.path, []).append((m.secret, placeholder))
            first = False
    for path, edits in spans.items():
        loc = _get(root, path)
        if loc is None:
            continue
        parent, key = loc
        text = as_text(parent[key])
        merged: list[tuple[int, int, str]] = []
        for lo, hi, rep in sorted(edits):
            if merged and lo < merged[-1][1]:
                plo, phi, prep = merged[-1]
                merged[-1] = (plo, max(phi, hi), prep or rep)
            else:
                merged.append((lo, hi, rep))
        for lo, hi, rep in reversed(merged):
            text = text[:lo] + rep + text[hi:]
        parent[key] = text
    for path, pairs in literals.items():
        loc = _get(root, path)
        if loc is None:
            continue
        parent, key = loc
        text = as_text(parent[key])
        done: set[str] = set()
        for secret, placeholder in pairs:
            if secret in done:
                continue
            done.add(secret)
            replaced = False
            for form in _literal_forms(secret):
                if form in text:
                    text = text.replace(form, placeholder)
                    replaced = True
            if not replaced:
                text = placeholder
                break
        parent[key] = text


def _wipe(root: Any, matches: list[Match], result: ScanResult) -> None:
    """Fallback: replace every raw string a remaining match touches by its placeholder."""
    for m in matches:
        unit = result.units[m.unit_index]
        for piece in unit.pieces:
            loc = _get(root, piece.path)
            if loc is not None:
                parent, key = loc
                parent[key] = placeholder_for(m.finding.type)


def redact_notebook(
    nb: MutableMapping[str, Any],
    result: ScanResult | None = None,
    *,
    scanner: Scanner | None = None,
    exact_values: Any = None,
    injected: FingerprintIndex | None = None,
) -> MutableMapping[str, Any]:
    """A copy of ``nb`` with every secret replaced by :func:`placeholder_for` its type.

    ``result`` must come from scanning this same ``nb`` (it is scanned when omitted).
    The copy is re-scanned (with ``exact_values`` and ``injected`` too) and any secret
    left is removed with its whole string, so the returned notebook scans clean.
    """
    scanner = scanner or default_scanner()
    if result is None:
        result = scanner.scan_notebook(nb, exact_values=exact_values, injected=injected)
    redacted = copy.deepcopy(nb)
    if result.clean:
        return redacted
    _apply(redacted, result.matches, result)
    for _ in range(3):
        again = scanner.scan_notebook(redacted, exact_values=exact_values, injected=injected)
        if again.clean:
            break
        _wipe(redacted, again.matches, again)
    return redacted


def redact_text(
    text: str,
    result: ScanResult | None = None,
    *,
    scanner: Scanner | None = None,
    path: str = "",
    exact_values: Any = None,
    injected: FingerprintIndex | None = None,
) -> str:
    """``text`` with every secret replaced by its placeholder (non-notebook files)."""
    scanner = scanner or default_scanner()
    if result is None:
        result = scanner.scan_text(text, path=path, exact_values=exact_values, injected=injected)
    holder: dict[str, Any] = {"text": text}  # text units of files point at ("text",)
    _apply(holder, result.matches, result)
    return str(holder["text"])
