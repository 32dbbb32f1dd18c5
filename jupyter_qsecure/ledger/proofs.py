"""Check proofs offline: needs only the proof JSON and trusted public keys."""

from __future__ import annotations

from ..signing.signers import KeyRing, SignatureProblem, verify_signature
from .merkle import leaf_hash, verify_consistency, verify_inclusion
from .models import Checkpoint, ConsistencyProof, InclusionProof


def _check_checkpoint(checkpoint: Checkpoint, keyring: KeyRing) -> list[str]:
    problems: list[str] = []
    valid = 0
    message = checkpoint.body.signed_bytes()
    for signature in checkpoint.signatures:
        try:
            verify_signature(signature, message, keyring)
            valid += 1
        except SignatureProblem as exc:
            problems.append(f"checkpoint {checkpoint.seq}: {exc.detail}")
    if not valid and not problems:
        problems.append(f"checkpoint {checkpoint.seq} carries no signature")
    return problems


def verify_inclusion_proof(proof: InclusionProof, keyring: KeyRing) -> list[str]:
    """Return the problems found (empty list = the entry is in the signed tree)."""
    problems = _check_checkpoint(proof.checkpoint, keyring)
    entry_bytes = proof.entry.encode("utf-8")
    leaf = leaf_hash(entry_bytes)
    if leaf.hex() != proof.leaf_hash:
        problems.append("the entry text does not hash to the proof's leaf hash")
    if proof.tree_size != proof.checkpoint.tree_size:
        problems.append("the proof's tree size differs from its checkpoint's")
    path = [bytes.fromhex(p) for p in proof.path]
    root = bytes.fromhex(proof.checkpoint.body.root_hash)
    if not verify_inclusion(proof.index, proof.tree_size, leaf, path, root):
        problems.append(
            f"the inclusion path does not lead from entry {proof.index} to the signed root"
        )
    return problems


def verify_consistency_proof(proof: ConsistencyProof, keyring: KeyRing) -> list[str]:
    problems = _check_checkpoint(proof.old, keyring) + _check_checkpoint(proof.new, keyring)
    if proof.old.body.origin != proof.new.body.origin:
        problems.append("the two checkpoints belong to different ledgers")
    ok = verify_consistency(
        proof.old.tree_size,
        proof.new.tree_size,
        bytes.fromhex(proof.old.body.root_hash),
        bytes.fromhex(proof.new.body.root_hash),
        [bytes.fromhex(p) for p in proof.path],
    )
    if not ok:
        problems.append(
            f"checkpoint {proof.new.seq} does not extend checkpoint {proof.old.seq}: the log was rewritten"
        )
    return problems
