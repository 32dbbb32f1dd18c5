"""The broker's job store: what an ended job keeps (issue 12, throughput).

The broker keeps up to ``max_jobs_kept`` ended jobs for status queries. Python's garbage
collector walks every container object they hold on each full collection, a pause of the
whole server, so an ended job must hold few of them: its executor handle (a future, an
event, their conditions and lock queues) is settled into a tuple of plain values.
Then (session 10) an ended job is kept as an ``EndedJob``: its record as bytes and three
plain fields, one object the collector tracks. Counted, not timed: the GC-tracked objects
the store holds per ended job.
"""

from __future__ import annotations

import enum
import gc
import json
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_qsecure.jobs.client import encode_circuit
from jupyter_qsecure.jobs.ended import EndedJob, encode_record
from jupyter_qsecure.jobs.policy import DEFAULT_POLICY_PATH, Policy
from jupyter_qsecure.jobs.service import JobService, JobState, NotFound, SettledHandle
from jupyter_qsecure.testing.circuits import ghz
from jupyter_qsecure.testing.job_service import inline_job_service

#: GC-tracked objects an ended 5-qubit job may add to the process: 50 before its handle
#: was settled, about 29 as a settled JobState (its dicts and lists, the decision, the two
#: envelopes, the approval event); now 1 (its EndedJob), plus what other parts hold
#: meanwhile (e.g. sqlite3's weak references to its cursors, pruned every 200).
TRACKED_PER_JOB = 6


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


#: The kernel tokens of the tests' users (any string: the service's identify maps them).
ALICE, BOB = "kernel-token", "bob-token"


def submit(service: JobService, circuit: dict[str, str], seed: int, token: str = ALICE) -> JobState:
    body: dict[str, Any] = {
        "circuits": [circuit],
        "shots": 32,
        "seed": seed,
        "request_id": uuid.uuid4().hex,
    }
    return service.submit(token, body, wait=True)


def tracked_objects(kept: object) -> int:
    """GC-tracked objects reachable from ``kept`` that are its own: classes, modules,
    functions and enum members (shared by every job) are neither counted nor followed."""
    shared = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, enum.Enum)
    seen: set[int] = set()
    todo = [kept]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, shared) or not gc.is_tracked(obj):
            continue
        seen.add(id(obj))
        todo.extend(gc.get_referents(obj))
    return len(seen)


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


def test_an_ended_job_is_kept_as_one_tracked_object_holding_its_record(
    service: JobService,
) -> None:
    state = submit(service, encode_circuit(ghz(5)), 7)
    assert state.status == "completed"
    kept = service._jobs[state.job_id]
    # the JobState held about 30 (dicts, lists, the decision, envelopes, an event)
    assert tracked_objects(kept) == 1, tracked_objects(kept)
    assert isinstance(kept, EndedJob) and kept.status == "completed"
    # what GET returns: the record, as the REST layer encodes it, byte for byte
    assert kept.encoded == encode_record(state.record())
    assert kept.record() == json.loads(encode_record(state.record()))
    assert kept.record()["result"]["counts"] and kept.identity["user"] == "alice"
    assert service.get(ALICE, state.job_id) is kept


def test_an_ended_job_is_only_its_owners(
    service: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = {ALICE: "alice", BOB: "bob"}
    monkeypatch.setattr(
        service, "identify", lambda token: {"user": users[token], "environment": "dev"}
    )
    state = submit(service, encode_circuit(ghz(2)), 3)
    assert isinstance(service._jobs[state.job_id], EndedJob)
    for call in (service.get, service.cancel):
        with pytest.raises(NotFound, match=f"no job {state.job_id} for this user"):
            call(BOB, state.job_id)
    bobs = submit(service, encode_circuit(ghz(2)), 4, token=BOB)
    assert service.get(BOB, bobs.job_id).identity["user"] == "bob"
    with pytest.raises(NotFound):
        service.get(ALICE, bobs.job_id)


def test_cancelling_an_ended_job_changes_nothing(service: JobService) -> None:
    state = submit(service, encode_circuit(ghz(2)), 5)
    kept = service._jobs[state.job_id]
    ledger: Any = service.ledger  # the SQLite ledger (the service's protocol has no size)
    size = ledger.size()
    assert service.cancel(ALICE, state.job_id) is kept
    assert kept.status == "completed" and ledger.size() == size  # nothing recorded
    # an approval naming an ended job releases nothing
    assert service.take_approval(size, {"job_id": state.job_id}) is None


def test_a_job_kept_in_full_when_compaction_is_off(service: JobService) -> None:
    """The A/B switch of the benchmarks: the settled JobState, as before."""
    service.compact_ended = False
    state = submit(service, encode_circuit(ghz(2)), 6)
    assert service._jobs[state.job_id] is state
    service.compact_ended = True
    service.keep_ended(state, b"{}")  # ended and still kept: now compacted, these bytes
    kept = service._jobs[state.job_id]
    assert isinstance(kept, EndedJob) and kept.encoded == b"{}"
