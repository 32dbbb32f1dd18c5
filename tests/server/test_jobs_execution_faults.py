"""Jobs that go wrong while they run, through the real server and real Aer worker
processes: a worker crash mid-job, a job over its time limit, a cancelled job and a
user over the rate limit. Each gives a clear answer, a ledger entry, and a server that
keeps serving.

The crash and the long run use the worker's test hooks (``_test_crash``,
``_test_sleep``, honoured only with QSECURE_TESTING=1), added to the payload the broker
built: the crash itself is a real ``os._exit`` in a real worker process.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import Broker, ghz, job, write_policy

from jupyter_qsecure.ledger import EntryFilter

RATE_LIMIT = 6


@pytest.fixture
def jp_server_config(jobs_server_config: dict[str, Any]) -> dict[str, Any]:
    return jobs_server_config


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "policy.toml", jobs_per_minute=RATE_LIMIT)


def completions(b: Broker, job_id: str) -> list[dict[str, Any]]:
    return [
        e.body
        for e in b.ledger.entries(EntryFilter(kinds=["job.completed"]))
        if e.body["job_id"] == job_id
    ]


async def test_worker_crash_mid_job_is_recorded_and_the_server_keeps_serving(
    broker: Broker,
    worker_test_hooks: dict[str, Any],
) -> None:
    token = await broker.kernel_token()
    worker_test_hooks["_test_crash"] = True
    code, record, _ = await broker.post(token, job(ghz(3)))
    assert code == 200 and record["status"] == "failed", record
    assert "its worker process exited with code 1 while running it" in record["error"]
    assert record["result"] is None and record["result_envelope"] is None
    [completed] = completions(broker, record["job_id"])
    assert completed["status"] == "failed" and completed["error"] == record["error"]

    worker_test_hooks.clear()  # the next job gets a fresh worker
    code, record, _ = await broker.post(token, job(ghz(3)))
    assert code == 200 and record["status"] == "completed", record
    assert broker.ledger.verify().ok


async def test_job_over_its_time_limit_is_stopped_and_recorded(
    broker: Broker,
    worker_test_hooks: dict[str, Any],
) -> None:
    token = await broker.kernel_token()
    broker.service.job_timeout = 0.5
    worker_test_hooks["_test_sleep"] = 60
    code, record, _ = await broker.post(token, job(ghz(2)))
    assert code == 200 and record["status"] == "failed", record
    assert "0.5 s" in record["error"], record["error"]
    [completed] = completions(broker, record["job_id"])
    assert completed["status"] == "failed" and "0.5 s" in completed["error"]

    broker.service.job_timeout = 300
    worker_test_hooks.clear()
    code, record, _ = await broker.post(token, job(ghz(2)))
    assert code == 200 and record["status"] == "completed", record


async def test_cancelled_job_is_stopped_and_recorded(
    broker: Broker,
    worker_test_hooks: dict[str, Any],
) -> None:
    token = await broker.kernel_token()
    worker_test_hooks["_test_sleep"] = 60
    code, record, _ = await broker.post(token, job(ghz(2), wait=False))
    assert code == 202 and record["status"] in ("queued", "running"), record
    job_id = record["job_id"]
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{broker.base_url.rstrip('/')}/qsecure/api/jobs/{job_id}"
    response = await broker.http.fetch(url, method="DELETE", headers=headers)
    assert json.loads(response.body)["status"] == "cancelled"
    await asyncio.wait_for(broker.service._jobs[job_id].finished.wait(), 30)

    response = await broker.http.fetch(url, headers=headers)
    status = json.loads(response.body)
    assert status["status"] == "cancelled" and status["result"] is None
    kinds = [
        (e.kind, e.body.get("status"))
        for e in broker.ledger.entries()
        if e.correlation_id == job_id
    ]
    assert kinds[:2] == [("job.decided", None), ("job.submitted", None)]
    assert ("job.completed", "cancelled") in kinds, kinds
    assert broker.ledger.verify().ok

    worker_test_hooks.clear()  # the cancelled job's worker was replaced
    code, record, _ = await broker.post(token, job(ghz(2)))
    assert code == 200 and record["status"] == "completed", record


async def test_rate_limit_denies_with_the_rule_and_records_it(broker: Broker) -> None:
    token = await broker.kernel_token()
    for _ in range(RATE_LIMIT):
        assert (await broker.post(token, job(ghz(2), shots=16)))[0] == 200
    code, body, _ = await broker.post(token, job(ghz(2), shots=16))
    assert code == 403 and body["rule"] == "jobs_per_minute" and body["limit"] == RATE_LIMIT
    assert (
        f"{RATE_LIMIT + 1} jobs in the last minute exceeds dev limit {RATE_LIMIT}"
        in (body["message"])
    )
    decided = broker.ledger.entries(EntryFilter(kinds=["job.decided"]))
    assert [d.body["allowed"] for d in decided] == [True] * RATE_LIMIT + [False]
    denied = decided[-1].body
    assert denied["rule"] == "jobs_per_minute" and denied["decision_id"] == body["decision_id"]
