"""A real Jupyter Server with the jupyter-qsecure extension, authentication enforced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jupyter_qsecure.config import ENV_OVERRIDES

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for variables in ENV_OVERRIDES.values():
        for variable in variables:
            monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def qsecure_data_dir(tmp_path: Path) -> Path:
    return tmp_path / "qsecure-data"


@pytest.fixture
def jp_server_config(qsecure_data_dir: Path) -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_qsecure_server": True},
            "allow_unauthenticated_access": False,
        },
        "QSecure": {"data_dir": str(qsecure_data_dir), "checkpoint_every_entries": 5},
    }
