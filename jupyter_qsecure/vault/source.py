"""What the server needs from whatever hands kernels their credentials.

Two implementations: :class:`~.broker.CredentialBroker` (OpenBao child tokens and leased
secrets) and :class:`~.local_tokens.LocalKernelTokens` (a random broker token per kernel
when no OpenBao is configured). The server extension's ``CredentialService`` and the job
broker's ``identify`` take a :class:`CredentialSource`; mypy checks that both classes
are one (the assignments under ``TYPE_CHECKING`` below).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .broker import KernelCredentials

__all__ = ["CredentialSource"]


class CredentialSource(Protocol):
    """Per-kernel credentials: issued at execution time, revoked when the kernel stops."""

    def credentials_for(self, kernel_id: str, user: str) -> KernelCredentials:
        """The kernel's credentials, issued or renewed as needed (may block on I/O)."""
        ...

    def cached(self, kernel_id: str) -> KernelCredentials | None:
        """The kernel's credentials if they can be handed out as they are (never blocks)."""
        ...

    def kernel_leases(self) -> dict[str, KernelCredentials]:
        """Every kernel's current credentials (no I/O; for status displays)."""
        ...

    def revoke(self, kernel_id: str, reason: str) -> bool:
        """Revoke the kernel's credentials and forget its values."""
        ...

    def revoke_all(self, reason: str) -> int:
        """Revoke every kernel's credentials; how many kernels."""
        ...

    def identify(self, token: str) -> dict[str, Any] | None:
        """Who holds ``token`` (kernel_id, user, environment, accessor, policies), or None."""
        ...


if TYPE_CHECKING:  # structural checks, run by mypy only
    from .broker import CredentialBroker
    from .local_tokens import LocalKernelTokens

    def _broker_is_a_source(broker: CredentialBroker) -> CredentialSource:
        return broker

    def _local_tokens_are_a_source(tokens: LocalKernelTokens) -> CredentialSource:
        return tokens
