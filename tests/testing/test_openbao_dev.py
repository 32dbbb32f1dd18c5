"""The OpenBao dev-server helper itself: start, health, isolation, stop, restart, failures."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_qsecure.testing import openbao as openbao_mod
from jupyter_qsecure.testing.openbao import (
    OpenBaoDev,
    OpenBaoStartError,
    OpenBaoUnavailable,
    dev_openbao,
    find_bao_binary,
)
from jupyter_qsecure.testing.ports import free_loopback_port, port_is_free

pytestmark = pytest.mark.openbao


@pytest.fixture(autouse=True)
def _needs_bao() -> None:
    try:
        find_bao_binary()
    except OpenBaoUnavailable as exc:
        pytest.skip(f"OpenBao not available: {exc}")


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_dev_server_starts_answers_and_is_cleaned_up() -> None:
    with dev_openbao() as bao:
        assert bao.addr.startswith("http://127.0.0.1:") and bao.addr.endswith(f":{bao.port}")
        assert bao.is_running()
        health = bao.health()
        assert health["initialized"] is True and health["sealed"] is False
        assert bao.root_token not in repr(bao)
        assert len(bao.root_token) >= 32
        assert bao.client().is_authenticated()
        workdir = bao.workdir
        assert workdir is not None and workdir.is_dir()
        process = bao.process
        assert process is not None
        if Path(f"/proc/{process.pid}").exists():
            assert bao.root_token not in _cmdline(process.pid)  # not visible in ps
            assert "-dev-no-store-token" in _cmdline(process.pid)
        assert not list((workdir / "home").glob(".vault-token"))
        assert "<redacted>" in bao.log_tail(400)
        assert bao.root_token not in bao.log_tail(400)
    assert process.poll() is not None  # stopped
    assert not workdir.exists()  # temp dir removed
    with pytest.raises(ConnectionRefusedError):  # nothing listens any more
        socket.create_connection(("127.0.0.1", bao.port), timeout=2).close()


def test_helpers_are_idempotent() -> None:
    with dev_openbao() as bao:
        for _ in range(2):
            bao.enable_transit()
            bao.enable_transit("transit-two")
            bao.enable_kv()  # dev mode already has KV v2 at secret/
            bao.enable_kv("kv-extra")
        mounts = bao.client().sys.list_mounted_secrets_engines()["data"]
        assert mounts["transit/"]["type"] == "transit"
        assert mounts["transit-two/"]["type"] == "transit"
        assert mounts["kv-extra/"]["options"]["version"] == "2"
        with pytest.raises(RuntimeError, match="already mounted as transit"):
            bao.enable_kv("transit")


def test_stop_and_restart_keep_address_and_token_but_lose_state() -> None:
    with dev_openbao() as bao:
        bao.enable_transit()
        client = bao.client()
        client.secrets.kv.v2.create_or_update_secret(path="x", secret={"v": "1"})
        addr, token = bao.addr, bao.root_token

        bao.stop()
        bao.stop()  # idempotent
        assert not bao.is_running()
        with pytest.raises(OSError):
            bao.health(timeout=2)

        bao.restart()
        assert (bao.addr, bao.root_token) == (addr, token)
        assert bao.health()["sealed"] is False
        assert client.is_authenticated()  # same root token works again
        mounts = client.sys.list_mounted_secrets_engines()["data"]
        assert "transit/" in mounts  # re-enabled by restart()
        with pytest.raises(Exception):  # noqa: B017 - dev mode is in memory: the secret is gone
            client.secrets.kv.v2.read_secret_version(path="x", raise_on_deleted_version=True)

        bao.process.kill()  # type: ignore[union-attr]
        bao.process.wait()  # type: ignore[union-attr]
        bao.ensure_running()
        assert bao.is_running() and bao.health()["sealed"] is False


def test_port_in_use_fails_clearly_without_leaking_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "TOKEN-" + "x" * 30
    monkeypatch.setattr(openbao_mod.secrets, "token_urlsafe", lambda n=32: secret)
    made: list[str] = []
    real_mkdtemp = openbao_mod.tempfile.mkdtemp

    def recording_mkdtemp(*args: Any, **kwargs: Any) -> str:
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(openbao_mod.tempfile, "mkdtemp", recording_mkdtemp)
    port = free_loopback_port(consecutive=2)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        with pytest.raises(OpenBaoStartError) as info:
            with dev_openbao(port=port, startup_timeout=30):
                pass
    text = str(info.value)
    assert f"127.0.0.1:{port}" in text
    assert "address already in use" in text  # the log tail says why
    assert secret not in text
    assert made and not any(Path(path).exists() for path in made)  # temp dir removed


def test_missing_binary_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv(openbao_mod.BINARY_ENV, str(tmp_path / "no-such-bao"))
    with pytest.raises(OpenBaoUnavailable, match="not an executable"):
        find_bao_binary()
    with pytest.raises(OpenBaoUnavailable):
        with dev_openbao():
            pass


def test_session_fixture(openbao: OpenBaoDev, openbao_client: Any) -> None:
    assert openbao_client.is_authenticated()
    mounts = openbao_client.sys.list_mounted_secrets_engines()["data"]
    assert mounts["transit/"]["type"] == "transit"
    assert mounts["secret/"]["options"]["version"] == "2"


def test_free_loopback_port() -> None:
    port = free_loopback_port(consecutive=3)
    assert all(port_is_free(port + i) for i in range(3))
    with pytest.raises(ValueError):
        free_loopback_port(consecutive=0)


def test_server_that_never_gets_ready_times_out_with_redacted_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "bao"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "starting; root token is $BAO_DEV_ROOT_TOKEN_ID"\n'
        'echo "Unseal Key: c2VjcmV0LXVuc2VhbC1rZXk="\n'
        "exec sleep 120\n"  # a server that hangs before it is ready
    )
    fake.chmod(0o700)
    monkeypatch.setenv(openbao_mod.BINARY_ENV, str(fake))
    secret = "TOKEN-" + "y" * 30
    monkeypatch.setattr(openbao_mod.secrets, "token_urlsafe", lambda n=32: secret)
    started = time.monotonic()
    with pytest.raises(OpenBaoStartError, match="did not start within 1 s") as info:
        with dev_openbao(startup_timeout=1):
            pass
    assert time.monotonic() - started < 15
    text = str(info.value)
    assert "root token is <redacted>" in text and secret not in text
    assert "Unseal Key: <redacted>" in text and "c2VjcmV0" not in text


def test_port_in_use_fails_fast() -> None:
    port = free_loopback_port(consecutive=2)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        started = time.monotonic()
        with pytest.raises(OpenBaoStartError):
            with dev_openbao(port=port):
                pass
        assert time.monotonic() - started < 10
