"""SARIF 2.1.0 output (``jupyter qsecure scan --format sarif``) for code-scanning views and CI.

One run, tool ``jupyter-qsecure``; one ``tool.driver.rules`` entry per finding type that
occurs (``ruleId`` is the type's slug, e.g. ``github-token``); one result per finding at
level ``error``, with a message naming the type and place (never the secret), the file
as ``artifactLocation.uri`` (relative to ``%SRCROOT%``, the current folder, when the
file is under it), ``region.startLine``, and the finding's fingerprint (the SHA-256 of
the secret, or the keyed fingerprint where findings carry one) in
``partialFingerprints`` so a code-scanning service tracks one alert per secret across
runs and line moves. Files that could not be scanned are tool execution
notifications.

For a notebook, ``startLine`` counts within the text the secret is in (a cell's source,
an output, metadata: see ``Finding.line``); the notebook place is in the message and in
a logical location (``cell 3 outputs[1] text/plain``), because a line of the ``.ipynb``
JSON means nothing to a reader.
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
    """The finding's keyed fingerprint when it has one, else its ``hashed_secret``."""
    dumped = finding.model_dump()
    return str(dumped.get("fingerprint") or dumped.get("hashed_secret") or "")


def _place(finding: Finding) -> str:
    """``cell 3 outputs[1] text/plain`` (cells numbered from 1, as JupyterLab shows them)."""
    parts: list[str] = []
    if finding.cell is not None:
        parts.append(f"cell {finding.cell + 1}")
    elif finding.where == "metadata":
        parts.append("notebook")
    if finding.where is not None:
        where: str = finding.where
        if finding.output is not None:
            where += f"[{finding.output}]"
        parts.append(where)
    if finding.mime:
        parts.append(finding.mime)
    return " ".join(parts)


def _artifact(path: str, root: Path) -> dict[str, Any]:
    if not path:
        return {"uri": "notebook"}
    full = Path(os.path.abspath(path))
    try:
        relative = full.relative_to(root)
    except ValueError:
        return {"uri": full.as_uri()}
    return {"uri": quote(relative.as_posix()), "uriBaseId": "%SRCROOT%"}


def _result(finding: Finding, index: int, root: Path) -> dict[str, Any]:
    place = _place(finding)
    where = f" in {place}" if place else ""
    location: dict[str, Any] = {
        "physicalLocation": {
            "artifactLocation": _artifact(finding.path, root),
            "region": {"startLine": finding.line},
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
        "results": [_result(f, index[rule_id(f.type)], base) for f in report.findings],
    }
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
