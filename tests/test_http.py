"""KeepAliveSession: the kernel's kept-alive transport to a plain-HTTP broker."""

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

from jupyter_qsecure._http import KeepAliveSession, session_for


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


def _post(session: KeepAliveSession, httpd: ThreadingHTTPServer, n: int) -> Any:
    url = f"http://127.0.0.1:{httpd.server_address[1]}/qsecure/api/jobs?x=1"
    return session.request(
        "POST",
        url,
        data=json.dumps({"n": n}).encode(),
        headers={"Authorization": "Bearer t", "Content-Type": "application/json"},
        timeout=(5.0, 30.0),
    )


def test_requests_reuse_one_connection(server: ThreadingHTTPServer) -> None:
    session = KeepAliveSession()
    replies = [_post(session, server, n) for n in range(3)]
    assert [r.json()["echo"] for r in replies] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert replies[0].status_code == 200 and replies[0].headers["Content-Type"]
    assert len({port for port, _ in _Handler.posts}) == 1  # one client port: one connection
    [(_, conn)] = session._idle
    assert conn.sock is not None  # requests and answers are small: no Nagle delay
    assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    session.close()


def test_a_session_dropped_without_close_closes_its_connections(
    server: ThreadingHTTPServer,
) -> None:
    """An owner that never calls close() (a signer, a kernel) leaks no socket."""
    session = KeepAliveSession()
    _post(session, server, 1)
    [(_, conn)] = session._idle
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
    session = KeepAliveSession()
    _post(session, server, 1)
    [(_, conn)] = session._idle
    assert conn.sock is not None
    conn.sock.shutdown(2)  # as if the server had closed the idle connection
    assert _post(session, server, 2).json()["echo"] == {"n": 2}
    assert [json.loads(body) for _, body in _Handler.posts] == [{"n": 1}, {"n": 2}]  # once each
    session.close()


def test_unreachable_and_https_brokers() -> None:
    session = KeepAliveSession()
    with pytest.raises(requests.ConnectionError):
        session.request("POST", "http://127.0.0.1:9/x", data=b"{}", timeout=(1.0, 1.0))
    with pytest.raises(requests.exceptions.InvalidSchema):
        session.request("GET", "https://127.0.0.1:9/x")
    assert isinstance(session_for("http://127.0.0.1:8888/"), KeepAliveSession)
    https = session_for("https://hub.example/")
    assert isinstance(https, requests.Session) and https.trust_env is False
