"""SARIF 2.1.0 output (``jupyter qsecure scan --format sarif``) for code-scanning views and CI.

One run, tool ``jupyter-qsecure``; one ``tool.driver.rules`` entry per finding type that
occurs (``ruleId`` is the type's slug, e.g. ``github-token``); one result per finding at
level ``error``, with a message naming the type and place (never the secret), the file
as ``artifactLocation.uri`` (relative to ``%SRCROOT%``, the current folder, when the
file is under it), ``region.startLine``, and the finding's keyed ``fingerprint``
(HMAC-SHA-256 under the configured fingerprint key, never an unkeyed hash of the
secret) in ``partialFingerprints`` so a code-scanning service tracks one alert per
secret across runs and line moves (as long as the key stays the same). Files that could not be scanned are tool execution
notifications.

For a notebook, ``startLine`` is the line of the ``.ipynb`` file where the secret's text
is (nbformat writes one JSON string per source or output line, so annotations land on
the right line; for metadata and transformed outputs such as HTML, the line where
that value starts), and the notebook place with the line within the cell's text is in
the message and in a logical location (``cell 3 outputs[1] text/plain``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .._version import __version__
from .models import Finding, ScanReport

SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
FINGERPRINT_KEY = "secretFingerprint/v1"


def rule_id(type_: str) -> str:
    """The SARIF rule id of a finding type: ``GitHub Token`` → ``github-token``."""
    slug = re.sub(r"[^a-z0-9]+", "-", type_.lower()).strip("-")
    return slug or "secret"


def fingerprint_of(finding: Finding) -> str:
    """The finding's keyed fingerprint (what ``partialFingerprints`` carries)."""
    return finding.fingerprint


def _place(finding: Finding) -> str:
    """``cell 3 outputs[1] text/plain`` (cells numbered from 1, as JupyterLab shows them)."""
    return finding.place(first_cell=1)


def _artifact(path: str, root: Path) -> dict[str, Any]:
    if not path:
        return {"uri": "notebook"}
    full = Path(os.path.abspath(path))
    try:
        relative = full.relative_to(root)
    except ValueError:
        return {"uri": full.as_uri()}
    return {"uri": quote(relative.as_posix()), "uriBaseId": "%SRCROOT%"}


# ---------------------------------------------------------------- .ipynb line numbers
_JSON_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+|\s+')
JsonPath = tuple[str | int, ...]
#: Notebooks larger than this are not re-read for line numbers (the cell line is used).
MAX_INDEX_BYTES = 64 * 1024 * 1024


def json_value_lines(text: str) -> dict[JsonPath, int]:
    """The 1-based line where each value of a JSON document starts, by its path.

    A small tokenizer rather than :mod:`json`, which keeps no positions. Invalid JSON
    gives whatever was indexed before the error (callers fall back to line 1).
    """
    lines: dict[JsonPath, int] = {}
    line = 1
    # Each frame: [path, is_object, next key or index, expecting a key]
    stack: list[list[Any]] = []
    path: JsonPath = ()

    def value_path() -> JsonPath | None:
        if not stack:
            return ()
        frame = stack[-1]
        return (*frame[0], frame[2]) if frame[2] is not None else None

    for m in _JSON_TOKEN.finditer(text):
        tok = m.group(0)
        first = tok[0]
        if first.isspace():
            line += tok.count("\n")
            continue
        frame = stack[-1] if stack else None
        if frame is not None and frame[1] and frame[3]:
            if first == '"':
                frame[2] = _unquote(tok)
                frame[3] = False
            elif first == "}":
                stack.pop()
            continue
        if first in ":,":
            if first == "," and frame is not None:
                if frame[1]:
                    frame[3] = True
                else:
                    frame[2] += 1
            continue
        if first in "]}":
            stack.pop()
            continue
        here = value_path()
        if here is None:
            continue
        lines[here] = line
        if first in "{[":
            path = here
            stack.append([path, first == "{", None if first == "{" else 0, first == "{"])
    return lines


def _unquote(token: str) -> str:
    import json

    try:
        value = json.loads(token)
    except ValueError:
        return token[1:-1]
    return value if isinstance(value, str) else token[1:-1]


def _notebook_line(finding: Finding, index: dict[JsonPath, int]) -> int | None:
    """The ``.ipynb`` line of a notebook finding, from :func:`json_value_lines`."""
    c, k, n = finding.cell, finding.output, finding.line - 1
    candidates: list[JsonPath] = []
    if finding.where == "source" and c is not None:
        base: JsonPath = ("cells", c, "source")
        candidates += [(*base, n), base]
    elif finding.where == "outputs" and c is not None and k is not None:
        out: JsonPath = ("cells", c, "outputs", k)
        if finding.mime is not None:
            data: JsonPath = (*out, "data", finding.mime)
            if finding.mime == "text/plain" or not finding.mime.endswith(("html", "xml")):
                candidates.append((*data, n))
            candidates.append(data)
        else:
            candidates += [(*out, "text", n), (*out, "text")]
        candidates.append(out)
    elif finding.where == "metadata":
        candidates.append(("cells", c, "metadata") if c is not None else ("metadata",))
    elif finding.where == "attachments" and c is not None:
        candidates.append(("cells", c, "attachments"))
    for candidate in candidates:
        if candidate in index:
            return index[candidate]
    return None


def _physical_line(finding: Finding, cache: dict[str, dict[JsonPath, int] | None]) -> int:
    if finding.where is None or not finding.path.endswith(".ipynb"):
        return finding.line
    if finding.path not in cache:
        try:
            raw = Path(finding.path)
            if raw.stat().st_size > MAX_INDEX_BYTES:
                raise OSError("too big to index")
            cache[finding.path] = json_value_lines(raw.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            cache[finding.path] = None
    index = cache[finding.path]
    found = _notebook_line(finding, index) if index is not None else None
    return found if found is not None else finding.line


def _result(
    finding: Finding, index: int, root: Path, lines: dict[str, dict[JsonPath, int] | None]
) -> dict[str, Any]:
    place = _place(finding)
    where = f" in {place}" if place else ""
    location: dict[str, Any] = {
        "physicalLocation": {
            "artifactLocation": _artifact(finding.path, root),
            "region": {"startLine": _physical_line(finding, lines)},
        }
    }
    if place:
        location["logicalLocations"] = [{"name": place, "kind": "element"}]
    return {
        "ruleId": rule_id(finding.type),
        "ruleIndex": index,
        "level": "error",
        "message": {
            "text": f"{finding.type}{where}, line {finding.line}. Remove it and rotate it, "
            "or allowlist it if it is not a secret."
        },
        "locations": [location],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint_of(finding)},
    }


def to_sarif(report: ScanReport, *, root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The SARIF 2.1.0 log of a scan report (a JSON-ready dict without any secret)."""
    base = Path(os.path.abspath(root if root is not None else os.getcwd()))
    types = sorted({f.type for f in report.findings}, key=rule_id)
    index = {rule_id(t): i for i, t in enumerate(types)}
    rules = [
        {
            "id": rule_id(t),
            "name": re.sub(r"[^A-Za-z0-9]", "", t.title()) or "Secret",
            "shortDescription": {"text": f"{t} found"},
            "fullDescription": {
                "text": f"A secret of type '{t}' is stored in the file. A secret on disk or in "
                "version control can be read by anyone with the file."
            },
            "help": {
                "text": "Remove the secret and rotate it. If it is not a secret, add a "
                "'# pragma: allowlist secret' comment, a detect-secrets baseline entry, or an "
                "allowlist in the organisation's rule file."
            },
            "defaultConfiguration": {"level": "error"},
            "properties": {"tags": ["security", "secret"]},
        }
        for t in types
    ]
    lines: dict[str, dict[JsonPath, int] | None] = {}
    notifications = [
        {"level": "error", "message": {"text": error}, "descriptor": {"id": "file-not-scanned"}}
        for error in report.errors
    ]
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "jupyter-qsecure",
                "semanticVersion": __version__,
                "rules": rules,
            }
        },
        "originalUriBaseIds": {"%SRCROOT%": {"uri": base.as_uri() + "/"}},
        "invocations": [
            {
                "executionSuccessful": not report.errors,
                "toolExecutionNotifications": notifications,
            }
        ],
        "results": [_result(f, index[rule_id(f.type)], base, lines) for f in report.findings],
    }
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
