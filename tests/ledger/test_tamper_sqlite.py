"""Tampering with a real SQLite ledger is detected, with the first bad index named."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_qsecure.config import QSecure
from jupyter_qsecure.ledger import Ledger
from jupyter_qsecure.ledger import verify as verify_module
from jupyter_qsecure.ledger.merkle import leaf_hash
from jupyter_qsecure.signing.canonical import canonical_json
from jupyter_qsecure.signing.signers import b64


@pytest.fixture
def filled(
    settings: QSecure, sqlite_url: str, tmp_path: Path
) -> Iterator[tuple[Ledger, sqlite3.Connection]]:
    with Ledger.open(sqlite_url, settings=settings) as ledger:
        for i in range(230):  # checkpoints at 100 and 200 (every 100), 30 unsigned
            ledger.append("note", {"text": f"entry {i}"})
        conn = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
        yield ledger, conn
        conn.close()


def _rewrite(conn: sqlite3.Connection, idx: int, mutate, *, rehash: bool) -> None:  # type: ignore[no-untyped-def]
    entry = json.loads(
        conn.execute("SELECT entry FROM qsecure_entries WHERE idx=?", (idx,)).fetchone()[0]
    )
    mutate(entry)
    data = canonical_json(entry)
    if rehash:
        conn.execute(
            "UPDATE qsecure_entries SET entry=?, leaf_hash=? WHERE idx=?",
            (data, leaf_hash(data), idx),
        )
    else:
        conn.execute("UPDATE qsecure_entries SET entry=? WHERE idx=?", (data, idx))


def test_intact_ledger_verifies(filled: tuple[Ledger, sqlite3.Connection]) -> None:
    ledger, _ = filled
    report = ledger.verify()
    assert report.ok and report.entries == 230 and report.unsigned_tail == 30
    summary = report.to_json()
    assert 0 <= summary.pop("seconds") < 600  # type: ignore[operator]
    assert summary == {
        "ok": True,
        "entries": 230,
        "checkpoints": 2,
        "signatures": 4,  # each checkpoint is signed with Ed25519 and ML-DSA-65
        "algorithms": ["ed25519", "ml-dsa-65"],
        "unsigned_tail": 30,
        "problems": [],
    }


def test_edited_body_names_the_entry(filled: tuple[Ledger, sqlite3.Connection]) -> None:
    ledger, conn = filled
    _rewrite(conn, 41, lambda e: e["body"].update(text="harmless"), rehash=False)
    report = ledger.verify()
    assert not report.ok
    assert report.first.kind == "edited" and report.first.index == 41
    assert "entry 41" in report.first.message
    problems = report.to_json()["problems"]
    assert problems[0] == {
        "kind": "edited",
        "message": report.first.message,
        "index": 41,
        "checkpoint_seq": None,
    }
    assert report.to_json()["ok"] is False


def test_edit_with_rewritten_leaf_hash_is_caught_by_tree_and_signed_root(
    filled: tuple[Ledger, sqlite3.Connection],
) -> None:
    ledger, conn = filled
    _rewrite(conn, 150, lambda e: e["body"].update(text="rewritten"), rehash=True)
    report = ledger.verify()
    kinds = {p.kind for p in report.problems}
    assert {"tree", "root"} <= kinds
    assert report.first.index == 150  # the level-1 node covering entries 150..151
    root = next(p for p in report.problems if p.kind == "root")
    assert "entries 100..199" in root.message


def test_edit_after_rebuilding_the_whole_tree_still_fails_the_signature_check(
    filled: tuple[Ledger, sqlite3.Connection],
) -> None:
    ledger, conn = filled
    _rewrite(conn, 7, lambda e: e["body"].update(text="forged"), rehash=True)
    conn.execute("DELETE FROM qsecure_nodes")  # attacker rebuilds nodes from the forged leaves
    from jupyter_qsecure.ledger.merkle import Frontier

    frontier = Frontier()
    for (leaf,) in conn.execute("SELECT leaf_hash FROM qsecure_entries ORDER BY idx").fetchall():
        for level, idx, digest in frontier.push(bytes(leaf)):
            conn.execute("INSERT INTO qsecure_nodes VALUES (?,?,?)", (level, idx, digest))
    report = ledger.verify()
    assert [p.kind for p in report.problems] == ["root", "root"]  # both checkpoints cover entry 7
    assert report.first.index == 0 and "entries 0..99" in report.first.message


def test_deleted_entry_is_named(filled: tuple[Ledger, sqlite3.Connection]) -> None:
    ledger, conn = filled
    conn.execute("DELETE FROM qsecure_entries WHERE idx=17")
    report = ledger.verify()
    assert report.first.kind == "deleted" and report.first.index == 17
    assert "entries 17..17 are missing" in report.first.message


def test_swapped_entries_are_reported_as_reordered(
    filled: tuple[Ledger, sqlite3.Connection],
) -> None:
    ledger, conn = filled
    conn.execute("UPDATE qsecure_entries SET idx=-1 WHERE idx=5")
    conn.execute("UPDATE qsecure_entries SET idx=5 WHERE idx=6")
    conn.execute("UPDATE qsecure_entries SET idx=6 WHERE idx=-1")
    report = ledger.verify()
    assert report.first.kind == "reordered" and report.first.index == 5


def test_a_duplicated_entry_is_named_once_the_primary_key_is_dropped(
    filled: tuple[Ledger, sqlite3.Connection],
) -> None:
    # Whoever can write the file can rebuild the table without its primary key and
    # insert a copy of an entry (e.g. to make a record appear twice).
    ledger, conn = filled
    conn.execute("ALTER TABLE qsecure_entries RENAME TO old_entries")
    conn.execute("CREATE TABLE qsecure_entries AS SELECT * FROM old_entries")
    conn.execute("DROP TABLE old_entries")
    conn.execute("INSERT INTO qsecure_entries SELECT * FROM qsecure_entries WHERE idx=57")
    report = ledger.verify()
    problem = report.first
    assert problem is not None and report.problems == [problem]
    assert (problem.kind, problem.index, problem.message) == (
        "reordered",
        57,
        "entry 57 appears twice",
    )


def test_progress_is_reported_every_so_many_entries_and_at_the_end(
    filled: tuple[Ledger, sqlite3.Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify_module, "PROGRESS_EVERY", 100)
    done: list[int] = []
    assert filled[0].verify(progress=done.append).ok
    assert done == [100, 200, 230]


def test_truncated_tail_after_a_checkpoint(filled: tuple[Ledger, sqlite3.Connection]) -> None:
    ledger, conn = filled
    conn.execute("DELETE FROM qsecure_entries WHERE idx >= 180")
    report = ledger.verify()
    assert report.first.kind == "truncated" and report.first.index == 180
    assert "covers 200 entries but the ledger ends at 180" in report.first.message


def test_replaced_signature_is_detected(filled: tuple[Ledger, sqlite3.Connection]) -> None:
    ledger, conn = filled
    (sigs,) = conn.execute("SELECT signatures FROM qsecure_checkpoints WHERE seq=1").fetchone()
    records = json.loads(sigs)
    records[0]["signature"] = b64(bytes(64))
    conn.execute("UPDATE qsecure_checkpoints SET signatures=? WHERE seq=1", (json.dumps(records),))
    report = ledger.verify()
    assert report.first.kind == "bad signature" and report.first.checkpoint_seq == 1


def test_checkpoint_signed_by_a_foreign_key_is_unknown(
    filled: tuple[Ledger, sqlite3.Connection], tmp_path: Path
) -> None:
    ledger, conn = filled
    from jupyter_qsecure.signing.signers import Ed25519FileSigner

    forger = Ed25519FileSigner(tmp_path / "forger.pem")
    (body,) = conn.execute("SELECT body FROM qsecure_checkpoints WHERE seq=0").fetchone()
    forged = [forger.sign(bytes(body)).model_dump()]
    conn.execute("UPDATE qsecure_checkpoints SET signatures=? WHERE seq=0", (json.dumps(forged),))
    report = ledger.verify()
    assert report.first.kind == "unknown key" and forger.key_id in report.first.message


def test_rolled_back_checkpoint_and_tail_detected_with_an_external_checkpoint(
    filled: tuple[Ledger, sqlite3.Connection],
) -> None:
    ledger, conn = filled
    saved = ledger.checkpoint()  # size 230, kept outside the database by the operator
    conn.execute("DELETE FROM qsecure_entries WHERE idx >= 210")
    conn.execute("DELETE FROM qsecure_checkpoints WHERE tree_size > 200")
    assert ledger.verify().ok  # indistinguishable from the database alone (documented)
    from jupyter_qsecure.ledger.verify import verify_ledger

    report = verify_ledger(ledger.store, ledger.keyring, trusted=[saved])
    assert report.first.kind == "truncated" and report.first.index == 210


def test_altered_filter_columns_are_detected(filled: tuple[Ledger, sqlite3.Connection]) -> None:
    ledger, conn = filled
    conn.execute("UPDATE qsecure_entries SET kind='policy.changed', actor='nobody' WHERE idx=12")
    report = ledger.verify()
    assert report.first.kind == "edited" and report.first.index == 12
    assert "kind/actor/time columns" in report.first.message


@pytest.mark.parametrize(
    ("column", "value"),
    [("actor", "local:nobody"), ("kind", "policy.changed"), ("ts", "2020-01-01T00:00:00Z")],
)
def test_one_altered_filter_column_alone_is_detected(
    filled: tuple[Ledger, sqlite3.Connection], column: str, value: str
) -> None:
    ledger, conn = filled
    conn.execute(f"UPDATE qsecure_entries SET {column}=? WHERE idx=12", (value,))
    report = ledger.verify()
    assert [(p.kind, p.index) for p in report.problems] == [("edited", 12)]


def test_blob_replaced_by_text_is_reported_not_crashing(
    filled: tuple[Ledger, sqlite3.Connection],
) -> None:
    ledger, conn = filled
    conn.execute("UPDATE qsecure_entries SET entry=CAST(entry AS TEXT) || ' ' WHERE idx=2")
    report = ledger.verify()
    assert report.first.kind == "edited" and report.first.index == 2


def test_checkpoints_of_another_ledger_are_named_by_origin(
    filled: tuple[Ledger, sqlite3.Connection],
) -> None:
    ledger, conn = filled
    from jupyter_qsecure.ledger.verify import verify_ledger

    saved = ledger.checkpoint()
    foreign = saved.model_copy(
        update={"body": saved.body.model_copy(update={"origin": "another.example/ledger"})}
    )
    report = verify_ledger(ledger.store, ledger.keyring, trusted=[foreign])
    assert [(p.kind, p.index) for p in report.problems] == [("origin", None)]
    assert "another ledger (another.example/ledger)" in report.problems[0].message
    # the same inside the database: the stored checkpoint's body names another origin
    (body,) = conn.execute("SELECT body FROM qsecure_checkpoints WHERE seq=0").fetchone()
    other = json.loads(bytes(body))
    other["origin"] = "another.example/ledger"
    conn.execute("UPDATE qsecure_checkpoints SET body=? WHERE seq=0", (canonical_json(other),))
    report = ledger.verify()
    assert (report.first.kind, report.first.checkpoint_seq) == ("origin", 0)


def test_problem_messages_name_the_positions_exactly(
    filled: tuple[Ledger, sqlite3.Connection],
) -> None:
    """The wording users read for a swap and a truncated range, whole."""
    ledger, conn = filled
    conn.execute("UPDATE qsecure_entries SET idx=-1 WHERE idx=5")
    conn.execute("UPDATE qsecure_entries SET idx=5 WHERE idx=6")
    conn.execute("UPDATE qsecure_entries SET idx=6 WHERE idx=-1")
    assert ledger.verify().first.message == (
        "position 5 holds the entry recorded as index 6 (entries swapped or reordered)"
    )
    conn.execute("UPDATE qsecure_entries SET idx=-1 WHERE idx=5")  # swap back
    conn.execute("UPDATE qsecure_entries SET idx=5 WHERE idx=6")
    conn.execute("UPDATE qsecure_entries SET idx=6 WHERE idx=-1")
    conn.execute("DELETE FROM qsecure_entries WHERE idx >= 180")
    signed = json.loads(
        bytes(conn.execute("SELECT body FROM qsecure_checkpoints WHERE seq=1").fetchone()[0])
    )["timestamp"]
    report = ledger.verify()
    assert [p.__dict__ for p in report.problems] == [
        {
            "kind": "truncated",
            "message": f"checkpoint 1 (signed {signed}) covers 200 entries but the ledger "
            "ends at 180: entries 180..199 were deleted (truncated)",
            "index": 180,
            "checkpoint_seq": 1,
        }
    ]


def test_checkpoints_out_of_order_are_a_rollback(filled: tuple[Ledger, sqlite3.Connection]) -> None:
    ledger, conn = filled
    rows = conn.execute("SELECT seq, body FROM qsecure_checkpoints ORDER BY seq").fetchall()
    stamps = [json.loads(bytes(body))["timestamp"] for _, body in rows]
    conn.execute("UPDATE qsecure_checkpoints SET seq=-1 WHERE seq=0")  # size 100 now comes last
    conn.execute("UPDATE qsecure_checkpoints SET seq=0 WHERE seq=1")
    conn.execute("UPDATE qsecure_checkpoints SET seq=1 WHERE seq=-1")
    report = ledger.verify()
    assert [p.__dict__ for p in report.problems] == [
        {
            "kind": "rolled back",
            "message": f"checkpoint 1 (size 100, {stamps[0]}) is smaller than checkpoint 0 "
            "(size 200): the ledger was rolled back",
            "index": None,
            "checkpoint_seq": 1,
        }
    ]


def test_entry_not_in_canonical_form_is_malformed_not_edited(
    filled: tuple[Ledger, sqlite3.Connection],
) -> None:
    """Same fields and columns, other bytes: named as malformed, after the leaf mismatch."""
    ledger, conn = filled
    (entry,) = conn.execute("SELECT entry FROM qsecure_entries WHERE idx=9").fetchone()
    spaced = bytes(entry).replace(b'{"actor":', b'{"actor": ', 1)
    conn.execute("UPDATE qsecure_entries SET entry=? WHERE idx=9", (spaced,))
    report = ledger.verify()
    assert [(p.kind, p.message, p.index) for p in report.problems] == [
        ("edited", "entry 9: its content no longer matches its leaf hash (edited entry)", 9),
        ("malformed", "entry 9 is not in canonical form", 9),
    ]


def test_text_entry_column_is_checked_as_its_text(
    filled: tuple[Ledger, sqlite3.Connection],
) -> None:
    """A blob turned into text (plus a space) is hashed and parsed as that text."""
    ledger, conn = filled
    conn.execute("UPDATE qsecure_entries SET entry=CAST(entry AS TEXT) || ' ' WHERE idx=2")
    report = ledger.verify()
    assert [(p.kind, p.message) for p in report.problems] == [
        ("edited", "entry 2: its content no longer matches its leaf hash (edited entry)"),
        ("malformed", "entry 2 is not in canonical form"),  # valid JSON, extra byte
    ]


def test_stored_values_of_any_type_become_bytes() -> None:
    from jupyter_qsecure.ledger.verify import _as_bytes

    assert _as_bytes(memoryview(b"ab")) == b"ab"
    assert _as_bytes("é") == "é".encode()
    assert _as_bytes("\ud800") == b"\xed\xa0\x80"  # a lone surrogate does not crash
    assert _as_bytes(42) == b"42"


def test_checkpoint_of_the_empty_tree(settings: QSecure, sqlite_url: str) -> None:
    with Ledger.open(sqlite_url, settings=settings) as ledger:
        empty = ledger.checkpoint()
        assert empty.tree_size == 0
        report = ledger.verify()
        assert report.ok and report.checkpoints == 1 and report.entries == 0
        from jupyter_qsecure.ledger.verify import verify_ledger

        wrong = empty.model_copy(
            update={"body": empty.body.model_copy(update={"root_hash": "00" * 32})}
        )
        report = verify_ledger(ledger.store, ledger.keyring, trusted=[wrong])
        assert [(p.kind, p.message) for p in report.problems] == [
            ("root", f"checkpoint {empty.seq} of the empty tree has a wrong root")
        ]
