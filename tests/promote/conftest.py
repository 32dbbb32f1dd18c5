"""Fixtures of the promotion tests: the review tests' people, a wheel of this package."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_review import team  # noqa: F401 (the review tests' people and ledger)

from jupyter_qsecure.testing.wheels import build_wheel


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a wheel of the jupyter-qsecure under test: the resolver finds
    jupyter-qsecure there, as it would on a real index."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    build_wheel(folder)
    return folder
