"""The extension's services, handed to its handlers as route kwargs.

As jupyter-collaboration does: the extension app builds the services once
(``initialize_settings``) and puts them in the third element of each route tuple; tornado
passes them to the handler's ``initialize(self, *, services)``, so handlers are typed
against what they use instead of reading ``self.settings["qsecure_*"]``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from jupyter_qsecure.config import QSecure
from jupyter_qsecure.gate import SaveGate
from jupyter_qsecure.jobs.service import JobService
from jupyter_qsecure.ledger import Ledger
from jupyter_qsecure.vault.broker import CredentialBroker
from jupyter_qsecure.vault.exposure import ExposureLog
from jupyter_qsecure.vault.overview import OpenBaoHealth
from jupyter_qsecure.vault.registry import ValueRegistry
from jupyter_qsecure.vault.secret_store import SecretStore
from jupyter_qsecure.vault.source import CredentialSource

from .credentials import CredentialService
from .save_gate import ContentsGate

__all__ = ["Services"]


@dataclass(frozen=True)
class Services:
    """What the REST handlers work with (one instance per server)."""

    settings: QSecure
    ledger: Ledger
    save_gate: SaveGate
    contents_gate: ContentsGate
    jobs: JobService
    openbao_health: OpenBaoHealth
    exposures: ExposureLog
    credentials: CredentialService | None = None
    #: Secrets stored by name, through the server's own OpenBao token (None without OpenBao).
    secret_store: SecretStore | None = None
    #: One promotion at a time (``review_handlers``), one ledger verification at a time.
    promote_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    verify_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def broker(self) -> CredentialSource | None:
        """Whatever hands kernels their credentials (OpenBao's broker or local tokens)."""
        return self.credentials.broker if self.credentials is not None else None

    @property
    def openbao_broker(self) -> CredentialBroker | None:
        """The OpenBao credential broker (None when kernels get local tokens only)."""
        broker = self.broker
        return broker if isinstance(broker, CredentialBroker) else None

    @property
    def registry(self) -> ValueRegistry | None:
        """The values handed out (masked in output, matched by the save gate)."""
        return self.credentials.registry if self.credentials is not None else None
