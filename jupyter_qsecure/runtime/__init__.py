"""What promoted scripts import: the job broker and secrets, under a production identity.

A script written by ``jupyter qsecure promote`` begins with::

    from jupyter_qsecure import runtime as _qsecure
    _qsecure.promoted(notebook="analysis.ipynb", digest="<sha256>", environment="prod")

and each ``%qsubmit`` of the notebook becomes ``_qsecure.submit(...)``::

    result = runtime.submit(qc, shots=1000, seed=7)  # verified: signatures, hashes, counts
    result.counts                                    # {"00": 503, "11": 497}
    runtime.secrets.get("warehouse")                 # from OpenBao, as the script's identity

Jobs go through the same policy, canonical hashing, DSSE signing and ledger as the
Jupyter server's broker (:class:`~jupyter_qsecure.jobs.service.JobService`), in this
process, on Qiskit Aer. Who runs them is :func:`identity`: an OpenBao AppRole or JWT
login (``QSECURE_ROLE_ID``/``QSECURE_SECRET_ID``, ``QSECURE_JWT``/``QSECURE_JWT_ROLE``,
or ``c.QSecure.vault_auth_method``), or, with no OpenBao configured, the OS user with
the local signing key. Nothing here imports IPython or Jupyter Server.
"""

from __future__ import annotations

import atexit
import threading
from typing import TYPE_CHECKING, Any

from . import secrets
from .core import ENVIRONMENT_RANK, Runtime, RuntimeRefused
from .identity import RuntimeIdentity

if TYPE_CHECKING:
    from ..jobs.result import QSubmitResult

__all__ = [
    "ENVIRONMENT_RANK",
    "Runtime",
    "RuntimeIdentity",
    "RuntimeRefused",
    "close",
    "default",
    "identity",
    "promoted",
    "secrets",
    "submit",
]

_default: Runtime | None = None
_lock = threading.Lock()


def default() -> Runtime:
    """The process's :class:`Runtime` (settings from Jupyter config and the environment)."""
    global _default
    with _lock:
        if _default is None:
            _default = Runtime()
            atexit.register(close)
        return _default


def promoted(*, notebook: str, digest: str, environment: str) -> None:
    """Called by a promoted script's first lines: see :meth:`Runtime.promoted`."""
    default().promoted(notebook=notebook, digest=digest, environment=environment)


def submit(circuits: Any, **options: Any) -> QSubmitResult:
    """Run circuits through the broker; the verified result (see :meth:`Runtime.submit`)."""
    return default().submit(circuits, **options)


def identity() -> RuntimeIdentity:
    """Who this script runs as (see :mod:`jupyter_qsecure.runtime.identity`)."""
    return default().identity()


def close() -> None:
    """Close the ledger and the broker (also done at exit)."""
    global _default
    with _lock:
        runtime, _default = _default, None
    if runtime is not None:
        runtime.close()
