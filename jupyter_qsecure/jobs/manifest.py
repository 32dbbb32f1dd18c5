"""Signed job manifests and results: in-toto Statement v1 in a DSSE envelope.

A job's *manifest* is an in-toto Statement (``_type`` ``https://in-toto.io/Statement/v1``)
whose subjects are the canonical hashes of the submitted and the transpiled circuits
(:mod:`jupyter_qsecure.jobs.canonical`) and whose predicate
(``https://jupyter-qsecure.dev/job/v1``) records who ran what, where, how and under
which policy decision. A job's *result* is a second Statement
(``https://jupyter-qsecure.dev/result/v1``) whose subject is the digest of the counts
and metadata and whose predicate links it to the manifest's envelope digest.

Both travel in DSSE envelopes (https://github.com/secure-systems-lab/dsse):

* the payload is the RFC 8785 canonical JSON of the statement (so its bytes, and every
  digest over them, are reproducible), base64-encoded in the envelope;
* each signature is over ``PAE(payloadType, payload)`` =
  ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, made by a ledger
  :class:`~jupyter_qsecure.signing.signers.Signer` (OpenBao transit or a local Ed25519
  key; the private key never leaves the signer);
* ``keyid`` is ``"<key_id>@v<key_version>"``, e.g. ``transit:transit/jobs@v3`` or
  ``ed25519:0123456789abcdef@v1``. As DSSE requires, it is only a hint that narrows the
  keys tried; a signature counts when it verifies against a key in the verifier's
  :class:`~jupyter_qsecure.signing.signers.KeyRing` (public keys only, offline).

A kernel checks a result with :func:`verify_result`: both signatures, that the result
names the manifest it received (by :func:`statement_digest`) and the same job id, and
that the counts and metadata it was given hash to the result's subject.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from importlib import metadata as importlib_metadata
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._version import __version__
from ..errors import QSecureError
from ..signing.canonical import canonical_json
from ..signing.signers import (
    KeyRing,
    PublicKeyRecord,
    SignatureProblem,
    SignatureRecord,
    Signer,
    verify_signature,
)

__all__ = [
    "JOB_PREDICATE_TYPE",
    "PAYLOAD_TYPE",
    "RESULT_PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "Envelope",
    "EnvelopeSignature",
    "ManifestError",
    "build_job_statement",
    "build_result_statement",
    "canonical_statement",
    "envelope_digest",
    "statement_body_digest",
    "statement_digest",
    "format_keyid",
    "pae",
    "parse_keyid",
    "result_digest",
    "runtime_versions",
    "sign_bodies",
    "sign_envelope",
    "sign_envelopes",
    "verify_envelope",
    "verify_result",
]

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
JOB_PREDICATE_TYPE = "https://jupyter-qsecure.dev/job/v1"
RESULT_PREDICATE_TYPE = "https://jupyter-qsecure.dev/result/v1"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KEYID = re.compile(r"^(?P<key_id>.+)@v(?P<version>[0-9]+)$")

#: Options every job manifest records (``None`` when not set).
JOB_OPTION_KEYS = ("shots", "seed", "method", "noise_model_sha256", "error_mitigation")
#: Fields every recorded policy decision carries.
DECISION_KEYS = ("decision_id", "policy_sha256", "allowed", "rule")


class ManifestError(QSecureError):
    """A manifest or result envelope is malformed, unsigned, tampered with or unlinked."""

    exit_code = 1


# ---- envelope model -----------------------------------------------------------------------
class EnvelopeSignature(BaseModel):
    """One DSSE signature: ``sig`` is base64 of the raw signature over the PAE."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keyid: str = ""
    sig: str


class Envelope(BaseModel):
    """A DSSE JSON envelope (field names as in the DSSE specification)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    payload: str  # base64 of the serialized body (the statement's canonical JSON)
    payloadType: str = PAYLOAD_TYPE  # noqa: N815 - DSSE field name
    signatures: list[EnvelopeSignature] = Field(default_factory=list)

    def payload_bytes(self) -> bytes:
        """The decoded payload (standard or URL-safe base64, as DSSE requires)."""
        return _b64decode(self.payload, what="payload")

    def statement(self) -> dict[str, Any]:
        """The decoded statement, WITHOUT verifying anything (use :func:`verify_envelope`)."""
        return _parse_statement(self.payload_bytes())


# ---- DSSE primitives ----------------------------------------------------------------------
def pae(payload_type: str | bytes, body: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding of ``payload_type`` and ``body``."""
    kind = payload_type.encode("utf-8") if isinstance(payload_type, str) else payload_type
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(body), body)


def format_keyid(key_id: str, key_version: int) -> str:
    """The envelope ``keyid`` of one key version: ``"<key_id>@v<version>"``."""
    return f"{key_id}@v{key_version}"


def parse_keyid(keyid: str) -> tuple[str, int] | None:
    """``(key_id, key_version)`` from a ``keyid``, or None when it is not in our format."""
    match = _KEYID.match(keyid or "")
    if match is None:
        return None
    return match.group("key_id"), int(match.group("version"))


def _b64decode(text: str, *, what: str) -> bytes:
    alphabet = b"-_" if ("-" in text or "_" in text) else None
    padded = text + "=" * (-len(text) % 4)
    try:
        if alphabet is None:
            return base64.b64decode(padded.encode("ascii"), validate=True)
        return base64.b64decode(padded.encode("ascii"), altchars=alphabet, validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise ManifestError(
            f"envelope {what} is not valid base64",
            hint="the envelope was corrupted in transit or edited; fetch it again",
        ) from exc


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _canonical(value: Any, *, what: str) -> bytes:
    try:
        return canonical_json(value)
    except Exception as exc:  # rfc8785 raises on NaN/inf, huge ints, non-JSON types
        raise ManifestError(
            f"{what} cannot be written as canonical JSON: {exc}",
            hint="use JSON values only (finite floats, integers within +/-2**53, str keys)",
        ) from exc


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- signing ------------------------------------------------------------------------------
def sign_envelope(statement: Mapping[str, Any], signer: Signer | Sequence[Signer]) -> Envelope:
    """Wrap ``statement`` (canonical JSON) in a DSSE envelope signed by ``signer``(s)."""
    signers = [signer] if not isinstance(signer, Sequence) else list(signer)
    if not signers:
        raise ManifestError("sign_envelope needs at least one signer")
    body = _canonical(dict(statement), what="statement")
    message = pae(PAYLOAD_TYPE, body)
    signatures = [_envelope_signature(s.sign(message)) for s in signers]
    return Envelope(payload=_b64encode(body), payloadType=PAYLOAD_TYPE, signatures=signatures)


def canonical_statement(statement: Mapping[str, Any]) -> bytes:
    """``statement`` as the canonical JSON an envelope carries and its digest covers
    (:class:`ManifestError` when it cannot be written so). Written once, it can be both
    hashed (the digest the ledger records) and signed (:func:`sign_bodies`)."""
    return _canonical(dict(statement), what="statement")


def sign_envelopes(statements: Iterable[Mapping[str, Any]], signer: Signer) -> list[Envelope]:
    """Sign many statements with one signer, batched when it has ``sign_many`` (transit)."""
    return sign_bodies([canonical_statement(s) for s in statements], signer)


def sign_bodies(bodies: Sequence[bytes], signer: Signer) -> list[Envelope]:
    """:func:`sign_envelopes` of statements already written by :func:`canonical_statement`
    (the broker hashes each body for the ledger and signs the same bytes)."""
    messages = [pae(PAYLOAD_TYPE, body) for body in bodies]
    sign_many = getattr(signer, "sign_many", None)
    records = sign_many(messages) if callable(sign_many) else [signer.sign(m) for m in messages]
    return [
        Envelope(
            payload=_b64encode(body),
            payloadType=PAYLOAD_TYPE,
            signatures=[_envelope_signature(record)],
        )
        for body, record in zip(bodies, records, strict=True)
    ]


def _envelope_signature(record: SignatureRecord) -> EnvelopeSignature:
    return EnvelopeSignature(
        keyid=format_keyid(record.key_id, record.key_version), sig=record.signature
    )


# ---- verification -------------------------------------------------------------------------
def _as_envelope(envelope: Envelope | Mapping[str, Any] | str | bytes) -> Envelope:
    if isinstance(envelope, Envelope):
        return envelope
    try:
        if isinstance(envelope, (str, bytes)):
            return Envelope.model_validate_json(envelope)
        return Envelope.model_validate(dict(envelope))
    except (ValidationError, TypeError, ValueError) as exc:
        raise ManifestError(
            f"not a DSSE envelope: {_first_problem(exc)}",
            hint="an envelope is {payload, payloadType, signatures: [{keyid, sig}]}",
        ) from exc


def _first_problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ())) or "envelope"
        return f"{where}: {error.get('msg', 'invalid')}"
    return str(exc)


def _candidates(keyid: str, keyring: KeyRing) -> list[PublicKeyRecord]:
    """Keys to try for one signature: the one its keyid names, else every trusted key."""
    parsed = parse_keyid(keyid)
    if parsed is not None:
        named = keyring.get(*parsed)
        if named is not None:
            return [named]
    return list(keyring)


def verify_envelope(
    envelope: Envelope | Mapping[str, Any] | str | bytes,
    keyring: KeyRing,
    *,
    predicate_type: str | None = None,
    threshold: int = 1,
) -> dict[str, Any]:
    """Verify a DSSE envelope and return the in-toto statement it carries.

    At least ``threshold`` distinct trusted keys (from ``keyring``) must have signed
    the PAE of the payload; ``predicate_type``, when given, must match. Raises
    :class:`ManifestError` naming what failed.
    """
    return verify_envelope_keys(
        envelope, keyring, predicate_type=predicate_type, threshold=threshold
    )[0]


def verify_envelope_keys(
    envelope: Envelope | Mapping[str, Any] | str | bytes,
    keyring: KeyRing,
    *,
    predicate_type: str | None = None,
    threshold: int = 1,
) -> tuple[dict[str, Any], list[PublicKeyRecord]]:
    """:func:`verify_envelope`, also returning the trusted keys whose signatures verified."""
    env = _as_envelope(envelope)
    if env.payloadType != PAYLOAD_TYPE:
        raise ManifestError(
            f"envelope payloadType is {env.payloadType!r}, expected {PAYLOAD_TYPE!r}",
            hint="only in-toto statements are accepted as job manifests and results",
        )
    body = env.payload_bytes()
    if not env.signatures:
        raise ManifestError(
            "envelope has no signatures", hint="manifests and results must be signed"
        )
    if len(keyring) == 0:
        raise ManifestError(
            "no trusted public keys to verify the envelope with",
            hint="fetch them from /qsecure/api/jobs/keys or pass the keyring file",
        )
    message = pae(env.payloadType, body)
    accepted: set[tuple[str, int]] = set()
    signers: list[PublicKeyRecord] = []
    problems: list[str] = []
    for index, signature in enumerate(env.signatures):
        label = f"signature {index + 1} (keyid {signature.keyid or '<none>'})"
        parsed = parse_keyid(signature.keyid)
        if parsed is not None and keyring.get(*parsed) is None:
            named_unknown = f"key {parsed[0]} version {parsed[1]} is not trusted"
        else:
            named_unknown = None
        ok = False
        for key in _candidates(signature.keyid, keyring):
            record = SignatureRecord(
                key_id=key.key_id,
                key_version=key.key_version,
                algorithm=key.algorithm,
                signature=signature.sig,
            )
            try:
                verify_signature(record, message, keyring)
            except SignatureProblem:
                continue
            except ValueError:  # not base64: reported below
                continue
            if (key.key_id, key.key_version) not in accepted:
                signers.append(key)
            accepted.add((key.key_id, key.key_version))
            ok = True
            break
        if not ok:
            if named_unknown is not None:
                problems.append(f"{label}: {named_unknown} and no trusted key verifies it")
            else:
                problems.append(f"{label}: does not verify (tampered payload or signature)")
    if len(accepted) < threshold:
        detail = (
            "; ".join(problems)
            if problems
            else f"{len(accepted)} distinct trusted key(s) signed, {threshold} required"
        )
        raise ManifestError(
            f"envelope is not signed by {threshold} trusted key(s): {detail}",
            hint="the manifest or result was altered, or was signed by a key you do not trust",
        )
    statement = _parse_statement(body)
    if predicate_type is not None and statement["predicateType"] != predicate_type:
        raise ManifestError(
            f"statement predicateType is {statement['predicateType']!r}, "
            f"expected {predicate_type!r}",
            hint="a result envelope was given where a manifest was expected, or vice versa",
        )
    return statement, signers


def _parse_statement(body: bytes) -> dict[str, Any]:
    try:
        statement = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestError("envelope payload is not JSON") from exc
    if not isinstance(statement, dict):
        raise ManifestError("envelope payload is not a JSON object")
    if statement.get("_type") != STATEMENT_TYPE:
        raise ManifestError(
            f"payload _type is {statement.get('_type')!r}, expected {STATEMENT_TYPE!r}"
        )
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise ManifestError("statement has no subject")
    for subject in subjects:
        digest = subject.get("digest") if isinstance(subject, dict) else None
        if (
            not isinstance(subject, dict)
            or not isinstance(subject.get("name"), str)
            or not isinstance(digest, dict)
            or not _SHA256.match(str(digest.get("sha256", "")))
        ):
            raise ManifestError(f"statement subject {subject!r} lacks a name and sha256 digest")
    if not isinstance(statement.get("predicateType"), str):
        raise ManifestError("statement has no predicateType")
    if not isinstance(statement.get("predicate"), dict):
        raise ManifestError("statement has no predicate object")
    return statement


# ---- digests ------------------------------------------------------------------------------
def envelope_digest(envelope: Envelope | Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the envelope's canonical JSON: how a result names its manifest."""
    env = _as_envelope(envelope)
    return _sha256(_canonical(env.model_dump(mode="json"), what="envelope"))


def statement_digest(envelope: Envelope | Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the envelope's signed payload: the statement's canonical JSON.

    This is how a result and the ledger name a job manifest. It covers everything the
    signature covers and nothing the signature does not, and it is known before signing,
    so a manifest and its result can be signed in one transit batch.
    """
    return _sha256(_as_envelope(envelope).payload_bytes())


def statement_body_digest(statement: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of ``statement``'s canonical JSON: equals :func:`statement_digest` of
    the envelope that :func:`sign_envelope` makes of it."""
    return _sha256(canonical_statement(statement))


def result_digest(counts: Sequence[Mapping[str, int]], metadata: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``{"counts": counts, "metadata": metadata}``."""
    return _sha256(
        _canonical({"counts": [dict(c) for c in counts], "metadata": dict(metadata)}, what="result")
    )


def _check_sha256(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise ManifestError(f"{what} is not a SHA-256 hex digest: {value!r}")
    return value


def _timestamp(value: datetime | str) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ManifestError("timestamps must be timezone-aware (use UTC)")
        return value.isoformat()
    if not isinstance(value, str) or not value:
        raise ManifestError(f"timestamp must be an ISO 8601 string, got {value!r}")
    return value


# ---- statements ---------------------------------------------------------------------------
def runtime_versions() -> dict[str, str | None]:
    """Versions that decide how a circuit runs: Python, Qiskit, Qiskit Aer, jupyter-qsecure.

    Read once per process (the modules a process has imported do not change under it).
    """
    return dict(_runtime_versions())


@functools.lru_cache(maxsize=1)
def _runtime_versions() -> tuple[tuple[str, str | None], ...]:
    def version(dist: str) -> str | None:
        try:
            return importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            return None

    return (
        ("python", platform.python_version()),
        ("qiskit", version("qiskit")),
        ("qiskit-aer", version("qiskit-aer")),
        ("jupyter-qsecure", __version__),
    )


def build_job_statement(
    *,
    job_id: str,
    circuit_hashes: Sequence[str],
    transpiled_hashes: Sequence[str],
    identity: Mapping[str, Any],
    backend: str,
    options: Mapping[str, Any],
    versions: Mapping[str, Any] | None = None,
    decision: Mapping[str, Any],
    correlation_id: str,
    submitted_at: datetime | str,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The job manifest statement (predicateType :data:`JOB_PREDICATE_TYPE`).

    ``request_id`` is the submitter's own unique id for the request: signed into the
    predicate, it lets the submitter tell this manifest from a replayed earlier one.

    Subjects: ``circuit:<i>`` (submitted circuit ``i``) and ``transpiled:<i>`` (what
    actually ran), each with its canonical circuit hash. ``options`` always records
    :data:`JOB_OPTION_KEYS` (missing ones as ``None``); ``decision`` must carry
    :data:`DECISION_KEYS`; ``versions`` defaults to :func:`runtime_versions`.
    """
    if not job_id:
        raise ManifestError("a job manifest needs a job id")
    if not circuit_hashes:
        raise ManifestError("a job manifest needs at least one circuit hash")
    if len(transpiled_hashes) != len(circuit_hashes):
        raise ManifestError(
            f"{len(circuit_hashes)} circuit hashes but {len(transpiled_hashes)} transpiled hashes"
        )
    missing = [k for k in DECISION_KEYS if k not in decision]
    if missing:
        raise ManifestError(f"policy decision lacks {', '.join(missing)}")
    if "shots" not in options:
        raise ManifestError("job options lack shots")
    subjects = [
        {"name": f"circuit:{i}", "digest": {"sha256": _check_sha256(h, f"circuit hash {i}")}}
        for i, h in enumerate(circuit_hashes)
    ] + [
        {
            "name": f"transpiled:{i}",
            "digest": {"sha256": _check_sha256(h, f"transpiled circuit hash {i}")},
        }
        for i, h in enumerate(transpiled_hashes)
    ]
    recorded_options = {key: options.get(key) for key in JOB_OPTION_KEYS}
    recorded_options.update({k: v for k, v in options.items() if k not in recorded_options})
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": JOB_PREDICATE_TYPE,
        "predicate": {
            "job_id": job_id,
            "identity": dict(identity),
            "backend": backend,
            "options": recorded_options,
            "versions": dict(runtime_versions() if versions is None else versions),
            "decision": dict(decision),
            "correlation_id": correlation_id,
            **({"request_id": request_id} if request_id is not None else {}),
            "submitted_at": _timestamp(submitted_at),
            "circuits": [
                {"index": i, "sha256": c, "transpiled_sha256": t}
                for i, (c, t) in enumerate(zip(circuit_hashes, transpiled_hashes, strict=True))
            ],
        },
    }
    _canonical(statement, what="job statement")  # fail here, not at signing time
    return statement


def build_result_statement(
    *,
    job_id: str,
    manifest_digest: str,
    counts: Sequence[Mapping[str, int]],
    metadata: Mapping[str, Any],
    completed_at: datetime | str,
) -> dict[str, Any]:
    """The result statement (predicateType :data:`RESULT_PREDICATE_TYPE`).

    Subject ``result:<job_id>`` with :func:`result_digest` of counts and metadata; the
    predicate links to the manifest by ``manifest_digest`` (:func:`statement_digest` of
    the job envelope: the SHA-256 of the signed job statement) and records the counts
    and metadata digests separately.
    """
    if not job_id:
        raise ManifestError("a result statement needs a job id")
    _check_sha256(manifest_digest, "manifest digest")
    counts_list = [dict(c) for c in counts]
    meta = dict(metadata)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": f"result:{job_id}", "digest": {"sha256": result_digest(counts_list, meta)}}
        ],
        "predicateType": RESULT_PREDICATE_TYPE,
        "predicate": {
            "job_id": job_id,
            "manifest": {"digest": {"sha256": manifest_digest}},
            "counts_sha256": _sha256(_canonical(counts_list, what="counts")),
            "metadata_sha256": _sha256(_canonical(meta, what="result metadata")),
            "num_circuits": len(counts_list),
            "completed_at": _timestamp(completed_at),
        },
    }
    return statement


def verify_result(
    result_envelope: Envelope | Mapping[str, Any],
    keyring: KeyRing,
    *,
    manifest: Envelope | Mapping[str, Any],
    counts: Sequence[Mapping[str, int]],
    metadata: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a kernel checks before it returns a result; returns (job, result) statements.

    Both envelopes must verify; the result must name this manifest (its
    :func:`statement_digest`) and its job id; ``counts`` and ``metadata`` must hash to
    the result's subject. Raises :class:`ManifestError` naming the failed check.
    """
    job = verify_envelope(manifest, keyring, predicate_type=JOB_PREDICATE_TYPE)
    result = verify_envelope(result_envelope, keyring, predicate_type=RESULT_PREDICATE_TYPE)
    job_id = job["predicate"].get("job_id")
    linked = result["predicate"].get("manifest", {}).get("digest", {}).get("sha256")
    expected = statement_digest(manifest)
    if linked != expected:
        raise ManifestError(
            f"result of job {result['predicate'].get('job_id')!r} is linked to manifest "
            f"{linked}, not to the manifest received ({expected})",
            hint="the result belongs to another job or the manifest was replaced",
        )
    if result["predicate"].get("job_id") != job_id:
        raise ManifestError(
            f"result is for job {result['predicate'].get('job_id')!r}, manifest is for {job_id!r}"
        )
    subject = result["subject"][0]
    if subject["name"] != f"result:{job_id}":
        raise ManifestError(f"result subject {subject['name']!r} does not name job {job_id!r}")
    actual = result_digest(counts, metadata)
    if subject["digest"]["sha256"] != actual:
        raise ManifestError(
            f"counts and metadata received hash to {actual}, but the signed result says "
            f"{subject['digest']['sha256']}",
            hint="the result was altered after it was signed; do not trust these counts",
        )
    return job, result
