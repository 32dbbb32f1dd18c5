"""Ledger API through a real SQLite file: append, checkpoint, prove, validation."""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from pathlib import Path

import pytest

from jupyter_qsecure.config import QSecure
from jupyter_qsecure.errors import InvalidEntry, SigningError
from jupyter_qsecure.ledger import (
    EntryFilter,
    KeyRing,
    Ledger,
    verify_consistency_proof,
    verify_inclusion_proof,
)
from jupyter_qsecure.ledger.merkle import leaf_hash
from jupyter_qsecure.signing.canonical import canonical_json


def test_entries_are_canonical_json_with_every_field(ledger: Ledger) -> None:
    entry = ledger.append("note", {"text": "rotated the transit key"}, correlation_id="c-1")
    with ledger.store.read() as tx:
        row = tx.get_entry(entry.index)
    assert row is not None
    stored = bytes(row.entry)
    fields = json.loads(stored)
    assert set(fields) == {"index", "timestamp", "kind", "actor", "correlation_id", "body"}
    assert stored == canonical_json(fields)  # sorted keys, no whitespace
    assert bytes(row.leaf_hash) == leaf_hash(stored) == bytes.fromhex(entry.leaf_hash)
    assert fields["correlation_id"] == "c-1" and fields["body"] == {
        "text": "rotated the transit key"
    }
    assert entry.canonical_bytes() == stored


def test_indices_are_dense_and_in_order_across_threads(ledger: Ledger) -> None:
    def writer(tag: int) -> None:
        for i in range(50):
            ledger.append("note", {"text": f"{tag}-{i}"})

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = ledger.entries()
    assert [e.index for e in entries] == list(range(300))
    assert sorted(e.body["text"] for e in entries) == sorted(
        f"{t}-{i}" for t in range(6) for i in range(50)
    )
    report = ledger.verify()
    assert report.ok, report.problems


def test_checkpoints_are_produced_every_n_entries_and_signed_twice(ledger: Ledger) -> None:
    for i in range(250):
        ledger.append("note", {"text": str(i)})
    sizes = [c.tree_size for c in ledger.checkpoints()]
    assert sizes and all(b > a for a, b in zip(sizes, sizes[1:], strict=False))
    assert sizes[0] == 100 and sizes[1] == 200
    checkpoint = ledger.checkpoint()
    assert checkpoint.tree_size == 250
    assert checkpoint.algorithms == ["ed25519", "ml-dsa-65"]
    assert ledger.checkpoint() == checkpoint  # nothing new: same checkpoint
    report = ledger.verify()
    assert report.ok and report.checkpoints == 3 and report.algorithms == {"ed25519", "ml-dsa-65"}


def test_checkpoint_due_by_time(settings: QSecure, sqlite_url: str) -> None:
    settings.checkpoint_every_seconds = 0.0
    with Ledger.open(sqlite_url, settings=settings) as ledger:
        ledger.append("note", {"text": "a"})
        assert [c.tree_size for c in ledger.checkpoints()] == [1]


def test_inclusion_and_consistency_proofs_verify_with_only_public_keys(
    ledger: Ledger, settings: QSecure
) -> None:
    for i in range(137):
        ledger.append("note", {"text": f"n{i}"})
    final = ledger.checkpoint()
    public_only = KeyRing.load(settings.resolved_keyring_file())
    assert len(public_only) == 2
    for index in (0, 1, 63, 64, 99, 100, 136):
        proof = ledger.prove(index)
        assert json.loads(proof.entry)["index"] == index
        assert verify_inclusion_proof(proof, public_only) == []
    proof = ledger.prove(5, checkpoint=final)
    forged = proof.model_copy(update={"entry": proof.entry.replace("n5", "n6")})
    assert verify_inclusion_proof(forged, public_only)
    first = ledger.checkpoints()[0]
    assert verify_consistency_proof(ledger.prove_consistency(first, final), public_only) == []
    assert verify_inclusion_proof(proof, KeyRing()) != []  # keys must come from somewhere


def test_prove_signs_a_checkpoint_when_none_covers_the_entry(ledger: Ledger) -> None:
    entry = ledger.append("note", {"text": "fresh"})
    proof = ledger.prove(entry.index)
    assert proof.checkpoint.tree_size == 1
    with pytest.raises(InvalidEntry, match="no entry 5"):
        ledger.prove(5)


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("nonsense", {"text": "x"}, "unknown ledger entry kind 'nonsense'"),
        ("note", {"txt": "x"}, "text: Field required"),
        ("note", "just text", "must be a JSON object"),
        ("note", {"text": ""}, "text"),
    ],
)
def test_bad_bodies_are_refused_with_the_reason(
    ledger: Ledger, kind: str, body: object, message: str
) -> None:
    with pytest.raises(InvalidEntry, match=message):
        ledger.append(kind, body)  # type: ignore[arg-type]
    assert ledger.size() == 0


def _fake_secrets() -> dict[str, str]:
    token = secrets.token_urlsafe(24)
    return {
        "vault token": "hvs." + token,
        "pem": "-----BEGIN PRIVATE KEY-----\n" + token,  # pragma: allowlist secret
        "openai": "sk-proj-" + token,
        "url password": f"postgresql://alice:{token}@db.example:5432/x",
        "aws": "AKIA" + secrets.token_hex(8).upper(),
        "bearer": "Bearer " + token,
    }


@pytest.mark.parametrize("label", list(_fake_secrets()))
def test_secret_looking_values_are_refused_and_never_echoed(ledger: Ledger, label: str) -> None:
    value = _fake_secrets()[label]
    with pytest.raises(InvalidEntry) as info:
        ledger.append("credential.issued", {"kernel_id": "k1", "lease_id": "l1", "note": value})
    assert "looks like a secret" in str(info.value)
    assert value not in str(info.value) and value.split(".")[-1] not in str(info.value)
    assert ledger.size() == 0


def test_secret_named_fields_are_refused_but_hashes_and_accessors_pass(ledger: Ledger) -> None:
    with pytest.raises(InvalidEntry, match="named like a secret"):
        ledger.append("credential.issued", {"password": secrets.token_hex(8)})
    ok = ledger.append(
        "credential.issued",
        {
            "kernel_id": "3f2a",
            "accessor": secrets.token_urlsafe(18),
            "lease_id": "database/creds/readonly/" + secrets.token_urlsafe(12),
            "policies": ["qsecure-dev"],
            "ttl_seconds": 900,
            "token_sha256": secrets.token_hex(32),
        },
    )
    assert ok.index == 0


def test_filters_by_kind_actor_time_and_last(ledger: Ledger) -> None:
    ledger.append("note", {"text": "one"}, actor="alice")
    ledger.append("note", {"text": "two"}, actor="bob")
    ledger.append("policy.changed", {"policy_sha256": "0" * 64}, actor="alice")
    assert [
        e.body.get("text") for e in ledger.entries(EntryFilter(actors=["alice"], kinds=["note"]))
    ] == ["one"]
    assert [e.index for e in ledger.entries(EntryFilter(last=2))] == [1, 2]
    assert ledger.entries(EntryFilter(since="2999-01-01T00:00:00.000000Z")) == []


def test_key_files_are_private_and_bad_ones_are_named(settings: QSecure, sqlite_url: str) -> None:
    Ledger.open(sqlite_url, settings=settings).close()
    key_file = settings.resolved_signing_key_file()
    assert key_file.stat().st_mode & 0o777 == 0o600
    key_file.chmod(0o644)
    with pytest.raises(SigningError, match="accessible by other users") as info:
        Ledger.open(sqlite_url, settings=settings)
    assert "chmod 600" in (info.value.hint or "")
    key_file.chmod(0o600)
    key_file.write_bytes(b"not a key")
    with pytest.raises(SigningError, match="not a readable PEM private key"):
        Ledger.open(sqlite_url, settings=settings)


def test_reopening_resumes_the_tree(settings: QSecure, sqlite_url: str) -> None:
    with Ledger.open(sqlite_url, settings=settings) as first:
        for i in range(10):
            first.append("note", {"text": str(i)})
    with Ledger.open(sqlite_url, settings=settings) as second:
        assert second.append("note", {"text": "after"}).index == 10
        assert second.verify().ok


def test_wal_and_full_sync_are_on(ledger: Ledger, tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "ledger.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    store_conn = ledger.store._conn  # type: ignore[attr-defined]
    assert store_conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
