"""The fingerprint key in a real OpenBao: created once by the server, read by the command
line with its own credentials, never readable by a kernel."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import hvac
import pytest

from jupyter_qsecure.config import QSecure
from jupyter_qsecure.scan.fingerprints import FingerprintError, fingerprinter_from_settings
from jupyter_qsecure.testing.openbao import OpenBaoDev
from jupyter_qsecure.vault import layout

ENV = "test"  # this module's own key: the server tests use dev's


@pytest.fixture
def fresh(openbao_client: Any) -> str:
    """OpenBao bootstrapped, ``test``'s fingerprint key deleted; a ``test`` server token."""
    layout.bootstrap(openbao_client)
    openbao_client.secrets.kv.v2.delete_metadata_and_all_versions(
        path=layout.fingerprint_key_path(ENV), mount_point=layout.KV_MOUNT
    )
    return str(layout.create_server_token(openbao_client, ENV)["client_token"])


def settings_with(openbao: OpenBaoDev, token: str, tmp_path: Any) -> QSecure:
    return QSecure(
        data_dir=str(tmp_path), vault_addr=openbao.addr, vault_token=token, environment=ENV
    )


def test_created_once_then_read_by_every_process(
    openbao: OpenBaoDev, openbao_client: Any, fresh: str, tmp_path: Any
) -> None:
    settings = settings_with(openbao, fresh, tmp_path)
    assert fingerprinter_from_settings(settings, create=False).source == "ephemeral"
    with ThreadPoolExecutor(4) as pool:  # servers starting together agree on one key
        made = list(
            pool.map(lambda _: fingerprinter_from_settings(settings, create=True), range(4))
        )
    assert len({f.key_id for f in made}) == 1
    reader = fingerprinter_from_settings(settings, create=False)  # the command line
    assert reader.key_id == made[0].key_id and reader.source.startswith("openbao:")
    stored = openbao_client.secrets.kv.v2.read_secret_version(
        path=layout.fingerprint_key_path(ENV), mount_point="secret", raise_on_deleted_version=True
    )
    assert len(base64.b64decode(stored["data"]["data"]["key"])) == 32
    assert stored["data"]["metadata"]["version"] == 1  # written once
    assert not list(tmp_path.rglob("*.key"))  # no local key file when OpenBao holds it


def test_a_kernel_cannot_read_the_key(
    openbao: OpenBaoDev, openbao_client: Any, fresh: str, tmp_path: Any
) -> None:
    fingerprinter_from_settings(settings_with(openbao, fresh, tmp_path), create=True)
    kernel = openbao.client(fresh).auth.token.create(
        role_name=layout.kernel_token_role(ENV), policies=[layout.kernel_policy(ENV)]
    )["auth"]["client_token"]
    with pytest.raises(hvac.exceptions.Forbidden):
        openbao.client(kernel).secrets.kv.v2.read_secret_version(
            path=layout.fingerprint_key_path(ENV),
            mount_point="secret",
            raise_on_deleted_version=True,
        )


def test_a_token_without_the_policy_gets_a_clear_error(
    openbao: OpenBaoDev, openbao_client: Any, fresh: str, tmp_path: Any
) -> None:
    openbao_client.sys.create_or_update_policy(
        name="qsecure-test-nothing", policy='path "sys/mounts" { capabilities = ["read"] }'
    )
    token = openbao_client.auth.token.create(policies=["qsecure-test-nothing"])["auth"][
        "client_token"
    ]
    with pytest.raises(FingerprintError) as info:
        fingerprinter_from_settings(settings_with(openbao, token, tmp_path), create=True)
    assert layout.fingerprint_key_path(ENV) in info.value.message
    assert "vault setup" in (info.value.hint or "") and token not in str(info.value)
