"""The job broker with OpenBao: manifests and results signed by transit, jobs that finish
together sharing signing calls, every job verified offline with transit's public keys."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import Broker, ghz, job, kernel_token, run_cell
from server_helpers import extension_config

from jupyter_qsecure.jobs.canonical import circuit_hash
from jupyter_qsecure.jobs.result import Expected, verify_record
from jupyter_qsecure.signing.signers import KeyRing
from jupyter_qsecure.testing.openbao import OpenBaoDev


@pytest.fixture
def jp_server_config(qsecure_data_dir: Path, vault: dict[str, str]) -> dict[str, Any]:
    return extension_config(
        data_dir=str(qsecure_data_dir),
        vault_addr=vault["addr"],
        ledger_signer="local",
        environment="dev",
        job_workers=2,
    )


async def test_jobs_are_signed_by_transit_and_share_signing_calls(
    broker: Broker,
    openbao: OpenBaoDev,
) -> None:
    token, client = await kernel_token(broker.fetch, broker.ws_fetch, broker.app)
    out = await run_cell(
        client,
        "from qiskit import QuantumCircuit\n"
        "qc = QuantumCircuit(2); qc.h(0); qc.cx(0, 1); qc.measure_all()\n"
        "r = %qsubmit qc --shots 200 --seed 3\n"
        "print('SIGNER', r.verification.signer)\n"
        "print('VERIFIED', r.verification.verified)\n",
    )
    assert "VERIFIED True" in out
    assert "SIGNER transit:transit/qsecure-jobs v1" in out

    service = broker.service
    calls_before = service.signer.calls
    circuits = [ghz(2 + i % 4) for i in range(8)]
    bodies = [job(qc, seed=100 + i, shots=64) for i, qc in enumerate(circuits)]
    replies = await asyncio.gather(*(broker.post(token, body) for body in bodies))
    # one signing call per job at most (manifest and result together), fewer when
    # jobs finish at the same moment
    assert service.signer.calls - calls_before <= len(bodies)

    keyring = KeyRing(service.signer.public_keys())
    assert all(key.source == "transit" for key in keyring)
    ledger = broker.ledger
    completed = {e.body["job_id"]: e.body for e in ledger.entries() if e.kind == "job.completed"}
    for (status, record, _), qc, body in zip(replies, circuits, bodies, strict=True):
        assert status == 200, record
        verification = verify_record(
            record,
            keyring,
            [Expected("qpy", circuit_hash(qc))],
            {"shots": 64, "seed": body["seed"]},
        )
        assert verification.verified
        assert record["manifest"]["signatures"][0]["keyid"].startswith("transit:")
        # the ledger names the manifest by the digest the signed result links to
        assert completed[record["job_id"]]["manifest_sha256"] == verification.manifest_digest
    assert ledger.verify().ok

    # The jobs key is rotated while the server runs: the next result is signed by v2, the
    # broker publishes v2, and the kernel (which cached v1) refetches and verifies.
    openbao.client().secrets.transit.rotate_key(name="qsecure-jobs", mount_point="transit")
    out = await run_cell(
        client,
        "r2 = %qsubmit qc --shots 200 --seed 4\n"
        "print('SIGNER2', r2.verification.signer, r2.verification.verified)\n",
    )
    assert "SIGNER2 transit:transit/qsecure-jobs v2 True" in out
    assert {k["key_version"] for k in service.public_keys()} == {1, 2}
