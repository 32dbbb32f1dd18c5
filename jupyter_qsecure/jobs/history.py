"""Jobs as the ledger tells them: one summary per job id from its ``job.*`` entries
(``jupyter qsecure jobs list``). Reads only what the ledger holds, so it answers "who ran
what, when, under which decision, and how it ended" for any server that wrote it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..identity import user_matches

#: The ledger kinds that make up a job's history.
JOB_KINDS = (
    "job.decided",
    "job.submitted",
    "job.approved",
    "job.approval_refused",
    "job.released",
    "job.cancelled",
    "job.completed",
)


@dataclass
class JobSummary:
    job_id: str
    decided_at: str
    actor: str
    status: str
    rule: str | None = None
    circuits: int = 0
    shots: int | None = None
    backend: str | None = None
    tags: list[str] = field(default_factory=list)
    error: str | None = None
    decision_id: str | None = None
    decision: str | None = None  # allowed, denied, pending_approval
    circuit_hashes: list[str] = field(default_factory=list)
    ledger_index: int | None = None  # of the job.decided entry
    shots_per_circuit: int | None = None  # as requested (``shots`` is what was charged)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarise_jobs(entries: Iterable[Any]) -> list[JobSummary]:
    """Summaries of the jobs whose ``job.decided`` entry is among ``entries`` (ledger
    :class:`~jupyter_qsecure.ledger.Entry` objects, in ledger order), oldest first.

    ``status``: ``denied``; the ``job.completed`` status (``completed``, ``failed``,
    ``cancelled``, ``rejected``); ``cancelled``; ``pending_approval``; ``approved`` (the
    server released it on a verified approval, ``job.released``; not finished yet); or
    ``unfinished`` (running, or the server stopped before it ended). A ``job.approved``
    entry is only a claim until the server releases the job; a refused one leaves the
    job ``pending_approval`` with the reason in ``error``.
    """
    jobs: dict[str, JobSummary] = {}
    for entry in entries:
        job_id = str(entry.body.get("job_id") or "")
        if entry.kind == "job.decided":
            body = entry.body
            status = "unfinished"
            if body.get("allowed") is False:
                status = "denied"
            elif body.get("needs_approval"):
                status = "pending_approval"
            jobs[job_id] = JobSummary(
                job_id=job_id,
                decided_at=entry.timestamp,
                actor=entry.actor,
                status=status,
                rule=body.get("rule"),
                circuits=len(body.get("circuit_hashes") or []),
                shots=body.get("shots_charged"),
                error=body.get("message") if status == "denied" else None,
                decision_id=body.get("decision_id"),
                decision=body.get("outcome")
                or ("denied" if body.get("allowed") is False else "allowed"),
                circuit_hashes=list(body.get("circuit_hashes") or []),
                ledger_index=getattr(entry, "index", None),
            )
            continue
        job = jobs.get(job_id)
        if job is None:
            continue
        if entry.kind == "job.submitted":
            request = entry.body.get("request") or {}
            job.backend = request.get("backend")
            job.shots_per_circuit = request.get("shots")
            job.tags = list(request.get("tags") or [])
        elif entry.kind == "job.released" and job.status == "pending_approval":
            job.status = "approved"
            job.error = None
        elif entry.kind == "job.approval_refused" and job.status == "pending_approval":
            job.error = f"approval refused: {entry.body.get('reason')}"
        elif entry.kind == "job.cancelled" and job.status != "completed":
            job.status = "cancelled"
        elif entry.kind == "job.completed":
            job.status = str(entry.body.get("status") or "completed")
            job.error = entry.body.get("error")
    return list(jobs.values())


def resolve_job_id(entries: Iterable[Any], ident: str) -> str | None:
    """The job ``ident`` names: a job id, or the decision id of a job (what a denial
    quotes). None when neither is among ``entries`` (ledger entries of ``JOB_KINDS``)."""
    by_decision: str | None = None
    for entry in entries:
        body = entry.body
        job_id = str(body.get("job_id") or "")
        if job_id and job_id == ident:
            return job_id
        if by_decision is None and job_id and body.get("decision_id") == ident:
            by_decision = job_id
    return by_decision


__all__ = ["JOB_KINDS", "JobSummary", "resolve_job_id", "summarise_jobs", "user_matches"]
