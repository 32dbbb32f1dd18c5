"""``jupyter qsecure verify-promotion DIR``: check a promotion before deploying it.

Checks, in order, and stops at the first mismatch (:class:`PromotionMismatch`, exit 1,
naming it):

1. ``promotion.intoto.json`` is a DSSE envelope signed by a trusted key (``--keys FILE``,
   a keyring JSON file, else the configured keyring file) carrying an in-toto
   Statement with an SLSA Provenance v1 predicate of our build type;
2. every file of ``DIR`` is a subject of it, and every subject is a file of ``DIR`` with
   that SHA-256 (nothing added, nothing removed, nothing changed);
3. the script's PEP 723 block pins exactly the lock's versions, every lock entry has
   hashes, and the script names the notebook digest the provenance records;
4. every approval in ``approvals.json`` has the digest the provenance records, verifies
   against a trusted reviewer key, approves this notebook digest for this environment,
   and the distinct approvers reach the policy's ``approvals_required``.

With no trusted key at all (no ``--keys`` and an empty keyring) nothing can be checked:
a :class:`~jupyter_qsecure.errors.QSecureError` (exit 2) asks for ``--keys``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import QSecureError, VerificationFailed
from .promote import APPROVALS_NAME, ENVELOPE_NAME
from .provenance import BUILD_TYPE, SLSA_PROVENANCE

if TYPE_CHECKING:
    from ..config import QSecure
    from ..signing.signers import KeyRing

__all__ = ["PromotionMismatch", "VerifiedPromotion", "verify_promotion"]

_PEP723 = re.compile(r"^# /// script\s*$(?P<body>.*?)^# ///\s*$", re.M | re.S)
_DEP = re.compile(r'^#\s+"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^"]+)",\s*$', re.M)
_DIGEST = re.compile(r"digest='(?P<digest>[0-9a-f]{64})'")


class PromotionMismatch(VerificationFailed):
    """A promotion does not verify; the message names the first mismatch."""


@dataclass(frozen=True)
class VerifiedPromotion:
    statement: dict[str, Any]
    notebook_digest: str
    environment: str
    script: str
    approvers: list[str]
    signer: str


def _fail(message: str, hint: str | None = None) -> PromotionMismatch:
    return PromotionMismatch(
        message, hint=hint or "do not deploy it: promote the approved notebook again"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _keyring(keys: str | os.PathLike[str] | KeyRing | None, settings: QSecure | None) -> KeyRing:
    from ..signing.signers import KeyRing

    if isinstance(keys, KeyRing):
        return keys
    if keys is not None:
        path = Path(keys)
        if not path.is_file():
            raise QSecureError(
                f"keyring file {path} does not exist", hint="pass the trusted keys with --keys"
            )
        return KeyRing.load(path)
    if settings is None:
        from ..config import load_settings

        settings = load_settings()
    return KeyRing.load(settings.resolved_keyring_file())


def verify_promotion(
    directory: str | os.PathLike[str],
    *,
    keys: str | os.PathLike[str] | KeyRing | None = None,
    settings: QSecure | None = None,
) -> VerifiedPromotion:
    """Verify the promotion in ``directory``; raise :class:`PromotionMismatch` if not."""
    from ..jobs.manifest import Envelope, ManifestError, envelope_digest, verify_envelope_keys

    root = Path(directory)
    if not root.is_dir():
        raise QSecureError(f"{root} is not a folder", hint="pass the folder promote wrote")
    keyring = _keyring(keys, settings)
    if not len(keyring):
        raise QSecureError(
            "no trusted public keys to verify the promotion with",
            hint="pass the keys of the machine that promoted it with --keys FILE (there: "
            "`jupyter qsecure audit keys -o FILE`)",
        )
    envelope_path = root / ENVELOPE_NAME
    if not envelope_path.is_file():
        raise _fail(f"{ENVELOPE_NAME} is missing from {root}")
    try:
        envelope = Envelope.model_validate_json(envelope_path.read_bytes())
        statement, signers = verify_envelope_keys(envelope, keyring, predicate_type=SLSA_PROVENANCE)
    except (ManifestError, ValueError) as exc:
        message = getattr(exc, "message", None) or str(exc).splitlines()[0]
        raise _fail(
            f"{ENVELOPE_NAME} does not verify: {message}",
            hint="do not deploy it: check that the trusted keys (--keys) are those of the "
            "machine that promoted it; otherwise promote the approved notebook again",
        ) from None
    predicate = statement["predicate"]
    definition = predicate.get("buildDefinition") or {}
    if definition.get("buildType") != BUILD_TYPE:
        raise _fail(f"{ENVELOPE_NAME} records build type {definition.get('buildType')!r}")
    params = definition.get("externalParameters") or {}

    # 2. the files are exactly the signed subjects
    subjects: dict[str, str] = {}
    for subject in statement["subject"]:
        name = subject["name"]
        if "/" in name or "\\" in name or name in ("", ".", "..") or name == ENVELOPE_NAME:
            raise _fail(f"{ENVELOPE_NAME} names an invalid subject {name!r}")
        subjects[name] = subject["digest"]["sha256"]
    present = sorted(p.name for p in root.iterdir() if p.name != ENVELOPE_NAME)
    for name in present:
        if name not in subjects:
            raise _fail(f"{name} is not part of the signed promotion (added after it)")
    for name, expected in subjects.items():
        path = root / name
        if not path.is_file():
            raise _fail(f"{name} is missing (the signed promotion has it)")
        actual = _sha256(path)
        if actual != expected:
            raise _fail(
                f"{name} changed: its sha256 is {actual[:16]}..., the signed promotion says "
                f"{expected[:16]}..."
            )

    # 3. script, pins and lock agree
    from .lock import LOCK_NAME, locked_versions

    scripts = [n for n in subjects if n.endswith(".py")]
    if len(scripts) != 1 or LOCK_NAME not in subjects:
        raise _fail(f"the signed promotion must hold one script and {LOCK_NAME}")
    script = scripts[0]
    text = (root / script).read_text(encoding="utf-8")
    block = _PEP723.search(text)
    if block is None:
        raise _fail(f"{script} has no PEP 723 '# /// script' block")
    pinned = {m.group("name").lower(): m.group("version") for m in _DEP.finditer(block["body"])}
    lock_text = (root / LOCK_NAME).read_text(encoding="utf-8")
    locked = locked_versions(lock_text)
    if pinned != locked:
        differ = sorted(set(pinned.items()) ^ set(locked.items()))
        raise _fail(f"{script}'s pins and {LOCK_NAME} disagree on {differ[0][0]}")
    unhashed = _unhashed(lock_text)
    if unhashed:
        raise _fail(f"{LOCK_NAME} has no hash for {unhashed}")
    notebook = params.get("notebook") or {}
    digest = str((notebook.get("digest") or {}).get("sha256", ""))
    named = _DIGEST.search(text)
    if named is None or named["digest"] != digest:
        raise _fail(f"{script} names another notebook digest than the signed promotion")
    resolved = {
        d.get("name"): str(d.get("uri", "")).rsplit("@", 1)[-1]
        for d in definition.get("resolvedDependencies") or []
    }
    if resolved != locked:
        raise _fail(f"the provenance's resolved dependencies differ from {LOCK_NAME}")

    # 4. approvals
    environment = str(params.get("environment", ""))
    approvers = _check_approvals(root, params, digest, environment, keyring, envelope_digest)
    signer = ", ".join(f"{k.key_id}@v{k.key_version}" for k in signers)
    return VerifiedPromotion(
        statement=statement,
        notebook_digest=digest,
        environment=environment,
        script=script,
        approvers=approvers,
        signer=signer,
    )


def _unhashed(lock_text: str) -> str | None:
    current: str | None = None
    hashed = True
    for line in lock_text.splitlines():
        if line and not line.startswith((" ", "#", "-")):
            if current is not None and not hashed:
                return current
            current, hashed = line.split()[0], False
        elif "--hash=sha256:" in line:
            hashed = True
    return current if current is not None and not hashed else None


def _check_approvals(
    root: Path,
    params: dict[str, Any],
    digest: str,
    environment: str,
    keyring: KeyRing,
    envelope_digest: Any,
) -> list[str]:
    from .review import verify_approval_envelope

    recorded = list(params.get("approvals") or [])
    policy = params.get("policy") or {}
    try:
        envelopes = json.loads((root / APPROVALS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise _fail(f"{APPROVALS_NAME} is missing or not JSON") from None
    if not isinstance(envelopes, list) or len(envelopes) != len(recorded):
        raise _fail(f"{APPROVALS_NAME} does not hold the approvals the provenance records")
    approvers: list[str] = []
    for position, (envelope, record) in enumerate(zip(envelopes, recorded, strict=True), 1):
        expected = str((record.get("digest") or {}).get("sha256", ""))
        try:
            actual = envelope_digest(envelope)
        except QSecureError as exc:
            raise _fail(f"approval {position} is not an envelope: {exc.message}") from None
        if actual != expected:
            raise _fail(f"approval {position} is not the one the provenance records")
        try:
            approval = verify_approval_envelope(envelope, keyring)
        except QSecureError as exc:
            raise _fail(
                f"approval {position} ({record.get('approver')}) does not verify: {exc.message}",
                hint="pass the reviewers' public keys with --keys (`jupyter qsecure audit keys`)",
            ) from None
        if approval.digest != digest:
            raise _fail(f"approval {position} approves another version of the notebook")
        if approval.environment != environment:
            raise _fail(f"approval {position} is for {approval.environment}, not {environment}")
        if approval.reviewer.name != record.get("approver"):
            raise _fail(f"approval {position} was signed by another reviewer than recorded")
        if approval.reviewer.name not in approvers:
            approvers.append(approval.reviewer.name)
    required = policy.get("approvals_required")
    if not isinstance(required, int) or required < 1:
        raise _fail("the provenance records no approvals_required")
    if len(approvers) < required:
        raise _fail(f"{len(approvers)} distinct approver(s); the policy required {required}")
    return approvers
