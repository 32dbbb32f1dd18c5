"""Entry kinds and the pydantic model that validates each kind's body.

Features register their kinds here (``register_kind``); an unknown kind is
refused, so a typo cannot create an unvalidated record. Every body also passes
:func:`~jupyter_qsecure.ledger.secret_guard.check_no_secrets`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidEntry
from .secret_guard import check_no_secrets

Sha256Hex = str


class Body(BaseModel):
    """Base of every body model: strict about unknown fields unless a kind opts out."""

    # defer_build: the schema is built on first use, not at import (CLI start-up, issue 15)
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class NoteBody(Body):
    """An operator's remark, e.g. "rotated the transit key"."""

    text: str = Field(min_length=1, max_length=10_000)


class FindingRef(Body):
    """A finding of the save gate: its type and keyed fingerprint (HMAC-SHA-256, hex)."""

    type: str
    fingerprint: Sha256Hex = Field(pattern=r"^[0-9a-f]{64}$")
    cell: int | None = None
    where: str | None = None
    line: int | None = None


class SaveDecisionBody(Body):
    """A save refused, redacted or let through with a warning by the save gate."""

    path: str
    user: str
    mode: str
    findings: list[FindingRef]
    recovery_id: str | None = None


class SaveOverrideBody(SaveDecisionBody):
    """A save the gate refused, made anyway by a user with a written reason (where policy
    allows it, ``c.QSecure.allow_override``)."""

    reason: str = Field(min_length=1, max_length=2000)


class SecretChangeBody(Body):
    """A secret stored (created or rotated) or deleted by name. Never the value."""

    name: str
    environment: str
    location: str
    user: str
    version: int | None = None


class NotebookSavedBody(Body):
    """A save that changed what a notebook runs (its digest): who is its last editor.

    ``path`` is the server's contents path, ``file`` the absolute file on the server's
    disk (None when the server's root is unknown); ``digest`` is
    :func:`jupyter_qsecure.promote.digest.notebook_digest` of what was saved (None when
    the notebook has none, e.g. no kernelspec). Never content.
    """

    path: str
    file: str | None = None
    user: str
    digest: Sha256Hex | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class ReviewApprovedBody(Body):
    """A reviewer's signed approval of a notebook digest (``jupyter qsecure review approve``).

    The signed envelope itself is kept beside the notebook; the ledger records who
    approved what (by digest), never the notebook's content.
    """

    path: str  # the notebook's absolute path where it was approved
    notebook: str  # its file name (the statement's subject name)
    digest: Sha256Hex = Field(pattern=r"^[0-9a-f]{64}$")
    environment: str
    reviewer: str
    source: Literal["local", "openbao"]
    key_id: str  # "<key id>@v<version>", as in the envelope
    note: str = Field(default="", max_length=2000)
    statement_sha256: Sha256Hex = Field(pattern=r"^[0-9a-f]{64}$")
    last_editor: str | None = None


class CredentialBody(Body):
    """A credential issued, renewed or revoked. Never the value: accessor and lease id."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)

    kernel_id: str | None = None
    name: str | None = None
    accessor: str | None = None
    lease_id: str | None = None
    policies: list[str] = Field(default_factory=list)
    ttl_seconds: int | None = None
    environment: str | None = None


class FileMaskedBody(Body):
    """A file the server sent to the browser held injected values (masked on the way).

    One entry per file version; names the secrets, never a value (nor a hash of one).
    """

    path: str
    modified: str | None = None  # the file's modification time (RFC 3339), with size its version
    size: int | None = None
    secret_names: list[str] = Field(min_length=1)
    via: Literal["contents", "files", "nbconvert"]


class OpenBody(Body):
    """Kinds whose body shape is owned by a later feature; still secret-guarded."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)


_REGISTRY: dict[str, type[BaseModel]] = {
    "note": NoteBody,
    "save.refused": SaveDecisionBody,
    "save.redacted": SaveDecisionBody,
    "save.warned": SaveDecisionBody,
    "save.overridden": SaveOverrideBody,
    "secret.stored": SecretChangeBody,
    "secret.deleted": SecretChangeBody,
    "credential.issued": CredentialBody,
    "credential.renewed": CredentialBody,
    "credential.revoked": CredentialBody,
    "credential.failed": CredentialBody,
    "file.masked": FileMaskedBody,
    "notebook.saved": NotebookSavedBody,
    "review.approved": ReviewApprovedBody,
    "job.submitted": OpenBody,
    "job.decided": OpenBody,
    "job.completed": OpenBody,
    "job.cancelled": OpenBody,
    "job.approved": OpenBody,
    "notebook.approved": OpenBody,
    "notebook.promoted": OpenBody,
    "policy.changed": OpenBody,
    "ledger.opened": OpenBody,
}


def register_kind(kind: str, model: type[BaseModel], *, replace: bool = False) -> None:
    """Register the body model for ``kind`` (features call this at import time)."""
    if kind in _REGISTRY and not replace and _REGISTRY[kind] is not model:
        raise ValueError(f"entry kind {kind!r} is already registered")
    _REGISTRY[kind] = model


def known_kinds() -> list[str]:
    return sorted(_REGISTRY)


def validate_body(kind: str, body: Any) -> dict[str, Any]:
    """Validate ``body`` for ``kind``; return it as plain JSON data, or raise InvalidEntry."""
    model = _REGISTRY.get(kind)
    if model is None:
        raise InvalidEntry(
            f"unknown ledger entry kind {kind!r}",
            hint=f"use one of: {', '.join(known_kinds())} (features register new kinds "
            "with jupyter_qsecure.ledger.register_kind)",
        )
    if not isinstance(body, dict):
        raise InvalidEntry(
            f"ledger entry body for kind {kind!r} must be a JSON object, got {type(body).__name__}"
        )
    try:
        data = model.model_validate(body).model_dump(mode="json", exclude_none=False)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidEntry(
            f"invalid body for ledger entry kind {kind!r}: {problems}",
            hint="fix the named fields",
        ) from None
    check_no_secrets(data, kind=kind)
    return data
