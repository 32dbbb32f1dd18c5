"""``jupyter qsecure review approve|status`` end to end (embedded default: local keys).

Real ledger (SQLite), real save gate for the last editor, the CLI's ``main`` in process.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import threading
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from promote_helpers import Person, Team, edit
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from jupyter_qsecure.config import QSecure
from jupyter_qsecure.jobs.manifest import Envelope
from jupyter_qsecure.ledger import KeyRing
from jupyter_qsecure.promote.digest import load_notebook, notebook_digest
from jupyter_qsecure.promote.review import (
    REVIEW_PREDICATE_TYPE,
    ApprovalInvalid,
    Reviewer,
    append_approval,
    approvals_path,
    build_review_statement,
    read_approvals,
    sign_review,
    verify_approval_envelope,
)
from jupyter_qsecure.signing.signers import Ed25519FileSigner

CELLS = ["# Bell state", "from qiskit import QuantumCircuit", "qc = QuantumCircuit(2)\ny = 2"]


def write_notebook(path: Path, cells: list[str] = CELLS) -> dict[str, Any]:
    nb = new_notebook(
        cells=[new_markdown_cell(cells[0])] + [new_code_cell(c) for c in cells[1:]],
        metadata={"kernelspec": {"name": "qsecure", "display_name": "Q", "language": "python"}},
    )
    nbformat.write(nb, path)
    return json.loads(path.read_text(encoding="utf-8"))


def test_approve_change_one_character_then_reapprove(team: Team, tmp_path: Path) -> None:
    alice = team.person("alice")
    nb = tmp_path / "bell.ipynb"
    marker = "qc_" + secrets.token_hex(6)
    write_notebook(nb, [*CELLS[:2], f"{marker} = 1\ny = 2"])

    code, out, err = team.run(alice, "review", "approve", str(nb), "--note", "checked")
    assert code == 0, err
    assert "approved bell.ipynb" in out and "as alice (local key ed25519:" in out
    assert "bell.ipynb: approved in dev (1 of 1: alice)" in out
    assert team.run(alice, "review", "status", str(nb))[0] == 0

    edit(nb, lambda d: d["cells"][2].update(source=f"{marker} = 1\ny = 3"))  # one character
    code, out, _ = team.run(alice, "review", "status", str(nb))
    assert code == 1
    assert "bell.ipynb: changed since its approval by alice" in out and "cell 3 changed" in out
    code, out, _ = team.run(alice, "review", "status", str(nb), "--json")
    report = json.loads(out)
    assert (code, report["status"], report["changed_cells"]) == (1, "changed", [3])
    assert report["digest"] == notebook_digest(load_notebook(nb))
    code, out, _ = team.run(alice, "review", "status", str(nb), "--diff")
    assert code == 1 and "-  y = 2" in out and "+  y = 3" in out and "/cells/2/source" in out

    code, out, err = team.run(alice, "review", "approve", str(nb))
    assert code == 0, err
    assert "approval 2 in bell.ipynb.approvals.json" in out
    code, out, _ = team.run(alice, "review", "status", str(nb))
    assert code == 0 and "approved in dev (1 of 1: alice)" in out

    recorded = team.ledger_entries("review.approved")
    assert [r["digest"] for r in recorded] == [
        e["digest"] for e in map(_statement_subject, read_approvals(approvals_path(nb)))
    ]
    assert recorded[0]["note"] == "checked" and recorded[0]["reviewer"] == "alice"
    assert recorded[-1]["path"] == str(nb.resolve()) and recorded[-1]["source"] == "local"
    assert marker not in json.dumps(recorded)  # never content


def _statement_subject(envelope: dict[str, Any]) -> dict[str, Any]:
    statement = json.loads(base64.b64decode(envelope["payload"]))
    return {"digest": statement["subject"][0]["digest"]["sha256"]}


def test_outputs_do_not_unapprove_tags_do(team: Team, tmp_path: Path) -> None:
    alice = team.person("alice")
    nb = tmp_path / "n.ipynb"
    write_notebook(nb)
    assert team.run(alice, "review", "approve", str(nb))[0] == 0

    def run_it(d: dict[str, Any]) -> None:
        d["cells"][1]["outputs"] = [new_output("stream", name="stdout", text="ok\n")]
        d["cells"][1]["execution_count"] = 4
        d["cells"][2]["metadata"]["scrolled"] = True

    edit(nb, run_it)
    assert team.run(alice, "review", "status", str(nb))[0] == 0
    edit(nb, lambda d: d["cells"][1]["metadata"].update(tags=["skip-promote"]))
    code, out, _ = team.run(alice, "review", "status", str(nb))
    assert code == 1 and "cell 2 changed" in out


def test_self_approval_refused_in_test_two_other_approvers_satisfy_it(
    team: Team, tmp_path: Path
) -> None:
    alice, bob, carol = team.person("alice"), team.person("bob"), team.person("carol")
    nb = tmp_path / "t.ipynb"
    write_notebook(nb)
    team.save_through_gate(nb, "alice")  # alice made the last change

    code, out, err = team.run(alice, "review", "approve", str(nb), "--environment", "test")
    assert code == 1 and out == ""
    assert "alice made the last change to t.ipynb" in err
    assert "self-approval is not allowed in test" in err and "hint: ask 2 other" in err
    assert not approvals_path(nb).exists()
    # in dev (the default policy allows it) alice may approve her own change
    assert team.run(alice, "review", "approve", str(nb))[0] == 0

    code, out, err = team.run(bob, "review", "approve", str(nb), "--environment", "test")
    assert code == 0, err
    assert "t.ipynb: unapproved in test" in out
    assert "1 of 2 required approval(s) of this version in test by people other than" in out
    code, out, err = team.run(carol, "review", "approve", str(nb), "--environment", "test")
    assert code == 0, err

    bob_keys, carol_keys = team.keys_of(bob), team.keys_of(carol)
    status = ("review", "status", str(nb), "--environment", "test")
    code, out, _ = team.run(carol, *status)
    assert (
        code == 1 and "approval 2: approval does not verify" in out
    )  # bob's key is not trusted here
    code, out, _ = team.run(carol, *status, "--keys", bob_keys)
    assert code == 0 and "t.ipynb: approved in test (2 of 2: bob, carol)" in out
    # alice's own dev approval does not count in test; nor does she, with keys for all
    code, out, _ = team.run(alice, *status, "--keys", bob_keys, "--keys", carol_keys, "--json")
    report = json.loads(out)
    assert (code, report["approvers"], report["last_editor"]) == (0, ["bob", "carol"], "alice")
    first = report["approvals"][0]
    assert (first["reviewer"], first["environment"], first["current"]) == ("alice", "dev", False)
    assert first["why_not_counted"] == "it is an approval for dev"


def test_one_key_is_one_approver_and_the_rule_needs_a_known_editor(
    team: Team, tmp_path: Path
) -> None:
    bob, carol = team.person("bob"), team.person("carol")
    mallory_with_bobs_key = Person("mallory", bob.data)
    nb = tmp_path / "u.ipynb"
    write_notebook(nb)  # never saved through JupyterLab: its editor is unknown
    for who in (bob, mallory_with_bobs_key, carol):
        code, _, err = team.run(who, "review", "approve", str(nb), "--environment", "prod")
        assert code == 0, err
        assert "counts in prod only once the ledger knows who made this version" in err
    status = ("review", "status", str(nb), "--environment", "prod", "--keys", team.keys_of(bob))
    code, out, _ = team.run(carol, *status, "--json")
    report = json.loads(out)
    assert code == 1 and report["approvers"] == []
    assert any("has no save of u.ipynb through JupyterLab" in r for r in report["reasons"])

    team.save_through_gate(nb, "erin")  # erin saves it: now the editor is known
    code, out, _ = team.run(carol, *status, "--json")
    report = json.loads(out)
    assert code == 0 and report["approvers"] == ["bob", "carol"]
    mallory = report["approvals"][1]
    assert mallory["reviewer"] == "mallory" and not mallory["counted"]
    assert "same local key as an earlier approver" in mallory["why_not_counted"]


def _no_kernelspec(nb: Path) -> None:
    edit(nb, lambda d: d["metadata"].pop("kernelspec"))


def _bad_cell(nb: Path) -> None:
    edit(nb, lambda d: d["cells"][1].update(cell_type="sql"))


def _not_json(nb: Path) -> None:
    nb.write_text('{"cells": [', encoding="utf-8")


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_no_kernelspec, "has no kernelspec"),
        (_bad_cell, "cell 2 has an unknown cell_type"),
        (_not_json, "not valid UTF-8 JSON"),
    ],
    ids=["no-kernelspec", "invalid-cell", "not-json"],
)
def test_invalid_notebooks_are_refused_and_nothing_is_written(
    team: Team, tmp_path: Path, damage: Any, expected: str
) -> None:
    alice = team.person("alice")
    nb = tmp_path / "bad.ipynb"
    write_notebook(nb)
    damage(nb)
    for command in ("approve", "status"):
        code, out, err = team.run(alice, "review", command, str(nb))
        assert code == 2 and expected in err and "hint:" in err and "Traceback" not in err
    assert not approvals_path(nb).exists()
    assert not (tmp_path / "ledger.db").exists() or team.ledger_entries("review.approved") == []


def test_a_secret_in_the_code_is_not_approved(team: Team, tmp_path: Path) -> None:
    key = "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))
    nb = tmp_path / "s.ipynb"
    write_notebook(nb, [*CELLS[:2], f"aws_key = '{key}'"])
    code, out, err = team.run(team.person("alice"), "review", "approve", str(nb))
    assert code == 1 and "cell 3, line 1, holds what looks like a secret" in err
    assert key not in out + err and not approvals_path(nb).exists()


def test_refused_inside_a_kernel(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = tmp_path / "k.ipynb"
    write_notebook(nb)
    monkeypatch.setenv("JPY_PARENT_PID", "1")
    code, _, err = team.run(team.person("alice"), "review", "approve", str(nb))
    assert code == 2 and "inside a Jupyter kernel" in err and not approvals_path(nb).exists()


def _reviewer_key(team: Team, who: Person) -> tuple[str, str]:
    """(keyid, hex public key) of ``who``'s reviewer key, from their exported keys."""
    keys = KeyRing.from_json(Path(team.keys_of(who)).read_text(encoding="utf-8"))
    (record,) = [k for k in keys if k.source == "reviewer"]
    raw = base64.b64decode(record.public_key)
    return f"{record.key_id}@v{record.key_version}", raw.hex()


def test_the_envelope_verifies_with_securesystemslib(team: Team, tmp_path: Path) -> None:
    alice = team.person("alice")
    nb = tmp_path / "d.ipynb"
    write_notebook(nb)
    assert team.run(alice, "review", "approve", str(nb))[0] == 0
    (envelope,) = read_approvals(approvals_path(nb))
    keyid, public = _reviewer_key(team, alice)
    key = SSlibKey(keyid, "ed25519", "ed25519", {"public": public})

    independent = SslibEnvelope.from_dict(json.loads(json.dumps(envelope)))
    assert independent.payload_type == "application/vnd.in-toto+json"
    assert set(independent.verify([key], 1)) == {keyid}
    statement = json.loads(independent.payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == REVIEW_PREDICATE_TYPE
    assert statement["subject"] == [
        {"name": "d.ipynb", "digest": {"sha256": notebook_digest(load_notebook(nb))}}
    ]
    assert statement["predicate"]["reviewer"] == {
        "name": "alice",
        "source": "local",
        "accessor": None,
    }

    tampered = json.loads(json.dumps(envelope))
    statement["predicate"]["reviewer"]["name"] = "mallory"
    tampered["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    with pytest.raises(VerificationError):
        SslibEnvelope.from_dict(tampered).verify([key], 1)


def test_tampered_and_non_reviewer_signatures_do_not_count(team: Team, tmp_path: Path) -> None:
    alice = team.person("alice")
    nb = tmp_path / "x.ipynb"
    write_notebook(nb)
    assert team.run(alice, "review", "approve", str(nb))[0] == 0
    keys = team.keys_of(alice)
    (envelope,) = read_approvals(approvals_path(nb))
    verified = verify_approval_envelope(envelope, keys)
    assert (verified.reviewer.name, verified.environment) == ("alice", "dev")

    # the same statement, reviewer renamed: the signature no longer matches
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["reviewer"]["name"] = "bob"
    forged = dict(envelope, payload=base64.b64encode(json.dumps(statement).encode()).decode())
    with pytest.raises(ApprovalInvalid, match="does not verify"):
        verify_approval_envelope(forged, keys)
    # a statement signed by a key trusted for something else (the ledger's own key)
    settings = QSecure(data_dir=str(alice.data))
    ledger_key = Ed25519FileSigner(settings.resolved_signing_key_file())
    trusted = KeyRing.from_json(Path(keys).read_text(encoding="utf-8"))
    for record in ledger_key.public_keys():
        trusted.add(record)
    server_made = sign_review(
        build_review_statement(
            name="x.ipynb",
            document=verified.document,
            environment="dev",
            reviewer=Reviewer(name="bob", source="local"),
        ),
        ledger_key,
    )
    with pytest.raises(ApprovalInvalid, match="does not verify"):
        verify_approval_envelope(server_made, trusted)

    for bad in (forged, server_made.model_dump(mode="json")):
        append_approval(approvals_path(nb), Envelope.model_validate(bad))
    code, out, _ = team.run(alice, "review", "status", str(nb), "--json")
    report = json.loads(out)
    assert code == 0 and report["approvers"] == ["alice"]
    assert [a["verified"] for a in report["approvals"]] == [True, False, False]


def test_concurrent_approvals_are_all_kept(tmp_path: Path) -> None:
    signer = Ed25519FileSigner(tmp_path / "k.pem")
    document = {"format": "f", "kernelspec": {"name": "q", "language": "python"}, "cells": []}
    envelopes = [
        sign_review(
            build_review_statement(
                name="c.ipynb",
                document=document,
                environment="dev",
                reviewer=Reviewer(name=f"r{i}", source="local"),
            ),
            signer,
        )
        for i in range(12)
    ]
    target = tmp_path / "c.ipynb.approvals.json"
    threads = [threading.Thread(target=append_approval, args=(target, e)) for e in envelopes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    kept = read_approvals(target)
    assert sorted(e["payload"] for e in kept) == sorted(e.payload for e in envelopes)
