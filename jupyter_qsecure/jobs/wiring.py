"""The job broker's parts chosen from :class:`~jupyter_qsecure.config.QSecure` settings.

Shared by the server extension (the broker) and :mod:`jupyter_qsecure.runtime` (promoted
scripts, which run the same broker in their own process), so both sign with the same
key and trust the same keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..signing.signers import Ed25519FileSigner, KeyRing, Signer

if TYPE_CHECKING:
    from ..config import QSecure

__all__ = ["job_signer", "trust_signer"]


def job_signer(settings: QSecure, client: Any = None, *, batching: bool = False) -> Signer:
    """The signer of job manifests and results.

    With OpenBao/Vault configured: the transit key ``jobs_transit_key`` (created if
    missing), through ``client`` (an authenticated hvac client; one is made from the
    settings when None); ``batching`` shares transit calls between jobs finishing
    together. Otherwise the local Ed25519 key ``<data_dir>/keys/jobs-ed25519.pem``.
    """
    if settings.vault_addr:
        from ..signing.transit import TransitSigner

        if client is None:
            from ..vault.client import client_from_settings

            client = client_from_settings(settings)
        transit = TransitSigner(
            client, mount=settings.ledger_transit_mount, key_name=settings.jobs_transit_key
        )
        transit.ensure_key()
        if batching:
            from ..signing.batching import BatchingSigner

            return BatchingSigner(transit, max_concurrent=2)
        return transit
    return Ed25519FileSigner(settings.data_path / "keys" / "jobs-ed25519.pem")


def trust_signer(settings: QSecure, signer: Signer) -> None:
    """Add ``signer``'s public keys to the keyring file offline checks use (``replay``,
    ``verify-promotion``), saving it only when a key is new."""
    path = settings.resolved_keyring_file()
    trusted = KeyRing.load(path)
    if any([trusted.add(key) for key in signer.public_keys()]):  # list: add every key
        trusted.save(path)
