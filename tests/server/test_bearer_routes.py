"""``BearerAPIHandler``, the base of the job broker's routes, through the real server.

Routes on it answer only to a valid bearer token of ours, for every method; Jupyter's
identity provider (its token, its cookie) is never asked and never enough; a subclass
that cannot check a token refuses everything; the API's security headers, the Host
check and the cross-origin check stay; refusals and errors are logged (without the
token), successes are not formatted into the access log but still counted in the
request metrics.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import pytest
from jupyter_server import log as jupyter_log
from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.prometheus.metrics import HTTP_REQUEST_DURATION_SECONDS
from jupyter_server.utils import url_path_join

from jupyter_qsecure.jobs.service import Unauthorized
from jupyter_qsecure_server.bearer import BearerAPIHandler

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


class Echo(BearerAPIHandler):
    """A bearer route that accepts one token; PUT fails with an unexpected error."""

    def initialize(self, *, token: str) -> None:
        self.expected = token

    async def bearer_identity(self, token: str | None) -> Any:
        if not token or not secrets.compare_digest(token, self.expected):
            raise Unauthorized("the token is not valid")
        return {"user": "tester"}

    @allow_unauthenticated
    async def get(self) -> None:
        self.finish(json.dumps({"ok": True, "user": self.identity["user"]}))

    @allow_unauthenticated
    async def post(self) -> None:
        self.finish(json.dumps({"ok": True}))

    @allow_unauthenticated
    async def put(self) -> None:
        raise RuntimeError("an unexpected failure in the route")


class Forgetful(BearerAPIHandler):
    """A subclass that does not say how to check a token."""

    def initialize(self, *, token: str) -> None:
        pass

    @allow_unauthenticated
    async def get(self) -> None:
        self.finish(json.dumps({"ok": True}))


class NoIdentity(Forgetful):
    """A subclass whose check answers None instead of raising."""

    async def bearer_identity(self, token: str | None) -> Any:
        return None


@dataclass
class Routes:
    token: str
    echo: str
    forgetful: str
    no_identity: str
    jupyter_token: str


@pytest.fixture
def routes(jp_serverapp: Any, jp_base_url: str) -> Routes:
    token = secrets.token_urlsafe(24)
    base = url_path_join(jp_base_url, "bearer-test")
    urls = {name: url_path_join(base, name) for name in ("echo", "forgetful", "none")}
    kwargs = {"token": token}
    jp_serverapp.web_app.add_handlers(
        ".*$",
        [
            (urls["echo"], Echo, kwargs),
            (urls["forgetful"], Forgetful, kwargs),
            (urls["none"], NoIdentity, kwargs),
        ],
    )
    return Routes(
        token, urls["echo"], urls["forgetful"], urls["none"], jp_serverapp.identity_provider.token
    )


async def fetch(
    client: Any, url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> Any:
    return await client.fetch(
        url,
        method=method,
        headers=headers or {},
        body=b"{}" if method in ("POST", "PUT", "PATCH") else None,
        raise_error=False,
        follow_redirects=False,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def user_lookups(jp_serverapp: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of the requests for which Jupyter's identity provider was asked."""
    provider = jp_serverapp.identity_provider
    real = provider.get_user
    asked: list[str] = []

    def get_user(handler: Any) -> Any:
        asked.append(handler.request.path)
        return real(handler)

    monkeypatch.setattr(provider, "get_user", get_user)
    return asked


async def test_every_method_is_refused_without_a_valid_bearer_token(
    routes: Routes, http_server_client: Any, user_lookups: list[str]
) -> None:
    refused = [
        {},
        {"Authorization": f"token {routes.jupyter_token}"},  # Jupyter's login is not ours
        bearer(routes.jupyter_token),
        {"Authorization": f"Basic {routes.token}"},  # the right token, another scheme
        bearer("forged-" + secrets.token_urlsafe(16)),
    ]
    for headers in refused:
        for method in METHODS:  # also the ones Echo does not implement (no 405 leak)
            response = await fetch(http_server_client, routes.echo, method, headers)
            assert response.code == 401, (headers.keys(), method, response.code)
            assert response.headers["WWW-Authenticate"].startswith("Bearer realm=")
            if method != "HEAD":
                body = json.loads(response.body)
                assert body["error"] == "unauthorized" and "ok" not in body
    # a subclass that cannot check tokens refuses even the right one (fails closed)
    for url in (routes.forgetful, routes.no_identity):
        response = await fetch(http_server_client, url, "GET", bearer(routes.token))
        assert response.code == 401 and b'"ok"' not in response.body
    # the right token: served, and unimplemented methods are 405 only for it
    ok = await fetch(http_server_client, routes.echo, "GET", bearer(routes.token))
    assert ok.code == 200 and json.loads(ok.body) == {"ok": True, "user": "tester"}
    patch = await fetch(http_server_client, routes.echo, "PATCH", bearer(routes.token))
    assert patch.code == 405
    assert user_lookups == []  # Jupyter's identity provider was never asked


async def test_job_routes_do_not_ask_jupyters_identity_provider(
    jp_serverapp: Any, jp_base_url: str, http_server_client: Any, user_lookups: list[str]
) -> None:
    jobs = url_path_join(jp_base_url, "qsecure", "api", "jobs")
    for method, url in (("GET", url_path_join(jobs, "keys")), ("POST", jobs)):
        for headers in ({"Authorization": f"token {jp_serverapp.identity_provider.token}"}, {}):
            response = await fetch(http_server_client, url, method, headers)
            assert response.code == 401, (method, url, response.code)
    assert user_lookups == []
    # while Jupyter's own routes still ask it
    await fetch(http_server_client, url_path_join(jp_base_url, "api", "status"))
    assert user_lookups


async def test_an_api_response_keeps_the_security_headers_and_needs_no_xsrf(
    routes: Routes, http_server_client: Any, jp_serverapp: Any, jp_base_url: str
) -> None:
    # a POST with the token and no XSRF cookie or header: no cookie authenticates it
    response = await fetch(http_server_client, routes.echo, "POST", bearer(routes.token))
    assert response.code == 200
    for refused in (await fetch(http_server_client, routes.echo, "POST"), response):
        assert refused.headers["X-Content-Type-Options"] == "nosniff"
        csp = refused.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'self'" in csp
        assert refused.headers["Content-Type"].startswith("application/json")
        assert "Set-Cookie" not in refused.headers
        assert "Access-Control-Allow-Origin" not in refused.headers


async def test_host_and_cross_origin_checks_stay(
    routes: Routes, http_server_client: Any, jp_serverapp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(jp_serverapp.web_app.settings, "allow_remote_access", False)
    rebound = {**bearer(routes.token), "Host": "attacker.example"}
    response = await fetch(http_server_client, routes.echo, "GET", rebound)
    assert response.code == 403  # DNS rebinding: a name that is not this machine's
    cross = {**bearer(routes.token), "Origin": "http://attacker.example"}
    for method in ("GET", "POST"):
        response = await fetch(http_server_client, routes.echo, method, cross)
        assert response.code == 404 and b'"ok"' not in response.body
    port = http_server_client.get_url("/").split(":")[2].split("/")[0]
    same = {**bearer(routes.token), "Origin": f"http://127.0.0.1:{port}"}
    response = await fetch(http_server_client, routes.echo, "GET", same)
    assert response.code == 200


async def test_refusals_and_errors_are_logged_without_the_token(
    routes: Routes,
    http_server_client: Any,
    caplog: pytest.LogCaptureFixture,
    jp_logging_stream: Any,
) -> None:
    caplog.set_level(logging.INFO)
    forged = "forged-" + secrets.token_urlsafe(16)
    refused = await fetch(http_server_client, routes.echo, "GET", bearer(forged))
    assert refused.code == 401
    failed = await fetch(http_server_client, routes.echo, "PUT", bearer(routes.token))
    assert failed.code == 500
    body = json.loads(failed.body)
    assert body["message"] == "Unhandled error" and not body.get("traceback")
    text = caplog.text + jp_logging_stream.getvalue()
    assert "401 GET" in text and "500 PUT" in text  # Jupyter's access-log lines
    errors = [r for r in caplog.records if r.exc_info]
    assert errors and "an unexpected failure in the route" in caplog.text  # the traceback
    for token in (routes.token, forged):
        assert token not in text
        assert token.encode() not in refused.body + failed.body


def _count(handler: str, method: str, status: int) -> float:
    for metric in HTTP_REQUEST_DURATION_SECONDS.collect():
        for sample in metric.samples:
            labels = sample.labels
            if (
                sample.name.endswith("_count")
                and labels.get("handler") == handler
                and labels.get("method") == method
                and labels.get("status_code") == str(status)
            ):
                return float(sample.value)
    return 0.0


async def test_successes_are_counted_but_logged_only_at_debug(
    routes: Routes,
    http_server_client: Any,
    jp_serverapp: Any,
    caplog: pytest.LogCaptureFixture,
    jp_logging_stream: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    formatted: list[str] = []  # Jupyter's log_request formats every line it is given
    real_scrub = jupyter_log._scrub_uri

    def scrub(uri: str, *args: Any, **kwargs: Any) -> str:
        formatted.append(uri)
        return real_scrub(uri, *args, **kwargs)

    monkeypatch.setattr(jupyter_log, "_scrub_uri", scrub)
    # as Jupyter Server (traitlets) sets it up: the logger at DEBUG, its handlers at INFO
    monkeypatch.setattr(jp_serverapp.log, "level", logging.DEBUG)
    handlers: list[logging.Handler] = []
    logger: logging.Logger | None = jp_serverapp.log
    while logger is not None:
        handlers += logger.handlers
        logger = logger.parent if logger.propagate else None
    assert handlers
    for log_handler in handlers:
        monkeypatch.setattr(log_handler, "level", logging.INFO)
    handler = f"{Echo.__module__}.Echo"
    before = _count(handler, "GET", 200)
    response = await fetch(http_server_client, routes.echo, "GET", bearer(routes.token))
    assert response.code == 200
    assert formatted == []  # no line formatted for a handler that drops it
    assert _count(handler, "GET", 200) == before + 1  # the request metrics still see it
    refused = await fetch(http_server_client, routes.echo, "GET")
    assert refused.code == 401 and routes.echo in formatted  # refusals: logged as before
    for log_handler in handlers:  # a handler that writes DEBUG: successes logged again
        monkeypatch.setattr(log_handler, "level", logging.DEBUG)
    response = await fetch(http_server_client, routes.echo, "GET", bearer(routes.token))
    text = caplog.text + jp_logging_stream.getvalue()
    assert "200 GET" in text and routes.token not in text
    assert _count(handler, "GET", 200) == before + 2
