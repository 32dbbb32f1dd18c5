"""Baseline files in detect-secrets' format: known secrets that are not reported again.

A baseline (``detect-secrets scan > .secrets.baseline``, or
:func:`write_baseline`) lists, per file, each known secret's ``type`` and
``hashed_secret`` (SHA-1, as detect-secrets writes it). A finding is suppressed when
its file, type and SHA-1 match an entry; the line number is ignored, as in
detect-secrets, so moving code does not resurface it. File names are compared
after resolving them relative to the current directory and to the baseline's own
folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import ScanError

_HINT = "create one with `detect-secrets scan > .secrets.baseline` or fix its JSON"


class Baseline:
    """Known ``(file, type, sha1)`` triples loaded from a detect-secrets baseline."""

    def __init__(self, entries: Iterable[tuple[str, str, str]], *, root: str = ".") -> None:
        self.root = os.path.abspath(root)
        self._known: set[tuple[str, str, str]] = set()
        for filename, type_, sha1 in entries:
            for key in self._keys(filename):
                self._known.add((key, type_, sha1))

    def _keys(self, filename: str) -> set[str]:
        keys = {os.path.normpath(filename)}
        if not os.path.isabs(filename):
            keys.add(os.path.normpath(os.path.join(self.root, filename)))
            keys.add(os.path.abspath(filename))
        else:
            keys.add(os.path.normpath(filename))
        return keys

    def is_known(self, path: str, type_: str, sha1: str) -> bool:
        candidates = {os.path.normpath(path), os.path.abspath(path)}
        return any((c, type_, sha1) in self._known for c in candidates)

    def __len__(self) -> int:
        return len(self._known)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Baseline:
        """Read a baseline file. Raises :class:`ScanError` if unreadable or malformed."""
        name = os.fspath(path)
        try:
            data: Any = json.loads(Path(name).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ScanError(
                f"cannot read baseline {name}: {exc.strerror or exc}", hint=_HINT
            ) from exc
        except ValueError as exc:
            raise ScanError(f"baseline {name} is not JSON: {exc}", hint=_HINT) from exc
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, dict):
            raise ScanError(f"baseline {name} has no 'results' object", hint=_HINT)
        entries = []
        for filename, secrets in results.items():
            if not isinstance(secrets, list):
                raise ScanError(
                    f"baseline {name}: results for {filename!r} is not a list", hint=_HINT
                )
            for secret in secrets:
                if isinstance(secret, dict) and "hashed_secret" in secret and "type" in secret:
                    entries.append(
                        (str(filename), str(secret["type"]), str(secret["hashed_secret"]))
                    )
        return cls(entries, root=os.path.dirname(os.path.abspath(name)))


def baseline_json(matches: Iterable[tuple[str, str, str, int]]) -> dict[str, Any]:
    """A detect-secrets-format baseline from ``(filename, type, sha1, line)`` tuples."""
    results: dict[str, list[dict[str, Any]]] = {}
    for filename, type_, sha1, line in matches:
        entry = {
            "type": type_,
            "filename": filename,
            "hashed_secret": sha1,
            "is_verified": False,
            "line_number": line,
        }
        bucket = results.setdefault(filename, [])
        if entry not in bucket:
            bucket.append(entry)
    return {
        "version": "1.5.0",
        "plugins_used": [],
        "filters_used": [],
        "results": results,
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
