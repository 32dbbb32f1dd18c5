"""Tamper-evident audit ledger: an RFC 9162 Merkle log with signed checkpoints.

Public surface::

    from jupyter_qsecure.ledger import Ledger
    with Ledger.open("sqlite:////abs/path/ledger.db") as ledger:
        entry = ledger.append("note", {"text": "rotated the transit key"})
        ledger.checkpoint()
        report = ledger.verify()
        proof = ledger.prove(entry.index)

Proofs verify offline with :func:`verify_inclusion_proof` and only public keys.
"""

from ..signing.signers import KeyRing, PublicKeyRecord, SignatureRecord, Signer
from .kinds import known_kinds, register_kind
from .ledger import CheckpointPolicy, Ledger
from .models import Checkpoint, CheckpointBody, ConsistencyProof, Entry, InclusionProof
from .proofs import verify_consistency_proof, verify_inclusion_proof
from .store import EntryFilter
from .verify import Problem, VerifyReport

__all__ = [
    "Checkpoint",
    "CheckpointBody",
    "CheckpointPolicy",
    "ConsistencyProof",
    "Entry",
    "EntryFilter",
    "InclusionProof",
    "KeyRing",
    "Ledger",
    "Problem",
    "PublicKeyRecord",
    "SignatureRecord",
    "Signer",
    "VerifyReport",
    "known_kinds",
    "register_kind",
    "verify_consistency_proof",
    "verify_inclusion_proof",
]
