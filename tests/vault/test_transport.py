"""The pooled transport (urllib3) the kernel uses for a plain-HTTP job broker."""

from __future__ import annotations

import gc
import json
import socket
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from jupyter_qsecure.testing.ports import free_loopback_port
from jupyter_qsecure.vault.transport import PooledSession, session_for


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    posts: list[tuple[int, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).posts.append((self.client_address[1], body))
        reply = json.dumps({"echo": json.loads(body), "auth": self.headers["Authorization"]})
        data = reply.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the tests drop connections on purpose


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    _Handler.posts = []
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _url(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/qsecure/api/jobs?x=1"


def _post(session: PooledSession, httpd: ThreadingHTTPServer, n: int) -> Any:
    return session.request(
        "POST",
        _url(httpd),
        data=json.dumps({"n": n}).encode(),
        headers={"Authorization": "Bearer t", "Content-Type": "application/json"},
        timeout=(5.0, 30.0),
    )


def _idle(session: PooledSession, httpd: ThreadingHTTPServer) -> list[Any]:
    pool = session._pool.connection_from_url(_url(httpd))
    return [conn for conn in list(pool.pool.queue) if conn is not None]


def test_requests_reuse_one_connection(server: ThreadingHTTPServer) -> None:
    session = PooledSession()
    replies = [_post(session, server, n) for n in range(3)]
    assert [r.json()["echo"] for r in replies] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert replies[0].status_code == 200 and replies[0].headers["Content-Type"]
    assert replies[0].text.startswith("{") and replies[0].reason == "OK"
    assert len({port for port, _ in _Handler.posts}) == 1  # one client port: one connection
    [conn] = _idle(session, server)
    assert conn.sock is not None  # requests and answers are small: no Nagle delay
    assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    session.close()


def test_a_session_dropped_without_close_closes_its_connections(
    server: ThreadingHTTPServer,
) -> None:
    """An owner that never calls close() (a signer, a kernel) leaks no socket."""
    session = PooledSession()
    _post(session, server, 1)
    [conn] = _idle(session, server)
    sock = conn.sock
    assert sock is not None
    del conn
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del session
        gc.collect()
    assert sock.fileno() == -1, "the idle connection is still open"
    assert not [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_a_connection_the_server_closed_is_replaced_not_retried(
    server: ThreadingHTTPServer,
) -> None:
    session = PooledSession()
    _post(session, server, 1)
    [conn] = _idle(session, server)
    assert conn.sock is not None
    conn.sock.shutdown(socket.SHUT_RDWR)  # as if the server had closed the idle connection
    assert _post(session, server, 2).json()["echo"] == {"n": 2}
    assert [json.loads(body) for _, body in _Handler.posts] == [{"n": 1}, {"n": 2}]  # once each
    session.close()


def test_failures_raise_requests_exception_classes() -> None:
    session = PooledSession()
    refused = f"http://127.0.0.1:{free_loopback_port()}/x"  # nothing listens there
    with pytest.raises(requests.ConnectionError) as info:
        session.request("POST", refused, data=b"{}", timeout=(1.0, 1.0))
    assert not isinstance(info.value, requests.Timeout)  # refused is not a timeout
    with socket.socket() as silent:  # accepts (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/x"
        with pytest.raises(requests.ReadTimeout):
            session.request("GET", url, timeout=(1.0, 0.2))


def test_session_for_http_and_https_brokers() -> None:
    assert isinstance(session_for("http://127.0.0.1:8888/"), PooledSession)
    https = session_for("https://hub.example/")
    assert isinstance(https, requests.Session) and https.trust_env is False
