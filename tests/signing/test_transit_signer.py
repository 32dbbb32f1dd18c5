"""TransitSigner against a REAL OpenBao dev server (fixtures from jupyter_qsecure.testing)."""

from __future__ import annotations

import base64
import socket
import time
import uuid
from typing import Any

import hvac
import pytest

from jupyter_qsecure.errors import SigningError
from jupyter_qsecure.signing.signers import (
    Ed25519FileSigner,
    KeyRing,
    SignatureProblem,
    SignatureRecord,
    Signer,
    verify_signature,
)
from jupyter_qsecure.signing.transit import MAX_BATCH, TransitSigner
from jupyter_qsecure.testing.openbao import OpenBaoDev, dev_openbao
from jupyter_qsecure.testing.ports import free_loopback_port
from jupyter_qsecure.vault.client import VaultConnection

pytestmark = pytest.mark.openbao


@pytest.fixture
def key_name() -> str:
    return f"ledger-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def signer(openbao_client: Any, key_name: str) -> TransitSigner:
    signer = TransitSigner(openbao_client, key_name=key_name)
    signer.ensure_key()
    return signer


def _offline_keyring(signer: TransitSigner) -> KeyRing:
    """What a third party holds: the public keys, round-tripped through the keyring file format."""
    return KeyRing.from_json(KeyRing(signer.public_keys()).to_json())


def _flip(signature: SignatureRecord) -> SignatureRecord:
    raw = bytearray(base64.b64decode(signature.signature))
    raw[5] ^= 0x01
    return signature.model_copy(update={"signature": base64.b64encode(bytes(raw)).decode()})


# ---- signing and offline verification -------------------------------------------------------
def test_sign_record_shape_and_offline_verification(
    signer: TransitSigner, key_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    typed: Signer = signer  # satisfies the Signer protocol
    message = b'{"root":"abc","size":3}'
    record = typed.sign(message)
    assert record.key_id == f"transit:transit/{key_name}" == typed.key_id
    assert record.key_version == 1
    assert record.algorithm == "ed25519" == typed.algorithm
    assert len(base64.b64decode(record.signature)) == 64
    keyring = _offline_keyring(signer)
    (public,) = list(keyring)
    assert public.source == "transit" and public.key_version == 1
    assert len(base64.b64decode(public.public_key)) == 32

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access during offline verification")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    verify_signature(record, message, keyring)  # no OpenBao, no network


def test_rotation_new_version_signs_and_old_signatures_still_verify(
    signer: TransitSigner, openbao_client: Any, key_name: str
) -> None:
    before = signer.sign(b"checkpoint 1")
    keyring_before_rotation = _offline_keyring(signer)
    openbao_client.secrets.transit.rotate_key(name=key_name, mount_point="transit")
    after = signer.sign(b"checkpoint 2")
    assert (before.key_version, after.key_version) == (1, 2)

    keys = signer.public_keys()
    assert [k.key_version for k in keys] == [1, 2]
    assert keys[0].public_key != keys[1].public_key
    keyring = _offline_keyring(signer)
    verify_signature(before, b"checkpoint 1", keyring)
    verify_signature(after, b"checkpoint 2", keyring)
    # a keyring exported before the rotation does not know version 2
    with pytest.raises(SignatureProblem) as info:
        verify_signature(after, b"checkpoint 2", keyring_before_rotation)
    assert info.value.reason == "unknown key"
    # and the rotate() helper moves on to version 3
    assert signer.rotate() == 3
    assert signer.sign(b"checkpoint 3").key_version == 3


def test_tampered_message_or_signature_is_a_bad_signature(signer: TransitSigner) -> None:
    message = b"tree_size=10 root=00ff"
    record = signer.sign(message)
    keyring = _offline_keyring(signer)
    with pytest.raises(SignatureProblem) as info:
        verify_signature(record, message + b" ", keyring)
    assert info.value.reason == "bad signature"
    with pytest.raises(SignatureProblem) as info:
        verify_signature(_flip(record), message, keyring)
    assert info.value.reason == "bad signature"


def test_key_absent_from_keyring_is_unknown_key(signer: TransitSigner, tmp_path: Any) -> None:
    record = signer.sign(b"message")
    other = KeyRing(Ed25519FileSigner(tmp_path / "other.key").public_keys())
    for keyring in (KeyRing(), other):
        with pytest.raises(SignatureProblem) as info:
            verify_signature(record, b"message", keyring)
        assert info.value.reason == "unknown key"
    # a transit signature claiming another key version is unknown, not silently accepted
    claimed = record.model_copy(update={"key_version": 7})
    with pytest.raises(SignatureProblem) as info:
        verify_signature(claimed, b"message", _offline_keyring(signer))
    assert info.value.reason == "unknown key"


def test_sign_many_450_messages_in_bounded_batches(
    signer: TransitSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    original = signer._post

    def counting_post(path: str, body: dict[str, Any]) -> Any:
        sizes.append(len(body["batch_input"]))
        return original(path, body)

    monkeypatch.setattr(signer, "_post", counting_post)
    messages = [f"checkpoint {i}".encode() for i in range(450)]
    records = signer.sign_many(messages)
    assert sizes == [200, 200, 50] and max(sizes) <= MAX_BATCH
    assert len(records) == 450
    keyring = _offline_keyring(signer)
    for message, record in zip(messages, records, strict=True):
        verify_signature(record, message, keyring)  # order preserved
    with pytest.raises(SignatureProblem):
        verify_signature(records[0], messages[1], keyring)
    assert signer.sign_many([]) == []


# ---- keys ----------------------------------------------------------------------------------------
def test_ensure_key_is_idempotent_and_key_stays_private(
    signer: TransitSigner, openbao_client: Any, key_name: str
) -> None:
    first = signer.public_keys()
    signer.ensure_key()
    TransitSigner(openbao_client, key_name=key_name).ensure_key()
    assert signer.public_keys() == first
    data = openbao_client.secrets.transit.read_key(name=key_name)["data"]
    assert data["type"] == "ed25519"
    assert data["exportable"] is False  # the private key can never be exported


def test_missing_key_and_wrong_key_type_are_clear_errors(
    openbao_client: Any, key_name: str
) -> None:
    missing = TransitSigner(openbao_client, key_name=key_name)
    with pytest.raises(SigningError, match="does not exist") as info:
        missing.sign(b"x")
    assert "ensure_key" in str(info.value)
    with pytest.raises(SigningError, match="does not exist"):
        missing.public_keys()
    openbao_client.secrets.transit.create_key(name=key_name, key_type="aes256-gcm96")
    with pytest.raises(SigningError, match="not ed25519"):
        TransitSigner(openbao_client, key_name=key_name).ensure_key()
    with pytest.raises(SigningError, match="does not exist"):
        TransitSigner(openbao_client, mount="no-such-mount", key_name=key_name).sign(b"x")


# ---- faults --------------------------------------------------------------------------------------
def test_unreachable_openbao_fails_fast_without_leaking_the_token() -> None:
    token = "hvs.TEST-" + uuid.uuid4().hex
    addr = f"http://127.0.0.1:{free_loopback_port()}"  # nothing listens there
    signer = TransitSigner(addr=addr, token=token, timeout=5)
    for action in (lambda: signer.sign(b"x"), signer.public_keys, signer.ensure_key):
        started = time.monotonic()
        with pytest.raises(SigningError) as info:
            action()
        assert time.monotonic() - started < 5
        text = str(info.value)
        assert "cannot reach OpenBao/Vault at " + addr in text
        assert "vault up" in text
        assert token not in text and token not in repr(info.value)
        assert info.value.exit_code == 2


def test_token_without_transit_policy_gets_permission_denied(
    signer: TransitSigner, openbao: OpenBaoDev, openbao_client: Any, key_name: str
) -> None:
    token = openbao_client.auth.token.create(policies=["default"], ttl="10m")["auth"][
        "client_token"
    ]
    weak = TransitSigner(addr=openbao.addr, token=token, key_name=key_name)
    for action in (lambda: weak.sign(b"x"), weak.public_keys, lambda: weak.sign_many([b"x"])):
        with pytest.raises(SigningError, match="permission denied") as info:
            action()
        text = str(info.value)
        assert f"transit/sign/{key_name}" in text  # says which policy path is needed
        assert token not in text and openbao.root_token not in text


def test_invalid_token_is_a_clear_error(openbao: OpenBaoDev, key_name: str) -> None:
    bogus = "s." + uuid.uuid4().hex
    with pytest.raises(SigningError) as info:
        TransitSigner(addr=openbao.addr, token=bogus, key_name=key_name).sign(b"x")
    assert bogus not in str(info.value)
    assert "permission denied" in str(info.value) or "did not accept the token" in str(info.value)


def test_sealed_stopped_and_restarted_server() -> None:
    """Own server: sealing / stopping the shared one would disturb other tests."""
    with dev_openbao() as bao:
        bao.enable_transit()
        signer = TransitSigner(bao.client(), key_name="k")
        signer.ensure_key()
        signer.sign(b"ok")

        bao.client().sys.seal()
        with pytest.raises(SigningError, match="sealed") as info:
            signer.sign(b"x")
        assert "operator unseal" in str(info.value)

        bao.stop()
        started = time.monotonic()
        with pytest.raises(SigningError, match="cannot reach"):
            signer.sign(b"x")
        assert time.monotonic() - started < 5

        bao.restart()  # dev mode: in-memory, so the key is gone but transit is mounted again
        with pytest.raises(SigningError, match="does not exist"):
            signer.sign(b"x")
        signer.ensure_key()
        assert signer.sign(b"fresh").key_version == 1


def test_constructor_needs_client_or_address() -> None:
    with pytest.raises(SigningError, match="needs an hvac client"):
        TransitSigner()
    with pytest.raises(SigningError, match="invalid transit mount"):
        TransitSigner(addr="http://127.0.0.1:1", key_name="a/b")


def _pool(signer: TransitSigner) -> Any:
    """The urllib3 connection pool the signer's fast transport keeps for its server."""
    fast = signer._fast
    assert fast is not None  # a direct http address: the pooled transport
    return fast._pool.connection_from_url(fast.connection.addr)


def _idle(pool: Any) -> list[Any]:
    return [conn for conn in list(pool.pool.queue) if conn is not None]


def test_kept_alive_connection_is_reused_and_reopened_when_the_server_drops_it(
    signer: TransitSigner,
) -> None:
    keyring = _offline_keyring(signer)
    verify_signature(signer.sign(b"first"), b"first", keyring)
    pool = _pool(signer)
    [conn] = _idle(pool)
    assert conn.sock is not None
    verify_signature(signer.sign(b"second"), b"second", keyring)
    assert _idle(pool) == [conn] and pool.num_connections == 1  # one connection served both
    dropped = conn.sock
    dropped.shutdown(socket.SHUT_RDWR)  # as a server closing an idle connection
    verify_signature(signer.sign(b"third"), b"third", keyring)
    [fresh] = _idle(pool)
    assert fresh.sock is not None and fresh.sock is not dropped  # a new socket, signed once


def test_concurrent_signers_use_their_own_connections(signer: TransitSigner) -> None:
    import threading

    from jupyter_qsecure.signing.batching import BatchingSigner

    batching = BatchingSigner(signer, max_concurrent=3)
    keyring = _offline_keyring(signer)
    results: dict[int, Any] = {}

    def call(i: int) -> None:
        results[i] = batching.sign_many([f"m{i}".encode()])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == list(range(9))
    for i, (record,) in results.items():
        verify_signature(record, f"m{i}".encode(), keyring)
    assert 1 <= _pool(signer).num_connections <= 3  # at most one per concurrent call


def test_proxied_and_foreign_clients_keep_using_hvac(openbao: OpenBaoDev, key_name: str) -> None:
    proxied = VaultConnection(addr=openbao.addr, proxies=(("http", "http://proxy.invalid:3128"),))
    assert TransitSigner(proxied.client(openbao.root_token), key_name=key_name)._fast is None
    # a client not built from a VaultConnection: its TLS settings are unknown here
    plain = hvac.Client(url=openbao.addr, token=openbao.root_token)
    assert TransitSigner(plain, key_name=key_name)._fast is None


def test_the_fast_path_keeps_the_connections_tls_settings(tmp_path: Any) -> None:
    ca = tmp_path / "ca.pem"
    connection = VaultConnection(addr="https://openbao.invalid:8200", verify=str(ca))
    signer = TransitSigner(connection.client("t"), key_name="k")
    assert signer._fast is not None and signer._fast.connection == connection
    pool = signer._fast._pool.connection_from_url(connection.addr)
    assert pool.ca_certs == str(ca) and pool.cert_reqs == "CERT_REQUIRED"
