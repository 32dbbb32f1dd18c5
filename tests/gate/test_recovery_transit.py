"""Recovery copies whose data keys are wrapped by a real OpenBao transit key."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import hvac
import pytest

from jupyter_qsecure.gate.recovery import RecoveryError, RecoveryStore
from jupyter_qsecure.testing.openbao import OpenBaoDev
from jupyter_qsecure.vault import layout
from jupyter_qsecure.vault.keywrap import TransitKeyWrapper


def test_transit_wrapped_copy_round_trips(
    tmp_path: Path, openbao: OpenBaoDev, openbao_client: Any
) -> None:
    key = f"recovery-{secrets.token_hex(4)}"
    store = RecoveryStore(tmp_path / "rec", TransitKeyWrapper(openbao_client, key_name=key))
    record = store.save(
        b"unsaved notebook", path="n.ipynb", user="alice", reason="secrets found", findings=[]
    )
    assert record.wrapper == "transit" and record.wrapped_key.startswith("vault:v1:")
    reopened = RecoveryStore(tmp_path / "rec", TransitKeyWrapper(openbao.client(), key_name=key))
    assert reopened.open(record.id)[1] == b"unsaved notebook"


def test_a_kernel_token_cannot_open_what_the_server_sealed(
    tmp_path: Path, openbao: OpenBaoDev, openbao_client: Any
) -> None:
    # The boundary that holds even though kernels run as the server's OS user: the
    # recovery key is a transit key, and kernel tokens' policy has no transit path.
    layout.bootstrap(openbao_client, ("dev",))
    server = openbao.client(layout.create_server_token(openbao_client, "dev")["client_token"])
    store = RecoveryStore(tmp_path / "rec", TransitKeyWrapper(server))  # qsecure-recovery
    record = store.save(
        b"unsaved work", path="n.ipynb", user="alice", reason="secrets found", findings=[]
    )
    kernel_token = server.auth.token.create(role_name=layout.kernel_token_role("dev"), ttl="5m")[
        "auth"
    ]["client_token"]
    kernel = openbao.client(kernel_token)
    with pytest.raises(RecoveryError):
        RecoveryStore(tmp_path / "rec", TransitKeyWrapper(kernel)).open(record.id)
    with pytest.raises(hvac.exceptions.Forbidden):  # not even the decrypt call itself
        kernel.secrets.transit.decrypt_data(
            name="qsecure-recovery", ciphertext=record.wrapped_key, mount_point="transit"
        )
    assert RecoveryStore(tmp_path / "rec", TransitKeyWrapper(server)).open(record.id)[1] == (
        b"unsaved work"
    )
