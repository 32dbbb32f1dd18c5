"""The PostgreSQL ledger store, against a REAL throwaway PostgreSQL cluster.

Every test gets a fresh database (``postgres_ledger_url``); tampering is done with
plain SQL, as an administrator with database access would.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from jupyter_qsecure.errors import LedgerUnavailable, NotALedger
from jupyter_qsecure.ledger import (
    CheckpointPolicy,
    EntryFilter,
    KeyRing,
    Ledger,
    verify_inclusion_proof,
)
from jupyter_qsecure.ledger.merkle import Frontier, leaf_hash
from jupyter_qsecure.ledger.store import EntryRow, open_store
from jupyter_qsecure.ledger.store import postgres as pg_store
from jupyter_qsecure.ledger.store.postgres import PostgresStore, redact_url
from jupyter_qsecure.ledger.verify import verify_ledger
from jupyter_qsecure.signing.signers import Ed25519FileSigner
from jupyter_qsecure.testing.ports import free_loopback_port
from jupyter_qsecure.testing.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[2]


def _dbname(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _password(url: str) -> str:
    password = urlsplit(url).password
    assert password
    return password


@pytest.fixture
def signer(tmp_path: Path) -> Ed25519FileSigner:
    return Ed25519FileSigner(tmp_path / "k.pem")


@pytest.fixture
def ledger(postgres_ledger_url: str, signer: Ed25519FileSigner) -> Ledger:
    led = Ledger(PostgresStore.from_url(postgres_ledger_url, create=True), signers=[signer])
    yield led
    led.close()


@pytest.fixture
def sql(postgres_server: PostgresServer, postgres_ledger_url: str):
    """Run SQL on the test's database as the superuser (an attacker with DB access)."""
    conn = postgres_server.connect(_dbname(postgres_ledger_url))

    def run(statement: str, params: tuple = ()) -> list[tuple]:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []

    yield run
    conn.close()


def _fill(ledger: Ledger, n: int, *, start: int = 0) -> None:
    for i in range(start, start + n):
        ledger.append("note", {"text": f"hello {i}"}, correlation_id=f"c{i}")


def _problem_kinds(report) -> list[tuple[str, int | None]]:
    return [(p.kind, p.index) for p in report.problems]


# ---- happy path ----------------------------------------------------------------------------


def test_append_checkpoint_verify_prove(ledger: Ledger, postgres_ledger_url: str) -> None:
    _fill(ledger, 25)
    ledger.append_many([("note", {"text": f"batch {i}"}) for i in range(40)])
    checkpoint = ledger.checkpoint()
    assert checkpoint.tree_size == 65
    _fill(ledger, 6, start=100)
    second = ledger.checkpoint()
    assert second.tree_size == 71

    report = ledger.verify()
    assert report.ok, report.problems
    assert report.entries == 71 and report.checkpoints == 2 and report.unsigned_tail == 0

    for index in (0, 24, 30, 64, 70):
        proof = ledger.prove(index)
        assert verify_inclusion_proof(proof, ledger.keyring) == []
        assert json.loads(proof.entry)["index"] == index
    consistency = ledger.prove_consistency(checkpoint, second)
    assert consistency.path

    assert ledger.get(3).body == {"text": "hello 3"}
    assert [e.index for e in ledger.entries(EntryFilter(last=3))] == [68, 69, 70]
    assert len(ledger.entries(EntryFilter(kinds=["note"], start=10, end=20))) == 10
    assert ledger.entries(EntryFilter(kinds=["nope"])) == []
    first_ts = ledger.get(0).timestamp
    assert ledger.entries(EntryFilter(until=first_ts)) == []
    assert ledger.entries(EntryFilter(since=first_ts))[0].index == 0

    # the same ledger through open_store + a second Ledger object, without creating
    reopened = Ledger(open_store(postgres_ledger_url, create=False))
    try:
        assert reopened.origin == ledger.origin
        assert reopened.origin.startswith("jupyter-qsecure/ledger/")
        assert reopened.size() == 71
        assert reopened.verify(keyring=ledger.keyring).ok
    finally:
        reopened.close()


def test_streaming_verify_with_small_batches(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several server-side cursors (entries + every node level) interleave in one snapshot."""
    ledger.append_many([("note", {"text": f"e{i}"}) for i in range(300)])
    ledger.checkpoint()
    monkeypatch.setattr(pg_store, "_BATCH", 7)
    report = ledger.verify()
    assert report.ok, report.problems
    assert report.entries == 300
    with ledger.store.read() as tx:
        assert sum(1 for _ in tx.iter_entries(10, 50)) == 40
        assert [i for i, _ in tx.iter_nodes(3)] == list(range(300 // 8))
        # an abandoned stream does not break the transaction or the next one
        stream = tx.iter_entries()
        next(stream)
    assert ledger.size() == 300


def test_read_is_one_snapshot(ledger: Ledger, postgres_ledger_url: str) -> None:
    _fill(ledger, 5)
    other = PostgresStore.from_url(postgres_ledger_url, create=False)
    try:
        with ledger.store.read() as tx:
            before = tx.size()
            with other.write() as wtx:
                row = wtx.get_entry(4)
                assert row is not None
                wtx.insert([EntryRow(5, row.leaf_hash, row.entry, row.kind, row.actor, row.ts)], [])
            assert tx.size() == before == 5
            assert sum(1 for _ in tx.iter_entries()) == 5
        with ledger.store.read() as tx:
            assert tx.size() == 6
    finally:
        other.close()


def test_concurrent_creation_gives_one_ledger(postgres_ledger_url: str) -> None:
    barrier = threading.Barrier(6)
    origins: list[str] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            barrier.wait()
            store = PostgresStore.from_url(postgres_ledger_url, create=True)
            with store.read() as tx:
                origins.append(tx.meta()["origin"])
            store.close()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(origins) == 6 and len(set(origins)) == 1


# ---- tampering -----------------------------------------------------------------------------


def test_edited_entry_body(ledger: Ledger, sql) -> None:
    _fill(ledger, 10)
    ledger.checkpoint()
    sql(
        "UPDATE qsecure_entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'), "
        "'hello 5', 'HELLO 5'), 'UTF8') WHERE idx = 5"
    )
    report = ledger.verify()
    assert not report.ok
    assert report.first.kind == "edited" and report.first.index == 5
    assert "edited" in report.first.message


def test_edited_entry_with_rewritten_leaf_hash(ledger: Ledger, sql) -> None:
    _fill(ledger, 8)
    ledger.checkpoint()
    (entry,) = sql("SELECT entry FROM qsecure_entries WHERE idx = 2")[0]
    forged = bytes(entry).replace(b"hello 2", b"HELLO 2")
    sql(
        "UPDATE qsecure_entries SET entry = %s, leaf_hash = %s WHERE idx = 2",
        (forged, leaf_hash(forged)),
    )
    kinds = _problem_kinds(ledger.verify())
    assert ("tree", 2) in kinds
    assert ("root", 0) in kinds
    assert not any(kind == "edited" for kind, _ in kinds)


def test_edited_entry_with_whole_tree_rewritten(ledger: Ledger, sql) -> None:
    """Rewriting the entry, its leaf hash and every node is still caught by the signed root."""
    _fill(ledger, 4)
    ledger.checkpoint()
    _fill(ledger, 6, start=4)
    ledger.checkpoint()
    rows = sql("SELECT idx, entry FROM qsecure_entries ORDER BY idx")
    frontier = Frontier()
    sql("DELETE FROM qsecure_nodes")
    for idx, entry in rows:
        data = bytes(entry)
        if idx == 6:
            data = data.replace(b"hello 6", b"HELLO 6")
            sql(
                "UPDATE qsecure_entries SET entry = %s, leaf_hash = %s WHERE idx = 6",
                (data, leaf_hash(data)),
            )
        for level, node_idx, digest in frontier.push(leaf_hash(data)):
            sql(
                "INSERT INTO qsecure_nodes (level, idx, hash) VALUES (%s, %s, %s)",
                (level, node_idx, digest),
            )
    report = ledger.verify()
    assert _problem_kinds(report) == [("root", 4)]
    assert report.first.checkpoint_seq == 1


def test_deleted_entry(ledger: Ledger, sql) -> None:
    _fill(ledger, 10)
    ledger.checkpoint()
    sql("DELETE FROM qsecure_entries WHERE idx = 5")
    report = ledger.verify()
    assert report.first.kind == "deleted" and report.first.index == 5


def test_swapped_entries(ledger: Ledger, sql) -> None:
    _fill(ledger, 10)
    ledger.checkpoint()
    sql("UPDATE qsecure_entries SET idx = -1 WHERE idx = 3")
    sql("UPDATE qsecure_entries SET idx = 3 WHERE idx = 7")
    sql("UPDATE qsecure_entries SET idx = 7 WHERE idx = -1")
    report = ledger.verify()
    assert report.first.kind == "reordered" and report.first.index == 3


def test_truncated_tail_after_checkpoint(ledger: Ledger, sql) -> None:
    _fill(ledger, 10)
    ledger.checkpoint()
    sql("DELETE FROM qsecure_entries WHERE idx >= 6")
    report = ledger.verify()
    assert report.first.kind == "truncated" and report.first.index == 6
    assert "truncated" in report.first.message


def test_replaced_checkpoint_signature(ledger: Ledger, sql, tmp_path: Path) -> None:
    _fill(ledger, 10)
    checkpoint = ledger.checkpoint()
    (signatures,) = sql("SELECT signatures FROM qsecure_checkpoints WHERE seq = 0")[0]
    records = json.loads(signatures)
    # a valid signature over different bytes, claimed by the real key
    other_body = checkpoint.body.model_copy(update={"tree_size": 9}).signed_bytes()
    records[0]["signature"] = Ed25519FileSigner(tmp_path / "k.pem").sign(other_body).signature
    sql("UPDATE qsecure_checkpoints SET signatures = %s WHERE seq = 0", (json.dumps(records),))
    report = ledger.verify()
    assert [p.kind for p in report.problems] == ["bad signature"]
    assert report.first.checkpoint_seq == 0


def test_checkpoint_signed_by_unknown_key(ledger: Ledger, sql, tmp_path: Path) -> None:
    _fill(ledger, 10)
    checkpoint = ledger.checkpoint()
    intruder = Ed25519FileSigner(tmp_path / "intruder.pem")
    forged = intruder.sign(checkpoint.body.signed_bytes())
    sql(
        "UPDATE qsecure_checkpoints SET signatures = %s WHERE seq = 0",
        (json.dumps([forged.model_dump()]),),
    )
    report = ledger.verify()
    assert [p.kind for p in report.problems] == ["unknown key"]
    # and a verifier that trusts nothing reports the genuine key as unknown too
    sql(
        "UPDATE qsecure_checkpoints SET signatures = %s WHERE seq = 0",
        (json.dumps([s.model_dump() for s in checkpoint.signatures]),),
    )
    assert ledger.verify().ok
    # (verify_ledger directly: Ledger.verify(keyring=KeyRing()) falls back to the ledger's
    # own keyring because an empty KeyRing is falsy)
    assert [p.kind for p in verify_ledger(ledger.store, KeyRing()).problems] == ["unknown key"]


# ---- concurrency ---------------------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from jupyter_qsecure.ledger import CheckpointPolicy, Ledger
    from jupyter_qsecure.signing.signers import Ed25519FileSigner
    from jupyter_qsecure.ledger.store.postgres import PostgresStore

    url, key, worker, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ledger = Ledger(
        PostgresStore.from_url(url, create=True),
        signers=[Ed25519FileSigner(Path(key), create=False)],
        checkpoint_policy=CheckpointPolicy(every_entries=50, every_seconds=3600),
    )
    print("ready", flush=True)
    assert sys.stdin.readline().strip() == "go"
    done = 0
    while done < count:
        if done % 40 == 0 and done + 5 <= count:
            ledger.append_many(
                [("note", {"text": f"{worker}-{done + k}"}) for k in range(5)]
            )
            done += 5
        else:
            ledger.append("note", {"text": f"{worker}-{done}"}, correlation_id=f"{worker}-{done}")
            done += 1
    ledger.close()
    print("done", flush=True)
    """
)


def test_four_processes_append_concurrently(
    postgres_ledger_url: str, signer: Ed25519FileSigner, tmp_path: Path
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    workers, per_worker = 4, 200
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                postgres_ledger_url,
                str(signer.path),
                f"w{n}",
                str(per_worker),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for n in range(workers)
    ]
    try:
        for proc in procs:  # every worker has opened the (new) ledger: release them together
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", (
                proc.stderr.read() if proc.stderr else ""
            )
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()  # communicate() below closes it
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            assert out.strip() == "done"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    ledger = Ledger(PostgresStore.from_url(postgres_ledger_url, create=False), signers=[signer])
    try:
        entries = ledger.entries()
        assert len(entries) == workers * per_worker
        assert [e.index for e in entries] == list(range(workers * per_worker))
        texts = [e.body["text"] for e in entries]
        expected = {f"w{n}-{i}" for n in range(workers) for i in range(per_worker)}
        assert len(set(texts)) == len(texts) and set(texts) == expected
        for n in range(workers):  # each worker's entries are in its own order
            mine = [int(t.split("-")[1]) for t in texts if t.startswith(f"w{n}-")]
            assert mine == sorted(mine)
        ledger.checkpoint()
        report = ledger.verify()
        assert report.ok, report.problems
        assert report.entries == workers * per_worker
        assert report.checkpoints >= 2
    finally:
        ledger.close()


def test_threads_share_one_store(ledger: Ledger) -> None:
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(25):
                ledger.append("note", {"text": f"t{n}-{i}"})
                if i % 10 == 0:
                    assert ledger.verify().ok
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert ledger.size() == 200
    assert ledger.verify().ok


# ---- errors --------------------------------------------------------------------------------


def test_display_url_has_no_password(postgres_ledger_url: str) -> None:
    password = _password(postgres_ledger_url)
    store = PostgresStore.from_url(postgres_ledger_url, create=True)
    try:
        assert password not in store.display_url
        assert store.display_url.startswith("postgresql://qsecure@127.0.0.1:")
    finally:
        store.close()
    assert redact_url("postgresql://u:pw@h:1/d?password=pw&sslmode=require") == (
        "postgresql://u@h:1/d?sslmode=require"
    )
    assert redact_url("postgres://h/d") == "postgres://h/d"


def test_unreachable_server(tmp_path: Path) -> None:
    port = free_loopback_port()  # nothing listens there
    password = "pw-" + secrets.token_urlsafe(12)  # generated at run time
    url = f"postgresql://auditor:{password}@127.0.0.1:{port}/ledgerdb"
    started = time.monotonic()
    with pytest.raises(LedgerUnavailable) as caught:
        Ledger.open(url, signers=[])
    assert time.monotonic() - started < 10
    text = str(caught.value)
    assert password not in text and password not in repr(caught.value)
    assert f"127.0.0.1:{port}" in text and "ledgerdb" in text
    assert "QSECURE_LEDGER" in text and "--ledger" in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_wrong_password(postgres_server: PostgresServer, postgres_ledger_url: str) -> None:
    wrong = "not-the-Right-pw-123"
    url = postgres_ledger_url.replace(_password(postgres_ledger_url), wrong)
    with pytest.raises(LedgerUnavailable) as caught:
        PostgresStore.from_url(url, create=True)
    text = str(caught.value)
    assert wrong not in text and postgres_server.password not in text
    assert "password authentication failed" in text
    assert _dbname(postgres_ledger_url) in text


def test_missing_database(postgres_server: PostgresServer) -> None:
    url = postgres_server.url_for("no_such_ledger_db")
    with pytest.raises(LedgerUnavailable) as caught:
        PostgresStore.from_url(url, create=True)
    text = str(caught.value)
    assert "no_such_ledger_db" in text and "does not exist" in text
    assert postgres_server.password not in text


def test_foreign_database_is_not_a_ledger(postgres_ledger_url: str, sql) -> None:
    sql("CREATE TABLE invoices (id integer primary key, amount numeric)")
    for create in (True, False):
        with pytest.raises(NotALedger) as caught:
            PostgresStore.from_url(postgres_ledger_url, create=create)
        text = str(caught.value)
        assert "not a jupyter-qsecure ledger" in text and "invoices" in text
        assert _password(postgres_ledger_url) not in text
    assert sql("SELECT to_regclass('qsecure_meta')") == [(None,)]


def test_empty_database_without_create(postgres_ledger_url: str, sql) -> None:
    with pytest.raises(NotALedger) as caught:
        PostgresStore.from_url(postgres_ledger_url, create=False)
    text = str(caught.value)
    assert "empty" in text and "audit note" in text
    assert _password(postgres_ledger_url) not in text
    assert sql("SELECT to_regclass('qsecure_meta')") == [(None,)]


def test_meta_without_marker_is_not_a_ledger(postgres_ledger_url: str, sql) -> None:
    sql("CREATE TABLE qsecure_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    with pytest.raises(NotALedger, match="no ledger schema marker"):
        PostgresStore.from_url(postgres_ledger_url, create=False)


def test_server_restart_is_survived(postgres_server: PostgresServer, ledger: Ledger, sql) -> None:
    """A connection the server dropped is replaced on the next transaction."""
    _fill(ledger, 3)
    sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    _fill(ledger, 3, start=3)
    assert ledger.size() == 6
    assert ledger.verify().ok


def test_policy_checkpoints(postgres_ledger_url: str, signer: Ed25519FileSigner) -> None:
    led = Ledger(
        PostgresStore.from_url(postgres_ledger_url, create=True),
        signers=[signer],
        checkpoint_policy=CheckpointPolicy(every_entries=10, every_seconds=3600),
    )
    try:
        _fill(led, 35)
        assert [c.tree_size for c in led.checkpoints()] == [10, 20, 30]
        assert led.verify().ok
    finally:
        led.close()
