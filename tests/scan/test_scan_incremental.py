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
