"""Dynamic database credentials end to end: REAL OpenBao database engine + REAL PostgreSQL.

A kernel gets its own short-lived PostgreSQL user (created by OpenBao with the
kernel's child token, so the lease belongs to that token); the user works while
the kernel lives and stops working, including open sessions, once the broker
revokes the kernel's credentials.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import psycopg
import pytest
from vault_fakes import FakeClock

from jupyter_qsecure.config import QSecure
from jupyter_qsecure.ledger import Ledger
from jupyter_qsecure.testing.openbao import OpenBaoDev
from jupyter_qsecure.testing.postgres import PostgresServer
from jupyter_qsecure.vault import layout
from jupyter_qsecure.vault.broker import TOKEN_LEASE, CredentialBroker
from jupyter_qsecure.vault.registry import ValueRegistry
from jupyter_qsecure.vault.secrets_spec import parse_secret_specs

DB_CONFIG = "qsecure-pg"
CREATION = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
    'GRANT pg_read_all_data TO "{{name}}";',
]
REVOCATION = [
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';",
    'DROP ROLE IF EXISTS "{{name}}";',
]


def connect_as(pg: PostgresServer, username: str, password: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=pg.host,
        port=pg.port,
        user=username,
        password=password,
        dbname=pg.dbname,
        connect_timeout=5,
        autocommit=True,
    )


def secret_values(registry: Any, kernel_id: str) -> dict[str, str]:
    """The registered secret values of a kernel, without its own OpenBao token."""
    values = dict(registry.values_for(kernel_id))
    assert values.pop("openbao_token", None) or not values, "the kernel token must be masked too"
    return values


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    settings = QSecure(data_dir=str(tmp_path / "qsecure"))
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", settings=settings) as opened:
        yield opened


@pytest.fixture
def database_engine(openbao_client: Any, postgres_server: PostgresServer) -> Any:
    """OpenBao's database engine pointed at the test cluster, roles for dev and prod."""
    root = openbao_client
    layout.bootstrap(root, database=True)
    pg = postgres_server
    root.write(
        f"database/config/{DB_CONFIG}",
        plugin_name="postgresql-database-plugin",
        connection_url=(
            f"postgresql://{{{{username}}}}:{{{{password}}}}@{pg.host}:{pg.port}/{pg.dbname}"
            "?sslmode=disable"
        ),
        username=pg.user,
        password=pg.password,
        allowed_roles="qsecure-dev-*,qsecure-prod-*",
        verify_connection=True,
    )
    for env in ("dev", "prod"):
        root.write(
            f"database/roles/qsecure-{env}-readonly",
            db_name=DB_CONFIG,
            creation_statements=CREATION,
            revocation_statements=REVOCATION,
            default_ttl="5m",
            max_ttl="1h",
        )
    with pg.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS qubits (id int PRIMARY KEY, label text)")
        conn.execute("INSERT INTO qubits VALUES (1, 'q0') ON CONFLICT DO NOTHING")
    return root


@pytest.fixture
def server_client(openbao: OpenBaoDev, database_engine: Any) -> hvac.Client:
    auth = layout.create_server_token(database_engine, "dev")
    return openbao.client(auth["client_token"])


def test_kernel_gets_its_own_database_user_revoked_with_the_kernel(
    server_client: hvac.Client,
    database_engine: Any,
    postgres_server: PostgresServer,
    ledger: Ledger,
) -> None:
    pg = postgres_server
    kv_value = "fake-" + secrets.token_hex(20)
    kv_path = f"qsecure/dev/t-{uuid.uuid4().hex[:12]}/ibm"
    database_engine.secrets.kv.v2.create_or_update_secret(
        path=kv_path, secret={"token": kv_value}, mount_point="secret"
    )
    registry = ValueRegistry()
    clock = FakeClock()
    broker = CredentialBroker(
        server_client,
        environment="dev",
        specs=parse_secret_specs(
            {
                "db": "database/creds/qsecure-dev-readonly",
                "proddb": "database/creds/qsecure-prod-readonly",
                "ibm": f"secret/{kv_path}#token",
            },
            "dev",
        ),
        ledger=ledger,
        registry=registry,
        clock=clock,
    )
    creds = broker.credentials_for("kernel-db", "alice")
    assert creds.ok and creds.secrets["ibm"] == kv_value
    db = creds.secrets["db"]
    assert isinstance(db, dict) and set(db) == {"username", "password"}
    username, password = db["username"], db["password"]
    meta = creds.to_metadata()
    assert meta["secrets"]["db"] == {"username": username, "password": password}
    lease = meta["leases"]["db"]
    assert lease["kind"] == "database" and lease["renewable"] is True
    assert lease["lease_id"].startswith("database/creds/qsecure-dev-readonly/")
    assert lease["ttl_seconds"] == 300
    # a dev kernel cannot get a prod database user
    assert "permission denied" in creds.errors["proddb"]
    assert "proddb" not in creds.secrets
    # both halves are registered for masking and save-time matching
    assert secret_values(registry, "kernel-db") == {
        "db.username": username,
        "db.password": password,
        "ibm": kv_value,
    }

    # the user works, and its lease belongs to the kernel's token
    held = connect_as(pg, username, password)
    assert held.execute("SELECT current_user, label FROM qubits").fetchone() == (username, "q0")

    # renewal near the lease's expiry renews the token and the database lease
    clock.advance(210)  # 90 s of the 300 s lease left
    renewed = broker.credentials_for("kernel-db", "alice")
    assert renewed.secrets["db"] == db and renewed.accessor == creds.accessor
    renewals = [e for e in ledger.entries() if e.kind == "credential.renewed"]
    assert {e.body["lease_kind"] for e in renewals} == {"token", "database"}
    assert any(e.body.get("lease_id") == lease["lease_id"] for e in renewals)
    assert held.execute("SELECT 1").fetchone() == (1,)

    # kernel shutdown: the user is dropped and its open session terminated
    assert broker.revoke("kernel-db", "kernel shutdown") is True
    with pytest.raises(psycopg.OperationalError) as refused:
        connect_as(pg, username, password).close()
    assert password not in str(refused.value)
    with pytest.raises(psycopg.Error):
        held.execute("SELECT 1")
    held.close()
    with pg.connect() as conn:
        assert (
            conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (username,)).fetchone()
            is None
        )
    # OpenBao confirmed the lease revoked (the user is gone): the username and password
    # are no longer masked; the KV value, unchanged by revoking, still is
    assert registry.values_for("kernel-db") == {}
    left = set(registry.all_values())
    kv_masked = kv_value in left
    assert kv_masked
    db_masked = bool({username, password, creds.token} & left)
    assert not db_masked

    # the ledger has the lease id and accessor, never the username, password or KV value
    issued = [e.body for e in ledger.entries() if e.kind == "credential.issued"]
    db_entry = next(b for b in issued if b.get("name") == "db")
    assert db_entry["lease_id"] == lease["lease_id"] and db_entry["lease_kind"] == "database"
    assert db_entry["accessor"] == creds.accessor and db_entry["ttl_seconds"] == 300
    revoked = [e.body for e in ledger.entries() if e.kind == "credential.revoked"]
    assert revoked and lease["lease_id"] in revoked[0]["lease_ids"]
    text = "\n".join(e.model_dump_json() for e in ledger.entries())
    for value in (username, password, kv_value, creds.token or ""):
        assert value not in text
    for message in creds.errors.values():
        assert password not in message and kv_value not in message
    assert json.dumps(meta["leases"]).count(password) == 0
    assert TOKEN_LEASE in meta["leases"]
