"""``jupyter qsecure`` run as a user runs it, in a new process, for the CLI's tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

#: The command line a user types (``jupyter`` finds ``jupyter-qsecure`` on the PATH).
JUPYTER_QSECURE = [sys.executable, "-m", "jupyter", "qsecure"]


def run_qsecure(
    *argv: str, env: Mapping[str, str], stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``jupyter qsecure ARGV`` with ``env`` as its whole environment; text output."""
    return subprocess.run(
        [*JUPYTER_QSECURE, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=timeout,
    )
