"""The credential broker against a REAL OpenBao: issue, cache, renew, revoke, faults.

The broker always runs with a server token from ``layout.create_server_token``
(policy ``qsecure-server-dev``), never the root token. Fake secret values are
generated at run time and must never reach the ledger or an error message.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
from vault_fakes import FakeClock

from jupyter_qsecure.config import QSecure
from jupyter_qsecure.errors import ConfigError
from jupyter_qsecure.ledger import Ledger
from jupyter_qsecure.testing.openbao import OpenBaoDev, dev_openbao, find_bao_binary
from jupyter_qsecure.vault import layout
from jupyter_qsecure.vault.broker import (
    SECRET_RETRY_SECONDS,
    TOKEN_LEASE,
    CredentialBroker,
    KernelCredentials,
)
from jupyter_qsecure.vault.registry import ValueRegistry
from jupyter_qsecure.vault.secrets_spec import parse_secret_specs


def assert_same_secrets(got: Mapping[str, str], expected: Mapping[str, str]) -> None:
    """Same names and values, without printing a value when they differ."""
    assert sorted(got) == sorted(expected)
    differing = [name for name in expected if got[name] != expected[name]]
    assert not differing, f"values differ for {differing}"


# ---- helpers ------------------------------------------------------------------------------


def fake_value() -> str:
    return "fake-" + secrets.token_hex(20)


def put_kv(root: Any, path: str, **fields: str) -> None:
    root.secrets.kv.v2.create_or_update_secret(path=path, secret=fields, mount_point="secret")


def ledger_text(ledger: Ledger) -> str:
    return "\n".join(entry.model_dump_json() for entry in ledger.entries())


def entries(ledger: Ledger, kind: str) -> list[dict[str, Any]]:
    return [e.body for e in ledger.entries() if e.kind == kind]


def assert_absent(haystack: str, *needles: str) -> None:
    for needle in needles:
        assert needle not in haystack, "a secret value leaked"


def secret_values(registry: Any, kernel_id: str) -> dict[str, str]:
    """The registered secret values of a kernel, without its own OpenBao token."""
    values = dict(registry.values_for(kernel_id))
    assert values.pop("openbao_token", None) or not values, "the kernel token must be masked too"
    return values


@pytest.fixture
def ledger(tmp_path: Path, clean_env: None) -> Iterator[Ledger]:
    settings = QSecure(data_dir=str(tmp_path / "qsecure"))
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", settings=settings) as opened:
        yield opened


@pytest.fixture
def root(openbao_client: Any) -> Any:
    layout.bootstrap(openbao_client)
    return openbao_client


@pytest.fixture
def server_client(openbao: OpenBaoDev, root: Any) -> hvac.Client:
    """The broker's identity: a qsecure-server-dev token, not root."""
    auth = layout.create_server_token(root, "dev")
    client = openbao.client(auth["client_token"])
    assert client.auth.token.lookup_self()["data"]["policies"] == ["qsecure-server-dev"]
    return client


@pytest.fixture
def base() -> str:
    """A fresh KV folder under the dev prefix for this test."""
    return f"qsecure/dev/t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def three(root: Any, base: str) -> dict[str, str]:
    values = {"ibm": fake_value(), "aws": fake_value(), "ionq": fake_value()}
    put_kv(root, f"{base}/ibm", token=values["ibm"])
    put_kv(root, f"{base}/aws", key=values["aws"], other="x")
    put_kv(root, f"{base}/ionq", token=values["ionq"])
    return values


def make_broker(
    server_client: hvac.Client,
    spec_map: dict[str, str],
    *,
    ledger: Any = None,
    registry: ValueRegistry | None = None,
    environment: str = "dev",
    **kwargs: Any,
) -> CredentialBroker:
    return CredentialBroker(
        server_client,
        environment=environment,
        specs=parse_secret_specs(spec_map, environment),
        ledger=ledger,
        registry=registry if registry is not None else ValueRegistry(),
        **kwargs,
    )


def three_specs(base: str) -> dict[str, str]:
    return {
        "ibm": f"secret/{base}/ibm#token",
        "aws": f"secret/{base}/aws#key",
        "ionq": f"secret/{base}/ionq#token",
    }


@pytest.fixture
def registry() -> ValueRegistry:
    return ValueRegistry()


@pytest.fixture
def broker(
    server_client: hvac.Client, base: str, ledger: Ledger, registry: ValueRegistry
) -> CredentialBroker:
    """A dev broker for the secrets of ``three``, recording to ``ledger``."""
    return make_broker(server_client, three_specs(base), ledger=ledger, registry=registry)


# ---- parsing ------------------------------------------------------------------------------


def test_parse_secret_specs() -> None:
    specs = parse_secret_specs(
        {
            "ibm": "secret/qsecure/dev/ibm#token",
            "db": "database/creds/qsecure-dev-readonly",
            "env": "secret/qsecure/{environment}/x#f",
            "prod": "secret/qsecure/prod/ibm#token",
        },
        "dev",
    )
    ibm, db, env, prod = specs
    assert (ibm.kind, ibm.mount, ibm.path, ibm.field) == (
        "kv",
        "secret",
        "qsecure/dev/ibm",
        "token",
    )
    assert ibm.api_path == "secret/data/qsecure/dev/ibm" and ibm.in_environment
    assert (db.kind, db.mount, db.role) == ("database", "database", "qsecure-dev-readonly")
    assert db.in_environment and db.location == "database/creds/qsecure-dev-readonly"
    assert env.path == "qsecure/dev/x"
    assert not prod.in_environment
    assert parse_secret_specs(None, "dev") == []


@pytest.mark.parametrize(
    ("name", "spec", "words"),
    [
        ("ibm", "secret/qsecure/dev/ibm", "#FIELD"),
        ("ibm", "secret/qsecure/dev/ibm#", "#FIELD"),
        ("ibm", "secret/data/qsecure/dev/ibm#token", "drop it"),
        ("ibm", "secret#token", "mount and a path"),
        ("ibm", "/secret/qsecure/dev/ibm#token", "empty path segment"),
        ("ibm", "secret/qsecure/../prod/ibm#token", "not allowed"),
        ("ibm", "", "non-empty"),
        ("bad name", "secret/qsecure/dev/ibm#token", "invalid secret name"),
        ("_token", "secret/qsecure/dev/ibm#token", "invalid secret name"),
        ("db.user", "secret/qsecure/dev/ibm#token", "invalid secret name"),
        ("db", "database/creds", "MOUNT/creds/ROLE"),
    ],
)
def test_parse_secret_specs_errors_name_setting_and_fix(name: str, spec: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_secret_specs({name: spec}, "dev")
    text = str(caught.value)
    assert f"c.QSecure.secrets[{name!r}]" in text and "hint:" in text and words in text


def test_parse_secret_specs_strict_and_environment() -> None:
    with pytest.raises(ConfigError, match="outside the 'dev' environment"):
        parse_secret_specs({"p": "secret/qsecure/prod/ibm#token"}, "dev", strict=True)
    with pytest.raises(ConfigError, match="unknown environment"):
        parse_secret_specs({}, "staging")
    with pytest.raises(ConfigError, match="must be a dict"):
        parse_secret_specs(["secret/x#y"], "dev")  # type: ignore[arg-type]


# ---- registry -----------------------------------------------------------------------------


def test_registry_versions_values_and_drop() -> None:
    registry = ValueRegistry()
    v0 = registry.version
    a1, a2, b1 = fake_value(), fake_value(), fake_value()
    registry.register("A", {"ibm": a1, "db.username": "u-a", "db.password": a2})
    registry.register("B", {"ibm": b1})
    assert registry.version > v0
    assert registry.values_for("A") == {"ibm": a1, "db.username": "u-a", "db.password": a2}
    assert registry.values_for("B") == {"ibm": b1}
    assert set(registry.all_values()) == {a1, a2, b1, "u-a"}
    v1 = registry.version
    registry.register("A", {"ibm": a1, "db.username": "u-a", "db.password": a2})
    assert registry.version == v1, "an unchanged set is not a change"
    new = fake_value()
    registry.register("A", {"ibm": new})  # re-issued: old values stay masked (retired)
    assert registry.version > v1
    assert registry.values_for("A") == {"ibm": new}
    assert {a1, a2, new} <= set(registry.all_values())
    assert registry.snapshot().named[a1] == "ibm"
    assert a1 not in repr(registry) and a1 not in repr(registry.snapshot())
    named = registry.named_values()
    assert sorted(named.values()) == sorted(registry.all_values())
    assert named["ibm"] in (new, b1) and {named["ibm~2"], named.get("ibm~3")} >= {a1}
    assert registry.named_values("B") == {"ibm": b1}
    v2 = registry.version
    assert registry.drop("A") and not registry.drop("A")
    assert registry.version > v2
    assert registry.values_for("A") == {}
    # A's values linger (masked, matched at save) while they may be valid
    assert set(registry.all_values()) == {a1, a2, new, b1, "u-a"}
    brief = ValueRegistry(retention_seconds=0)
    brief.register("A", {"ibm": a1})
    assert brief.drop("A") and brief.all_values() == []
    lengths = [len(v) for v in ValueRegistry().all_values()]
    assert lengths == sorted(lengths, reverse=True)


def test_registry_is_thread_safe() -> None:
    registry = ValueRegistry()
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(300):
                registry.register(f"k{k}", {"s": f"value-{k}-{i}"})
                registry.all_values()
                registry.values_for(f"k{(k + 1) % 8}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert {registry.values_for(f"k{k}")["s"] for k in range(8)} == {
        f"value-{k}-299" for k in range(8)
    }


# ---- issuing and caching ------------------------------------------------------------------


def test_cold_issue_then_cached_path(
    broker: CredentialBroker,
    registry: ValueRegistry,
    openbao: OpenBaoDev,
    three: dict[str, str],
    ledger: Ledger,
) -> None:
    creds = broker.credentials_for("kernel-1", "alice")
    assert creds.ok and creds.errors == {}
    assert_same_secrets(creds.secrets, three)
    meta = creds.to_metadata()
    assert set(meta) == {
        "v",
        "kernel_id",
        "environment",
        "identity",
        "vault_addr",
        "token",
        "secrets",
        "leases",
        "errors",
        "error",
    }
    assert meta["v"] == 1 and meta["kernel_id"] == "kernel-1" and meta["environment"] == "dev"
    assert meta["identity"] == {
        "user": "alice",
        "accessor": creds.accessor,
        "policies": ["qsecure-kernel-dev"],
    }
    assert meta["vault_addr"] == openbao.addr and meta["secrets"] == three
    assert set(meta["leases"]) == {TOKEN_LEASE, "ibm", "aws", "ionq"}
    token_lease = meta["leases"][TOKEN_LEASE]
    assert token_lease["kind"] == "token" and token_lease["renewable"] is True
    assert 0 < token_lease["ttl_seconds"] <= 900 and token_lease["expires_at"].endswith("Z")
    assert meta["leases"]["ibm"]["kind"] == "kv" and meta["leases"]["ibm"]["lease_id"] is None
    json.dumps(meta)  # JSON-serialisable as it goes into a Jupyter message

    # the child token is real, scoped to the dev kernel policy, carries the identity
    child = openbao.client(meta["token"])
    info = child.auth.token.lookup_self()["data"]
    assert info["policies"] == ["qsecure-kernel-dev"]
    assert info["meta"] == {"kernel_id": "kernel-1", "user": "alice", "environment": "dev"}
    assert info["accessor"] == creds.accessor and info["path"].endswith("qsecure-kernel-dev")

    assert secret_values(registry, "kernel-1") == three
    assert broker.cached("kernel-1") is creds and broker.cached("kernel-2") is None

    # cached path: same object, no network at all
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the cached path must not touch OpenBao")

    original = broker._connection.session.request
    broker._connection.session.request = no_network  # type: ignore[method-assign]
    try:
        timings = []
        for _ in range(2000):
            start = time.perf_counter()
            again = broker.credentials_for("kernel-1", "alice")
            timings.append(time.perf_counter() - start)
        assert again is creds
        timings.sort()
        assert timings[len(timings) // 2] < 0.0005, "warm path p50 must be well under 1 ms"
    finally:
        broker._connection.session.request = original  # type: ignore[method-assign]

    # ledger: one token entry + one per secret, accessor and policy, never a value
    issued = entries(ledger, "credential.issued")
    assert len(issued) == 4
    token_entry = next(e for e in issued if e["lease_kind"] == "token")
    assert token_entry["accessor"] == creds.accessor
    assert token_entry["policies"] == ["qsecure-kernel-dev"]
    assert token_entry["ttl_seconds"] == creds.leases[TOKEN_LEASE].ttl_seconds
    assert token_entry["user"] == "alice" and token_entry["environment"] == "dev"
    assert {e["name"] for e in issued if e["lease_kind"] == "kv"} == {"ibm", "aws", "ionq"}
    assert all(e["accessor"] == creds.accessor for e in issued)
    assert_absent(ledger_text(ledger), *three.values(), meta["token"])
    assert ledger.verify().ok


def test_kernels_are_isolated(
    server_client: hvac.Client, openbao: OpenBaoDev, base: str, three: dict[str, str]
) -> None:
    registry = ValueRegistry()
    broker = make_broker(server_client, three_specs(base), registry=registry)
    a = broker.credentials_for("kernel-A", "alice")
    b = broker.credentials_for("kernel-B", "bob")
    assert a.token != b.token and a.accessor != b.accessor
    assert broker.credentials_for("kernel-A", "bob").token == a.token  # keyed by kernel only
    assert broker.identify(a.token)["kernel_id"] == "kernel-A"  # type: ignore[index]
    assert broker.identify(b.token)["kernel_id"] == "kernel-B"  # type: ignore[index]
    broker.revoke("kernel-B", "kernel shutdown")
    assert registry.values_for("kernel-B") == {} and secret_values(registry, "kernel-A") == three
    openbao.client(a.token).auth.token.lookup_self()  # A unaffected
    with pytest.raises(hvac.exceptions.Forbidden):
        openbao.client(b.token).auth.token.lookup_self()
    # B's kernel token cannot mint or look up other tokens (e.g. A's)
    with pytest.raises(hvac.exceptions.Forbidden):
        openbao.client(a.token).auth.token.lookup(b.token)


def test_concurrent_cold_calls_issue_one_token(
    server_client: hvac.Client, base: str, three: dict[str, str], ledger: Ledger
) -> None:
    broker = make_broker(server_client, three_specs(base), ledger=ledger)
    results: list[KernelCredentials] = []
    barrier = threading.Barrier(8)

    def call() -> None:
        barrier.wait()
        results.append(broker.credentials_for("kernel-c", "alice"))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.accessor for r in results}) == 1
    assert len([e for e in entries(ledger, "credential.issued") if e["lease_kind"] == "token"]) == 1


# ---- environments -------------------------------------------------------------------------


def test_dev_broker_cannot_read_prod_or_mint_prod_tokens(
    server_client: hvac.Client, openbao: OpenBaoDev, root: Any, base: str, ledger: Ledger
) -> None:
    dev_value, prod_value = fake_value(), fake_value()
    prod_path = base.replace("qsecure/dev/", "qsecure/prod/")
    put_kv(root, f"{base}/ibm", token=dev_value)
    put_kv(root, f"{prod_path}/ibm", token=prod_value)
    registry = ValueRegistry()
    broker = make_broker(
        server_client,
        {"dev": f"secret/{base}/ibm#token", "prod": f"secret/{prod_path}/ibm#token"},
        ledger=ledger,
        registry=registry,
    )
    creds = broker.credentials_for("kernel-p", "alice")
    assert creds.ok
    assert_same_secrets(creds.secrets, {"dev": dev_value})
    message = creds.errors["prod"]
    assert "permission denied" in message and "dev kernels may only read" in message
    assert "secret/qsecure/dev/" in message
    assert prod_value not in json.dumps(creds.to_metadata())
    assert prod_value not in registry.all_values()
    failed = entries(ledger, "credential.failed")
    assert [e["name"] for e in failed] == ["prod"]
    assert_absent(ledger_text(ledger), dev_value, prod_value)

    # OpenBao itself refuses: the kernel token cannot read prod
    with pytest.raises(hvac.exceptions.Forbidden):
        openbao.client(creds.token).secrets.kv.v2.read_secret_version(
            path=f"{prod_path}/ibm", mount_point="secret", raise_on_deleted_version=True
        )
    # the dev server token cannot mint prod kernel tokens, nor dev tokens with a prod policy
    with pytest.raises(hvac.exceptions.Forbidden):
        server_client.auth.token.create(role_name="qsecure-kernel-prod", ttl="1m")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        server_client.auth.token.create(
            role_name="qsecure-kernel-dev", policies=["qsecure-kernel-prod"], ttl="1m"
        )
    # a broker configured for prod but holding the dev server token gets a clear error
    prod_broker = make_broker(
        server_client, {"prod": f"secret/{prod_path}/ibm#token"}, environment="prod"
    )
    denied = prod_broker.credentials_for("kernel-q", "alice")
    assert not denied.ok and denied.token is None and denied.secrets == {}
    assert "refused to create a kernel token" in denied.error  # type: ignore[operator]
    assert "qsecure-server-prod" in denied.error  # type: ignore[operator]
    assert prod_value not in denied.error  # type: ignore[operator]


def test_missing_path_and_field_are_per_secret_and_retried(
    server_client: hvac.Client, root: Any, base: str, ledger: Ledger
) -> None:
    good = fake_value()
    put_kv(root, f"{base}/ibm", token=good)
    clock = FakeClock()
    broker = make_broker(
        server_client,
        {
            "ibm": f"secret/{base}/ibm#token",
            "wrongfield": f"secret/{base}/ibm#tokne",
            "later": f"secret/{base}/later#token",
        },
        ledger=ledger,
        clock=clock,
    )
    creds = broker.credentials_for("kernel-m", "alice")
    assert creds.ok
    assert_same_secrets(creds.secrets, {"ibm": good})
    assert "no field 'tokne'" in creds.errors["wrongfield"]
    assert "fields: token" in creds.errors["wrongfield"]
    assert "no secret at secret/" in creds.errors["later"] and "bao kv put" in creds.errors["later"]
    assert good not in json.dumps(dict(creds.errors))
    assert broker.credentials_for("kernel-m", "alice") is creds  # no retry before the delay

    later = fake_value()
    put_kv(root, f"{base}/later", token=later)
    clock.advance(SECRET_RETRY_SECONDS + 1)
    retried = broker.credentials_for("kernel-m", "alice")
    assert retried.secrets == {"ibm": good, "later": later}
    assert set(retried.errors) == {"wrongfield"} and retried.accessor == creds.accessor
    recovered = [e for e in entries(ledger, "credential.issued") if e.get("name") == "later"]
    assert recovered and recovered[0]["reason"].startswith("retried")
    assert_absent(ledger_text(ledger), good, later)


# ---- revocation and identity --------------------------------------------------------------


def test_revoke_invalidates_token_and_is_idempotent(
    broker: CredentialBroker,
    registry: ValueRegistry,
    openbao: OpenBaoDev,
    base: str,
    three: dict[str, str],
    ledger: Ledger,
) -> None:
    creds = broker.credentials_for("kernel-r", "alice")
    leaked = creds.token
    assert leaked is not None
    identity = broker.identify(leaked)
    assert identity == {
        "kernel_id": "kernel-r",
        "user": "alice",
        "environment": "dev",
        "accessor": creds.accessor,
        "policies": ["qsecure-kernel-dev"],
    }
    assert broker.identify("s." + secrets.token_urlsafe(24)) is None
    assert broker.identify("") is None

    assert broker.revoke("kernel-r", "kernel shutdown") is True
    # "a token leaked from an output is already revoked after the kernel stops"
    with pytest.raises(hvac.exceptions.Forbidden):
        openbao.client(leaked).auth.token.lookup_self()
    with pytest.raises(hvac.exceptions.Forbidden):
        openbao.client(leaked).secrets.kv.v2.read_secret_version(
            path=f"{base}/ibm", mount_point="secret", raise_on_deleted_version=True
        )
    assert registry.values_for("kernel-r") == {}
    # still masked and matched at save: the KV values are unchanged by the revocation
    assert {creds.secrets[n] for n in ("ibm", "aws", "ionq")} <= set(registry.all_values())
    assert broker.identify(leaked) is None and broker.kernels() == []
    revoked = entries(ledger, "credential.revoked")
    assert len(revoked) == 1 and revoked[0]["accessor"] == creds.accessor
    assert revoked[0]["reason"] == "kernel shutdown"

    assert broker.revoke("kernel-r", "again") is True
    assert broker.revoke("never-existed", "x") is True
    assert len(entries(ledger, "credential.revoked")) == 1
    assert_absent(ledger_text(ledger), leaked, *three.values())


def test_revoke_all(
    server_client: hvac.Client, openbao: OpenBaoDev, base: str, three: dict[str, str]
) -> None:
    registry = ValueRegistry()
    broker = make_broker(server_client, three_specs(base), registry=registry)
    tokens = [broker.credentials_for(f"k{i}", "alice").token for i in range(3)]
    assert broker.revoke_all("server stop") == 3
    for token in tokens:
        with pytest.raises(hvac.exceptions.Forbidden):
            openbao.client(token).auth.token.lookup_self()
    assert registry.kernels() == [] and broker.kernels() == []


def is_masked(registry: ValueRegistry, value: str | None) -> bool:
    """Whether ``value`` is among the registry's masked values (a bool: never prints it)."""
    return value is not None and value in registry.all_values()


def test_revoked_tokens_are_no_longer_masked(
    server_client: hvac.Client,
    openbao: OpenBaoDev,
    root: Any,
    base: str,
    three: dict[str, str],
    registry: ValueRegistry,
    broker: CredentialBroker,
) -> None:
    """OpenBao confirmed the token revoked: it no longer lingers, so the values masked do
    not grow with the kernels served; the KV values, unchanged by revoking, linger."""
    tokens = []
    for i in range(4):
        creds = broker.credentials_for(f"k{i}", "alice")
        assert creds.ok and creds.token
        tokens.append(creds.token)
        assert broker.revoke(f"k{i}", "kernel shutdown") is True
        masked = registry.named_values()
        assert sorted(masked) == ["aws", "ibm", "ionq"]  # bounded: no token lingers
        assert_same_secrets(masked, three)
    assert not any(is_masked(registry, token) for token in tokens)

    # re-issued after a refused renewal: the old token, confirmed revoked, is not kept
    # (retired) for the live kernel either
    first = broker.credentials_for("k-re", "alice")
    root.auth.token.revoke_accessor(first.accessor)  # behind the broker's back
    broker.clock = lambda: time.time() + 3600  # past the renewal time
    second = broker.credentials_for("k-re", "alice")
    assert second.ok and second.token != first.token
    assert is_masked(registry, second.token)
    old_masked = is_masked(registry, first.token)
    assert not old_masked

    # revocation refused: the token still works, so it stays masked
    third = broker.credentials_for("k-refused", "alice")
    assert third.ok and third.token
    weak = root.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    server_client.token = weak  # the server's identity may not revoke kernel tokens
    assert broker.revoke("k-refused", "kernel shutdown") is True
    openbao.client(third.token).auth.token.lookup_self()  # still valid
    assert is_masked(registry, third.token)
    # k-re's live token and the one whose revocation was refused
    assert sum(name.startswith("openbao_token") for name in registry.named_values()) == 2


def test_failed_revocation_keeps_the_token_masked(private_bao: OpenBaoDev) -> None:
    bao = private_bao
    admin = bao.client()
    layout.bootstrap(admin)
    put_kv(admin, "qsecure/dev/ibm", token=fake_value())
    server = bao.client(layout.create_server_token(admin, "dev")["client_token"])
    registry = ValueRegistry()
    broker = make_broker(server, {"ibm": "secret/qsecure/dev/ibm#token"}, registry=registry)
    gone = broker.credentials_for("k-gone", "alice")
    kept = broker.credentials_for("k-kept", "alice")
    assert broker.revoke("k-gone", "kernel shutdown") is True
    bao.stop()
    assert broker.revoke("k-kept", "kernel shutdown") is False  # pending
    assert is_masked(registry, kept.token)  # revocation failed: it may still be valid
    gone_masked = is_masked(registry, gone.token)  # confirmed revoked earlier
    assert not gone_masked
    assert broker.retry_pending_revocations() == 1
    assert is_masked(registry, kept.token)


def test_identify_rejects_tokens_that_are_not_ours(
    server_client: hvac.Client,
    openbao: OpenBaoDev,
    root: Any,
    base: str,
    three: dict[str, str],
) -> None:
    broker = make_broker(server_client, three_specs(base))
    other = make_broker(server_client, three_specs(base))
    theirs = other.credentials_for("kernel-x", "mallory").token
    assert broker.identify(theirs) is None  # a live kernel token, but not one of ours
    assert broker.identify(root.token) is None
    assert broker.identify(server_client.token) is None


# ---- renewal ------------------------------------------------------------------------------


def test_renewal_near_expiry_keeps_the_token(
    server_client: hvac.Client,
    openbao: OpenBaoDev,
    base: str,
    three: dict[str, str],
    ledger: Ledger,
) -> None:
    clock = FakeClock()
    broker = make_broker(
        server_client, three_specs(base), ledger=ledger, clock=clock, token_ttl="30s"
    )
    creds = broker.credentials_for("kernel-n", "alice")
    assert creds.leases[TOKEN_LEASE].ttl_seconds == 30
    clock.advance(15)  # half the TTL left: still fresh
    assert broker.credentials_for("kernel-n", "alice") is creds
    assert entries(ledger, "credential.renewed") == []
    clock.advance(6)  # 9 s of 30 left (< 1/3): renew
    renewed = broker.credentials_for("kernel-n", "alice")
    assert renewed.accessor == creds.accessor and renewed.token == creds.token
    assert renewed.secrets == creds.secrets
    assert renewed.leases[TOKEN_LEASE].expires_at == pytest.approx(clock.now + 30, abs=2)
    body = entries(ledger, "credential.renewed")
    assert len(body) == 1 and body[0]["accessor"] == creds.accessor
    assert body[0]["ttl_seconds"] > 10
    assert broker.credentials_for("kernel-n", "alice") is renewed  # fresh again
    openbao.client(renewed.token).auth.token.lookup_self()
    assert_absent(ledger_text(ledger), creds.token or "", *three.values())


def test_refused_renewal_reissues(
    server_client: hvac.Client,
    openbao: OpenBaoDev,
    root: Any,
    base: str,
    three: dict[str, str],
    ledger: Ledger,
) -> None:
    clock = FakeClock()
    registry = ValueRegistry()
    broker = make_broker(
        server_client,
        three_specs(base),
        ledger=ledger,
        clock=clock,
        registry=registry,
        token_ttl="30s",
    )
    first = broker.credentials_for("kernel-q", "alice")
    root.auth.token.revoke_accessor(first.accessor)  # revoked behind the broker's back
    clock.advance(25)
    second = broker.credentials_for("kernel-q", "alice")
    assert second.ok and second.accessor != first.accessor and second.secrets == three
    assert secret_values(registry, "kernel-q") == three
    openbao.client(second.token).auth.token.lookup_self()
    assert broker.identify(first.token) is None
    assert broker.identify(second.token)["accessor"] == second.accessor  # type: ignore[index]
    reissued = [e for e in entries(ledger, "credential.issued") if e.get("reason")]
    assert reissued and "renewal refused" in reissued[0]["reason"]
    assert any(e["accessor"] == first.accessor for e in entries(ledger, "credential.revoked"))


# ---- faults -------------------------------------------------------------------------------


def test_ledger_failure_withholds_credentials(
    server_client: hvac.Client, openbao: OpenBaoDev, base: str, three: dict[str, str]
) -> None:
    class BrokenLedger:
        broken = True
        appended: list[tuple[str, dict[str, Any]]] = []

        def append(self, kind: str, body: dict[str, Any], *, actor: str | None = None) -> None:
            if self.broken:
                raise OSError("disk full")
            self.appended.append((kind, body))

    broken = BrokenLedger()
    registry = ValueRegistry()
    broker = make_broker(server_client, three_specs(base), ledger=broken, registry=registry)
    creds = broker.credentials_for("kernel-l", "alice")
    assert not creds.ok and creds.token is None and "audit ledger" in (creds.error or "")
    assert registry.all_values() == [] and broker.kernels() == []
    broken.broken = False
    creds = broker.credentials_for("kernel-l", "alice")
    assert creds.ok
    assert_same_secrets(creds.secrets, three)
    assert [k for k, _ in broken.appended].count("credential.issued") == 4


@pytest.fixture
def private_bao() -> Iterator[OpenBaoDev]:
    try:
        find_bao_binary()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"OpenBao not available: {exc}")
    with dev_openbao() as server:
        yield server


def test_openbao_stopped_sealed_and_restarted(private_bao: OpenBaoDev, ledger: Ledger) -> None:
    bao = private_bao
    value = fake_value()

    def prepare() -> str:
        admin = bao.client()
        layout.bootstrap(admin)
        put_kv(admin, "qsecure/dev/ibm", token=value)
        return str(layout.create_server_token(admin, "dev")["client_token"])

    server = bao.client(prepare())
    clock = FakeClock()
    broker = make_broker(
        server, {"ibm": "secret/qsecure/dev/ibm#token"}, ledger=ledger, clock=clock, token_ttl="60s"
    )
    live = broker.credentials_for("k-live", "alice")
    assert live.ok

    bao.stop()
    start = time.monotonic()
    cold = broker.credentials_for("k-cold", "alice")
    assert time.monotonic() - start < 3, "an unreachable OpenBao must not hang"
    assert not cold.ok and cold.secrets == {} and cold.token is None
    assert "unreachable" in cold.error and "next execution retries" in cold.error  # type: ignore[operator]
    assert cold.to_metadata()["error"] == cold.error
    # a still-valid lease keeps working from the cache, also when renewal fails
    assert broker.credentials_for("k-live", "alice") is live
    clock.advance(45)
    start = time.monotonic()
    assert broker.credentials_for("k-live", "alice").secrets == {"ibm": value}
    assert time.monotonic() - start < 3
    clock.advance(20)  # past the token's expiry
    expired = broker.credentials_for("k-live", "alice")
    assert not expired.ok and "unreachable" in (expired.error or "")
    failed = entries(ledger, "credential.failed")
    assert {e["kernel_id"] for e in failed} == {"k-cold", "k-live"}

    # OpenBao comes back empty (dev mode): the operator bootstraps, the server re-authenticates
    bao.restart()
    server.token = prepare()
    recovered = broker.credentials_for("k-live", "alice")
    assert recovered.ok and recovered.secrets == {"ibm": value}
    assert recovered.accessor != live.accessor
    bao.client(recovered.token).auth.token.lookup_self()
    assert broker.credentials_for("k-cold", "alice").secrets == {"ibm": value}
    assert broker.identify(recovered.token)["kernel_id"] == "k-live"  # type: ignore[index]

    # sealed: a clear error, quickly
    bao.client().sys.seal()
    sealed = broker.credentials_for("k-sealed", "alice")
    assert not sealed.ok and "sealed" in (sealed.error or "")
    assert broker.revoke("k-live", "kernel shutdown") is False  # pending, OpenBao sealed
    assert broker.kernels() == ["k-cold"]

    for text in (cold.error, expired.error, sealed.error, ledger_text(ledger)):
        assert_absent(text or "", value, live.token or "", recovered.token or "")


def test_hung_openbao_times_out_with_a_clear_error() -> None:
    """A server that accepts connections but never answers: a timeout, not a hang."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # the kernel completes handshakes; nobody ever reads or answers
    try:
        addr = f"http://127.0.0.1:{listener.getsockname()[1]}"
        client = hvac.Client(url=addr, token="s." + secrets.token_urlsafe(24))
        broker = make_broker(client, {"ibm": "secret/qsecure/dev/ibm#token"}, timeout=0.5)
        start = time.monotonic()
        creds = broker.credentials_for("kernel-h", "alice")
        assert time.monotonic() - start < 3
        assert not creds.ok and "timed out" in (creds.error or "")
        assert client.token not in (creds.error or "")
    finally:
        listener.close()
