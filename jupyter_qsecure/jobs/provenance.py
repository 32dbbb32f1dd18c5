"""A user's jobs and one job's provenance, as the JupyterLab jobs panel shows them.

Built from the ledger's ``job.*`` entries (:mod:`.history`), the job archive (signed
manifest, signed result, counts) and the trusted keys. "Signature verified" means: the
archived manifest and result verify against the trusted keys, the result names that
manifest and hashes to the archived counts (:func:`.manifest.verify_result`), and the
ledger's ``job.completed`` entry names the same manifest and result digests. The archive
is a convenience copy; the ledger entry and the signatures are what is trusted.

The REST contract is in ``docs/rest-api.md`` (``GET ledger/jobs``, ``GET ledger/jobs/ID``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..identity import display_user, user_actor
from ..ledger import EntryFilter
from ..ledger.proofs import verify_inclusion_proof
from .archive import read_archived
from .history import JOB_KINDS, JobSummary, resolve_job_id, summarise_jobs
from .manifest import ManifestError, statement_digest, verify_result
from .status import JobStatus

__all__ = ["JOB_ID", "job_provenance", "job_row", "user_jobs", "verify_archived"]

#: Job ids and decision ids: 32 lowercase hex digits (uuid4().hex).
JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def verify_archived(
    record: dict[str, Any] | None, completion: dict[str, Any] | None, keyring: Any
) -> tuple[bool | None, list[str], dict[str, Any] | None]:
    """(verified, problems, manifest statement) of a job's archived record.

    ``verified`` is None when there is nothing signed to check (no archived manifest and
    result: denied, failed, unfinished jobs)."""
    if not record or not record.get("manifest") or not record.get("result_envelope"):
        return None, [], None
    result = record.get("result") or {}
    try:
        statement, signed_result = verify_result(
            record["result_envelope"],
            keyring,
            manifest=record["manifest"],
            counts=result.get("counts") or [],
            metadata=result.get("metadata") or {},
        )
    except ManifestError as exc:
        return False, [exc.message], None
    except (KeyError, TypeError, ValueError) as exc:
        return False, [f"the archived record is malformed ({type(exc).__name__})"], None
    problems = []
    if completion is None:
        problems.append("the ledger has no job.completed entry for this job")
    else:
        if completion.get("manifest_sha256") != statement_digest(record["manifest"]):
            problems.append("the ledger names another manifest than the archived one")
        if completion.get("result_sha256") != signed_result["subject"][0]["digest"]["sha256"]:
            problems.append("the ledger names another result than the archived one")
    return not problems, problems, statement


def job_row(job: JobSummary, verified: bool | None) -> dict[str, Any]:
    """One job as ``GET ledger/jobs`` lists it."""
    return {
        "job_id": job.job_id,
        "decision_id": job.decision_id,
        "decided_at": job.decided_at,
        "user": display_user(job.actor),
        "status": job.status,
        "decision": job.decision,
        "rule": job.rule,
        "message": job.error,
        "circuits": job.circuits,
        "circuit_hashes": job.circuit_hashes,
        "backend": job.backend,
        "shots": job.shots_per_circuit if job.shots_per_circuit is not None else job.shots,
        "shots_charged": job.shots,
        "tags": job.tags,
        "signature_verified": verified,
        "ledger_index": job.ledger_index,
    }


def _completions(entries: list[Any]) -> dict[str, dict[str, Any]]:
    return {str(e.body.get("job_id")): dict(e.body) for e in entries if e.kind == "job.completed"}


def _archived(archive_dir: Path, job_id: str) -> dict[str, Any] | None:
    try:
        return read_archived(archive_dir, job_id)
    except Exception:  # unreadable archive: nothing to verify, said as null
        return None


def user_jobs(
    ledger: Any,
    user: str,
    *,
    archive_dir: Path,
    keyring: Any,
    limit: int = 100,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """``user``'s newest ``limit`` jobs (oldest first), with their signature checks."""
    entries = ledger.entries(EntryFilter(kinds=list(JOB_KINDS)))
    actor = user_actor(user)
    jobs = [j for j in summarise_jobs(entries) if j.actor == actor]
    if status:
        jobs = [j for j in jobs if j.status == status]
    jobs = jobs[-limit:]
    completions = _completions(entries)
    rows = []
    for job in jobs:
        completion = completions.get(job.job_id)
        verified: bool | None = None
        if completion is not None and completion.get("status") == JobStatus.COMPLETED:
            verified, _, _ = verify_archived(
                _archived(archive_dir, job.job_id), completion, keyring
            )
        rows.append(job_row(job, verified))
    return rows


def job_provenance(
    ledger: Any, ident: str, user: str, *, archive_dir: Path, keyring: Any
) -> dict[str, Any] | None:
    """Everything about one of ``user``'s jobs (``ident``: job id or decision id), or
    None when there is no such job of theirs."""
    entries = ledger.entries(EntryFilter(kinds=list(JOB_KINDS)))
    job_id = resolve_job_id(entries, ident)
    if job_id is None:
        return None
    summary = next((j for j in summarise_jobs(entries) if j.job_id == job_id), None)
    if summary is None or summary.actor != user_actor(user):
        return None
    own = [e for e in entries if e.body.get("job_id") == job_id]
    completion = _completions(own).get(job_id)
    record = _archived(archive_dir, job_id)
    verified, problems, statement = verify_archived(record, completion, keyring)
    result = None
    if record and record.get("result") and verified is not None:
        result = {
            "counts": record["result"].get("counts"),
            "metadata": record["result"].get("metadata"),
            "envelope": record.get("result_envelope"),
        }
    proofs = []
    for entry in own:
        proof = ledger.prove(entry.index)
        proof_problems = verify_inclusion_proof(proof, ledger.keyring)
        proofs.append(
            {
                "index": entry.index,
                "proof": proof.model_dump(mode="json"),
                "verified": not proof_problems,
                "problems": proof_problems,
            }
        )
    return {
        "job": job_row(summary, verified),
        "entries": [e.model_dump(mode="json") for e in own],
        "manifest": record.get("manifest") if record and verified is not None else None,
        "statement": statement,
        "result": result,
        "verification": {"verified": verified, "problems": problems},
        "proofs": proofs,
    }
