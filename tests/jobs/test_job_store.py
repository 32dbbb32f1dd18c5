"""The broker's job store: what an ended job keeps (issue 12, throughput).

The broker keeps up to ``max_jobs_kept`` ended jobs for status queries. Python's garbage
collector walks every container object they hold on each full collection, a pause of the
whole server, so an ended job must hold few of them: its executor handle (a future, an
event, their conditions and lock queues) is settled into a tuple of plain values.
Counted, not timed: the GC-tracked objects the store holds per ended job.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_qsecure.jobs.client import encode_circuit
from jupyter_qsecure.jobs.policy import DEFAULT_POLICY_PATH, Policy
from jupyter_qsecure.jobs.service import JobService, JobState, SettledHandle
from jupyter_qsecure.testing.circuits import ghz
from jupyter_qsecure.testing.job_service import inline_job_service

#: GC-tracked objects an ended 5-qubit job may keep in the store: 50 before its handle
#: was settled; now about 29 (its dicts and lists, the decision, the two envelopes, the
#: approval event).
TRACKED_PER_JOB = 36


@pytest.fixture
def service(tmp_path: Path) -> Iterator[JobService]:
    # the shipped policy, without its rate limit (30 jobs a minute): 45 jobs run here
    shipped = DEFAULT_POLICY_PATH.read_text()
    assert "jobs_per_minute = 30\n" in shipped
    policy = Policy.from_bytes(
        shipped.replace("jobs_per_minute = 30\n", "jobs_per_minute = 100000\n").encode(), "dev"
    )
    with inline_job_service(tmp_path, policy) as svc:
        yield svc


def submit(service: JobService, circuit: dict[str, str], seed: int) -> JobState:
    body: dict[str, Any] = {
        "circuits": [circuit],
        "shots": 32,
        "seed": seed,
        "request_id": uuid.uuid4().hex,
    }
    return service.submit("kernel-token", body, wait=True)


def test_an_ended_job_keeps_its_handle_as_plain_values(service: JobService) -> None:
    state = submit(service, encode_circuit(ghz(2)), 1)
    assert state.status == "completed"
    handle = state.handle
    assert isinstance(handle, SettledHandle) and handle.status == "completed"
    assert handle.started_at is not None and handle.finished_at is not None
    assert not any(gc.is_tracked(value) for value in handle)  # one object, no containers
    # its record (the REST contract) is what it was
    record = state.record()
    assert record["status"] == "completed" and record["result"]["counts"]
    assert record["timings_ms"]["run"] >= 0


def test_the_job_store_holds_few_objects_per_ended_job(service: JobService) -> None:
    circuit = encode_circuit(ghz(5))
    for seed in range(5):  # warm up: caches, the parse worker, Aer
        submit(service, circuit, seed)
    jobs = 40
    gc.collect()
    before = len(gc.get_objects())
    for seed in range(jobs):
        submit(service, circuit, 100 + seed)
    gc.collect()
    per_job = (len(gc.get_objects()) - before) / jobs
    assert len(service._jobs) == 45
    assert per_job <= TRACKED_PER_JOB, per_job
