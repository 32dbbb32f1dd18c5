"""A real Jupyter Server with the jupyter-qsecure extension, authentication enforced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

# pytest-jupyter's fixtures (and its autouse server clean-up) only for server tests:
# a non-root conftest may not declare pytest_plugins, so import them here.
from pytest_jupyter.jupyter_core import *  # noqa: E402,F403
from pytest_jupyter.jupyter_server import *  # noqa: E402,F403


@pytest.fixture
def qsecure_data_dir(tmp_path: Path) -> Path:
    return tmp_path / "qsecure-data"


@pytest.fixture
def save_mode() -> str:
    """Override in a test module to run the server with another save_mode."""
    return "block"


@pytest.fixture
def jp_server_config(qsecure_data_dir: Path, save_mode: str) -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_qsecure_server": True},
            "allow_unauthenticated_access": False,
        },
        "QSecure": {
            "data_dir": str(qsecure_data_dir),
            "checkpoint_every_entries": 5,
            "save_mode": save_mode,
        },
    }
