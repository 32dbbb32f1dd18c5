"""The canonical notebook digest: what changes it, what does not, and what it refuses."""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
import rfc8785
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from jupyter_qsecure.errors import QSecureError
from jupyter_qsecure.promote.digest import (
    DIGEST_FORMAT,
    SKIP_PROMOTE_TAG,
    CellChange,
    canonical_document,
    cell_changes,
    changed_cells,
    load_notebook,
    notebook_digest,
)
from jupyter_qsecure.promote.errors import InvalidNotebookFormat, MissingKernelspec

KERNELSPEC = {"name": "qsecure", "display_name": "Python 3 (qsecure)", "language": "python"}


def make_notebook() -> dict[str, Any]:
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Bell state"),
            new_code_cell("from qiskit import QuantumCircuit\nqc = QuantumCircuit(2)"),
            new_code_cell("qc.h(0)\nqc.cx(0, 1)", metadata={"tags": ["parameters"]}),
            new_raw_cell("raw text"),
        ],
        metadata={"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}},
    )
    return json.loads(nbformat.writes(nb))  # as read from a .ipynb file: plain JSON


def test_document_and_digest_are_sha256_over_rfc8785() -> None:
    nb = make_notebook()
    doc = canonical_document(nb)
    assert doc == {
        "format": DIGEST_FORMAT,
        "kernelspec": {"name": "qsecure", "language": "python"},
        "cells": [
            {"cell_type": "markdown", "source": "# Bell state", "tags": []},
            {
                "cell_type": "code",
                "source": "from qiskit import QuantumCircuit\nqc = QuantumCircuit(2)",
                "tags": [],
            },
            {"cell_type": "code", "source": "qc.h(0)\nqc.cx(0, 1)", "tags": ["parameters"]},
            {"cell_type": "raw", "source": "raw text", "tags": []},
        ],
    }
    # independently: the rfc8785 library's bytes, hashed
    assert notebook_digest(nb) == hashlib.sha256(rfc8785.dumps(doc)).hexdigest()
    # a NotebookNode and its JSON agree; list-of-lines sources are joined
    assert notebook_digest(nbformat.from_dict(nb)) == notebook_digest(nb)
    split = copy.deepcopy(nb)
    split["cells"][1]["source"] = ["from qiskit import QuantumCircuit\n", "qc = QuantumCircuit(2)"]
    assert notebook_digest(split) == notebook_digest(nb)


def _outputs(nb: dict[str, Any]) -> None:
    cell = nb["cells"][1]
    cell["outputs"] = [new_output("stream", name="stdout", text="hello\n")]
    cell["execution_count"] = 7
    nb["cells"][2]["outputs"] = [
        new_output("execute_result", data={"text/plain": "42"}, execution_count=8)
    ]
    nb["cells"][2]["execution_count"] = 8


def _volatile_metadata(nb: dict[str, Any]) -> None:
    nb["cells"][1]["metadata"].update(
        {"collapsed": True, "scrolled": True, "execution": {"iopub.status.busy": "2024-01-01"}}
    )
    nb["metadata"]["language_info"] = {"name": "python", "version": "3.12.1"}
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb["metadata"]["kernelspec"]["display_name"] = "Another display name"


def _cell_ids(nb: dict[str, Any]) -> None:
    for cell in nb["cells"]:
        cell["id"] = secrets.token_hex(4)


@pytest.mark.parametrize(
    "mutate", [_outputs, _volatile_metadata, _cell_ids], ids=["outputs", "metadata", "ids"]
)
def test_what_does_not_run_does_not_change_the_digest(
    mutate: Callable[[dict[str, Any]], None],
) -> None:
    nb = make_notebook()
    before = notebook_digest(nb)
    mutate(nb)
    nbformat.validate(nb)  # still a valid notebook
    assert notebook_digest(nb) == before


def test_tag_order_does_not_count() -> None:
    nb = make_notebook()
    nb["cells"][2]["metadata"]["tags"] = ["a", "b"]
    reference = notebook_digest(nb)
    nb["cells"][2]["metadata"]["tags"] = ["b", "a"]
    assert notebook_digest(nb) == reference


def _one_character(nb: dict[str, Any]) -> None:
    nb["cells"][2]["source"] = "qc.h(1)\nqc.cx(0, 1)"


def _skip_tag(nb: dict[str, Any]) -> None:
    nb["cells"][1]["metadata"]["tags"] = [SKIP_PROMOTE_TAG]


def _remove_tag(nb: dict[str, Any]) -> None:
    nb["cells"][2]["metadata"]["tags"] = []


def _cell_type(nb: dict[str, Any]) -> None:
    cell = nb["cells"][3]
    nb["cells"][3] = new_markdown_cell(cell["source"], id=cell["id"])


def _order(nb: dict[str, Any]) -> None:
    nb["cells"][1], nb["cells"][2] = nb["cells"][2], nb["cells"][1]


def _kernel(nb: dict[str, Any]) -> None:
    nb["metadata"]["kernelspec"]["name"] = "python3"


def _language(nb: dict[str, Any]) -> None:
    nb["metadata"]["kernelspec"]["language"] = "R"


def _line_ending(nb: dict[str, Any]) -> None:
    nb["cells"][2]["source"] = "qc.h(0)\r\nqc.cx(0, 1)"


@pytest.mark.parametrize(
    "mutate",
    [_one_character, _skip_tag, _remove_tag, _cell_type, _order, _kernel, _language, _line_ending],
    ids=["source", "skip-tag", "untag", "cell-type", "order", "kernel", "language", "crlf"],
)
def test_what_runs_changes_the_digest(mutate: Callable[[dict[str, Any]], None]) -> None:
    nb = make_notebook()
    before = notebook_digest(nb)
    mutate(nb)
    assert notebook_digest(nb) != before


def test_skip_promote_cells_are_in_the_document_as_tagged_cells() -> None:
    nb = make_notebook()
    _skip_tag(nb)
    assert canonical_document(nb)["cells"][1]["tags"] == [SKIP_PROMOTE_TAG]


def test_language_falls_back_to_language_info() -> None:
    nb = make_notebook()
    with_language = notebook_digest(nb)
    del nb["metadata"]["kernelspec"]["language"]
    assert notebook_digest(nb) == with_language  # language_info.name is "python" too


def test_changed_cells_align_by_content() -> None:
    old = canonical_document(make_notebook())
    nb = make_notebook()
    _one_character(nb)
    assert changed_cells(old, canonical_document(nb)) == [2]
    nb["cells"].insert(0, new_code_cell("import os"))
    new = canonical_document(nb)
    assert changed_cells(old, new) == [0, 3]
    assert cell_changes(old, new) == [CellChange("added", None, 0), CellChange("changed", 2, 3)]
    del nb["cells"][4]
    assert cell_changes(old, canonical_document(nb))[-1] == CellChange("removed", 3, None)
    assert changed_cells(old, old) == []


def _no_kernelspec(nb: dict[str, Any]) -> None:
    del nb["metadata"]["kernelspec"]


def _no_language(nb: dict[str, Any]) -> None:
    del nb["metadata"]["kernelspec"]["language"]
    del nb["metadata"]["language_info"]


@pytest.mark.parametrize("mutate", [_no_kernelspec, _no_language], ids=["kernelspec", "language"])
def test_a_notebook_without_kernelspec_is_refused(mutate: Callable[[dict[str, Any]], None]) -> None:
    nb = make_notebook()
    mutate(nb)
    with pytest.raises(MissingKernelspec) as info:
        notebook_digest(nb, path="analysis.ipynb")
    assert isinstance(info.value, QSecureError) and info.value.exit_code == 2
    assert "analysis.ipynb" in str(info.value) and "kernelspec" in str(info.value)
    assert info.value.hint and "select the kernel" in info.value.hint


def _secret_cell(nb: dict[str, Any], value: str) -> None:
    nb["cells"][1]["bogus"] = value


def _bad_output(nb: dict[str, Any], value: str) -> None:
    nb["cells"][1]["outputs"] = [{"output_type": "nonsense", "text": value}]


def _bad_type(nb: dict[str, Any], value: str) -> None:
    nb["cells"][1]["cell_type"] = value


def _bad_source(nb: dict[str, Any], value: str) -> None:
    nb["cells"][1]["source"] = {"text": value}


def _old_format(nb: dict[str, Any], value: str) -> None:
    nb["nbformat"] = 3


def _no_cells(nb: dict[str, Any], value: str) -> None:
    del nb["cells"]


def _missing_id(nb: dict[str, Any], value: str) -> None:
    del nb["cells"][1]["id"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_secret_cell, "cell 2 has properties nbformat 4 does not allow"),
        (_bad_output, "cell 2 (outputs[0])"),
        (_bad_type, "cell 2 has an unknown cell_type"),
        (_bad_source, "cell 2 has no source text"),
        (_old_format, "nbformat 3"),
        (_no_cells, "no 'cells' list"),
        (_missing_id, "cell 2: 'id' is a required property"),
    ],
    ids=["extra-key", "bad-output", "cell-type", "source", "nbformat-3", "no-cells", "no-id"],
)
def test_invalid_nbformat_is_refused_without_echoing_content(
    mutate: Callable[[dict[str, Any], str], None], expected: str
) -> None:
    value = "sk_" + secrets.token_urlsafe(24)
    nb = make_notebook()
    mutate(nb, value)
    pristine = copy.deepcopy(nb)
    with pytest.raises(InvalidNotebookFormat) as info:
        notebook_digest(nb, path="analysis.ipynb")
    message = str(info.value)
    assert expected in message and "analysis.ipynb" in message
    assert value not in message and value[3:20] not in message
    assert nb == pristine  # nothing repaired in place


def test_load_notebook_refuses_files_that_are_not_notebooks(tmp_path: Path) -> None:
    value = secrets.token_urlsafe(24)
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [' + json.dumps(value), encoding="utf-8")
    with pytest.raises(InvalidNotebookFormat, match="not valid UTF-8 JSON") as info:
        load_notebook(broken)
    assert value not in str(info.value)
    listing = tmp_path / "list.ipynb"
    listing.write_text("[]", encoding="utf-8")
    with pytest.raises(InvalidNotebookFormat, match="not a JSON object"):
        load_notebook(listing)
    with pytest.raises(QSecureError, match="no such notebook"):
        load_notebook(tmp_path / "missing.ipynb")
    good = tmp_path / "good.ipynb"
    good.write_text(json.dumps(make_notebook()), encoding="utf-8")
    assert notebook_digest(load_notebook(good)) == notebook_digest(make_notebook())
