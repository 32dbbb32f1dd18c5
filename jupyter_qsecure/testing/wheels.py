"""A wheel of the jupyter-qsecure under test, for tests that resolve or install it."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["SOURCE_ROOT", "build_wheel"]

#: The source tree this package was imported from (the repository in a checkout).
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def build_wheel(folder: Path) -> Path:
    """Build the wheel of :data:`SOURCE_ROOT` into ``folder`` with ``uv build``; return it."""
    from ..promote.lock import uv_binary

    done = subprocess.run(
        [
            uv_binary(),
            "build",
            "--wheel",
            "--out-dir",
            str(folder),
            "--no-config",
            str(SOURCE_ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"uv build failed: {done.stderr[-2000:]}")
    (wheel,) = folder.glob("jupyter_qsecure-*.whl")
    return wheel
