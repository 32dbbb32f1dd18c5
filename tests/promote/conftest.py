"""Fixtures of the review and promotion tests: a team of reviewers (``wheelhouse``, a
wheel of this package, is in ``tests/conftest.py``: the server's promotion tests use it
too)."""

from __future__ import annotations

from pathlib import Path

import pytest
from promote_helpers import Team


@pytest.fixture
def team(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Team:
    """People with their own reviewer keys sharing one ledger (:class:`promote_helpers.Team`)."""
    return Team(tmp_path, monkeypatch, capsys)
