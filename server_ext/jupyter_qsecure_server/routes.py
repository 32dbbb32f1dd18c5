"""REST routes for people (the JupyterLab extension): one ``APIHandler`` per route, every
method ``@web.authenticated`` + ``@authorized`` (resource ``qsecure``).

A thin layer over the core (``jupyter_qsecure.vault.secret_store``, ``.vault.overview``,
``.jobs.provenance``, the ledger, the save gate); errors become one JSON shape,
``{"error": CODE, "message": …, "hint": …}``, in :meth:`QSecureHandler.write_error`.
The contract, with every field, is ``docs/rest-api.md``. No response, log line or error
holds a secret value: ``PUT secrets/NAME`` takes one and answers with metadata only.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from jupyter_qsecure import __version__
from jupyter_qsecure.config import QSecure
from jupyter_qsecure.errors import QSecureError
from jupyter_qsecure.identity import user_actor
from jupyter_qsecure.jobs.provenance import JOB_ID, job_provenance, user_jobs
from jupyter_qsecure.ledger import Ledger
from jupyter_qsecure.ledger.keys import keyring_from_settings
from jupyter_qsecure.vault.broker import CredentialBroker
from jupyter_qsecure.vault.overview import kernel_status, secrets_overview
from jupyter_qsecure.vault.secret_store import (
    InvalidSecret,
    SecretStore,
    SecretStoreError,
    StoredSecret,
    StoreForbidden,
    check_name,
    check_value,
    location,
)
from jupyter_qsecure.vault.source import CredentialSource

from .identity import stable_user
from .save_gate import OVERRIDE_REASON_MAX, OVERRIDE_REASON_MIN
from .services import Services

T = TypeVar("T")

AUTH_RESOURCE = "qsecure"
#: Registry key of values stored through ``PUT secrets/NAME`` before a kernel holds them:
#: masked in output and matched by the save gate from the moment they are stored.
STORED_VALUES = "(stored)"
#: What this server offers beyond the base routes (``GET status``, ``features``): the
#: front end shows a panel only when its routes are listed.
FEATURES = ("review",)
#: Largest JSON body a user route reads (a notebook for save-anyway may be large).
MAX_BODY = 64 * 1024 * 1024


class ApiError(web.HTTPError):
    """An error of the contract: ``status``, ``code``, a message and an optional hint."""

    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(status, message.replace("%", "%%"))
        self.code = code
        self.message = message
        self.hint = hint


def _from_core(exc: QSecureError) -> ApiError:
    status = getattr(exc, "status", 500)
    code = getattr(exc, "code", "error")
    return ApiError(status, code, exc.message, exc.hint)


class QSecureHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    def initialize(self, *, services: Services) -> None:
        """``services``: the route kwarg :func:`setup_route_handlers` passes."""
        self.services = services

    @property
    def ledger(self) -> Ledger:
        return self.services.ledger

    @property
    def qsecure(self) -> QSecure:
        return self.services.settings

    @property
    def user(self) -> str:
        return stable_user(self)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            self.set_header("Content-Type", "application/json")
            body: dict[str, Any] = {"error": exc.code, "message": exc.message}
            if exc.hint:
                body["hint"] = exc.hint
            self.finish(json.dumps(body))
            return
        super().write_error(status_code, **kwargs)

    def json_body(self) -> dict[str, Any]:
        """The body as a JSON object; 400 (naming the problem) otherwise."""
        if len(self.request.body or b"") > MAX_BODY:
            raise ApiError(413, "too_large", f"the request body is over {MAX_BODY} bytes")
        try:
            body = json.loads(self.request.body or b"{}")
        except (ValueError, RecursionError):
            raise ApiError(400, "bad_request", "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "bad_request", "the request body must be a JSON object")
        return body

    def send(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))

    def broker(self) -> CredentialSource | None:
        return self.services.broker


def _kernels_of(handler: QSecureHandler) -> dict[str, str | None]:
    """Running kernels: id -> kernelspec name."""
    manager = handler.kernel_manager
    found: dict[str, str | None] = {}
    for kernel_id in manager.list_kernel_ids():
        try:
            found[kernel_id] = manager.get_kernel(kernel_id).kernel_name
        except KeyError:  # shut down meanwhile
            continue
    return found


class StatusHandler(QSecureHandler):
    """GET /qsecure/api/status: identity, environment, OpenBao, credential time left."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        settings = self.qsecure
        ledger = self.ledger
        openbao = await asyncio.to_thread(self.services.openbao_health.check)
        broker = self.broker()
        leases = broker.kernel_leases() if broker is not None else {}
        wanted = set(self.get_arguments("kernel"))
        now = time.time()
        kernels = [
            kernel_status(kernel_id, name, leases.get(kernel_id), now)
            for kernel_id, name in sorted(_kernels_of(self).items())
            if not wanted or kernel_id in wanted
        ]
        checkpoints = ledger.checkpoints()
        self.send(
            {
                "version": __version__,
                "features": list(FEATURES),
                "user": self.user,
                "environment": settings.environment,
                "save_mode": settings.save_mode,
                "allow_override": settings.override_allowed(),
                "openbao": openbao,
                "kernels": kernels,
                "ledger": {
                    "url": ledger.store.display_url,
                    "entries": ledger.size(),
                    "checkpoint": checkpoints[-1].model_dump() if checkpoints else None,
                },
            }
        )


# ---- secrets ------------------------------------------------------------------------------
def _no_openbao() -> ApiError:
    return ApiError(
        503,
        "openbao_unavailable",
        "this server has no OpenBao: secrets cannot be stored or handed to kernels",
        hint="start JupyterLab with `jupyter qsecure lab` (it runs a local OpenBao), or give "
        "the server BAO_ADDR and BAO_TOKEN",
    )


class SecretsHandler(QSecureHandler):
    """GET /qsecure/api/secrets: the environment's names and their leases."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        store = self.services.secret_store
        broker = self.services.openbao_broker
        if store is None or broker is None:
            raise _no_openbao()
        writable = True
        try:
            stored: list[StoredSecret] = await asyncio.to_thread(store.list)
        except StoreForbidden:
            stored, writable = [], False
        except SecretStoreError as exc:
            raise _from_core(exc) from None
        environment = self.qsecure.environment
        self.send(
            {
                "environment": environment,
                "prefix": location("", environment).rsplit("#", 1)[0],
                "writable": writable,
                "secrets": secrets_overview(
                    stored, broker.specs, broker.kernel_leases(), time.time()
                ),
            }
        )


class SecretHandler(QSecureHandler):
    """PUT /qsecure/api/secrets/NAME (store or rotate), DELETE (remove)."""

    def _target(self, name: str) -> tuple[SecretStore, CredentialBroker, str]:
        store = self.services.secret_store
        broker = self.services.openbao_broker
        if store is None or broker is None:
            raise _no_openbao()
        try:
            check_name(name)
        except InvalidSecret as exc:
            raise _from_core(exc) from None
        for spec in broker.specs:
            if spec.name == name and spec.location != location(name, store.environment):
                raise ApiError(
                    409,
                    "conflict",
                    f"{name} is configured (c.QSecure.secrets) as {spec.location}: it is not "
                    "stored by name",
                    hint="change it where it is configured, or choose another name",
                )
        return store, broker, name

    def _record(self, kind: str, secret: StoredSecret) -> None:
        try:
            self.ledger.append(
                kind,
                {
                    "name": secret.name,
                    "environment": secret.environment,
                    "location": secret.location,
                    "user": self.user,
                    "version": secret.version,
                },
                actor=user_actor(self.user),
            )
        except Exception as exc:
            self.log.error(
                "jupyter-qsecure: %s of %s was not recorded: %s", kind, secret.name, type(exc)
            )
            raise ApiError(
                503,
                "ledger_unavailable",
                f"{secret.name} was changed in OpenBao, but the audit ledger refused the record",
                hint="check the ledger (`jupyter qsecure audit verify`) and the server log",
            ) from None

    @web.authenticated
    @authorized
    async def put(self, name: str) -> None:
        store, broker, name = self._target(name)
        body = self.json_body()
        if "value" not in body:
            raise ApiError(400, "bad_request", 'the body needs a "value" (a string)')
        value = body.pop("value")
        try:
            check_value(value, name)
            stored: StoredSecret = await asyncio.to_thread(store.put, name, value)
        except SecretStoreError as exc:
            raise _from_core(exc) from None
        credentials = self.services.credentials
        if credentials is not None:  # masked and matched on save from now on
            credentials.registry.add(STORED_VALUES, name, value)
            credentials.masks.changed()  # no build without it is served again
        del value
        broker.refresh()
        await asyncio.to_thread(self._record, "secret.stored", stored)
        self.send(
            {
                "name": name,
                "location": stored.location,
                "version": stored.version,
                "created": stored.created,
            },
            status=201 if stored.created else 200,
        )

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        store, broker, name = self._target(name)
        try:
            meta = await asyncio.to_thread(store.get_meta, name)
            await asyncio.to_thread(store.delete, name)
        except SecretStoreError as exc:
            raise _from_core(exc) from None
        broker.refresh()
        gone = meta or StoredSecret(name=name, environment=store.environment)
        await asyncio.to_thread(self._record, "secret.deleted", gone)
        self.send({"name": name, "deleted": True})


# ---- jobs and the ledger -------------------------------------------------------------------
def _after_archive(services: Services, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(...)`` once the job archive holds every job answered so far: the broker writes
    it after the answers (``JobService.archive``), and these routes read it."""
    jobs = services.jobs
    if jobs is not None:
        jobs.flush_archive(timeout=5.0)
    return fn(*args, **kwargs)


class LedgerJobsHandler(QSecureHandler):
    """GET /qsecure/api/ledger/jobs: the user's jobs, from the ledger."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            limit = int(self.get_argument("limit", "100"))
        except ValueError:
            raise ApiError(400, "bad_request", "limit must be a whole number") from None
        if not 1 <= limit <= 1000:
            raise ApiError(400, "bad_request", "limit must be between 1 and 1000")
        status = self.get_argument("status", None) or None
        settings = self.qsecure
        rows = await asyncio.to_thread(
            _after_archive,
            self.services,
            user_jobs,
            self.ledger,
            self.user,
            archive_dir=settings.data_path / "jobs",
            keyring=keyring_from_settings(settings),
            limit=limit,
            status=status,
        )
        self.send({"jobs": rows})


class LedgerJobHandler(QSecureHandler):
    """GET /qsecure/api/ledger/jobs/ID (job id or decision id): provenance of one job."""

    @web.authenticated
    @authorized
    async def get(self, ident: str) -> None:
        ident = ident.lower()
        if not JOB_ID.match(ident):
            raise ApiError(400, "bad_request", "a job id or decision id is 32 hexadecimal digits")
        settings = self.qsecure
        found = await asyncio.to_thread(
            _after_archive,
            self.services,
            job_provenance,
            self.ledger,
            ident,
            self.user,
            archive_dir=settings.data_path / "jobs",
            keyring=keyring_from_settings(settings),
        )
        if found is None:
            raise ApiError(
                404,
                "not_found",
                f"no job or decision {ident} of yours in the ledger",
                hint="GET ledger/jobs lists your jobs",
            )
        self.send(found)


class LedgerVerifyHandler(QSecureHandler):
    """POST /qsecure/api/ledger/verify: recompute the whole ledger."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        lock = self.services.verify_lock
        if lock.locked():
            raise ApiError(409, "conflict", "a verification of the ledger is running already")
        async with lock:
            report = await asyncio.to_thread(self.ledger.verify)
        data = report.to_json()
        details = data.pop("problems")
        self.send({**data, "problems": [p["message"] for p in details], "details": details})


# ---- save anyway ------------------------------------------------------------------------------
class SaveAnywayHandler(QSecureHandler):
    """POST /qsecure/api/save-anyway: save refused content with a written reason."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        settings = self.qsecure
        if not settings.override_allowed():
            why = (
                "refused saves are never overridden in prod"
                if settings.environment == "prod"
                else "c.QSecure.allow_override is false on this server"
            )
            raise ApiError(
                403,
                "override_not_allowed",
                f"saving anyway is not allowed: {why}",
                hint="remove the secret(s) and save again (the secrets panel stores a value "
                "and inserts a secrets.get call)",
            )
        body = self.json_body()
        path, reason, model = body.get("path"), body.get("reason"), body.get("model")
        if not isinstance(path, str) or not path.strip("/"):
            raise ApiError(422, "invalid", 'the body needs a "path" (the file to save)')
        if not isinstance(model, dict) or model.get("type") not in ("notebook", "file"):
            raise ApiError(
                422,
                "invalid",
                'the body needs a "model" as PUT /api/contents takes it (type notebook or file)',
            )
        if not isinstance(reason, str) or len("".join(reason.split())) < OVERRIDE_REASON_MIN:
            raise ApiError(
                422,
                "invalid",
                f"write a reason of at least {OVERRIDE_REASON_MIN} characters",
                hint="say why this content may hold a secret (it is recorded in the ledger)",
            )
        if len(reason) > OVERRIDE_REASON_MAX:
            raise ApiError(
                422, "invalid", f"the reason is longer than {OVERRIDE_REASON_MAX} characters"
            )
        gate = self.services.save_gate
        scan = await asyncio.to_thread(
            gate.scanner.scan_text, reason, path="reason", exact_values=gate.exact_values()
        )
        if not scan.clean:
            raise ApiError(
                422,
                "invalid",
                "the reason itself holds a secret: it would be written into the audit ledger",
                hint="describe the secret, do not paste it",
            )
        contents_gate = self.services.contents_gate
        saved = await contents_gate.save_override(model, path, self.user, reason.strip())
        self.send(saved)


def setup_route_handlers(web_app: Any, services: Services) -> None:
    """Register the routes; each handler gets ``services`` in its ``initialize``."""
    base_url = web_app.settings["base_url"]
    api = url_path_join(base_url, "qsecure", "api")
    handlers: list[tuple[str, type[QSecureHandler]]] = [
        (url_path_join(api, "status"), StatusHandler),
        (url_path_join(api, "secrets"), SecretsHandler),
        (url_path_join(api, "secrets", r"([^/]+)"), SecretHandler),
        (url_path_join(api, "ledger", "jobs"), LedgerJobsHandler),
        (url_path_join(api, "ledger", "jobs", r"([^/]+)"), LedgerJobHandler),
        (url_path_join(api, "ledger", "verify"), LedgerVerifyHandler),
        (url_path_join(api, "save-anyway"), SaveAnywayHandler),
    ]
    from .review_handlers import review_routes  # it builds on this module's handlers

    handlers.extend(review_routes(api))
    kwargs = {"services": services}
    web_app.add_handlers(".*$", [(pattern, handler, kwargs) for pattern, handler in handlers])
