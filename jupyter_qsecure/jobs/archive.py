"""The job archive: what ``jupyter qsecure replay JOB_ID`` needs to re-run a job.

One record per completed job (the REST ``JobRecord`` plus the worker payload: circuits as
QPY, shots, seed, method, noise), kept in one SQLite file, ``<data_dir>/jobs/archive.db``
(WAL, owner-only permissions). One small insert per job costs a few tens of
microseconds, where a JSON file per job cost a file creation and a rename on the broker's
hot path. The archive is evidence for convenience, not for trust: replay checks every
record against the signed manifest and result, and the ledger holds their digests.
Records written by earlier versions as ``<job_id>.json`` files are still read.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

__all__ = ["ARCHIVE_FILE", "JobArchive", "read_archived"]

ARCHIVE_FILE = "archive.db"
_SCHEMA = "CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, record TEXT NOT NULL)"


class JobArchive:
    """Write side, used by the broker (thread-safe)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = directory / ARCHIVE_FILE
        self.path.touch(mode=0o600, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)
        self._lock = threading.Lock()

    def put(self, job_id: str, record: dict[str, Any]) -> None:
        text = json.dumps(record, separators=(",", ":"))
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO jobs (job_id, record) VALUES (?, ?)", (job_id, text)
            )

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT record FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
        return dict(json.loads(row[0])) if row else None

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def read_archived(directory: Path, job_id: str) -> dict[str, Any] | None:
    """The archived record of ``job_id`` (read-only; None when there is none).

    Raises ``OSError``/``ValueError``/``sqlite3.Error`` when the archive is unreadable.
    """
    path = directory / ARCHIVE_FILE
    if path.exists():
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT record FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        finally:
            conn.close()
        if row:
            return dict(json.loads(row[0]))
    legacy = directory / f"{job_id}.json"
    if os.path.exists(legacy):
        return dict(json.loads(legacy.read_text()))
    return None
