"""pytest fixtures that run a REAL, throwaway PostgreSQL cluster.

Enable with ``pytest_plugins = [..., "jupyter_qsecure.testing.pytest_plugin_postgres"]``
in a top-level ``conftest.py`` (``tests/conftest.py`` does this).

* ``postgres_server`` (session): a :class:`~jupyter_qsecure.testing.postgres.PostgresServer`
  (``initdb`` + ``pg_ctl``, superuser with a generated password, fsync on), stopped and
  deleted at the end of the session. ``postgres_server.create_database(name)`` returns
  a URL; ``postgres_server.connect(dbname)`` a psycopg connection for direct SQL.
* ``postgres_ledger_url`` (function): the URL of a fresh, empty database for this test
  (``postgresql://qsecure:PASSWORD@127.0.0.1:PORT/ledger_...``), dropped afterwards. Open
  a ledger on it with ``Ledger.open(url)`` or ``PostgresStore.from_url(url, create=True)``.

Tests using them get the ``postgres`` marker automatically (``-m "not postgres"``
deselects them) and are skipped, with the reason, only when no PostgreSQL server
binaries are installed; a cluster that fails to start is an error, not a skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from .postgres import PostgresServer, PostgresUnavailable, find_postgres_bindir, throwaway_postgres

_FIXTURES = ("postgres_server", "postgres_ledger_url")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in _FIXTURES):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL cluster for the test session, on a free 127.0.0.1 port."""
    try:
        find_postgres_bindir()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL not available: {exc}")
    with throwaway_postgres() as server:
        yield server


@pytest.fixture
def postgres_ledger_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh, empty database on the session's cluster (dropped after the test)."""
    name = f"ledger_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    yield url
    try:
        postgres_server.drop_database(name)
    except Exception:  # noqa: BLE001, S110 - best effort; the cluster is deleted at session end
        pass
