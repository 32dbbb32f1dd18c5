"""The user's jobs from the ledger (the jobs panel), denials that name their job, and
one readable identity in every audit row.

Real server (embedded defaults: local broker tokens, a local Ed25519 job key), real
qsecure kernels, Aer in real worker processes.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import Broker, cli, job, server_config, write_policy
from qiskit import QuantumCircuit
from save_gate_helpers import fake_aws_key

from jupyter_qsecure.jobs.archive import JobArchive, read_archived
from jupyter_qsecure.testing.circuits import ghz
from jupyter_qsecure_server.identity import os_user

ANONYMOUS = re.compile(r"\b[0-9a-f]{32}\b")


@pytest.fixture
def jp_server_config(qsecure_data_dir: Path, tmp_path: Path) -> dict[str, Any]:
    return server_config(qsecure_data_dir, write_policy(tmp_path / "policy.toml"), job_workers=1)


def too_deep() -> QuantumCircuit:
    deep = QuantumCircuit(1)
    for _ in range(60):
        deep.x(0)
    deep.measure_all()
    return deep


async def api(broker: Broker, method: str, *path: str, **params: Any) -> tuple[int, Any]:
    response = await broker.fetch(
        "qsecure",
        "api",
        *path,
        method=method,
        body=b"{}" if method == "POST" else None,
        params=params,
        raise_error=False,
    )
    return response.code, json.loads(response.body)


async def test_a_denial_names_its_job_and_jobs_show_takes_either_id(
    broker: Broker, qsecure_data_dir: Path
) -> None:
    token = await broker.kernel_token()
    code, denied, _ = await broker.post(token, job(too_deep()))
    assert code == 403 and denied["rule"] == "max_depth"
    job_id, decision_id = denied["job_id"], denied["decision_id"]
    assert job_id != decision_id

    by_decision = cli(qsecure_data_dir, "jobs", "show", decision_id)
    assert by_decision.returncode == 0, by_decision.stderr
    entries = json.loads(by_decision.stdout)
    assert entries and all(e["body"]["job_id"] == job_id for e in entries)
    assert entries[0]["body"]["decision_id"] == decision_id
    assert json.loads(cli(qsecure_data_dir, "jobs", "show", job_id).stdout) == entries
    unknown = cli(qsecure_data_dir, "jobs", "show", "f" * 32)
    assert unknown.returncode == 1 and "no job or decision" in unknown.stderr
    assert "jobs list" in unknown.stderr


async def test_a_denied_qsubmit_says_which_job_to_quote(broker: Broker) -> None:
    from jobs_helpers import start_kernel

    _, _, client = await start_kernel(broker.fetch, broker.ws_fetch, broker.app)
    messages = await client.execute(
        "from qiskit import QuantumCircuit\n"
        "qc = QuantumCircuit(1)\n"
        "for _ in range(60): qc.x(0)\n"
        "qc.measure_all()\n"
        "%qsubmit qc --shots 10\n",
        timeout=120,
    )
    [error] = [m["content"] for m in messages if m["header"]["msg_type"] == "error"]
    text = error["evalue"] + "\n".join(error["traceback"])
    found = re.search(r"job ([0-9a-f]{32}), decision ([0-9a-f]{32})", text)
    assert found, text
    assert f"jupyter qsecure jobs show {found.group(1)}" in text


async def test_jobs_panel_routes(broker: Broker, qsecure_data_dir: Path) -> None:
    token = await broker.kernel_token()
    code, done, _ = await broker.post(token, job(ghz(3), shots=300, tags=["panel"]))
    assert code == 200
    code, denied, _ = await broker.post(token, job(too_deep()))
    assert code == 403

    code, listing = await api(broker, "GET", "ledger", "jobs")
    assert code == 200
    rows = {row["job_id"]: row for row in listing["jobs"]}
    assert set(rows) == {done["job_id"], denied["job_id"]}
    ok = rows[done["job_id"]]
    assert ok["status"] == "completed" and ok["decision"] == "allowed"
    assert ok["signature_verified"] is True and ok["backend"] == "aer_simulator"
    assert ok["shots"] == 300 and ok["circuits"] == 1 and len(ok["circuit_hashes"]) == 1
    assert ok["user"] == os_user() and ok["tags"] == ["panel"]
    refused = rows[denied["job_id"]]
    assert refused["decision"] == "denied" and refused["signature_verified"] is None
    assert (
        refused["decision_id"] == denied["decision_id"]
        and "exceeds dev limit 40" in refused["message"]
    )
    code, only = await api(broker, "GET", "ledger", "jobs", status="denied", limit=5)
    assert [r["job_id"] for r in only["jobs"]] == [denied["job_id"]]

    code, detail = await api(broker, "GET", "ledger", "jobs", done["job_id"])
    assert code == 200 and detail["verification"] == {"verified": True, "problems": []}
    assert detail["manifest"]["signatures"] and detail["statement"]["predicate"]["job_id"]
    assert sum(detail["result"]["counts"][0].values()) == 300
    kinds = [e["kind"] for e in detail["entries"]]
    assert kinds == ["job.decided", "job.submitted", "job.completed"]
    assert [p["index"] for p in detail["proofs"]] == [e["index"] for e in detail["entries"]]
    assert all(p["verified"] and p["proof"]["path"] is not None for p in detail["proofs"])

    code, by_decision = await api(broker, "GET", "ledger", "jobs", denied["decision_id"])
    assert code == 200 and by_decision["job"]["job_id"] == denied["job_id"]
    assert by_decision["manifest"] is None and by_decision["result"] is None
    assert (await api(broker, "GET", "ledger", "jobs", "not-an-id"))[0] == 400
    assert (await api(broker, "GET", "ledger", "jobs", "e" * 32))[0] == 404

    code, verified = await api(broker, "POST", "ledger", "verify")
    assert code == 200 and verified["ok"] is True and verified["problems"] == []
    assert verified["entries"] == broker.ledger.size()

    # counts changed in the archive after signing: no longer verified
    archive = JobArchive(qsecure_data_dir / "jobs")
    record = archive.get(done["job_id"])
    assert record is not None
    first = record["result"]["counts"][0]
    key = next(iter(first))
    first[key] += 1
    archive.put(done["job_id"], record)
    archive.close()
    code, listing = await api(broker, "GET", "ledger", "jobs")
    [row] = [r for r in listing["jobs"] if r["job_id"] == done["job_id"]]
    assert row["signature_verified"] is False
    code, detail = await api(broker, "GET", "ledger", "jobs", done["job_id"])
    assert detail["verification"]["verified"] is False and detail["verification"]["problems"]


async def test_audit_rows_name_people_one_readable_way(
    broker: Broker, qsecure_data_dir: Path
) -> None:
    """A refused save, a kernel's credentials and a job, all by the same person: one
    name, written ``user:NAME`` as the actor and ``NAME`` in the body, never a
    session's anonymous id."""
    token = await broker.kernel_token()
    assert (await broker.post(token, job(ghz(2))))[0] == 200
    response = await broker.fetch(
        "api",
        "contents",
        "k.txt",
        method="PUT",
        body=json.dumps(
            {"type": "file", "format": "text", "content": f"aws_access_key_id = {fake_aws_key()}"}
        ),
        raise_error=False,
    )
    assert response.code == 422
    me = os_user()
    entries = broker.ledger.entries()
    people = {e.actor for e in entries if not e.actor.startswith(("qsecure:", "local:"))}
    assert people == {f"user:{me}"}
    kinds = {e.kind for e in entries if e.actor == f"user:{me}"}
    assert {"credential.issued", "job.decided", "job.completed", "save.refused"} <= kinds
    for entry in entries:
        assert not ANONYMOUS.fullmatch(entry.actor.removeprefix("user:"))
        user = entry.body.get("user")
        if user is not None:
            assert user == me
    code, status = await api(broker, "GET", "status")
    assert status["user"] == me
    shown = cli(qsecure_data_dir, "audit", "show")
    assert shown.returncode == 0 and f"user:{me}" in shown.stdout
    mine = cli(qsecure_data_dir, "audit", "show", "--actor", me, "--kind", "save.refused")
    assert mine.returncode == 0 and "save.refused" in mine.stdout


async def test_the_answer_does_not_wait_for_the_archive_and_the_panel_does(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive (for replay) is written after the job's answer, in its own thread: an
    answer never waits for it; the jobs panel's routes, which read it, wait for it."""
    token = await broker.kernel_token()
    release, writing, flushing = threading.Event(), threading.Event(), threading.Event()
    real_put_many = JobArchive.put_many

    def held_put_many(self: JobArchive, records: Any) -> None:
        writing.set()
        assert release.wait(60)
        real_put_many(self, records)

    monkeypatch.setattr(JobArchive, "put_many", held_put_many)
    service = broker.service
    real_flush = service.flush_archive

    def watched_flush(timeout: float | None = 10.0) -> bool:
        flushing.set()
        return bool(real_flush(timeout))

    monkeypatch.setattr(service, "flush_archive", watched_flush)
    try:
        code, done, _ = await asyncio.wait_for(broker.post(token, job(ghz(2))), 60)
        assert code == 200 and done["status"] == "completed", done
        assert await asyncio.to_thread(writing.wait, 60)  # queued, held up in its thread
        assert read_archived(service.archive_dir, done["job_id"]) is None
        listing = asyncio.ensure_future(api(broker, "GET", "ledger", "jobs"))
        assert await asyncio.to_thread(flushing.wait, 60)  # the panel waits for it
    finally:
        release.set()
    code, rows = await asyncio.wait_for(listing, 60)
    [row] = [r for r in rows["jobs"] if r["job_id"] == done["job_id"]]
    assert code == 200 and row["signature_verified"] is True
    archived = read_archived(service.archive_dir, done["job_id"])
    assert archived is not None and archived["result"] == done["result"]
    assert archived["manifest"] == done["manifest"] and archived["payload"]["circuits_qpy"]
