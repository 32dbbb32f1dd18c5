"""Signing, one home for every user of it: the ledger's checkpoints, ``%qsubmit``'s
manifests and results, review approvals and promotions.

Public surface::

    from jupyter_qsecure.signing import Ed25519FileSigner, KeyRing, canonical_json
    signer = Ed25519FileSigner(path)                     # local key (embedded default)
    signer = TransitSigner(client, key_name="qsecure-…")  # key that never leaves OpenBao
    record = signer.sign(canonical_json(statement))       # SignatureRecord
    verify_signature(record, message, keyring)            # raises SignatureProblem

Modules: :mod:`.signers` (the ``Signer`` protocol, local Ed25519 and ML-DSA-65 keys,
``KeyRing``, signature records), :mod:`.transit` (OpenBao transit), :mod:`.batching`
(many signatures per transit call), :mod:`.canonical` (RFC 8785 JSON).
"""

from .batching import BatchingSigner
from .canonical import canonical_json
from .signers import (
    Ed25519FileSigner,
    KeyRing,
    MLDSA65FileSigner,
    PublicKeyRecord,
    SignatureProblem,
    SignatureRecord,
    Signer,
    verify_signature,
)
from .transit import TransitSigner

__all__ = [
    "BatchingSigner",
    "Ed25519FileSigner",
    "KeyRing",
    "MLDSA65FileSigner",
    "PublicKeyRecord",
    "SignatureProblem",
    "SignatureRecord",
    "Signer",
    "TransitSigner",
    "canonical_json",
    "verify_signature",
]
