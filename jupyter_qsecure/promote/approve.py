"""``review approve`` as a library: who the reviewer is, what the ledger says, the signing.

The reviewer's identity (:func:`reviewer_identity`):

* OpenBao configured (``vault_addr``): the reviewer's own token (``BAO_TOKEN`` /
  ``VAULT_TOKEN`` in their shell, or the configured auth method) must have the
  environment's approver policy ``qsecure-approver-ENV``; it signs through transit with
  the approver key ``qsecure-approver-ENV`` (:class:`~jupyter_qsecure.signing.transit.
  TransitSigner`), and the name is the token's (``lookup-self``), as for approvals of
  heavy runs (:mod:`jupyter_qsecure.jobs.approval`).
* Embedded default: the reviewer's local Ed25519 key (``reviewer-ed25519.pem`` beside
  the ledger's key in the local key store, created 0600 on first use;
  :class:`~jupyter_qsecure.signing.signers.Ed25519FileSigner`) and the Jupyter/OS user
  (``JUPYTERHUB_USER``, else the login name).

Deliberately not supported: approving from inside a Jupyter kernel (refused, as for
heavy runs: code in a notebook must not approve itself), and approving a notebook whose
code holds a secret (the approval keeps a copy of the code beside the notebook).
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import QSecureError
from ..jobs.manifest import Envelope
from ..jobs.policy import ENVIRONMENTS, Policy, ReviewPolicy
from ..signing.signers import Ed25519FileSigner, KeyRing, Signer
from .digest import canonical_document, document_digest, load_notebook
from .errors import SecretInNotebook
from .review import (
    LOCAL_REVIEWER_SOURCE,
    NAME_PATTERN,
    ApprovalCheck,
    Editor,
    Reviewer,
    ReviewError,
    SelfApprovalRefused,
    VerifiedApproval,
    append_approval,
    approvals_path,
    build_review_statement,
    check_approvals,
    read_approvals,
    sign_review,
    verify_approval_envelope,
)

__all__ = [
    "ApproveResult",
    "approve_notebook",
    "check_reviewer_name",
    "last_editor",
    "local_reviewer_key_file",
    "reviewer_identity",
    "review_policy",
    "trusted_reviewer_keys",
]


# ---- settings-dependent look-ups ----------------------------------------------------------------
def review_policy(settings: Any, environment: str) -> ReviewPolicy:
    """``[ENV.review]`` of the configured policy file (the shipped default when unset)."""
    return Policy.load(settings.policy_file or None, environment).review


def local_reviewer_key_file(settings: Any) -> Path:
    """The reviewer's local Ed25519 key: ``reviewer-ed25519.pem`` in the local key store."""
    return Path(settings.resolved_signing_key_file()).with_name("reviewer-ed25519.pem")


def trusted_reviewer_keys(settings: Any, environment: str) -> KeyRing:
    """Public keys that may verify approvals here: the keyring file (reviewer keys added
    by ``review approve``) and, when OpenBao is configured and reachable with the
    current credentials, the environment's approver transit key."""
    from ..ledger.keys import keyring_from_settings

    keyring = keyring_from_settings(settings)
    if settings.vault_addr:
        try:
            for record in _approver_signer(settings, environment).public_keys():
                keyring.add(record)
        except QSecureError:
            pass  # offline or no access: approvals signed by it report an untrusted key
    return keyring


def last_editor(settings: Any, notebook: Path, digest: str) -> Editor:
    """The user of the ledger's last ``notebook.saved`` entry of this file, if it saved
    the current version (``digest``); otherwise unknown, saying why."""
    from ..ledger import EntryFilter, Ledger
    from ..ledger.store import open_store

    file = str(Path(notebook).resolve())
    name = Path(notebook).name
    try:
        store = open_store(settings.resolved_ledger_url(), create=False)
    except QSecureError:
        return Editor(
            None,
            "there is no ledger here, so who made this version of the notebook is unknown "
            "(point QSECURE_LEDGER or c.QSecure.ledger_url at the ledger the Jupyter server "
            "writes)",
        )
    with Ledger(store) as ledger:
        saves = [
            e
            for e in ledger.entries(EntryFilter(kinds=["notebook.saved"]))
            if e.body.get("file") == file
        ]
    if not saves:
        return Editor(
            None,
            f"the ledger has no save of {name} through JupyterLab, so who wrote it is "
            "unknown: have its author open and save it in JupyterLab",
        )
    last = saves[-1]
    user = str(last.body.get("user") or "")
    if last.body.get("digest") != digest or not user:
        return Editor(
            None,
            f"{name} was changed after its last save through JupyterLab (by {user or '?'}, "
            f"ledger entry {last.index}), so who made this version is unknown: have its "
            "author open and save it in JupyterLab",
        )
    return Editor(user, f"last change saved by {user} (ledger entry {last.index})")


# ---- the reviewer -------------------------------------------------------------------------------
def local_reviewer_name(environ: Any = None) -> str:
    """The Jupyter user (``JUPYTERHUB_USER``) or else the OS login name."""
    env = os.environ if environ is None else environ
    name = env.get("JUPYTERHUB_USER") or getpass.getuser()
    return check_reviewer_name(name)


def check_reviewer_name(name: str) -> str:
    """``name`` if it can name a reviewer (:data:`~.review.NAME_PATTERN`), else ReviewError."""
    if not re.match(NAME_PATTERN, name or ""):
        raise ReviewError(
            f"{name[:80]!r} cannot name a reviewer",
            hint="reviewer names are 1 to 64 letters, digits and . _ @ + - (set "
            "JUPYTERHUB_USER, or log in to OpenBao with such a name)",
        )
    return name


def _approver_signer(settings: Any, environment: str) -> Any:
    from ..signing.transit import TransitSigner
    from ..vault.client import client_from_settings
    from ..vault.layout import approver_transit_key

    return TransitSigner(
        client_from_settings(settings),
        mount=settings.ledger_transit_mount,
        key_name=approver_transit_key(environment),
    )


def reviewer_identity(settings: Any, environment: str) -> tuple[Signer, Reviewer]:
    """The reviewer's signer and name (see the module docstring)."""
    if not settings.vault_addr:
        signer = Ed25519FileSigner(local_reviewer_key_file(settings))
        return signer, Reviewer(name=local_reviewer_name(), source="local")
    from ..vault.layout import approver_name, approver_policy

    signer = _approver_signer(settings, environment)
    try:
        token = dict(signer._client.auth.token.lookup_self()["data"])
    except Exception as exc:  # noqa: BLE001 - any failure: the message names what to do
        raise ReviewError(
            f"cannot look up your OpenBao token at {settings.vault_addr} ({type(exc).__name__})",
            hint="log in as a reviewer (an identity with the qsecure-approver-ENV policy) "
            "and set BAO_TOKEN",
        ) from None
    if approver_policy(environment) not in (token.get("policies") or []):
        raise ReviewError(
            f"your OpenBao token does not have the {approver_policy(environment)} policy: "
            f"reviewers of {environment} notebooks are its approvers",
            hint="log in with an approver identity of this environment",
        )
    reviewer = Reviewer(
        name=check_reviewer_name(approver_name(token)),
        source="openbao",
        accessor=token["accessor"],
    )
    return signer, reviewer


def _trust(settings: Any, signer: Signer, reviewer: Reviewer) -> KeyRing:
    """Add the signer's public keys to the keyring file (as ``audit keys`` exports them)."""
    records = signer.public_keys()
    if reviewer.source == "local":
        records = [r.model_copy(update={"source": LOCAL_REVIEWER_SOURCE}) for r in records]
    path = Path(settings.resolved_keyring_file())
    keyring = KeyRing.load(path)
    added = False
    for record in records:  # every key: any() would stop at the first new one
        added = keyring.add(record) or added
    if added:
        keyring.save(path)
    return KeyRing(records)


# ---- secrets ------------------------------------------------------------------------------------
def _refuse_secrets(document: dict[str, Any], path: Path) -> None:
    """Refuse to copy a secret into the approvals file: scan what an approval keeps."""
    from ..scan import default_scanner

    cells = [
        {
            "cell_type": cell["cell_type"],
            "id": f"c{index}",
            "metadata": {"tags": list(cell["tags"])},
            "source": cell["source"],
            **({"outputs": [], "execution_count": None} if cell["cell_type"] == "code" else {}),
        }
        for index, cell in enumerate(document["cells"])
    ]
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    result = default_scanner().scan_notebook(notebook, path=str(path))
    if result.findings:
        first = result.findings[0]
        where = f"cell {first.cell + 1}" if first.cell is not None else "the notebook"
        more = f" (and {len(result.findings) - 1} more)" if len(result.findings) > 1 else ""
        raise SecretInNotebook(
            f"{path.name}: {where}, line {first.line}, holds what looks like a secret "
            f"({first.type}){more}; it was not approved",
            hint="remove it (and rotate it) before approving: an approval keeps a copy of "
            "the code; mark a false positive with a `pragma: allowlist secret` comment",
        )


# ---- approving ----------------------------------------------------------------------------------
@dataclass
class ApproveResult:
    """What ``review approve`` did, and the notebook's approvals afterwards."""

    envelope: Envelope
    approval: VerifiedApproval
    position: int  # 1-based in the approvals file
    ledger_index: int
    check: ApprovalCheck
    warnings: list[str] = field(default_factory=list)


def approve_notebook(
    notebook: str | Path,
    *,
    settings: Any,
    environment: str | None = None,
    note: str = "",
    identity: tuple[Signer, Reviewer] | None = None,
    approved_at: datetime | None = None,
) -> ApproveResult:
    """Sign an approval of the notebook as it is now, keep it beside it, record it.

    Refuses inside a Jupyter kernel, for invalid notebooks, notebooks whose code holds a
    secret, and (:class:`SelfApprovalRefused`) when the policy of ``environment`` forbids
    the notebook's last editor to approve it and the reviewer is that editor.
    """
    from ..jobs.approval import kernel_context
    from ..ledger import Ledger

    inside = kernel_context()
    if inside is not None:
        raise ReviewError(
            f"review approve refuses to run inside a Jupyter kernel ({inside})",
            hint="approve from your own terminal: code in a notebook must not approve itself",
        )
    env = environment or settings.environment
    if env not in ENVIRONMENTS:
        raise ReviewError(f"unknown environment {env!r}", hint="use dev, test or prod")
    path = Path(notebook)
    document = canonical_document(load_notebook(path), path=path)
    digest = document_digest(document)
    _refuse_secrets(document, path)
    policy = review_policy(settings, env)
    editor = last_editor(settings, path, digest)
    signer, reviewer = identity if identity is not None else reviewer_identity(settings, env)
    if not policy.allow_self_approval and editor.user == reviewer.name:
        raise SelfApprovalRefused(
            f"{reviewer.name} made the last change to {path.name} ({editor.detail}): "
            f"self-approval is not allowed in {env}",
            hint=f"ask {policy.approvals_required} other reviewer(s) to approve it "
            "(`jupyter qsecure review approve`); only a [dev] policy may allow self-approval",
        )
    warnings = []
    if not policy.allow_self_approval and not editor.known:
        warnings.append(
            f"this approval counts in {env} only once the ledger knows who made this "
            f"version: {editor.detail}"
        )
    statement = build_review_statement(
        name=path.name,
        document=document,
        environment=env,
        reviewer=reviewer,
        note=note,
        last_editor=editor.user,
        approved_at=approved_at,
    )
    envelope = sign_review(statement, signer)
    own_keys = _trust(settings, signer, reviewer)
    approval = verify_approval_envelope(envelope, own_keys)  # never store what cannot verify
    body = {
        "path": str(path.resolve()),
        "notebook": path.name,
        "digest": digest,
        "environment": env,
        "reviewer": reviewer.name,
        "source": reviewer.source,
        "key_id": approval.keyid,
        "note": note,
        "statement_sha256": approval.statement_sha256,
        "last_editor": editor.user,
    }
    # The ledger first: an approval in the file is always in the ledger too. No
    # checkpoint signers here: a reviewer may not use the ledger's key.
    with Ledger.open(settings=settings, signers=[]) as ledger:
        entry = ledger.append(
            "review.approved", body, actor=f"reviewer:{reviewer.name}", correlation_id=digest
        )
    position = append_approval(approvals_path(path), envelope)
    keyring = trusted_reviewer_keys(settings, env)
    for record in own_keys:
        keyring.add(record)
    check = check_approvals(
        read_approvals(approvals_path(path)),
        notebook=path,
        digest=digest,
        document=document,
        environment=env,
        policy=policy,
        editor=editor,
        keyring=keyring,
    )
    return ApproveResult(envelope, approval, position, entry.index, check, warnings)
