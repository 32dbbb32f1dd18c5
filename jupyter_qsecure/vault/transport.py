"""Pooled keep-alive HTTP for the two hot paths, on urllib3's connection pools.

Two calls happen once per job: the kernel's request to the job broker, and the
broker's transit signature from OpenBao. Through requests (and hvac) each costs about
1 ms of client CPU (hooks, adapters, environment merging); urllib3's ``PoolManager``
(what requests runs on) does the same request for about half of that. urllib3 keeps the
connections alive, drops the ones the server closed before reuse, does TLS, sets
``TCP_NODELAY`` and classifies failures; this module only shapes the calls, and
raises requests' exception classes for urllib3's (as requests' own adapter does), so
callers handle both transports alike.

Not done on purpose: retries (``retries=False``: a submission is not idempotent; a
connection found closed before reuse is replaced, not retried), redirects (neither
server redirects) and proxies (bearer tokens must not travel through one: callers
with a proxy keep requests, see :func:`session_for` and
:attr:`VaultConnection.direct <jupyter_qsecure.vault.client.VaultConnection.direct>`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import urllib3

if TYPE_CHECKING:
    from .client import VaultConnection

__all__ = [
    "PooledSession",
    "Response",
    "VaultJSON",
    "pool_manager",
    "requests_error",
    "session_for",
]


def requests_error(exc: urllib3.exceptions.HTTPError) -> Exception:
    """The requests exception requests raises for urllib3's ``exc`` (urllib3 2 makes
    NewConnectionError a ConnectTimeoutError: a refused connection is not a timeout)."""
    import requests

    errors = urllib3.exceptions
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, errors.SSLError):
        return requests.exceptions.SSLError(message)
    if isinstance(exc, (errors.NewConnectionError, errors.ProtocolError)):
        return requests.exceptions.ConnectionError(message)
    if isinstance(exc, errors.ConnectTimeoutError):
        return requests.exceptions.ConnectTimeout(message)
    if isinstance(exc, errors.TimeoutError):
        return requests.exceptions.ReadTimeout(message)
    return requests.exceptions.RequestException(message)


def pool_manager(
    *, verify: bool | str = True, cert: str | tuple[str, str] | None = None
) -> urllib3.PoolManager:
    """A pool manager without retries or redirects, verifying TLS as ``verify`` says
    (as requests takes it: True, False, or a CA bundle file or folder)."""
    tls: dict[str, Any] = {}
    if verify is False:
        tls["cert_reqs"] = "CERT_NONE"
    else:
        tls["cert_reqs"] = "CERT_REQUIRED"
        if isinstance(verify, str):
            tls["ca_cert_dir" if os.path.isdir(verify) else "ca_certs"] = verify
        else:
            import certifi  # the bundle requests verifies with

            tls["ca_certs"] = certifi.where()
    if isinstance(cert, str):
        tls["cert_file"] = cert
    elif cert:
        tls["cert_file"], tls["key_file"] = cert
    # up to 10 idle connections per host (as requests keeps): concurrent signers each
    # keep theirs instead of opening and discarding one per call
    return urllib3.PoolManager(retries=False, maxsize=10, **tls)


@dataclass(frozen=True)
class Response:
    """The parts of ``requests.Response`` the job broker client reads."""

    status_code: int
    reason: str
    content: bytes
    headers: Any

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class PooledSession:
    """``request()`` as the job broker client calls it, over a urllib3 pool; failures
    raise requests' exception classes (:func:`requests_error`)."""

    def __init__(self, pool: urllib3.PoolManager | None = None) -> None:
        self._pool = pool or pool_manager()

    def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: tuple[float, float] = (5.0, 60.0),
        allow_redirects: bool = False,
    ) -> Response:
        connect, read = timeout
        try:
            reply = self._pool.request(
                method,
                url,
                body=data,
                headers=headers or {},
                timeout=urllib3.Timeout(connect=connect, read=read),
                redirect=allow_redirects,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise requests_error(exc) from exc
        return Response(reply.status, reply.reason or "", reply.data, reply.headers)

    def close(self) -> None:
        self._pool.clear()


def session_for(base_url: str) -> Any:
    """The session a kernel keeps for its job broker at ``base_url``: pooled urllib3
    for plain http, a requests session (no proxies from the environment, which must
    not see the bearer token) otherwise."""
    if urllib3.util.parse_url(base_url).scheme == "http":
        return PooledSession()
    import requests

    session = requests.Session()
    session.trust_env = False
    return session


class VaultJSON:
    """hvac-compatible JSON POSTs to OpenBao/Vault over a urllib3 pool.

    Address, namespace and TLS come from the :class:`VaultConnection`; the token is
    passed on each call (so re-logins are followed). HTTP errors become hvac's
    exceptions (``hvac.utils.raise_for_error``), network failures requests' (as through
    hvac). Only for
    direct connections (:attr:`VaultConnection.direct`).
    """

    def __init__(self, connection: VaultConnection) -> None:
        if not connection.direct:
            raise ValueError(f"{connection.addr} is reached through a proxy: use hvac")
        self.connection = connection
        self._base = connection.addr.rstrip("/") + "/v1/"
        timeout = connection.timeout
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        self._timeout = urllib3.Timeout(connect=connect, read=read)
        self._pool = pool_manager(verify=connection.verify, cert=connection.cert)

    def post(self, path: str, body: dict[str, Any], *, token: str | None) -> dict[str, Any]:
        """POST ``body`` to ``/v1/<path>``; the decoded JSON reply."""
        import hvac.utils

        url = self._base + path.lstrip("/")
        headers = {"Content-Type": "application/json", "X-Vault-Request": "true"}
        if token:
            headers["X-Vault-Token"] = token
        if self.connection.namespace:
            headers["X-Vault-Namespace"] = self.connection.namespace
        try:
            reply = self._pool.request(
                "POST",
                url,
                body=json.dumps(body).encode("utf-8"),
                headers=headers,
                timeout=self._timeout,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise requests_error(exc) from exc
        text = reply.data.decode("utf-8", "replace")
        if reply.status >= 400:
            try:
                errors = json.loads(text).get("errors")
            except (ValueError, AttributeError):
                errors = None
            hvac.utils.raise_for_error("post", url, reply.status, text=text, errors=errors)
        try:
            decoded = json.loads(text) if text else {}
        except ValueError:
            import requests

            raise requests.exceptions.InvalidJSONError(
                f"OpenBao/Vault answered {url} with a body that is not JSON"
            ) from None
        return decoded if isinstance(decoded, dict) else {}

    def close(self) -> None:
        self._pool.clear()
