"""Which private paths a served tree exposes (the server's start-up check)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_qsecure.config import QSecure
from jupyter_qsecure.served_paths import (
    ServedPrivateFiles,
    ServedTree,
    check_not_served,
    exposures,
    private_paths,
)


def tree(path: Path, *, hidden: bool = False) -> ServedTree:
    return ServedTree(path, "the folder Jupyter serves (ServerApp.root_dir)", hidden)


def test_inside_equal_or_containing_is_exposed_siblings_are_not(tmp_path: Path) -> None:
    root = tmp_path / "notebooks"
    for data, exposed in [
        (root / "qsecure", True),
        (root, True),
        (tmp_path, True),  # the served tree is inside the data dir
        (tmp_path / "qsecure", False),
        (tmp_path / "notebooks-2", False),  # a name prefix is not a parent
    ]:
        assert bool(exposures({"data dir": data}, [tree(root)])) is exposed, data


def test_hidden_folders_are_exposed_only_when_hidden_files_are_served(tmp_path: Path) -> None:
    data = tmp_path / ".local" / "share" / "jupyter" / "qsecure"
    assert not exposures({"data dir": data}, [tree(tmp_path)])
    assert exposures({"data dir": data}, [tree(tmp_path, hidden=True)])
    assert not exposures({"data dir": tmp_path / "work" / ".qsecure"}, [tree(tmp_path)])


def test_a_symlinked_data_dir_is_judged_where_it_really_is(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (tmp_path / "link").symlink_to(root / "real")
    assert exposures({"data dir": tmp_path / "link" / "qsecure"}, [tree(root)])


def test_key_token_and_ledger_files_set_elsewhere_are_checked(tmp_path: Path) -> None:
    root = tmp_path / "root"
    settings = QSecure(
        data_dir=str(tmp_path / "data"),
        ledger_url=f"sqlite:///{root}/ledger.db",
        ledger_signing_key_file=str(root / "keys" / "ledger.pem"),
        vault_token_file=str(root / "bao.token"),
    )
    with pytest.raises(ServedPrivateFiles) as info:
        check_not_served(private_paths(settings), [tree(root)])
    message = info.value.message
    assert "SQLite ledger (QSecure.ledger_url)" in message
    assert "signing key (QSecure.ledger_signing_key_file)" in message
    assert "QSecure.vault_token_file" in message and "data dir" not in message
    assert "QSECURE_DATA_DIR" in (info.value.hint or "")
    check_not_served(private_paths(QSecure(data_dir=str(tmp_path / "data"))), [tree(root)])
