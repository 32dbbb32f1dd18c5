"""jupyter_qsecure.runtime: the production identity, secrets and environment of a script.

Submitting jobs through the runtime is tested where its results are compared with the
notebook's (tests/server/test_promote_venv.py) and in tests/promote (signed manifests).
"""

from __future__ import annotations

import getpass
import secrets as pysecrets
from typing import Any

import pytest

from jupyter_qsecure import runtime
from jupyter_qsecure.config import QSecure
from jupyter_qsecure.runtime import Runtime, RuntimeRefused
from jupyter_qsecure.runtime.secrets import SecretsUnavailable, SecretUnavailable
from jupyter_qsecure.testing.circuits import ghz


@pytest.fixture
def use(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """Install a Runtime built from the current environment as the process default."""
    monkeypatch.setenv("QSECURE_DATA_DIR", str(tmp_path / "data"))

    def install(**traits: Any) -> Runtime:
        made = Runtime(QSecure(**traits))
        monkeypatch.setattr(runtime, "_default", made)
        return made

    return install


def test_a_script_never_runs_in_a_stricter_environment_than_approved(
    use: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = use()
    made.promoted(notebook="a.ipynb", digest="0" * 64, environment="test")
    assert made.settings.environment == "test"  # none configured: the approved one

    monkeypatch.setenv("QSECURE_ENVIRONMENT", "prod")
    strict = use()
    with pytest.raises(
        RuntimeRefused,
        match="promoted from a.ipynb for the dev environment; it may not run in prod",
    ):
        strict.promoted(notebook="a.ipynb", digest="0" * 64, environment="dev")

    monkeypatch.setenv("QSECURE_ENVIRONMENT", "dev")
    lax = use()
    lax.promoted(notebook="a.ipynb", digest="0" * 64, environment="prod")
    assert lax.settings.environment == "dev"


def test_secrets_need_openbao(use: Any) -> None:
    use()
    with pytest.raises(SecretsUnavailable, match="secret 'warehouse': no OpenBao/Vault"):
        runtime.secrets.get("warehouse")
    who = runtime.secrets.identity()  # as secrets.identity() in a kernel
    assert who is runtime.identity()
    assert (who.source, who.method, who.user) == ("local", "os-user", getpass.getuser())


def approle(openbao: Any, policy: str, rules: str) -> tuple[str, str]:
    """A new AppRole whose tokens have ``policy`` (``rules``): its role_id and a secret_id."""
    root = openbao.client()
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    root.sys.create_or_update_policy(policy, rules)
    role = "promoted-" + pysecrets.token_hex(4)
    root.auth.approle.create_or_update_approle(role, token_policies=[policy], token_ttl="5m")
    role_id = root.auth.approle.read_role_id(role)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(role)["data"]["secret_id"]
    return role_id, secret_id


def test_secrets_get_reads_openbao_as_the_approle_identity(
    openbao: Any, use: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = openbao.client()
    policy = "promoted-runtime-test"
    role_id, secret_id = approle(
        openbao, policy, 'path "secret/data/qsecure/dev/*" { capabilities = ["read"] }'
    )
    value, dsn = pysecrets.token_urlsafe(24), pysecrets.token_urlsafe(24)
    root.secrets.kv.v2.create_or_update_secret(
        "qsecure/dev/warehouse", {"value": value}, mount_point="secret"
    )
    root.secrets.kv.v2.create_or_update_secret("qsecure/dev/db", {"dsn": dsn}, mount_point="secret")
    root.secrets.kv.v2.create_or_update_secret(
        "qsecure/prod/warehouse", {"value": "x" * 20}, mount_point="secret"
    )

    monkeypatch.setenv("BAO_ADDR", openbao.addr)
    monkeypatch.setenv("QSECURE_ROLE_ID", role_id)
    monkeypatch.setenv("QSECURE_SECRET_ID", secret_id)
    use(secrets={"database": "secret/qsecure/{env}/db#dsn"})
    assert runtime.secrets.get("warehouse") == value  # by convention
    assert runtime.secrets.get("database") == dsn  # configured in c.QSecure.secrets
    who = runtime.secrets.identity()
    assert (who.source, who.method) == ("openbao", "approle") and policy in who.policies

    monkeypatch.setenv("QSECURE_ENVIRONMENT", "prod")  # this role may not read prod
    use()
    with pytest.raises(SecretUnavailable, match="permission denied") as refused:
        runtime.secrets.get("warehouse")
    assert value not in str(refused.value) and secret_id not in str(refused.value)


def test_a_job_is_signed_through_transit_as_the_approle_identity(
    openbao: Any, use: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only AppRole credentials (no token configured), the script's jobs and its
    ledger are signed by OpenBao transit through the script's own login."""
    role_id, secret_id = approle(
        openbao,
        "promoted-runtime-signer",
        'path "transit/keys/qsecure-*" { capabilities = ["create", "read", "update"] }\n'
        'path "transit/sign/qsecure-*" { capabilities = ["update"] }',
    )
    monkeypatch.setenv("BAO_ADDR", openbao.addr)
    monkeypatch.setenv("QSECURE_ROLE_ID", role_id)
    monkeypatch.setenv("QSECURE_SECRET_ID", secret_id)
    made = use()
    made.promoted(notebook="a.ipynb", digest="0" * 64, environment="dev")
    result = runtime.submit(ghz(2), shots=100, seed=5)
    assert sum(result.counts.values()) == 100
    assert set(result.counts) <= {"00", "11"}
    assert result.verification.verified
    assert result.verification.signer.startswith("transit:"), result.verification.signer
    who = runtime.identity()
    assert (who.source, who.method) == ("openbao", "approle")
    assert result.identity["user"] == who.user
    runtime.close()
