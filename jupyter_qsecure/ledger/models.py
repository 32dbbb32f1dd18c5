"""Ledger data: entries, checkpoints and proofs (pydantic, validated on the way in)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..signing.canonical import canonical_json
from ..signing.signers import PublicKeyRecord, SignatureRecord

HEX64 = r"^[0-9a-f]{64}$"


class Entry(BaseModel):
    """One ledger record. ``leaf_hash`` = SHA-256(0x00 || canonical bytes) is not part of them."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0)
    timestamp: str
    kind: str
    actor: str
    correlation_id: str
    body: dict[str, Any]
    leaf_hash: str = Field(pattern=HEX64)

    @classmethod
    def from_bytes(cls, entry_bytes: bytes, leaf_hash: bytes) -> Entry:
        return cls(**json.loads(entry_bytes), leaf_hash=leaf_hash.hex())

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.model_dump(exclude={"leaf_hash"}))


class CheckpointBody(BaseModel):
    """What a checkpoint signs: canonical JSON of these four fields plus the origin."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    origin: str
    tree_size: int = Field(ge=0)
    root_hash: str = Field(pattern=HEX64)
    timestamp: str

    def signed_bytes(self) -> bytes:
        return canonical_json(self.model_dump())


class Checkpoint(BaseModel):
    """A signed tree head. ``seq`` orders checkpoints; sizes never decrease along it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(ge=0)
    body: CheckpointBody
    signatures: list[SignatureRecord]

    @property
    def tree_size(self) -> int:
        return self.body.tree_size

    @property
    def algorithms(self) -> list[str]:
        return sorted({s.algorithm for s in self.signatures})


class InclusionProof(BaseModel):
    """Everything a third party needs to check an entry offline with only public keys."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["jupyter-qsecure/inclusion-proof/v1"] = "jupyter-qsecure/inclusion-proof/v1"
    hash_algorithm: Literal["sha256-rfc9162"] = "sha256-rfc9162"
    index: int
    entry: str  # the entry's canonical JSON text, exactly the bytes that were hashed
    leaf_hash: str = Field(pattern=HEX64)
    tree_size: int
    path: list[str]  # hex hashes, RFC 9162 inclusion path
    checkpoint: Checkpoint
    public_keys: list[PublicKeyRecord] = Field(
        default_factory=list,
        description="Convenience copy; a verifier must trust keys obtained out of band.",
    )


class ConsistencyProof(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["jupyter-qsecure/consistency-proof/v1"] = "jupyter-qsecure/consistency-proof/v1"
    old: Checkpoint
    new: Checkpoint
    path: list[str]
