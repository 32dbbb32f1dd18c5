"""The job broker on the multi-user PostgreSQL ledger (a real throwaway cluster): jobs
from two kernels are decided, run, signed and recorded; the rate limit counts what the
ledger holds, also after a restart; `jupyter qsecure audit verify` checks it offline."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import Broker, job, server_config, write_policy

from jupyter_qsecure.ledger import EntryFilter
from jupyter_qsecure.testing.circuits import ghz

RATE_LIMIT = 5


@pytest.fixture
def jp_server_config(
    qsecure_data_dir: Path, tmp_path: Path, postgres_ledger_url: str
) -> dict[str, Any]:
    policy = write_policy(tmp_path / "policy.toml", jobs_per_minute=RATE_LIMIT)
    return server_config(qsecure_data_dir, policy, ledger_url=postgres_ledger_url, job_workers=2)


async def test_jobs_are_recorded_in_postgres_and_verify_offline(
    broker: Broker,
    postgres_ledger_url: str,
    qsecure_data_dir: Path,
) -> None:
    first, second = await broker.kernel_token(), await broker.kernel_token()
    bodies = [job(ghz(2 + i % 3), shots=64, seed=i) for i in range(4)]
    replies = await asyncio.gather(
        *(broker.post(token, body) for token, body in zip([first, second] * 2, bodies, strict=True))
    )
    assert [r[0] for r in replies] == [200] * 4, replies
    job_ids = {record["job_id"] for _, record, _ in replies}
    ledger = broker.ledger
    assert type(ledger.store).__name__.lower().startswith("postgres")
    completed = {
        e.body["job_id"]: e.body
        for e in ledger.entries(EntryFilter(kinds=["job.completed"]))
        if e.body["status"] == "completed"
    }
    assert set(completed) == job_ids
    for _, record, _ in replies:
        kinds = [e.kind for e in ledger.entries() if e.correlation_id == record["job_id"]]
        assert kinds == ["job.decided", "job.submitted", "job.completed"]
    ledger.checkpoint()

    env = {**os.environ, "QSECURE_DATA_DIR": str(qsecure_data_dir)}
    env["QSECURE_LEDGER"] = postgres_ledger_url
    verified = subprocess.run(
        [sys.executable, "-m", "jupyter_qsecure.cli.main", "audit", "verify"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ledger intact" in verified.stdout
    password = postgres_ledger_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[-1]
    assert password not in verified.stdout + verified.stderr


async def test_rate_limit_counts_the_postgres_ledger_after_a_restart(
    broker: Broker,
) -> None:
    token = await broker.kernel_token()
    user_jobs = 3
    for i in range(user_jobs):
        assert (await broker.post(token, job(ghz(2), shots=16, seed=i)))[0] == 200

    # A restarted server rebuilds usage from the ledger's decisions: what was allowed in
    # the last minute still counts against the limit.
    from jupyter_qsecure.jobs.policy import UsageTracker

    broker.service.engine.usage = UsageTracker.from_ledger(broker.ledger)  # as at start-up
    for i in range(RATE_LIMIT - user_jobs):
        assert (await broker.post(token, job(ghz(2), shots=16, seed=10 + i)))[0] == 200
    code, body, _ = await broker.post(token, job(ghz(2), shots=16))
    assert code == 403 and body["rule"] == "jobs_per_minute", body
