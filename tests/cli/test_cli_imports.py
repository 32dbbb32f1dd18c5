"""The CLI imports a command's dependencies only when that command runs.

``jupyter qsecure --version`` and ``audit note`` must start fast (issue 15: under
0.3 s; ``benchmarks/cli_startup_bench.py`` measures it). What makes them slow is
importing Qiskit, detect-secrets, kingfisher, Dask, psycopg or hvac at start-up, so
this test checks *what is imported*, in a fresh interpreter, never how long it takes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: Top-level packages no start-up path may import (each costs 0.05 to 0.9 s).
HEAVY = (
    "qiskit",
    "qiskit_aer",
    "qiskit_qasm3_import",
    "numpy",
    "detect_secrets",
    "kingfisher_sdk",
    "dask",
    "distributed",
    "psycopg",
    "hvac",
    "requests",
    "jupyter_server",
    "nbformat",
)

_PROBE = """
import contextlib, io, json, sys
from jupyter_qsecure.cli.main import main
argv = json.loads(sys.argv[1])
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        status = main(argv)
    except SystemExit as exited:
        status = exited.code
heavy = json.loads(sys.argv[2])
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(heavy))
print(json.dumps({"status": status, "loaded": loaded, "out": out.getvalue()}))
"""


def probe(argv: list[str], env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_version_imports_nothing_heavy(cli_env: dict[str, str]) -> None:
    result = probe(["--version"], cli_env)
    assert result["status"] == 0 and "jupyter-qsecure" in str(result["out"])
    assert result["loaded"] == []


def test_audit_note_imports_nothing_heavy(cli_env: dict[str, str]) -> None:
    result = probe(["audit", "note", "rotated", "the", "transit", "key"], cli_env)
    assert result["status"] == 0 and "recorded note as entry 0" in str(result["out"])
    assert result["loaded"] == []


def test_help_lists_every_command_without_importing_them(cli_env: dict[str, str]) -> None:
    result = probe(["--help"], cli_env)
    assert result["status"] == 0
    for command in ("scan", "audit", "jobs", "vault", "lab", "promote", "recover"):
        assert command in str(result["out"])
    assert result["loaded"] == []


def test_scan_imports_neither_qiskit_nor_dask_nor_psycopg(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    clean = tmp_path / "clean.py"
    clean.write_text("print('hello')\n")
    result = probe(["scan", str(clean)], cli_env)
    assert result["status"] == 0, result
    loaded = set(map(str, result["loaded"]))  # type: ignore[call-overload]
    assert not loaded & {
        "qiskit",
        "qiskit_aer",
        "qiskit_qasm3_import",
        "dask",
        "distributed",
        "psycopg",
        "jupyter_server",
    }


def test_command_table_names_every_registered_command() -> None:
    # main imports only the module of the command that runs, found in COMMANDS: a command
    # registered by a module but missing there (or named after the wrong module) would
    # be an "invalid choice" for users.
    from jupyter_qsecure.cli.main import COMMANDS, build_parser

    parser = build_parser()
    registered = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert list(registered) == list(COMMANDS)
    for name, module in COMMANDS.items():
        alone = build_parser((module,))._subparsers._group_actions[0].choices  # type: ignore[union-attr]
        assert name in alone, (name, module)
