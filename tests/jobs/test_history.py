"""summarise_jobs: one line per job from its ledger entries, whatever way it ended."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from jupyter_qsecure.jobs.history import summarise_jobs, user_matches


def entry(kind: str, job_id: str, **body: Any) -> SimpleNamespace:
    return SimpleNamespace(
        kind=kind,
        actor="user:alice",
        timestamp="2026-12-06T10:00:00.000000Z",
        body={"job_id": job_id, **body},
    )


def decided(job_id: str, **body: Any) -> SimpleNamespace:
    return entry("job.decided", job_id, allowed=True, circuit_hashes=["a" * 64], **body)


def test_every_ending_gets_its_status() -> None:
    entries = [
        decided("done", shots_charged=100),
        entry("job.submitted", "done", request={"backend": "aer_simulator", "tags": ["t"]}),
        entry("job.completed", "done", status="completed"),
        decided("crashed"),
        entry("job.completed", "crashed", status="failed", error="worker exited"),
        decided("heavy", needs_approval=True),
        decided("released", needs_approval=True),
        entry("job.approved", "released"),
        entry("job.released", "released"),
        # an approval is a claim until the server releases the job on it
        decided("claimed", needs_approval=True),
        entry("job.approved", "claimed"),
        entry("job.approval_refused", "claimed", reason="not signed by a trusted approver key"),
        decided("stopped"),
        entry("job.cancelled", "stopped"),
        decided("running"),
        entry("job.decided", "refused", allowed=False, rule="max_depth", message="depth 60"),
        entry("job.completed", "not-decided-here", status="completed"),  # before --since
    ]
    jobs = {j.job_id: j for j in summarise_jobs(entries)}
    assert {k: j.status for k, j in jobs.items()} == {
        "done": "completed",
        "crashed": "failed",
        "heavy": "pending_approval",
        "released": "approved",
        "claimed": "pending_approval",
        "stopped": "cancelled",
        "running": "unfinished",
        "refused": "denied",
    }
    assert jobs["done"].tags == ["t"] and jobs["done"].shots == 100 and jobs["done"].circuits == 1
    assert jobs["crashed"].error == "worker exited"
    assert jobs["claimed"].error == "approval refused: not signed by a trusted approver key"
    assert jobs["refused"].rule == "max_depth" and jobs["refused"].error == "depth 60"
    assert list(jobs) == [e.body["job_id"] for e in entries if e.kind == "job.decided"]


def test_user_matches() -> None:
    assert user_matches("user:alice", "alice") and user_matches("user:alice", "user:alice")
    assert not user_matches("user:alice", "ali") and not user_matches("reviewer:alice", "alice")
