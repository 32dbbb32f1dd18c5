"""The storage interface a ledger backend implements.

Stores know nothing of hashing or signing: they persist rows atomically and
serialise writers. Writers (threads or processes) take the store's write lock
in :meth:`LedgerStore.write`; everything inside one ``write()`` block commits
atomically (one durable commit) or not at all.

Tables (same in every backend, prefixed ``qsecure_``):
- ``meta(key, value)``: ``schema`` = ``jupyter-qsecure-ledger``, ``version``, ``origin``.
- ``entries(idx, leaf_hash, entry, kind, actor, ts)``: ``entry`` is the canonical JSON
  bytes that were hashed; kind/actor/ts are copies for filtering (checked by verify).
- ``nodes(level, idx, hash)``: interior nodes (level >= 1) of complete subtrees.
- ``checkpoints(seq, tree_size, root_hash, ts, body, signatures)``.
- ``public_keys(key_id, key_version, record)``: informational copy; verify trusts only
  keys obtained out of band (keyring file, OpenBao, ``--keys``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import NamedTuple, Protocol

SCHEMA_NAME = "jupyter-qsecure-ledger"
SCHEMA_VERSION = "1"


class EntryRow(NamedTuple):
    idx: int
    leaf_hash: bytes
    entry: bytes
    kind: str
    actor: str
    ts: str


class NodeRow(NamedTuple):
    level: int
    idx: int
    hash: bytes


class CheckpointRow(NamedTuple):
    seq: int
    tree_size: int
    root_hash: bytes
    ts: str
    body: bytes  # canonical JSON of the CheckpointBody (the signed bytes)
    signatures: str  # JSON list of SignatureRecord


@dataclass(frozen=True)
class EntryFilter:
    kinds: Sequence[str] = ()
    actors: Sequence[str] = ()
    since: str | None = None  # RFC 3339, inclusive
    until: str | None = None  # RFC 3339, exclusive
    last: int | None = None  # only the newest N that match
    start: int | None = None  # index range
    end: int | None = None


class ReadTx(Protocol):
    def size(self) -> int: ...

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Hashes of the given (level, index) nodes; level 0 = leaf hashes. Missing ones absent."""
        ...

    def iter_entries(self, start: int = 0, end: int | None = None) -> Iterator[EntryRow]:
        """Entries in index order (as stored, gaps included), streamed in batches."""
        ...

    def iter_nodes(self, level: int) -> Iterator[tuple[int, bytes]]:
        """Stored interior nodes of one level in index order."""
        ...

    def count_entries(self) -> int: ...

    def get_entry(self, idx: int) -> EntryRow | None: ...

    def query_entries(self, where: EntryFilter) -> list[EntryRow]: ...

    def checkpoints(self) -> list[CheckpointRow]: ...

    def last_checkpoint(self) -> CheckpointRow | None: ...

    def meta(self) -> dict[str, str]: ...

    def public_key_records(self) -> list[str]: ...


class WriteTx(ReadTx, Protocol):
    def insert(self, entries: Sequence[EntryRow], nodes: Sequence[NodeRow]) -> None: ...

    def insert_checkpoint(self, row: CheckpointRow) -> None: ...

    def put_public_key(self, key_id: str, key_version: int, record: str) -> None: ...


class LedgerStore(Protocol):
    #: The URL with any password removed, safe for messages and logs.
    display_url: str

    def read(self) -> AbstractContextManager[ReadTx]: ...

    def write(self) -> AbstractContextManager[WriteTx]:
        """Exclusive write transaction across threads and processes; commits durably on exit."""
        ...

    def close(self) -> None: ...
