"""Shared test configuration: fixtures for real services live in jupyter_qsecure.testing."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_qsecure.config import ENV_OVERRIDES
from jupyter_qsecure.testing.wheels import build_wheel

pytest_plugins = [
    "jupyter_qsecure.testing.pytest_plugin",
    "jupyter_qsecure.testing.pytest_plugin_postgres",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No QSECURE_/VAULT_/BAO_ variable from the developer's shell leaks into a test."""
    for variables in ENV_OVERRIDES.values():
        for variable in variables:
            monkeypatch.delenv(variable, raising=False)


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a wheel of the jupyter-qsecure under test: the resolver finds
    jupyter-qsecure there, as it would on a real index."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    build_wheel(folder)
    return folder
