"""Recovery copies whose data keys are wrapped by a real OpenBao transit key."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from jupyter_qsecure.gate.recovery import RecoveryStore, TransitKeyWrapper
from jupyter_qsecure.testing.openbao import OpenBaoDev


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
