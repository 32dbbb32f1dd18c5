"""Re-run a recorded job from its archive and check the result against the signed one.

Checks, in order: the manifest and result envelopes verify with trusted public keys
and link to each other; the archived circuits hash to the manifest's ``circuit:i``
subjects; the noise model (named in the manifest, or the archive's for older jobs)
hashes to the manifest's ``noise_model_sha256``; then Aer runs them again with the
manifest's options (same seed) and the new result's digest is compared with the
signed result's subject.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import QSecureError
from ..signing.signers import KeyRing
from .aer_run import circuits_from_qpy, noise_model_sha256, run_aer
from .archive import read_archived
from .canonical import hash_many
from .manifest import ManifestError, result_digest, verify_result
from .status import JobStatus


class ReplayError(QSecureError):
    """The job cannot be replayed (no archive, unreadable, untrusted)."""


@dataclass
class ReplayReport:
    job_id: str
    matches: bool
    recorded_digest: str
    replayed_digest: str
    differences: list[str]


def load_archive(archive_dir: Path, job_id: str) -> dict[str, Any]:
    if not job_id.isalnum() or len(job_id) > 64:
        raise ReplayError(f"{job_id!r} is not a job id", hint="job ids are 32 hex digits")
    try:
        record = read_archived(archive_dir, job_id)
    except (OSError, ValueError, sqlite3.Error) as exc:
        raise ReplayError(f"the archive of job {job_id} is unreadable ({exc})") from None
    if record is None:
        raise ReplayError(
            f"no archived job {job_id} in {archive_dir}",
            hint="replay runs on the server's data dir (QSECURE_DATA_DIR) after the job completed",
        )
    return record


def replay(archive_dir: Path, job_id: str, keyring: KeyRing) -> ReplayReport:
    record = load_archive(archive_dir, job_id)
    if (
        record.get("status") != JobStatus.COMPLETED
        or not record.get("manifest")
        or not record.get("result")
    ):
        raise ReplayError(
            f"job {job_id} did not complete (status {record.get('status')}); nothing to replay"
        )
    recorded = record["result"]
    try:
        job, result = verify_result(
            record["result_envelope"],
            keyring,
            manifest=record["manifest"],
            counts=recorded["counts"],
            metadata=recorded["metadata"],
        )
    except ManifestError as exc:
        raise ReplayError(
            f"the recorded job does not verify: {exc.message}", hint=exc.hint
        ) from None
    payload = dict(record["payload"])
    try:
        circuits = circuits_from_qpy(payload["circuits_qpy"])
    except (KeyError, ValueError) as exc:
        raise ReplayError(
            f"the archived circuits of job {job_id} are unreadable ({exc})",
            hint="the archive was altered or damaged; the ledger still holds the job's hashes",
        ) from None
    subjects = {s["name"]: s["digest"]["sha256"] for s in job["subject"]}
    for position, digest in enumerate(hash_many(circuits)):
        if subjects.get(f"circuit:{position}") != digest:
            raise ReplayError(
                f"archived circuit {position} does not match the signed manifest (hash {digest[:12]}…)"
            )
    options = job["predicate"].get("options", {})
    payload["seed"] = options.get("seed")
    payload["shots"] = options.get("shots")
    payload["method"] = options.get("method", payload.get("method"))
    payload["noise"] = options.get("noise", payload.get("noise"))  # named since 2026-12
    try:
        noise_hash = noise_model_sha256(payload["noise"])
    except ValueError as exc:  # a name this version does not know
        raise ReplayError(f"cannot rebuild the job's noise model: {exc}") from None
    if noise_hash != options.get("noise_model_sha256"):
        raise ReplayError(
            f"the noise model {payload['noise']!r} does not hash to the signed manifest's "
            "noise_model_sha256",
            hint="the archive was altered, or the noise model's definition changed since",
        )
    outcome = run_aer(payload)
    replayed = result_digest(outcome["counts"], recorded["metadata"])
    recorded_digest = result_digest(recorded["counts"], recorded["metadata"])
    differences = [
        f"circuit {i}: recorded {a} vs replayed {b}"
        for i, (a, b) in enumerate(zip(recorded["counts"], outcome["counts"], strict=False))
        if a != b
    ]
    return ReplayReport(
        job_id,
        replayed == recorded_digest and not differences,
        recorded_digest,
        replayed,
        differences,
    )
