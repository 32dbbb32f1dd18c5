"""POST JSON to OpenBao/Vault over one kept-alive ``http.client`` connection.

Used only for transit signing, which the job broker does for every job: through hvac
and requests a call costs about 0.8 ms of client CPU (request preparation, hooks,
adapters, urllib3 pools) and about 1 ms more latency than the same request over a plain
kept-alive connection. Everything else about the call stays hvac's: the address,
token, namespace, TLS settings and timeout are read from the ``hvac.Client`` on every
call (so re-logins are followed), and HTTP errors become hvac's exceptions
(``hvac.utils.raise_for_error``) and network failures requests' exceptions, so callers
map them exactly as before. Clients this transport cannot reproduce faithfully (an HTTP
proxy, a Unix socket, an unknown scheme) keep using hvac: see :func:`usable_for`.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

import hvac.utils
import requests

__all__ = ["KeepAliveJSON", "usable_for"]


def usable_for(client: Any) -> bool:
    """True when ``client`` talks straight to an http(s) address with no proxy."""
    adapter = getattr(client, "adapter", None)
    base = getattr(adapter, "base_uri", None)
    kwargs = getattr(adapter, "_kwargs", None)
    if not isinstance(base, str) or not isinstance(kwargs, dict):
        return False
    if kwargs.get("proxies") or getattr(getattr(adapter, "session", None), "proxies", None):
        return False
    return urlsplit(base).scheme in ("http", "https")


class KeepAliveJSON:
    """A small pool of kept-alive connections: one per concurrent caller, reused."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._idle: list[tuple[tuple[Any, ...], http.client.HTTPConnection]] = []

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``/v1/<path>``; the decoded JSON reply."""
        adapter = self._client.adapter
        url = f"{adapter.base_uri.rstrip('/')}/v1/{path.lstrip('/')}"
        headers = {"Content-Type": "application/json", "X-Vault-Request": "true"}
        if adapter.token:
            headers["X-Vault-Token"] = adapter.token
        if adapter.namespace:
            headers["X-Vault-Namespace"] = adapter.namespace
        payload = json.dumps(body).encode("utf-8")
        status, text = self._exchange(url, payload, headers)
        if status >= 400:
            try:
                errors = json.loads(text).get("errors")
            except (ValueError, AttributeError):
                errors = None
            hvac.utils.raise_for_error("post", url, status, text=text, errors=errors)
        try:
            reply = json.loads(text) if text else {}
        except ValueError:
            raise requests.exceptions.InvalidJSONError(
                f"OpenBao/Vault answered {url} with a body that is not JSON"
            ) from None
        return reply if isinstance(reply, dict) else {}

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for _, conn in idle:
            conn.close()

    # ---- internals ---------------------------------------------------------------------
    def _exchange(self, url: str, payload: bytes, headers: dict[str, str]) -> tuple[int, str]:
        parts = urlsplit(url)
        for attempt in (1, 2):
            key, conn = self._checkout(parts.scheme, parts.hostname or "", parts.port)
            try:
                conn.request("POST", parts.path, body=payload, headers=headers)
                response = conn.getresponse()
                text = response.read().decode("utf-8", "replace")
            except TimeoutError as exc:
                conn.close()
                raise requests.exceptions.Timeout(f"no answer from {parts.netloc}") from exc
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                stale = isinstance(
                    exc,
                    (
                        http.client.RemoteDisconnected,
                        BrokenPipeError,
                        ConnectionResetError,
                        http.client.CannotSendRequest,
                    ),
                )
                if attempt == 1 and stale:  # the server closed an idle connection: reopen
                    continue
                raise requests.exceptions.ConnectionError(
                    f"cannot reach {parts.netloc}: {type(exc).__name__}"
                ) from exc
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
            else:
                with self._lock:
                    self._idle.append((key, conn))
            return response.status, text
        raise AssertionError("unreachable")

    def _checkout(
        self, scheme: str, host: str, port: int | None
    ) -> tuple[tuple[Any, ...], http.client.HTTPConnection]:
        kwargs = self._client.adapter._kwargs
        timeout = kwargs.get("timeout") or 30
        verify, cert = kwargs.get("verify", True), kwargs.get("cert")
        key = (scheme, host, port, timeout, verify, cert)
        stale: list[http.client.HTTPConnection] = []
        found: http.client.HTTPConnection | None = None
        with self._lock:
            while self._idle:
                idle_key, conn = self._idle.pop()
                if idle_key == key:
                    found = conn
                    break
                stale.append(conn)  # settings changed: not reused
        for conn in stale:
            conn.close()
        if found is not None:
            return key, found
        if scheme == "https":
            context = ssl.create_default_context(
                cafile=verify if isinstance(verify, str) and not _is_dir(verify) else None,
                capath=verify if isinstance(verify, str) and _is_dir(verify) else None,
            )
            if verify is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if cert:
                certfile, keyfile = cert if isinstance(cert, (tuple, list)) else (cert, None)
                context.load_cert_chain(certfile, keyfile)
            return key, http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        return key, http.client.HTTPConnection(host, port, timeout=timeout)


def _is_dir(path: str) -> bool:
    import os

    return os.path.isdir(path)
