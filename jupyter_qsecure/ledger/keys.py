"""Choose checkpoint signers and the trusted keyring from :class:`QSecure` settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..signing.signers import Ed25519FileSigner, KeyRing, MLDSA65FileSigner, Signer

if TYPE_CHECKING:
    from ..config import QSecure


def signers_from_settings(settings: QSecure, client: Any = None) -> list[Signer]:
    """The primary signer (transit or local Ed25519) plus the optional ML-DSA-65 co-signer.

    ``client``: an authenticated hvac client for transit (a promoted script's own login);
    None logs in as configured (:func:`~jupyter_qsecure.vault.client.client_from_settings`).
    """
    choice = settings.ledger_signer
    if choice == "auto":
        choice = "transit" if settings.vault_addr else "local"
    signers: list[Signer] = []
    if choice == "transit":
        if not settings.vault_addr:
            raise ConfigError(
                "ledger_signer is 'transit' but no OpenBao/Vault address is configured",
                hint="set BAO_ADDR/VAULT_ADDR (or c.QSecure.vault_addr), or use ledger_signer='local'",
            )
        from ..signing.transit import TransitSigner
        from ..vault.client import client_from_settings

        signer = TransitSigner(
            client if client is not None else client_from_settings(settings),
            mount=settings.ledger_transit_mount,
            key_name=settings.ledger_transit_key,
        )
        signer.ensure_key()
        signers.append(signer)
    else:
        signers.append(Ed25519FileSigner(settings.resolved_signing_key_file()))
    if settings.ledger_pq_cosign:
        signers.append(MLDSA65FileSigner(settings.resolved_pq_key_file()))
    return signers


def keyring_from_settings(settings: QSecure) -> KeyRing:
    """Keys trusted for verification: the keyring file kept beside the local keys."""
    return KeyRing.load(settings.resolved_keyring_file())
