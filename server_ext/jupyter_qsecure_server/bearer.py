"""A base for REST routes that authenticate ONLY with a bearer token of ours.

The job broker's routes are called by kernels with the kernel's short-lived token
(``Authorization: Bearer``), never by a browser with Jupyter's login; the identity comes
from that token alone. Jupyter Server's own machinery for its users (the
``IdentityProvider``'s cookie and token checks, the XSRF check, its access-log line) costs
the event loop about as much per request as the rest of the request's handling, and
decides nothing here. :class:`BearerAPIHandler` therefore replaces
``JupyterHandler.prepare`` with:

1. the ``Host`` check against DNS rebinding (``JupyterHandler.check_host``, 403);
2. CORS headers only as the operator configured them (``allow_origin`` or
   ``allow_origin_pat``; never "any origin because a Jupyter token was sent"), and the
   cross-origin check of Jupyter's API handlers (``check_origin``, 404);
3. the bearer check of the subclass (:meth:`BearerAPIHandler.bearer_identity`), for EVERY
   method but ``OPTIONS`` (a CORS preflight, which carries no credentials) -- also the ones
   a handler does not implement, so a method added later cannot be reached without a
   valid token. Fails closed: anything but an identity (an error, ``None``) is refused.

Jupyter's user is never asked for: ``current_user`` is ``None`` on these routes (no
cookie is read, so cross-site request forgery does not apply and the XSRF check is off on
purpose), and no login redirect or Jupyter token can reach them. Successful calls are
not formatted into Jupyter's access log unless a log handler writes DEBUG records (the
request metrics are still recorded); every refusal and error is logged by Jupyter as before. The
token is only in a request header, which neither log line includes.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.log import log_request
from jupyter_server.prometheus.log_functions import prometheus_log_method
from tornado import web

from jupyter_qsecure.jobs.service import JobError, Unauthorized

__all__ = ["BearerAPIHandler", "bearer_token", "writes_debug"]


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header value; None otherwise."""
    scheme, _, value = header.partition(" ")
    value = value.strip()
    return value if value and scheme.lower() == "bearer" else None


def writes_debug(logger: logging.Logger) -> bool:
    """Whether a DEBUG record of ``logger`` would reach a handler that lets it through.

    ``isEnabledFor(DEBUG)`` alone does not tell: traitlets applications (Jupyter Server)
    set their logger to DEBUG and filter by ``log_level`` on the handler, so every debug
    call builds its record, and the handler then drops it.
    """
    if not logger.isEnabledFor(logging.DEBUG):
        return False
    current: logging.Logger | None = logger
    while current is not None:
        if any(handler.level <= logging.DEBUG for handler in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False  # no handler at all: logging's last resort writes warnings only


class BearerAPIHandler(APIHandler):
    """JSON routes authenticated by our bearer token alone (see the module docstring).

    Subclasses implement :meth:`bearer_identity`; after ``prepare`` the caller's identity
    is :attr:`identity` and the token :attr:`token`. Errors of the core
    (:class:`~jupyter_qsecure.jobs.service.JobError`) become the routes' JSON error body
    with :meth:`fail`.
    """

    auth_resource = "qsecure"
    #: ``realm`` of the ``WWW-Authenticate`` header of a 401.
    bearer_realm = "jupyter-qsecure"

    identity: Any = None
    token: str | None = None

    async def bearer_identity(self, token: str | None) -> Any:
        """Who holds ``token``: an identity, or raise a :class:`JobError` (401)."""
        raise NotImplementedError  # fail closed: a subclass that forgets this refuses all

    def get_current_user(self) -> Any:
        """Jupyter's user is never consulted on these routes (see the module docstring)."""
        return None

    def check_xsrf_cookie(self) -> None:
        """No cookie authenticates these routes, so there is no cross-site forgery to stop."""
        return None

    async def prepare(self) -> None:  # type: ignore[override]
        # what JupyterHandler.prepare would have set: no Jupyter user on these routes
        self.current_user = self._jupyter_current_user = None
        if not self.check_host():
            raise web.HTTPError(403)
        self.set_cors_headers()
        if not self.check_origin():
            raise web.HTTPError(404)
        if self.request.method == "OPTIONS":
            return  # a CORS preflight: APIHandler.options answers it, without credentials
        self.token = bearer_token(self.request.headers.get("Authorization", ""))
        try:
            identity = await self.bearer_identity(self.token)
        except JobError as exc:
            self.fail(exc)
            return
        except NotImplementedError:
            identity = None
        if identity is None:  # fail closed
            self.fail(Unauthorized("this route cannot check a kernel token"))
            return
        self.identity = identity

    def fail(self, exc: JobError) -> None:
        """Answer with ``exc`` as the JSON error body (and finish the request)."""
        self.set_status(exc.status)
        if exc.status == 401:
            self.set_header("WWW-Authenticate", f'Bearer realm="{self.bearer_realm}"')
        body: dict[str, Any] = {"error": type(exc).__name__.lower(), "message": exc.message}
        if exc.hint:
            body["hint"] = exc.hint
        body.update(exc.payload)
        if "retry_after" in exc.payload:
            self.set_header("Retry-After", str(exc.payload["retry_after"]))
        self.finish(json.dumps(body))

    def _log(self) -> None:
        """Jupyter's access-log line (``jupyter_server.log.log_request``) only where it is
        written: for refusals and errors (warning/error level) or with DEBUG on. A success
        is logged at DEBUG, and formatting that line (and its log record: Jupyter's logger
        is at DEBUG, its handler filters) costs the event loop on every call even when
        nothing is written. The request metrics are recorded either way."""
        log_function = self.settings.get("log_function")
        if (
            isinstance(log_function, functools.partial)
            and log_function.func is log_request  # Jupyter's, not an operator's own
            and self.get_status() < 400
            and not writes_debug(self.log)
        ):
            if log_function.keywords.get("record_prometheus_metrics", True):
                prometheus_log_method(self)
            return
        super()._log()
