"""pytest fixtures that run a REAL OpenBao dev server.

Enable with ``pytest_plugins = ["jupyter_qsecure.testing.pytest_plugin"]`` in
a top-level ``conftest.py`` (``tests/conftest.py`` does this).

* ``openbao`` (session): an :class:`~jupyter_qsecure.testing.openbao.OpenBaoDev`
  with transit enabled at ``transit/`` and KV v2 at ``secret/``. Shared by the
  whole session: use unique key/path names per test. A test that needs to stop
  or restart a server should start its own with ``dev_openbao()``; if one stops
  the shared server anyway, the next ``openbao_client`` restarts it (empty).
* ``openbao_client`` (function): an hvac client authenticated with the root token.

Tests using them get the ``openbao`` marker automatically (``-m "not openbao"``
deselects them) and are skipped, with the reason, only when no ``bao`` binary
is installed; a server that fails to start is an error, not a skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .openbao import OpenBaoDev, OpenBaoUnavailable, dev_openbao, find_bao_binary


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "openbao" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.openbao)


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoDev]:
    """A real OpenBao dev server for the test session, transit and KV v2 enabled."""
    try:
        find_bao_binary()
    except OpenBaoUnavailable as exc:
        pytest.skip(f"OpenBao not available: {exc}")
    with dev_openbao() as server:
        server.enable_transit("transit")
        server.enable_kv("secret")
        yield server


@pytest.fixture
def openbao_client(openbao: OpenBaoDev) -> Any:
    """An hvac client for the session's OpenBao, authenticated with the root token."""
    openbao.ensure_running()
    return openbao.client()
