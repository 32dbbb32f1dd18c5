"""Group commit: concurrent callers share one transaction (one fsync), each its own outcome.

The broker's threads each record a job with one ``append_many``; while one commits, the
others queue and the next leader commits all of them together. Every caller returns only
once its entries are durable, and fails (raises) only when its own entries were not
committed. Synchronised on the ledger's own queue (``_queued``), never on time.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_append_cost import job_entries  # the bodies the broker records per job

from jupyter_qsecure.ledger import Entry, Ledger
from jupyter_qsecure.ledger.ledger import CheckpointPolicy
from jupyter_qsecure.ledger.store import sqlite as sqlite_store
from jupyter_qsecure.ledger.store.sqlite import SQLiteStore

TIMEOUT = 30.0


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def ledger(db: Path) -> Iterator[Ledger]:
    with Ledger(
        SQLiteStore(db, create=True), actor="user:alice", checkpoint_policy=CheckpointPolicy()
    ) as opened:
        yield opened


class Caller(threading.Thread):
    """One broker thread recording one job; keeps what ``append_many`` returned or raised."""

    def __init__(self, ledger: Ledger, entries: list[tuple[str, dict[str, Any]]]) -> None:
        super().__init__(daemon=True)
        self.ledger = ledger
        self.entries = entries
        self.job_id = str(entries[0][1]["job_id"])
        self.result: list[Entry] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.ledger.append_many(self.entries, correlation_id=self.job_id)
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        self.join(TIMEOUT)
        assert not self.is_alive(), "append_many did not return"


class HeldCommit:
    """Holds the first transaction that inserts rows until :meth:`release`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.inside = threading.Event()
        self.go = threading.Event()
        self.inserts: list[list[str]] = []  # correlation ids of each insert, in order
        real = sqlite_store._SQLiteTx.insert
        held = self

        def insert(tx: Any, entries: Any, nodes: Any) -> None:
            held.inserts.append([_cid(row.entry) for row in entries])
            if len(held.inserts) == 1:
                held.inside.set()
                assert held.go.wait(TIMEOUT)
            real(tx, entries, nodes)

        monkeypatch.setattr(sqlite_store._SQLiteTx, "insert", insert)

    def release(self) -> None:
        self.go.set()


def _cid(entry: bytes) -> str:
    return str(Entry.from_bytes(entry, b"\0" * 32).correlation_id)


def queue_behind_a_commit(
    ledger: Ledger, held: HeldCommit, jobs: list[list[tuple[str, dict[str, Any]]]]
) -> tuple[Caller, list[Caller]]:
    """Start a leader whose commit is held, then ``jobs`` callers that queue behind it."""
    leader = Caller(ledger, job_entries(0))
    leader.start()
    assert held.inside.wait(TIMEOUT)
    followers = [Caller(ledger, entries) for entries in jobs]
    for caller in followers:
        caller.start()
    with ledger._queued:
        assert ledger._queued.wait_for(lambda: len(ledger._queue) == len(jobs), TIMEOUT)
    return leader, followers


def assert_consecutive_and_verified(ledger: Ledger, callers: list[Caller]) -> None:
    """Each caller's entries are consecutive, in its order, and the ledger verifies."""
    stored = ledger.entries()
    assert [e.index for e in stored] == list(range(len(stored)))
    for caller in callers:
        mine = [e for e in stored if e.correlation_id == caller.job_id]
        assert [e.kind for e in mine] == [kind for kind, _ in caller.entries]
        assert [e.index for e in mine] == list(range(mine[0].index, mine[0].index + len(mine)))
        assert caller.result is not None
        assert [e.model_dump() for e in caller.result] == [e.model_dump() for e in mine]
    report = ledger.verify()
    assert report.ok, report.problems


def test_callers_queued_behind_a_commit_share_the_next_one(
    ledger: Ledger, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldCommit(monkeypatch)
    leader, followers = queue_behind_a_commit(ledger, held, [job_entries(s) for s in (1, 2, 3)])
    held.release()
    for caller in [leader, *followers]:
        caller.finish()
        assert caller.error is None

    # two transactions: the leader's, then all three queued jobs together
    assert held.inserts[0] == [leader.job_id] * 3
    assert len(held.inserts) == 2
    assert sorted(set(held.inserts[1])) == sorted(c.job_id for c in followers)
    assert (ledger.commits, ledger.committed_groups) == (2, 4)
    assert_consecutive_and_verified(ledger, [leader, *followers])
    # durable: another connection (as after a restart) reads every job
    with Ledger(SQLiteStore(db, create=False)) as reopened:
        assert reopened.size() == 12
        assert reopened.verify().ok


def test_a_caller_whose_rows_fail_gets_the_error_and_the_others_commit(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [job_entries(s) for s in (1, 2, 3)]
    poisoned = str(jobs[1][0][1]["job_id"])
    real = sqlite_store._SQLiteTx.insert

    def insert(tx: Any, entries: Any, nodes: Any) -> None:
        if any(poisoned.encode() in row.entry for row in entries):
            raise sqlite3.IntegrityError("refused for the test")
        real(tx, entries, nodes)

    monkeypatch.setattr(sqlite_store._SQLiteTx, "insert", insert)
    held = HeldCommit(monkeypatch)  # sees every insert tried, refused ones too
    leader, followers = queue_behind_a_commit(ledger, held, jobs)
    held.release()
    for caller in [leader, *followers]:
        caller.finish()

    failed = [c for c in followers if c.job_id == poisoned]
    fine = [c for c in followers if c.job_id != poisoned]
    assert isinstance(failed[0].error, sqlite3.IntegrityError)
    assert failed[0].result is None
    assert leader.error is None and all(c.error is None for c in fine)
    # tried together first, then each queued caller alone
    assert len(held.inserts[1]) == 9 and len(held.inserts) == 5
    stored = ledger.entries()
    assert poisoned not in {e.correlation_id for e in stored}
    assert len(stored) == 9
    assert_consecutive_and_verified(ledger, [leader, *fine])
    ledger.append("note", {"text": "the ledger goes on"})
    assert ledger.verify().ok


def test_a_failed_commit_fails_every_caller_it_carried_and_the_ledger_goes_on(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A COMMIT that fails (disk full, I/O error) commits nobody: all its callers raise."""
    held = HeldCommit(monkeypatch)
    store = ledger.store
    assert isinstance(store, SQLiteStore)
    real_conn = store._conn
    commits = 0

    class FailingSecondCommit:
        def execute(self, sql: str, *args: Any) -> Any:
            nonlocal commits
            if sql == "COMMIT":
                commits += 1
                if commits == 2:
                    raise sqlite3.OperationalError("disk I/O error (for the test)")
            return real_conn.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(real_conn, name)

    monkeypatch.setattr(store, "_conn", FailingSecondCommit())
    leader, followers = queue_behind_a_commit(ledger, held, [job_entries(s) for s in (1, 2)])
    held.release()
    for caller in [leader, *followers]:
        caller.finish()

    assert leader.error is None
    for caller in followers:
        assert isinstance(caller.error, sqlite3.OperationalError)
        assert caller.result is None
    assert len(held.inserts) == 2  # a failed COMMIT is not retried caller by caller
    assert {e.correlation_id for e in ledger.entries()} == {leader.job_id}
    after = Caller(ledger, job_entries(9))
    after.start()
    after.finish()
    assert after.error is None  # the failed transaction was ended, not left open
    assert_consecutive_and_verified(ledger, [leader, after])


def test_many_concurrent_callers_are_all_durable_and_in_order(ledger: Ledger, db: Path) -> None:
    threads, per_thread = 6, 15
    callers = [
        [Caller(ledger, job_entries(t * per_thread + i)) for i in range(per_thread)]
        for t in range(threads)
    ]

    def work(mine: list[Caller]) -> None:
        for caller in mine:
            caller.run()

    workers = [threading.Thread(target=work, args=(mine,)) for mine in callers]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(TIMEOUT * 4)
        assert not worker.is_alive()
    everyone = [c for mine in callers for c in mine]
    assert all(c.error is None for c in everyone)
    assert ledger.committed_groups == threads * per_thread
    assert_consecutive_and_verified(ledger, everyone)
    with Ledger(SQLiteStore(db, create=False)) as reopened:
        assert reopened.size() == 3 * threads * per_thread


def test_a_lone_caller_commits_at_once_with_one_transaction(ledger: Ledger) -> None:
    for seed in range(3):
        ledger.append_many(job_entries(seed), correlation_id=uuid.uuid4().hex)
    assert (ledger.commits, ledger.committed_groups) == (3, 3)
