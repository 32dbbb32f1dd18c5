"""Test-only stand-in for ``jupyter_qsecure.scan.rendered`` (issue 11, case 3).

The real module is written in parallel on the i11-masking branch; until it is merged,
``tests/conftest.py`` installs this one under its name so that the scanner's rendered
text (HTML/SVG) can be tested. Same signature and contract for kinds "html" and
"svg": tags removed without inserting anything, entities decoded, and for each
visible character the source offset it comes from. Delete once the real one is in.
"""

from __future__ import annotations

import html
import re

_TAG = re.compile(r"<!--.*?(?:-->|\Z)|<[A-Za-z/!?](?:\"[^\"]*\"|'[^']*'|[^'\">])*>", re.S)
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?")


def visible_text(source: str, kind: str) -> tuple[str, list[int]]:
    if kind not in ("html", "svg"):
        raise ValueError(f"unknown kind {kind!r}")
    parts: list[str] = []
    index: list[int] = []
    last = 0
    for tag in [*_TAG.finditer(source), None]:
        end = tag.start() if tag is not None else len(source)
        pos = last
        for entity in _ENTITY.finditer(source, last, end):
            decoded = html.unescape(entity.group(0))
            if decoded == entity.group(0):
                continue
            parts.append(source[pos : entity.start()])
            index.extend(range(pos, entity.start()))
            parts.append(decoded)
            index.extend([entity.start()] * len(decoded))
            pos = entity.end()
        parts.append(source[pos:end])
        index.extend(range(pos, end))
        if tag is not None:
            last = tag.end()
    return "".join(parts), index
