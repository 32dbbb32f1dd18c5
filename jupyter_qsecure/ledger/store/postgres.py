"""PostgreSQL ledger store (psycopg 3): for multi-user deployments.

Same tables as the SQLite store (``qsecure_*``), with ``BYTEA`` hashes and entry
bytes and ``BIGINT`` indices. The store holds one connection (autocommit mode,
transactions started explicitly) guarded by a re-entrant lock, so one store may
be shared by many threads; processes each open their own store.

- :meth:`PostgresStore.write` starts a READ COMMITTED transaction and first takes
  a transaction-scoped advisory lock (``pg_advisory_xact_lock``) on a fixed key, so
  every writer of the ledger's database, in any process on any host, is
  serialised; statements after the lock see everything committed before it. The
  transaction commits on exit, durably as long as the server runs with its
  defaults (``fsync`` and ``synchronous_commit`` on; a warning is logged otherwise).
- :meth:`PostgresStore.read` is a ``REPEATABLE READ, READ ONLY`` transaction: a
  verification sees one snapshot however long it takes, and never blocks writers.
- :meth:`~_PostgresTx.iter_entries` and :meth:`~_PostgresTx.iter_nodes` stream
  through server-side (named) cursors in batches; several may be open at once in
  one transaction (verification walks entries and every node level side by side).
- Creating the schema takes the same advisory lock, uses ``CREATE TABLE IF NOT
  EXISTS`` and ``INSERT ... ON CONFLICT DO NOTHING``, so several processes may open
  a new ledger at once and all end up with the same ``origin``.

Passwords never appear in :attr:`PostgresStore.display_url` or in any error
message this module raises. Deliberately not supported: creating the *database*
itself (ask your DBA, or ``createdb``), and schema names other than the
connection's ``search_path`` (set ``options=-csearch_path=...`` in the URL).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

from ...errors import ConfigError, LedgerConflict, LedgerError, LedgerUnavailable, NotALedger
from .base import SCHEMA_NAME, SCHEMA_VERSION, CheckpointRow, EntryFilter, EntryRow, NodeRow

log = logging.getLogger("jupyter_qsecure.ledger")

#: Key of the transaction-scoped advisory lock every writer takes (advisory locks are
#: per database, so this only serialises writers of the same ledger): b"jqsecure".
ADVISORY_LOCK_KEY = int.from_bytes(b"jqsecure", "big")

#: Seconds to wait for the server before giving up (a URL's own connect_timeout wins).
CONNECT_TIMEOUT = 5

_BATCH = 5000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS qsecure_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS qsecure_entries (
        idx BIGINT PRIMARY KEY, leaf_hash BYTEA NOT NULL, entry BYTEA NOT NULL,
        kind TEXT NOT NULL, actor TEXT NOT NULL, ts TEXT COLLATE "C" NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS qsecure_entries_kind ON qsecure_entries (kind, idx)",
    "CREATE INDEX IF NOT EXISTS qsecure_entries_actor ON qsecure_entries (actor, idx)",
    "CREATE INDEX IF NOT EXISTS qsecure_entries_ts ON qsecure_entries (ts)",
    """CREATE TABLE IF NOT EXISTS qsecure_nodes (
        level INTEGER NOT NULL, idx BIGINT NOT NULL, hash BYTEA NOT NULL,
        PRIMARY KEY (level, idx))""",
    """CREATE TABLE IF NOT EXISTS qsecure_checkpoints (
        seq BIGINT PRIMARY KEY, tree_size BIGINT NOT NULL, root_hash BYTEA NOT NULL,
        ts TEXT NOT NULL, body BYTEA NOT NULL, signatures TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS qsecure_public_keys (
        key_id TEXT NOT NULL, key_version INTEGER NOT NULL, record TEXT NOT NULL,
        PRIMARY KEY (key_id, key_version))""",
)

_BEGIN_SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
_ENTRY_COLUMNS = "idx, leaf_hash, entry, kind, actor, ts"
_CHECKPOINT_COLUMNS = "seq, tree_size, root_hash, ts, body, signatures"
_HINT_REACH = "check the server is running and QSECURE_LEDGER / --ledger"


def redact_url(url: str) -> str:
    """``url`` with any password (in the user info or a ``password=`` parameter) removed."""
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        netloc = f"{userinfo.partition(':')[0]}@{hosts}"
    query = parts.query
    if query:
        kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "password"]
        query = urlencode(kept)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class _PostgresTx:
    """Read/write operations on the store's current transaction."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._cursors: list[psycopg.ServerCursor[Any]] = []

    def _one(self, sql: str, params: Sequence[object] = ()) -> Any:
        return self._conn.execute(sql, params, binary=True).fetchone()

    def _all(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        return self._conn.execute(sql, params, binary=True).fetchall()

    def _stream(self, sql: str, params: Sequence[object]) -> Iterator[Any]:
        cursor = self._conn.cursor(name=f"qsecure_{uuid.uuid4().hex}", binary=True)
        self._cursors.append(cursor)
        try:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(_BATCH):
                yield from rows
        finally:
            cursor.close()

    def _close_cursors(self) -> None:
        """Close the streams still open, before the transaction ends (abandoned iterators)."""
        for cursor in self._cursors:
            cursor.close()
        self._cursors.clear()

    # -- reads
    def size(self) -> int:
        row = self._one("SELECT max(idx) FROM qsecure_entries")
        return 0 if row[0] is None else int(row[0]) + 1

    def count_entries(self) -> int:
        return int(self._one("SELECT count(*) FROM qsecure_entries")[0])

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        found: dict[tuple[int, int], bytes] = {}
        leaves = [idx for level, idx in keys if level == 0]
        inner = [(level, idx) for level, idx in keys if level != 0]
        if leaves:
            for idx, digest in self._all(
                "SELECT idx, leaf_hash FROM qsecure_entries WHERE idx = ANY(%s::bigint[])",
                (leaves,),
            ):
                found[(0, int(idx))] = bytes(digest)
        if inner:
            for level, idx, digest in self._all(
                "SELECT n.level, n.idx, n.hash FROM qsecure_nodes n "
                "JOIN unnest(%s::integer[], %s::bigint[]) AS k(level, idx) "
                "ON n.level = k.level AND n.idx = k.idx",
                ([lv for lv, _ in inner], [ix for _, ix in inner]),
            ):
                found[(int(level), int(idx))] = bytes(digest)
        return found

    def iter_entries(self, start: int = 0, end: int | None = None) -> Iterator[EntryRow]:
        if end is None:
            rows = self._stream(
                f"SELECT {_ENTRY_COLUMNS} FROM qsecure_entries WHERE idx >= %s ORDER BY idx",
                (start,),
            )
        else:
            rows = self._stream(
                f"SELECT {_ENTRY_COLUMNS} FROM qsecure_entries "
                "WHERE idx >= %s AND idx < %s ORDER BY idx",
                (start, end),
            )
        for row in rows:
            yield EntryRow(*row)

    def iter_nodes(self, level: int) -> Iterator[tuple[int, bytes]]:
        yield from self._stream(
            "SELECT idx, hash FROM qsecure_nodes WHERE level = %s ORDER BY idx", (level,)
        )

    def get_entry(self, idx: int) -> EntryRow | None:
        row = self._one(f"SELECT {_ENTRY_COLUMNS} FROM qsecure_entries WHERE idx = %s", (idx,))
        return EntryRow(*row) if row else None

    def query_entries(self, where: EntryFilter) -> list[EntryRow]:
        clauses: list[str] = []
        params: list[object] = []
        if where.kinds:
            clauses.append("kind = ANY(%s::text[])")
            params.append(list(where.kinds))
        if where.actors:
            clauses.append("actor = ANY(%s::text[])")
            params.append(list(where.actors))
        if where.since:
            clauses.append("ts >= %s")
            params.append(where.since)
        if where.until:
            clauses.append("ts < %s")
            params.append(where.until)
        if where.start is not None:
            clauses.append("idx >= %s")
            params.append(where.start)
        if where.end is not None:
            clauses.append("idx < %s")
            params.append(where.end)
        sql = f"SELECT {_ENTRY_COLUMNS} FROM qsecure_entries"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        if where.last is not None:
            sql += " ORDER BY idx DESC LIMIT %s"
            params.append(where.last)
            rows = self._all(sql, params)
            rows.reverse()
        else:
            rows = self._all(sql + " ORDER BY idx", params)
        return [EntryRow(*row) for row in rows]

    def checkpoints(self) -> list[CheckpointRow]:
        rows = self._all(f"SELECT {_CHECKPOINT_COLUMNS} FROM qsecure_checkpoints ORDER BY seq")
        return [CheckpointRow(*row) for row in rows]

    def last_checkpoint(self) -> CheckpointRow | None:
        row = self._one(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM qsecure_checkpoints ORDER BY seq DESC LIMIT 1"
        )
        return CheckpointRow(*row) if row else None

    def meta(self) -> dict[str, str]:
        return {k: v for k, v in self._all("SELECT key, value FROM qsecure_meta")}

    def public_key_records(self) -> list[str]:
        return [r[0] for r in self._all("SELECT record FROM qsecure_public_keys ORDER BY key_id")]

    # -- writes
    def insert(self, entries: Sequence[EntryRow], nodes: Sequence[NodeRow]) -> None:
        with self._conn.cursor(binary=True) as cursor:
            if entries:
                with cursor.copy(
                    f"COPY qsecure_entries ({_ENTRY_COLUMNS}) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["int8", "bytea", "bytea", "text", "text", "text"])
                    for entry_row in entries:
                        copy.write_row(entry_row)
            if nodes:
                with cursor.copy(
                    "COPY qsecure_nodes (level, idx, hash) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["int4", "int8", "bytea"])
                    for node_row in nodes:
                        copy.write_row(node_row)

    def insert_checkpoint(self, row: CheckpointRow) -> None:
        self._conn.execute(
            f"INSERT INTO qsecure_checkpoints ({_CHECKPOINT_COLUMNS}) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            tuple(row),
        )

    def put_public_key(self, key_id: str, key_version: int, record: str) -> None:
        self._conn.execute(
            "INSERT INTO qsecure_public_keys (key_id, key_version, record) VALUES (%s, %s, %s) "
            "ON CONFLICT (key_id, key_version) DO NOTHING",
            (key_id, key_version, record),
        )


class PostgresStore:
    """A ledger in one PostgreSQL database. Safe for many threads and processes."""

    def __init__(self, url: str, *, create: bool) -> None:
        self.display_url = redact_url(url)
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            raise ConfigError(
                f"ledger URL {self.display_url!r} is not a valid PostgreSQL URL",
                hint="use postgresql://USER@HOST:PORT/DATABASE (password via ~/.pgpass or "
                "PGPASSWORD, or in the URL)",
            ) from None
        self._url = url
        self._secrets = [
            str(s) for s in (params.get("password"), os.environ.get("PGPASSWORD")) if s
        ]
        host = str(params.get("host") or os.environ.get("PGHOST") or "localhost")
        port = str(params.get("port") or os.environ.get("PGPORT") or "5432")
        self.dbname = str(
            params.get("dbname")
            or os.environ.get("PGDATABASE")
            or params.get("user")
            or os.environ.get("PGUSER")
            or "(default)"
        )
        self.where = f"database {self.dbname!r} on {host}:{port}"
        self._connect_kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params and "PGCONNECT_TIMEOUT" not in os.environ:
            self._connect_kwargs["connect_timeout"] = CONNECT_TIMEOUT
        if "application_name" not in params:
            self._connect_kwargs["application_name"] = "jupyter-qsecure"
        self._lock = threading.RLock()
        self._depth = 0
        self._tx: _PostgresTx | None = None
        self._closed = False
        self._conn = self._connect()
        try:
            self._prepare(create)
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def from_url(cls, url: str, *, create: bool) -> PostgresStore:
        return cls(url, create=create)

    # ---- connection and errors -------------------------------------------------------------
    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _reason(self, exc: BaseException) -> str:
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        return self._redact("; ".join(lines[:3]) or type(exc).__name__)

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self._url, **self._connect_kwargs)
        except pg_errors.InvalidCatalogName:
            raise LedgerUnavailable(
                f"PostgreSQL ledger {self.where} does not exist",
                hint=f"create the database first (e.g. `createdb {self.dbname}`), or fix "
                "QSECURE_LEDGER / --ledger",
            ) from None
        except psycopg.OperationalError as exc:
            raise LedgerUnavailable(
                f"cannot connect to PostgreSQL ledger {self.where}: {self._reason(exc)}",
                hint=f"{_HINT_REACH}; also check the user name and password "
                "(~/.pgpass or PGPASSWORD)",
            ) from None
        except psycopg.Error as exc:
            raise LedgerUnavailable(
                f"cannot open PostgreSQL ledger {self.where}: {self._reason(exc)}",
                hint=_HINT_REACH,
            ) from None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise LedgerUnavailable(
                f"the PostgreSQL ledger {self.where} was closed",
                hint="open the ledger again",
            )
        if self._conn.broken or self._conn.closed:  # server restarted or connection lost
            self._conn = self._connect()
        return self._conn

    def _translate(self, exc: psycopg.Error) -> LedgerError:
        reason = self._reason(exc)
        if isinstance(exc, psycopg.OperationalError) and not isinstance(
            exc, pg_errors.QueryCanceled | pg_errors.LockNotAvailable
        ):
            return LedgerUnavailable(
                f"lost the connection to PostgreSQL ledger {self.where}: {reason}",
                hint=f"{_HINT_REACH}; an append that failed here was not recorded",
            )
        if isinstance(exc, psycopg.IntegrityError):
            return LedgerConflict(
                f"a concurrent change to PostgreSQL ledger {self.where} conflicts: {reason}",
                hint="retry; if it persists run `jupyter qsecure audit verify`",
            )
        if isinstance(exc, pg_errors.InsufficientPrivilege | pg_errors.ReadOnlySqlTransaction):
            return LedgerUnavailable(
                f"not allowed to use PostgreSQL ledger {self.where}: {reason}",
                hint="grant the ledger's database user access to the qsecure_* tables",
            )
        if isinstance(exc, pg_errors.UndefinedTable | pg_errors.UndefinedColumn):
            return NotALedger(
                f"PostgreSQL {self.where} is missing part of the ledger schema: {reason}",
                hint="the database was damaged or is not a ledger; restore it from backup",
            )
        return LedgerUnavailable(
            f"PostgreSQL ledger {self.where} failed: {reason}", hint=_HINT_REACH
        )

    def _end(self, conn: psycopg.Connection[Any], statement: str) -> None:
        try:
            conn.execute(statement)
        except psycopg.Error:
            if statement == "COMMIT":
                raise
            # ROLLBACK on a broken connection: the server rolls back on its own.

    def _begin(self, begin: str) -> psycopg.Connection[Any]:
        conn = self._connection()
        try:
            conn.execute(begin)
        except psycopg.OperationalError:
            if not conn.broken:
                raise
            conn = self._connection()  # the server dropped an idle connection: reconnect once
            conn.execute(begin)
        return conn

    @contextmanager
    def _transaction(self, begin: str, *, lock: bool) -> Iterator[_PostgresTx]:
        with self._lock:
            if self._depth and self._tx is not None:  # nested in this thread's transaction
                self._depth += 1
                try:
                    yield self._tx
                finally:
                    self._depth -= 1
                return
            conn: psycopg.Connection[Any] | None = None
            self._depth = 1
            try:
                try:
                    conn = self._begin(begin)
                    tx = self._tx = _PostgresTx(conn)
                    if lock:
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
                    yield tx
                    tx._close_cursors()
                except BaseException as exc:
                    if (
                        conn is not None
                        and not conn.closed
                        and conn.info.transaction_status != TransactionStatus.IDLE
                    ):
                        self._end(conn, "ROLLBACK")
                    if isinstance(exc, psycopg.Error):
                        raise self._translate(exc) from None
                    raise
                assert conn is not None
                try:
                    self._end(conn, "COMMIT")
                except psycopg.Error as exc:
                    raise self._translate(exc) from None
            finally:
                self._depth = 0
                self._tx = None

    # ---- schema ------------------------------------------------------------------------------
    def _tables(self, conn: psycopg.Connection[Any]) -> set[str]:
        rows = conn.execute(
            "SELECT c.relname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        ).fetchall()
        return {r[0] for r in rows}

    def _prepare(self, create: bool) -> None:
        with self._transaction("BEGIN", lock=create) as tx:
            conn = self._conn
            tables = self._tables(conn)
            if "qsecure_meta" not in tables:
                if tables:
                    raise NotALedger(
                        f"PostgreSQL {self.where} is a database but not a jupyter-qsecure ledger "
                        f"(it has tables {', '.join(sorted(tables)[:5])} and no qsecure_meta)",
                        hint="point --ledger / QSECURE_LEDGER at a ledger database or at a new, "
                        "empty database",
                    )
                if not create:
                    raise NotALedger(
                        f"PostgreSQL {self.where} is empty, not a jupyter-qsecure ledger",
                        hint="point --ledger / QSECURE_LEDGER at an existing ledger, or write an "
                        "entry first (e.g. `jupyter qsecure audit note TEXT`) to create it",
                    )
                for statement in _SCHEMA:
                    conn.execute(statement)
                with conn.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO qsecure_meta (key, value) VALUES (%s, %s) "
                        "ON CONFLICT (key) DO NOTHING",
                        [
                            ("schema", SCHEMA_NAME),
                            ("version", SCHEMA_VERSION),
                            ("origin", f"jupyter-qsecure/ledger/{uuid.uuid4()}"),
                        ],
                    )
            meta = tx.meta()
        if meta.get("schema") != SCHEMA_NAME:
            raise NotALedger(
                f"PostgreSQL {self.where} has a qsecure_meta table but no ledger schema marker",
                hint="the database is not a jupyter-qsecure ledger or was damaged",
            )
        if meta.get("version") != SCHEMA_VERSION:
            raise NotALedger(
                f"PostgreSQL {self.where} is a ledger of schema version {meta.get('version')}, "
                f"this jupyter-qsecure reads version {SCHEMA_VERSION}",
                hint="upgrade jupyter-qsecure",
            )
        self._warn_if_not_durable()

    def _warn_if_not_durable(self) -> None:
        try:
            fsync = self._conn.execute("SHOW fsync").fetchone()
            sync_commit = self._conn.execute("SHOW synchronous_commit").fetchone()
        except psycopg.Error:
            return
        if (fsync and fsync[0] == "off") or (sync_commit and sync_commit[0] == "off"):
            log.warning(
                "PostgreSQL ledger %s runs with fsync=%s, synchronous_commit=%s: a crash can "
                "lose acknowledged appends",
                self.where,
                fsync[0] if fsync else "?",
                sync_commit[0] if sync_commit else "?",
            )

    # ---- the LedgerStore interface -----------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[_PostgresTx]:
        """A read-only snapshot (REPEATABLE READ) of the whole ledger."""
        with self._transaction(_BEGIN_SNAPSHOT, lock=False) as tx:
            yield tx

    @contextmanager
    def write(self) -> Iterator[_PostgresTx]:
        """Exclusive across all writers of this database; commits durably on exit."""
        with self._transaction("BEGIN", lock=True) as tx:
            yield tx

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()
