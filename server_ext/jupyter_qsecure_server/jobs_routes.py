"""REST routes of the job broker: a thin layer over ``jupyter_qsecure.jobs.service``.

These routes authenticate with the kernel's short-lived token (``Authorization:
Bearer``), not Jupyter's login: the broker must know WHICH kernel (and so which
identity) submits, and the kernel has no Jupyter token. Requests without a valid
kernel token are refused (401), whatever the method. The handlers build on
:class:`~jupyter_qsecure_server.bearer.BearerAPIHandler`: Jupyter's identity provider,
cookies and XSRF check are not part of these routes (see that module).

Bodies are read as a stream (``@stream_request_body``), never buffered before they are
checked: ``prepare`` runs as soon as the headers are in, and refuses a request without a
valid kernel token (401) or with a declared ``Content-Length`` over
``job_max_payload_bytes`` (413) before a byte of its body is read; a body without a
declared length is counted while it arrives and cut off with a 413 at the limit. Tornado
then closes the connection instead of reading the rest. Only ``POST /jobs`` takes a body.
A body that is not JSON, or nests too deeply, is a 400; one that is JSON but not a valid
job request is a 422 naming the fields (``jupyter_qsecure.jobs.request``).

Work that only reads the broker's memory (a job's status with a cached token, the public
keys) runs on the event loop; what may wait on OpenBao, the ledger or a worker (checking a
token not cached yet, submitting, cancelling) runs in the broker's threads
(``JobService.call``). Each response body is encoded once, compactly.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.utils import url_path_join
from tornado.web import stream_request_body

from jupyter_qsecure.jobs.ended import EndedJob, encode_record
from jupyter_qsecure.jobs.service import JobError, JobService, JobState, TooLarge
from jupyter_qsecure.jobs.status import JobStatus

from .bearer import BearerAPIHandler

#: Bytes a body may run over the limit before tornado itself drops the connection (the
#: handler answers 413 at the limit; this only bounds what is read while that is sent).
_OVERRUN = 64 * 1024


class MalformedBody(JobError):
    """The body is not JSON (or nests deeper than the decoder allows)."""

    status = 400


@stream_request_body
class _JobsHandler(BearerAPIHandler):
    bearer_realm = "jupyter-qsecure jobs"
    #: Methods that may carry a body (every other one is refused a body with a 413).
    body_methods: frozenset[str] = frozenset()

    def initialize(self, *, service: JobService, max_payload_bytes: int) -> None:
        """Route kwargs (:func:`job_routes`): the job service, and the largest body of
        a ``POST /jobs`` (``c.QSecure.job_max_payload_bytes``)."""
        self.service = service
        self.max_payload_bytes = max_payload_bytes
        self._chunks: list[bytes] = []
        self._size = 0
        self._limit = 0

    async def bearer_identity(self, token: str | None) -> Any:
        service = self.service
        known = service.cached_identity(token)  # a dict lookup: no thread hand-off
        if known is not None:
            return known
        return await service.call(service.authenticate, token)

    async def prepare(self) -> None:  # type: ignore[override]
        """Who and how much, as soon as the headers are in (see the module docstring)."""
        await super().prepare()
        if self._finished or self.request.method == "OPTIONS":
            return
        if self.request.method in self.body_methods:
            self._limit = self.max_payload_bytes
        declared = self.request.headers.get("Content-Length", "0").strip() or "0"
        if not declared.isdigit():
            self.fail(MalformedBody("the Content-Length header is not a number"))
            return
        if int(declared) > self._limit:
            self._too_large(int(declared))
            return
        self.request.connection.set_max_body_size(self._limit + _OVERRUN)  # type: ignore[union-attr]

    def send_record(self, state: JobState | EndedJob, status: int = 200) -> bytes:
        """Answer with the job's record; returns the body sent. An ended job's is sent as
        the store keeps it (encoded once, when it ended)."""
        body = state.encoded if isinstance(state, EndedJob) else encode_record(state.record())
        self.set_status(status)
        self.finish(body)
        return body

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return  # refused already; tornado closes the connection
        self._size += len(chunk)
        if self._size > self._limit:
            self._too_large(self._size, declared=False)
            return
        self._chunks.append(chunk)

    def _too_large(self, size: int, *, declared: bool = True) -> None:
        if not self._limit:
            self.fail(TooLarge(f"{self.request.method} requests take no body"))
            return
        what = f"request of {size:,} bytes" if declared else f"request of more than {size:,} bytes"
        self.fail(
            TooLarge(
                f"{what} exceeds the {self._limit:,}-byte limit",
                hint="submit fewer or smaller circuits per job",
            )
        )

    def _json_body(self) -> Any:
        """The body as JSON; :class:`MalformedBody` (400) when it is not."""
        raw = b"".join(self._chunks)
        self._chunks = []
        try:
            return json.loads(raw)
        except RecursionError:
            raise MalformedBody(
                "the request body nests JSON too deeply",
                hint="a job request is a flat object: {circuits, shots, request_id, ...}",
            ) from None
        except ValueError as exc:  # also UnicodeDecodeError: not UTF-8
            detail = str(exc)[:120] if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            raise MalformedBody(
                f"the request body is not valid JSON ({detail})",
                hint="send a JSON object: {circuits, shots, request_id, ...}",
            ) from None


class JobsHandler(_JobsHandler):
    """POST /qsecure/api/jobs: submit (wait for the result unless ``wait`` is false)."""

    body_methods = frozenset({"POST"})

    @allow_unauthenticated  # Jupyter's login is not ours: BearerAPIHandler.prepare checks
    async def post(self) -> None:
        received = time.perf_counter()
        service = self.service
        try:
            body = self._json_body()
            # ``wait`` is validated with the rest of the body (a boolean, or absent)
            wait = not isinstance(body, dict) or body.get("wait", True) is not False
            # Admitted to the queue (or 429), decided, and with wait run, signed and
            # recorded, in one broker thread; without wait, queued before the 202. The
            # archive (for replay) is written after the answer: nothing in it depends on it.
            state = await service.call(
                service.submit, self.token, body, wait=wait, archive_after=True
            )
        except JobError as exc:
            self.fail(exc)
            return
        # not run yet: followed to its end in the background
        if state.status in (JobStatus.QUEUED, JobStatus.PENDING_APPROVAL):
            task = asyncio.ensure_future(service.run(state))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
            self.send_record(state, 202)
            return
        state.timings["broker"] = (time.perf_counter() - received) * 1000
        record = body = None
        try:
            record = state.record()
            body = encode_record(record)
            self.set_status(200)
            self.finish(body)
        finally:  # answered (or the client went away): now the archive, in its own thread
            service.archive(state, record)
            if body is not None:  # and the ended job kept compactly: its record, these bytes
                service.keep_ended(state, body)


class JobHandler(_JobsHandler):
    """GET /qsecure/api/jobs/ID (status and result), DELETE (cancel)."""

    @allow_unauthenticated
    async def get(self, job_id: str) -> None:
        service = self.service
        try:
            if service.cached_identity(self.token) is not None:
                # checked in prepare and cached: a lookup in memory, on the event loop
                state = service.get(self.token, job_id)
            else:  # the cache expired meanwhile: checking again may ask OpenBao
                state = await service.call(service.get, self.token, job_id)
        except JobError as exc:
            self.fail(exc)
            return
        self.send_record(state)

    @allow_unauthenticated
    async def delete(self, job_id: str) -> None:
        service = self.service
        try:  # records the cancellation in the ledger: in a broker thread
            state = await service.call(service.cancel, self.token, job_id)
        except JobError as exc:
            self.fail(exc)
            return
        self.send_record(state)


class KeysHandler(_JobsHandler):
    """GET /qsecure/api/jobs/keys: public keys that verify manifests and results."""

    @allow_unauthenticated
    async def get(self) -> None:
        # the token was checked in prepare; the keys are in memory
        self.finish(encode_record({"keys": self.service.public_keys()}))


def job_routes(
    base_url: str, service: JobService, *, max_payload_bytes: int
) -> list[tuple[str, type[_JobsHandler], dict[str, Any]]]:
    """The broker's routes; each handler gets ``service`` in its ``initialize``."""
    api = url_path_join(base_url, "qsecure", "api", "jobs")
    kwargs: dict[str, Any] = {"service": service, "max_payload_bytes": max_payload_bytes}
    return [
        (api, JobsHandler, kwargs),
        (url_path_join(api, "keys"), KeysHandler, kwargs),
        (url_path_join(api, r"([0-9a-f]{32})"), JobHandler, kwargs),
    ]
