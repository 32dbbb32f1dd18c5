"""Helpers shared by the review and promotion tests (``from promote_helpers import Team``).

People with their own data dirs (their own reviewer keys) sharing one ledger, who run
the CLI's ``main`` in process. The ``team`` fixture that builds one lives in
``conftest.py``: pytest loads every ``conftest.py`` as a module named ``conftest``, so
plain helpers cannot be imported from there reliably (as ``tests/server/server_helpers.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nbformat.v4 import new_code_cell

from jupyter_qsecure.cli.main import main
from jupyter_qsecure.gate import SaveGate
from jupyter_qsecure.gate.recovery import LocalKeyWrapper, RecoveryStore
from jupyter_qsecure.ledger import EntryFilter, Ledger
from jupyter_qsecure.promote.digest import load_notebook
from jupyter_qsecure.scan import Scanner


def edit(path: Path, change: Any) -> None:
    """Apply ``change`` to the notebook's JSON in place, as an editor outside Jupyter."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    change(nb)
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")


@dataclass
class Person:
    name: str
    data: Path


class Team:
    """People with their own data dirs (own reviewer keys), sharing one ledger."""

    def __init__(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        self.ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
        monkeypatch.setenv("QSECURE_LEDGER", self.ledger_url)
        monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "config"))
        monkeypatch.delenv("JPY_PARENT_PID", raising=False)

    def person(self, name: str) -> Person:
        return Person(name, self.tmp_path / f"data-{name}")

    def run(self, who: Person, *args: str) -> tuple[int, str, str]:
        self.monkeypatch.setenv("QSECURE_DATA_DIR", str(who.data))
        self.monkeypatch.setenv("JUPYTERHUB_USER", who.name)
        code = main(list(args))
        out, err = self.capsys.readouterr()
        return code, out, err

    def keys_of(self, who: Person) -> str:
        target = self.tmp_path / f"{who.name}-keys.json"
        code, _, err = self.run(who, "audit", "keys", "-o", str(target))
        assert code == 0, err
        return str(target)

    def save_through_gate(self, notebook: Path, user: str) -> None:
        """What the server's save gate records when ``user`` saves the notebook."""
        store = RecoveryStore(self.tmp_path / "rec", LocalKeyWrapper(self.tmp_path / "rec.key"))
        with Ledger.open(self.ledger_url, signers=[]) as ledger:
            gate = SaveGate(
                scanner=Scanner(), recovery=store, ledger=ledger, root_dir=notebook.parent
            )
            model = {"type": "notebook", "content": load_notebook(notebook)}
            edit(notebook, lambda nb: nb["cells"].append(new_code_cell("pass")))  # the old one
            assert gate.check_model(model, notebook.name, user, saving=True).action == "allow"
            notebook.write_text(json.dumps(model["content"]), encoding="utf-8")

    def ledger_entries(self, kind: str) -> list[dict[str, Any]]:
        with Ledger.open(self.ledger_url, signers=[]) as ledger:
            return [e.body for e in ledger.entries(EntryFilter(kinds=[kind]))]
