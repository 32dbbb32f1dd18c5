"""Without the ``jobs`` extra the server does not start, rather than start ungated.

Jupyter Server logs an extension that fails to import and serves on without it: no save
gate, no masking. jupyter-qsecure's extension stops the server instead, naming the extra.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_SERVER = """
import sys
sys.modules["qiskit"] = None  # an install without jupyter-qsecure[jobs]
from jupyter_server.serverapp import ServerApp
ServerApp.launch_instance(argv=sys.argv[1:])
"""


def test_server_without_the_jobs_extra_refuses_to_start(tmp_path: Path) -> None:
    env = dict(os.environ)
    for name in ("CONFIG", "DATA", "RUNTIME"):
        env[f"JUPYTER_{name}_DIR"] = str(tmp_path / name.lower())
    env["QSECURE_DATA_DIR"] = str(tmp_path / ".qsecure")
    argv = [
        '--ServerApp.jpserver_extensions={"jupyter_qsecure_server": True}',
        f"--ServerApp.root_dir={tmp_path}",
        "--ServerApp.ip=127.0.0.1",
        "--port=0",
        "--no-browser",
    ]
    done = subprocess.run(
        [sys.executable, "-c", _SERVER, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,  # a server that started anyway runs until this fails the test
        check=False,
    )
    assert done.returncode != 0
    assert "needs qiskit, which is not installed (the 'jobs' extra" in done.stderr
    assert "pip install 'jupyter-qsecure[jobs]'" in done.stderr
