"""The job archive leaves the job's critical path (issue 12, one job's latency): the REST
layer has a job archived after its answer (``submit(..., archive_after=True)``, then
``JobService.archive``), written in the archive's own thread, records queued together in
one transaction; readers in the process wait for it (``flush_archive``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_qsecure.jobs.archive import ArchiveWriter, JobArchive, read_archived
from jupyter_qsecure.jobs.client import encode_circuit
from jupyter_qsecure.jobs.service import Denied, JobService, JobState
from jupyter_qsecure.jobs.status import JobStatus
from jupyter_qsecure.testing.circuits import ghz
from jupyter_qsecure.testing.job_service import inline_job_service

WAIT = 30.0  # seconds any wait here may take before the test fails


@pytest.fixture
def service(tmp_path: Path) -> Iterator[JobService]:
    with inline_job_service(tmp_path, archive=True) as svc:
        yield svc


def body(qubits: int = 2, shots: int = 32) -> dict[str, Any]:
    return {
        "circuits": [encode_circuit(ghz(qubits))],
        "shots": shots,
        "seed": 5,
        "request_id": uuid.uuid4().hex,
    }


def archived(service: JobService, state: JobState) -> dict[str, Any] | None:
    assert service.archive_dir is not None
    return read_archived(service.archive_dir, state.job_id)


def test_a_job_answered_first_is_archived_after_its_answer(service: JobService) -> None:
    state = service.submit("kernel-token", body(), wait=True, archive_after=True)
    assert state.status == "completed"
    assert archived(service, state) is None  # nothing written before the answer
    answer = state.record()
    service.archive(state, answer)
    assert service.flush_archive(WAIT)
    record = archived(service, state)
    assert record is not None
    payload = record.pop("payload")
    assert record == answer  # the answer's record, as it was sent
    assert payload == state.payload and payload["circuits_qpy"]


def test_without_archive_after_the_job_is_archived_before_submit_returns(
    service: JobService,
) -> None:
    state = service.submit("kernel-token", body(), wait=True)
    record = archived(service, state)  # no flush: written in the job's thread
    assert record is not None and record["job_id"] == state.job_id
    assert record["result"] == state.result and record["payload"] == state.payload


def test_the_archive_takes_the_timings_as_they_were_when_it_was_queued(
    service: JobService,
) -> None:
    state = service.submit("kernel-token", body(), wait=True, archive_after=True)
    service.archive(state)  # no record given: built in the archive's thread
    state.timings["broker"] = 1.0  # the REST layer adds this after its answer
    assert service.flush_archive(WAIT)
    record = archived(service, state)
    assert record is not None and "broker" not in record["timings_ms"]
    assert record["timings_ms"]["run"] == round(state.timings["run"], 3)


def test_a_job_answered_while_the_broker_closes_is_not_archived_and_no_error_raised(
    service: JobService, caplog: pytest.LogCaptureFixture
) -> None:
    state = service.submit("kernel-token", body(), wait=True, archive_after=True)
    service.close()
    with caplog.at_level(logging.WARNING, logger="jupyter_qsecure.jobs"):
        service.archive(state, state.record())  # after the answer: must not raise
    assert f"job {state.job_id} was not archived: the broker is shutting down" in caplog.text
    assert archived(service, state) is None


def test_only_completed_jobs_are_archived(service: JobService) -> None:
    with pytest.raises(Denied):
        service.submit("kernel-token", body(qubits=41), wait=True, archive_after=True)
    state = service.submit("kernel-token", body(), wait=True, archive_after=True)
    for status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DENIED):
        service.archive(dataclasses.replace(state, status=status))
    assert service.flush_archive(WAIT)
    assert archived(service, state) is None


def numbered(n: int) -> Callable[[], dict[str, Any]]:
    return lambda: {"n": n}


class CountingArchive(JobArchive):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.batches: list[list[str]] = []

    def put_many(self, records: Any) -> None:
        records = list(records)
        self.batches.append([job_id for job_id, _ in records])
        super().put_many(records)


def test_records_queued_together_are_written_in_one_transaction(tmp_path: Path) -> None:
    store = CountingArchive(tmp_path)
    writer = ArchiveWriter(lambda: store, linger=0)
    building = threading.Event()
    go_on = threading.Event()

    def first() -> dict[str, Any]:
        building.set()
        assert go_on.wait(WAIT)
        return {"n": 0}

    try:
        writer.put("j0", first)
        assert building.wait(WAIT)  # the writer's thread is busy with j0
        for n in range(1, 6):
            writer.put(f"j{n}", numbered(n))
        assert writer.pending == 6
        go_on.set()
        assert writer.flush(WAIT)
        assert writer.pending == 0
        assert store.batches == [["j0"], ["j1", "j2", "j3", "j4", "j5"]]
        assert [store.get(f"j{n}") for n in range(6)] == [{"n": n} for n in range(6)]
    finally:
        go_on.set()
        writer.close()


def test_records_linger_to_share_a_wake_up_until_flushed_or_the_batch_is_full(
    tmp_path: Path,
) -> None:
    store = CountingArchive(tmp_path)
    writer = ArchiveWriter(lambda: store, linger=3600, max_batch=3)
    try:
        writer.put("a0", numbered(0))
        writer.put("a1", numbered(1))
        assert writer.pending == 2 and store.batches == []  # lingering: not written yet
        assert writer.flush(WAIT)  # a reader: written now
        assert store.batches == [["a0", "a1"]] and writer.pending == 0
        written = threading.Event()
        real_put_many = store.put_many

        def watched(records: Any) -> None:
            real_put_many(records)
            written.set()

        store.put_many = watched  # type: ignore[method-assign]
        for n in range(3):  # a full batch is written without waiting for the linger
            writer.put(f"b{n}", numbered(n))
        assert written.wait(WAIT)
        assert store.batches[-1] == ["b0", "b1", "b2"]
    finally:
        writer.close()


def test_a_record_that_cannot_be_built_is_logged_and_the_others_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = ArchiveWriter(lambda: JobArchive(tmp_path))

    def broken() -> dict[str, Any]:
        raise KeyError("result")

    with caplog.at_level(logging.ERROR, logger="jupyter_qsecure.jobs"):
        writer.put("bad", broken)
        writer.put("good", lambda: {"ok": True})
        assert writer.flush(WAIT)
    writer.close()
    assert read_archived(tmp_path, "good") == {"ok": True}
    assert read_archived(tmp_path, "bad") is None
    assert "cannot archive job bad: KeyError" in caplog.text
    # the thread lives on: a later record is written too
    writer = ArchiveWriter(lambda: JobArchive(tmp_path))
    writer.put("later", lambda: {"ok": 2})
    writer.close()
    assert read_archived(tmp_path, "later") == {"ok": 2}


def test_close_writes_what_is_queued_and_refuses_more(tmp_path: Path) -> None:
    writer = ArchiveWriter(lambda: JobArchive(tmp_path))
    for n in range(20):
        writer.put(f"j{n}", numbered(n))
    writer.close()
    assert [read_archived(tmp_path, f"j{n}") for n in range(20)] == [{"n": n} for n in range(20)]
    with pytest.raises(RuntimeError, match="closed"):
        writer.put("late", lambda: {})
    assert writer.flush(WAIT)  # nothing pending


def test_the_archive_file_is_created_only_when_a_job_is_archived(tmp_path: Path) -> None:
    writer = ArchiveWriter(lambda: JobArchive(tmp_path / "jobs"))
    assert writer.flush(WAIT)
    writer.close()
    assert not (tmp_path / "jobs").exists()
