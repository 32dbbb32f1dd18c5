"""The job archive: what ``jupyter qsecure replay JOB_ID`` needs to re-run a job.

One record per completed job (the REST ``JobRecord`` plus the worker payload: circuits as
QPY, shots, seed, method, noise), kept in one SQLite file, ``<data_dir>/jobs/archive.db``
(WAL, owner-only permissions). One small insert per job costs a few tens of
microseconds, where a JSON file per job cost a file creation and a rename on the broker's
hot path. The archive is evidence for convenience, not for trust: replay checks every
record against the signed manifest and result, and the ledger holds their digests.
Records written by earlier versions as ``<job_id>.json`` files are still read.

The broker writes it after a job's answer, not before (:class:`ArchiveWriter`): nothing
the kernel gets depends on the archive, so the insert (and building the record) leaves
the job's critical path; records that come in together are written in one transaction.
Readers in the server process wait for what is queued first (:meth:`ArchiveWriter.flush`).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["ARCHIVE_FILE", "ArchiveWriter", "JobArchive", "read_archived"]

log = logging.getLogger("jupyter_qsecure.jobs")

ARCHIVE_FILE = "archive.db"
_SCHEMA = "CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, record TEXT NOT NULL)"
_INSERT = "INSERT OR REPLACE INTO jobs (job_id, record) VALUES (?, ?)"


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
        self.put_many([(job_id, record)])

    def put_many(self, records: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Write several records (``(job_id, record)``) in one transaction."""
        rows = [(job_id, json.dumps(record, separators=(",", ":"))) for job_id, record in records]
        if not rows:
            return
        with self._lock:
            if len(rows) == 1:
                self._conn.execute(_INSERT, rows[0])
                return
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(_INSERT, rows)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT record FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
        return dict(json.loads(row[0])) if row else None

    def close(self) -> None:
        with self._lock:
            self._conn.close()


#: What the writer archives for one job: its id, and a function that builds its record
#: (called in the writer's thread).
Pending = tuple[str, Callable[[], dict[str, Any]]]


class ArchiveWriter:
    """Writes job records to a :class:`JobArchive` in a thread of its own, after the
    jobs' answers (the broker's :meth:`~jupyter_qsecure.jobs.service.JobService.archive`).

    :meth:`put` only queues the job (a lock, and a wake-up only when the thread sleeps for
    want of work); the thread builds the records and writes what is queued in one
    transaction ``linger`` seconds after it was woken (at once when ``max_batch`` are
    queued): the jobs answered meanwhile share its wake-ups (each costs a thread switch,
    about as much CPU as writing a record), and none happen while no jobs come.
    :meth:`flush` has what is queued written now and waits for it (readers of the archive
    in this process call it first); :meth:`close` flushes and stops the thread. A record
    that cannot be built or written is logged and dropped, as an inline write's failure
    was: the archive is convenience, the ledger is the evidence. ``open_archive`` is
    called on the first write (the file is created only when jobs come).
    """

    def __init__(
        self,
        open_archive: Callable[[], JobArchive],
        *,
        max_batch: int = 256,
        linger: float = 0.02,
    ) -> None:
        self._open = open_archive
        self._archive: JobArchive | None = None
        self._max_batch = max_batch
        self._linger = linger
        self._urgent = False  # flush() or close() waits: write what is queued now
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[Pending] = collections.deque()
        self._queued = 0  # records ever queued
        self._written = 0  # records ever taken and handled (written, or failed)
        self._closed = False
        self._sleeping = False  # the thread waits for work: put() wakes it
        self._thread: threading.Thread | None = None

    def put(self, job_id: str, build: Callable[[], dict[str, Any]]) -> None:
        """Queue ``job_id``'s record (``build()``, called in the writer's thread)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the job archive writer is closed")
            self._queue.append((job_id, build))
            self._queued += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="qsecure-job-archive", daemon=True
                )
                self._thread.start()
            elif self._sleeping or len(self._queue) >= self._max_batch:
                self._cond.notify()  # else it lingers, and writes this with the others

    def write_now(self, job_id: str, build: Callable[[], dict[str, Any]]) -> None:
        """Write ``job_id``'s record in the calling thread (errors are logged)."""
        self._write([(job_id, build)])

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record queued so far is written; False if ``timeout`` passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._queued
            if self._written < target:
                self._urgent = True
                self._cond.notify_all()
            while self._written < target:
                if self._thread is None or not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    @property
    def pending(self) -> int:
        """Records queued and not written yet."""
        return self._queued - self._written

    def close(self, timeout: float | None = 30.0) -> None:
        """Write what is queued, stop the thread and close the archive."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self._archive is not None:
            self._archive.close()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._sleeping = True  # nothing to do: put() wakes the thread
                    self._cond.wait()
                    self._sleeping = False
                # linger: let the records of the jobs answered meanwhile join this batch
                deadline = time.monotonic() + self._linger
                while (
                    self._queue
                    and len(self._queue) < self._max_batch
                    and not (self._urgent or self._closed)
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if not self._queue:  # closed, and nothing left
                    if self._closed:
                        return
                    continue
                self._urgent = False
                batch = [
                    self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))
                ]
            try:
                self._write(batch)
            except Exception:  # never let the thread die: later records would wait forever
                log.exception("cannot archive jobs")
            finally:
                with self._cond:
                    self._written += len(batch)
                    self._cond.notify_all()

    def _archive_store(self) -> JobArchive:
        with self._cond:
            if self._archive is None:
                self._archive = self._open()
            return self._archive

    def _write(self, batch: list[Pending]) -> None:
        records: list[tuple[str, dict[str, Any]]] = []
        for job_id, build in batch:
            try:
                records.append((job_id, build()))
            except Exception as exc:  # a bug building one record must not lose the others
                log.error("cannot archive job %s: %s", job_id, type(exc).__name__)
        try:
            self._archive_store().put_many(records)
        except (OSError, sqlite3.Error, TypeError, ValueError) as exc:
            log.error("cannot archive jobs %s: %s", ", ".join(job_id for job_id, _ in records), exc)


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
