"""BatchingSigner: concurrent signing requests share batched calls, and nothing mixes up."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from jupyter_qsecure.signing.batching import BatchingSigner
from jupyter_qsecure.signing.signers import (
    Ed25519FileSigner,
    KeyRing,
    SignatureProblem,
    SignatureRecord,
    verify_signature,
)


def valid(message: bytes, record: SignatureRecord, keyring: KeyRing) -> bool:
    try:
        verify_signature(record, message, keyring)
    except SignatureProblem:
        return False
    return True


class RecordingSigner:
    """A real Ed25519 key with ``sign_many``; the first call blocks until released."""

    def __init__(self, path: Path) -> None:
        self.key = Ed25519FileSigner(path)
        self.batches: list[int] = []
        self.first_call = threading.Event()
        self.release = threading.Event()
        self.fail_with: Exception | None = None

    key_id = property(lambda self: self.key.key_id)
    algorithm = property(lambda self: self.key.algorithm)

    def public_keys(self) -> Any:
        return self.key.public_keys()

    def sign_many(self, messages: list[bytes]) -> list[SignatureRecord]:
        self.batches.append(len(messages))
        if len(self.batches) == 1:
            self.first_call.set()
            assert self.release.wait(30)
        if self.fail_with is not None:
            raise self.fail_with
        return [self.key.sign(m) for m in messages]


def _run_concurrently(signer: BatchingSigner, inner: RecordingSigner, callers: int) -> list[Any]:
    """One caller enters the inner signer and blocks; the others queue; then release."""
    results: list[Any] = [None] * callers

    def call(i: int) -> None:
        try:
            results[i] = signer.sign_many([f"message {i}.{k}".encode() for k in range(i % 3 + 1)])
        except Exception as exc:  # collected for the assertions
            results[i] = exc

    threads = [threading.Thread(target=call, args=(0,))]
    threads[0].start()
    assert inner.first_call.wait(30)
    threads += [threading.Thread(target=call, args=(i,)) for i in range(1, callers)]
    for thread in threads[1:]:
        thread.start()
    with signer._queued:  # every other caller has queued behind the call in flight
        assert signer._queued.wait_for(lambda: len(signer._queue) == callers - 1, timeout=30)
    inner.release.set()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_callers_share_one_batch_and_get_their_own_signatures(
    tmp_path: Path,
) -> None:
    inner = RecordingSigner(tmp_path / "k.pem")
    signer = BatchingSigner(inner)
    results = _run_concurrently(signer, inner, 8)
    # the blocked first call, then ONE call for the seven callers that queued meanwhile
    assert inner.batches == [1, sum(i % 3 + 1 for i in range(1, 8))]
    assert signer.calls == 2
    keyring = KeyRing(inner.public_keys())
    for i, records in enumerate(results):
        assert not isinstance(records, Exception), records
        assert len(records) == i % 3 + 1
        for k, record in enumerate(records):
            assert valid(f"message {i}.{k}".encode(), record, keyring)
            assert not valid(f"message {i}.{k + 1}".encode(), record, keyring)


def test_batches_respect_max_batch(tmp_path: Path) -> None:
    inner = RecordingSigner(tmp_path / "k.pem")
    signer = BatchingSigner(inner, max_batch=4)
    results = _run_concurrently(signer, inner, 8)
    assert all(not isinstance(r, Exception) for r in results)
    assert inner.batches[0] == 1 and all(size <= 4 for size in inner.batches[1:])
    assert sum(inner.batches) == sum(i % 3 + 1 for i in range(8))


def test_an_error_reaches_every_caller_in_the_failed_batch(tmp_path: Path) -> None:
    inner = RecordingSigner(tmp_path / "k.pem")
    inner.fail_with = RuntimeError("transit is down")
    signer = BatchingSigner(inner)
    results = _run_concurrently(signer, inner, 5)
    assert all(isinstance(r, RuntimeError) and "transit is down" in str(r) for r in results)
    inner.fail_with = None
    assert len(signer.sign_many([b"after"])) == 1  # the signer recovers


def test_lone_caller_and_protocol(tmp_path: Path) -> None:
    inner = RecordingSigner(tmp_path / "k.pem")
    inner.release.set()
    signer = BatchingSigner(inner)
    record = signer.sign(b"alone")
    assert inner.batches == [1]
    assert valid(b"alone", record, KeyRing(signer.public_keys()))
    assert signer.key_id == inner.key_id and signer.algorithm == "ed25519"
    assert signer.sign_many([]) == []
    with pytest.raises(TypeError, match="sign_many"):
        BatchingSigner(object())


def test_real_transit_signatures_through_the_batcher(openbao_client: Any) -> None:
    from jupyter_qsecure.signing.transit import TransitSigner

    transit = TransitSigner(openbao_client, key_name="batching-test")
    transit.ensure_key()
    signer = BatchingSigner(transit)
    results: dict[int, list[SignatureRecord]] = {}

    def call(i: int) -> None:
        results[i] = signer.sign_many([f"job {i} manifest".encode(), f"job {i} result".encode()])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    keyring = KeyRing(transit.public_keys())
    assert sorted(results) == list(range(12))
    assert signer.calls <= 12
    for i, (manifest, result) in results.items():
        assert valid(f"job {i} manifest".encode(), manifest, keyring)
        assert valid(f"job {i} result".encode(), result, keyring)
        assert not valid(f"job {i} result".encode(), manifest, keyring)


def test_with_two_calls_allowed_a_second_caller_does_not_wait_for_the_first(
    tmp_path: Path,
) -> None:
    inner = RecordingSigner(tmp_path / "k.pem")
    signer = BatchingSigner(inner, max_concurrent=2)
    results: dict[int, Any] = {}
    first = threading.Thread(target=lambda: results.update({0: signer.sign(b"zero")}))
    first.start()
    assert inner.first_call.wait(30)  # the first call is in flight, blocked
    second = threading.Thread(target=lambda: results.update({1: signer.sign(b"one")}))
    second.start()
    second.join(30)
    assert not second.is_alive() and first.is_alive()  # done while the first still waits
    assert inner.batches == [1, 1]
    inner.release.set()
    first.join(30)
    keyring = KeyRing(inner.public_keys())
    assert valid(b"zero", results[0], keyring) and valid(b"one", results[1], keyring)
    with pytest.raises(ValueError, match="max_concurrent"):
        BatchingSigner(inner, max_concurrent=0)
