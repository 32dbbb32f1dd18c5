"""RFC 9162 hashing and proofs, against the RFC's recursive definitions and pymerkle."""

from __future__ import annotations

import hashlib

import pytest

from jupyter_qsecure.ledger.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_path,
    inclusion_path,
    largest_power_of_two_below,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH, transcribed literally."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = largest_power_of_two_below(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def rfc_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH, transcribed literally."""
    n = len(leaves)
    if n == 1:
        return []
    k = largest_power_of_two_below(n)
    if m < k:
        return rfc_path(m, leaves[:k]) + [mth(leaves[k:])]
    return rfc_path(m - k, leaves[k:]) + [mth(leaves[:k])]


def rfc_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(leaves)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return rfc_subproof(m, leaves[:k], complete) + [mth(leaves[k:])]
    return rfc_subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


def leaves_of(n: int) -> list[bytes]:
    return [leaf_hash(f"entry {i}".encode()) for i in range(n)]


def test_hashing_uses_rfc9162_domain_separation() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 31, 64, 65])
def test_frontier_root_and_nodes_match_rfc_definition(n: int) -> None:
    leaves = leaves_of(n)
    frontier = Frontier()
    for i, leaf in enumerate(leaves):
        for level, idx, digest in frontier.push(leaf):
            start = idx << level
            assert digest == mth(leaves[start : start + (1 << level)])
        assert frontier.root() == mth(leaves[: i + 1])


def test_proofs_match_rfc_for_every_size_up_to_40() -> None:
    for n in range(1, 41):
        leaves = leaves_of(n)
        root = mth(leaves)

        def subtree(a: int, b: int, leaves: list[bytes] = leaves) -> bytes:
            return mth(leaves[a:b])

        for m in range(n):
            path = inclusion_path(m, n, subtree)
            assert path == rfc_path(m, leaves)
            assert verify_inclusion(m, n, leaves[m], path, root)
            assert not verify_inclusion(m, n, leaf_hash(b"forged"), path, root)
            if n > 1:
                assert not verify_inclusion((m + 1) % n, n, leaves[m], path, root)
        for m in range(1, n + 1):
            proof = consistency_path(m, n, subtree)
            assert proof == (rfc_subproof(m, leaves, True) if m < n else [])
            assert verify_consistency(m, n, mth(leaves[:m]), root, proof)
            if m < n:
                forked = leaves[: n - 1] + [leaf_hash(b"rewritten")]
                assert not verify_consistency(m, n, mth(leaves[:m]), mth(forked), proof)


def test_root_agrees_with_pymerkle() -> None:
    pymerkle = pytest.importorskip("pymerkle")
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    entries = [f"record {i}".encode() for i in range(37)]
    for data in entries:
        tree.append_entry(data)
    ours = Frontier()
    for data in entries:
        ours.push(leaf_hash(data))
    assert tree.get_root(37) == ours.root()


def test_malformed_proofs_are_rejected_not_crashing() -> None:
    leaves = leaves_of(6)
    root = mth(leaves)
    path = rfc_path(2, leaves)
    assert not verify_inclusion(2, 6, leaves[2], path + [root], root)
    assert not verify_inclusion(2, 6, leaves[2], path[:-1], root)
    assert not verify_inclusion(7, 6, leaves[2], path, root)
    assert not verify_consistency(4, 3, root, root, [])
    assert not verify_consistency(3, 6, mth(leaves[:3]), root, [])
