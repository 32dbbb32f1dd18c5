"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proofs.

leaf hash = SHA-256(0x00 || entry bytes); interior node = SHA-256(0x01 || left || right);
the tree over n leaves splits at the largest power of two below n (RFC 9162 §2.1.1).

Written here rather than taken from a library: pymerkle (the closest) keeps its
own storage and cannot serve proofs from our database's node table; the
algorithms are short and checked in the tests against pymerkle and a direct
transcription of the RFC's recursive definitions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeKey = tuple[int, int]  # (level, index): level L covers leaves [index*2^L, (index+1)*2^L)


def leaf_hash(entry_bytes: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry_bytes).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def complete_subtrees(start: int, end: int) -> list[NodeKey]:
    """The aligned complete subtrees that make up ``[start, end)``, left to right.

    Valid for the ranges RFC 9162's recursion produces (``start`` aligned to the
    largest power of two that fits), which includes every prefix ``[0, n)``.
    """
    keys: list[NodeKey] = []
    while start < end:
        size = end - start
        if size & (size - 1) == 0:
            level = size.bit_length() - 1
            keys.append((level, start >> level))
            break
        k = largest_power_of_two_below(size)
        level = k.bit_length() - 1
        keys.append((level, start >> level))
        start += k
    return keys


def fold_subtrees(hashes: Sequence[bytes]) -> bytes:
    """Root of a range from its complete subtrees (left to right): fold from the right."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


@dataclass
class Frontier:
    """The right edge of a tree: its complete subtrees, left to right. O(log n) state."""

    size: int = 0
    nodes: list[tuple[int, bytes]] = field(default_factory=list)  # (level, hash)

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.nodes))

    def push(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Append a leaf hash; return the interior nodes it completes as (level, index, hash)."""
        nodes = self.nodes
        nodes.append((0, leaf))
        self.size += 1
        completed: list[tuple[int, int, bytes]] = []
        while len(nodes) >= 2 and nodes[-1][0] == nodes[-2][0]:
            level, right = nodes.pop()
            _, left = nodes.pop()
            parent = node_hash(left, right)
            level += 1
            nodes.append((level, parent))
            completed.append((level, (self.size >> level) - 1, parent))
        return completed

    def root(self) -> bytes:
        return fold_subtrees([h for _, h in self.nodes])


# ---- proofs, generated from a subtree-hash oracle ------------------------------------------
SubtreeHash = Callable[[int, int], bytes]  # hash of the leaves [start, end)


def inclusion_path(index: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n]), leaf ``index`` in a tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path: list[bytes] = []
    start, end, m = 0, size, index
    while end - start > 1:
        k = largest_power_of_two_below(end - start)
        if m < k:
            path.append(subtree(start + k, end))
            end = start + k
        else:
            path.append(subtree(start, start + k))
            start += k
            m -= k
    path.reverse()
    return path


def consistency_path(old_size: int, new_size: int, subtree: SubtreeHash) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[n]) between tree sizes ``old_size`` <= ``new_size``."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"cannot prove consistency from size {old_size} to {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    proof: list[bytes] = []
    start, end, m, complete = 0, new_size, old_size, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                proof.append(subtree(start, end))
            break
        k = largest_power_of_two_below(n)
        if m <= k:
            proof.append(subtree(start + k, end))
            end = start + k
        else:
            proof.append(subtree(start, start + k))
            start += k
            m -= k
            complete = False
    proof.reverse()
    return proof


# ---- verification (needs only hashes) ------------------------------------------------------
def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root implied by an inclusion path; raises ValueError if malformed."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ValueError("inclusion path is longer than the tree allows")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("inclusion path is shorter than the tree requires")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    try:
        return root_from_inclusion(index, size, leaf, path) == root
    except ValueError:
        return False


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: does ``path`` prove the tree of ``new_size`` extends ``old_size``?"""
    if old_size > new_size or old_size < 0:
        return False
    if old_size == new_size:
        return not path and old_root == new_root
    if old_size == 0:
        return not path  # every tree extends the empty tree
    if not path:
        return False
    proof = list(path)
    if old_size & (old_size - 1) == 0:
        proof.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
