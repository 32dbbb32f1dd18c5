"""A minimal stand-in for ``requests.Session.request`` over kept-alive connections.

Two hot paths send one small request per job: the kernel to the job broker, and the
broker to OpenBao transit. Through requests each call costs about 0.6-0.8 ms of CPU
(hooks, adapters, urllib3 pools, environment merging) against about 0.15 ms for
``http.client`` on a kept-alive connection, on cores the kernel, the broker and OpenBao
share. :class:`KeepAliveSession` implements the one ``request`` method both callers use
and raises requests' exception types, so their error handling stays as it was. It speaks
HTTPS only with an ``ssl.SSLContext`` the caller built; the kernel keeps requests (and
its CA handling) for HTTPS brokers (see :func:`session_for`).

Not supported on purpose: redirects (neither server redirects), proxies (bearer tokens
must not travel through one; callers with a proxy keep requests), retries (a submission
is not idempotent; an idle connection the server closed is detected before reuse).
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import ssl
import threading
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

__all__ = ["KeepAliveSession", "session_for"]


def session_for(base_url: str) -> Any:
    """The session a kernel keeps for ``base_url``: kept-alive http.client for http,
    a requests session (certificate handling included) otherwise."""
    if urlsplit(base_url).scheme == "http":
        return KeepAliveSession()
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment sees the bearer token
    return session


@dataclass(frozen=True)
class _Response:
    """The parts of ``requests.Response`` the broker client reads."""

    status_code: int
    reason: str
    content: bytes
    headers: Any

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class KeepAliveSession:
    """``request()`` over reused ``http.client`` connections (one per concurrent call);
    ``https://`` URLs need ``ssl_context``."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._idle: list[tuple[tuple[str, str, int | None], http.client.HTTPConnection]] = []
        # As urllib3's connection pool does: the idle connections are closed when the
        # session is collected, so an owner that never calls close() leaks no socket.
        weakref.finalize(self, _close_all, self._idle, self._lock)

    def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: tuple[float, float] = (5.0, 60.0),
        allow_redirects: bool = False,
    ) -> _Response:
        parts = urlsplit(url)
        if parts.scheme != "http" and not (parts.scheme == "https" and self._ssl_context):
            raise requests.exceptions.InvalidSchema(
                f"KeepAliveSession speaks http (and https with an SSL context) only: {url}"
            )
        connect_timeout, read_timeout = timeout
        key = (parts.scheme, parts.hostname or "", parts.port)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn = self._checkout(key)
        try:
            if conn is None:
                conn = self._connect(key, connect_timeout)
            assert conn.sock is not None
            conn.sock.settimeout(read_timeout)
            conn.request(method, path, body=data, headers=headers or {})
            response = conn.getresponse()
            content = response.read()
        except TimeoutError as exc:
            if conn is not None:
                conn.close()
            raise requests.exceptions.Timeout(f"no answer from {parts.netloc}") from exc
        except (http.client.HTTPException, OSError) as exc:
            if conn is not None:
                conn.close()
            raise requests.exceptions.ConnectionError(
                f"cannot reach {parts.netloc}: {type(exc).__name__}"
            ) from exc
        if response.will_close:
            conn.close()
        else:
            with self._lock:
                self._idle.append((key, conn))
        return _Response(response.status, response.reason, content, response.headers)

    def close(self) -> None:
        _close_all(self._idle, self._lock)

    def _connect(
        self, key: tuple[str, str, int | None], timeout: float
    ) -> http.client.HTTPConnection:
        scheme, host, port = key
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=self._ssl_context
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.connect()
        # As urllib3 (so requests) does: http.client writes the headers and the body in
        # two sends, and with Nagle's algorithm the body could wait for the ACK of the
        # headers (a delayed ACK) on every request.
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _checkout(self, key: tuple[str, str, int | None]) -> http.client.HTTPConnection | None:
        """An idle connection to ``key`` the server has not closed, or None."""
        while True:
            with self._lock:
                index = next((i for i, (k, _) in enumerate(self._idle) if k == key), None)
                if index is None:
                    return None
                _, conn = self._idle.pop(index)
            sock = conn.sock
            if sock is not None:
                readable, _, _ = select.select([sock], [], [], 0)
                if not readable:  # nothing to read: neither EOF nor stray bytes
                    return conn
            conn.close()  # closed (or misbehaving) on the server's side: open a new one


def _close_all(
    idle: list[tuple[tuple[str, str, int | None], http.client.HTTPConnection]],
    lock: threading.Lock,
) -> None:
    """Close and forget the idle connections (the list is emptied in place)."""
    with lock:
        connections = [conn for _, conn in idle]
        idle.clear()
    for conn in connections:
        conn.close()
