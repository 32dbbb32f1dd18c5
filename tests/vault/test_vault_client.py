"""VaultConnection: where and how to reach OpenBao, kept in our settings (not hvac's)."""

from __future__ import annotations

import secrets
from typing import Any

import hvac
import pytest

from jupyter_qsecure.vault.broker import CredentialBroker
from jupyter_qsecure.vault.client import VaultClient, VaultConnection, connection_of
from jupyter_qsecure.vault.registry import ValueRegistry

ADDR = "https://openbao.example:8200"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "VAULT_CACERT",
        "VAULT_CAPATH",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "VAULT_CLIENT_CERT",
        "VAULT_CLIENT_KEY",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_tls_and_proxies_come_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    assert VaultConnection.from_environment(ADDR).verify is True
    clean_env.setenv("REQUESTS_CA_BUNDLE", "/etc/requests-ca.pem")
    clean_env.setenv("VAULT_CAPATH", "/etc/vault-ca.d")
    assert VaultConnection.from_environment(ADDR).verify == "/etc/vault-ca.d"
    clean_env.setenv("VAULT_CACERT", "/etc/vault-ca.pem")  # wins, as in the Vault CLI
    clean_env.setenv("VAULT_CLIENT_CERT", "/etc/client.pem")
    clean_env.setenv("VAULT_CLIENT_KEY", "/etc/client.key")
    clean_env.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    connection = VaultConnection.from_environment(ADDR, namespace="team", timeout=3.0)
    assert connection.verify == "/etc/vault-ca.pem"
    assert connection.cert == ("/etc/client.pem", "/etc/client.key")
    assert dict(connection.proxies)["https"] == "http://proxy.example:3128"
    assert not connection.direct
    clean_env.setenv("NO_PROXY", "openbao.example")
    assert VaultConnection.from_environment(ADDR).direct


def test_clients_remember_their_connection(clean_env: pytest.MonkeyPatch) -> None:
    token = secrets.token_urlsafe(16)
    connection = VaultConnection(addr=ADDR, namespace="team", verify="/etc/ca.pem")
    client = connection.client(token, timeout=(1.0, 2.0))
    assert isinstance(client, VaultClient) and client.token == token
    assert client.connection == connection.with_timeout((1.0, 2.0))
    assert client.connection.session is connection.session  # one pool per connection
    assert client.adapter.namespace == "team"
    assert token not in repr(connection)


def test_no_token_means_none_not_the_environments(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("VAULT_TOKEN", secrets.token_urlsafe(16))
    assert not VaultConnection(addr=ADDR).client().token


def test_a_foreign_client_gets_its_public_settings_and_default_tls() -> None:
    plain = hvac.Client(url=ADDR, token="", namespace="team", verify=False)
    connection = connection_of(plain)
    assert (connection.addr, connection.namespace) == (ADDR, "team")
    assert connection.verify is True  # not read back from hvac: only stricter


def test_the_broker_gives_kernels_the_servers_tls_settings() -> None:
    connection = VaultConnection(
        addr=ADDR, namespace="team", verify="/etc/ca.pem", cert=("/c.pem", "/c.key")
    )
    broker: Any = CredentialBroker(
        connection.client(secrets.token_urlsafe(16)),
        environment="dev",
        specs=[],
        registry=ValueRegistry(),
        timeout=4.0,
        connect_timeout=1.0,
        discover=False,
    )
    kernel = broker._client(secrets.token_urlsafe(16))
    assert kernel.connection == connection.with_timeout((1.0, 4.0))
    assert broker.vault_addr == ADDR
