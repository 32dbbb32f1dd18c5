"""An approval trusts every public key of its signer (a transit key has one per version)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from jupyter_qsecure.promote.approve import _trust
from jupyter_qsecure.promote.review import Reviewer
from jupyter_qsecure.signing.signers import Ed25519KeySigner, KeyRing, PublicKeyRecord


class _RotatedSigner:
    """A signer whose key has two versions, as an OpenBao transit key after a rotation."""

    def __init__(self) -> None:
        self.versions = [Ed25519KeySigner(ed25519.Ed25519PrivateKey.generate()) for _ in range(2)]

    def public_keys(self) -> list[PublicKeyRecord]:
        return [
            signer.public_keys()[0].model_copy(update={"key_id": "approver", "key_version": n})
            for n, signer in enumerate(self.versions, start=1)
        ]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.versions[-1], name)


def test_every_public_key_of_the_signer_is_trusted(tmp_path: Path) -> None:
    keyring_file = tmp_path / "keyring.json"
    settings = SimpleNamespace(resolved_keyring_file=lambda: keyring_file)
    signer = _RotatedSigner()
    reviewer = Reviewer(name="alice", source="openbao", accessor="accessor-1")
    _trust(settings, signer, reviewer)  # type: ignore[arg-type]
    saved = KeyRing.load(keyring_file)
    assert {(k.key_id, k.key_version) for k in saved} == {("approver", 1), ("approver", 2)}
