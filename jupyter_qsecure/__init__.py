"""jupyter-qsecure: secure credentials, save gate, signed quantum jobs and an audit ledger.

The core library: nothing in this package imports Jupyter Server. The server
extension (``jupyter_qsecure_server``) is a thin adapter over it.
"""

from ._version import __version__

__all__ = ["__version__"]
