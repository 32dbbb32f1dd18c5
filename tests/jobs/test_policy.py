"""Policy as code: the file, every rule and its message, rate limits, quotas, heavy runs."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from pydantic import ValidationError

from jupyter_qsecure.errors import QSecureError
from jupyter_qsecure.jobs.policy import (
    DEFAULT_POLICY_PATH,
    ENVIRONMENTS,
    Decision,
    Identity,
    JobRequest,
    Policy,
    PolicyEngine,
    PolicyError,
    UsageTracker,
)
from jupyter_qsecure.ledger.kinds import validate_body

# A small policy whose numbers match the messages of the issue.
SECTION = """
max_qubits = 10
max_depth = 500
max_circuits_per_job = 5
min_shots = 1
max_shots = 100000
allowed_gates = {gates}
allowed_backends = ["aer_simulator"]
allowed_methods = ["automatic", "statevector", "matrix_product_state"]
allowed_noise = ["depolarizing"]
jobs_per_minute = 30
shots_per_day = 1000000
{extra}
[{env}.heavy_run]
qubits = 8
depth = 400
total_shots = 500000
"""


def policy_text(
    *,
    version: str = "7",
    envs: tuple[str, ...] = ENVIRONMENTS,
    gates: str = '["h", "x", "cx", "rz"]',
    extra: str = "",
) -> str:
    parts = [f'version = "{version}"\n']
    for env in envs:
        parts.append(f"[{env}]\n" + SECTION.format(gates=gates, extra=extra, env=env))
    return "\n".join(parts)


def write_policy(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


class Clock:
    """An injected clock: no sleeps in these tests."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


NOON = datetime(2026, 3, 4, 12, 0, 0, tzinfo=timezone.utc).timestamp()


def circuit(**overrides: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "num_qubits": 3,
        "depth": 4,
        "size": 6,
        "count_ops": {"h": 1, "cx": 2, "measure": 3},
        "num_parameters": 0,
    }
    summary.update(overrides)
    return summary


def request(**overrides: Any) -> JobRequest:
    fields: dict[str, Any] = {"shots": 1000, "circuits": [circuit()]}
    fields.update(overrides)
    return JobRequest(**fields)


ALICE = Identity(user="alice", kernel_id="k1", accessor="acc-1", environment="dev")


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return Policy.load(write_policy(tmp_path, policy_text()), "dev")


@pytest.fixture
def clock() -> Clock:
    return Clock(NOON)


@pytest.fixture
def engine(policy: Policy, clock: Clock) -> PolicyEngine:
    return PolicyEngine(policy, clock=clock)


def denied(decision: Decision, rule: str) -> Decision:
    assert decision.allowed is False, decision
    assert decision.needs_approval is False
    assert decision.rule == rule, decision.message
    assert decision.outcome == "denied"
    assert decision.shots_charged == 0
    return decision


# --------------------------------------------------------------------------- default policy


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_default_policy_loads_for_every_environment(env: str) -> None:
    policy = Policy.load(None, env)
    assert policy.environment == env
    assert policy.version
    assert policy.sha256 == hashlib.sha256(DEFAULT_POLICY_PATH.read_bytes()).hexdigest()
    assert policy.source == str(DEFAULT_POLICY_PATH)
    assert policy.rules.allowed_backends == ["aer_simulator"]
    assert policy.rules.min_shots == 1
    # The shipped default allows an ordinary small job in every environment.
    identity = Identity(user="u", environment=env)
    decision = PolicyEngine(policy).decide(request(shots=1024), identity)
    assert decision.allowed and not decision.needs_approval, decision.message


def test_default_policy_is_package_data() -> None:
    assert DEFAULT_POLICY_PATH.parent == Path(__file__).parents[2] / "jupyter_qsecure" / "jobs"
    assert DEFAULT_POLICY_PATH.is_file()


def test_default_noise_names_are_known_to_the_worker() -> None:
    aer_run = pytest.importorskip("jupyter_qsecure.jobs.aer_run")
    for env in ENVIRONMENTS:
        noise = Policy.load(None, env).rules.allowed_noise
        assert noise == "*" or set(noise) <= set(aer_run.noise_model_names()), env


def test_default_prod_is_stricter_than_dev() -> None:
    dev = Policy.load(None, "dev").rules
    prod = Policy.load(None, "prod").rules
    for key in (
        "max_qubits",
        "max_depth",
        "max_circuits_per_job",
        "max_shots",
        "jobs_per_minute",
        "shots_per_day",
    ):
        assert getattr(prod, key) < getattr(dev, key), key
    assert dev.allowed_gates == "*"
    assert isinstance(prod.allowed_gates, list) and "rzz" not in prod.allowed_gates
    assert set(prod.allowed_methods) < set(dev.allowed_methods)
    assert set(prod.allowed_noise) < set(dev.allowed_noise)
    for key in ("qubits", "depth", "total_shots"):
        assert getattr(prod.heavy_run, key) < getattr(dev.heavy_run, key), key


def test_prod_default_refuses_rzz_with_the_allowed_list() -> None:
    engine = PolicyEngine(Policy.load(None, "prod"))
    decision = engine.decide(
        request(circuits=[circuit(count_ops={"h": 1, "rzz": 1, "measure": 2})]),
        Identity(user="u", environment="prod"),
    )
    denied(decision, "allowed_gates")
    assert decision.message.startswith("gate 'rzz' is not allowed in prod (allowed: ")
    assert "cx" in decision.message and decision.actual == "rzz"


# --------------------------------------------------------------------------- every rule


def test_allowed_job(engine: PolicyEngine) -> None:
    decision = engine.decide(request(), ALICE)
    assert decision.allowed and not decision.needs_approval
    assert decision.outcome == "allowed"
    assert decision.rule is None
    assert decision.shots_charged == 1000
    assert decision.message == "allowed by dev policy 7"
    assert decision.policy_version == "7" and decision.environment == "dev"
    assert decision.evaluated_at == datetime.fromtimestamp(NOON, tz=timezone.utc)
    assert len(decision.decision_id) == 32 and int(decision.decision_id, 16) >= 0


def test_environment_mismatch(engine: PolicyEngine) -> None:
    decision = engine.decide(request(), Identity(user="alice", environment="prod"))
    denied(decision, "environment")
    assert (decision.limit, decision.actual) == ("dev", "prod")
    assert decision.message == (
        "identity environment 'prod' does not match the policy environment 'dev'"
    )


def test_unknown_backend(engine: PolicyEngine) -> None:
    decision = denied(engine.decide(request(backend="ibm_brisbane"), ALICE), "allowed_backends")
    assert (
        decision.message == "backend 'ibm_brisbane' is not allowed in dev (allowed: aer_simulator)"
    )
    assert decision.limit == ["aer_simulator"] and decision.actual == "ibm_brisbane"


def test_unknown_method(engine: PolicyEngine) -> None:
    decision = denied(engine.decide(request(method="density_matrix"), ALICE), "allowed_methods")
    assert decision.message == (
        "method 'density_matrix' is not allowed in dev "
        "(allowed: automatic, statevector, matrix_product_state)"
    )
    assert engine.decide(request(method="statevector"), ALICE).allowed


def test_no_method_means_automatic(tmp_path: Path) -> None:
    text = policy_text().replace(
        '["automatic", "statevector", "matrix_product_state"]', '["statevector"]'
    )
    engine = PolicyEngine(Policy.load(write_policy(tmp_path, text), "dev"))
    decision = denied(engine.decide(request(method=None), ALICE), "allowed_methods")
    assert decision.message == "method 'automatic' is not allowed in dev (allowed: statevector)"


def test_unknown_noise(engine: PolicyEngine) -> None:
    decision = denied(engine.decide(request(noise="thermal"), ALICE), "allowed_noise")
    assert decision.message == "noise model 'thermal' is not allowed in dev (allowed: depolarizing)"
    assert (decision.limit, decision.actual) == (["depolarizing"], "thermal")
    assert engine.decide(request(noise="depolarizing"), ALICE).allowed
    assert engine.decide(request(noise=None), ALICE).allowed


def test_noise_allow_list_empty_and_star(tmp_path: Path) -> None:
    none = policy_text().replace('allowed_noise = ["depolarizing"]', "allowed_noise = []")
    engine = PolicyEngine(Policy.load(write_policy(tmp_path, none), "dev"))
    decision = denied(engine.decide(request(noise="depolarizing"), ALICE), "allowed_noise")
    assert decision.message.endswith("(allowed: none)")
    star = policy_text().replace('allowed_noise = ["depolarizing"]', 'allowed_noise = "*"')
    engine = PolicyEngine(Policy.load(write_policy(tmp_path, star, "s.toml"), "dev"))
    assert engine.decide(request(noise="anything"), ALICE).allowed


@pytest.mark.parametrize(
    ("shots", "rule", "limit"),
    [(0, "min_shots", 1), (-5, "min_shots", 1), (100001, "max_shots", 100000)],
)
def test_shots_out_of_bounds(engine: PolicyEngine, shots: int, rule: str, limit: int) -> None:
    decision = denied(engine.decide(request(shots=shots), ALICE), rule)
    assert decision.message == f"shots {shots} must be between 1 and 100000"
    assert decision.limit == limit and decision.actual == shots


def test_huge_shots_are_denied_and_ledger_safe(engine: PolicyEngine) -> None:
    huge = 10**30
    decision = denied(engine.decide(request(shots=huge), ALICE), "max_shots")
    assert decision.message == f"shots {huge} must be between 1 and 100000"
    body = decision.to_ledger_body()
    assert body["actual"] == str(huge)
    rfc8785.dumps(body)  # exact in canonical JSON
    validate_body("job.decided", body)


def test_shots_at_the_bounds_are_allowed(engine: PolicyEngine) -> None:
    assert engine.decide(request(shots=1), ALICE).allowed
    assert engine.decide(request(shots=100000), ALICE).allowed is True


def test_no_circuits(engine: PolicyEngine) -> None:
    decision = denied(engine.decide(request(circuits=[]), ALICE), "min_circuits")
    assert decision.message == "a job needs at least one circuit; none was submitted"


def test_too_many_circuits(engine: PolicyEngine) -> None:
    decision = denied(
        engine.decide(request(shots=10, circuits=[circuit()] * 6), ALICE), "max_circuits_per_job"
    )
    assert decision.message == "6 circuits exceeds dev limit 5 circuits per job"
    assert (decision.limit, decision.actual) == (5, 6)
    assert engine.decide(request(shots=10, circuits=[circuit()] * 5), ALICE).allowed


def test_unbound_parameters_named(engine: PolicyEngine) -> None:
    job = request(circuits=[circuit(num_parameters=2, parameters=["theta", "phi"])])
    decision = denied(engine.decide(job, ALICE), "unbound_parameters")
    assert decision.message == (
        "circuit 0 has 2 unbound parameters (theta, phi); bind them with --bind"
    )
    assert (decision.limit, decision.actual) == (0, 2)


def test_unbound_parameter_without_names_in_a_later_circuit(engine: PolicyEngine) -> None:
    job = request(circuits=[circuit(), circuit(num_parameters=1)])
    decision = denied(engine.decide(job, ALICE), "unbound_parameters")
    assert decision.message == "circuit 1 has 1 unbound parameter; bind them with --bind"


def test_too_many_qubits(engine: PolicyEngine) -> None:
    decision = denied(
        engine.decide(request(circuits=[circuit(num_qubits=11)]), ALICE), "max_qubits"
    )
    assert decision.message == "qubits 11 exceeds dev limit 10"
    assert (decision.limit, decision.actual) == (10, 11)


def test_qubits_and_depth_at_the_limit_are_not_denied(engine: PolicyEngine) -> None:
    # boundary: exactly max_qubits / max_depth passes those rules (max + 1 is denied above)
    # (both are above the heavy-run thresholds: allowed pending approval, never denied)
    for job in (circuit(num_qubits=10), circuit(depth=500), circuit(num_qubits=10, depth=500)):
        decision = engine.decide(request(circuits=[circuit(), job]), ALICE)
        assert decision.allowed is True, decision.message
        assert decision.outcome == "pending_approval" and decision.rule == "heavy_run"
    denied(
        engine.decide(request(circuits=[circuit(), circuit(num_qubits=11)]), ALICE), "max_qubits"
    )
    denied(engine.decide(request(circuits=[circuit(), circuit(depth=501)]), ALICE), "max_depth")


def test_too_deep(engine: PolicyEngine) -> None:
    decision = denied(engine.decide(request(circuits=[circuit(depth=812)]), ALICE), "max_depth")
    assert decision.message == "depth 812 exceeds dev limit 500"
    assert (decision.limit, decision.actual) == (500, 812)


def test_multi_circuit_messages_name_the_circuit(engine: PolicyEngine) -> None:
    job = request(circuits=[circuit(), circuit(depth=812)])
    assert engine.decide(job, ALICE).message == "depth 812 exceeds dev limit 500 (circuit 1)"
    job = request(circuits=[circuit(), circuit(count_ops={"rzz": 1})])
    assert engine.decide(job, ALICE).message.startswith(
        "gate 'rzz' in circuit 1 is not allowed in dev (allowed: "
    )


def test_gate_not_allowed(engine: PolicyEngine) -> None:
    job = request(circuits=[circuit(count_ops={"h": 1, "rzz": 2, "measure": 3, "barrier": 1})])
    decision = denied(engine.decide(job, ALICE), "allowed_gates")
    assert decision.message == (
        "gate 'rzz' is not allowed in dev (allowed: barrier, cx, h, measure, rz, x)"
    )
    assert decision.actual == "rzz" and decision.limit == ["h", "x", "cx", "rz"]


def test_several_gates_not_allowed_are_all_named(engine: PolicyEngine) -> None:
    job = request(circuits=[circuit(count_ops={"t": 1, "rzz": 2, "ccx": 1})])
    decision = denied(engine.decide(job, ALICE), "allowed_gates")
    assert decision.message.startswith("gates 'ccx', 'rzz', 't' are not allowed in dev")
    assert decision.actual == "ccx"


def test_measure_and_barrier_are_always_allowed_and_star_allows_any_gate(tmp_path: Path) -> None:
    engine = PolicyEngine(Policy.load(write_policy(tmp_path, policy_text(gates="[]")), "dev"))
    assert engine.decide(
        request(circuits=[circuit(count_ops={"measure": 2, "barrier": 1})]), ALICE
    ).allowed
    denied(engine.decide(request(), ALICE), "allowed_gates")
    star = PolicyEngine(
        Policy.load(write_policy(tmp_path, policy_text(gates='"*"'), "s.toml"), "dev")
    )
    assert star.decide(
        request(circuits=[circuit(count_ops={"rzz": 1, "my_gate": 4})]), ALICE
    ).allowed


def test_first_violated_rule_is_reported(engine: PolicyEngine) -> None:
    worst = circuit(num_qubits=11, depth=812, count_ops={"rzz": 1}, num_parameters=1)
    order = [
        ({"backend": "other", "method": "unitary", "shots": 0}, "allowed_backends"),
        ({"method": "unitary", "noise": "x", "shots": 0}, "allowed_methods"),
        ({"noise": "x", "shots": 0}, "allowed_noise"),
        ({"shots": 0, "circuits": [worst] * 6}, "min_shots"),
        ({"circuits": [worst] * 6}, "max_circuits_per_job"),
        ({"circuits": [circuit(num_qubits=11), worst]}, "unbound_parameters"),
        ({"circuits": [circuit(depth=812), circuit(num_qubits=11)]}, "max_qubits"),
        ({"circuits": [circuit(count_ops={"rzz": 1}), circuit(depth=812)]}, "max_depth"),
    ]
    for fields, rule in order:
        assert engine.decide(request(**fields), ALICE).rule == rule, fields
    wrong_env = Identity(user="alice", environment="test")
    assert engine.decide(request(backend="other"), wrong_env).rule == "environment"


# --------------------------------------------------------------------------- malformed files


def load_error(tmp_path: Path, text: str, env: str = "dev") -> PolicyError:
    path = write_policy(tmp_path, text, "bad.toml")
    with pytest.raises(PolicyError) as info:
        Policy.load(path, env)
    assert isinstance(info.value, QSecureError) and info.value.exit_code == 2
    assert str(path) in str(info.value) and info.value.path == str(path)
    return info.value


def test_unknown_key(tmp_path: Path) -> None:
    err = load_error(tmp_path, policy_text(extra="max_qbits = 3"))
    assert "[dev] max_qbits: unknown key (known keys: " in str(err)
    assert "max_qubits" in str(err)
    assert err.key == "[dev] max_qbits"


def test_unknown_key_in_another_environment_fails_too(tmp_path: Path) -> None:
    text = policy_text().replace("[prod]\n", "[prod]\nmax_shot = 5\n")
    err = load_error(tmp_path, text, env="dev")
    assert "[prod] max_shot: unknown key" in str(err)


def test_self_approval_is_off_by_default_and_may_be_allowed_in_dev_only(tmp_path: Path) -> None:
    for env in ENVIRONMENTS:
        assert Policy.load(None, env).rules.allow_self_approval is False
    text = policy_text().replace("[dev]\n", "[dev]\nallow_self_approval = true\n")
    assert Policy.load(write_policy(tmp_path, text), "dev").rules.allow_self_approval is True
    assert Policy.load(write_policy(tmp_path, text), "prod").rules.allow_self_approval is False
    for env in ("test", "prod"):
        text = policy_text().replace(f"[{env}]\n", f"[{env}]\nallow_self_approval = true\n")
        err = load_error(tmp_path, text, env="dev")  # a broken [prod] fails in dev too
        assert err.key == f"[{env}] allow_self_approval" and "[dev] only" in str(err)
    err = load_error(tmp_path, policy_text(extra='allow_self_approval = "yes"'))
    assert "[dev] allow_self_approval" in str(err)


@pytest.mark.parametrize("env", ["test", "prod"])
def test_self_approval_refusals_name_the_key_the_rule_and_the_fix(tmp_path: Path, env: str) -> None:
    # The refusal is the whole of what an operator sees: it must say which key in which
    # section is wrong, why (dev only), and what to do (remove it), for both the heavy-run
    # approval and the notebook review rule.
    heavy = policy_text().replace(f"[{env}]\n", f"[{env}]\nallow_self_approval = true\n")
    err = load_error(tmp_path, heavy, env="dev")
    path = err.path
    assert err.key == f"[{env}] allow_self_approval"
    assert str(err) == (
        f"invalid policy file {path}: [{env}] allow_self_approval: self-approval of heavy "
        "runs may be allowed in [dev] only\n  hint: remove the key (default false): in test "
        "and prod an approver must be someone other than the submitter"
    )
    review = policy_text() + f"\n[{env}.review]\nallow_self_approval = true\n"
    err = load_error(tmp_path, review, env="dev")
    assert err.key == f"[{env}.review] allow_self_approval"
    assert str(err) == (
        f"invalid policy file {path}: [{env}.review] allow_self_approval: the last editor of "
        "a notebook may approve it in [dev] only\n  hint: remove the key (default false): in "
        "test and prod a notebook's approvers must be people other than its last editor"
    )


def test_unknown_section_and_heavy_run_key(tmp_path: Path) -> None:
    err = load_error(tmp_path, policy_text() + "\n[staging]\nmax_qubits = 3\n")
    assert "staging: unknown key 'staging'" in str(err) and "dev, test, prod" in str(err)
    err = load_error(tmp_path, policy_text().replace("depth = 400", "depht = 400"))
    assert "[dev] heavy_run.depht: unknown key (known keys: qubits, depth, total_shots)" in str(err)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "max_depth = 500",
            'max_depth = "500"',
            "[dev] max_depth: Input should be a valid integer (got '500')",
        ),
        (
            "max_depth = 500",
            "max_depth = true",
            "[dev] max_depth: Input should be a valid integer (got True)",
        ),
        (
            "max_depth = 500",
            "max_depth = 0",
            "[dev] max_depth: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            "jobs_per_minute = 30",
            "jobs_per_minute = 2.5",
            "[dev] jobs_per_minute: Input should be a valid integer",
        ),
        (
            'allowed_gates = ["h", "x", "cx", "rz"]',
            'allowed_gates = "h"',
            '[dev] allowed_gates: must be a list of gate names or "*"',
        ),
        (
            'allowed_gates = ["h", "x", "cx", "rz"]',
            "allowed_gates = [1]",
            '[dev] allowed_gates: must be a list of gate names or "*"',
        ),
        (
            'allowed_backends = ["aer_simulator"]',
            'allowed_backends = ["ibm"]',
            "[dev] allowed_backends: unsupported backend 'ibm'",
        ),
        (
            'allowed_backends = ["aer_simulator"]',
            "allowed_backends = []",
            "[dev] allowed_backends: List should have at least 1 item",
        ),
        (
            '"automatic", "statevector"',
            '"automatic", "statevektor"',
            "[dev] allowed_methods: unknown Aer simulation method 'statevektor'",
        ),
        (
            "min_shots = 1",
            "min_shots = 200000",
            "[dev]: min_shots (200000) is greater than max_shots (100000)",
        ),
        ("max_depth = 500\n", "", "[dev] max_depth: required key is missing"),
        ('version = "7"', "version = 7", "version: Input should be a valid string (got 7)"),
        ('version = "7"', 'version = ""', "version: String should have at least 1 character"),
        (
            "qubits = 8",
            "qubits = -1",
            "[dev] heavy_run.qubits: Input should be greater than or equal to 1",
        ),
    ],
)
def test_wrong_values_name_file_and_key(tmp_path: Path, old: str, new: str, expected: str) -> None:
    text = policy_text(envs=("dev",))
    assert old in text
    err = load_error(tmp_path, text.replace(old, new, 1))
    assert expected in str(err)


def test_missing_version(tmp_path: Path) -> None:
    err = load_error(tmp_path, policy_text().replace('version = "7"', ""))
    assert "version: required key is missing" in str(err)


def test_missing_section_for_the_environment(tmp_path: Path) -> None:
    err = load_error(tmp_path, policy_text(envs=("dev", "test")), env="prod")
    assert "has no [prod] section (sections: [dev], [test])" in str(err)
    assert err.key == "[prod]"
    assert "add a [prod] section" in str(err)


def test_unknown_environment(tmp_path: Path) -> None:
    err = load_error(tmp_path, policy_text(), env="staging")
    assert "unknown environment 'staging'" in str(err)


def test_invalid_toml_and_encoding(tmp_path: Path) -> None:
    err = load_error(tmp_path, policy_text() + "\nmax_qubits = = 3\n")
    assert "is not valid TOML" in str(err) and "line" in str(err)
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'version = "\xe9"\n')
    with pytest.raises(PolicyError, match="is not UTF-8 text"):
        Policy.load(path, "dev")


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(PolicyError) as info:
        Policy.load(missing, "dev")
    assert f"cannot read policy file {missing}" in str(info.value)
    assert "policy_file" in str(info.value)
    with pytest.raises(PolicyError, match="cannot read policy file"):
        Policy.load(tmp_path, "dev")  # a directory


def test_hash_changes_when_the_file_changes(tmp_path: Path) -> None:
    path = write_policy(tmp_path, policy_text())
    first = Policy.load(path, "dev")
    assert first.sha256 == Policy.load(path, "dev").sha256 == Policy.load(path, "prod").sha256
    path.write_text(policy_text() + "\n# a comment only\n", encoding="utf-8")
    second = Policy.load(path, "dev")
    assert second.sha256 != first.sha256
    path.write_text(policy_text(version="8"), encoding="utf-8")
    third = Policy.load(path, "dev")
    assert third.version == "8" and third.sha256 not in (first.sha256, second.sha256)
    decision = PolicyEngine(third).decide(request(), ALICE)
    assert (decision.policy_sha256, decision.policy_version) == (third.sha256, "8")


# --------------------------------------------------------------------------- rate limits, quotas


def test_rate_limit_30_then_denied_then_allowed_after_60_seconds(
    engine: PolicyEngine, clock: Clock
) -> None:
    for i in range(30):
        clock.now = NOON + i  # spread over 30 s
        assert engine.decide(request(shots=10), ALICE).allowed, i
    clock.now = NOON + 30
    decision = denied(engine.decide(request(shots=10), ALICE), "jobs_per_minute")
    assert decision.message == "rate limit: 31 jobs in the last minute exceeds dev limit 30"
    assert (decision.limit, decision.actual) == (30, 31)
    clock.now = NOON + 59.999
    assert not engine.decide(request(shots=10), ALICE).allowed
    clock.now = NOON + 60  # the first job left the window
    assert engine.decide(request(shots=10), ALICE).allowed
    assert not engine.decide(request(shots=10), ALICE).allowed
    clock.now = NOON + 30 + 60  # all of the first 30 have left; one from NOON+60 remains
    for _ in range(29):
        assert engine.decide(request(shots=10), ALICE).allowed
    assert not engine.decide(request(shots=10), ALICE).allowed


def test_rate_limit_is_per_user_not_per_kernel(engine: PolicyEngine) -> None:
    for _ in range(30):
        assert engine.decide(request(shots=1), ALICE).allowed
    other_kernel = Identity(user="alice", kernel_id="k2", environment="dev")
    assert engine.decide(request(shots=1), other_kernel).rule == "jobs_per_minute"
    bob = Identity(user="bob", kernel_id="k3", environment="dev")
    assert engine.decide(request(shots=1), bob).allowed


def test_daily_quota_message_and_reset_at_utc_midnight(policy: Policy, clock: Clock) -> None:
    engine = PolicyEngine(policy, clock=clock)
    clock.now = datetime(2026, 3, 4, 23, 50, tzinfo=timezone.utc).timestamp()
    five = [circuit()] * 5
    for _ in range(2):  # 2 x 5 circuits x 100,000 shots = 1,000,000: exactly the limit
        clock.now += 61
        decision = engine.decide(request(shots=100000, circuits=five), ALICE)
        assert decision.allowed and decision.shots_charged == 500000
    clock.now += 61
    decision = denied(engine.decide(request(shots=40000, circuits=five), ALICE), "shots_per_day")
    assert decision.message == "quota: 1,200,000 shots today would exceed dev limit 1,000,000"
    assert (decision.limit, decision.actual) == (1_000_000, 1_200_000)
    clock.now = datetime(2026, 3, 4, 23, 59, 59, 999000, tzinfo=timezone.utc).timestamp()
    assert engine.decide(request(shots=1), ALICE).rule == "shots_per_day"
    clock.now = datetime(2026, 3, 5, 0, 0, 0, tzinfo=timezone.utc).timestamp()
    assert engine.decide(request(shots=40000, circuits=five), ALICE).allowed
    assert engine.usage.shots_today(ALICE.usage_key, clock.now) == 200000


def test_denials_do_not_consume_quota(engine: PolicyEngine, clock: Clock) -> None:
    key = ALICE.usage_key
    for _ in range(50):  # denied by a static rule: neither a job nor shots are counted
        denied(engine.decide(request(circuits=[circuit(depth=812)]), ALICE), "max_depth")
    assert engine.usage.jobs_last_minute(key, clock.now) == 0
    assert engine.usage.shots_today(key, clock.now) == 0
    big = request(shots=100000, circuits=[circuit()] * 5)
    assert engine.decide(big, ALICE).allowed
    assert engine.decide(big, ALICE).allowed
    for _ in range(5):  # denied by the quota itself: not counted either
        denied(engine.decide(request(shots=1), ALICE), "shots_per_day")
    assert engine.usage.jobs_last_minute(key, clock.now) == 2
    assert engine.usage.shots_today(key, clock.now) == 1_000_000
    for _ in range(28):  # zero-quota-left jobs were not counted toward the rate limit
        denied(engine.decide(request(shots=1), ALICE), "shots_per_day")
    assert engine.usage.jobs_last_minute(key, clock.now) == 2


def test_concurrent_decide_never_overshoots_the_quota(tmp_path: Path) -> None:
    text = policy_text().replace("jobs_per_minute = 30", "jobs_per_minute = 100000")
    policy = Policy.load(write_policy(tmp_path, text), "dev")
    engine = PolicyEngine(policy, clock=Clock(NOON))
    start = threading.Barrier(8)
    results: list[list[Decision]] = [[] for _ in range(8)]

    def submit(slot: int) -> None:
        start.wait()
        for _ in range(60):
            results[slot].append(engine.decide(request(shots=7001), ALICE))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    decisions = [d for slot in results for d in slot]
    assert len(decisions) == 480
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 1_000_000 // 7001 == 142
    assert {d.rule for d in decisions if not d.allowed} == {"shots_per_day"}
    assert engine.usage.shots_today(ALICE.usage_key, NOON) == 142 * 7001 <= 1_000_000
    assert len({d.decision_id for d in decisions}) == 480


def test_concurrent_decide_never_overshoots_the_rate_limit(engine: PolicyEngine) -> None:
    start = threading.Barrier(8)
    allowed: list[bool] = []
    lock = threading.Lock()

    def submit() -> None:
        start.wait()
        for _ in range(10):
            ok = engine.decide(request(shots=1), ALICE).allowed
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(allowed) == 80 and sum(allowed) == 30


def test_usage_tracker_rebuilds_from_ledger_bodies(policy: Policy, clock: Clock) -> None:
    first = PolicyEngine(policy, clock=clock)
    bodies = [first.decide(request(shots=10), ALICE).to_ledger_body() for _ in range(30)]
    bodies.append(first.decide(request(shots=10), ALICE).to_ledger_body())  # denied
    assert bodies[-1]["allowed"] is False
    bodies = [json.loads(json.dumps(b)) for b in bodies]  # as read back from the ledger

    usage = UsageTracker()
    assert usage.load(bodies) == 30
    restarted = PolicyEngine(policy, clock=clock, usage=usage)
    assert restarted.decide(request(shots=10), ALICE).rule == "jobs_per_minute"
    assert usage.shots_today(ALICE.usage_key, clock.now) == 300
    clock.now += 60
    assert restarted.decide(request(shots=10), ALICE).allowed


def test_usage_tracker_load_accepts_plain_events() -> None:
    usage = UsageTracker()
    when = datetime.fromtimestamp(NOON, tz=timezone.utc)
    counted = usage.load(
        [
            {"identity_key": "dev:a", "shots": 5, "when": NOON},
            {"identity_key": "dev:a", "shots": 5, "when": when},
            {"identity_key": "dev:a", "shots": 5, "when": "2026-03-04T11:59:30Z"},
            {"identity_key": "dev:a", "shots": 5, "when": NOON - 86400},  # yesterday
        ]
    )
    assert counted == 4
    assert usage.jobs_last_minute("dev:a", NOON) == 3
    assert usage.shots_today("dev:a", NOON) == 15
    usage.record("dev:a", 10, NOON + 1)
    assert usage.shots_today("dev:a", NOON + 1) == 25


# --------------------------------------------------------------------------- heavy runs


def test_heavy_run_needs_approval(engine: PolicyEngine, clock: Clock) -> None:
    decision = engine.decide(request(circuits=[circuit(num_qubits=8)]), ALICE)
    assert decision.allowed is True and decision.needs_approval is True
    assert decision.outcome == "pending_approval"
    assert decision.rule == "heavy_run"
    assert decision.limit == {"qubits": 8} and decision.actual == 8
    assert decision.message == (
        "heavy run: 8 qubits reaches the dev approval threshold (heavy_run.qubits = 8); "
        "the job waits for an approval: jupyter qsecure jobs approve JOB_ID"
    )
    assert decision.approval_message("abc123").endswith("jupyter qsecure jobs approve abc123")
    # A job waiting for approval holds its place in the rate limit and quota.
    assert engine.usage.shots_today(ALICE.usage_key, clock.now) == 1000


def test_heavy_run_depth_and_total_shots(engine: PolicyEngine) -> None:
    deep = engine.decide(request(circuits=[circuit(depth=450)]), ALICE)
    assert deep.needs_approval and deep.limit == {"depth": 400} and deep.actual == 450
    many = engine.decide(request(shots=100000, circuits=[circuit()] * 5), ALICE)
    assert many.needs_approval and many.limit == {"total_shots": 500000}
    assert "500,000 total shots (shots x circuits)" in many.message
    bob = Identity(user="bob", environment="dev")  # alice has used her daily quota
    light = engine.decide(request(shots=99999, circuits=[circuit()] * 5), bob)
    assert light.allowed and not light.needs_approval


def test_limits_win_over_heavy_run(engine: PolicyEngine) -> None:
    job = request(circuits=[circuit(num_qubits=8)])
    for _ in range(30):
        assert engine.decide(job, ALICE).needs_approval
    assert engine.decide(job, ALICE).rule == "jobs_per_minute"
    too_deep = request(circuits=[circuit(num_qubits=9, depth=600)])
    assert engine.decide(too_deep, Identity(user="bob", environment="dev")).rule == "max_depth"


# --------------------------------------------------------------------------- models, ledger


def test_ledger_body_is_valid_and_json(engine: PolicyEngine) -> None:
    for decision in (
        engine.decide(request(), ALICE),
        engine.decide(request(circuits=[circuit(count_ops={"rzz": 1})]), ALICE),
        engine.decide(request(circuits=[circuit(depth=450)]), ALICE),
    ):
        body = decision.to_ledger_body()
        assert validate_body("job.decided", body) == body
        assert json.loads(json.dumps(body)) == body
        rfc8785.dumps(body)
        assert body["evaluated_at"] == "2026-03-04T12:00:00.000000Z"
        assert body["policy_sha256"] == engine.policy.sha256
        assert set(body) >= {
            "decision_id", "allowed", "needs_approval", "rule", "limit", "actual",
            "message", "policy_sha256", "policy_version", "environment", "evaluated_at",
        }  # fmt: skip
    denial = engine.decide(request(shots=0), ALICE).to_denial()
    assert denial["error"] == "denied" and denial["rule"] == "min_shots" and denial["limit"] == 1


def test_job_request_validation() -> None:
    with pytest.raises(ValidationError):
        JobRequest(shots="100", circuits=[circuit()])
    with pytest.raises(ValidationError):
        JobRequest(shots=True, circuits=[circuit()])
    with pytest.raises(ValidationError):
        JobRequest(shots=1, circuits=[circuit()], bogus=1)
    with pytest.raises(ValidationError):
        JobRequest(shots=1, circuits=[{"num_qubits": 2}])  # summary without depth, size
    kept = JobRequest(shots=1, circuits=[circuit(circuit_hash="ab" * 32, name="bell")])
    assert kept.circuits[0].model_extra == {"circuit_hash": "ab" * 32, "name": "bell"}
    with pytest.raises(ValidationError):
        Identity(user="", environment="dev")


# --------------------------------------------------------------------------- records (mutation testing)


def test_ledger_body_and_denial_are_exact(engine: PolicyEngine) -> None:
    decision = engine.decide(request(circuits=[circuit(num_qubits=11)]), ALICE)
    body = decision.to_ledger_body()
    assert body == {
        "decision_id": decision.decision_id,
        "outcome": "denied",
        "allowed": False,
        "needs_approval": False,
        "rule": "max_qubits",
        "limit": 10,
        "actual": 11,
        "message": "qubits 11 exceeds dev limit 10",
        "policy_sha256": decision.policy_sha256,
        "policy_version": "7",
        "environment": "dev",
        "evaluated_at": "2026-03-04T12:00:00.000000Z",
        "identity_key": "dev:alice",
        "shots_charged": 0,
    }
    assert decision.to_denial() == {
        "error": "denied",
        "rule": "max_qubits",
        "limit": 10,
        "message": "qubits 11 exceeds dev limit 10",
        "decision_id": decision.decision_id,
    }


def test_json_safe_keeps_exact_integers_and_stringifies_the_rest() -> None:
    from jupyter_qsecure.jobs.policy import _JSON_SAFE_INT, _json_safe

    top = _JSON_SAFE_INT
    assert _json_safe(top) == top and _json_safe(-top) == -top  # the bounds are exact in JSON
    assert _json_safe(top + 1) == str(top + 1) and _json_safe(-top - 1) == str(-top - 1)
    assert _json_safe(None) is None and _json_safe(True) is True and _json_safe(0) == 0
    nested = {1: (2, [top + 1, None]), "s": "x", "f": 1.5, "p": Path("a")}
    assert _json_safe(nested) == {"1": [2, [str(top + 1), None]], "s": "x", "f": 1.5, "p": "a"}


def test_evaluated_at_is_written_in_utc_whatever_the_local_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time
    from datetime import timedelta

    from jupyter_qsecure.jobs.policy import _utc_text

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        moment = datetime(2026, 1, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
        assert _utc_text(moment) == "2026-01-01T10:30:00.000000Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_policy_problems_render_their_key_and_reason() -> None:
    from jupyter_qsecure.jobs.policy import _render_key, _render_problem

    assert _render_key(()) == "(file)"
    assert _render_key(("version",)) == "version"
    assert _render_key(("a", "b")) == "a.b"
    assert _render_key(("dev",)) == "[dev]"
    assert _render_key(("dev", "heavy_run", "qubits")) == "[dev] heavy_run.qubits"
    review = _render_problem({"loc": ("dev", "review", "x"), "type": "extra_forbidden"})
    assert review == "unknown key (known keys: approvals_required, allow_self_approval)"
    heavy = _render_problem({"loc": ("dev", "heavy_run", "x"), "type": "extra_forbidden"})
    assert heavy.startswith("unknown key (known keys: qubits, ")
    assert _render_problem({"loc": (), "type": "x", "msg": "Assertion failed, no"}) == "no"
    assert _render_problem({"loc": (), "type": "x", "msg": "Value error, bad"}) == "bad"
    assert _render_problem({"loc": (), "type": "int_type", "msg": "not an int"}) == "not an int"
    got = _render_problem({"loc": (), "type": "int_type", "msg": "not an int", "input": "7"})
    assert got == "not an int (got '7')"
    assert _render_problem({"loc": (), "type": "t", "msg": "m", "input": {"a": 1}}) == "m"
