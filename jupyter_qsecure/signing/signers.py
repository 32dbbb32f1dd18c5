"""Checkpoint signers and offline signature verification.

A signer turns the canonical bytes of a checkpoint into a :class:`SignatureRecord`.
Verification needs only public keys (:class:`PublicKeyRecord`, collected in a
:class:`KeyRing`), so a third party can check checkpoints offline.

Implemented here: a local Ed25519 key file (the embedded default) and a local
ML-DSA-65 key file (post-quantum co-signature). The OpenBao/Vault transit signer
lives in :mod:`jupyter_qsecure.signing.transit`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa
from pydantic import BaseModel, ConfigDict

from .._keyfile import create_private_file, read_private_file
from ..errors import SigningError

Algorithm = Literal["ed25519", "ml-dsa-65"]


class SignatureRecord(BaseModel):
    """One signature over a checkpoint's canonical bytes."""

    # defer_build: the schema is built on first use, not at import (CLI start-up, issue 15)
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    key_id: str
    key_version: int = 1
    algorithm: Algorithm
    signature: str  # standard base64 of the raw signature bytes


class PublicKeyRecord(BaseModel):
    """A public key (one version of a key) that may have signed checkpoints."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    key_id: str
    key_version: int = 1
    algorithm: Algorithm
    public_key: str  # standard base64 of the raw public key bytes
    source: str = "local"  # "local" or "transit:<addr-independent mount/name>"


class Signer(Protocol):
    """Anything that signs checkpoint bytes; private keys never leave the signer."""

    @property
    def key_id(self) -> str: ...

    @property
    def algorithm(self) -> Algorithm: ...

    def sign(self, message: bytes) -> SignatureRecord: ...

    def public_keys(self) -> list[PublicKeyRecord]:
        """Every version of this signer's public key (older versions keep verifying)."""
        ...


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def key_fingerprint(algorithm: str, public_key_raw: bytes) -> str:
    """A stable key id: algorithm and the first 16 hex digits of SHA-256 of the raw key."""
    return f"{algorithm}:{hashlib.sha256(public_key_raw).hexdigest()[:16]}"


# ---- key files ----------------------------------------------------------------------------
def _check_private_key_file(path: Path) -> bytes:
    """Read a private key file, refusing ones others can read (as ssh does)."""
    return read_private_file(
        path,
        what="signing key",
        error=SigningError,
        fix="point ledger_signing_key_file at a key file, or remove it to have one created",
    )


def _write_private_key_file(path: Path, data: bytes) -> None:
    """Create a key file with mode 0600 atomically; never overwrite an existing key."""
    create_private_file(
        path,
        data,
        what="signing key",
        error=SigningError,
        fix="make the folder writable or set ledger_signing_key_file to a writable path",
    )


class Ed25519KeySigner:
    """A ``Signer`` over an Ed25519 private key held in memory (how it is stored is the
    subclass's business: a PEM file, a passphrase-sealed approver key)."""

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key
        self._public_raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._key_id = key_fingerprint("ed25519", self._public_raw)

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def algorithm(self) -> Algorithm:
        return "ed25519"

    def sign(self, message: bytes) -> SignatureRecord:
        return SignatureRecord(
            key_id=self._key_id, algorithm="ed25519", signature=b64(self._key.sign(message))
        )

    def public_keys(self) -> list[PublicKeyRecord]:
        return [
            PublicKeyRecord(
                key_id=self._key_id, algorithm="ed25519", public_key=b64(self._public_raw)
            )
        ]


class Ed25519FileSigner(Ed25519KeySigner):
    """Ed25519 key in a PEM (PKCS#8) file, mode 0600, created on first use."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise SigningError(
                    f"signing key {self.path} does not exist",
                    hint="run any ledger write once to create it, or fix ledger_signing_key_file",
                )
            pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            _write_private_key_file(self.path, pem)
        data = _check_private_key_file(self.path)
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise SigningError(
                f"signing key {self.path} is not a readable PEM private key",
                hint="restore the key file from backup; a new key cannot sign old checkpoints",
            ) from exc
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise SigningError(
                f"signing key {self.path} is not an Ed25519 key",
                hint="use an Ed25519 PKCS#8 PEM file",
            )
        super().__init__(key)


class MLDSA65FileSigner:
    """ML-DSA-65 (FIPS 204) key: the 32-byte seed in a 0600 file, created on first use."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise SigningError(
                    f"post-quantum signing key {self.path} does not exist",
                    hint="run any ledger write once to create it, or disable ledger_pq_cosign",
                )
            seed = mldsa.MLDSA65PrivateKey.generate().private_bytes_raw()
            _write_private_key_file(self.path, b64(seed).encode("ascii") + b"\n")
        data = _check_private_key_file(self.path)
        try:
            key = mldsa.MLDSA65PrivateKey.from_seed_bytes(unb64(data.decode("ascii").strip()))
        except (ValueError, UnicodeDecodeError) as exc:
            raise SigningError(
                f"post-quantum signing key {self.path} is not a base64 ML-DSA-65 seed",
                hint="restore the key file from backup, or disable ledger_pq_cosign",
            ) from exc
        self._key = key
        self._public_raw = key.public_key().public_bytes_raw()
        self._key_id = key_fingerprint("ml-dsa-65", self._public_raw)

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def algorithm(self) -> Algorithm:
        return "ml-dsa-65"

    def sign(self, message: bytes) -> SignatureRecord:
        return SignatureRecord(
            key_id=self._key_id, algorithm="ml-dsa-65", signature=b64(self._key.sign(message))
        )

    def public_keys(self) -> list[PublicKeyRecord]:
        return [
            PublicKeyRecord(
                key_id=self._key_id, algorithm="ml-dsa-65", public_key=b64(self._public_raw)
            )
        ]


# ---- verification ------------------------------------------------------------------------
class KeyRing:
    """Trusted public keys, looked up by (key id, key version)."""

    def __init__(self, keys: Iterable[PublicKeyRecord] = ()) -> None:
        self._keys: dict[tuple[str, int], PublicKeyRecord] = {}
        for key in keys:
            self.add(key)

    def add(self, key: PublicKeyRecord) -> bool:
        """Add a key; returns True when it was not known yet."""
        ident = (key.key_id, key.key_version)
        known = self._keys.get(ident)
        if known is not None:
            if known.public_key != key.public_key or known.algorithm != key.algorithm:
                raise SigningError(
                    f"two different public keys claim id {key.key_id} version {key.key_version}",
                    hint="the keyring file or a key source has been tampered with; check both",
                )
            return False
        self._keys[ident] = key
        return True

    def get(self, key_id: str, key_version: int) -> PublicKeyRecord | None:
        return self._keys.get((key_id, key_version))

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._keys.values(), key=lambda k: (k.key_id, k.key_version)))

    def __len__(self) -> int:
        return len(self._keys)

    def to_json(self) -> str:
        return json.dumps({"keys": [k.model_dump() for k in self]}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        data = json.loads(text)
        return cls(PublicKeyRecord.model_validate(item) for item in data.get("keys", []))

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise SigningError(
                f"cannot read keyring {path}: {exc}",
                hint="restore the keyring file, or pass the public keys with --keys FILE",
            ) from exc

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(self.to_json(), encoding="utf-8")
        os.replace(tmp, path)


class SignatureProblem(Exception):
    """Why one signature did not verify: unknown key or bad signature."""

    def __init__(self, reason: Literal["unknown key", "bad signature"], detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(detail)


@functools.lru_cache(maxsize=64)
def _public_key(
    algorithm: str, public_key: str
) -> ed25519.Ed25519PublicKey | mldsa.MLDSA65PublicKey:
    """The key object of a public key record's algorithm and base64 key, loaded once per
    key: every verification of a job's manifest and result uses the same one or two keys,
    and loading one (decode, checks, a new OpenSSL object) costs about as much as the
    verification itself. Raises ``ValueError`` for a malformed key (not cached)."""
    raw = unb64(public_key)
    if algorithm == "ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    return mldsa.MLDSA65PublicKey.from_public_bytes(raw)


def verify_signature(record: SignatureRecord, message: bytes, keyring: KeyRing) -> None:
    """Raise :class:`SignatureProblem` unless ``record`` is a valid signature of ``message``."""
    key = keyring.get(record.key_id, record.key_version)
    if key is None:
        raise SignatureProblem(
            "unknown key",
            f"signed by unknown key {record.key_id} version {record.key_version}",
        )
    if key.algorithm != record.algorithm:
        raise SignatureProblem(
            "bad signature",
            f"signature claims {record.algorithm} but key {key.key_id} is {key.algorithm}",
        )
    try:
        signature = unb64(record.signature)
        _public_key(record.algorithm, key.public_key).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise SignatureProblem(
            "bad signature",
            f"{record.algorithm} signature by {record.key_id} v{record.key_version} does not verify",
        ) from exc
