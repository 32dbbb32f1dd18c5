"""Encrypted recovery copies of content the save gate refused or redacted.

Envelope encryption: each copy is sealed with a fresh 256-bit data key (AES-256-GCM,
the copy's id as associated data); the data key is wrapped either by OpenBao/Vault
transit (the key-encryption key never leaves OpenBao) or by a local key file (0600)
when no OpenBao is configured. Records hold the path, the user, when, and the
finding types and keyed fingerprints: never the secrets, nor an unkeyed hash.
"""

from __future__ import annotations

import base64
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from .._keyfile import load_or_create_key
from ..vault.keywrap import RecoveryError, TransitKeyWrapper

if TYPE_CHECKING:
    from ..config import QSecure

__all__ = [
    "FindingDigest",
    "KeyWrapper",
    "LocalKeyWrapper",
    "RecoveryError",
    "RecoveryRecord",
    "RecoveryStore",
    "TransitKeyWrapper",
    "new_data_key",
    "recovery_store_from_settings",
    "seal",
    "unseal",
]


# ---- the cipher: AES-256-GCM, a 96-bit random nonce in front of the ciphertext ----------
def new_data_key() -> bytes:
    """A fresh 256-bit data key."""
    return AESGCM.generate_key(bit_length=256)


def seal(data_key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """``nonce || AES-256-GCM(plaintext)``, authenticated together with ``associated``."""
    nonce = os.urandom(12)
    return nonce + AESGCM(data_key).encrypt(nonce, plaintext, associated)


def unseal(data_key: bytes, sealed: bytes, associated: bytes) -> bytes:
    """The plaintext of :func:`seal`; raises ``InvalidTag`` if anything does not match."""
    return AESGCM(data_key).decrypt(sealed[:12], sealed[12:], associated)


class KeyWrapper(Protocol):
    name: str

    def wrap(self, data_key: bytes) -> str: ...

    def unwrap(self, wrapped: str) -> bytes: ...


class LocalKeyWrapper:
    """Wraps data keys with AES-256-GCM under a local key file (mode 0600)."""

    name = "local"

    def __init__(self, key_file: Path) -> None:
        self.key_file = Path(key_file)
        key = load_or_create_key(self.key_file, what="recovery key", error=RecoveryError)
        self._aead = AESGCM(key)

    def wrap(self, data_key: bytes) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(
            nonce + self._aead.encrypt(nonce, data_key, b"qsecure-dek")
        ).decode()

    def unwrap(self, wrapped: str) -> bytes:
        raw = base64.b64decode(wrapped)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], b"qsecure-dek")
        except InvalidTag:
            raise RecoveryError(
                "this recovery copy was sealed with a different local key",
                hint="use the data dir (and keys) of the server that refused the save",
            ) from None


class FindingDigest(BaseModel):
    model_config = ConfigDict(frozen=True)
    type: str
    #: Keyed fingerprint; records written before it existed hold "hashed_secret" instead.
    fingerprint: str = Field(validation_alias=AliasChoices("fingerprint", "hashed_secret"))


class RecoveryRecord(BaseModel):
    """What is known about a recovery copy without opening it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    path: str
    user: str
    created: str
    reason: str
    size: int
    wrapper: str
    wrapped_key: str
    findings: list[FindingDigest] = Field(default_factory=list)


class RecoveryStore:
    """Sealed copies in ``folder`` (0700): ``ID.json`` (record) and ``ID.bin`` (ciphertext)."""

    def __init__(self, folder: Path, wrapper: KeyWrapper) -> None:
        self.folder = Path(folder)
        self.wrapper = wrapper

    def _ensure_folder(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise RecoveryError(
                f"cannot create the recovery folder {self.folder}: {exc.strerror}",
                hint="make the data dir writable (QSECURE_DATA_DIR)",
            ) from None

    def save(
        self, content: bytes, *, path: str, user: str, reason: str, findings: list[Any]
    ) -> RecoveryRecord:
        """Seal ``content``; returns its record (the id is what the user restores with)."""
        self._ensure_folder()
        ident = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
        data_key = new_data_key()
        sealed = seal(data_key, content, ident.encode())
        record = RecoveryRecord(
            id=ident,
            path=path,
            user=user,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            reason=reason,
            size=len(content),
            wrapper=self.wrapper.name,
            wrapped_key=self.wrapper.wrap(data_key),
            findings=[FindingDigest(type=f.type, fingerprint=f.fingerprint) for f in findings],
        )
        self._write(self.folder / f"{ident}.bin", sealed)
        self._write(self.folder / f"{ident}.json", record.model_dump_json(indent=2).encode())
        return record

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def list(self) -> list[RecoveryRecord]:
        if not self.folder.is_dir():
            return []
        records = []
        for meta in sorted(self.folder.glob("*.json")):
            try:
                records.append(RecoveryRecord.model_validate_json(meta.read_bytes()))
            except (OSError, ValueError):
                continue
        return records

    def record(self, ident: str) -> RecoveryRecord:
        if not ident or "/" in ident or ident.startswith("."):
            raise RecoveryError(
                f"{ident!r} is not a recovery id", hint="see `jupyter qsecure recover list`"
            )
        try:
            return RecoveryRecord.model_validate_json((self.folder / f"{ident}.json").read_bytes())
        except FileNotFoundError:
            raise RecoveryError(
                f"no recovery copy {ident!r} in {self.folder}",
                hint="see `jupyter qsecure recover list` (and check QSECURE_DATA_DIR)",
            ) from None

    def open(self, ident: str) -> tuple[RecoveryRecord, bytes]:
        record = self.record(ident)
        if record.wrapper != self.wrapper.name:
            raise RecoveryError(
                f"recovery copy {ident} was sealed with the {record.wrapper} key, this server uses {self.wrapper.name}",
                hint="configure the same OpenBao (or the local key) as when the save was refused",
            )
        sealed = (self.folder / f"{ident}.bin").read_bytes()
        data_key = self.wrapper.unwrap(record.wrapped_key)
        try:
            content = unseal(data_key, sealed, ident.encode())
        except InvalidTag:
            raise RecoveryError(
                f"recovery copy {ident} is damaged (authentication failed)",
                hint="it cannot be opened; the ledger still records the refused save",
            ) from None
        return record, content

    def delete(self, ident: str) -> None:
        self.record(ident)
        for suffix in (".bin", ".json"):
            (self.folder / f"{ident}{suffix}").unlink(missing_ok=True)


def recovery_store_from_settings(settings: QSecure) -> RecoveryStore:
    folder = settings.data_path / "recovery"
    if settings.vault_addr:
        from ..vault.client import client_from_settings

        return RecoveryStore(
            folder,
            TransitKeyWrapper(client_from_settings(settings), mount=settings.ledger_transit_mount),
        )
    return RecoveryStore(folder, LocalKeyWrapper(settings.data_path / "keys" / "recovery.key"))
