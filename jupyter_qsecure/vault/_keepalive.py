"""POST JSON to OpenBao/Vault over kept-alive connections (:mod:`jupyter_qsecure._http`).

Used only for transit signing, which the job broker does for every job: through hvac
and requests a call costs about 0.8 ms of client CPU and about 1 ms more latency than
the same request over a kept-alive connection. Everything else about the call stays
hvac's: the address, token, namespace, TLS settings and timeout are read from the
``hvac.Client`` on every call (so re-logins are followed), and HTTP errors become hvac's
exceptions (``hvac.utils.raise_for_error``) and network failures requests' exceptions,
so callers map them exactly as before. Clients this transport cannot reproduce
faithfully (an HTTP proxy, a Unix socket, an unknown scheme) keep using hvac: see
:func:`usable_for`.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

import hvac.utils
import requests

from .._http import KeepAliveSession

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
    """hvac-compatible JSON POSTs over a :class:`KeepAliveSession` (rebuilt when the
    client's TLS settings change)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._session: KeepAliveSession | None = None
        self._tls: tuple[Any, Any] | None = None

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``/v1/<path>``; the decoded JSON reply."""
        adapter = self._client.adapter
        url = f"{adapter.base_uri.rstrip('/')}/v1/{path.lstrip('/')}"
        headers = {"Content-Type": "application/json", "X-Vault-Request": "true"}
        if adapter.token:
            headers["X-Vault-Token"] = adapter.token
        if adapter.namespace:
            headers["X-Vault-Namespace"] = adapter.namespace
        timeout = float(adapter._kwargs.get("timeout") or 30)
        response = self._session_for(adapter._kwargs).request(
            "POST",
            url,
            data=json.dumps(body).encode("utf-8"),
            headers=headers,
            timeout=(timeout, timeout),
        )
        text = response.text
        if response.status_code >= 400:
            try:
                errors = json.loads(text).get("errors")
            except (ValueError, AttributeError):
                errors = None
            hvac.utils.raise_for_error("post", url, response.status_code, text=text, errors=errors)
        try:
            reply = json.loads(text) if text else {}
        except ValueError:
            raise requests.exceptions.InvalidJSONError(
                f"OpenBao/Vault answered {url} with a body that is not JSON"
            ) from None
        return reply if isinstance(reply, dict) else {}

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
            self._session = None

    def _session_for(self, kwargs: dict[str, Any]) -> KeepAliveSession:
        tls = (kwargs.get("verify", True), kwargs.get("cert"))
        with self._lock:
            if self._session is None or self._tls != tls:
                if self._session is not None:
                    self._session.close()
                self._session, self._tls = KeepAliveSession(_ssl_context(*tls)), tls
            return self._session


def _ssl_context(verify: Any, cert: Any) -> ssl.SSLContext:
    """The TLS context requests would use for hvac's ``verify`` and ``cert``."""
    as_path = isinstance(verify, str)
    context = ssl.create_default_context(
        cafile=verify if as_path and not os.path.isdir(verify) else None,
        capath=verify if as_path and os.path.isdir(verify) else None,
    )
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert:
        certfile, keyfile = cert if isinstance(cert, (tuple, list)) else (cert, None)
        context.load_cert_chain(certfile, keyfile)
    return context
