"""Every jupyter-qsecure route refuses requests without the server's credentials."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from jupyter_server.utils import JupyterServerAuthWarning, url_path_join

from jupyter_qsecure_server import QSecureExtension

# Every REST route of the extension and the methods it serves.
ROUTES: list[tuple[str, str]] = [("qsecure/api/status", "GET")]


def test_every_registered_route_is_listed(jp_serverapp: Any) -> None:
    registered = {
        rule.matcher.regex.pattern.lstrip("/").rstrip("$")
        for rule in jp_serverapp.web_app.default_router.rules[0].target.rules
        if "qsecure" in rule.matcher.regex.pattern
    }
    assert registered == {url_path_join(jp_serverapp.base_url, r).lstrip("/") for r, _ in ROUTES}


@pytest.mark.parametrize(("route", "method"), ROUTES)
async def test_route_without_token_is_forbidden(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, route: str, method: str
) -> None:
    response = await http_server_client.fetch(
        url_path_join(jp_base_url, route),
        method=method,
        body=None if method == "GET" else b"{}",
        raise_error=False,
    )
    assert response.code == 403


@pytest.mark.parametrize(("route", "method"), ROUTES)
async def test_route_with_token_is_served(jp_fetch: Any, route: str, method: str) -> None:
    response = await jp_fetch(*route.split("/"), method=method)
    assert response.code == 200


def test_no_route_triggers_an_auth_warning(jp_configurable_serverapp: Any) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jp_configurable_serverapp()
    ours = [
        str(w.message)
        for w in caught
        if issubclass(w.category, JupyterServerAuthWarning) and "qsecure" in str(w.message)
    ]
    assert not ours


def test_extension_point_is_declared() -> None:
    import jupyter_qsecure_server

    points = jupyter_qsecure_server._jupyter_server_extension_points()
    assert points == [{"module": "jupyter_qsecure_server", "app": QSecureExtension}]
