"""Scanner test configuration."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The scan reads the fingerprint key and registry of the data dir: never the user's.

    Modules that run ``jupyter qsecure scan`` use it for every test
    (``pytestmark = pytest.mark.usefixtures("data_dir")``).
    """
    path = tmp_path_factory.mktemp("qsecure-data")
    monkeypatch.setenv("QSECURE_DATA_DIR", str(path))
    return path
