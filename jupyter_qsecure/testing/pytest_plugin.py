"""pytest fixtures that run a REAL OpenBao dev server.

Enable with ``pytest_plugins = ["jupyter_qsecure.testing.pytest_plugin"]`` in
a top-level ``conftest.py`` (``tests/conftest.py`` does this).

* ``openbao`` (session): an :class:`~jupyter_qsecure.testing.openbao.OpenBaoDev`
  with transit enabled at ``transit/`` and KV v2 at ``secret/``. Shared by the
  whole session: use unique key/path names per test. A test that needs to stop
  or restart a server should start its own with ``dev_openbao()``; if one stops
  the shared server anyway, the next ``openbao_client`` restarts it (empty).
* ``openbao_client`` (function): an hvac client authenticated with the root token.
* Every test that uses ``openbao`` leaves the convention tree ``secret/qsecure/``
  as it found it: secrets a test (or its function-scoped fixtures) stored there are
  deleted after it, because a broker offers every secret under
  ``secret/qsecure/ENV/`` and would hand them to the next test's kernels.

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


CONVENTION_ROOT = "qsecure"


def _kv_paths_under(client: Any, root: str, depth: int = 4) -> set[str]:
    """Every KV v2 secret path under ``root`` of the ``secret/`` mount (a few levels)."""
    try:
        listed = client.secrets.kv.v2.list_secrets(path=root, mount_point="secret")
    except Exception:  # noqa: BLE001 - nothing stored there (hvac raises InvalidPath), or no KV
        return set()
    paths: set[str] = set()
    for key in listed["data"]["keys"]:
        path = f"{root}/{key.rstrip('/')}"
        if key.endswith("/"):
            if depth > 0:
                paths |= _kv_paths_under(client, path, depth - 1)
        else:
            paths.add(path)
    return paths


@pytest.fixture(autouse=True)
def _convention_secrets_left_as_found(request: pytest.FixtureRequest) -> Iterator[None]:
    """Delete what a test stored under ``secret/qsecure/`` of the shared OpenBao."""
    if "openbao" not in request.fixturenames:
        yield
        return
    server: OpenBaoDev = request.getfixturevalue("openbao")
    before = _kv_paths_under(server.client(), CONVENTION_ROOT)
    yield
    if not server.is_running():
        return
    client = server.client()
    for path in _kv_paths_under(client, CONVENTION_ROOT) - before:
        client.secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point="secret")


@pytest.fixture
def openbao_client(openbao: OpenBaoDev) -> Any:
    """An hvac client for the session's OpenBao, authenticated with the root token."""
    openbao.ensure_running()
    return openbao.client()
