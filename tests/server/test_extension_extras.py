"""Without the ``jobs`` extra the server does not start, rather than start ungated.

Jupyter Server logs an extension that fails to import and serves on without it: no save
gate, no masking. jupyter-qsecure's extension stops the server instead, naming the extra.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

_SERVER = """
import sys
sys.modules["qiskit"] = None  # an install without jupyter-qsecure[jobs]
from jupyter_server.serverapp import ServerApp
ServerApp.launch_instance(argv=sys.argv[1:])
"""


def isolated_env(tmp_path: Path) -> dict[str, str]:
    """This environment with Jupyter's and jupyter-qsecure's folders under ``tmp_path``."""
    env = dict(os.environ)
    for name in ("CONFIG", "DATA", "RUNTIME"):
        env[f"JUPYTER_{name}_DIR"] = str(tmp_path / name.lower())
    env["QSECURE_DATA_DIR"] = str(tmp_path / ".qsecure")
    return env


def test_server_without_the_jobs_extra_refuses_to_start(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
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


def test_server_whose_extension_fails_to_load_stops_without_quoting_the_setting(
    tmp_path: Path,
) -> None:
    """Any error while the extension loads stops the server (Jupyter would serve on ungated).

    Here the ledger's PostgreSQL server does not answer; its URL carries a password,
    which must not appear in what the server prints.
    """
    password = "pw-" + secrets.token_urlsafe(16)
    env = isolated_env(tmp_path)
    env["QSECURE_LEDGER"] = f"postgresql://qsecure:{password}@127.0.0.1:{_closed_port()}/ledger"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            '--ServerApp.jpserver_extensions={"jupyter_qsecure_server": True}',
            f"--ServerApp.root_dir={tmp_path}",
            "--ServerApp.ip=127.0.0.1",
            "--port=0",
            "--no-browser",
            "--allow-root",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,  # a server that started anyway runs until this fails the test
        check=False,
    )
    assert done.returncode != 0
    assert "jupyter-qsecure could not start its server extension, so the server stops" in (
        done.stderr
    )
    assert "is running at" not in done.stderr  # it never served
    assert password not in done.stderr + done.stdout


def _closed_port() -> int:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
