"""Every jupyter-qsecure route refuses requests without the server's credentials.

The test walks every rule of the running server's router (every group of handlers any
extension registered, not only the first), keeps the ones whose handler comes from
``jupyter_qsecure_server``, and sends each method the handler implements without a token
or cookie: 401 or 403 for each (a page such as ``/files/…`` may instead send the browser
to the login page, as Jupyter's own pages do). A new route is covered without editing this file; a
route pattern this file cannot fill in fails the test instead of being skipped.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_server.utils import JupyterServerAuthWarning, url_path_join
from tornado import web

from jupyter_qsecure_server import QSecureExtension
from jupyter_qsecure_server.bearer import BearerAPIHandler

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

#: Sample values for the groups of our route patterns (the result must match the rule).
SAMPLES: dict[str, str] = {
    r"([^/]+)": "name",
    r"([0-9a-f]{32})": "0" * 32,
    r"(?P<path>(?:(?:/[^/]+)+|/?))": "/x.ipynb",
    r"(?P<checkpoint_id>[\w-]+)": "cp1",
    r"(?P<format>\w+)": "html",
    r"(.*)": "x.txt",
    r"(\w+)": "t1",
}

#: The user routes of docs/rest-api.md: they must be among the walked ones.
USER_ROUTES = {
    ("qsecure/api/status", "GET"),
    ("qsecure/api/secrets", "GET"),
    ("qsecure/api/secrets/name", "PUT"),
    ("qsecure/api/secrets/name", "DELETE"),
    ("qsecure/api/ledger/jobs", "GET"),
    ("qsecure/api/ledger/jobs/name", "GET"),
    ("qsecure/api/ledger/verify", "POST"),
    ("qsecure/api/save-anyway", "POST"),
    ("qsecure/api/review/status", "GET"),
    ("qsecure/api/review/approve", "POST"),
    ("qsecure/api/promote", "POST"),
}


def _rules(router: Any) -> Iterator[Any]:
    for rule in router.rules:
        if hasattr(rule.target, "rules"):  # a host group (one per add_handlers call)
            yield from _rules(rule.target)
        else:
            yield rule


def _url(pattern: str) -> str:
    path = pattern.removeprefix("^").removesuffix("$")
    for group, sample in SAMPLES.items():
        path = path.replace(group, sample)
    assert "(" not in path, f"add a sample value for a group of {pattern} to SAMPLES"
    assert re.fullmatch(pattern.removesuffix("$"), path), (pattern, path)
    return path


def extension_routes(serverapp: Any) -> list[tuple[str, str, str]]:
    """(url path, method, handler name) of every method of every extension route."""
    found = []
    for rule in _rules(serverapp.web_app.default_router):
        handler = rule.target
        if not isinstance(handler, type) or not handler.__module__.startswith(
            "jupyter_qsecure_server"
        ):
            continue
        path = _url(rule.matcher.regex.pattern)
        for method in METHODS:
            if getattr(handler, method.lower()) is not getattr(web.RequestHandler, method.lower()):
                found.append((path, method, handler.__name__))
    return found


def test_every_user_route_is_walked(jp_serverapp: Any, jp_base_url: str) -> None:
    walked = {(path, method) for path, method, _ in extension_routes(jp_serverapp)}
    expected = {(url_path_join(jp_base_url, r), m) for r, m in USER_ROUTES}
    assert expected <= walked
    # and the kernel-token routes, the contents gate, files, nbconvert, terminals
    handlers = {name for _, _, name in extension_routes(jp_serverapp)}
    assert {"JobsHandler", "JobHandler", "KeysHandler", "MaskedTermSocket"} <= handlers
    assert len(walked) >= 25


async def test_every_route_refuses_requests_without_credentials(
    jp_serverapp: Any, http_server_client: Any
) -> None:
    answered = []
    for path, method, name in extension_routes(jp_serverapp):
        response = await http_server_client.fetch(
            path,
            method=method,
            body=b"{}" if method in ("POST", "PUT", "PATCH") else None,
            raise_error=False,
            follow_redirects=False,
        )
        location = response.headers.get("Location", "")
        # Pages (files, nbconvert) send a browser to the login page, as Jupyter's own do.
        to_login = response.code == 302 and "/login?next=" in location
        answered.append((method, path, name, response.code, to_login))
    allowed = [a for a in answered if a[3] not in (401, 403) and not a[4]]
    assert not allowed, allowed
    assert len(answered) >= 25  # the walk found the routes


async def test_bearer_routes_refuse_every_method_even_with_jupyters_token(
    jp_serverapp: Any, http_server_client: Any, jp_auth_header: dict[str, str]
) -> None:
    """Routes on BearerAPIHandler (the job broker's) take only a kernel token: Jupyter's
    own token (what a browser session or a REST script holds) gets 401 for every method,
    also the ones a handler does not implement."""
    bearer_paths = {
        _url(rule.matcher.regex.pattern)
        for rule in _rules(jp_serverapp.web_app.default_router)
        if isinstance(rule.target, type)
        and issubclass(rule.target, BearerAPIHandler)
        and rule.target.__module__.startswith("jupyter_qsecure_server")
    }
    assert len(bearer_paths) >= 3  # jobs, jobs/ID, jobs/keys
    token = jp_auth_header["Authorization"].split(" ", 1)[1]
    for path in sorted(bearer_paths):
        for headers in (jp_auth_header, {"Authorization": f"Bearer {token}"}):
            for method in METHODS:
                response = await http_server_client.fetch(
                    path,
                    method=method,
                    headers=headers,
                    body=b"{}" if method in ("POST", "PUT", "PATCH") else None,
                    raise_error=False,
                    follow_redirects=False,
                )
                assert response.code == 401, (method, path, response.code)
                assert response.headers["WWW-Authenticate"].startswith("Bearer ")


@pytest.mark.parametrize(
    ("route", "method", "code"),
    [
        ("qsecure/api/status", "GET", 200),
        ("qsecure/api/ledger/jobs", "GET", 200),
        ("qsecure/api/ledger/verify", "POST", 200),
        # no OpenBao on this server; saving anyway is off by default
        ("qsecure/api/secrets", "GET", 503),
        ("qsecure/api/save-anyway", "POST", 403),
        # no path given
        ("qsecure/api/review/approve", "POST", 422),
        ("qsecure/api/promote", "POST", 422),
    ],
)
async def test_route_with_token_is_served(
    jp_fetch: Any, route: str, method: str, code: int
) -> None:
    response = await jp_fetch(
        *route.split("/"),
        method=method,
        body=b"{}" if method == "POST" else None,
        raise_error=False,
    )
    assert response.code == code


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
