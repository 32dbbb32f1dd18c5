"""The scanner remembers each path's cells between saves: a stale memory must never let a
secret through (any change to a cell, or to what is searched for, is scanned again)."""

from __future__ import annotations

import base64
import copy
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_gate_core import make_gate, notebook

from jupyter_qsecure.gate import SaveGate
from jupyter_qsecure.scan.fingerprints import Fingerprinter, FingerprintIndex


def fresh(model: dict[str, Any]) -> dict[str, Any]:
    """The model as the next save request brings it: parsed anew, nothing shared."""
    parsed: dict[str, Any] = json.loads(json.dumps(model))
    return parsed


def rich_notebook() -> dict[str, Any]:
    """Code cells with outputs and metadata, a markdown cell with an attachment."""
    model = notebook("x = 1", "print(x)", "y = 2")
    cells = model["content"]["cells"]
    cells[1]["outputs"] = [
        {"output_type": "stream", "name": "stdout", "text": "1\n"},
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"text/plain": "done", "text/html": "<b>done</b>"},
        },
    ]
    cells.append(
        {
            "cell_type": "markdown",
            "id": "m0",
            "metadata": {},
            "source": "![note](attachment:note.txt)",
            "attachments": {"note.txt": {"text/plain": base64.b64encode(b"a note").decode()}},
        }
    )
    model["content"]["metadata"] = {"widgets": {"state": {"w0": {"value": "plain"}}}}
    return model


def _put_value(where: str, value: str) -> Callable[[dict[str, Any]], None]:
    def edit(content: dict[str, Any]) -> None:
        cells = content["cells"]
        if where == "source":
            cells[2]["source"] += f"\ntoken = '{value}'"
        elif where == "stream":
            cells[1]["outputs"][0]["text"] += f"{value}\n"
        elif where == "html":
            cells[1]["outputs"][1]["data"]["text/html"] = f"<b>{value[:9]}</b>{value[9:]}"
        elif where == "output-metadata":
            cells[1]["outputs"][1]["metadata"]["note"] = value
        elif where == "cell-metadata":
            cells[0]["metadata"]["tags"] = [value]
        elif where == "attachment":
            note = base64.b64encode(f"see {value}".encode()).decode()
            cells[3]["attachments"]["note.txt"]["text/plain"] = note
        elif where == "notebook-metadata":
            content["metadata"]["widgets"]["state"]["w0"]["value"] = value
        else:  # pragma: no cover
            raise AssertionError(where)

    return edit


PLACES = (
    "source",
    "stream",
    "html",
    "output-metadata",
    "cell-metadata",
    "attachment",
    "notebook-metadata",
)


@pytest.mark.parametrize("where", PLACES)
def test_a_value_put_into_a_cleanly_saved_notebook_is_refused(tmp_path: Path, where: str) -> None:
    value = secrets.token_urlsafe(30)
    gate = make_gate(tmp_path, values=(value,))
    model = rich_notebook()
    assert gate.check_model(fresh(model), "a.ipynb", "u").action == "allow"
    changed = fresh(model)
    _put_value(where, value)(changed["content"])
    outcome = gate.check_model(changed, "a.ipynb", "u")
    assert outcome.action == "block", where
    assert {f.type.split(" (")[0] for f in outcome.findings} == {"Injected Secret"}
    leaked = value in outcome.message
    assert not leaked
    # and back to clean: allowed again (the memory follows the content both ways)
    assert gate.check_model(fresh(model), "a.ipynb", "u").action == "allow"


def test_a_notebook_changed_in_place_between_saves_is_scanned_again(tmp_path: Path) -> None:
    value = secrets.token_urlsafe(30)
    gate = make_gate(tmp_path, values=(value,))
    model = rich_notebook()
    assert gate.check_model(model, "a.ipynb", "u").action == "allow"
    model["content"]["cells"][0]["source"] = f"token = '{value}'"  # the same dict, edited
    outcome = gate.check_model(model, "a.ipynb", "u")
    assert outcome.action == "block" and outcome.findings[0].cell == 0


def test_a_value_registered_after_a_clean_save_is_found_in_unchanged_cells(
    tmp_path: Path,
) -> None:
    value = secrets.token_urlsafe(30)
    values: list[str] = [secrets.token_urlsafe(30)]
    gate = make_gate(tmp_path)
    gate._exact_values = lambda: values  # the server's live list of injected values
    model = notebook("x = 1", f"note = '{value}'")
    assert gate.check_model(fresh(model), "a.ipynb", "u").action == "allow"
    values.append(value)  # a kernel is given this value now
    outcome = gate.check_model(fresh(model), "a.ipynb", "u")
    assert outcome.action == "block"
    assert [(f.type, f.cell) for f in outcome.findings] == [("Injected Secret", 1)]
    values.remove(value)  # no longer held: the same cells are clean again
    assert gate.check_model(fresh(model), "a.ipynb", "u").action == "allow"


def test_a_reloaded_fingerprint_registry_is_searched_in_unchanged_cells(tmp_path: Path) -> None:
    value = secrets.token_urlsafe(30)
    key = Fingerprinter.ephemeral()
    holder: dict[str, FingerprintIndex | None] = {"index": None}
    gate = make_gate(tmp_path, injected=lambda: holder["index"])
    model = notebook("x = 1", f"note = '{value}'")
    holder["index"] = FingerprintIndex.of_values(key, {"other": secrets.token_urlsafe(30)})
    assert gate.check_model(fresh(model), "a.ipynb", "u").action == "allow"
    # the registry file changed: a new index, now with the value in cell 1
    holder["index"] = FingerprintIndex.of_values(key, {"ibm": value}, on="2026-01-02")
    outcome = gate.check_model(fresh(model), "a.ipynb", "u")
    assert outcome.action == "block"
    assert [(f.type, f.cell, f.secret_name) for f in outcome.findings] == [
        ("Injected Secret (registry)", 1, "ibm")
    ]


def test_cells_moved_by_an_insertion_are_reported_where_they_are_now(tmp_path: Path) -> None:
    value = secrets.token_urlsafe(30)
    gate = make_gate(tmp_path, values=(value,))
    model = notebook("x = 1", f"token = '{value}'", "y = 2")
    assert gate.check_model(fresh(model), "a.ipynb", "u").findings[0].cell == 1
    moved = fresh(model)
    moved["content"]["cells"].insert(0, copy.deepcopy(moved["content"]["cells"][0]))
    moved["content"]["cells"][0]["id"] = "new"
    outcome = gate.check_model(moved, "a.ipynb", "u")
    assert [(f.cell, f.cell_id) for f in outcome.findings] == [(2, "c1")]
    del moved["content"]["cells"][:2]
    outcome = gate.check_model(fresh(moved), "a.ipynb", "u")
    assert [(f.cell, f.cell_id) for f in outcome.findings] == [(0, "c1")]


def test_the_same_notebook_at_another_path_is_reported_at_that_path(tmp_path: Path) -> None:
    value = secrets.token_urlsafe(30)
    gate = make_gate(tmp_path, values=(value,))
    model = notebook(f"token = '{value}'")
    assert gate.check_model(fresh(model), "a.ipynb", "u").findings[0].path == "a.ipynb"
    assert gate.check_model(fresh(model), "b.ipynb", "u").findings[0].path == "b.ipynb"
    assert gate.check_model(fresh(model), "a.ipynb", "u").findings[0].path == "a.ipynb"


def test_redaction_after_remembered_scans_replaces_the_value(tmp_path: Path) -> None:
    value = secrets.token_urlsafe(30)
    values: list[str] = []
    gate: SaveGate = make_gate(tmp_path, mode="redact")
    gate._exact_values = lambda: values
    model = rich_notebook()
    _put_value("stream", value)(model["content"])
    assert gate.check_model(fresh(model), "a.ipynb", "u").action == "allow"
    values.append(value)
    outcome = gate.check_model(fresh(model), "a.ipynb", "u")
    assert outcome.action == "redact" and outcome.model is not None
    saved = json.dumps(outcome.model, ensure_ascii=False)
    leaked = value in saved
    assert not leaked and "«secret:Injected Secret»" in saved
