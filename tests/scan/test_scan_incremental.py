"""Re-scanning a notebook at the same path: only the cells that changed are extracted and
matched again; what was remembered is never served for other content or another context."""

from __future__ import annotations

import json
from typing import Any

import pytest
import scan_fakes as fk

from jupyter_qsecure.scan import Scanner, engine, extract
from jupyter_qsecure.scan import fingerprints as fps
from jupyter_qsecure.scan.extract import notebook_units
from jupyter_qsecure.scan.fingerprints import Fingerprinter


def _notebook(cells: int = 30) -> dict[str, Any]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"widgets": {"state": {f"w{i}": {"value": f"v{i}"} for i in range(50)}}},
        "cells": [
            {
                "cell_type": "code",
                "id": f"c{i}",
                "metadata": {"tags": [f"t{i}"]},
                "source": f"x{i} = compute({i})",
                "execution_count": i,
                "outputs": [
                    {"output_type": "stream", "name": "stdout", "text": f"result {i}\n"},
                    {
                        "output_type": "execute_result",
                        "execution_count": i,
                        "metadata": {},
                        "data": {"text/plain": f"{i}", "text/html": f"<b>{i}</b>"},
                    },
                ],
            }
            for i in range(cells)
        ],
    }


class Node(dict[str, Any]):
    """A dict subclass, as nbformat's NotebookNode (marshal refuses it)."""


def _parsed(nb: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(json.dumps(nb))
    return parsed


def test_a_one_cell_edit_extracts_and_matches_that_cell_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extracted: list[int] = []

    def counting(ci: int, cell: Any, memo: Any = None) -> Any:
        extracted.append(ci)
        return extract.cell_units(ci, cell, memo)

    monkeypatch.setattr(engine, "cell_units", counting)
    scanner = Scanner()
    nb = _notebook()
    values = [fk.aws_key()]
    scanner.scan_notebook(_parsed(nb), path="a.ipynb", exact_values=values)
    assert extracted == list(range(30))
    extracted.clear()
    matched: list[int] = []
    unit_matches = scanner._unit_matches

    def counting_matches(units: Any, *args: Any) -> Any:
        matched.extend(u.cell for u in units)
        return unit_matches(units, *args)

    monkeypatch.setattr(scanner, "_unit_matches", counting_matches)
    nb["cells"][17]["source"] += "\n# edited"
    scanned = scanner.stats.units_scanned
    result = scanner.scan_notebook(_parsed(nb), path="a.ipynb", exact_values=values)
    assert extracted == [17]
    assert set(matched) == {17}
    assert scanner.stats.units_scanned == scanned + 1  # the source; its outputs are cached
    assert result.findings == []
    assert len(result.units) == len(notebook_units(nb))  # every unit is in the result


def test_cells_are_the_same_only_when_their_serialisation_is() -> None:
    blob = engine._blob
    cell = json.loads('{"a": "x", "b": [1, "y"], "c": {"d": true}}')
    # equal content parsed again: the same (as two save requests of one notebook)
    assert blob(cell) == blob(json.loads(json.dumps(cell)))
    assert blob(cell) != blob({"b": [1, "y"], "a": "x", "c": {"d": True}})  # key order
    assert blob(cell) != blob({"a": "x", "b": [1, "y"], "c": {"d": 1}})  # True == 1
    assert blob(cell) != blob({"a": "x", "b": [1.0, "y"], "c": {"d": True}})  # 1 == 1.0
    assert blob(cell) != blob({"a": "x", "b": (1, "y"), "c": {"d": True}})
    assert blob(["\ud800"]) != blob(["\udc00"])  # lone surrogates survive

    node = blob(Node(cell))
    assert node is not None and node != blob(cell) and node == blob(Node(cell))
    assert blob({"f": lambda: 0}) is None  # not JSON data: never remembered


def test_a_new_fingerprint_key_reports_unchanged_cells_under_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = fk.aws_key()
    first, second = Fingerprinter.ephemeral(), Fingerprinter.ephemeral()
    monkeypatch.setattr(fps, "_default", first)
    scanner = Scanner()
    nb = _notebook(3)
    nb["cells"][1]["source"] = f"k = '{key}'"
    found = scanner.scan_notebook(_parsed(nb), path="a.ipynb").findings
    assert [f.fingerprint for f in found] == [first(key)]
    fps.set_process_fingerprinter(second)
    found = scanner.scan_notebook(_parsed(nb), path="a.ipynb").findings
    assert [f.fingerprint for f in found] == [second(key)]


def test_clear_cache_forgets_the_notebooks() -> None:
    scanner = Scanner()
    nb = _notebook(3)
    scanner.scan_notebook(_parsed(nb), path="a.ipynb")
    scanner.clear_cache()
    scanned = scanner.stats.units_scanned
    scanner.scan_notebook(_parsed(nb), path="a.ipynb")
    assert scanner.stats.units_scanned == scanned + len(notebook_units(nb))


def test_a_cell_that_cannot_be_serialised_is_extracted_at_every_scan() -> None:
    # no exact serialisation (a non-JSON object in its metadata): never taken as unchanged
    key = fk.aws_key()
    scanner = Scanner()
    nb = _notebook(2)
    nb["cells"][1]["metadata"]["widget"] = lambda: None
    assert scanner.scan_notebook(nb, path="a.ipynb").findings == []
    nb["cells"][1]["source"] = f"k = '{key}'"
    found = scanner.scan_notebook(nb, path="a.ipynb").findings
    assert [(f.type, f.cell) for f in found] == [("AWS Access Key", 1)]


def test_an_unchanged_notebook_counts_every_unit_as_cached() -> None:
    scanner = Scanner()
    nb = _notebook(3)
    units = len(notebook_units(nb))
    for _ in range(2):  # the second time, every part is remembered
        scanner.scan_notebook(_parsed(nb), path="a.ipynb")
    scanned, cached = scanner.stats.units_scanned, scanner.stats.units_cached
    assert cached > 0
    scanner.scan_notebook(_parsed(nb), path="a.ipynb")
    assert (scanner.stats.units_scanned, scanner.stats.units_cached) == (scanned, cached + units)
    nb["cells"][1]["source"] += "\n# edited"  # one unit to scan, its cell's others cached
    scanner.scan_notebook(_parsed(nb), path="a.ipynb")
    assert (scanner.stats.units_scanned, scanner.stats.units_cached) == (
        scanned + 1,
        cached + 2 * units - 1,
    )


def test_the_scanners_own_values_do_not_make_unchanged_cells_matched_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = fk.aws_key()
    scanner = Scanner(exact_values=[key])
    nb = _notebook(3)
    nb["cells"][1]["source"] = f"k = '{key}'"
    found = scanner.scan_notebook(_parsed(nb), path="a.ipynb").findings
    assert [(f.type, f.cell) for f in found] == [("Injected Secret", 1)]
    matched: list[int | None] = []
    unit_matches = scanner._unit_matches

    def counting_matches(units: Any, *args: Any) -> Any:
        matched.extend(u.cell for u in units)
        return unit_matches(units, *args)

    monkeypatch.setattr(scanner, "_unit_matches", counting_matches)
    again = scanner.scan_notebook(_parsed(nb), path="a.ipynb").findings
    assert again == found and matched == []


def test_a_new_cell_equal_to_the_old_metadata_is_scanned_as_a_cell() -> None:
    # the metadata part is matched with the last part only, never with a cell at its position
    key = fk.aws_key()
    scanner = Scanner()
    nb = _notebook(1)
    cell: dict[str, Any] = {"cell_type": "code", "id": "n", "metadata": {}}
    cell.update(source=f"k = '{key}'", outputs=[], execution_count=None)
    nb["metadata"] = dict(cell)
    first = scanner.scan_notebook(_parsed(nb), path="a.ipynb").findings
    assert [(f.cell, f.where) for f in first] == [(None, "metadata")]
    nb["cells"].append(dict(cell))
    found = scanner.scan_notebook(_parsed(nb), path="a.ipynb").findings
    assert [(f.cell, f.where) for f in found] == [(1, "source"), (None, "metadata")]
