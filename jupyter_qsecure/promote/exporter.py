"""``jupyter nbconvert --to qsecure NOTEBOOK``: the promotion as an nbconvert exporter.

The same code as ``jupyter qsecure promote`` (:func:`~.promote.prepare_promotion`):
the same checks and refusals, the same script, lock and signed provenance, and a
``promotion.created`` ledger entry. The exporter's output is the promoted script
(``NAME.py``; ``--stdout`` prints it); the whole promotion, the script included, is
written beside it into ``NAME.promotion/`` (``jupyter qsecure verify-promotion
NAME.promotion`` checks it). The notebook must be a saved file: what is promoted is the
file its approvals are for, and a notebook given otherwise is refused.

Settings: ``--QSecureExporter.environment=prod`` (default: the configured environment),
``--QSecureExporter.find_links=DIR`` (folders of wheels, e.g. jupyter-qsecure's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbconvert.exporters import Exporter
from traitlets import List, Unicode

__all__ = ["QSecureExporter"]


class QSecureExporter(Exporter):
    """Promote an approved notebook (see the module docstring)."""

    export_from_notebook = "Promoted script (jupyter-qsecure)"
    output_mimetype = "text/x-python"

    environment = Unicode(
        "", help="Environment whose review policy applies (default: the configured one)."
    ).tag(config=True)
    find_links = List(Unicode(), default_value=[], help="Folders of wheels for the resolver.").tag(
        config=True
    )
    python = Unicode("", help="The kernel's interpreter (default: its kernelspec's).").tag(
        config=True
    )

    def _file_extension_default(self) -> str:
        return ".py"

    def from_notebook_node(  # type: ignore[override]
        self, nb: Any, resources: dict[str, Any] | None = None, **kw: Any
    ) -> tuple[str, dict[str, Any]]:
        from .digest import notebook_digest
        from .errors import NotebookRefused
        from .promote import prepare_promotion, record_promotion

        nb_copy, resources = super().from_notebook_node(nb, resources, **kw)
        meta = resources.get("metadata") or {}
        name, folder = meta.get("name"), meta.get("path")
        if not name:
            raise NotebookRefused(
                "jupyter nbconvert --to qsecure promotes a saved notebook file",
                hint="run it on the .ipynb file: jupyter nbconvert --to qsecure NOTEBOOK.ipynb",
            )
        path = Path(folder or ".") / f"{name}.ipynb"
        from ..config import load_settings

        settings = load_settings()
        prepared = prepare_promotion(
            path,
            environment=self.environment or None,
            settings=settings,
            python=self.python or None,
            find_links=list(self.find_links),
            expected_digest=notebook_digest(nb_copy, path=path),
        )
        directory = f"{name}.promotion"
        record_promotion(
            prepared, f"{Path(folder or '.').resolve() / directory} (nbconvert)", settings=settings
        )
        outputs = resources.setdefault("outputs", {})
        for file_name, data in prepared.files.items():
            outputs[f"{directory}/{file_name}"] = data
        resources["output_extension"] = ".py"
        return prepared.files[prepared.script_name].decode("utf-8"), resources
