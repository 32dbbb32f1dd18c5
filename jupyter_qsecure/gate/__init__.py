"""The save gate: refuse, redact or report secrets before content is persisted.

:class:`SaveGate` decides (no Jupyter Server imports); the server extension
calls it from every path that writes a file. A refused or redacted save keeps
the user's content in an encrypted :class:`RecoveryStore`.
"""

from .gate import GateError, GateOutcome, SaveGate
from .recovery import RecoveryRecord, RecoveryStore, recovery_store_from_settings

__all__ = [
    "GateError",
    "GateOutcome",
    "RecoveryRecord",
    "RecoveryStore",
    "SaveGate",
    "recovery_store_from_settings",
]
