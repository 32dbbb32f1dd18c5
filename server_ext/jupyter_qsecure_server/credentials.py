"""Per-server glue between kernels and the credential broker.

Holds the broker (issuing, renewal, revocation), the registry of injected values,
and the server's one masker over them (:class:`RegistryMasking`, rebuilt whenever
the registry changes; the websocket, file routes, terminals and the kernel output
log all use it); revokes a kernel's credentials when it is shut down, restarted
(by the user or the auto-restarter) or culled, and every kernel's when the server
stops.

The masker is rebuilt in the worker thread that changed the registry (issuing and
revoking run inside :meth:`RegistryMasking.updating`), not on the event loop:
building one costs milliseconds (more with more values), and the loop would pay it
on the first message of a new kernel. Meanwhile the loop masks with the previous
build, which holds every value handed out so far. :meth:`CredentialService.masker`
builds on the loop only when the registry changed outside an update (a lingering
value expiring, a secret stored from the browser) and no other thread built it first.

Revoking does not forget the values: the registry keeps them *lingering* (masked,
and matched by the save gate) while they may still be valid, because revoking the
kernel's token does not change a KV secret and an output holding one may still be
open in the browser (see :mod:`jupyter_qsecure.vault.registry`); the fingerprint
registry in the data dir keeps recognising them after a server restart.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from jupyter_qsecure.vault.broker import KernelCredentials
from jupyter_qsecure.vault.masking import Masker
from jupyter_qsecure.vault.registry import ValueRegistry
from jupyter_qsecure.vault.registry_masking import RegistryMasking
from jupyter_qsecure.vault.source import CredentialSource

log = logging.getLogger("jupyter_qsecure_server.credentials")


class CredentialService:
    def __init__(
        self,
        broker: CredentialSource,
        registry: ValueRegistry,
        vault_addr: str,
        broker_url: str = "",
        mask_fragment_min: int = 12,
    ) -> None:
        self.broker = broker
        self.registry = registry
        self.vault_addr = vault_addr
        self.broker_url = broker_url  # where %qsubmit reaches the job broker
        self.on_revoke: list[Callable[[str], None]] = []
        #: Called before each execution's credential fetch (cheap: a few ``stat`` calls):
        #: the server re-reads changed config files and stored secrets there.
        self.before_fetch: Callable[[], None] | None = None
        self.masks = RegistryMasking(registry, min_fragment=mask_fragment_min)

    # ---- execution time ------------------------------------------------------------------
    async def metadata_for(self, kernel_id: str, user: str) -> dict[str, Any]:
        """The ``qsecure`` metadata to attach to an execute_request (never raises)."""
        if self.before_fetch is not None:
            try:
                self.before_fetch()
            except Exception as exc:  # the execution goes on with what the server has
                log.error(
                    "jupyter-qsecure: checking for changed settings failed: %s",
                    type(exc).__name__,
                )
        try:
            creds: KernelCredentials | None = self.broker.cached(kernel_id)
            if creds is None:
                creds = await asyncio.to_thread(self._credentials_for, kernel_id, user)
            metadata = dict(creds.to_metadata())
            metadata["broker_url"] = self.broker_url
            return metadata
        except Exception as exc:  # the kernel must get a clear error, not a hang
            log.error(
                "jupyter-qsecure: cannot obtain credentials for kernel %s: %s",
                kernel_id,
                type(exc).__name__,
            )
            return {
                "v": 1,
                "kernel_id": kernel_id,
                "secrets": {},
                "leases": {},
                "errors": {},
                "broker_url": self.broker_url,
                "error": f"the server could not obtain credentials ({type(exc).__name__}); "
                "check OpenBao (`jupyter qsecure vault status`) and retry the cell",
            }

    def _credentials_for(self, kernel_id: str, user: str) -> KernelCredentials:
        """In a worker thread: the broker's answer, then the masker for what it changed."""
        with self.masks.updating():
            return self.broker.credentials_for(kernel_id, user)

    def masker(self) -> Masker | None:
        """A masker over every value handed out by this server, or None if there is none."""
        return self.masks.current().masker

    def masking(self) -> tuple[Masker | None, bool]:
        """(:meth:`masker`, whether raw JSON frames may be pre-screened with it), of one
        build: JSON escaping leaves every value as it is (no quotes, backslashes,
        control characters)."""
        built = self.masks.current()
        return built.masker, built.raw_screening

    # ---- lifecycle -----------------------------------------------------------------------
    async def revoke(self, kernel_id: str, reason: str) -> None:
        for callback in self.on_revoke:
            callback(kernel_id)
        try:
            await asyncio.to_thread(self._revoke, kernel_id, reason)
        except Exception as exc:
            log.error(
                "jupyter-qsecure: revoking credentials of kernel %s failed: %s",
                kernel_id,
                type(exc).__name__,
            )

    def _revoke(self, kernel_id: str, reason: str) -> None:
        with self.masks.updating():
            self.broker.revoke(kernel_id, reason)

    def install_kernel_hooks(self, kernel_manager: Any) -> None:
        """Revoke on shutdown (incl. culling), restart (incl. auto-restart)."""
        service = self

        def wrap(name: str, reason: str, before: bool) -> None:
            original: Callable[..., Any] = getattr(kernel_manager, name)

            async def wrapper(kernel_id: str, *args: Any, **kwargs: Any) -> Any:
                if before:
                    await service.revoke(kernel_id, reason)
                result = original(kernel_id, *args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
                if not before:
                    await service.revoke(kernel_id, reason)
                return result

            setattr(kernel_manager, name, wrapper)

        wrap("shutdown_kernel", "kernel shut down", before=False)
        wrap("restart_kernel", "kernel restarted", before=True)

        start = kernel_manager.start_kernel

        async def start_kernel(*args: Any, **kwargs: Any) -> Any:
            kernel_id = start(*args, **kwargs)
            if inspect.isawaitable(kernel_id):
                kernel_id = await kernel_id

            def on_auto_restart() -> None:
                asyncio.ensure_future(service.revoke(kernel_id, "kernel died and was restarted"))

            kernel_manager.add_restart_callback(kernel_id, on_auto_restart, "restart")
            kernel_manager.add_restart_callback(kernel_id, on_auto_restart, "dead")
            return kernel_id

        kernel_manager.start_kernel = start_kernel

    async def revoke_all(self, reason: str) -> None:
        try:
            await asyncio.to_thread(self.broker.revoke_all, reason)
        except Exception as exc:
            log.error("jupyter-qsecure: revoking all credentials failed: %s", type(exc).__name__)
