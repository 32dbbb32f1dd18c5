"""Fixtures shared by the command-line tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A data dir, SQLite ledger and Jupyter config dir of this test's own, set in this
    process (for ``main([...])``) and returned for subprocesses."""
    monkeypatch.setenv("QSECURE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QSECURE_LEDGER", f"sqlite:///{tmp_path / 'audit.db'}")
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "config"))
    return dict(os.environ)
