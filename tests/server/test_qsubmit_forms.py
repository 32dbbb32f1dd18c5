"""Every form of %qsubmit in a real qsecure kernel against the real broker: OpenQASM 3
cells with --bind, --noise and --tag, --no-wait handles, --status and --cancel."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from jobs_helpers import Broker, kernel_token

from jupyter_qsecure.jobs.aer_run import noise_model_sha256
from jupyter_qsecure.ledger import EntryFilter

QASM3 = """\
OPENQASM 3.0;
include "stdgates.inc";
input float theta;
qubit[2] q;
bit[2] c;
rx(theta) q[0];
cx q[0], q[1];
c = measure q;
"""


@pytest.fixture
def jp_server_config(jobs_server_config: dict[str, Any]) -> dict[str, Any]:
    return jobs_server_config


async def test_qasm3_cell_with_bind_noise_and_tags(broker: Broker) -> None:
    _, client = await kernel_token(broker.fetch, broker.ws_fetch, broker.app)
    cell = (
        "%%qsubmit --shots 400 --seed 3 --bind theta=pi --noise depolarizing-1e-3 "
        "--tag sweep --tag night\n" + QASM3
    )
    messages = await client.execute(cell + "\n", timeout=120)
    assert not [m for m in messages if m["header"]["msg_type"] == "error"], messages
    out = await client.execute(
        "r = _\nprint('COUNTS', dict(r.counts))\nprint('VERIFIED', r.verified, r.job_id)\n",
        timeout=60,
    )
    text = "".join(m["content"].get("text", "") for m in out)
    counts = eval(text.split("COUNTS ", 1)[1].splitlines()[0])  # noqa: S307 - our own output
    assert sum(counts.values()) == 400 and counts.get("11", 0) > 360  # rx(pi) then cx
    assert "VERIFIED True" in text
    job_id = text.split("VERIFIED True ", 1)[1].split()[0]

    decided = [
        e.body
        for e in broker.ledger.entries(EntryFilter(kinds=["job.decided"]))
        if e.correlation_id == job_id
    ]
    assert decided and decided[0]["allowed"] is True
    envelope = broker.service._jobs[job_id].record()["manifest"]
    options = json.loads(base64.b64decode(envelope["payload"]))["predicate"]["options"]
    # signed (the kernel checked them against what it asked for before returning)
    assert options["noise"] == "depolarizing-1e-3" and options["tags"] == ["sweep", "night"]
    assert options["noise_model_sha256"] == noise_model_sha256("depolarizing-1e-3")
    assert options["shots"] == 400 and options["seed"] == 3


async def test_no_wait_status_and_cancel(
    broker: Broker,
    worker_test_hooks: dict[str, Any],
) -> None:
    _, client = await kernel_token(broker.fetch, broker.ws_fetch, broker.app)

    async def run(code: str) -> str:
        messages = await client.execute(code, timeout=120)
        errors = [m["content"] for m in messages if m["header"]["msg_type"] == "error"]
        assert not errors, errors
        return "".join(m["content"].get("text", "") for m in messages)

    out = await run(
        "from jupyter_qsecure.testing.circuits import ghz\n"
        "qc = ghz(3)\n"
        "h = %qsubmit qc --no-wait --shots 64 --seed 2\n"
        "r = h.result(60)\n"
        "print('DONE', r.verified, sum(r.counts.values()), h.status())\n"
    )
    assert "DONE True 64 completed" in out

    worker_test_hooks["_test_sleep"] = 60  # the next job runs until cancelled
    out = await run(
        "slow = %qsubmit qc --no-wait --shots 64\n"
        "print('SLOW', slow.job_id)\n"
        "st = %qsubmit --status {slow.job_id}\n"
        "print('STATUS', st.last_status)\n"
        "c = %qsubmit --cancel {slow.job_id}\n"
        "print('CANCELLED', c.last_status, slow.status())\n"
        "try:\n"
        "    slow.result(30)\n"
        "except Exception as e:\n"
        "    print('RESULT', type(e).__name__)\n"
    )
    assert "STATUS queued" in out or "STATUS running" in out, out
    assert "CANCELLED cancelled cancelled" in out and "RESULT JobCancelled" in out, out
    job_id = out.split("SLOW ", 1)[1].split()[0]
    assert broker.service._jobs[job_id].status == "cancelled"


async def test_replay_of_a_noisy_job_and_of_an_altered_archive(broker: Broker) -> None:
    from jobs_helpers import job

    from jupyter_qsecure.jobs.aer_run import circuits_to_qpy
    from jupyter_qsecure.jobs.archive import JobArchive
    from jupyter_qsecure.jobs.replay import ReplayError, replay
    from jupyter_qsecure.signing.signers import KeyRing
    from jupyter_qsecure.testing.circuits import ghz

    token, _ = await kernel_token(broker.fetch, broker.ws_fetch, broker.app)
    code, record, _ = await broker.post(
        token, job(ghz(3), shots=500, seed=8, noise="depolarizing-1e-3")
    )
    assert code == 200 and record["status"] == "completed", record
    job_id = record["job_id"]
    service = broker.service
    keyring = KeyRing(service.signer.public_keys())
    archive_dir = service.archive_dir
    assert service.flush_archive(60)  # written just after the answer, in its own thread
    report = replay(archive_dir, job_id, keyring)
    assert report.matches and report.replayed_digest == report.recorded_digest

    archive = JobArchive(archive_dir)
    original = archive.get(job_id)
    assert original is not None
    try:
        # a result signed for a noisy run cannot be "replayed" without the noise: the
        # signed manifest names the model, so an archive edit changes nothing ...
        archive.put(job_id, {**original, "payload": {**original["payload"], "noise": None}})
        assert replay(archive_dir, job_id, keyring).matches
        # ... and a manifest and archive that disagree are refused, not re-run
        other = circuits_to_qpy([ghz(2)])
        archive.put(job_id, {**original, "payload": {**original["payload"], "circuits_qpy": other}})
        with pytest.raises(ReplayError, match="circuit 0 does not match the signed manifest"):
            replay(archive_dir, job_id, keyring)
        archive.put(
            job_id,
            {**original, "payload": {**original["payload"], "circuits_qpy": "AAAA"}},
        )
        with pytest.raises(ReplayError, match="archived circuits of job .* are unreadable"):
            replay(archive_dir, job_id, keyring)
    finally:
        archive.put(job_id, original)
        archive.close()
