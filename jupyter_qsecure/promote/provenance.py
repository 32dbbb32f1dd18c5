"""The signed record of a promotion: SLSA Provenance v1 in an in-toto Statement v1 (DSSE).

``DIR/promotion.intoto.json`` is a DSSE envelope (the same code as job manifests:
:mod:`jupyter_qsecure.jobs.manifest`) whose payload is::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "analysis.py", "digest": {"sha256": ...}},
                 {"name": "requirements.lock", "digest": {"sha256": ...}},
                 {"name": "approvals.json", "digest": {"sha256": ...}}],
     "predicateType": "https://slsa.dev/provenance/v1",
     "predicate": {
       "buildDefinition": {
         "buildType": "https://jupyter-qsecure.dev/promotion/v1",
         "externalParameters": {
           "notebook": {"path", "name", "digest": {"sha256": <notebook digest>}},
           "environment": "prod",
           "approvals": [{"digest": {"sha256": <envelope digest>}, "approver", "source", "keyid"}],
           "policy": {"sha256", "version", "approvals_required", "allow_self_approval"},
           "tools": {"jupyter-qsecure", "uv", "python", "ipython"}},
         "internalParameters": {"python": <kernel python version>, "excluded": [...],
                                "indexes": {...}},
         "resolvedDependencies": [{"uri": "pkg:pypi/qiskit@2.1.0", "name": "qiskit"}, ...]},
       "runDetails": {
         "builder": {"id": "https://jupyter-qsecure.dev/promote", "version": {...}},
         "metadata": {"invocationId", "startedOn", "finishedOn"},
         "byproducts": [{"name": "promoter", "annotations": {<identity>}}]}}}

The notebook digest is :func:`~jupyter_qsecure.promote.digest.notebook_digest`; an
approval's digest is :func:`~jupyter_qsecure.jobs.manifest.envelope_digest` of its
envelope (copied into ``approvals.json``, so the directory verifies on its own).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from ..jobs.manifest import STATEMENT_TYPE

__all__ = [
    "BUILDER_ID",
    "BUILD_TYPE",
    "SLSA_PROVENANCE",
    "build_statement",
    "sha256_file_bytes",
]

SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://jupyter-qsecure.dev/promotion/v1"
BUILDER_ID = "https://jupyter-qsecure.dev/promote"


def sha256_file_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_statement(
    *,
    files: Mapping[str, bytes],
    notebook: Mapping[str, Any],
    environment: str,
    approvals: Sequence[Mapping[str, Any]],
    policy: Mapping[str, Any],
    tools: Mapping[str, str],
    pins: Mapping[str, str],
    internal: Mapping[str, Any],
    promoter: Mapping[str, Any],
    invocation_id: str,
    started_on: str,
    finished_on: str,
) -> dict[str, Any]:
    """The in-toto statement of one promotion (see the module docstring)."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": name, "digest": {"sha256": sha256_file_bytes(data)}}
            for name, data in files.items()
        ],
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "notebook": dict(notebook),
                    "environment": environment,
                    "approvals": [dict(a) for a in approvals],
                    "policy": dict(policy),
                    "tools": dict(tools),
                },
                "internalParameters": dict(internal),
                "resolvedDependencies": [
                    {"uri": f"pkg:pypi/{name}@{version}", "name": name}
                    for name, version in sorted(pins.items())
                ],
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": dict(tools)},
                "metadata": {
                    "invocationId": invocation_id,
                    "startedOn": started_on,
                    "finishedOn": finished_on,
                },
                "byproducts": [{"name": "promoter", "annotations": dict(promoter)}],
            },
        },
    }
