"""``jupyter qsecure secret put|list|rm`` against an external OpenBao (BAO_ADDR/BAO_TOKEN).

Run as a user runs them, in a subprocess; the value only ever goes through stdin.
The embedded default is covered end to end in tests/server/test_first_hour.py.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_qsecure.testing.cli import run_qsecure
from jupyter_qsecure.testing.openbao import OpenBaoDev
from jupyter_qsecure.testing.values import Hidden
from jupyter_qsecure.vault import layout

NAME = "cli_key"


@pytest.fixture
def external(openbao: OpenBaoDev, openbao_client: Any, tmp_path: Path) -> Iterator[dict[str, str]]:
    layout.bootstrap(openbao_client)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_", "QSECURE_"))}
    env.update(
        BAO_ADDR=openbao.addr,
        BAO_TOKEN=openbao.root_token,
        QSECURE_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
    )
    yield env
    # deleting what is not there succeeds too
    openbao_client.secrets.kv.v2.delete_metadata_and_all_versions(
        path=f"qsecure/dev/{NAME}", mount_point="secret"
    )


def run(env: dict[str, str], *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_qsecure(*argv, env=env, stdin=stdin)


def test_put_list_rotate_rm_on_an_external_openbao(
    external: dict[str, str], openbao_client: Any
) -> None:
    value, rotated = Hidden(secrets.token_urlsafe(24)), Hidden(secrets.token_urlsafe(24))
    put = run(external, "secret", "put", NAME, stdin=value + "\n")
    assert put.returncode == 0, put.stderr
    assert f"stored {NAME} for dev (version 1, secret/qsecure/dev/{NAME}#value)" in put.stdout
    stored = openbao_client.secrets.kv.v2.read_secret_version(
        path=f"qsecure/dev/{NAME}", mount_point="secret", raise_on_deleted_version=True
    )
    assert stored["data"]["data"] == {"value": value}  # one trailing newline stripped

    again = run(external, "secret", "put", NAME, stdin=rotated)
    assert again.returncode == 0 and f"rotated {NAME} for dev (version 2" in again.stdout

    listed = run(external, "secret", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = [s for s in json.loads(listed.stdout)["secrets"] if s["name"] == NAME]
    assert entry["version"] == 2 and entry["location"] == f"secret/qsecure/dev/{NAME}#value"

    removed = run(external, "secret", "rm", NAME)
    assert removed.returncode == 0, removed.stderr
    missing = run(external, "secret", "rm", NAME)
    assert missing.returncode == 2 and f"no secret named {NAME} in dev" in missing.stderr
    for result in (put, again, listed, removed, missing):
        for text in (value, rotated, external["BAO_TOKEN"]):
            assert text not in result.stdout + result.stderr


def test_the_value_never_comes_from_the_command_line(external: dict[str, str]) -> None:
    value = Hidden(secrets.token_urlsafe(24))
    on_argv = run(external, "secret", "put", NAME, value)
    assert on_argv.returncode == 2 and "unrecognized arguments" in on_argv.stderr
    empty = run(external, "secret", "put", NAME, stdin="")
    assert empty.returncode == 2 and "no value for cli_key" in empty.stderr
    bad = run(external, "secret", "put", "no/slashes", stdin=value)
    assert bad.returncode == 2 and "not a valid secret name" in bad.stderr
    for result in (empty, bad):
        assert value not in result.stdout + result.stderr


def test_put_is_refused_inside_a_kernel(external: dict[str, str]) -> None:
    inside = run({**external, "JPY_PARENT_PID": str(os.getpid())}, "secret", "put", NAME, stdin="x")
    assert inside.returncode == 2 and "kernel" in inside.stderr
