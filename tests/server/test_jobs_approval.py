"""Approvals of heavy runs through the real server, a real kernel and the real CLI.

A kernel that submits a heavy run cannot approve it: `jobs approve` refuses to run in a
kernel, and approvals the kernel writes into the ledger itself (unsigned, signed with a
key of its own, or claiming a trusted approver's key) are refused and recorded as such.
An approver's signed approval releases the job, with both identities in the ledger.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import Broker, cli_async, ghz, job, kernel_token, run_cell, server_config

from jupyter_qsecure.jobs.approval import (
    ApprovalVerifier,
    ApproverTrust,
    LocalApproverKey,
)
from jupyter_qsecure.jobs.policy import Policy
from jupyter_qsecure.ledger import EntryFilter

OFFICER = "security-officer"


@pytest.fixture
def approver_keys(tmp_path: Path) -> Path:
    return tmp_path / "approver-keys"


@pytest.fixture
def officer_passphrase() -> str:
    return secrets.token_urlsafe(18)


def cli_env(data_dir: Path, key_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "QSECURE_DATA_DIR": str(data_dir),
        "QSECURE_APPROVER_KEY_DIR": str(key_dir),
    }


@pytest.fixture
def jp_server_config(  # the officer is trusted before the server starts, as in real life
    qsecure_data_dir: Path,
    policy_file: Path,
    approver_keys: Path,
    officer_passphrase: str,
) -> dict[str, Any]:
    import subprocess

    added = subprocess.run(
        [sys.executable, "-m", "jupyter_qsecure.cli.main", "jobs", "approver", "add", OFFICER],
        input=officer_passphrase + "\n",
        capture_output=True,
        text=True,
        env=cli_env(qsecure_data_dir, approver_keys),
        timeout=120,
    )
    assert added.returncode == 0, added.stderr
    assert officer_passphrase not in added.stdout + added.stderr
    return server_config(qsecure_data_dir, policy_file, job_workers=1)


def outcomes(b: Broker, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    kinds = ("job.approved", "job.approval_refused", "job.released", "job.completed")
    return [
        (e.kind, e.body)
        for e in b.ledger.entries()
        if e.kind in kinds and e.body.get("job_id") == job_id
    ]


async def test_a_kernel_cannot_approve_its_own_heavy_run_and_an_approver_can(
    broker: Broker,
    qsecure_data_dir: Path,
    approver_keys: Path,
    officer_passphrase: str,
    tmp_path: Path,
) -> None:
    token, client = await kernel_token(broker.fetch, broker.ws_fetch, broker.app)
    out = await run_cell(
        client,
        "from qiskit import QuantumCircuit\n"
        "qc = QuantumCircuit(9); qc.h(0); [qc.cx(0, i) for i in range(1, 9)]; qc.measure_all()\n"
        "h = %qsubmit qc --shots 100 --seed 5 --no-wait\n"
        "print('JOB', h.job_id)\n",
    )
    job_id = out.split("JOB ", 1)[1].split()[0]
    service = broker.service
    state = service._jobs[job_id]
    assert state.status == "pending_approval"
    submitter = state.identity["user"]
    extension = broker.app.web_app.settings["jupyter_qsecure_server"]

    # 1. The CLI, from a cell, under any name, with or without the kernel's environment.
    out = await run_cell(
        client,
        "import os, subprocess, sys\n"
        f"env = dict(os.environ, QSECURE_DATA_DIR={str(qsecure_data_dir)!r}, "
        f"QSECURE_APPROVER_KEY_DIR={str(approver_keys)!r})\n"
        "for clean in (False, True):\n"
        "    e = {k: v for k, v in env.items() if not (clean and k.startswith('JPY_'))}\n"
        "    p = subprocess.run([sys.executable, '-m', 'jupyter_qsecure.cli.main', 'jobs',\n"
        f"        'approve', {job_id!r}, '--actor', 'reviewer:{OFFICER}', '--wait', '0'],\n"
        "        input='a guessed passphrase\\n', capture_output=True, text=True, env=e)\n"
        "    print('RC', p.returncode, p.stderr.replace(chr(10), ' '))\n",
    )
    lines = [line for line in out.splitlines() if line.startswith("RC ")]
    assert len(lines) == 2, out
    for line in lines:
        assert line.startswith("RC 2 ") and "cannot run inside a Jupyter kernel" in line, line
        assert "Traceback" not in line
    assert outcomes(broker, job_id) == []  # nothing was written

    # 2. Approvals the kernel writes into the ledger itself are refused and recorded.
    await run_cell(
        client,
        "import json, uuid\n"
        "from jupyter_qsecure.config import QSecure\n"
        "from jupyter_qsecure.jobs.approval import ApproverRef, LocalApproverKey, build_approval\n"
        "from jupyter_qsecure.ledger import Ledger\n"
        "from jupyter_qsecure.signing.signers import SignatureRecord\n"
        f"settings = QSecure(data_dir={str(qsecure_data_dir)!r})\n"
        f"job_id, officer = {job_id!r}, {OFFICER!r}\n"
        "with Ledger.open(settings=settings, signers=[]) as ledger:\n"
        "    sub = [e.body for e in ledger.entries() if e.kind == 'job.submitted'\n"
        "           and e.body['job_id'] == job_id][-1]\n"
        "    from jupyter_qsecure.jobs.approval import approval_subject\n"
        "    subject = approval_subject(job_id, sub['decision_id'], sub['circuit_hashes'], "
        "sub['request'])\n"
        f"    mine = LocalApproverKey.create(__import__('pathlib').Path({str(tmp_path / 'mine.key')!r}), "
        "officer, 'k' * 20)\n"
        "    forged = build_approval(job_id=job_id, subject=subject, "
        "decision_id=sub['decision_id'], environment='dev', "
        "approver=ApproverRef(name=officer, source='local'), "
        "submitter=sub['identity']['user'], note='', signer=mine)\n"
        "    claimed = json.loads(json.dumps(forged))\n"
        "    trusted = json.load(open(settings.resolved_approvers_file()))['approvers'][0]\n"
        "    claimed['signatures'][0]['keyid'] = trusted['key']['key_id'] + '@v1'\n"
        "    for body in ({'job_id': job_id, 'note': 'budget ok'}, forged, claimed):\n"
        "        ledger.append('job.approved', body, actor='reviewer:' + officer,\n"
        "                      correlation_id=job_id)\n",
    )
    await extension._approvals_tick()  # what the server's 1 s timer does
    seen = outcomes(broker, job_id)
    assert [kind for kind, _ in seen] == ["job.approved"] * 3 + ["job.approval_refused"] * 3
    reasons = [body["reason"] for kind, body in seen if kind == "job.approval_refused"]
    assert "malformed" in reasons[0]
    assert all("not signed by a trusted approver key" in r for r in reasons[1:]), reasons
    assert state.status == "pending_approval" and not state.approved.is_set()

    # 3. The approver, outside the kernel: released, run, both identities recorded.
    env = cli_env(qsecure_data_dir, approver_keys)
    code, out, err = await cli_async(
        env, "jobs", "approve", job_id, "--note", "budget ok", stdin="wrong passphrase\n"
    )
    assert code == 2 and "wrong passphrase" in err
    code, out, err = await cli_async(
        env, "jobs", "approve", job_id, "--note", "budget ok", stdin=officer_passphrase + "\n"
    )
    assert code == 0, err
    assert f"by {OFFICER} recorded" in out and "the server released job" in out
    assert officer_passphrase not in out + err
    assert state.finished is not None
    await asyncio.wait_for(state.finished.wait(), timeout=120)
    assert state.status == "completed", state.error
    kinds = [kind for kind, _ in outcomes(broker, job_id)]
    assert kinds[-3:] == ["job.approved", "job.released", "job.completed"]
    released = broker.ledger.entries(EntryFilter(kinds=["job.released"]))[-1]
    assert released.actor == f"approver:{OFFICER}"
    assert released.body["approver"]["name"] == OFFICER
    assert released.body["approver"]["source"] == "local"
    assert released.body["submitter"]["user"] == submitter
    response = await broker.http.fetch(
        f"{broker.base_url.rstrip('/')}/qsecure/api/jobs/{job_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    record = json.loads(response.body)
    assert record["status"] == "completed" and sum(record["result"]["counts"][0].values()) == 100
    listed = await cli_async(env, "jobs", "list", "--json")
    assert {j["job_id"]: j["status"] for j in json.loads(listed[1])}[job_id] == "completed"
    assert broker.ledger.verify().ok


async def test_self_approval_is_refused_unless_the_dev_policy_allows_it(
    broker: Broker,
    qsecure_data_dir: Path,
    approver_keys: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = await broker.kernel_token()
    code, body, _ = await broker.post(token, job(ghz(9), wait=False))
    assert code == 202 and body["status"] == "pending_approval"
    job_id = body["job_id"]
    service = broker.service
    submitter = service._jobs[job_id].identity["user"]
    # The submitter also holds an approver key (trusted as at a server start).
    secret = secrets.token_urlsafe(18)
    own = LocalApproverKey.create(approver_keys / "own.key", submitter, secret)
    trust = ApproverTrust.load(qsecure_data_dir / "keys" / "approvers.json")
    trust.add(submitter, own.public_keys()[0], ["dev"])
    monkeypatch.setattr(service, "approvals", ApprovalVerifier("dev", local=trust.approvers))

    env = cli_env(qsecure_data_dir, approver_keys)
    args = ("jobs", "approve", job_id, "--key", str(approver_keys / "own.key"))
    code, out, err = await cli_async(env, *args, stdin=secret + "\n")
    assert code == 1, (out, err)
    assert f"approver {submitter} submitted this job: self-approval is not allowed" in err
    assert service._jobs[job_id].status == "pending_approval"

    relaxed = Path(str(broker.app.web_app.settings["qsecure"].policy_file)).read_text()
    allowed = tmp_path / "relaxed.toml"
    allowed.write_text(relaxed.replace("[dev]\n", "[dev]\nallow_self_approval = true\n"))
    monkeypatch.setattr(service.engine, "policy", Policy.load(allowed, "dev"))
    code, out, err = await cli_async(env, *args, stdin=secret + "\n")
    assert code == 0 and "the server released job" in out, (out, err)
    released = broker.ledger.entries(EntryFilter(kinds=["job.released"]))[-1].body
    assert released["approver"]["name"] == released["submitter"]["user"] == submitter
