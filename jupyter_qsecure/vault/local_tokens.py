"""Per-kernel broker tokens when no OpenBao/Vault is configured (the embedded default).

A :class:`~jupyter_qsecure.vault.source.CredentialSource`, like
:class:`~jupyter_qsecure.vault.broker.CredentialBroker` (mypy checks both): each kernel
gets a random 256-bit token at execution time, valid until the kernel stops, so
``%qsubmit`` works out of the box. There are no secrets to lease, and the token is also
masked in everything the kernel sends to the browser.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from typing import Any

from ..identity import user_actor
from .broker import KernelCredentials
from .registry import ENDS_WITH_KERNEL, ValueRegistry

TOKEN_NAME = "_broker_token"  # noqa: S105 (a registry name, not a secret)


class LocalKernelTokens:
    def __init__(self, *, environment: str, registry: ValueRegistry, ledger: Any = None) -> None:
        self.environment = environment
        self.registry = registry
        self.ledger = ledger
        self.specs: list[Any] = []
        self._lock = threading.Lock()
        self._by_kernel: dict[str, KernelCredentials] = {}
        self._by_digest: dict[bytes, str] = {}

    def credentials_for(self, kernel_id: str, user: str) -> KernelCredentials:
        with self._lock:
            existing = self._by_kernel.get(kernel_id)
            if existing is not None:
                return existing
            token = "qsk." + secrets.token_urlsafe(32)
            creds = KernelCredentials(
                kernel_id=kernel_id,
                environment=self.environment,
                user=user,
                vault_addr="",
                accessor=hashlib.sha256(token.encode()).hexdigest()[:24],
                token=token,
            )
            self._by_kernel[kernel_id] = creds
            self._by_digest[hashlib.sha256(token.encode()).digest()] = kernel_id
        # valid only while the kernel runs: it need not linger after the kernel stops
        self.registry.register(
            kernel_id, {TOKEN_NAME: token}, valid_until={TOKEN_NAME: ENDS_WITH_KERNEL}
        )
        if self.ledger is not None:
            self.ledger.append(
                "credential.issued",
                {
                    "kernel_id": kernel_id,
                    "name": "broker token",
                    "accessor": creds.accessor,
                    "environment": self.environment,
                    "user": user,
                },
                actor=user_actor(user),
            )
        return creds

    def cached(self, kernel_id: str) -> KernelCredentials | None:
        return self._by_kernel.get(kernel_id)

    def kernel_leases(self) -> dict[str, KernelCredentials]:
        """Every kernel's credentials (for status displays)."""
        with self._lock:
            return dict(self._by_kernel)

    def revoke(self, kernel_id: str, reason: str) -> bool:
        with self._lock:
            creds = self._by_kernel.pop(kernel_id, None)
            if creds is None:
                return False
            self._by_digest.pop(hashlib.sha256(str(creds.token).encode()).digest(), None)
        self.registry.drop(kernel_id)
        if self.ledger is not None:
            self.ledger.append(
                "credential.revoked",
                {"kernel_id": kernel_id, "accessor": creds.accessor, "reason": reason},
                actor=user_actor(creds.user),
            )
        return True

    def revoke_all(self, reason: str) -> int:
        kernel_ids = list(self._by_kernel)
        for kernel_id in kernel_ids:
            self.revoke(kernel_id, reason)
        return len(kernel_ids)

    def identify(self, token: str) -> dict[str, Any] | None:
        if not isinstance(token, str) or not token:
            return None
        kernel_id = self._by_digest.get(hashlib.sha256(token.encode()).digest())
        creds = self._by_kernel.get(kernel_id) if kernel_id else None
        if creds is None or not hmac.compare_digest(str(creds.token), token):
            return None
        return {
            "kernel_id": kernel_id,
            "user": creds.user,
            "environment": self.environment,
            "accessor": creds.accessor,
            "policies": [],
        }
