"""Recording a job costs the same work whatever the ledger's size (issue 12, throughput).

The broker records every waited job with one ``append_many`` of three entries
(``job.decided``, ``job.submitted``, ``job.completed``). Its cost must not grow with the
ledger: no statement may scan entries or nodes, and the SQL work per job stays constant.
Counted, not timed: the statements run, the SQLite virtual-machine instructions they take
(``set_progress_handler`` with a period of 1) and each query's plan.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from jupyter_qsecure.ledger import Ledger
from jupyter_qsecure.ledger.ledger import CheckpointPolicy
from jupyter_qsecure.ledger.store.sqlite import SQLiteStore

#: Jobs appended per measurement: 192 entries, so a block that starts at a multiple of
#: 256 entries completes the same Merkle nodes wherever it starts.
JOBS = 64
ALIGN = 256


def job_entries(seed: int) -> list[tuple[str, dict[str, Any]]]:
    """What ``JobService`` appends for one waited job (bodies of the real shapes)."""
    job_id = uuid.uuid4().hex
    hashes = [uuid.uuid4().hex * 2]
    return [
        (
            "job.decided",
            {"job_id": job_id, "request_id": uuid.uuid4().hex, "circuit_hashes": hashes},
        ),
        (
            "job.submitted",
            {
                "job_id": job_id,
                "identity": {
                    "user": "alice",
                    "kernel_id": "k1",
                    "accessor": "a1",
                    "environment": "dev",
                },
                "request": {"shots": 128, "seed": seed, "backend": "aer_simulator", "tags": []},
                "circuit_hashes": hashes,
                "decision_id": uuid.uuid4().hex,
            },
        ),
        ("job.completed", {"job_id": job_id, "status": "completed", "transpiled_hashes": hashes}),
    ]


@dataclass
class Work:
    statements: list[str] = field(default_factory=list)
    steps: int = 0


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[Ledger]:
    store = SQLiteStore(tmp_path / "ledger.db", create=True)
    # no signer: checkpoints (their own, periodic cost) are not part of an append
    with Ledger(store, actor="user:alice", checkpoint_policy=CheckpointPolicy()) as ledger:
        yield ledger


def conn_of(ledger: Ledger) -> sqlite3.Connection:
    store = ledger.store
    assert isinstance(store, SQLiteStore)
    return store._conn


def grow_to(ledger: Ledger, size: int) -> None:
    """Fill the ledger quickly (big batches) up to ``size`` entries."""
    batch: list[tuple[str, dict[str, Any]]] = []
    seed = ledger.size()
    while ledger.size() + len(batch) < size:
        batch.extend(job_entries(seed)[: size - ledger.size() - len(batch)])
        seed += 1
        if len(batch) >= 3000:
            ledger.append_many(batch)
            batch = []
    if batch:
        ledger.append_many(batch)
    assert ledger.size() == size


def record_jobs(ledger: Ledger) -> Work:
    """Append JOBS jobs one by one, as the broker does; the SQL work they took."""
    conn = conn_of(ledger)
    work = Work()

    def step() -> int:
        work.steps += 1
        return 0  # go on

    conn.set_trace_callback(work.statements.append)
    conn.set_progress_handler(step, 1)
    try:
        for seed in range(JOBS):
            ledger.append_many(job_entries(seed))
    finally:
        conn.set_progress_handler(None, 1)
        conn.set_trace_callback(None)
    return work


def scans(conn: sqlite3.Connection, statements: list[str]) -> list[str]:
    """Every query among ``statements`` whose plan reads a whole table or index."""
    found = []
    for sql in {s for s in statements if s.lstrip().upper().startswith("SELECT")}:
        for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"):
            detail = str(row[-1])
            if detail.startswith("SCAN") and "CONSTANT ROW" not in detail:
                found.append(f"{sql[:80]} -> {detail}")
    return found


def test_recording_a_job_takes_the_same_sql_work_at_any_ledger_size(
    sqlite_ledger: Ledger,
) -> None:
    grow_to(sqlite_ledger, ALIGN)
    small = record_jobs(sqlite_ledger)
    grow_to(sqlite_ledger, 120 * ALIGN)  # ~30,000 entries: 100x more
    large = record_jobs(sqlite_ledger)

    assert small.statements and large.statements
    shapes = [s.split(" VALUES")[0].split(" WHERE")[0] for s in small.statements]
    assert [s.split(" VALUES")[0].split(" WHERE")[0] for s in large.statements] == shapes
    # per job: a handful of statements, none of them reading the ledger through
    assert len(large.statements) / JOBS <= 10, large.statements[:12]
    assert scans(conn_of(sqlite_ledger), large.statements) == []
    # The virtual machine's instruction count follows the rows a statement visits: a
    # query that scanned entries would grow with them (here 100x). B-tree descents are
    # one instruction each, so an O(log n) append costs exactly the same.
    assert large.steps <= small.steps * 1.05, (small.steps, large.steps)


def test_the_work_count_sees_a_statement_that_reads_the_whole_ledger(
    sqlite_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The measure above can fail: a per-append query over every entry is caught."""
    from jupyter_qsecure.ledger.store import sqlite as sqlite_store

    def counting_size(self: Any) -> int:  # an O(n) way to learn the size
        rows = self._conn.execute("SELECT idx FROM qsecure_entries").fetchall()
        return len(rows)

    monkeypatch.setattr(sqlite_store._SQLiteTx, "size", counting_size)
    grow_to(sqlite_ledger, ALIGN)
    small = record_jobs(sqlite_ledger)
    grow_to(sqlite_ledger, 20 * ALIGN)
    large = record_jobs(sqlite_ledger)
    assert large.steps > small.steps * 1.05
    assert scans(conn_of(sqlite_ledger), large.statements)
