"""SLOW: jupyter-qsecure installed without extras scans, as the pre-commit hook does.

A fresh virtual environment gets this package's wheel alone (``uv venv`` + ``uv pip
install``, this machine's indexes), as pre-commit installs the hook's repository: no
Qiskit, Aer, Dask or psycopg. There the hook's own command must find a generated fake
secret, and a command that needs an extra must name it. Building the environment
links ~100 packages from uv's cache (about 35 s here; longer with a cold cache).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from jupyter_qsecure.promote.lock import index_settings, uv_binary
from jupyter_qsecure.testing import planted as pl
from jupyter_qsecure.testing.wheels import SOURCE_ROOT, build_wheel, deploy_env

HEAVY = ("qiskit", "qiskit_aer", "qiskit_qasm3_import", "dask", "distributed", "psycopg")


def _run(*argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=1200, check=False, **kwargs
    )


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("light")
    wheel = build_wheel(root / "wheels")
    venv = root / "venv"
    uv = uv_binary()
    base_python = getattr(sys, "_base_executable", sys.executable)
    made = _run(uv, "venv", "--no-config", "--python", base_python, str(venv), env=deploy_env())
    assert made.returncode == 0, made.stderr
    python = str(venv / "bin" / "python")
    indexes = index_settings().uv_arguments()
    installed = _run(
        uv, "pip", "install", "--no-config", "--python", python, *indexes, str(wheel),
        env=deploy_env(),
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv


def test_the_light_install_has_no_heavy_dependency(light_venv: Path) -> None:
    code = (
        "import importlib.util, json; "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if importlib.util.find_spec(m)]))"
    )
    done = _run(str(light_venv / "bin" / "python"), "-c", code, env=deploy_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_hook_finds_a_planted_secret_in_the_light_install(
    light_venv: Path, tmp_path: Path
) -> None:
    (hook,) = yaml.safe_load((SOURCE_ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["language"] == "python" and not hook.get("additional_dependencies")
    command, *args = shlex.split(hook["entry"])  # what pre-commit runs, with the file names
    provider = pl.PROVIDER_BY_FAMILY["github"]
    value = pl.make_secret(provider)
    work = tmp_path / "work"
    work.mkdir()
    planted = work / "settings.py"
    planted.write_text(pl.snippet(provider, "py", value))
    (work / "clean.py").write_text("print('hello')\n")
    env = deploy_env(
        QSECURE_DATA_DIR=str(tmp_path / "data"), JUPYTER_CONFIG_DIR=str(tmp_path / "config")
    )
    found = _run(str(light_venv / "bin" / command), *args, str(planted), cwd=work, env=env)
    assert found.returncode == 1, found.stderr[-2000:]
    assert "settings.py" in found.stdout and "1 secret found" in found.stdout
    assert value not in found.stdout + found.stderr
    clean = _run(str(light_venv / "bin" / command), *args, "clean.py", cwd=work, env=env)
    assert clean.returncode == 0, clean.stderr[-2000:]


def test_a_command_needing_an_extra_names_it_in_the_light_install(
    light_venv: Path, tmp_path: Path
) -> None:
    env = deploy_env(
        QSECURE_DATA_DIR=str(tmp_path / "data"), JUPYTER_CONFIG_DIR=str(tmp_path / "config")
    )
    cli = str(light_venv / "bin" / "jupyter-qsecure")
    noted = _run(cli, "audit", "note", "light install", env=env)  # the SQLite ledger works
    assert noted.returncode == 0, noted.stderr
    replayed = _run(cli, "replay", "0123456789abcdef", env=env)
    assert replayed.returncode == 2
    assert "(the 'jobs' extra of jupyter-qsecure)" in replayed.stderr
    assert "pip install 'jupyter-qsecure[jobs]'" in replayed.stderr
    assert "Traceback" not in replayed.stderr
