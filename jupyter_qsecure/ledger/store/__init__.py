"""Ledger storage backends: SQLite (embedded default) and PostgreSQL (multi-user)."""

from __future__ import annotations

from urllib.parse import urlsplit

from ...errors import ConfigError
from ...extras import missing_extra
from .base import CheckpointRow, EntryFilter, EntryRow, LedgerStore, NodeRow, ReadTx, WriteTx


def open_store(url: str, *, create: bool) -> LedgerStore:
    """Open the store a ledger URL names: ``sqlite:///ABS/PATH`` or ``postgresql://...``."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore.from_url(url, create=create)
    if scheme in ("postgresql", "postgres"):
        try:
            from .postgres import PostgresStore
        except ModuleNotFoundError as exc:
            needed = missing_extra(exc, "a PostgreSQL ledger")
            if needed is None:
                raise
            raise needed from None
        return PostgresStore.from_url(url, create=create)
    raise ConfigError(
        f"unsupported ledger URL scheme {scheme or '(none)'!r}",
        hint="use sqlite:///ABSOLUTE/PATH.db or postgresql://USER@HOST:PORT/DB",
    )


__all__ = [
    "CheckpointRow",
    "EntryFilter",
    "EntryRow",
    "LedgerStore",
    "NodeRow",
    "ReadTx",
    "WriteTx",
    "open_store",
]
