"""Fixtures of the review and promotion tests: a team of reviewers, a wheel of this package."""

from __future__ import annotations

from pathlib import Path

import pytest
from promote_helpers import Team

from jupyter_qsecure.testing.wheels import build_wheel


@pytest.fixture
def team(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Team:
    """People with their own reviewer keys sharing one ledger (:class:`promote_helpers.Team`)."""
    return Team(tmp_path, monkeypatch, capsys)


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a wheel of the jupyter-qsecure under test: the resolver finds
    jupyter-qsecure there, as it would on a real index."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    build_wheel(folder)
    return folder
