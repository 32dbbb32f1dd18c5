"""What counts as running inside a Jupyter kernel (commands a kernel must not run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_qsecure.kernel_guard import InsideKernel, kernel_context, refuse_inside_kernel


@pytest.fixture
def outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JPY_PARENT_PID", raising=False)


def test_a_plain_process_is_not_a_kernel(outside: None) -> None:
    assert kernel_context() is None
    refuse_inside_kernel("restoring a recovery copy")  # no error


def test_the_kernel_environment_marker_counts(
    outside: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JPY_PARENT_PID", "4242")
    with pytest.raises(InsideKernel) as info:
        refuse_inside_kernel("restoring a recovery copy")
    assert info.value.exit_code == 2
    assert "restoring a recovery copy is refused inside a Jupyter kernel" in info.value.message
    assert "JPY_PARENT_PID=4242" in info.value.message and "terminal" in (info.value.hint or "")


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "ipykernel_launcher", "-f", "/run/user/1/jupyter/runtime/kernel-ab12.json"],
        ["-c", "pass", "--", "--f=/tmp/kernel-7f3e-11.json"],  # any kernel: its connection file
        ["-m", "ipykernel", "--ext", "jupyter_qsecure.kernel"],
    ],
)
def test_a_process_started_under_a_kernel_counts_without_the_marker(
    outside: None, tmp_path: Path, argv: list[str]
) -> None:
    # A parent whose command line is a kernel's starts the check as its child, with
    # JPY_PARENT_PID removed from the child's environment.
    probe = (
        "import json, os, subprocess, sys\n"
        "env = {k: v for k, v in os.environ.items() if k != 'JPY_PARENT_PID'}\n"
        "code = 'from jupyter_qsecure.kernel_guard import kernel_context; print(kernel_context())'\n"
        "print(subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,\n"
        "                     text=True, check=True).stdout.strip())\n"
    )
    if argv[0] == "-c":
        argv = ["-c", probe, *argv[2:]]
    else:  # run the probe as the "kernel" module's replacement: same argv shape
        script = tmp_path / "probe.py"
        script.write_text(probe)
        argv = [str(script), *argv]
    out = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert out.startswith("it was started by a kernel (process "), out
