"""Values of a stopped kernel linger (masked, matched at save) while they may be valid."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping

import pytest

from jupyter_qsecure.vault.registry import ENDS_WITH_KERNEL, ValueRegistry

DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


def value() -> str:
    return "v-" + secrets.token_urlsafe(24)


def test_kv_values_linger_for_the_retention() -> None:
    clock = Clock()
    registry = ValueRegistry(retention_seconds=30 * DAY, clock=clock)
    kv, other = value(), value()
    registry.register("k1", {"ibm": kv})
    registry.register("k2", {"aws": other})
    before = registry.version
    assert registry.drop("k1") and not registry.drop("k1")
    assert registry.version > before
    assert registry.values_for("k1") == {} and registry.kernels() == ["k2"]
    assert set(registry.all_values()) == {kv, other}
    assert registry.named_values() == {"aws": other, "ibm": kv}
    assert registry.named_values("k1") == {}  # one kernel's view: only what it holds
    assert registry.snapshot().named[kv] == "ibm" and registry.lingering_count() == 1
    assert kv not in repr(registry)
    clock.now += 30 * DAY - 1
    assert kv in registry.all_values()
    lingering = registry.version
    clock.now += 2
    assert registry.version > lingering  # reading the version notices the expiry
    assert registry.all_values() == [other] and registry.lingering_count() == 0


def test_leased_values_linger_until_the_lease_ends() -> None:
    clock = Clock()
    registry = ValueRegistry(retention_seconds=30 * DAY, clock=clock)
    kv, user, password, token = value(), value(), value(), value()
    registry.register(
        "k",
        {"ibm": kv, "db.username": user, "db.password": password, "openbao_token": token},
        valid_until={
            "db.username": clock.now + 300,
            "db.password": clock.now + 300,
            "openbao_token": clock.now + 900,
        },
    )
    registry.drop("k")
    assert set(registry.all_values()) == {kv, user, password, token}
    clock.now += 301
    assert set(registry.all_values()) == {kv, token}
    clock.now += 600
    assert registry.all_values() == [kv]


def test_renewal_extends_the_lingering_of_a_leased_value() -> None:
    clock = Clock()
    registry = ValueRegistry(clock=clock)
    token = value()
    registry.register("k", {"openbao_token": token}, valid_until={"openbao_token": clock.now + 60})
    registry.register("k", {"openbao_token": token}, valid_until={"openbao_token": clock.now + 600})
    registry.drop("k")
    clock.now += 300
    assert registry.all_values() == [token]


def test_values_that_die_with_the_kernel_do_not_linger() -> None:
    registry = ValueRegistry()
    local = value()
    registry.register(
        "k", {"_broker_token": local}, valid_until={"_broker_token": ENDS_WITH_KERNEL}
    )
    registry.drop("k")
    assert registry.all_values() == [] and registry.lingering_count() == 0


def test_retired_values_linger_too_and_a_value_in_use_again_is_live() -> None:
    clock = Clock()
    registry = ValueRegistry(clock=clock)
    old, new = value(), value()
    registry.register("k1", {"ibm": old})
    registry.register("k1", {"ibm": new})  # re-issued: old is retired
    registry.drop("k1")
    assert set(registry.all_values()) == {old, new} and registry.lingering_count() == 2
    registry.register("k2", {"ibm": new})  # a new kernel reads the same KV value
    assert registry.lingering_count() == 1 and registry.values_for("k2") == {"ibm": new}
    registry.drop("k2")
    assert set(registry.all_values()) == {old, new}


def test_each_registration_is_reported_and_a_failing_listener_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[dict[str, str], dict[str, float]]] = []

    def listener(values: Mapping[str, str], until: Mapping[str, float]) -> None:
        seen.append((dict(values), dict(until)))

    registry = ValueRegistry(on_register=listener)
    kv, token = value(), value()
    registry.register("k", {"ibm": kv, "openbao_token": token}, valid_until={"openbao_token": 5.0})
    assert seen == [({"ibm": kv, "openbao_token": token}, {"openbao_token": 5.0})]

    def broken(values: Mapping[str, str], until: Mapping[str, float]) -> None:
        raise OSError(f"disk full while writing {values}")

    failing = ValueRegistry(on_register=broken)
    with caplog.at_level(logging.ERROR):
        failing.register("k", {"ibm": kv})
    assert failing.values_for("k") == {"ibm": kv}  # masking and the gate go on
    assert "could not record fingerprints" in caplog.text and kv not in caplog.text


def test_clear_forgets_everything() -> None:
    registry = ValueRegistry()
    registry.register("k", {"ibm": value()})
    registry.drop("k")
    registry.clear()
    assert registry.all_values() == [] and registry.lingering_count() == 0
