"""Approvals of heavy runs: signed statements, verified against the approvers trusted.

Unit tests of the engine (:mod:`jupyter_qsecure.jobs.approval`); the same flow through
the real server, kernel and CLI is in tests/server/test_jobs_approval.py.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from pathlib import Path
from typing import Any

import pytest

from jupyter_qsecure.jobs.approval import (
    ApprovalError,
    ApprovalRefused,
    ApprovalVerifier,
    ApproverRef,
    ApproverTrust,
    LocalApproverKey,
    TrustedApprover,
    approval_subject,
    build_approval,
    kernel_context,
)
from jupyter_qsecure.ledger.kinds import validate_body
from jupyter_qsecure.vault.layout import approver_name

JOB = uuid.uuid4().hex
DECISION = uuid.uuid4().hex
REQUEST = {
    "shots": 100,
    "seed": 1,
    "backend": "aer_simulator",
    "method": None,
    "noise": None,
    "tags": [],
}
HASHES = ["a" * 64]
SUBJECT = approval_subject(JOB, DECISION, HASHES, REQUEST)


def passphrase() -> str:
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def officer(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalApproverKey, Path, str]:
    secret = passphrase()
    path = tmp_path_factory.mktemp("approvers") / "security-officer.key"
    return LocalApproverKey.create(path, "security-officer", secret), path, secret


def trusted(key: LocalApproverKey, environments: tuple[str, ...] = ("dev",)) -> TrustedApprover:
    return TrustedApprover(name=key.name, environments=list(environments), key=key.public_keys()[0])


def approval(key: Any, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "job_id": JOB,
        "subject": SUBJECT,
        "decision_id": DECISION,
        "environment": "dev",
        "approver": ApproverRef(name=getattr(key, "name", "security-officer"), source="local"),
        "submitter": "alice",
        "note": "budget ok",
        "signer": key,
    }
    args.update(overrides)
    return build_approval(**args)


def verify(verifier: ApprovalVerifier, body: Any, **overrides: Any) -> Any:
    args: dict[str, Any] = {
        "job_id": JOB,
        "decision_id": DECISION,
        "subject": SUBJECT,
        "submitter": "alice",
        "allow_self": False,
    }
    args.update(overrides)
    return verifier.verify(body, **args)


def test_a_key_file_is_private_and_useless_without_its_passphrase(
    officer: tuple[LocalApproverKey, Path, str],
) -> None:
    key, path, secret = officer
    assert path.stat().st_mode & 0o777 == 0o600
    record = json.loads(path.read_text())
    assert record["kdf"]["name"] == "argon2id" and record["kdf"]["memory_kib"] >= 64 * 1024
    assert secret not in path.read_text()
    with pytest.raises(ApprovalError, match="wrong passphrase"):
        LocalApproverKey.unlock(path, passphrase())
    assert LocalApproverKey.unlock(path, secret).key_id == key.key_id
    # The name (and so who the key approves as) is sealed with the key.
    record["name"] = "someone-else"
    swapped = path.with_name("swapped.key")
    swapped.write_text(json.dumps(record))
    with pytest.raises(ApprovalError, match="wrong passphrase"):
        LocalApproverKey.unlock(swapped, secret)
    with pytest.raises(ApprovalError, match="already exists"):
        LocalApproverKey.create(path, "security-officer", passphrase())
    with pytest.raises(ApprovalError, match="shorter than"):
        LocalApproverKey.create(path.with_name("x.key"), "x", "short")
    with pytest.raises(ApprovalError, match="not an approver name"):
        LocalApproverKey.create(path.with_name("y.key"), "reviewer: bob", passphrase())


def test_a_valid_approval_names_approver_and_submitter(
    officer: tuple[LocalApproverKey, Path, str],
) -> None:
    key = officer[0]
    body = approval(key)
    validate_body("job.approved", body)  # the ledger takes it as it is
    verified = verify(ApprovalVerifier("dev", local=[trusted(key)]), body)
    assert (verified.approver, verified.submitter, verified.source) == (
        "security-officer",
        "alice",
        "local",
    )
    assert verified.key_id == key.key_id
    # What the ledger gives back (JSON round trip) verifies the same.
    again = json.loads(json.dumps(validate_body("job.approved", body)))
    assert verify(ApprovalVerifier("dev", local=[trusted(key)]), again).approver == key.name


def test_forged_and_mismatched_approvals_are_refused(
    officer: tuple[LocalApproverKey, Path, str], tmp_path: Path
) -> None:
    key = officer[0]
    verifier = ApprovalVerifier("dev", local=[trusted(key)])
    impostor = LocalApproverKey.create(tmp_path / "i.key", "security-officer", passphrase())
    tampered = approval(key)
    tampered["statement"]["predicate"]["submitter"] = "bob"
    other_job = approval(key, job_id=uuid.uuid4().hex)
    other_request = approval(
        key, subject=approval_subject(JOB, DECISION, HASHES, {**REQUEST, "shots": 10**5})
    )
    cases: list[tuple[Any, str]] = [
        ({"job_id": JOB, "note": "ok"}, "malformed"),  # the unsigned approval of old
        ({"statement": "x", "signatures": []}, "malformed"),
        ({"statement": {"a": [[[[]]]]}, "signatures": [{"sig": "!!"}]}, "not signed"),
        (approval(impostor), "not signed by a trusted approver key"),
        (tampered, "not signed by a trusted approver key"),
        (other_job, "another job"),
        (other_request, "another job, decision or request"),
        (approval(key, decision_id=uuid.uuid4().hex), "another job"),
        (approval(key, submitter="bob"), "another submitter"),
        (approval(key, environment="prod"), "not for the dev environment"),
        (
            approval(key, approver=ApproverRef(name="cfo", source="local")),
            "another approver than security-officer",
        ),
    ]
    for body, reason in cases:
        with pytest.raises(ApprovalRefused) as caught:
            verify(verifier, body)
        assert reason in caught.value.message, (reason, caught.value.message)
        assert caught.value.exit_code == 1


def test_self_approval_only_where_the_policy_allows_it(tmp_path: Path) -> None:
    alice = LocalApproverKey.create(tmp_path / "alice.key", "alice", passphrase())
    verifier = ApprovalVerifier("dev", local=[trusted(alice)])
    body = approval(alice)
    with pytest.raises(ApprovalRefused, match="self-approval is not allowed in dev"):
        verify(verifier, body)
    assert verify(verifier, body, allow_self=True).approver == "alice"


def test_approvers_are_trusted_per_environment(
    officer: tuple[LocalApproverKey, Path, str],
) -> None:
    key = officer[0]
    prod = ApprovalVerifier("prod", local=[trusted(key, ("dev",))])
    with pytest.raises(ApprovalRefused, match="trusts no approver for the prod environment"):
        verify(prod, approval(key, environment="prod"))
    both = ApprovalVerifier("prod", local=[trusted(key, ("dev", "prod"))])
    assert verify(both, approval(key, environment="prod")).approver == key.name


def test_openbao_approvals_are_bound_to_the_signing_token(tmp_path: Path) -> None:
    # A local key stands in for the transit key's signature; the token data is what
    # OpenBao's lookup-accessor answers (a boundary stub).
    transit = LocalApproverKey.create(tmp_path / "t.key", "transit", passphrase())
    accessor = secrets.token_hex(12)
    tokens = {
        accessor: {
            "display_name": "token-carol",
            "meta": {"approver": "carol"},
            "policies": ["qsecure-approver-dev"],
        }
    }
    verifier = ApprovalVerifier(
        "dev",
        openbao_keys=transit.public_keys(),
        lookup_accessor=tokens.get,
        approver_policy="qsecure-approver-dev",
        name_of=approver_name,
    )
    ref = ApproverRef(name="carol", source="openbao", accessor=accessor)
    verified = verify(verifier, approval(transit, approver=ref))
    assert (verified.approver, verified.source) == ("carol", "openbao")
    for claimed, reason in [
        (ref.model_copy(update={"name": "dave"}), "another approver than the OpenBao token"),
        (ref.model_copy(update={"accessor": "gone"}), "no longer valid"),
        (ref.model_copy(update={"source": "local"}), "do not match"),
    ]:
        with pytest.raises(ApprovalRefused, match=reason):
            verify(verifier, approval(transit, approver=claimed))
    tokens[accessor]["policies"] = ["qsecure-server-dev"]
    with pytest.raises(ApprovalRefused, match="another approver than the OpenBao token"):
        verify(verifier, approval(transit, approver=ref))


def test_the_trust_file_lists_public_keys_only(
    officer: tuple[LocalApproverKey, Path, str], tmp_path: Path
) -> None:
    key, _, secret = officer
    path = tmp_path / "keys" / "approvers.json"
    trust = ApproverTrust.load(path)
    assert trust.approvers == []
    trust.add(key.name, key.public_keys()[0], ["dev", "prod"])
    with pytest.raises(ApprovalError, match="already trusted"):
        trust.add(key.name, key.public_keys()[0], ["dev"])
    trust.save(path)
    loaded = ApproverTrust.load(path)
    assert [(a.name, a.environments) for a in loaded.approvers] == [(key.name, ["dev", "prod"])]
    assert "PRIVATE" not in path.read_text() and secret not in path.read_text()
    path.write_text('{"approvers": [{"name": "x"}]}')
    with pytest.raises(ApprovalError, match="is invalid"):
        ApproverTrust.load(path)


def test_kernel_context_from_the_environment_and_the_process_tree(tmp_path: Path) -> None:
    assert "JPY_PARENT_PID" in str(kernel_context({"JPY_PARENT_PID": "4242"}))
    assert kernel_context({}) is None  # pytest is not a kernel
    # A process tree (as /proc shows it) where our grandparent is an ipykernel.
    proc = tmp_path / "proc"
    parent = os.getppid()
    for pid, ppid, argv in [
        (parent, 500, b"/bin/sh\0-c\0jupyter qsecure jobs approve x"),
        (500, 1, b"/usr/bin/python3\0-m\0ipykernel_launcher\0-f\0/tmp/k.json"),
    ]:
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_bytes(argv)
        (proc / str(pid) / "stat").write_text(f"{pid} (x) S {ppid} 0 0")
    assert "process 500" in str(kernel_context({}, proc=proc))
