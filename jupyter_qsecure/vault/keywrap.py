"""Wrapping the data keys of recovery copies with an OpenBao/Vault transit key.

The save gate's recovery copies (:mod:`jupyter_qsecure.gate.recovery`) are sealed with
a fresh data key each; :class:`TransitKeyWrapper` encrypts that data key with a transit
key (``aes256-gcm96``) that never leaves OpenBao, and decrypts it to open a copy.
Errors name the key and what to check, never a key or a token.
"""

from __future__ import annotations

import base64
from typing import Any

from ..errors import QSecureError

__all__ = ["RecoveryError", "TransitKeyWrapper"]


class RecoveryError(QSecureError):
    """A recovery copy could not be written, found or opened."""


class TransitKeyWrapper:
    """Wraps data keys with an OpenBao/Vault transit key (aes256-gcm96), created if missing."""

    name = "transit"

    def __init__(
        self, client: Any, *, mount: str = "transit", key_name: str = "qsecure-recovery"
    ) -> None:
        self._client = client
        self.mount = mount
        self.key_name = key_name
        try:
            transit = client.secrets.transit
            try:
                transit.read_key(name=key_name, mount_point=mount)
            except Exception:  # missing: create it (errors surface below on use)
                transit.create_key(name=key_name, key_type="aes256-gcm96", mount_point=mount)
        except Exception as exc:
            raise RecoveryError(
                f"cannot use transit key {mount}/{key_name} for recovery copies ({type(exc).__name__})",
                hint="check OpenBao is reachable and the server's token may use transit/encrypt and decrypt",
            ) from None

    def wrap(self, data_key: bytes) -> str:
        try:
            response = self._client.secrets.transit.encrypt_data(
                name=self.key_name,
                plaintext=base64.b64encode(data_key).decode(),
                mount_point=self.mount,
            )
        except Exception as exc:
            raise RecoveryError(
                f"OpenBao transit could not seal the recovery copy ({type(exc).__name__})",
                hint="check OpenBao is reachable and unsealed",
            ) from None
        return str(response["data"]["ciphertext"])

    def unwrap(self, wrapped: str) -> bytes:
        try:
            response = self._client.secrets.transit.decrypt_data(
                name=self.key_name, ciphertext=wrapped, mount_point=self.mount
            )
        except Exception as exc:
            raise RecoveryError(
                f"OpenBao transit could not open the recovery copy ({type(exc).__name__})",
                hint="check OpenBao is reachable and your token may use transit/decrypt",
            ) from None
        return base64.b64decode(response["data"]["plaintext"])
