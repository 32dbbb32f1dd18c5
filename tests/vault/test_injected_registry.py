"""The fingerprint registry file: what it keeps (never values), expiry, keys, damage."""

from __future__ import annotations

import hashlib
import json
import secrets
import stat
import threading
from pathlib import Path

import pytest

from jupyter_qsecure.scan.fingerprints import REGISTRY_TYPE, Fingerprinter
from jupyter_qsecure.vault.injected import (
    LEASE_MARGIN_SECONDS,
    InjectedRegistry,
    InjectedRegistryError,
)
from jupyter_qsecure.vault.registry import ENDS_WITH_KERNEL

DAY = 86400.0
START = 1_750_000_000.0  # 2025-06-15


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def key() -> Fingerprinter:
    return Fingerprinter.ephemeral()


def registry(path: Path, key: Fingerprinter, clock: Clock, days: float = 30) -> InjectedRegistry:
    return InjectedRegistry(
        path / "fingerprints" / "injected.json",
        key,
        environment="dev",
        retention_seconds=days * DAY,
        clock=clock,
    )


def values() -> dict[str, str]:
    return {f"v{n}": secrets.token_urlsafe(n)[:n] for n in (32, 300, 2000)}


def all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_records_fingerprints_never_values(
    tmp_path: Path, key: Fingerprinter, clock: Clock
) -> None:
    injected = values()
    writer = registry(tmp_path, key, clock)
    writer.record(injected, {})
    stored = all_bytes(tmp_path)
    for value in injected.values():
        assert value.encode() not in stored
        assert hashlib.sha256(value.encode()).hexdigest().encode() not in stored
        assert key(value).encode() in stored
    assert stat.S_IMODE(writer.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(writer.path.parent.stat().st_mode) == 0o700
    entries = json.loads(writer.path.read_text())["entries"]
    assert {e["name"]: e["length"] for e in entries} == {"v32": 32, "v300": 300, "v2000": 2000}
    assert {e["first_injected"] for e in entries} == {"2025-06-15T15:06:40Z"}
    assert {e["environment"] for e in entries} == {"dev"}
    # a reader (the gate, the command line) finds each in a log
    reader = registry(tmp_path, key, clock)
    log = "".join(f"INFO {name}={value}\n" for name, value in injected.items())
    found = reader.index().find(log)
    assert [(d.type, d.secret_name, d.injected_on) for d in found] == [
        (REGISTRY_TYPE, name, "2025-06-15") for name in injected
    ]


def test_entries_expire_after_the_retention(
    tmp_path: Path, key: Fingerprinter, clock: Clock
) -> None:
    kv, other = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    writer = registry(tmp_path, key, clock, days=10)
    writer.record({"kv": kv}, {})
    reader = registry(tmp_path, key, clock, days=10)
    assert len(reader.index()) == 1
    clock.now += 9 * DAY
    writer.record({"kv": kv}, {})  # injected again: kept 10 days from now
    clock.now += 9 * DAY
    assert [d.secret_name for d in reader.index().find(kv)] == ["kv"]
    assert reader.index().find(kv)[0].injected_on == "2025-06-24"
    clock.now += 2 * DAY
    assert not reader.index() and reader.index().find(kv) == []
    writer.record({"other": other}, {})  # a write drops expired entries from the file
    assert key(kv) not in writer.path.read_text() and key(other) in writer.path.read_text()


def test_leased_values_expire_with_their_lease(
    tmp_path: Path, key: Fingerprinter, clock: Clock
) -> None:
    username, password, local = (secrets.token_urlsafe(20) for _ in range(3))
    writer = registry(tmp_path, key, clock)
    lease_end = clock.now + 300
    writer.record(
        {"db.username": username, "db.password": password, "_broker_token": local},
        {"db.username": lease_end, "db.password": lease_end, "_broker_token": ENDS_WITH_KERNEL},
    )
    index = writer.index()
    assert len(index) == 2 and index.find(local) == []  # dies with its kernel: not recorded
    clock.now = lease_end + LEASE_MARGIN_SECONDS - 1
    assert len(writer.index()) == 2
    clock.now = lease_end + LEASE_MARGIN_SECONDS + 1
    assert len(writer.index()) == 0


def test_unchanged_injections_do_not_rewrite_the_file(
    tmp_path: Path, key: Fingerprinter, clock: Clock
) -> None:
    injected = values()
    writer = registry(tmp_path, key, clock)
    writer.record(injected, {})
    before = writer.path.stat()
    clock.now += 600  # a renewal ten minutes later
    writer.record(injected, {})
    after = writer.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    clock.now += 2 * LEASE_MARGIN_SECONDS
    writer.record(injected, {})
    assert writer.path.stat().st_ino != before.st_ino


def test_entries_of_another_key_are_reported_not_matched(
    tmp_path: Path, key: Fingerprinter, clock: Clock
) -> None:
    value = secrets.token_urlsafe(24)
    registry(tmp_path, key, clock).record({"api": value}, {})
    other = registry(tmp_path, Fingerprinter.ephemeral(), clock)
    assert other.index().find(value) == []
    status = other.status()
    assert status.usable == 0 and status.unusable == 1
    assert status.other_keys == {"ephemeral": 1}  # where the key that made it lives


def test_concurrent_writers_lose_nothing(tmp_path: Path, key: Fingerprinter, clock: Clock) -> None:
    writers = [registry(tmp_path, key, clock) for _ in range(4)]
    injected = [{f"s{w}-{i}": secrets.token_urlsafe(24) for i in range(10)} for w in range(4)]

    def work(w: int) -> None:
        for name, value in injected[w].items():
            writers[w].record({name: value}, {})

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(registry(tmp_path, key, clock).index()) == 40


def test_a_damaged_file_refuses_readers_and_is_set_aside_by_the_writer(
    tmp_path: Path, key: Fingerprinter, clock: Clock
) -> None:
    writer = registry(tmp_path, key, clock)
    writer.path.parent.mkdir(parents=True)
    writer.path.write_text('{"version": 1, "entries": [{"fingerprint": "nope"}]}')
    with pytest.raises(InjectedRegistryError, match="damaged") as info:
        registry(tmp_path, key, clock).index()
    assert str(writer.path) in info.value.message and info.value.hint
    value = secrets.token_urlsafe(24)
    writer.record({"api": value}, {})
    assert len(list(writer.path.parent.glob("injected.json.damaged-*"))) == 1
    assert [d.secret_name for d in writer.index().find(value)] == ["api"]
