"""``jupyter qsecure recover`` lists and restores sealed copies."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from jupyter_qsecure.cli.main import main
from jupyter_qsecure.config import QSecure
from jupyter_qsecure.gate.recovery import recovery_store_from_settings


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QSECURE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


def test_list_restore_delete(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = recovery_store_from_settings(QSecure())
    record = store.save(
        b'{"cells": []}',
        path="work/analysis.ipynb",
        user="alice",
        reason="secrets found",
        findings=[],
    )
    assert main(["recover", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed] == [record.id] and "wrapped_key" not in listed[0]
    assert main(["recover", "restore", record.id]) == 0
    restored = tmp_path / "analysis.recovered.ipynb"
    assert restored.read_bytes() == b'{"cells": []}' and restored.stat().st_mode & 0o777 == 0o600
    assert main(["recover", "restore", record.id]) == 2  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err
    assert main(["recover", "restore", record.id, "-o", str(tmp_path / "x.ipynb")]) == 0
    assert main(["recover", "delete", record.id]) == 0
    assert not any((data_dir / "recovery").iterdir())  # the sealed copy too, not only its record
    assert main(["recover", "restore", record.id]) == 2
    assert "no recovery copy" in capsys.readouterr().err


def test_with_openbao_configured_copies_go_to_the_same_folder_wrapped_by_transit(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenBao itself is faked here (its transit round trip: tests/gate/test_recovery_transit.py):
    # what is checked is where the store keeps copies and which key wraps them.
    from jupyter_qsecure.vault import client as vault_client

    reads: list[tuple[str, str]] = []

    class Transit:
        def read_key(self, *, name: str, mount_point: str) -> None:
            reads.append((mount_point, name))

    fake = SimpleNamespace(secrets=SimpleNamespace(transit=Transit()))
    monkeypatch.setattr(vault_client, "client_from_settings", lambda settings: fake)
    for var in ("BAO_ADDR", "VAULT_ADDR"):
        monkeypatch.delenv(var, raising=False)
    settings = QSecure(vault_addr="http://127.0.0.1:8200", ledger_transit_mount="transit-qs")
    store = recovery_store_from_settings(settings)
    local = recovery_store_from_settings(QSecure())
    assert store.folder == local.folder == data_dir / "recovery"
    assert (store.wrapper.name, local.wrapper.name) == ("transit", "local")
    assert reads == [("transit-qs", "qsecure-recovery")]
