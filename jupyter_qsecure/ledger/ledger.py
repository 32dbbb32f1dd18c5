"""The append-only, Merkle-tree audit ledger.

Appends from many threads are group-committed: a caller that finds nobody committing
commits at once (no timer); callers arriving meanwhile queue, and the first of them
commits all queued callers' entries in one transaction (one fsync) when the current
commit ends. Each caller's entries stay consecutive and all-or-nothing, and each caller
learns its own outcome: rows one caller's entries made fail are retried caller by
caller, so that failure reaches only that caller; a failed commit fails every caller it
carried. Across processes the store's write lock serialises writers; each writer
re-reads the tree's right edge when another process moved it.
"""

from __future__ import annotations

import functools
import getpass
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import InvalidEntry, LedgerConflict, SigningError
from ..signing.canonical import canonical_json
from ..signing.signers import KeyRing, PublicKeyRecord, SignatureRecord, Signer
from .kinds import validate_body
from .merkle import (
    EMPTY_ROOT,
    Frontier,
    complete_subtrees,
    consistency_path,
    fold_subtrees,
    inclusion_path,
    leaf_hash,
)
from .models import Checkpoint, CheckpointBody, ConsistencyProof, Entry, InclusionProof
from .secret_guard import check_no_secrets
from .store import CheckpointRow, EntryFilter, EntryRow, LedgerStore, NodeRow, ReadTx, open_store

log = logging.getLogger("jupyter_qsecure.ledger")


def utc_now() -> str:
    """RFC 3339 UTC timestamp with microseconds, e.g. 2026-11-22T01:02:03.456789Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(eq=False)
class _Pending:
    """One entry, validated, its body already canonical JSON."""

    kind: str
    body: bytes
    body_data: dict[str, Any]


@dataclass(eq=False)
class _Group:
    """One caller's entries: committed together, in order, or not at all."""

    items: list[_Pending]
    actor: bytes  # canonical JSON of each field, so the entry bytes are a concatenation
    correlation_id: bytes
    actor_text: str
    correlation_text: str
    done: bool = False
    wake: threading.Lock | None = None  # held while the caller waits in the queue
    entries: list[Entry] = field(default_factory=list)
    error: BaseException | None = None


class _RowsRefused(Exception):
    """Building or inserting a batch's rows failed (the transaction rolled back): possibly
    because of one caller's entries, so each caller is retried alone."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


@functools.lru_cache(maxsize=256)
def _json_string(text: str) -> bytes:
    return canonical_json(text)


def _entry_bytes(group: _Group, p: _Pending, index: int, timestamp: bytes) -> bytes:
    # Keys in RFC 8785 order: actor, body, correlation_id, index, kind, timestamp.
    return b"".join(
        (
            b'{"actor":',
            group.actor,
            b',"body":',
            p.body,
            b',"correlation_id":',
            group.correlation_id,
            b',"index":',
            str(index).encode(),
            b',"kind":',
            _json_string(p.kind),
            b',"timestamp":',
            timestamp,
            b"}",
        )
    )


@dataclass
class CheckpointPolicy:
    every_entries: int = 1000
    every_seconds: float = 60.0


@dataclass
class _Head:
    """What this process knows of the tree's right edge and the last checkpoint."""

    frontier: Frontier = field(default_factory=Frontier)
    checkpoint_size: int = 0
    checkpoint_time: float = field(default_factory=time.time)


class Ledger:
    """An append-only audit log with signed checkpoints; see :meth:`open`."""

    def __init__(
        self,
        store: LedgerStore,
        *,
        signers: Sequence[Signer] = (),
        keyring: KeyRing | None = None,
        keyring_path: Path | None = None,
        actor: str | None = None,
        checkpoint_policy: CheckpointPolicy | None = None,
    ) -> None:
        self.store = store
        self.signers = list(signers)
        self.keyring = keyring if keyring is not None else KeyRing()
        self.keyring_path = keyring_path
        self.default_actor = actor or f"local:{getpass.getuser()}"
        self.checkpoint_policy = checkpoint_policy or CheckpointPolicy()
        self.last_checkpoint_error: str | None = None
        with store.read() as tx:
            self.origin = tx.meta()["origin"]
        self._head = _Head()
        self._lock = threading.Lock()  # guards _queue and _committing
        #: Notified when a group is queued, for observers (tests) only: no caller waits
        #: for this (a queued caller waits on its own group's ``wake`` lock).
        self._queued = threading.Condition(self._lock)
        self._queue: list[_Group] = []
        self._committing = False
        #: Transactions committed and groups (callers) they carried, for tests and stats.
        self.commits = 0
        self.committed_groups = 0
        self._checkpoint_lock = threading.Lock()
        if self.signers:
            self._trust_own_keys()

    # ---- opening ---------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        settings: Any | None = None,
        signers: Sequence[Signer] | None = None,
        create: bool = True,
        actor: str | None = None,
    ) -> Ledger:
        """Open (or create) the ledger at ``url``; signers and keyring from ``settings``.

        ``settings`` is a :class:`jupyter_qsecure.config.QSecure`; by default it is read
        from the Jupyter config files and environment.
        """
        from ..config import load_settings
        from .keys import keyring_from_settings, signers_from_settings

        settings = settings if settings is not None else load_settings()
        store = open_store(url or settings.resolved_ledger_url(), create=create)
        try:
            chosen = list(signers) if signers is not None else signers_from_settings(settings)
            return cls(
                store,
                signers=chosen,
                keyring=keyring_from_settings(settings),
                keyring_path=settings.resolved_keyring_file(),
                actor=actor,
                checkpoint_policy=CheckpointPolicy(
                    settings.checkpoint_every_entries, settings.checkpoint_every_seconds
                ),
            )
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _trust_own_keys(self) -> None:
        added = False
        records: list[PublicKeyRecord] = []
        for signer in self.signers:
            records.extend(signer.public_keys())
        for record in records:
            added |= self.keyring.add(record)
        if added and self.keyring_path is not None:
            on_disk = KeyRing.load(self.keyring_path)
            for record in records:
                on_disk.add(record)
            on_disk.save(self.keyring_path)
        with self.store.write() as tx:
            for record in records:
                tx.put_public_key(record.key_id, record.key_version, record.model_dump_json())

    # ---- appending ---------------------------------------------------------------------------
    def _group(
        self, items: list[_Pending], actor: str | None, correlation_id: str | None
    ) -> _Group:
        actor_text = actor or self.default_actor
        cid = correlation_id or uuid.uuid4().hex
        for name, value in (("actor", actor_text), ("correlation_id", cid)):
            if not isinstance(value, str) or len(value) > 512:
                raise InvalidEntry(
                    f"ledger entry {name} must be a string of at most 512 characters",
                    hint=f"pass {name} as an identifier such as 'user:alice' or a UUID",
                )
        check_no_secrets({"actor": actor_text, "correlation_id": cid}, kind=items[0].kind)
        return _Group(
            items=items,
            actor=canonical_json(actor_text),
            correlation_id=canonical_json(cid),
            actor_text=actor_text,
            correlation_text=cid,
        )

    @staticmethod
    def _prepare(kind: str, body: Any) -> _Pending:
        if not isinstance(kind, str) or not kind:
            raise InvalidEntry("ledger entry kind must be a non-empty string")
        data = validate_body(kind, body)
        return _Pending(kind=kind, body=canonical_json(data), body_data=data)

    def append(
        self,
        kind: str,
        body: dict[str, Any],
        *,
        actor: str | None = None,
        correlation_id: str | None = None,
    ) -> Entry:
        """Append one entry; returns once it is durably committed."""
        return self.append_many([(kind, body)], actor=actor, correlation_id=correlation_id)[0]

    def append_many(
        self,
        items: Iterable[tuple[str, dict[str, Any]]],
        *,
        actor: str | None = None,
        correlation_id: str | None = None,
    ) -> list[Entry]:
        """Append several entries atomically, in order, with one durable commit.

        Returns once they are durably committed; raises if they were not (then none of
        them is in the ledger). Concurrent callers may share one transaction (group
        commit), but each learns only its own outcome.
        """
        batch = [self._prepare(kind, body) for kind, body in items]
        if not batch:
            return []
        group = self._group(batch, actor, correlation_id)
        self._submit(group)
        if group.error is not None:
            raise group.error
        return group.entries

    def _submit(self, group: _Group) -> None:
        """Commit ``group``, leading a group commit or waiting for the current leader's.

        No timer: a caller that finds nobody committing commits at once. Callers that
        arrive while a commit is under way queue; when it ends, the leader wakes the
        callers it committed and hands the lead to the first queued caller, which
        commits everything queued by then in one transaction. Each waiter sleeps on its
        own lock, so a commit wakes only the callers it concerns.
        """
        with self._lock:
            if self._committing:
                group.wake = threading.Lock()
                group.wake.acquire()
                self._queue.append(group)
                self._queued.notify_all()
            else:
                self._committing = True
                batch = [group]
        if group.wake is not None:
            group.wake.acquire()  # released once: our group is done, or we lead next
            if group.done:
                return
            with self._lock:  # the lead was handed to us: our group is still queued
                batch, self._queue = self._queue, []
        next_leader: _Group | None = None
        try:
            self._commit_groups(batch)
        finally:
            with self._lock:
                for done in batch:
                    done.done = True
                if self._queue:
                    next_leader = self._queue[0]  # _committing stays True: handed over
                else:
                    self._committing = False
            for done in batch:
                if done.wake is not None:
                    done.wake.release()
            if next_leader is not None:
                assert next_leader.wake is not None
                next_leader.wake.release()
        if any(g.error is None for g in batch):
            self.checkpoint_if_due()

    def _commit_groups(self, batch: list[_Group]) -> None:
        """Commit ``batch`` in one transaction; set each group's entries or error."""
        try:
            self._commit(batch)
            return
        except _RowsRefused as refused:
            if len(batch) == 1:
                batch[0].error = refused.cause
                return
        except BaseException as exc:  # nothing of the batch committed: every caller fails
            for group in batch:
                group.error = exc
            return
        # The rows of one caller may have caused the refusal: each alone, so a failure
        # reaches only the callers whose entries it affected.
        for group in batch:
            try:
                self._commit([group])
            except _RowsRefused as refused:
                group.error = refused.cause
            except BaseException as exc:
                group.error = exc

    def _load_frontier(self, tx: ReadTx, size: int) -> Frontier:
        keys = complete_subtrees(0, size)
        found = tx.get_nodes(keys)
        missing = [k for k in keys if k not in found]
        if missing:
            raise LedgerConflict(
                f"the ledger's stored tree is incomplete at size {size} (node {missing[0]} missing)",
                hint="run `jupyter qsecure audit verify` to find the damage",
            )
        frontier = Frontier(size=size)
        frontier.nodes = [(level, found[(level, idx)]) for level, idx in keys]
        return frontier

    def _commit(self, batch: list[_Group]) -> None:
        """One transaction (one durable commit) for every group of ``batch``, in order.

        Raises :class:`_RowsRefused` when building or inserting the rows failed, anything
        else when the transaction could not be opened or committed.
        """
        with self.store.write() as tx:
            size = tx.size()
            frontier = self._head.frontier
            last = None
            if frontier.size != size:  # another process appended since we last wrote
                frontier = self._load_frontier(tx, size)
                last = tx.last_checkpoint()
            else:
                frontier = frontier.copy()
            try:
                timestamp = utc_now()
                stamp = canonical_json(timestamp)
                entries: list[EntryRow] = []
                nodes: list[NodeRow] = []
                index = size
                for group in batch:
                    actor = group.actor_text
                    for pending in group.items:
                        data = _entry_bytes(group, pending, index, stamp)
                        leaf = leaf_hash(data)
                        entries.append(EntryRow(index, leaf, data, pending.kind, actor, timestamp))
                        for level, idx, digest in frontier.push(leaf):
                            nodes.append(NodeRow(level, idx, digest))
                        index += 1
                tx.insert(entries, nodes)
            except Exception as exc:
                raise _RowsRefused(exc) from exc
        self._head.frontier = frontier
        if last is not None:
            self._head.checkpoint_size = last.tree_size
        self.commits += 1
        self.committed_groups += len(batch)
        first = 0
        for group in batch:
            rows = entries[first : first + len(group.items)]
            first += len(rows)
            # Every field was validated on the way in; skip re-validation on the hot path.
            group.entries = [
                Entry.model_construct(
                    index=row.idx,
                    timestamp=timestamp,
                    kind=row.kind,
                    actor=row.actor,
                    correlation_id=group.correlation_text,
                    body=pending.body_data,
                    leaf_hash=row.leaf_hash.hex(),
                )
                for pending, row in zip(group.items, rows, strict=True)
            ]

    # ---- checkpoints -----------------------------------------------------------------------
    def checkpoint_if_due(self) -> Checkpoint | None:
        """Sign a checkpoint if N entries or T seconds have passed since the last one.

        A signer failure (e.g. OpenBao unreachable) never loses an append: the entry is
        already committed; the error is logged and kept in ``last_checkpoint_error``.
        """
        if not self.signers:
            return None
        head = self._head
        unsigned = head.frontier.size - head.checkpoint_size
        if unsigned <= 0:
            return None
        policy = self.checkpoint_policy
        if (
            unsigned < policy.every_entries
            and time.time() - head.checkpoint_time < policy.every_seconds
        ):
            return None
        if not self._checkpoint_lock.acquire(blocking=False):
            return None  # another thread is signing right now
        try:
            return self._checkpoint()
        except SigningError as exc:
            self.last_checkpoint_error = exc.message
            log.warning("could not sign a ledger checkpoint: %s", exc.message)
            return None
        finally:
            self._checkpoint_lock.release()

    def checkpoint(self) -> Checkpoint:
        """Sign a checkpoint of the current tree now (returns the latest if nothing changed)."""
        if not self.signers:
            raise SigningError(
                "this ledger has no signer configured, so it cannot sign checkpoints",
                hint="open it with settings (local key or OpenBao transit) or pass signers=",
            )
        with self._checkpoint_lock:
            return self._checkpoint()

    def _checkpoint(self) -> Checkpoint:
        with self.store.read() as tx:
            size = tx.size()
            frontier = self._load_frontier(tx, size) if size else Frontier()
            last = tx.last_checkpoint()
        if last is not None and last.tree_size >= size:
            return _checkpoint_from_row(last)
        body = CheckpointBody(
            origin=self.origin,
            tree_size=size,
            root_hash=(frontier.root() if size else EMPTY_ROOT).hex(),
            timestamp=utc_now(),
        )
        message = body.signed_bytes()
        signatures = [signer.sign(message) for signer in self.signers]
        if any(self.keyring.get(s.key_id, s.key_version) is None for s in signatures):
            self._trust_own_keys()  # a key was rotated since we opened: record the new version
        with self.store.write() as tx:
            latest = tx.last_checkpoint()
            if latest is not None and latest.tree_size >= size:
                chosen = latest  # another writer signed a newer head meanwhile
            else:
                chosen = CheckpointRow(
                    seq=0 if latest is None else latest.seq + 1,
                    tree_size=size,
                    root_hash=bytes.fromhex(body.root_hash),
                    ts=body.timestamp,
                    body=message,
                    signatures=json.dumps([s.model_dump() for s in signatures]),
                )
                tx.insert_checkpoint(chosen)
        self._head.checkpoint_size = chosen.tree_size
        self._head.checkpoint_time = time.time()
        self.last_checkpoint_error = None
        return _checkpoint_from_row(chosen)

    def checkpoints(self) -> list[Checkpoint]:
        with self.store.read() as tx:
            return [_checkpoint_from_row(row) for row in tx.checkpoints()]

    # ---- reading and proofs ------------------------------------------------------------------
    def size(self) -> int:
        with self.store.read() as tx:
            return tx.size()

    def entries(self, where: EntryFilter | None = None) -> list[Entry]:
        with self.store.read() as tx:
            rows = tx.query_entries(where or EntryFilter())
        return [Entry.from_bytes(row.entry, row.leaf_hash) for row in rows]

    def get(self, index: int) -> Entry:
        with self.store.read() as tx:
            row = tx.get_entry(index)
        if row is None:
            raise InvalidEntry(f"the ledger has no entry {index}")
        return Entry.from_bytes(row.entry, row.leaf_hash)

    def _subtree_oracle(self, tx: ReadTx) -> Any:
        cache: dict[tuple[int, int], bytes] = {}

        def subtree(start: int, end: int) -> bytes:
            keys = complete_subtrees(start, end)
            wanted = [k for k in keys if k not in cache]
            if wanted:
                cache.update(tx.get_nodes(wanted))
            try:
                return fold_subtrees([cache[k] for k in keys])
            except KeyError as exc:
                raise LedgerConflict(
                    f"the ledger's stored tree is missing node {exc.args[0]}",
                    hint="run `jupyter qsecure audit verify`",
                ) from None

        return subtree

    def prove(self, index: int, *, checkpoint: Checkpoint | None = None) -> InclusionProof:
        """Inclusion proof of entry ``index`` against a signed checkpoint.

        Uses the first checkpoint that covers the entry unless one is given; signs a new
        checkpoint if none covers it yet.
        """
        if checkpoint is None:
            covering = [c for c in self.checkpoints() if c.tree_size > index]
            checkpoint = covering[0] if covering else None
        if checkpoint is None:
            if index >= self.size():
                raise InvalidEntry(f"the ledger has no entry {index} (size {self.size()})")
            checkpoint = self.checkpoint()
        size = checkpoint.tree_size
        if not 0 <= index < size:
            raise InvalidEntry(f"entry {index} is not covered by a checkpoint of size {size}")
        with self.store.read() as tx:
            row = tx.get_entry(index)
            if row is None:
                raise InvalidEntry(f"the ledger has no entry {index}")
            path = inclusion_path(index, size, self._subtree_oracle(tx))
            keys = [PublicKeyRecord.model_validate_json(r) for r in tx.public_key_records()]
        return InclusionProof(
            index=index,
            entry=row.entry.decode("utf-8"),
            leaf_hash=row.leaf_hash.hex(),
            tree_size=size,
            path=[p.hex() for p in path],
            checkpoint=checkpoint,
            public_keys=keys,
        )

    def prove_consistency(self, old: Checkpoint, new: Checkpoint) -> ConsistencyProof:
        """RFC 9162 consistency proof that ``new``'s tree extends ``old``'s."""
        with self.store.read() as tx:
            path = consistency_path(old.tree_size, new.tree_size, self._subtree_oracle(tx))
        return ConsistencyProof(old=old, new=new, path=[p.hex() for p in path])

    def verify(self, *, keyring: KeyRing | None = None, progress: Any = None) -> Any:
        """Recompute every leaf, node and checkpoint root; see :mod:`.verify`."""
        from .verify import verify_ledger

        return verify_ledger(
            self.store, keyring if keyring is not None else self.keyring, progress=progress
        )


def _checkpoint_from_row(row: CheckpointRow) -> Checkpoint:
    return Checkpoint(
        seq=row.seq,
        body=CheckpointBody.model_validate_json(row.body),
        signatures=[SignatureRecord.model_validate(s) for s in json.loads(row.signatures)],
    )
