"""DSSE envelopes with in-toto statements: job manifests and results."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from jupyter_qsecure.jobs.manifest import (
    JOB_PREDICATE_TYPE,
    PAYLOAD_TYPE,
    RESULT_PREDICATE_TYPE,
    STATEMENT_TYPE,
    Envelope,
    ManifestError,
    build_job_statement,
    build_result_statement,
    envelope_digest,
    format_keyid,
    pae,
    parse_keyid,
    result_digest,
    runtime_versions,
    sign_envelope,
    sign_envelopes,
    statement_body_digest,
    statement_digest,
    verify_envelope,
    verify_result,
)
from jupyter_qsecure.signing.canonical import canonical_json
from jupyter_qsecure.signing.signers import Ed25519FileSigner, KeyRing

H1 = "a" * 64
H2 = "b" * 64
T1 = "c" * 64
T2 = "d" * 64
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


@pytest.fixture
def signer(tmp_path: Path) -> Ed25519FileSigner:
    return Ed25519FileSigner(tmp_path / "jobs.pem")


@pytest.fixture
def other_signer(tmp_path: Path) -> Ed25519FileSigner:
    return Ed25519FileSigner(tmp_path / "other.pem")


@pytest.fixture
def keyring(signer: Ed25519FileSigner) -> KeyRing:
    # what a kernel holds: public keys only, through the keyring file format
    return KeyRing.from_json(KeyRing(signer.public_keys()).to_json())


def job_statement(job_id: str = "job-1", shots: int = 1024) -> dict[str, Any]:
    return build_job_statement(
        job_id=job_id,
        circuit_hashes=[H1, H2],
        transpiled_hashes=[T1, T2],
        identity={"user": "alice", "kernel_id": "k-1", "environment": "dev"},
        backend="aer_simulator",
        options={"shots": shots, "seed": 7, "method": "statevector"},
        versions=runtime_versions(),
        decision={
            "decision_id": "dec-1",
            "policy_sha256": "e" * 64,
            "allowed": True,
            "rule": None,
        },
        correlation_id="corr-1",
        submitted_at=WHEN,
    )


COUNTS = [{"00": 510, "11": 514}, {"0": 1024}]
METADATA = {"shots": 1024, "seed": 7, "time_taken": 0.0125}


def _reencode(envelope: Envelope, statement: dict[str, Any]) -> Envelope:
    payload = base64.b64encode(canonical_json(statement)).decode()
    return envelope.model_copy(update={"payload": payload})


# ---- DSSE pre-authentication encoding -----------------------------------------------------
def test_pae_matches_the_dsse_spec_example() -> None:
    # protocol.md, "Test Vectors": PAYLOAD_TYPE http://example.com/HelloWorld, body "hello world"
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_lengths_are_byte_lengths_without_padding() -> None:
    # LEN(s) = ASCII decimal byte length, no leading zeros; type is UTF-8 encoded
    assert pae("application/vnd.ex\u00e4mple+json", b"{}") == (
        b"DSSEv1 29 application/vnd.ex\xc3\xa4mple+json 2 {}"
    )
    assert pae(PAYLOAD_TYPE, b"") == b"DSSEv1 28 application/vnd.in-toto+json 0 "
    body = b"x" * 1000
    assert pae(b"t", body) == b"DSSEv1 1 t 1000 " + body


def test_keyid_format() -> None:
    assert format_keyid("transit:transit/jobs", 3) == "transit:transit/jobs@v3"
    assert parse_keyid("transit:transit/jobs@v3") == ("transit:transit/jobs", 3)
    assert parse_keyid("ed25519:0123@v1") == ("ed25519:0123", 1)
    assert parse_keyid("no-version") is None
    assert parse_keyid("") is None


# ---- sign and verify ----------------------------------------------------------------------
def test_sign_verify_round_trip_local_ed25519(signer: Ed25519FileSigner, keyring: KeyRing) -> None:
    statement = job_statement()
    envelope = sign_envelope(statement, signer)
    assert envelope.payloadType == PAYLOAD_TYPE
    assert base64.b64decode(envelope.payload) == canonical_json(statement)
    (signature,) = envelope.signatures
    assert signature.keyid == f"{signer.key_id}@v1"
    # the signature is over the PAE of the payload, verifiable with any DSSE tooling
    public = signer.public_keys()[0]
    from cryptography.hazmat.primitives.asymmetric import ed25519

    ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(public.public_key)).verify(
        base64.b64decode(signature.sig), pae(PAYLOAD_TYPE, base64.b64decode(envelope.payload))
    )
    assert verify_envelope(envelope, keyring) == statement
    # through JSON (the REST API) and as a plain dict
    assert verify_envelope(envelope.model_dump_json(), keyring) == statement
    assert verify_envelope(json.loads(envelope.model_dump_json()), keyring) == statement
    assert verify_envelope(envelope, keyring, predicate_type=JOB_PREDICATE_TYPE) == statement


def test_job_statement_shape() -> None:
    statement = job_statement()
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == JOB_PREDICATE_TYPE
    assert statement["subject"] == [
        {"name": "circuit:0", "digest": {"sha256": H1}},
        {"name": "circuit:1", "digest": {"sha256": H2}},
        {"name": "transpiled:0", "digest": {"sha256": T1}},
        {"name": "transpiled:1", "digest": {"sha256": T2}},
    ]
    predicate = statement["predicate"]
    assert predicate["options"] == {
        "shots": 1024,
        "seed": 7,
        "method": "statevector",
        "noise_model_sha256": None,
        "error_mitigation": None,
    }
    assert set(predicate["versions"]) == {"python", "qiskit", "qiskit-aer", "jupyter-qsecure"}
    assert predicate["versions"]["qiskit"].startswith("2.")
    assert predicate["submitted_at"] == "2026-01-02T03:04:05+00:00"
    assert predicate["decision"]["decision_id"] == "dec-1"
    assert predicate["correlation_id"] == "corr-1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"circuit_hashes": ["nothex"], "transpiled_hashes": [T1]}, "not a SHA-256"),
        ({"transpiled_hashes": [T1]}, "2 circuit hashes but 1 transpiled"),
        ({"decision": {"decision_id": "x"}}, "policy decision lacks policy_sha256"),
        ({"options": {"seed": 1}}, "job options lack shots"),
        ({"submitted_at": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"options": {"shots": float("nan")}}, "canonical JSON"),
    ],
)
def test_job_statement_refuses_bad_input(change: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "job_id": "j",
        "circuit_hashes": [H1, H2],
        "transpiled_hashes": [T1, T2],
        "identity": {"user": "u"},
        "backend": "aer_simulator",
        "options": {"shots": 10},
        "decision": {"decision_id": "d", "policy_sha256": H1, "allowed": True, "rule": None},
        "correlation_id": "c",
        "submitted_at": WHEN,
    }
    arguments.update(change)
    with pytest.raises(ManifestError, match=message):
        build_job_statement(**arguments)


def test_tampered_payload_is_refused(signer: Ed25519FileSigner, keyring: KeyRing) -> None:
    envelope = sign_envelope(job_statement(), signer)
    tampered = _reencode(envelope, job_statement(shots=1_000_000))
    with pytest.raises(ManifestError, match=r"signature 1 .*does not verify") as info:
        verify_envelope(tampered, keyring)
    assert "not signed by 1 trusted key" in info.value.message


def test_swapped_signature_is_refused(signer: Ed25519FileSigner, keyring: KeyRing) -> None:
    first = sign_envelope(job_statement("job-1"), signer)
    second = sign_envelope(job_statement("job-2"), signer)
    swapped = first.model_copy(update={"signatures": second.signatures})
    with pytest.raises(ManifestError, match="does not verify"):
        verify_envelope(swapped, keyring)


def test_unknown_key_is_refused(other_signer: Ed25519FileSigner, keyring: KeyRing) -> None:
    envelope = sign_envelope(job_statement(), other_signer)
    with pytest.raises(ManifestError, match=rf"key {other_signer.key_id} version 1 is not trusted"):
        verify_envelope(envelope, keyring)
    with pytest.raises(ManifestError, match="no trusted public keys"):
        verify_envelope(envelope, KeyRing())


def test_keyid_is_only_a_hint(signer: Ed25519FileSigner, keyring: KeyRing) -> None:
    envelope = sign_envelope(job_statement(), signer)
    (signature,) = envelope.signatures
    for keyid in ("", "made-up@v9", "no-version"):
        relabelled = envelope.model_copy(
            update={"signatures": [signature.model_copy(update={"keyid": keyid})]}
        )
        assert verify_envelope(relabelled, keyring)["predicate"]["job_id"] == "job-1"


def test_wrong_payload_type_is_refused(signer: Ed25519FileSigner, keyring: KeyRing) -> None:
    envelope = sign_envelope(job_statement(), signer)
    other = envelope.model_copy(update={"payloadType": "application/json"})
    with pytest.raises(ManifestError, match="payloadType is 'application/json', expected"):
        verify_envelope(other, keyring)


def test_malformed_envelopes(signer: Ed25519FileSigner, keyring: KeyRing) -> None:
    envelope = sign_envelope(job_statement(), signer)
    with pytest.raises(ManifestError, match="not a DSSE envelope: payload"):
        verify_envelope({"payloadType": PAYLOAD_TYPE, "signatures": []}, keyring)
    with pytest.raises(ManifestError, match="not a DSSE envelope"):
        verify_envelope("{not json", keyring)
    with pytest.raises(ManifestError, match="no signatures"):
        verify_envelope(envelope.model_copy(update={"signatures": []}), keyring)
    with pytest.raises(ManifestError, match="payload is not valid base64"):
        verify_envelope(envelope.model_copy(update={"payload": "!!!"}), keyring)
    # a validly signed payload that is not an in-toto statement
    not_statement = sign_envelope({"_type": "something else"}, signer)
    with pytest.raises(ManifestError, match="_type is 'something else'"):
        verify_envelope(not_statement, keyring)


def test_url_safe_base64_is_accepted(signer: Ed25519FileSigner, keyring: KeyRing) -> None:
    envelope = sign_envelope(job_statement(), signer)
    raw_payload = base64.b64decode(envelope.payload)
    raw_sig = base64.b64decode(envelope.signatures[0].sig)
    url_safe = Envelope(
        payload=base64.urlsafe_b64encode(raw_payload).decode().rstrip("="),
        payloadType=PAYLOAD_TYPE,
        signatures=[
            {"keyid": envelope.signatures[0].keyid, "sig": base64.b64encode(raw_sig).decode()}
        ],
    )
    assert verify_envelope(url_safe, keyring) == job_statement()


def test_multiple_signers_and_threshold(
    signer: Ed25519FileSigner, other_signer: Ed25519FileSigner, keyring: KeyRing
) -> None:
    both = sign_envelope(job_statement(), [signer, other_signer])
    assert len(both.signatures) == 2
    # one trusted signature suffices by default; the untrusted co-signature is ignored
    assert verify_envelope(both, keyring)["predicate"]["job_id"] == "job-1"
    with pytest.raises(ManifestError, match="not signed by 2 trusted key"):
        verify_envelope(both, keyring, threshold=2)
    full = KeyRing([*signer.public_keys(), *other_signer.public_keys()])
    assert verify_envelope(both, full, threshold=2)
    # the same key twice does not count twice
    twice = both.model_copy(update={"signatures": [both.signatures[0]] * 2})
    with pytest.raises(ManifestError, match="1 distinct trusted key"):
        verify_envelope(twice, full, threshold=2)


def test_predicate_type_is_checked(signer: Ed25519FileSigner, keyring: KeyRing) -> None:
    envelope = sign_envelope(job_statement(), signer)
    with pytest.raises(ManifestError, match="predicateType is .*job/v1.*expected .*result/v1"):
        verify_envelope(envelope, keyring, predicate_type=RESULT_PREDICATE_TYPE)


# ---- results linked to manifests ----------------------------------------------------------
def _signed_job_and_result(
    signer: Ed25519FileSigner, job_id: str = "job-1"
) -> tuple[Envelope, Envelope]:
    manifest = sign_envelope(job_statement(job_id), signer)
    result = sign_envelope(
        build_result_statement(
            job_id=job_id,
            manifest_digest=statement_digest(manifest),
            counts=COUNTS,
            metadata=METADATA,
            completed_at=WHEN,
        ),
        signer,
    )
    return manifest, result


def test_result_statement_shape_and_digests(signer: Ed25519FileSigner) -> None:
    manifest, result = _signed_job_and_result(signer)
    statement = result.statement()
    assert statement["predicateType"] == RESULT_PREDICATE_TYPE
    assert statement["subject"] == [
        {"name": "result:job-1", "digest": {"sha256": result_digest(COUNTS, METADATA)}}
    ]
    assert statement["predicate"]["manifest"] == {"digest": {"sha256": statement_digest(manifest)}}
    # the link is the digest of the signed statement bytes, known before signing
    assert statement_digest(manifest) == statement_body_digest(job_statement("job-1"))
    assert statement_digest(manifest) == hashlib.sha256(manifest.payload_bytes()).hexdigest()
    assert statement["predicate"]["num_circuits"] == 2
    # digests are of canonical JSON: key order and JSON round trips do not matter
    assert result_digest(COUNTS, METADATA) == result_digest(
        [{"11": 514, "00": 510}, {"0": 1024}], dict(reversed(METADATA.items()))
    )
    assert envelope_digest(json.loads(manifest.model_dump_json())) == envelope_digest(manifest)
    assert envelope_digest(manifest) != envelope_digest(result)


def test_verify_result_accepts_a_linked_result(signer: Ed25519FileSigner, keyring: KeyRing) -> None:
    manifest, result = _signed_job_and_result(signer)
    job, res = verify_result(result, keyring, manifest=manifest, counts=COUNTS, metadata=METADATA)
    assert job["predicate"]["job_id"] == res["predicate"]["job_id"] == "job-1"


def test_result_linked_to_the_wrong_manifest_is_detected(
    signer: Ed25519FileSigner, keyring: KeyRing
) -> None:
    manifest_1, result_1 = _signed_job_and_result(signer, "job-1")
    manifest_2, _ = _signed_job_and_result(signer, "job-2")
    with pytest.raises(ManifestError, match="linked to manifest .* not to the manifest received"):
        verify_result(result_1, keyring, manifest=manifest_2, counts=COUNTS, metadata=METADATA)
    # a different manifest for the SAME job id (e.g. other options) is also refused
    other_options = sign_envelope(job_statement("job-1", shots=10), signer)
    with pytest.raises(ManifestError, match="linked to manifest"):
        verify_result(result_1, keyring, manifest=other_options, counts=COUNTS, metadata=METADATA)
    assert verify_result(result_1, keyring, manifest=manifest_1, counts=COUNTS, metadata=METADATA)


def test_result_for_another_job_id_is_detected(signer: Ed25519FileSigner, keyring: KeyRing) -> None:
    manifest = sign_envelope(job_statement("job-1"), signer)
    result = sign_envelope(
        build_result_statement(
            job_id="job-9",
            manifest_digest=statement_digest(manifest),
            counts=COUNTS,
            metadata=METADATA,
            completed_at=WHEN,
        ),
        signer,
    )
    with pytest.raises(ManifestError, match="result is for job 'job-9', manifest is for 'job-1'"):
        verify_result(result, keyring, manifest=manifest, counts=COUNTS, metadata=METADATA)


def test_tampered_counts_are_detected(signer: Ed25519FileSigner, keyring: KeyRing) -> None:
    manifest, result = _signed_job_and_result(signer)
    tampered = [{"00": 1024}, {"0": 1024}]
    with pytest.raises(ManifestError, match="counts and metadata received hash to"):
        verify_result(result, keyring, manifest=manifest, counts=tampered, metadata=METADATA)
    with pytest.raises(ManifestError, match="hash to"):
        verify_result(
            result, keyring, manifest=manifest, counts=COUNTS, metadata={**METADATA, "seed": 8}
        )


def test_result_and_manifest_swapped_are_refused(
    signer: Ed25519FileSigner, keyring: KeyRing
) -> None:
    manifest, result = _signed_job_and_result(signer)
    with pytest.raises(ManifestError, match="predicateType"):
        verify_result(manifest, keyring, manifest=result, counts=COUNTS, metadata=METADATA)


def test_result_statement_refuses_bad_manifest_digest() -> None:
    with pytest.raises(ManifestError, match="manifest digest is not a SHA-256"):
        build_result_statement(
            job_id="j", manifest_digest="xyz", counts=[], metadata={}, completed_at=WHEN
        )


def test_sign_envelopes_batch_matches_single(signer: Ed25519FileSigner, keyring: KeyRing) -> None:
    statements = [job_statement(f"job-{i}") for i in range(5)]
    envelopes = sign_envelopes(statements, signer)
    assert [verify_envelope(e, keyring) for e in envelopes] == statements
    # Ed25519 is deterministic: the batch path signs exactly what sign_envelope signs
    assert envelopes[0] == sign_envelope(statements[0], signer)


# ---- the real OpenBao transit signer ------------------------------------------------------
@pytest.mark.openbao
def test_sign_verify_round_trip_with_openbao_transit(
    openbao_client: Any, signer: Ed25519FileSigner
) -> None:
    from jupyter_qsecure.signing.transit import TransitSigner

    key_name = f"jobs-{uuid.uuid4().hex[:12]}"
    transit = TransitSigner(openbao_client, key_name=key_name)
    transit.ensure_key()
    offline = KeyRing.from_json(KeyRing(transit.public_keys()).to_json())

    manifest = sign_envelope(job_statement(), transit)
    assert manifest.signatures[0].keyid == f"transit:transit/{key_name}@v1"
    assert verify_envelope(manifest, offline) == job_statement()
    result = sign_envelope(
        build_result_statement(
            job_id="job-1",
            manifest_digest=statement_digest(manifest),
            counts=COUNTS,
            metadata=METADATA,
            completed_at=WHEN,
        ),
        transit,
    )
    verify_result(result, offline, manifest=manifest, counts=COUNTS, metadata=METADATA)

    # batched transit signing (sign_many) gives envelopes that verify the same way
    batch = sign_envelopes([job_statement(f"job-{i}") for i in range(3)], transit)
    assert [verify_envelope(e, offline)["predicate"]["job_id"] for e in batch] == [
        "job-0",
        "job-1",
        "job-2",
    ]

    # tampering is caught for transit signatures too; a local key is not trusted here
    with pytest.raises(ManifestError, match="does not verify"):
        verify_envelope(_reencode(manifest, job_statement(shots=5)), offline)
    with pytest.raises(ManifestError, match="is not trusted"):
        verify_envelope(sign_envelope(job_statement(), signer), offline)

    # after rotation: new envelopes name v2, old ones verify with the refreshed keyring
    transit.rotate()
    rotated = KeyRing(transit.public_keys())
    newer = sign_envelope(job_statement("job-2"), transit)
    assert newer.signatures[0].keyid == f"transit:transit/{key_name}@v2"
    assert verify_envelope(newer, rotated)["predicate"]["job_id"] == "job-2"
    assert verify_envelope(manifest, rotated) == job_statement()
    with pytest.raises(ManifestError, match="version 2 is not trusted"):
        verify_envelope(newer, offline)
