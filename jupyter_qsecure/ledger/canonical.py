"""Canonical JSON (RFC 8785, JCS) via the ``rfc8785`` library."""

from __future__ import annotations

from typing import Any

import rfc8785


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8, ECMAScript number formatting."""
    return rfc8785.dumps(value)
