"""A ledger whose checkpoints are signed by a real OpenBao transit key."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from jupyter_qsecure.config import QSecure
from jupyter_qsecure.ledger import KeyRing, Ledger, verify_inclusion_proof
from jupyter_qsecure.testing.openbao import OpenBaoDev
from jupyter_qsecure.testing.ports import free_loopback_port
from jupyter_qsecure.vault.client import VaultConnection
from jupyter_qsecure.vault.transport import VaultJSON


def _transit_settings(tmp_path: Path, addr: str, token: str, key: str) -> QSecure:
    return QSecure(
        data_dir=str(tmp_path / "data"),
        vault_addr=addr,
        vault_token=token,
        ledger_signer="auto",  # transit because vault_addr is set
        ledger_transit_key=key,
        checkpoint_every_entries=10,
    )


def test_transit_signed_checkpoints_verify_offline_across_key_rotation(
    tmp_path: Path, openbao: OpenBaoDev, openbao_client: Any, clean_env: None
) -> None:
    key = f"ledger-{secrets.token_hex(4)}"
    settings = _transit_settings(tmp_path, openbao.addr, openbao.root_token, key)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger.open(url, settings=settings) as ledger:
        for i in range(25):
            ledger.append("note", {"text": f"before rotation {i}"})
        first = ledger.checkpoints()
        assert first and {s.key_id for s in first[0].signatures} >= {f"transit:transit/{key}"}
        assert {s.key_version for s in first[0].signatures if s.algorithm == "ed25519"} == {1}
        openbao_client.secrets.transit.rotate_key(name=key, mount_point="transit")
        for i in range(25):
            ledger.append("note", {"text": f"after rotation {i}"})
        latest = ledger.checkpoint()
        assert {s.key_version for s in latest.signatures if s.algorithm == "ed25519"} == {2}
        proof = ledger.prove(3)

    # Offline: only the keyring file written beside the local keys, no OpenBao call.
    keyring = KeyRing.load(settings.resolved_keyring_file())
    assert {(k.key_id, k.key_version) for k in keyring if k.source == "transit"} == {
        (f"transit:transit/{key}", 1),
        (f"transit:transit/{key}", 2),
    }
    from jupyter_qsecure.ledger.store import open_store
    from jupyter_qsecure.ledger.verify import verify_ledger

    store = open_store(url, create=False)
    report = verify_ledger(store, keyring)
    store.close()
    assert report.ok, report.problems
    assert report.algorithms == {"ed25519", "ml-dsa-65"} and report.checkpoints >= 5
    assert verify_inclusion_proof(proof, keyring) == []


def test_openbao_down_never_loses_an_append(
    tmp_path: Path, openbao: OpenBaoDev, clean_env: None
) -> None:
    key = f"ledger-{secrets.token_hex(4)}"
    settings = _transit_settings(tmp_path, openbao.addr, openbao.root_token, key)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger.open(url, settings=settings) as ledger:
        # the signer loses OpenBao: its client (and fast transport) now point at nothing
        dead = VaultConnection.local(f"http://127.0.0.1:{free_loopback_port()}")
        signer: Any = ledger.signers[0]
        signer._client = dead.client(openbao.root_token)
        signer._fast = VaultJSON(dead)
        for i in range(15):  # a checkpoint falls due at 10 and cannot be signed
            ledger.append("note", {"text": str(i)})
        assert ledger.size() == 15
        assert ledger.last_checkpoint_error is not None
        assert openbao.root_token not in ledger.last_checkpoint_error
        assert ledger.checkpoints() == []
        assert ledger.verify().ok
