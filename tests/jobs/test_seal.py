"""JobService._seal: the manifest and result of a job, signed in one call, each statement
written as canonical JSON once (issue 12, broker CPU per job)."""

from __future__ import annotations

import collections
import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from jupyter_qsecure.jobs import manifest
from jupyter_qsecure.jobs.manifest import (
    JOB_PREDICATE_TYPE,
    RESULT_PREDICATE_TYPE,
    statement_digest,
    verify_envelope_keys,
)
from jupyter_qsecure.jobs.policy import Identity, Policy, PolicyEngine
from jupyter_qsecure.jobs.service import JobService, JobState
from jupyter_qsecure.signing.signers import Ed25519FileSigner, KeyRing


def sealing_service(tmp_path: Path) -> JobService:
    return JobService(
        identify=lambda token: None,
        engine=PolicyEngine(Policy.load(None, "dev")),
        signer=Ed25519FileSigner(tmp_path / "jobs-ed25519.pem"),
        ledger=None,  # type: ignore[arg-type]  # _seal never records
        executor=lambda: None,  # type: ignore[arg-type,return-value]  # never called
        environment="dev",
    )


def ran_job(service: JobService) -> tuple[JobState, dict[str, Any]]:
    """A job as ``complete`` holds it when its run is over, and the worker's outcome."""
    who = Identity(user="alice", kernel_id="k1", accessor="a1", environment="dev")
    decision = service.engine.refuse(who, rule="none", limit=0, actual=0, message="test")
    circuit = hashlib.sha256(b"circuit").hexdigest()
    state = JobState(
        job_id=uuid.uuid4().hex,
        identity={"user": "alice", "kernel_id": "k1", "accessor": "a1", "environment": "dev"},
        request={
            "shots": 128,
            "seed": 7,
            "backend": "aer_simulator",
            "method": "automatic",
            "noise": None,
            "tags": [],
        },
        decision=decision,
        circuit_hashes=[circuit],
        payload={},
        request_id=uuid.uuid4().hex,
    )
    outcome = {
        "transpiled_hashes": [hashlib.sha256(b"transpiled").hexdigest()],
        "metadata": {"seed": 7, "time_taken": 0.25},
        "counts": [{"00000": 61, "11111": 67}],
    }
    return state, outcome


def test_each_statement_is_written_once_and_its_digest_is_of_the_signed_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = sealing_service(tmp_path)
    try:
        state, outcome = ran_job(service)
        written: collections.Counter[str] = collections.Counter()
        real = manifest.canonical_json  # type: ignore[attr-defined]

        def counting(value: Any) -> bytes:
            if isinstance(value, dict) and "predicateType" in value:
                written[value["predicateType"]] += 1
            return real(value)

        monkeypatch.setattr(manifest, "canonical_json", counting)
        sealed = service._seal(state, outcome)
    finally:
        service.close()

    # the job statement: once checked by build_job_statement, once written for signing;
    # the result statement: once. (Hashing and signing each wrote it again before.)
    assert written == {JOB_PREDICATE_TYPE: 2, RESULT_PREDICATE_TYPE: 1}
    keyring = KeyRing(service.signer.public_keys())
    signed, _ = verify_envelope_keys(sealed.manifest, keyring, predicate_type=JOB_PREDICATE_TYPE)
    assert signed["predicate"]["job_id"] == state.job_id
    result, _ = verify_envelope_keys(
        sealed.result_envelope, keyring, predicate_type=RESULT_PREDICATE_TYPE
    )
    # what the ledger records names exactly what was signed
    assert sealed.completion["manifest_sha256"] == statement_digest(sealed.manifest)
    assert result["predicate"]["manifest"]["digest"]["sha256"] == statement_digest(sealed.manifest)
    assert sealed.completion["result_sha256"] == result["subject"][0]["digest"]["sha256"]
