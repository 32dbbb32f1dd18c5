"""Offline verification of a whole ledger.

One streaming pass in index order recomputes every leaf hash from the stored
entry bytes, every interior node, and the root at every checkpoint's size; every
checkpoint signature is checked against a trusted keyring. Problems are reported
in index order with the first bad index and what is wrong:

- ``edited``: an entry's bytes no longer hash to its recorded leaf hash;
- ``tree``: a stored interior node disagrees with the recomputed one (an entry edited
  and its leaf hash rewritten): the range of entries it covers is reported;
- ``deleted`` / ``reordered``: a gap in the indices, or an entry at a position other
  than the index it was hashed with;
- ``root``: a checkpoint's signed root disagrees with the entries it covers;
- ``truncated``: a checkpoint covers entries that are no longer there;
- ``bad signature`` / ``unknown key``: a checkpoint's signature is invalid, or made by a
  key outside the trusted keyring.

Deliberately not detectable from the database alone: an attacker who deletes the
tail *and* every checkpoint covering it. Keep a copy of a recent checkpoint outside
the database (``audit verify --checkpoint FILE``) to close that gap.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..signing.signers import KeyRing, SignatureProblem, SignatureRecord, verify_signature
from .merkle import Frontier
from .models import Checkpoint, CheckpointBody
from .store import EntryRow, LedgerStore

MAX_PROBLEMS = 50
#: ``progress`` is called every this many entries, and once at the end.
PROGRESS_EVERY = 10_000


@dataclass(frozen=True)
class Problem:
    kind: str
    message: str
    index: int | None = None
    checkpoint_seq: int | None = None


@dataclass
class VerifyReport:
    entries: int = 0
    checkpoints: int = 0
    signatures: int = 0
    algorithms: set[str] = field(default_factory=set)
    unsigned_tail: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def add(self, problem: Problem) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "signatures": self.signatures,
            "algorithms": sorted(self.algorithms),
            "unsigned_tail": self.unsigned_tail,
            "seconds": round(self.seconds, 3),
            "problems": [p.__dict__ for p in self.problems],
        }


def _check_checkpoints(
    rows: list[Any], origin: str, keyring: KeyRing, report: VerifyReport
) -> list[Checkpoint]:
    """Parse checkpoints, check order, origin and signatures; return the parsed ones."""
    parsed: list[Checkpoint] = []
    previous: Checkpoint | None = None
    for row in rows:
        try:
            body = CheckpointBody.model_validate_json(row.body)
            signatures = [SignatureRecord.model_validate(s) for s in json.loads(row.signatures)]
        except (ValidationError, ValueError):
            report.add(
                Problem(
                    "malformed", f"checkpoint {row.seq} cannot be parsed", checkpoint_seq=row.seq
                )
            )
            continue
        checkpoint = Checkpoint(seq=row.seq, body=body, signatures=signatures)
        where = f"checkpoint {row.seq} (size {body.tree_size}, {body.timestamp})"
        if body.origin != origin:
            report.add(
                Problem(
                    "origin",
                    f"{where} belongs to another ledger ({body.origin})",
                    checkpoint_seq=row.seq,
                )
            )
        if row.tree_size != body.tree_size or _as_bytes(row.root_hash).hex() != body.root_hash:
            report.add(
                Problem(
                    "malformed",
                    f"{where}: its size/root columns differ from the signed body",
                    checkpoint_seq=row.seq,
                )
            )
        if previous is not None and body.tree_size < previous.tree_size:
            report.add(
                Problem(
                    "rolled back",
                    f"{where} is smaller than checkpoint {previous.seq} (size {previous.tree_size}): "
                    "the ledger was rolled back",
                    checkpoint_seq=row.seq,
                )
            )
        if not signatures:
            report.add(
                Problem("bad signature", f"{where} carries no signature", checkpoint_seq=row.seq)
            )
        message = _as_bytes(row.body)
        for signature in signatures:
            try:
                verify_signature(signature, message, keyring)
            except SignatureProblem as exc:
                report.add(Problem(exc.reason, f"{where}: {exc.detail}", checkpoint_seq=row.seq))
            else:
                report.signatures += 1
                report.algorithms.add(signature.algorithm)
        parsed.append(checkpoint)
        previous = checkpoint
    report.checkpoints = len(parsed)
    return parsed


def _as_bytes(value: object) -> bytes:
    """Stored blobs as bytes, whatever type a tampered column now holds."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return repr(value).encode("utf-8")


class _FieldMatcher:
    """Fast check that an entry's bytes carry its position and its kind/actor/time columns.

    Canonical entries end with ``,"index":N,"kind":K,"timestamp":T}`` and start with
    ``{"actor":A,`` (RFC 8785 key order); JSON strings cannot contain an unescaped
    quote, so these byte patterns cannot be forged from inside the body. Anything
    that does not match exactly goes to the slow, precise path.
    """

    def __init__(self) -> None:
        self._strings: dict[str, bytes] = {}

    def _encode(self, text: object) -> bytes:
        if not isinstance(text, str):
            return b"\x00"  # never matches: a tampered column of another type
        cached = self._strings.get(text)
        if cached is None:
            cached = json.dumps(text, ensure_ascii=False).encode("utf-8")
            if len(self._strings) < 10_000:
                self._strings[text] = cached
        return cached

    def __call__(self, entry: bytes, idx: int, kind: object, actor: object, ts: object) -> bool:
        if not isinstance(ts, str) or '"' in ts or "\\" in ts:
            return False
        tail = b',"index":%d,"kind":%s,"timestamp":"%s"}' % (idx, self._encode(kind), ts.encode())
        return entry.endswith(tail) and entry.startswith(b'{"actor":' + self._encode(actor) + b",")


def _describe_field_mismatch(entry_bytes: bytes, row: EntryRow) -> Problem:
    idx = row.idx
    try:
        fields = json.loads(entry_bytes)
        claimed = fields["index"]
    except (ValueError, KeyError, TypeError):
        return Problem(
            "malformed", f"entry {idx} is not a ledger entry (unparseable JSON)", index=idx
        )
    if claimed != idx:
        return Problem(
            "reordered",
            f"position {idx} holds the entry recorded as index {claimed} "
            "(entries swapped or reordered)",
            index=idx,
        )
    if (fields.get("kind"), fields.get("actor"), fields.get("timestamp")) != (
        row.kind,
        row.actor,
        row.ts,
    ):
        return Problem(
            "edited", f"entry {idx}: its kind/actor/time columns were altered", index=idx
        )
    return Problem("malformed", f"entry {idx} is not in canonical form", index=idx)


def _node_cursor(iterator: Iterator[tuple[int, bytes]]) -> Callable[[], tuple[int, bytes] | None]:
    def take() -> tuple[int, bytes] | None:
        return next(iterator, None)

    return take


def verify_ledger(
    store: LedgerStore,
    keyring: KeyRing,
    *,
    progress: Callable[[int], None] | None = None,
    trusted: list[Checkpoint] | None = None,
) -> VerifyReport:
    """Verify everything; ``progress`` is called with the number of entries done so far."""
    started = time.perf_counter()
    report = VerifyReport()
    with store.read() as tx:
        origin = tx.meta()["origin"]
        checkpoints = _check_checkpoints(tx.checkpoints(), origin, keyring, report)
        for extra in trusted or []:
            if extra.body.origin != origin:
                report.add(
                    Problem(
                        "origin",
                        f"the trusted checkpoint belongs to another ledger ({extra.body.origin})",
                    )
                )
            else:
                checkpoints.append(extra)
        by_size: dict[int, list[Checkpoint]] = {}
        for checkpoint in checkpoints:
            by_size.setdefault(checkpoint.tree_size, []).append(checkpoint)
        cursors: dict[int, Callable[[], tuple[int, bytes] | None]] = {}
        frontier = Frontier()
        sha256 = hashlib.sha256
        fields_match = _FieldMatcher()
        expected = 0
        last_good_size = 0
        structural = False
        check_nodes = True
        for row in tx.iter_entries():
            idx = row.idx
            if idx != expected:
                if idx > expected:
                    report.add(
                        Problem(
                            "deleted",
                            f"entries {expected}..{idx - 1} are missing (deleted)",
                            index=expected,
                        )
                    )
                else:
                    report.add(Problem("reordered", f"entry {idx} appears twice", index=idx))
                structural = True
                break
            entry_bytes = row.entry
            if type(entry_bytes) is not bytes:
                entry_bytes = _as_bytes(entry_bytes)
            leaf = sha256(b"\x00" + entry_bytes).digest()
            stored_leaf = row.leaf_hash
            if type(stored_leaf) is not bytes:
                stored_leaf = _as_bytes(stored_leaf)
            if leaf != stored_leaf:
                report.add(
                    Problem(
                        "edited",
                        f"entry {idx}: its content no longer matches its leaf hash (edited entry)",
                        index=idx,
                    )
                )
                leaf = stored_leaf  # pinpointed; check the rest against what was recorded
            if not fields_match(entry_bytes, idx, row.kind, row.actor, row.ts):
                problem = _describe_field_mismatch(entry_bytes, row)
                report.add(problem)
                if problem.kind == "reordered":
                    structural = True
                    break
            completed = frontier.push(leaf)
            if check_nodes:
                for level, node_idx, digest in completed:
                    take = cursors.get(level)
                    if take is None:
                        take = cursors[level] = _node_cursor(tx.iter_nodes(level))
                    stored = take()
                    if stored is None or stored[0] != node_idx or _as_bytes(stored[1]) != digest:
                        first = node_idx << level
                        report.add(
                            Problem(
                                "tree",
                                f"entries {first}..{first + (1 << level) - 1}: the stored tree disagrees "
                                "with the entries (an entry was edited and its hash rewritten)",
                                index=first,
                            )
                        )
                        check_nodes = False  # every node above it differs too; report the first
                        break
            expected += 1
            if expected in by_size:
                root = frontier.root().hex()
                for checkpoint in by_size[expected]:
                    if checkpoint.body.root_hash != root:
                        report.add(
                            Problem(
                                "root",
                                f"checkpoint {checkpoint.seq} (size {expected}, signed {checkpoint.body.timestamp}) "
                                f"does not match entries {last_good_size}..{expected - 1}: one of them was "
                                "changed, inserted or removed after it was signed",
                                index=last_good_size,
                                checkpoint_seq=checkpoint.seq,
                            )
                        )
                last_good_size = expected
            if progress is not None and expected % PROGRESS_EVERY == 0:
                progress(expected)
        report.entries = expected
        if not structural:
            if 0 in by_size:
                for checkpoint in by_size[0]:
                    if checkpoint.body.root_hash != hashlib.sha256(b"").hexdigest():
                        report.add(
                            Problem(
                                "root",
                                f"checkpoint {checkpoint.seq} of the empty tree has a wrong root",
                                checkpoint_seq=checkpoint.seq,
                            )
                        )
            for checkpoint in checkpoints:
                if checkpoint.tree_size > expected:
                    report.add(
                        Problem(
                            "truncated",
                            f"checkpoint {checkpoint.seq} (signed {checkpoint.body.timestamp}) covers "
                            f"{checkpoint.tree_size} entries but the ledger ends at {expected}: entries "
                            f"{expected}..{checkpoint.tree_size - 1} were deleted (truncated)",
                            index=expected,
                            checkpoint_seq=checkpoint.seq,
                        )
                    )
                    break
    if progress is not None:
        progress(report.entries)
    signed = max((c.tree_size for c in checkpoints), default=0)
    report.unsigned_tail = max(0, report.entries - signed)
    report.seconds = time.perf_counter() - started
    return report
