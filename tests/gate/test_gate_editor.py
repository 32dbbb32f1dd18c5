"""The save gate records who changed what a notebook runs (``notebook.saved``), once per
change of code: the last editor the two-person rule of review needs."""

from __future__ import annotations

import json
import secrets
import string
from pathlib import Path
from typing import Any

from jupyter_qsecure.gate import SaveGate
from jupyter_qsecure.gate.recovery import LocalKeyWrapper, RecoveryStore
from jupyter_qsecure.ledger import EntryFilter, Ledger
from jupyter_qsecure.promote.digest import notebook_digest
from jupyter_qsecure.scan import Scanner
from jupyter_qsecure.signing.signers import Ed25519FileSigner
from jupyter_qsecure.testing.notebooks import one_cell_notebook


def model(nb: dict[str, Any]) -> dict[str, Any]:
    return {"type": "notebook", "format": "json", "content": nb}


def open_ledger(tmp_path: Path) -> Ledger:
    return Ledger.open(
        f"sqlite:///{tmp_path / 'ledger.db'}", signers=[Ed25519FileSigner(tmp_path / "k.pem")]
    )


def make_gate(tmp_path: Path, ledger: Ledger, root: Path | None = None) -> SaveGate:
    store = RecoveryStore(tmp_path / "recovery", LocalKeyWrapper(tmp_path / "recovery.key"))
    return SaveGate(scanner=Scanner(), recovery=store, mode="block", ledger=ledger, root_dir=root)


def saves(ledger: Ledger) -> list[dict[str, Any]]:
    return [e.body for e in ledger.entries(EntryFilter(kinds=["notebook.saved"]))]


def test_a_change_of_code_is_recorded_with_its_editor_outputs_are_not(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with open_ledger(tmp_path) as ledger:
        gate = make_gate(tmp_path, ledger, root)
        first = one_cell_notebook("x = 1")
        assert gate.check_model(model(first), "a.ipynb", "alice", saving=True).action == "allow"
        assert saves(ledger) == [
            {
                "path": "a.ipynb",
                "file": str(root.resolve() / "a.ipynb"),
                "user": "alice",
                "digest": notebook_digest(first),
            }
        ]
        # autosaves of new outputs, by anyone: what runs did not change
        gate.check_model(
            model(one_cell_notebook("x = 1", output="1\n")), "a.ipynb", "bob", saving=True
        )
        gate.check_model(model(first), "a.ipynb", "alice", saving=True)
        assert len(saves(ledger)) == 1
        # a checkpoint is not an edit
        gate.check_model(model(one_cell_notebook("x = 2")), "a.ipynb", "carol")
        assert len(saves(ledger)) == 1
        # bob changes the code
        second = one_cell_notebook("x = 2")
        gate.check_model(model(second), "a.ipynb", "bob", saving=True)
        assert [(s["user"], s["digest"]) for s in saves(ledger)] == [
            ("alice", notebook_digest(first)),
            ("bob", notebook_digest(second)),
        ]


def test_after_a_restart_resaving_unchanged_code_does_not_take_over(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    nb = one_cell_notebook("y = 3")
    with open_ledger(tmp_path) as ledger:
        make_gate(tmp_path, ledger, root).check_model(model(nb), "b.ipynb", "alice", saving=True)
        (root / "b.ipynb").write_text(json.dumps(nb), encoding="utf-8")  # what was saved
        restarted = make_gate(tmp_path, ledger, root)
        restarted.check_model(
            model(one_cell_notebook("y = 3", "3\n")), "b.ipynb", "bob", saving=True
        )
        assert [s["user"] for s in saves(ledger)] == ["alice"]


def test_a_refused_save_records_no_editor_and_bytes_are_recorded(tmp_path: Path) -> None:
    key = "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))
    with open_ledger(tmp_path) as ledger:
        gate = make_gate(tmp_path, ledger)
        outcome = gate.check_model(
            model(one_cell_notebook(f"k = '{key}'")), "c.ipynb", "mallory", saving=True
        )
        assert outcome.action == "block" and saves(ledger) == []
        raw = json.dumps(one_cell_notebook("z = 9")).encode()
        assert gate.check_bytes(raw, "c.ipynb", "dave", saving=True).action == "allow"
        assert [(s["user"], s["file"]) for s in saves(ledger)] == [("dave", None)]
        assert key not in json.dumps([e.body for e in ledger.entries()])


def test_a_notebook_without_kernelspec_is_recorded_without_digest(tmp_path: Path) -> None:
    nb = one_cell_notebook()
    del nb["metadata"]["kernelspec"]
    with open_ledger(tmp_path) as ledger:
        make_gate(tmp_path, ledger).check_model(model(nb), "d.ipynb", "erin", saving=True)
        assert [(s["user"], s["digest"]) for s in saves(ledger)] == [("erin", None)]
