"""A job broker core for tests: in process, inline Aer, a file signer, a SQLite ledger."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from jupyter_qsecure.jobs.inline_executor import InlineExecutor
from jupyter_qsecure.jobs.parse_pool import ParsePool
from jupyter_qsecure.jobs.policy import Policy, PolicyEngine
from jupyter_qsecure.jobs.service import JobService
from jupyter_qsecure.ledger import Ledger
from jupyter_qsecure.ledger.store.sqlite import SQLiteStore
from jupyter_qsecure.signing.signers import Ed25519FileSigner


@contextlib.contextmanager
def inline_job_service(
    folder: Path, policy: Policy | None = None, *, archive: bool = False
) -> Iterator[JobService]:
    """A :class:`JobService` for user ``alice`` (kernel ``k1``, environment ``dev``) with
    its ledger, signing key (and with ``archive`` its job archive) under ``folder``;
    ``policy`` defaults to the shipped one. Closed (service, then ledger) on exit."""
    ledger = Ledger(SQLiteStore(folder / "ledger.db", create=True), actor="user:alice")
    service = JobService(
        identify=lambda token: {"user": "alice", "kernel_id": "k1", "environment": "dev"},
        engine=PolicyEngine(policy if policy is not None else Policy.load(None, "dev")),
        signer=Ed25519FileSigner(folder / "jobs-ed25519.pem"),
        ledger=ledger,
        executor=InlineExecutor(),
        environment="dev",
        archive_dir=folder / "jobs" if archive else None,
        parser=ParsePool(1),
    )
    try:
        yield service
    finally:
        service.close()
        ledger.close()
