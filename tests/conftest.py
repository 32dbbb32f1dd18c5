"""Shared test configuration: fixtures for real services live in jupyter_qsecure.testing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from jupyter_qsecure.config import ENV_OVERRIDES

try:  # the real module comes with the i11-masking branch (issue 11, case 3)
    import jupyter_qsecure.scan.rendered  # noqa: F401
except ImportError:  # until then, a test-only stand-in with the same contract
    _spec = importlib.util.spec_from_file_location(
        "jupyter_qsecure.scan.rendered", Path(__file__).with_name("rendered_stand_in.py")
    )
    assert _spec is not None and _spec.loader is not None
    _stand_in = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_stand_in)
    sys.modules["jupyter_qsecure.scan.rendered"] = _stand_in

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
