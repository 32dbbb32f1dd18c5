"""Signed approvals of a notebook's digest, and the review policy they must satisfy.

An approval is an in-toto Statement v1 in a DSSE envelope (the same code as job
manifests: :mod:`jupyter_qsecure.jobs.manifest`)::

    subject:       [{"name": "analysis.ipynb", "digest": {"sha256": <notebook digest>}}]
    predicateType: https://jupyter-qsecure.dev/review/v1
    predicate:     {"notebook": {"name", "document"}, "environment", "reviewer":
                    {"name", "source", "accessor"?}, "last_editor", "note",
                    "approved_at", "tool"}

``document`` is the :func:`~jupyter_qsecure.promote.digest.canonical_document` the
reviewer approved (its digest is the subject's), so ``review status --diff`` can show
what changed since. Approvals are kept beside the notebook in ``NOTEBOOK.approvals.json``
(a JSON list of envelopes, appended) and recorded in the ledger (``review.approved``).

Who may sign, and which keys are trusted (:func:`verify_approval_envelope`):

* ``source: "openbao"``: the environment's approver transit key
  (``transit:transit/qsecure-approver-ENV``), which only tokens with the policy
  ``qsecure-approver-ENV`` may use. The reviewer's name is the name of that token
  (``lookup-self``), and its accessor is signed with it.
* ``source: "local"`` (the embedded default): the reviewer's own Ed25519 key in their
  local key store, trusted when the keyring holds its public key with source
  ``"reviewer"`` (``review approve`` adds it, so ``jupyter qsecure audit keys`` exports
  it). The name is the Jupyter/OS user who ran ``review approve``; on one machine it is
  only as strong as the OS account.

A key trusted for anything else (the ledger's checkpoint key, the server's job key)
does not make an approval valid: approvals come from people, not from the server.

The policy (:class:`~jupyter_qsecure.jobs.policy.ReviewPolicy`, ``[ENV.review]``) needs
``approvals_required`` distinct approvers of the current digest, and, unless it allows
self-approval, none of them counted may be the notebook's last editor (the user of the
last ``notebook.saved`` ledger entry of this file, recorded by the save gate). When the
ledger does not know who made the current version (it was changed outside JupyterLab,
or the record failed), such a policy is not satisfied: the rule cannot be checked.
Distinct approvers are distinct names, and local approvals also need distinct keys (one
key signing under several names is one approver).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._version import __version__
from ..errors import QSecureError
from ..jobs.manifest import (
    STATEMENT_TYPE,
    Envelope,
    ManifestError,
    format_keyid,
    sign_envelope,
    statement_body_digest,
    verify_envelope_keys,
)
from ..jobs.policy import ReviewPolicy
from ..signing.signers import KeyRing, PublicKeyRecord, Signer
from .digest import CellChange, cell_changes, document_digest
from .errors import PromotionError

__all__ = [
    "APPROVALS_SUFFIX",
    "LOCAL_REVIEWER_SOURCE",
    "REVIEW_PREDICATE_TYPE",
    "ApprovalCheck",
    "ApprovalInvalid",
    "ApprovalRecord",
    "Editor",
    "ReviewError",
    "Reviewer",
    "SelfApprovalRefused",
    "VerifiedApproval",
    "append_approval",
    "approvals_path",
    "build_review_statement",
    "count_approvers",
    "load_keyring",
    "openbao_reviewer_key_id",
    "read_approvals",
    "sign_review",
    "valid_approvals",
    "verify_approval_envelope",
]

REVIEW_PREDICATE_TYPE = "https://jupyter-qsecure.dev/review/v1"
APPROVALS_SUFFIX = ".approvals.json"
#: ``PublicKeyRecord.source`` of a local reviewer key in a keyring.
LOCAL_REVIEWER_SOURCE = "reviewer"
#: Reviewer names: no spaces or control characters (as approvers of heavy runs).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$"
MAX_APPROVALS_FILE_BYTES = 64 * 1024 * 1024


class ReviewError(PromotionError):
    """Review cannot proceed here (usage or environment): exit status 2."""


class ApprovalInvalid(PromotionError):
    """An approval envelope does not verify (signature, key, shape): exit status 1."""

    exit_code = 1


class SelfApprovalRefused(PromotionError):
    """The policy forbids the notebook's last editor to approve it: exit status 1."""

    exit_code = 1


# ---- the statement ------------------------------------------------------------------------------
class Reviewer(BaseModel):
    """Who approves: a name, where the key lives, and (OpenBao) the signing token's accessor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    source: Literal["local", "openbao"]
    accessor: str | None = Field(default=None, max_length=128)


class _Predicate(BaseModel):
    """The review predicate, validated on every read (unknown fields are refused)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    notebook: _Notebook
    environment: Literal["dev", "test", "prod"]
    reviewer: Reviewer
    last_editor: str | None = None
    note: str = Field(default="", max_length=2000)
    approved_at: str
    tool: dict[str, str] = Field(default_factory=dict)


class _Notebook(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    document: dict[str, Any]


_Predicate.model_rebuild()


def build_review_statement(
    *,
    name: str,
    document: Mapping[str, Any],
    environment: str,
    reviewer: Reviewer,
    note: str = "",
    last_editor: str | None = None,
    approved_at: datetime | None = None,
) -> dict[str, Any]:
    """The in-toto statement of one approval of ``document`` (a canonical document)."""
    moment = (approved_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    predicate = _Predicate(
        notebook=_Notebook(name=name, document=dict(document)),
        environment=environment,  # type: ignore[arg-type]
        reviewer=reviewer,
        last_editor=last_editor,
        note=note,
        approved_at=moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        tool={"name": "jupyter-qsecure", "version": __version__},
    )
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": document_digest(document)}}],
        "predicateType": REVIEW_PREDICATE_TYPE,
        "predicate": predicate.model_dump(mode="json"),
    }


def sign_review(statement: Mapping[str, Any], signer: Signer) -> Envelope:
    """The DSSE envelope of ``statement`` signed by ``signer`` (PAE, as DSSE specifies)."""
    try:
        return sign_envelope(statement, signer)
    except ManifestError as exc:
        raise ReviewError(exc.message, hint=exc.hint) from None


def openbao_reviewer_key_id(environment: str, mount: str = "transit") -> str:
    """The key id of the transit key that signs OpenBao approvals of ``environment``."""
    from ..vault.layout import approver_transit_key

    return f"transit:{mount.strip('/')}/{approver_transit_key(environment)}"


# ---- verification -------------------------------------------------------------------------------
@dataclass(frozen=True)
class VerifiedApproval:
    """An approval whose signature verifies against a trusted reviewer key."""

    notebook: str
    digest: str
    environment: str
    reviewer: Reviewer
    keyid: str  # "<key id>@v<version>" of the key that verified
    key: PublicKeyRecord
    note: str
    approved_at: str
    last_editor: str | None
    document: dict[str, Any]
    statement_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "digest": self.digest,
            "environment": self.environment,
            "reviewer": self.reviewer.name,
            "source": self.reviewer.source,
            "key_id": self.keyid,
            "note": self.note,
            "approved_at": self.approved_at,
            "last_editor": self.last_editor,
            "statement_sha256": self.statement_sha256,
        }


def load_keyring(keys: KeyRing | str | Path | Mapping[str, Any]) -> KeyRing:
    """A keyring from a :class:`KeyRing`, a keys file (``audit keys`` JSON) or its data."""
    if isinstance(keys, KeyRing):
        return keys
    try:
        if isinstance(keys, Mapping):
            return KeyRing.from_json(json.dumps(dict(keys)))
        text = Path(keys).read_text(encoding="utf-8")
        return KeyRing.from_json(text)
    except FileNotFoundError:
        raise ReviewError(
            f"keys file {keys} does not exist",
            hint="export the trusted public keys with `jupyter qsecure audit keys -o FILE`",
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise ReviewError(
            f"keys file {keys} is not a jupyter-qsecure keyring ({type(exc).__name__})",
            hint="export it with `jupyter qsecure audit keys -o FILE`",
        ) from None


def _reviewer_keys(keyring: KeyRing, environment: str | None) -> KeyRing:
    """The keys that may sign approvals: local reviewer keys and approver transit keys."""
    transit_ids = (
        {openbao_reviewer_key_id(environment)}
        if environment is not None
        else {openbao_reviewer_key_id(e) for e in ("dev", "test", "prod")}
    )
    return KeyRing(
        k for k in keyring if k.source == LOCAL_REVIEWER_SOURCE or k.key_id in transit_ids
    )


def verify_approval_envelope(
    envelope: Envelope | Mapping[str, Any] | str | bytes,
    keys: KeyRing | str | Path | Mapping[str, Any],
) -> VerifiedApproval:
    """Verify one approval offline; :class:`ApprovalInvalid` names what failed.

    ``keys``: trusted public keys (a :class:`KeyRing`, or a keys file as ``jupyter
    qsecure audit keys`` exports). Checked: the DSSE signature over the PAE by a
    reviewer key (see the module docstring: a local key with source ``"reviewer"``,
    or the approver transit key of the environment the statement names, matching the
    reviewer's source), the statement's shape, and that the approved document hashes to
    the subject's digest. Not checked here: whether the digest is the notebook's
    current one, and the policy (:func:`valid_approvals` does both).
    """
    trusted = load_keyring(keys)
    try:
        statement, signers = verify_envelope_keys(
            envelope, _reviewer_keys(trusted, None), predicate_type=REVIEW_PREDICATE_TYPE
        )
    except ManifestError as exc:
        raise ApprovalInvalid(
            f"approval does not verify: {exc.message}",
            hint="it was altered, or signed by a key you do not trust as a reviewer's "
            "(pass the reviewer keys with --keys FILE, from `jupyter qsecure audit keys`)",
        ) from None
    try:
        predicate = _Predicate.model_validate(statement["predicate"])
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ())) or "predicate"
        raise ApprovalInvalid(f"approval predicate is malformed at {where}") from None
    subjects = statement["subject"]
    if len(subjects) != 1:
        raise ApprovalInvalid("an approval names exactly one notebook (subject)")
    digest = str(subjects[0]["digest"]["sha256"])
    if subjects[0]["name"] != predicate.notebook.name:
        raise ApprovalInvalid("approval subject and predicate name different notebooks")
    try:
        approved = document_digest(predicate.notebook.document)
    except Exception:  # noqa: BLE001 - a document that is not canonical JSON
        approved = ""
    if approved != digest:
        raise ApprovalInvalid(
            "the approved document does not hash to the approval's digest",
            hint="the approval was built wrongly or edited; approve the notebook again",
        )
    key = _signer_for(signers, predicate)
    return VerifiedApproval(
        notebook=predicate.notebook.name,
        digest=digest,
        environment=predicate.environment,
        reviewer=predicate.reviewer,
        keyid=format_keyid(key.key_id, key.key_version),
        key=key,
        note=predicate.note,
        approved_at=predicate.approved_at,
        last_editor=predicate.last_editor,
        document=predicate.notebook.document,
        statement_sha256=statement_body_digest(statement),
    )


def _signer_for(signers: Sequence[PublicKeyRecord], predicate: _Predicate) -> PublicKeyRecord:
    """The verifying key that may sign for this reviewer's source and environment."""
    if predicate.reviewer.source == "openbao":
        wanted = openbao_reviewer_key_id(predicate.environment)
        for key in signers:
            if key.key_id == wanted:
                if not predicate.reviewer.accessor:
                    raise ApprovalInvalid("an OpenBao approval must name its token's accessor")
                return key
        raise ApprovalInvalid(
            f"approval by {predicate.reviewer.name} (OpenBao) is not signed with the "
            f"{predicate.environment} approver key {wanted}",
            hint="approvals of an environment are signed by its approvers' transit key",
        )
    for key in signers:
        if key.source == LOCAL_REVIEWER_SOURCE:
            return key
    raise ApprovalInvalid(
        f"approval by {predicate.reviewer.name} (local) is not signed with a local reviewer key"
    )


# ---- the approvals file ---------------------------------------------------------------------------
def approvals_path(notebook: str | Path) -> Path:
    """``NOTEBOOK.approvals.json`` beside the notebook."""
    path = Path(notebook)
    return path.with_name(path.name + APPROVALS_SUFFIX)


def read_approvals(path: str | Path) -> list[Any]:
    """The envelopes (as parsed JSON) in an approvals file; [] when there is none."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_APPROVALS_FILE_BYTES + 1)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ReviewError(
            f"cannot read {path}: {exc.strerror or type(exc).__name__}",
            hint="check its permissions",
        ) from None
    return _parse_approvals(data, path)


def _parse_approvals(data: bytes, path: Path) -> list[Any]:
    if not data.strip():
        return []
    if len(data) > MAX_APPROVALS_FILE_BYTES:
        raise ReviewError(f"{path} is larger than {MAX_APPROVALS_FILE_BYTES} bytes")
    try:
        items = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ReviewError(
            f"{path} is not JSON",
            hint="restore it from version control, or remove it and approve again",
        ) from None
    if not isinstance(items, list):
        raise ReviewError(
            f"{path} is not a list of approval envelopes",
            hint="restore it from version control, or remove it and approve again",
        )
    return items


def append_approval(path: str | Path, envelope: Envelope) -> int:
    """Append ``envelope`` to the approvals file (created if missing); returns its 1-based
    position. Concurrent appends (two reviewers at once) are serialised with a lock."""
    path = Path(path)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ReviewError(
                f"cannot write {path}: {exc.strerror or type(exc).__name__}",
                hint="approvals are kept beside the notebook: the folder must be writable",
            ) from None
        with os.fdopen(fd, "r+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                same = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
            except FileNotFoundError:
                same = False
            if not same:  # replaced by a writer that held the lock before us: retry
                continue
            items = _parse_approvals(handle.read(MAX_APPROVALS_FILE_BYTES + 1), path)
            items.append(envelope.model_dump(mode="json"))
            text = json.dumps(items, indent=1, sort_keys=True) + "\n"
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            try:
                with open(tmp, "x", encoding="utf-8") as out:
                    out.write(text)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                if exc.errno == errno.ENOSPC:
                    raise ReviewError(f"no space left to write {path}") from None
                raise ReviewError(
                    f"cannot write {path}: {exc.strerror or type(exc).__name__}"
                ) from None
            return len(items)


# ---- the policy -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Editor:
    """Who made the notebook's current version, as far as the ledger knows."""

    user: str | None  # None when unknown
    detail: str  # how it is known, or why it is not

    @property
    def known(self) -> bool:
        return self.user is not None


def count_approvers(
    approvals: Iterable[VerifiedApproval], policy: ReviewPolicy, editor: Editor
) -> tuple[list[str], dict[int, str]]:
    """Which approvals count: (approver names counted, {position: why not counted}).

    ``approvals`` are verified approvals of the current digest for the policy's
    environment, in file order; positions are indexes into that sequence.
    """
    counted: list[str] = []
    keys_used: set[tuple[str, int]] = set()
    skipped: dict[int, str] = {}
    for position, approval in enumerate(approvals):
        name = approval.reviewer.name
        key = (approval.key.key_id, approval.key.key_version)
        if name in counted:
            skipped[position] = f"{name} already approved this version"
        elif approval.reviewer.source == "local" and key in keys_used:
            skipped[position] = (
                f"signed with the same local key as an earlier approver ({approval.keyid}): "
                "one key is one approver"
            )
        elif not policy.allow_self_approval and not editor.known:
            skipped[position] = (
                "the ledger does not know who last changed the notebook, so the two-person "
                "rule cannot be checked"
            )
        elif not policy.allow_self_approval and name == editor.user:
            skipped[position] = (
                f"{name} made the last change: self-approval is not allowed in {policy.environment}"
            )
        else:
            counted.append(name)
            if approval.reviewer.source == "local":
                keys_used.add(key)
    return counted, skipped


@dataclass
class ApprovalRecord:
    """One envelope of the approvals file, as checked against the current notebook."""

    position: int  # 1-based in the file
    approval: VerifiedApproval | None
    problem: str | None = None  # why it does not verify
    current: bool = False  # approves the current digest, in this environment
    counted: bool = False
    why_not_counted: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"position": self.position, "verified": self.approval is not None}
        if self.approval is not None:
            data.update(self.approval.to_json())
        data.update(
            {
                "problem": self.problem,
                "current": self.current,
                "counted": self.counted,
                "why_not_counted": self.why_not_counted,
            }
        )
        return data


@dataclass
class ApprovalCheck:
    """The notebook's approvals against its current digest and an environment's policy."""

    notebook: Path
    digest: str
    document: dict[str, Any]
    environment: str
    policy: ReviewPolicy
    editor: Editor
    records: list[ApprovalRecord] = field(default_factory=list)
    approvers: list[str] = field(default_factory=list)

    @property
    def satisfied(self) -> bool:
        return len(self.approvers) >= self.policy.approvals_required

    @property
    def status(self) -> Literal["approved", "changed", "unapproved"]:
        if self.satisfied:
            return "approved"
        if self.latest_earlier() is not None and not any(r.current for r in self.records):
            return "changed"
        return "unapproved"

    def latest_earlier(self) -> VerifiedApproval | None:
        """The most recent verified approval of another version of this notebook."""
        for record in reversed(self.records):
            approval = record.approval
            if approval is not None and approval.digest != self.digest:
                return approval
        return None

    def changes(self) -> list[CellChange]:
        """Cells changed since the latest approval of an earlier version (none: [])."""
        earlier = self.latest_earlier()
        return [] if earlier is None else cell_changes(earlier.document, self.document)

    def kernelspec_changed(self) -> bool:
        earlier = self.latest_earlier()
        return earlier is not None and earlier.document.get("kernelspec") != self.document.get(
            "kernelspec"
        )

    def reasons(self) -> list[str]:
        """Why the policy is not satisfied (empty when it is)."""
        if self.satisfied:
            return []
        need = self.policy.approvals_required
        have = len(self.approvers)
        reasons = [
            f"{have} of {need} required approval(s) of this version in {self.environment}"
            + ("" if self.policy.allow_self_approval else " by people other than the last editor")
        ]
        for record in self.records:
            if not record.counted and record.why_not_counted:
                name = record.approval.reviewer.name if record.approval else "?"
                reasons.append(
                    f"approval {record.position} by {name} does not count: {record.why_not_counted}"
                )
        if not self.policy.allow_self_approval and not self.editor.known:
            reasons.append(self.editor.detail)
        return reasons

    def to_json(self) -> dict[str, Any]:
        changes = self.changes()
        return {
            "notebook": str(self.notebook),
            "digest": self.digest,
            "environment": self.environment,
            "status": self.status,
            "approved": self.satisfied,
            "required": self.policy.approvals_required,
            "allow_self_approval": self.policy.allow_self_approval,
            "approvers": list(self.approvers),
            "last_editor": self.editor.user,
            "last_editor_detail": self.editor.detail,
            "reasons": self.reasons(),
            "changed_cells": [c.new + 1 for c in changes if c.new is not None],
            "removed_cells": [
                c.old + 1 for c in changes if c.kind == "removed" and c.old is not None
            ],
            "kernelspec_changed": self.kernelspec_changed(),
            "approvals": [r.to_json() for r in self.records],
        }


def check_approvals(
    envelopes: Sequence[Any],
    *,
    notebook: Path,
    digest: str,
    document: dict[str, Any],
    environment: str,
    policy: ReviewPolicy,
    editor: Editor,
    keyring: KeyRing,
) -> ApprovalCheck:
    """Verify each envelope and apply the policy (no I/O: see :func:`valid_approvals`)."""
    check = ApprovalCheck(
        notebook=notebook,
        digest=digest,
        document=document,
        environment=environment,
        policy=policy,
        editor=editor,
    )
    current: list[tuple[ApprovalRecord, VerifiedApproval]] = []
    for position, envelope in enumerate(envelopes, start=1):
        try:
            approval = verify_approval_envelope(envelope, keyring)
        except QSecureError as exc:
            check.records.append(ApprovalRecord(position, None, problem=exc.message))
            continue
        record = ApprovalRecord(position, approval)
        if approval.notebook != notebook.name:
            record.problem = f"it approves another notebook ({approval.notebook})"
        elif approval.digest == digest and approval.environment == environment:
            record.current = True
            current.append((record, approval))
        elif approval.digest == digest:
            record.why_not_counted = f"it is an approval for {approval.environment}"
        check.records.append(record)
    counted, skipped = count_approvers([a for _, a in current], policy, editor)
    check.approvers = counted
    for position, (record, _) in enumerate(current):
        record.counted = position not in skipped
        record.why_not_counted = skipped.get(position)
    return check


def valid_approvals(
    nb_path: str | Path,
    environment: str,
    *,
    keyring: KeyRing | None = None,
    keys_files: Sequence[str | Path] = (),
    settings: Any = None,
    policy: ReviewPolicy | None = None,
    editor: Editor | None = None,
) -> ApprovalCheck:
    """The approvals of the notebook at ``nb_path`` checked for ``environment``.

    Reads the notebook (refusing invalid ones, see :mod:`.digest`) and
    ``NOTEBOOK.approvals.json``; verifies every envelope against the trusted keys
    (``keyring``, else the configured keyring file, plus ``keys_files`` and, when OpenBao
    is configured, the environment's approver transit key); applies ``policy`` (else
    ``[ENV.review]`` of the configured policy file) with ``editor`` (else the last editor
    from the ledger's ``notebook.saved`` entries). ``settings`` is a
    :class:`~jupyter_qsecure.config.QSecure` (read from the Jupyter config when None).
    """
    from .approve import last_editor, review_policy, trusted_reviewer_keys
    from .digest import canonical_document, load_notebook

    if settings is None:
        from ..config import load_settings

        settings = load_settings()
    path = Path(nb_path)
    document = canonical_document(load_notebook(path), path=path)
    digest = document_digest(document)
    keys = keyring if keyring is not None else trusted_reviewer_keys(settings, environment)
    for extra in keys_files:
        for record in load_keyring(extra):
            keys.add(record)
    return check_approvals(
        read_approvals(approvals_path(path)),
        notebook=path,
        digest=digest,
        document=document,
        environment=environment,
        policy=policy if policy is not None else review_policy(settings, environment),
        editor=editor if editor is not None else last_editor(settings, path, digest),
        keyring=keys,
    )
