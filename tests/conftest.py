"""Shared test configuration: fixtures for real services live in jupyter_qsecure.testing."""

from __future__ import annotations

import pytest

from jupyter_qsecure.config import ENV_OVERRIDES

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
