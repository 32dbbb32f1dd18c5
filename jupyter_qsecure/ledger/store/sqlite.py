"""SQLite ledger store: the embedded default.

WAL journal with ``synchronous=FULL`` (every commit is fsynced, so an acknowledged
append survives power loss), ``BEGIN IMMEDIATE`` to serialise writers across
processes, and one transaction per batch so a group of appends costs one fsync.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ...errors import ConfigError, LedgerUnavailable, NotALedger
from .base import SCHEMA_NAME, SCHEMA_VERSION, CheckpointRow, EntryFilter, EntryRow, NodeRow

_SCHEMA = """
CREATE TABLE IF NOT EXISTS qsecure_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS qsecure_entries (
    idx INTEGER PRIMARY KEY, leaf_hash BLOB NOT NULL, entry BLOB NOT NULL,
    kind TEXT NOT NULL, actor TEXT NOT NULL, ts TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS qsecure_entries_kind ON qsecure_entries(kind, idx);
CREATE INDEX IF NOT EXISTS qsecure_entries_actor ON qsecure_entries(actor, idx);
CREATE INDEX IF NOT EXISTS qsecure_entries_ts ON qsecure_entries(ts);
CREATE TABLE IF NOT EXISTS qsecure_nodes (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS qsecure_checkpoints (
    seq INTEGER PRIMARY KEY, tree_size INTEGER NOT NULL, root_hash BLOB NOT NULL,
    ts TEXT NOT NULL, body BLOB NOT NULL, signatures TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS qsecure_public_keys (
    key_id TEXT NOT NULL, key_version INTEGER NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (key_id, key_version));
"""

_BATCH = 5000


class _SQLiteTx:
    """Read/write operations on one open transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    # -- reads
    def size(self) -> int:
        row = self._conn.execute("SELECT max(idx) FROM qsecure_entries").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def count_entries(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM qsecure_entries").fetchone()[0])

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        found: dict[tuple[int, int], bytes] = {}
        for level, idx in keys:
            if level == 0:
                row = self._conn.execute(
                    "SELECT leaf_hash FROM qsecure_entries WHERE idx = ?", (idx,)
                ).fetchone()
            else:
                row = self._conn.execute(
                    "SELECT hash FROM qsecure_nodes WHERE level = ? AND idx = ?", (level, idx)
                ).fetchone()
            if row is not None:
                found[(level, idx)] = bytes(row[0])
        return found

    def iter_entries(self, start: int = 0, end: int | None = None) -> Iterator[EntryRow]:
        cursor = self._conn.execute(
            "SELECT idx, leaf_hash, entry, kind, actor, ts FROM qsecure_entries "
            "WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, end if end is not None else 2**62),
        )
        while rows := cursor.fetchmany(_BATCH):
            for row in rows:
                yield EntryRow(*row)

    def iter_nodes(self, level: int) -> Iterator[tuple[int, bytes]]:
        cursor = self._conn.execute(
            "SELECT idx, hash FROM qsecure_nodes WHERE level = ? ORDER BY idx", (level,)
        )
        while rows := cursor.fetchmany(_BATCH):
            yield from rows

    def get_entry(self, idx: int) -> EntryRow | None:
        row = self._conn.execute(
            "SELECT idx, leaf_hash, entry, kind, actor, ts FROM qsecure_entries WHERE idx = ?",
            (idx,),
        ).fetchone()
        return EntryRow(*row) if row else None

    def query_entries(self, where: EntryFilter) -> list[EntryRow]:
        clauses: list[str] = []
        params: list[object] = []
        if where.kinds:
            clauses.append(f"kind IN ({','.join('?' * len(where.kinds))})")
            params.extend(where.kinds)
        if where.actors:
            clauses.append(f"actor IN ({','.join('?' * len(where.actors))})")
            params.extend(where.actors)
        if where.since:
            clauses.append("ts >= ?")
            params.append(where.since)
        if where.until:
            clauses.append("ts < ?")
            params.append(where.until)
        if where.start is not None:
            clauses.append("idx >= ?")
            params.append(where.start)
        if where.end is not None:
            clauses.append("idx < ?")
            params.append(where.end)
        sql = "SELECT idx, leaf_hash, entry, kind, actor, ts FROM qsecure_entries"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        if where.last is not None:
            sql += " ORDER BY idx DESC LIMIT ?"
            params.append(where.last)
            rows = self._conn.execute(sql, params).fetchall()
            rows.reverse()
        else:
            rows = self._conn.execute(sql + " ORDER BY idx", params).fetchall()
        return [EntryRow(*row) for row in rows]

    def checkpoints(self) -> list[CheckpointRow]:
        rows = self._conn.execute(
            "SELECT seq, tree_size, root_hash, ts, body, signatures FROM qsecure_checkpoints "
            "ORDER BY seq"
        ).fetchall()
        return [CheckpointRow(*row) for row in rows]

    def last_checkpoint(self) -> CheckpointRow | None:
        row = self._conn.execute(
            "SELECT seq, tree_size, root_hash, ts, body, signatures FROM qsecure_checkpoints "
            "ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return CheckpointRow(*row) if row else None

    def meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM qsecure_meta").fetchall())

    def public_key_records(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT record FROM qsecure_public_keys")]

    # -- writes
    def insert(self, entries: Sequence[EntryRow], nodes: Sequence[NodeRow]) -> None:
        self._conn.executemany(
            "INSERT INTO qsecure_entries (idx, leaf_hash, entry, kind, actor, ts) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            entries,
        )
        if nodes:
            self._conn.executemany(
                "INSERT INTO qsecure_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes
            )

    def insert_checkpoint(self, row: CheckpointRow) -> None:
        self._conn.execute(
            "INSERT INTO qsecure_checkpoints (seq, tree_size, root_hash, ts, body, signatures) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            row,
        )

    def put_public_key(self, key_id: str, key_version: int, record: str) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO qsecure_public_keys (key_id, key_version, record) "
            "VALUES (?, ?, ?)",
            (key_id, key_version, record),
        )


class SQLiteStore:
    """A ledger in one SQLite file. Safe for many threads and processes."""

    def __init__(self, path: Path, *, create: bool) -> None:
        self.path = path
        self.display_url = f"sqlite://{path}"
        self._lock = threading.RLock()
        if not path.exists() and not create:
            raise LedgerUnavailable(
                f"no ledger at {path}",
                hint="check --ledger / QSECURE_LEDGER, or write an entry first "
                "(e.g. `jupyter qsecure audit note TEXT`) to create it",
            )
        if create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerUnavailable(
                    f"cannot create the folder for ledger {path}: {exc.strerror}",
                    hint="choose a writable location with --ledger or QSECURE_LEDGER",
                ) from exc
        try:
            self._conn = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=60.0
            )
        except sqlite3.Error as exc:
            raise LedgerUnavailable(
                f"cannot open ledger {path}: {exc}",
                hint="check the path and its permissions",
            ) from exc
        try:
            self._prepare(create)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise NotALedger(
                f"{path} is not a readable SQLite database ({exc})",
                hint="the file is corrupt or not a ledger; restore it from backup or point "
                "--ledger at the right file",
            ) from exc

    @classmethod
    def from_url(cls, url: str, *, create: bool) -> SQLiteStore:
        parts = urlsplit(url)
        raw_path = unquote(parts.path)
        if parts.netloc or not raw_path.startswith("/"):
            raise ConfigError(
                f"ledger URL {url!r} is not of the form sqlite:///ABSOLUTE/PATH.db",
                hint="use three slashes and an absolute path, e.g. sqlite:////home/me/ledger.db",
            )
        # Accept sqlite:///abs/path and the SQLAlchemy-style sqlite:////abs/path alike.
        return cls(Path("/" + raw_path.lstrip("/")), create=create)

    def _prepare(self, create: bool) -> None:
        conn = self._conn
        conn.execute("PRAGMA busy_timeout = 60000")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "qsecure_meta" not in tables:
            if tables:
                raise NotALedger(
                    f"{self.path} is a SQLite database but not a jupyter-qsecure ledger "
                    f"(it has tables {', '.join(sorted(tables)[:5])} and no qsecure_meta)",
                    hint="point --ledger / QSECURE_LEDGER at a ledger file or at a new path",
                )
            if not create:
                raise NotALedger(
                    f"{self.path} is empty, not a jupyter-qsecure ledger",
                    hint="point --ledger at an existing ledger",
                )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        if create and "qsecure_meta" not in tables:
            conn.execute("BEGIN IMMEDIATE")
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(statement)
            conn.executemany(
                "INSERT OR IGNORE INTO qsecure_meta (key, value) VALUES (?, ?)",
                [
                    ("schema", SCHEMA_NAME),
                    ("version", SCHEMA_VERSION),
                    ("origin", f"jupyter-qsecure/ledger/{uuid.uuid4()}"),
                ],
            )
            conn.execute("COMMIT")
        meta = dict(conn.execute("SELECT key, value FROM qsecure_meta").fetchall())
        if meta.get("schema") != SCHEMA_NAME:
            raise NotALedger(
                f"{self.path} has a qsecure_meta table but no ledger schema marker",
                hint="the database is not a jupyter-qsecure ledger or was damaged",
            )
        if meta.get("version") != SCHEMA_VERSION:
            raise NotALedger(
                f"{self.path} is a ledger of schema version {meta.get('version')}, this "
                f"jupyter-qsecure reads version {SCHEMA_VERSION}",
                hint="upgrade jupyter-qsecure",
            )

    @contextmanager
    def read(self) -> Iterator[_SQLiteTx]:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield _SQLiteTx(self._conn)
            finally:
                self._conn.execute("COMMIT")

    @contextmanager
    def write(self) -> Iterator[_SQLiteTx]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteTx(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full, I/O error) may leave the transaction open:
                # end it, or every later write fails with "transaction within a transaction".
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()
