"""Checkpoint signer backed by an OpenBao/Vault transit key.

The private key never leaves OpenBao: this module only sends the bytes to sign
and reads back signatures and *public* keys. Each signature records the transit
key version that made it, and :meth:`TransitSigner.public_keys` returns the
public key of every live version, so checkpoints signed before a
``rotate_key`` keep verifying offline (see
:func:`jupyter_qsecure.signing.signers.verify_signature`).

Deliberately not supported:

* ``prehashed`` signing: broken upstream for ed25519 in OpenBao transit; the
  raw message is sent instead (checkpoint bodies are small).
* key types other than ed25519: the offline verifier would need to reproduce
  transit's hashing and marshaling choices for ECDSA/RSA exactly.
* exportable keys: ``ensure_key`` creates keys whose private part cannot be
  exported (public keys are always readable for asymmetric transit keys).

Policy the signing identity needs (mount ``transit``, key ``qsecure-ledger``)::

    path "transit/sign/qsecure-ledger" { capabilities = ["update"] }
    path "transit/keys/qsecure-ledger" { capabilities = ["read"] }

``ensure_key()`` also needs ``create`` and ``update`` on the ``keys`` path and
``rotate()`` needs ``update`` on ``transit/keys/qsecure-ledger/rotate``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests

from ..errors import SigningError
from ..vault.client import VaultClient, VaultConnection
from ..vault.transport import VaultJSON
from .signers import Algorithm, PublicKeyRecord, SignatureRecord, b64

__all__ = ["DEFAULT_KEY_NAME", "DEFAULT_MOUNT", "MAX_BATCH", "TransitSigner"]

DEFAULT_MOUNT = "transit"
DEFAULT_KEY_NAME = "qsecure-ledger"
#: Transit rejects very large batch requests; stay well below that.
MAX_BATCH = 200
_SIGNATURE = re.compile(r"^[a-z]+:v(\d+):([A-Za-z0-9+/=]+)$")

T = TypeVar("T")


class TransitSigner:
    """Ed25519 signatures from an OpenBao/Vault transit key (implements ``Signer``).

    Pass an authenticated ``hvac.Client``, or ``addr`` and ``token`` to build one.
    """

    def __init__(
        self,
        client: hvac.Client | None = None,
        *,
        addr: str | None = None,
        token: str | None = None,
        mount: str = DEFAULT_MOUNT,
        key_name: str = DEFAULT_KEY_NAME,
        timeout: float = 10.0,
    ) -> None:
        if client is None:
            if not addr:
                raise SigningError(
                    "TransitSigner needs an hvac client or an OpenBao/Vault address",
                    hint="set vault_addr (or BAO_ADDR / VAULT_ADDR) and a token",
                )
            client = VaultConnection.from_environment(addr, timeout=timeout).client(token)
        self._client = client
        # transit signing runs for every job: direct connections built here (so with
        # known TLS settings) sign over a urllib3 pool instead of hvac and requests
        self._fast = (
            VaultJSON(client.connection)
            if isinstance(client, VaultClient) and client.connection.direct
            else None
        )
        self.mount = mount.strip("/")
        self.key_name = key_name
        if not self.mount or not self.key_name or "/" in self.key_name:
            raise SigningError(
                f"invalid transit mount {mount!r} or key name {key_name!r}",
                hint="use a mount path such as 'transit' and a key name without '/'",
            )

    # ---- Signer protocol -----------------------------------------------------------------
    @property
    def key_id(self) -> str:
        return f"transit:{self.mount}/{self.key_name}"

    @property
    def algorithm(self) -> Algorithm:
        return "ed25519"

    @property
    def addr(self) -> str:
        return str(getattr(self._client, "url", "") or "")

    def sign(self, message: bytes) -> SignatureRecord:
        """Sign ``message`` with the latest key version."""
        return self.sign_many([message])[0]

    def sign_many(self, messages: Iterable[bytes]) -> list[SignatureRecord]:
        """Sign many messages, in batches of at most :data:`MAX_BATCH` requests each."""
        items = list(messages)
        records: list[SignatureRecord] = []
        for start in range(0, len(items), MAX_BATCH):
            chunk = items[start : start + MAX_BATCH]
            batch = [{"input": b64(message)} for message in chunk]
            response = self._call(
                "batch sign with",
                lambda batch=batch: self._post(  # type: ignore[misc]
                    f"{self.mount}/sign/{self.key_name}", {"batch_input": batch}
                ),
            )
            results = _data(response).get("batch_results")
            if not isinstance(results, list) or len(results) != len(chunk):
                raise SigningError(
                    f"transit key {self.key_id} at {self.addr} returned a malformed batch reply",
                    hint="check that the server is OpenBao/Vault with the transit engine",
                )
            for offset, result in enumerate(results):
                if not isinstance(result, dict) or result.get("error"):
                    error = result.get("error") if isinstance(result, dict) else result
                    raise SigningError(
                        f"transit key {self.key_id} refused message {start + offset} of the "
                        f"batch: {self._scrub(str(error))}",
                        hint="retry; if it persists, sign the messages one by one to find it",
                    )
                records.append(self._record(result.get("signature")))
        return records

    def public_keys(self) -> list[PublicKeyRecord]:
        """The public key of every available version of the transit key."""
        data = self._read_key()
        keys = data.get("keys")
        if not isinstance(keys, dict) or not keys:
            raise SigningError(
                f"transit key {self.key_id} at {self.addr} has no public keys",
                hint="the key must be an asymmetric (ed25519) transit key",
            )
        records = []
        for version, info in sorted(keys.items(), key=lambda item: int(item[0])):
            public = info.get("public_key") if isinstance(info, dict) else None
            if not public:
                raise SigningError(
                    f"transit key {self.key_id} version {version} has no public key",
                    hint="the key must be an asymmetric (ed25519) transit key",
                )
            try:
                records.append(
                    PublicKeyRecord(
                        key_id=self.key_id,
                        key_version=int(version),
                        algorithm="ed25519",
                        public_key=public,
                        source="transit",
                    )
                )
            except ValueError as exc:
                raise SigningError(
                    f"transit key {self.key_id} version {version} returned a malformed public key",
                    hint="check that the key is an ed25519 transit key",
                ) from exc
        return records

    # ---- key management ----------------------------------------------------------------------
    def ensure_key(self) -> None:
        """Create the ed25519 transit key if it does not exist (non-exportable)."""
        try:
            self._read_key()
            return
        except _MissingKey:
            pass
        self._call(
            "create",
            lambda: self._client.secrets.transit.create_key(
                name=self.key_name, key_type="ed25519", mount_point=self.mount
            ),
        )
        self._read_key()  # confirms the type (another process may have created it first)

    def rotate(self) -> int:
        """Rotate the transit key; returns the new latest version."""
        self._call(
            "rotate",
            lambda: self._client.secrets.transit.rotate_key(
                name=self.key_name, mount_point=self.mount
            ),
        )
        return int(self._read_key().get("latest_version", 0))

    # ---- internals ---------------------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any]) -> Any:
        if self._fast is not None:
            return self._fast.post(path, body, token=self._client.token)
        return self._client.adapter.post(f"/v1/{path}", json=body)

    def _read_key(self) -> dict[str, Any]:
        try:
            response = self._client.secrets.transit.read_key(
                name=self.key_name, mount_point=self.mount
            )
        except hvac.exceptions.InvalidPath as exc:
            raise _MissingKey(
                f"transit key {self.key_id} does not exist at {self.addr}",
                hint=(
                    f"create it (TransitSigner.ensure_key(), or `bao write -f "
                    f"{self.mount}/keys/{self.key_name} type=ed25519`), and check that the "
                    f"transit engine is enabled at {self.mount}/ (`bao secrets enable transit`)"
                ),
            ) from exc
        except Exception as exc:  # mapped below
            raise self._map(exc, "read") from exc
        data = _data(response)
        if data.get("type") != "ed25519":
            raise SigningError(
                f"transit key {self.key_id} at {self.addr} is of type {data.get('type')!r}, "
                "not ed25519",
                hint="use a different ledger_transit_key name, or an ed25519 transit key",
            )
        return data

    def _call(self, what: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except Exception as exc:  # every failure becomes a SigningError
            raise self._map(exc, what) from exc

    def _record(self, signature: object) -> SignatureRecord:
        match = _SIGNATURE.match(signature) if isinstance(signature, str) else None
        if match is None:
            raise SigningError(
                f"transit key {self.key_id} at {self.addr} returned an unexpected signature format",
                hint="expected 'vault:vN:BASE64'; check the server is OpenBao/Vault transit",
            )
        return SignatureRecord(
            key_id=self.key_id,
            key_version=int(match.group(1)),
            algorithm="ed25519",
            signature=match.group(2),
        )

    def _scrub(self, text: str) -> str:
        token = getattr(self._client, "token", None)
        if isinstance(token, str) and token:
            text = text.replace(token, "<redacted>")
        return text

    def _map(self, exc: Exception, what: str) -> SigningError:
        """Turn an hvac/requests failure into a SigningError saying what to do."""
        if isinstance(exc, SigningError):
            return exc
        target = f"transit key {self.key_id} at {self.addr}"
        detail = self._scrub(_first_error(exc))
        if isinstance(exc, requests.exceptions.Timeout):
            return SigningError(
                f"OpenBao/Vault at {self.addr} did not answer in time (trying to {what} {target})",
                hint="check that the server is up and reachable, or raise the client timeout",
            )
        if isinstance(exc, requests.exceptions.ConnectionError):
            return SigningError(
                f"cannot reach OpenBao/Vault at {self.addr} (trying to {what} {target})",
                hint=(
                    "start it (`jupyter qsecure vault up`) or fix vault_addr / BAO_ADDR / "
                    "VAULT_ADDR"
                ),
            )
        if isinstance(exc, requests.exceptions.RequestException):
            return SigningError(
                f"request to OpenBao/Vault at {self.addr} failed: {type(exc).__name__}",
                hint="check vault_addr and the network path to the server",
            )
        if isinstance(exc, hvac.exceptions.Forbidden):
            return SigningError(
                f"permission denied: the token may not {what} {target}",
                hint=(
                    "use a token whose policy allows update on "
                    f"{self.mount}/sign/{self.key_name} and read on "
                    f"{self.mount}/keys/{self.key_name} (create/update to create the key), "
                    "or check that the token has not expired"
                ),
            )
        if isinstance(exc, hvac.exceptions.Unauthorized):
            return SigningError(
                f"OpenBao/Vault at {self.addr} did not accept the token "
                f"(trying to {what} {target})",
                hint="log in again or set a valid VAULT_TOKEN / BAO_TOKEN",
            )
        if isinstance(exc, hvac.exceptions.VaultDown):
            return SigningError(
                f"OpenBao/Vault at {self.addr} is sealed or unavailable "
                f"(trying to {what} {target})",
                hint="unseal it (`bao operator unseal`) or wait for it to become active",
            )
        if isinstance(exc, hvac.exceptions.InvalidPath):
            return SigningError(
                f"{target} or the transit engine at {self.mount}/ does not exist",
                hint=(
                    f"enable transit (`bao secrets enable -path={self.mount} transit`) and "
                    "create the key (TransitSigner.ensure_key())"
                ),
            )
        if isinstance(exc, hvac.exceptions.InvalidRequest) and "not found" in detail:
            return SigningError(
                f"{target} does not exist",
                hint=(
                    f"create it (TransitSigner.ensure_key(), or `bao write -f "
                    f"{self.mount}/keys/{self.key_name} type=ed25519`)"
                ),
            )
        if isinstance(exc, hvac.exceptions.VaultError):
            return SigningError(
                f"OpenBao/Vault refused to {what} {target}: {detail}",
                hint="check the server log and the key's configuration",
            )
        return SigningError(
            f"unexpected failure trying to {what} {target}: {type(exc).__name__}",
            hint="check the server and the client configuration",
        )


class _MissingKey(SigningError):
    """The transit key (or its mount) does not exist."""


def _data(response: Any) -> dict[str, Any]:
    if isinstance(response, requests.Response):
        response = response.json()
    data = response.get("data") if isinstance(response, dict) else None
    if isinstance(data, dict):
        return data
    raise SigningError(
        "OpenBao/Vault returned a reply without data",
        hint="check that the address points at OpenBao/Vault and the transit engine",
    )


def _first_error(exc: Exception) -> str:
    errors: Sequence[Any] | None = getattr(exc, "errors", None)
    if errors:
        return "; ".join(str(e) for e in errors)
    text = str(exc)
    return text.split(", on ")[0] if ", on " in text else text
