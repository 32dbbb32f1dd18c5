"""jupyter-qsecure: secure credentials, save gate, signed quantum jobs and an audit ledger.

The core library: nothing in this package imports Jupyter Server. The server
extension (``jupyter_qsecure_server``) is a thin adapter over it.
"""

from ._version import __version__

__all__ = ["__version__"]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the prebuilt JupyterLab extension is (``jupyter labextension develop .``)."""
    return [{"src": "labextension", "dest": "jupyter-qsecure"}]
