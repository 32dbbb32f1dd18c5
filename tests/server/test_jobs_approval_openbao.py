"""Approvals with OpenBao: only an identity with the environment's approver policy can
sign one (not the server's token, not a kernel's), and the server checks that the token
that signed belongs to the approver the approval names. Real OpenBao, server, kernel."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import hvac
import pytest
from jobs_helpers import Broker, cli_async, ghz, job, server_config, start_kernel

from jupyter_qsecure.errors import SigningError
from jupyter_qsecure.jobs.approval import ApproverRef, approval_subject, build_approval
from jupyter_qsecure.ledger import EntryFilter
from jupyter_qsecure.signing.transit import TransitSigner
from jupyter_qsecure.testing.openbao import OpenBaoDev
from jupyter_qsecure.vault import layout


@pytest.fixture
def jp_server_config(
    qsecure_data_dir: Path,
    vault: dict[str, str],
    policy_file: Path,
) -> dict[str, Any]:
    return server_config(
        qsecure_data_dir,
        policy_file,
        vault_addr=vault["addr"],
        ledger_signer="local",
        environment="dev",
        job_workers=1,
    )


def signer(openbao: OpenBaoDev, token: str, env: str = "dev") -> TransitSigner:
    client = hvac.Client(url=openbao.addr, token=token)
    return TransitSigner(client, key_name=layout.approver_transit_key(env))


async def test_only_an_approver_identity_can_approve_and_is_recorded(
    broker: Broker,
    openbao: OpenBaoDev,
    openbao_client: Any,
    vault: dict[str, str],
    qsecure_data_dir: Path,
) -> None:
    _, kernel_token, _ = await start_kernel(broker.fetch, broker.ws_fetch, broker.app)
    code, body, _ = await broker.post(kernel_token, job(ghz(9), wait=False))
    assert code == 202 and body["status"] == "pending_approval"
    job_id = body["job_id"]
    state = broker.service._jobs[job_id]

    # Neither the server's token nor the kernel's may sign with the approver key.
    for token in (vault["token"], kernel_token):
        with pytest.raises(SigningError, match="permission denied"):
            signer(openbao, token).sign(b"approve " + job_id.encode())

    env = {
        **os.environ,
        "QSECURE_DATA_DIR": str(qsecure_data_dir),
        "BAO_ADDR": openbao.addr,
    }
    # A token without the approver policy (the server's) cannot approve with the CLI.
    code, _, err = await cli_async({**env, "BAO_TOKEN": vault["token"]}, "jobs", "approve", job_id)
    assert code == 2 and "does not have the qsecure-approver-dev policy" in err

    # An approver of another environment signs with that environment's key: refused.
    prod = layout.create_approver_token(openbao_client, "prod", "mallory")["client_token"]
    submitted = [
        e.body
        for e in broker.ledger.entries(EntryFilter(kinds=["job.submitted"]))
        if e.body["job_id"] == job_id
    ][-1]
    forged = build_approval(
        job_id=job_id,
        subject=approval_subject(
            job_id, submitted["decision_id"], submitted["circuit_hashes"], submitted["request"]
        ),
        decision_id=submitted["decision_id"],
        environment="dev",
        approver=ApproverRef(name="mallory", source="openbao", accessor="x" * 24),
        submitter=submitted["identity"]["user"],
        note="",
        signer=signer(openbao, prod, "prod"),
    )
    broker.ledger.append("job.approved", forged, actor="approver:mallory", correlation_id=job_id)
    extension = broker.app.web_app.settings["jupyter_qsecure_server"]
    await extension._approvals_tick()
    refused = broker.ledger.entries(EntryFilter(kinds=["job.approval_refused"]))[-1].body
    assert "not signed by a trusted approver key" in refused["reason"]
    assert state.status == "pending_approval"

    # The dev approver, with their own token: released, with both identities.
    alice = layout.create_approver_token(openbao_client, "dev", "alice")
    code, out, err = await cli_async(
        {**env, "BAO_TOKEN": alice["client_token"]}, "jobs", "approve", job_id, "--note", "ok"
    )
    assert code == 0 and "the server released job" in out, (out, err)
    assert alice["client_token"] not in out + err
    assert state.finished is not None
    await state.finished.wait()
    assert state.status == "completed", state.error
    released = broker.ledger.entries(EntryFilter(kinds=["job.released"]))[-1]
    assert released.body["approver"]["name"] == "alice"
    assert released.body["approver"]["source"] == "openbao"
    assert released.body["submitter"]["user"] == state.identity["user"]
    approved = broker.ledger.entries(EntryFilter(kinds=["job.approved"]))[-1].body
    assert approved["statement"]["predicate"]["approver"]["accessor"] == alice["accessor"]
    entries = [e.model_dump_json() for e in broker.ledger.entries()]
    assert not any(alice["client_token"] in e or prod in e for e in entries)
