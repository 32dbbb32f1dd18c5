"""``jupyter qsecure`` as a process: a closed output pipe, a missing optional extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jupyter_qsecure.cli.main import main
from jupyter_qsecure.testing.cli import JUPYTER_QSECURE

SIGPIPE_STATUS = 141  # 128 + SIGPIPE, what `yes | head -1` reports under pipefail


def _with_output_closed(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``argv`` with its stdout's reading end closed before it writes anything."""
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # like `| head -0`: every write now fails with EPIPE
    try:
        stderr = process.stderr.read()
        status = process.wait(timeout=120)
    finally:
        process.kill()
        process.stderr.close()
    return status, stderr


@pytest.mark.parametrize(
    ("notes", "unbuffered"),
    [(1, False), (200, False), (1, True)],
    # where the write fails: stdout's buffer flushed at the end, filled while the command
    # runs, or the first print (PYTHONUNBUFFERED)
    ids=["flushed-at-exit", "buffer-full", "unbuffered"],
)
def test_a_closed_pipe_ends_the_command_quietly(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], notes: int, unbuffered: bool
) -> None:
    for i in range(notes):
        assert main(["audit", "note", f"remark {i} " + "x" * 40]) == 0
    capsys.readouterr()
    env = _buffering(cli_env, unbuffered)
    status, stderr = _with_output_closed([*JUPYTER_QSECURE, "audit", "export"], env)
    assert stderr == ""
    assert status == SIGPIPE_STATUS


def test_help_into_a_closed_pipe_is_quiet(cli_env: dict[str, str]) -> None:
    env = _buffering(cli_env, unbuffered=False)
    status, stderr = _with_output_closed([*JUPYTER_QSECURE, "--help"], env)
    assert (status, stderr) == (SIGPIPE_STATUS, "")


def _buffering(env: dict[str, str], unbuffered: bool) -> dict[str, str]:
    env = {k: v for k, v in env.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def test_a_command_without_its_extra_names_the_extra(cli_env: dict[str, str]) -> None:
    # qiskit made unimportable (None in sys.modules), as in an install without [jobs].
    code = (
        "import sys; sys.modules['qiskit'] = None; "
        "from jupyter_qsecure.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "replay", "0123456789abcdef"],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "needs qiskit, which is not installed (the 'jobs' extra" in done.stderr
    assert "pip install 'jupyter-qsecure[jobs]'" in done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr


def test_a_postgres_ledger_without_psycopg_names_the_extra(cli_env: dict[str, str]) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None; "
        "from jupyter_qsecure.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "audit",
            "note",
            "--ledger",
            "postgresql://u@127.0.0.1:9/db",
            "x",
        ],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "(the 'postgres' extra" in done.stderr
    assert "pip install 'jupyter-qsecure[postgres]'" in done.stderr
