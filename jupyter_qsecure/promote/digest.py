"""The canonical digest of what a notebook will run.

An approval binds a reviewer to :func:`notebook_digest`, the SHA-256 (hex) of the
RFC 8785 canonical JSON (:func:`jupyter_qsecure.signing.canonical.canonical_json`) of
:func:`canonical_document`::

    {"format": DIGEST_FORMAT,
     "kernelspec": {"name": "python3", "language": "python"},
     "cells": [{"cell_type": "code", "source": "...", "tags": ["skip-promote"]}, ...]}

In the digest: the kernelspec's name and language (the language from
``metadata.kernelspec.language``, else ``metadata.language_info.name``), and for every
cell, in order, its type (``code``, ``markdown``, ``raw``), its source (one string, as
written: line endings are not normalised) and its tags (sorted: tag order means nothing).
Cells tagged :data:`SKIP_PROMOTE_TAG` are in it as tagged cells: leaving them out of
the promoted script is part of what was approved.

Deliberately not in it: outputs, execution counts, cell ids, attachments, and all
metadata but tags and the kernelspec (collapsed/scrolled state, execution timings,
widget state, ``language_info`` versions ...). None of it changes what runs, and all
of it changes whenever the notebook is run or opened.

Only nbformat 4 is accepted (older notebooks have no kernelspec to bind to): open and
save an older notebook in JupyterLab to upgrade it. Invalid notebooks are refused with
:class:`~jupyter_qsecure.promote.errors.InvalidNotebookFormat`, naming where the problem
is but never echoing the notebook's content (it may hold a secret).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..signing.canonical import canonical_json
from .errors import InvalidNotebookFormat, MissingKernelspec, NotebookRefused

__all__ = [
    "CELL_TYPES",
    "DIGEST_FORMAT",
    "SKIP_PROMOTE_TAG",
    "CellChange",
    "canonical_document",
    "cell_changes",
    "changed_cells",
    "document_digest",
    "load_notebook",
    "notebook_digest",
]

#: Identifies the layout of :func:`canonical_document` (an identifier, not a link).
DIGEST_FORMAT = "https://jupyter-qsecure.dev/notebook-digest/v1"
#: Cells with this tag are left out of the promoted script (and are in the digest).
SKIP_PROMOTE_TAG = "skip-promote"
CELL_TYPES = ("code", "markdown", "raw")

_FIX_HINT = "open the notebook in JupyterLab and save it again, or restore it from version control"


def load_notebook(path: str | Path) -> dict[str, Any]:
    """The notebook at ``path`` as parsed JSON (not yet validated: see :func:`canonical_document`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotebookRefused(
            f"{path}: no such notebook", hint="check the path (a .ipynb file)"
        ) from None
    except OSError as exc:
        raise NotebookRefused(
            f"{path}: cannot be read ({exc.strerror or type(exc).__name__})",
            hint="check the path and its permissions",
        ) from None
    try:
        nb = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise InvalidNotebookFormat(
            f"{path} is not a notebook: not valid UTF-8 JSON{where}", hint=_FIX_HINT
        ) from None
    if not isinstance(nb, dict):
        raise InvalidNotebookFormat(f"{path} is not a notebook: not a JSON object", hint=_FIX_HINT)
    return nb


def canonical_document(
    nb: Mapping[str, Any], *, path: str | Path = "", schema: bool = True
) -> dict[str, Any]:
    """The JSON the digest is over (see the module docstring); refuses invalid notebooks.

    ``nb`` is an ``nbformat.NotebookNode`` or the parsed JSON of a ``.ipynb`` file;
    ``path`` only names the notebook in error messages. ``schema=False`` skips the full
    nbformat schema check (the save gate's hot path: what the digest reads is still
    checked); review and promotion keep it.
    """
    where = str(path) if str(path) else "the notebook"
    _check_format(nb, where)
    cells: list[dict[str, Any]] = []
    for index, cell in enumerate(nb["cells"]):
        cells.append(_canonical_cell(cell, index, where))
    document = {
        "format": DIGEST_FORMAT,
        "kernelspec": _kernelspec(nb, where),
        "cells": cells,
    }
    if schema:
        _validate_schema(nb, where)
    return document


def document_digest(document: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a :func:`canonical_document`."""
    return hashlib.sha256(canonical_json(dict(document))).hexdigest()


def notebook_digest(nb: Mapping[str, Any], *, path: str | Path = "", schema: bool = True) -> str:
    """SHA-256 (hex) of what ``nb`` will run: :func:`document_digest` of its canonical document."""
    return document_digest(canonical_document(nb, path=path, schema=schema))


# ---- cell changes ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CellChange:
    """One difference between two canonical documents, cell by cell.

    ``kind``: ``changed`` (a cell's type, source or tags differ), ``added`` or ``removed``.
    ``old``/``new``: 0-based cell indices in the old and the new document (None where the
    cell does not exist). People see cells numbered from 1, as JupyterLab shows them.
    """

    kind: Literal["changed", "added", "removed"]
    old: int | None
    new: int | None


def cell_changes(old_doc: Mapping[str, Any], new_doc: Mapping[str, Any]) -> list[CellChange]:
    """The cells that differ between two canonical documents, in notebook order.

    Cells are aligned by content (difflib's longest matching blocks), so inserting or
    deleting a cell does not make every later cell count as changed. Within a replaced
    block, cells pair up in order as ``changed``; the surplus is ``added`` or ``removed``.
    """
    old_keys = [_cell_key(c) for c in _cells(old_doc)]
    new_keys = [_cell_key(c) for c in _cells(new_doc)]
    matcher = difflib.SequenceMatcher(a=old_keys, b=new_keys, autojunk=False)
    changes: list[CellChange] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        paired = min(i2 - i1, j2 - j1)
        for k in range(paired):
            changes.append(CellChange("changed", i1 + k, j1 + k))
        for k in range(j1 + paired, j2):
            changes.append(CellChange("added", None, k))
        for k in range(i1 + paired, i2):
            changes.append(CellChange("removed", k, None))
    return changes


def changed_cells(old_doc: Mapping[str, Any], new_doc: Mapping[str, Any]) -> list[int]:
    """0-based indices, in ``new_doc``, of the cells changed or added since ``old_doc``.

    Removed cells have no index in ``new_doc``; :func:`cell_changes` lists them too.
    """
    return sorted({c.new for c in cell_changes(old_doc, new_doc) if c.new is not None})


def _cells(document: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    cells = document.get("cells")
    if not isinstance(cells, list):
        raise InvalidNotebookFormat(
            "not a canonical notebook document (no 'cells' list)",
            hint="pass the result of canonical_document()",
        )
    return cells


def _cell_key(cell: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(canonical_json(dict(cell))).digest()


# ---- validation and extraction ---------------------------------------------------------------
def _check_format(nb: Any, where: str) -> None:
    if not isinstance(nb, Mapping):
        raise InvalidNotebookFormat(f"{where} is not a notebook (not a JSON object)")
    major = nb.get("nbformat")
    if type(major) is not int:
        raise InvalidNotebookFormat(
            f"{where} is not a notebook: no integer 'nbformat' version", hint=_FIX_HINT
        )
    if major != 4:
        raise InvalidNotebookFormat(
            f"{where} is nbformat {major}; only nbformat 4 notebooks can be reviewed",
            hint="open it in JupyterLab and save it: that upgrades it to nbformat 4",
        )
    if not isinstance(nb.get("cells"), list):
        raise InvalidNotebookFormat(f"{where} is not a notebook: no 'cells' list", hint=_FIX_HINT)
    if not isinstance(nb.get("metadata"), Mapping):
        raise InvalidNotebookFormat(
            f"{where} is not a notebook: no 'metadata' object", hint=_FIX_HINT
        )


def _canonical_cell(cell: Any, index: int, where: str) -> dict[str, Any]:
    label = f"{where}, cell {index + 1}"
    if not isinstance(cell, Mapping):
        raise InvalidNotebookFormat(f"{label} is not a JSON object", hint=_FIX_HINT)
    cell_type = cell.get("cell_type")
    if cell_type not in CELL_TYPES:
        raise InvalidNotebookFormat(  # the value is not shown: it could be anything
            f"{label} has an unknown cell_type; nbformat 4 allows {', '.join(CELL_TYPES)}",
            hint=_FIX_HINT,
        )
    source = cell.get("source")
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        source = "".join(source)
    elif not isinstance(source, str):
        raise InvalidNotebookFormat(
            f"{label} has no source text (a string or a list of strings)", hint=_FIX_HINT
        )
    metadata = cell.get("metadata", {})
    if not isinstance(metadata, Mapping):
        raise InvalidNotebookFormat(f"{label} has metadata that is not an object", hint=_FIX_HINT)
    tags = metadata.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidNotebookFormat(
            f"{label} has tags that are not a list of strings",
            hint="fix the cell's tags in JupyterLab's property inspector",
        )
    return {"cell_type": cell_type, "source": source, "tags": sorted(set(tags))}


def _kernelspec(nb: Mapping[str, Any], where: str) -> dict[str, str]:
    metadata = nb["metadata"]
    spec = metadata.get("kernelspec")
    hint = (
        "open it in JupyterLab, select the kernel it runs on (e.g. 'Python 3 (qsecure)') "
        "and save it"
    )
    name = spec.get("name") if isinstance(spec, Mapping) else None
    if not isinstance(name, str) or not name:
        raise MissingKernelspec(
            f"{where} has no kernelspec (metadata.kernelspec.name): what it runs on is "
            "unknown, so it cannot be reviewed or promoted",
            hint=hint,
        )
    assert isinstance(spec, Mapping)
    language = spec.get("language")
    if not isinstance(language, str) or not language:
        info = metadata.get("language_info")
        language = info.get("name") if isinstance(info, Mapping) else None
    if not isinstance(language, str) or not language:
        raise MissingKernelspec(
            f"{where} names kernel {name!r} but not its language "
            "(metadata.kernelspec.language or metadata.language_info.name)",
            hint=hint,
        )
    return {"name": name, "language": language}


def _validate_schema(nb: Mapping[str, Any], where: str) -> None:
    """The nbformat 4 JSON schema, as Jupyter itself checks it.

    jsonschema's messages quote the offending value (a whole cell, for a cell that
    matches no cell schema), which may hold a secret: the error names only where the
    problem is and which rule failed.
    """
    # Costly to import (jsonschema), so only here. ``iter_validate``, not ``validate``:
    # ``validate`` repairs missing and duplicate cell ids in place.
    from nbformat.validator import iter_validate

    for error in iter_validate(nb):  # type: ignore[no-untyped-call]
        raise InvalidNotebookFormat(
            f"{where} does not match the nbformat 4 schema: {_describe(error)}", hint=_FIX_HINT
        )


def _describe(exc: Any) -> str:
    parts = list(getattr(exc, "absolute_path", []) or [])
    if len(parts) >= 2 and parts[0] == "cells" and isinstance(parts[1], int):
        location, rest = f"cell {parts[1] + 1}", parts[2:]
    else:
        location, rest = "notebook", parts
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{str(p)[:40]}" for p in rest)
    location = f"{location} ({path.lstrip('.')})" if path else location
    rule = str(getattr(exc, "validator", "") or "schema")
    value = getattr(exc, "validator_value", None)
    if rule == "required" and isinstance(getattr(exc, "message", None), str):
        return f"{location}: {exc.message}"  # "'id' is a required property": schema words only
    if rule == "type":
        return f"{location} should be of type {value}"
    if rule == "enum":
        return f"{location} should be one of {value}"
    if rule == "additionalProperties":
        return f"{location} has properties nbformat 4 does not allow"
    return f"{location} fails the schema rule {rule!r}"
