"""Fixtures of the promotion tests: a wheel of this jupyter-qsecure for the resolver."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_review import team  # noqa: F401 (the review tests' people and ledger)

from jupyter_qsecure.promote.lock import uv_binary

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a wheel of the jupyter-qsecure under test (``uv build``): the
    resolver finds jupyter-qsecure there, as it would on a real index."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    done = subprocess.run(
        [uv_binary(), "build", "--wheel", "--out-dir", str(folder), "--no-config", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(folder.glob("jupyter_qsecure-*.whl"))
    return folder
