"""REST routes of the job broker: a thin layer over ``jupyter_qsecure.jobs.service``.

These routes authenticate with the kernel's short-lived token (``Authorization:
Bearer``), not Jupyter's login: the broker must know WHICH kernel (and so which
identity) submits, and the kernel has no Jupyter token. Requests without a valid
kernel token are refused (401). No cookie is read, so cross-site request forgery
does not apply and the XSRF check is skipped on purpose.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from jupyter_qsecure.jobs.service import JobError, JobService, TooLarge


class _JobsHandler(APIHandler):
    auth_resource = "qsecure"

    @property
    def service(self) -> JobService:
        return self.settings["qsecure_jobs"]  # type: ignore[no-any-return]

    def check_xsrf_cookie(self) -> None:
        return None  # bearer-token only; see the module docstring

    def _token(self) -> str | None:
        header = self.request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None

    def _fail(self, exc: JobError) -> None:
        self.set_status(exc.status)
        if exc.status == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="jupyter-qsecure jobs"')
        body = {"error": type(exc).__name__.lower(), "message": exc.message}
        if exc.hint:
            body["hint"] = exc.hint
        body.update(exc.payload)
        if "retry_after" in exc.payload:
            self.set_header("Retry-After", str(exc.payload["retry_after"]))
        self.finish(json.dumps(body))


class JobsHandler(_JobsHandler):
    """POST /qsecure/api/jobs: submit (wait for the result unless ``wait`` is false)."""

    @allow_unauthenticated
    async def post(self) -> None:
        received = time.perf_counter()
        service = self.service
        try:
            limit = self.settings["qsecure"].job_max_payload_bytes
            if len(self.request.body) > limit:
                raise TooLarge(
                    f"request of {len(self.request.body):,} bytes exceeds the {limit:,}-byte limit",
                    hint="submit fewer or smaller circuits per job",
                )
            try:
                body = json.loads(self.request.body or b"null")
            except ValueError:
                body = None
            wait = not isinstance(body, dict) or bool(body.get("wait", True))
            # Admitted to the queue (or 429), decided, and with wait run, signed and
            # recorded, in one broker thread; without wait, queued before the 202.
            state = await service.call(service.submit, self._token(), body, wait=wait)
            if state.status in ("queued", "pending_approval"):  # not run yet: in the background
                task = asyncio.ensure_future(service.run(state))
                task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
                self.set_status(202)
                self.finish(json.dumps(state.record(), default=str))
                return
        except JobError as exc:
            self._fail(exc)
            return
        state.timings["broker"] = (time.perf_counter() - received) * 1000
        self.finish(json.dumps(state.record(), default=str))


class JobHandler(_JobsHandler):
    """GET /qsecure/api/jobs/ID (status and result), DELETE (cancel)."""

    @allow_unauthenticated
    async def get(self, job_id: str) -> None:
        try:
            state = await self.service.call(self.service.get, self._token(), job_id)
        except JobError as exc:
            self._fail(exc)
            return
        self.finish(json.dumps(state.record(), default=str))

    @allow_unauthenticated
    async def delete(self, job_id: str) -> None:
        try:
            state = await self.service.call(self.service.cancel, self._token(), job_id)
        except JobError as exc:
            self._fail(exc)
            return
        self.finish(json.dumps(state.record(), default=str))


class KeysHandler(_JobsHandler):
    """GET /qsecure/api/jobs/keys: public keys that verify manifests and results."""

    @allow_unauthenticated
    async def get(self) -> None:
        try:
            await self.service.call(self.service.authenticate, self._token())
        except JobError as exc:
            self._fail(exc)
            return
        self.finish(json.dumps({"keys": self.service.public_keys()}))


def job_routes(base_url: str) -> list[tuple[str, type[Any]]]:
    api = url_path_join(base_url, "qsecure", "api", "jobs")
    return [
        (api, JobsHandler),
        (url_path_join(api, "keys"), KeysHandler),
        (url_path_join(api, r"([0-9a-f]{32})"), JobHandler),
    ]
