"""One error hierarchy for the whole library.

Every error carries a message that says what is wrong and what to do about it,
and the process exit status the command line uses for it (design.md: 1 for
findings or a failed verification, 2 for usage or environment errors). No
error message ever contains a secret value.
"""

from __future__ import annotations


class QSecureError(Exception):
    """Base class of every error raised on purpose by jupyter-qsecure."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  hint: {hint}")


class ConfigError(QSecureError):
    """A setting is missing, malformed or contradicts another."""


class LedgerError(QSecureError):
    """Base class of ledger errors."""


class LedgerUnavailable(LedgerError):
    """The ledger's database cannot be opened or reached."""


class NotALedger(LedgerError):
    """The database exists but is not a jupyter-qsecure ledger, or is corrupt."""


class InvalidEntry(LedgerError):
    """An entry's kind or body was refused (unknown kind, bad field, secret-looking value)."""


class LedgerConflict(LedgerError):
    """A concurrent writer changed the ledger in a way this writer cannot reconcile."""


class SigningError(QSecureError):
    """A signer could not produce or load a key or signature."""


class VerificationFailed(QSecureError):
    """A ledger, proof or signature did not verify. Exit status 1."""

    exit_code = 1
