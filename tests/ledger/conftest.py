"""Fixtures for ledger tests: isolated settings, a SQLite ledger with local signers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_qsecure.config import QSecure
from jupyter_qsecure.ledger import Ledger


@pytest.fixture
def settings(tmp_path: Path, clean_env: None) -> QSecure:
    return QSecure(data_dir=str(tmp_path / "qsecure"), checkpoint_every_entries=100)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def ledger(settings: QSecure, sqlite_url: str) -> Iterator[Ledger]:
    with Ledger.open(sqlite_url, settings=settings) as opened:
        yield opened


@pytest.fixture
def child_env(settings: QSecure) -> dict[str, str]:
    """Environment for a child process that must use the same data dir (keys, keyring)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QSECURE_", "VAULT_", "BAO_"))}
    env["QSECURE_DATA_DIR"] = settings.data_dir
    return env
