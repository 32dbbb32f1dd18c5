"""The first hour on the embedded default, from a plain terminal.

The embedded OpenBao (``jupyter qsecure vault up``, as ``jupyter qsecure lab`` starts
it) under the server's data dir; the server gets its address and server token as
``jupyter qsecure lab`` gives them. Commands then run as a researcher runs them in
another terminal: ``python -m jupyter qsecure ...`` with the data dir and nothing else
(no BAO_ADDR, no BAO_TOKEN). No output may hold a value or a token.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from save_gate_helpers import fake_aws_key
from server_helpers import extension_config, start, stdout_of

from jupyter_qsecure.testing.cli import run_qsecure
from jupyter_qsecure.testing.openbao import OpenBaoUnavailable, find_bao_binary
from jupyter_qsecure.testing.values import Hidden
from jupyter_qsecure.vault.embedded import EmbeddedOpenBao


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedOpenBao]:
    try:
        find_bao_binary()
    except OpenBaoUnavailable as exc:
        pytest.skip(f"OpenBao not available: {exc}")
    bao = EmbeddedOpenBao(tmp_path_factory.mktemp("first-hour") / "qsecure-data")
    bao.up("dev")
    try:
        yield bao
    finally:
        bao.down()


@pytest.fixture
def qsecure_data_dir(embedded: EmbeddedOpenBao) -> Path:
    return embedded.data_dir


@pytest.fixture
def jp_server_config(embedded: EmbeddedOpenBao, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """As `jupyter qsecure lab` starts it: BAO_ADDR and the server token in its environment."""
    monkeypatch.setenv("BAO_ADDR", str(embedded.addr))
    monkeypatch.setenv("BAO_TOKEN", embedded.server_token())
    return extension_config(data_dir=str(embedded.data_dir), ledger_signer="local")


def terminal(data_dir: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``jupyter qsecure ARGV`` in a new process with a plain terminal's environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BAO_", "VAULT_", "QSECURE_", "JPY_", "JUPYTER_SERVER"))
    }
    env["QSECURE_DATA_DIR"] = str(data_dir)
    return run_qsecure(*argv, env=env, stdin=stdin)


def no_tokens(embedded: EmbeddedOpenBao, *outputs: str) -> None:
    tokens = [
        (embedded.root / name).read_text().strip()
        for name in ("admin.token", "server.token", "unseal.key")
    ]
    for output in outputs:
        for token in tokens:
            assert token not in output


async def test_secret_put_in_a_terminal_then_secrets_get_in_a_kernel(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    qsecure_kernel: str,
    embedded: EmbeddedOpenBao,
) -> None:
    value = Hidden("first-" + secrets.token_urlsafe(30))
    kernel_id, client = await start(jp_fetch, jp_ws_fetch, qsecure_kernel, "legacy")
    await client.execute("pass")  # the kernel holds credentials already

    put = terminal(embedded.data_dir, "secret", "put", "ibm_token", stdin=value + "\n")
    assert put.returncode == 0, put.stderr
    assert "stored ibm_token for dev" in put.stdout and 'secrets.get("ibm_token")' in put.stdout
    listed = terminal(embedded.data_dir, "secret", "list")
    assert listed.returncode == 0 and "ibm_token" in listed.stdout

    messages = await client.execute(
        "from jupyter_qsecure import secrets\n"
        "import hashlib\n"
        "v = secrets.get('ibm_token')\n"
        "print('digest', hashlib.sha256(v.encode()).hexdigest())\n"
        "print('raw', v)\n"
    )
    out = stdout_of(messages)
    assert f"digest {hashlib.sha256(value.encode()).hexdigest()}" in out
    assert "raw «secret:ibm_token»" in out and value not in json.dumps(messages)

    removed = terminal(embedded.data_dir, "secret", "rm", "ibm_token")
    assert removed.returncode == 0, removed.stderr
    for result in (put, listed, removed):
        assert value not in result.stdout + result.stderr
        no_tokens(embedded, result.stdout, result.stderr)
    await jp_fetch("api", "kernels", kernel_id, method="DELETE")


async def test_recover_restore_in_a_plain_terminal(
    jp_fetch: Any, embedded: EmbeddedOpenBao, tmp_path: Path
) -> None:
    """The command the refusal prints works as written: the copy was sealed by the
    embedded OpenBao's transit key, and the terminal has no BAO_ADDR or token."""
    key = fake_aws_key()
    content = f"aws_access_key_id = {key}\n"
    response = await jp_fetch(
        "api",
        "contents",
        "keys.txt",
        method="PUT",
        body=json.dumps({"type": "file", "format": "text", "content": content}),
        raise_error=False,
    )
    assert response.code == 422
    refusal = json.loads(response.body)
    command = f"jupyter qsecure recover restore {refusal['recovery_id']}"
    assert command in refusal["message"]
    record = json.loads(
        (embedded.data_dir / "recovery" / f"{refusal['recovery_id']}.json").read_text()
    )
    assert record["wrapper"] == "transit"

    target = tmp_path / "restored.txt"
    restored = terminal(
        embedded.data_dir, "recover", "restore", refusal["recovery_id"], "-o", str(target)
    )
    assert restored.returncode == 0, restored.stderr
    assert target.read_text() == content
    assert key not in restored.stdout + restored.stderr
    no_tokens(embedded, restored.stdout, restored.stderr)


def test_a_command_starts_a_stopped_embedded_openbao_and_says_so(
    embedded: EmbeddedOpenBao,
) -> None:
    embedded.down()
    listed = terminal(embedded.data_dir, "secret", "list")
    assert listed.returncode == 0, listed.stderr
    assert "started the embedded OpenBao" in listed.stderr and "vault down" in listed.stderr
    assert embedded.status().running
    no_tokens(embedded, listed.stdout, listed.stderr)
