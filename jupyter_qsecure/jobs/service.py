"""The job broker's core: authenticate, decide, record, execute, sign, verify-ready.

Every step that makes a decision writes to the ledger: ``job.decided`` (allowed or
denied, with the policy's hash and the rule), ``job.submitted``, ``job.completed``
(manifest and result digests, or the failure), ``job.cancelled``, ``job.approved``.
Denials, jobs awaiting approval and jobs submitted without waiting are recorded when
decided; a waiting job's entries are committed together with its outcome, in one
transaction, before anything of its result is released.
Identity always comes from the kernel's token (``identify``), never from the request.
Circuits are never parsed in the server process: their declared sizes are checked against
the policy first (``declared``), then a parse worker with memory and CPU limits reads them
(``parse_pool``).
Submitted circuits, the signed manifest and the signed result are archived in
``<data_dir>/jobs/archive.db`` so ``jupyter qsecure replay JOB_ID`` can re-run a job later;
the REST layer has that written after the job's answer (:meth:`JobService.archive`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple, cast

from .._lru import LRU
from ..errors import InvalidEntry, QSecureError
from ..ledger.kinds import validate_body
from ..signing.canonical import canonical_json
from ..signing.signers import KeyRing, Signer
from .aer_run import noise_model_sha256
from .approval import ApprovalRefused, ApprovalVerifier, approval_subject
from .archive import ArchiveWriter, JobArchive
from .declared import (
    MAX_CIRCUITS_PARSED,
    Excess,
    MalformedCircuit,
    OverPolicy,
    check_declared,
)
from .ended import EndedJob
from .executor import ExecutorError, QueueFull, QueuePlace
from .manifest import (
    Envelope,
    build_job_statement,
    build_result_statement,
    canonical_statement,
    parse_keyid,
    sign_bodies,
)
from .parse_pool import ParsedCircuits, ParsePool, ParseRefused, ParseUnavailable
from .parse_worker import parse_circuits  # noqa: F401  (it lived here; parsed in workers now)
from .policy import CircuitSummary, Decision, Identity, JobRequest, PolicyEngine
from .protocols import CircuitParser, Executor, JobLedger
from .request import RequestError, parse_request
from .status import TERMINAL, JobStatus

log = logging.getLogger("jupyter_qsecure.jobs")

#: Parsed requests remembered (:meth:`JobService._circuits`), and the largest one kept.
PARSED_CACHE_ENTRIES = 256
PARSED_CACHE_MAX_CHARS = 256 * 1024


class JobError(QSecureError):
    """A request the broker refuses; ``status`` is the HTTP status the REST layer uses."""

    status = 400

    def __init__(
        self, message: str, *, hint: str | None = None, payload: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.payload = payload or {}


class Unauthorized(JobError):
    status = 401


class Denied(JobError):
    status = 403


class NotFound(JobError):
    status = 404


class Replayed(JobError):
    status = 409


class TooLarge(JobError):
    status = 413


class InvalidJob(JobError):
    status = 422


class Busy(JobError):
    status = 429


class Unavailable(JobError):
    status = 503


class SettledHandle(NamedTuple):
    """What a finished job keeps of its executor handle (:meth:`JobState.settle`): its
    status, when it was submitted, started and finished, and its place in dispatch order.
    One object holding plain values, where a live handle holds a future, an event, and
    their conditions and waiter queues, all of which the garbage collector walks."""

    job_id: str
    status: str
    submitted_at: float | None
    started_at: float | None
    finished_at: float | None
    queue_seq: int | None
    dispatch_seq: int | None


@dataclass
class JobState:
    job_id: str
    identity: dict[str, Any]
    request: dict[str, Any]
    decision: Decision
    circuit_hashes: list[str]
    payload: dict[str, Any]
    request_id: str
    #: The broker's view; ``current_status()`` tells ``queued`` from ``running``.
    status: JobStatus = JobStatus.QUEUED
    transpiled_hashes: list[str] = field(default_factory=list)
    manifest: Envelope | None = None
    result: dict[str, Any] | None = None
    result_envelope: Envelope | None = None
    error: str | None = None
    handle: Any = None
    approved: threading.Event = field(default_factory=threading.Event)
    wake: Callable[[], Any] | None = None  # set by run() while it waits for an approval
    finished: asyncio.Event | None = None
    #: Where the job's time went, in ms: decide (parse, policy), queue, run (the worker,
    #: incl. transfer), sign, record (the ledger commit), broker (the whole request, set by
    #: the REST layer). See ``record()``.
    timings: dict[str, float] = field(default_factory=dict)
    #: Ledger entries of an allowed submission not written yet (``prepare(...,
    #: record_later=True)``): ``complete`` commits them with the job's outcome.
    unrecorded: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: The job's place in the executor's queue, held from submission until the job is
    #: queued (or refused, cancelled, not approved): see :meth:`JobService.submit`.
    place: QueuePlace | None = None

    def settle(self) -> None:
        """Drop what only a job in flight needs, once it has ended: the broker keeps up to
        ``max_jobs_kept`` ended jobs for status queries, and Python's garbage collector
        walks every object they hold on each full collection (a pause of the whole
        server that grew with the job store). Its record stays as it was."""
        handle = self.handle
        if handle is None or isinstance(handle, SettledHandle):
            return
        self.handle = SettledHandle(
            job_id=self.job_id,
            status=str(getattr(handle, "status", self.status)),
            submitted_at=getattr(handle, "submitted_at", None),
            started_at=getattr(handle, "started_at", None),
            finished_at=getattr(handle, "finished_at", None),
            queue_seq=getattr(handle, "queue_seq", None),
            dispatch_seq=getattr(handle, "dispatch_seq", None),
        )
        self.wake = None

    @property
    def user(self) -> str | None:
        """The job's owner (its submitter's Jupyter user), as :class:`EndedJob` keeps it."""
        user: str | None = self.identity.get("user")
        return user

    def current_status(self) -> JobStatus:
        """``running`` once a worker took the job, ``queued`` while it waits for one."""
        status = self.status
        if status == JobStatus.QUEUED:
            handle = self.handle
            if handle is not None and getattr(handle, "started_at", None) is not None:
                return JobStatus.RUNNING
        return status

    def record(self) -> dict[str, Any]:
        """The JobRecord of the REST contract (no token, no secret)."""
        return {
            "job_id": self.job_id,
            "status": str(self.current_status()),
            "identity": self.identity,
            "decision": self.decision.model_dump(mode="json"),
            "manifest": self.manifest.model_dump(mode="json") if self.manifest else None,
            "result": self.result,
            "result_envelope": self.result_envelope.model_dump(mode="json")
            if self.result_envelope
            else None,
            "error": self.error,
            "circuit_hashes": self.circuit_hashes,
            "transpiled_hashes": self.transpiled_hashes,
            "timings_ms": {k: round(v, 3) for k, v in self.timings.items()},
        }


@dataclass(frozen=True)
class _Sealed:
    """A signed job: what ``complete`` publishes once the ledger commit succeeded."""

    manifest: Envelope
    result_envelope: Envelope
    result: dict[str, Any]
    completion: dict[str, Any]


def _give_up_place(state: JobState) -> None:
    """Release the job's queue place if it still holds one (refused, cancelled, failed)."""
    place, state.place = state.place, None
    if place is not None:
        place.release()


def _busy(exc: QueueFull) -> Busy:
    """The 429 for a full queue: which limit, what to do, and when to retry."""
    retry = exc.retry_after_seconds
    if exc.scope == "user":
        message = (
            f"you already have {exc.waiting} jobs waiting in the job queue, the most one user "
            f"may have queued ({exc.limit}); this job was not accepted"
        )
        hint = (
            f"retry in {retry} s, when one of them has started (`%qsubmit --status JOB` "
            "shows where each one is), or cancel some with `%qsubmit --cancel JOB`"
        )
    else:
        message = exc.message
        hint = f"the broker is busy with other jobs: retry in {retry} s"
    return Busy(
        message,
        hint=hint,
        payload={"retry_after": retry, "scope": exc.scope, "limit": exc.limit},
    )


def _utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _circuits_key(items: Any, bind: Any) -> str | None:
    """SHA-256 over the circuits' formats and texts and the bindings; None if uncacheable."""
    if not isinstance(items, list) or not items or len(items) > MAX_CIRCUITS_PARSED:
        return None
    digest = hashlib.sha256()
    size = 0
    for item in items:
        if not isinstance(item, dict):
            return None
        fmt, data = item.get("format"), item.get("data")
        if not isinstance(fmt, str) or not isinstance(data, str):
            return None
        size += len(data)
        if size > PARSED_CACHE_MAX_CHARS:
            return None
        for part in (fmt, data):
            encoded = part.encode("utf-8", "surrogatepass")
            digest.update(len(encoded).to_bytes(8, "big"))
            digest.update(encoded)
    try:
        digest.update(json.dumps(bind, sort_keys=True, allow_nan=False).encode())
    except (TypeError, ValueError):
        return None
    return digest.hexdigest()


class JobService:
    def __init__(
        self,
        *,
        identify: Callable[[str], dict[str, Any] | None],
        engine: PolicyEngine,
        signer: Signer,
        ledger: JobLedger,
        executor: Executor | Callable[[], Executor],
        environment: str,
        archive_dir: Path | None = None,
        job_timeout: float = 300.0,
        aer_threads: int = 0,
        identity_cache_seconds: float = 2.0,
        max_jobs_kept: int = 10_000,
        io_threads: int = 16,
        max_in_flight: int = 128,
        approvals: ApprovalVerifier | None = None,
        parser: CircuitParser | Callable[[], CircuitParser] | None = None,
    ) -> None:
        self.identify = identify
        self.engine = engine
        self.signer = signer
        self.ledger = ledger
        # An executor, or a zero-argument factory called on first use (workers are
        # processes that import Qiskit Aer: start them only when jobs come).
        self._executor: Executor | None = None
        self._executor_factory: Callable[[], Executor] | None = None
        if callable(executor):
            self._executor_factory = executor
        else:
            self._executor = executor
        self.environment = environment
        self.archive_dir = archive_dir
        self.job_timeout = job_timeout
        self.aer_threads = aer_threads
        self.keyring = KeyRing(signer.public_keys())
        #: Who may approve heavy runs (None: nobody; every approval is refused).
        self.approvals = approvals
        #: Jobs in flight as :class:`JobState`, ended ones (up to ``max_jobs_kept`` in all)
        #: as :class:`EndedJob` once their answer is out (:meth:`keep_ended`).
        self._jobs: OrderedDict[str, JobState | EndedJob] = OrderedDict()
        #: Keep ended jobs as :class:`EndedJob` (False: as their JobState; for A/B probes).
        self.compact_ended = True
        self._request_ids: OrderedDict[str, str] = OrderedDict()
        self._max_jobs = max_jobs_kept
        self._lock = threading.Lock()
        self._identity_cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._identity_ttl = identity_cache_seconds
        self._archiver: ArchiveWriter | None = None
        self._closed = False
        # Every job the executor accepts (queued or running) may hold a thread in
        # complete(); io_threads more serve everything else.
        self._pool = ThreadPoolExecutor(
            max_workers=io_threads + max_in_flight, thread_name_prefix="qsecure-jobs"
        )
        self._parsed: LRU[str, tuple[list[str], list[dict[str, Any]], str]] = LRU(
            PARSED_CACHE_ENTRIES
        )
        #: Jobs whose record a ledger failure prevented: (job id, actor, entries), written
        #: by :meth:`flush_unwritten` when the ledger is back.
        self._unwritten: list[tuple[str, str, list[tuple[str, dict[str, Any]]]]] = []
        self._flush_lock = threading.Lock()

        # Circuits are parsed in worker processes with memory and CPU limits, never here:
        # a ParsePool, or a zero-argument factory of one called on first use (default: a
        # ParsePool with its default limits).
        self._parser: CircuitParser | None = None
        self._parser_factory: Callable[[], CircuitParser] = ParsePool
        if callable(parser):
            self._parser_factory = parser
        elif parser is not None:
            self._parser = parser

    # ---- identity --------------------------------------------------------------------------
    @property
    def parser(self) -> CircuitParser:
        """The :class:`ParsePool` (started on first use)."""
        with self._lock:
            if self._parser is None:
                self._parser = self._parser_factory()
            return self._parser

    @property
    def executor(self) -> Executor:
        with self._lock:
            if self._executor is None:
                assert self._executor_factory is not None
                self._executor = self._executor_factory()
            return self._executor

    def cached_identity(self, token: str | None) -> dict[str, Any] | None:
        """The identity :meth:`authenticate` returned for ``token`` within the cache's
        lifetime, or None (then call :meth:`authenticate`). A dict lookup that never
        blocks: the REST layer calls it on the event loop, saving two thread hand-offs per
        request while the token is cached."""
        if not token:
            return None
        cached = self._identity_cache.get(token)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return None

    def authenticate(self, token: str | None) -> dict[str, Any]:
        if not token:
            raise Unauthorized(
                "a kernel token is required (Authorization: Bearer ...)",
                hint="submit from a 'Python 3 (qsecure)' kernel with %qsubmit",
            )
        now = time.monotonic()
        cached = self._identity_cache.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            identity = self.identify(token)
        except QSecureError as exc:
            raise Unavailable(
                f"cannot check the kernel's token: {exc.message}", hint=exc.hint
            ) from None
        if identity is None:
            self._identity_cache.pop(token, None)
            raise Unauthorized(
                "the kernel token is not valid (expired, revoked, or not issued by this server)",
                hint="re-run the cell: each execution carries a fresh token",
            )
        if len(self._identity_cache) > 4096:
            self._identity_cache.clear()
        self._identity_cache[token] = (now + self._identity_ttl, identity)
        return identity

    def forget_kernel(self, kernel_id: str) -> None:
        """Drop cached identities of a kernel whose credentials were revoked."""
        for token, (_, identity) in list(self._identity_cache.items()):
            if identity.get("kernel_id") == kernel_id:
                self._identity_cache.pop(token, None)

    def public_keys(self) -> list[dict[str, Any]]:
        """The signer's public keys: read once, and again when a signature names a key
        version not seen yet (a transit key rotation), so kernels that refetch after an
        unknown-key failure get the new version."""
        return [key.model_dump() for key in self.keyring]

    def _note_signer_versions(self, envelopes: list[Envelope]) -> None:
        for envelope in envelopes:
            for signature in envelope.signatures:
                parsed = parse_keyid(signature.keyid)
                if parsed is not None and self.keyring.get(*parsed) is None:
                    self.keyring = KeyRing(self.signer.public_keys())  # one read, swapped whole
                    return

    # ---- submission --------------------------------------------------------------------------
    def prepare(
        self,
        token: str | None,
        body: Any,
        *,
        record_later: bool = False,
        identity: dict[str, Any] | None = None,
    ) -> JobState:
        """Authenticate, parse, hash, decide and record (sync: run it in a thread).

        Denials and jobs that wait for an approval are recorded before this returns. With
        ``record_later`` an allowed job's ``job.decided``/``job.submitted`` entries are
        committed by :meth:`complete` together with its ``job.completed`` (one durable
        commit per job); no result is released unless that commit succeeded.
        ``identity``: what :meth:`authenticate` already returned for ``token``.
        """
        identity = identity if identity is not None else self.authenticate(token)
        try:  # every field, strictly, before anything is parsed, decided or run
            body = parse_request(body).model_dump()
        except RequestError as exc:
            raise InvalidJob(exc.message, hint=exc.hint) from None
        request_id = body["request_id"]
        with self._lock:
            if request_id in self._request_ids:
                raise Replayed(
                    f"request {request_id} was already submitted as job {self._request_ids[request_id]}",
                    hint="a replayed submission is refused; send a new request id to run again",
                )
            self._request_ids[request_id] = "(in progress)"
        try:
            return self._prepare(identity, request_id, body, record_later)
        except BaseException:
            with self._lock:
                if self._request_ids.get(request_id) == "(in progress)":
                    del self._request_ids[request_id]
            raise

    def _prepare(
        self, identity: dict[str, Any], request_id: str, body: dict[str, Any], record_later: bool
    ) -> JobState:
        began = time.perf_counter()
        # ``body`` is validated (``parse_request``): every field has its type and range.
        shots, seed, tags = body["shots"], body["seed"], body["tags"]
        request_fields = {
            "shots": shots,
            "seed": seed,
            "backend": body["backend"],
            "method": body["method"],
            "noise": body["noise"],
            "tags": tags,
        }
        self._check_recordable(identity, request_fields, request_id)
        try:
            hashes, summaries, circuits_qpy = self._circuits(body.get("circuits"), body.get("bind"))
        except OverPolicy as over:
            raise self._deny_declared(identity, request_id, over.excess) from None
        request = JobRequest(
            shots=shots,
            seed=seed,
            backend=body["backend"],
            method=body["method"],
            noise=body["noise"],
            tags=tags,
            circuits=cast(list[CircuitSummary], summaries),  # pydantic validates the dicts
        )
        who = Identity(
            user=identity["user"],
            kernel_id=identity.get("kernel_id"),
            accessor=identity.get("accessor"),
            environment=identity.get("environment", self.environment),
        )
        decision = self.engine.decide(request, who)
        job_id = uuid.uuid4().hex
        state = JobState(
            job_id=job_id,
            identity={k: identity.get(k) for k in ("user", "kernel_id", "accessor", "environment")},
            request=request_fields,
            decision=decision,
            circuit_hashes=hashes,
            payload={
                "circuits_qpy": circuits_qpy,
                "shots": shots,
                "seed": seed,
                "method": request.method,
                "noise": request.noise,
                "max_parallel_threads": self.aer_threads,
            },
            request_id=request_id,
        )
        actor = f"user:{identity['user']}"
        decided = dict(decision.to_ledger_body())
        decided.update({"job_id": job_id, "request_id": request_id, "circuit_hashes": hashes})
        entries = [("job.decided", decided)]
        if decision.allowed:
            entries.append(
                (
                    "job.submitted",
                    {
                        "job_id": job_id,
                        "identity": state.identity,
                        "request": state.request,
                        "circuit_hashes": hashes,
                        "decision_id": decision.decision_id,
                    },
                )
            )
        if record_later and decision.allowed and not decision.needs_approval:
            state.unrecorded = entries
        else:
            try:
                self._append_many(entries, actor=actor, correlation_id=job_id)
            except Exception as exc:  # fail closed: not recorded, not run
                raise self._unrecorded(exc, "the job's decision", "nothing was run") from None
        with self._lock:
            self._request_ids[request_id] = job_id
            while len(self._request_ids) > 100_000:
                self._request_ids.popitem(last=False)
        if not decision.allowed:
            state.status = JobStatus.DENIED
            raise Denied(decision.message, payload={**decision.to_denial(), "job_id": job_id})
        if decision.needs_approval:
            state.status = JobStatus.PENDING_APPROVAL
            state.error = decision.approval_message(job_id)
        state.timings["decide"] = (time.perf_counter() - began) * 1000
        self._keep(state)
        return state

    def _circuits(self, items: Any, bind: Any) -> tuple[list[str], list[dict[str, Any]], str]:
        """Canonical hashes, policy summaries and worker QPY of the request's circuits.

        Nothing is parsed here: what the circuits declare is checked against the policy
        first (:func:`~jupyter_qsecure.jobs.declared.check_declared`: ``OverPolicy`` for a
        size over a limit, :class:`InvalidJob` for a malformed request or an include; here
        for all but what is beyond the server's share of an OpenQASM scan), then a parse worker
        with memory and CPU limits checks every text in full and reads them
        (:class:`~jupyter_qsecure.jobs.parse_pool.ParsePool`).

        Memoised by the SHA-256 of the request's circuit texts and bindings: the same
        bytes always parse to the same circuits, so a circuit submitted again (a seed or
        shots sweep, a retry) is neither checked nor parsed again.
        """
        key = _circuits_key(items, bind)
        cached = self._parsed.get(key) if key is not None else None
        if cached is None:
            policy = self.engine.policy
            try:
                excess = check_declared(items, policy.rules, policy.environment, server=True)
            except MalformedCircuit as exc:
                raise InvalidJob(exc.message, hint=exc.hint) from None
            if excess is not None:
                raise OverPolicy(excess)
            try:
                parsed: ParsedCircuits = self.parser.parse(
                    items, bind, rules=policy.rules, environment=policy.environment
                )
            except ParseRefused as exc:
                raise InvalidJob(exc.message, hint=exc.hint) from None
            except ParseUnavailable as exc:
                raise Unavailable(exc.message, hint=exc.hint) from None
            cached = (parsed.hashes, parsed.summaries, parsed.qpy)
            if key is not None:
                self._parsed.put(key, cached)
        hashes, summaries, qpy = cached
        return hashes, [dict(s) for s in summaries], qpy  # callers never share the cache's

    def _deny_declared(self, identity: dict[str, Any], request_id: str, excess: Excess) -> Denied:
        """Record (``job.decided``) a denial decided from the sizes the circuits declare,
        before they were parsed; the :class:`Denied` to raise."""
        who = Identity(
            user=identity["user"],
            kernel_id=identity.get("kernel_id"),
            accessor=identity.get("accessor"),
            environment=identity.get("environment", self.environment),
        )
        decision = self.engine.refuse(
            who, rule=excess.rule, limit=excess.limit, actual=excess.actual, message=excess.message
        )
        job_id = uuid.uuid4().hex
        decided = dict(decision.to_ledger_body())
        decided.update({"job_id": job_id, "request_id": request_id, "circuit_hashes": []})
        self._append_many(
            [("job.decided", decided)], actor=f"user:{identity['user']}", correlation_id=job_id
        )
        with self._lock:
            self._request_ids[request_id] = job_id
        return Denied(decision.message, payload=decision.to_denial())

    def _append_many(
        self, entries: list[tuple[str, dict[str, Any]]], *, actor: str, correlation_id: str
    ) -> None:
        self.flush_unwritten()  # jobs a ledger outage left unrecorded go first
        self.ledger.append_many(entries, actor=actor, correlation_id=correlation_id)  # one commit

    # ---- the record: checked before anything runs, failures recorded when the ledger returns
    def _check_recordable(
        self,
        identity: dict[str, Any],
        request: dict[str, Any],
        request_id: str,
    ) -> None:
        """Refuse (422) a request whose entries the ledger would refuse, before it runs.

        The ledger validates every body (kinds, secret-shaped values) and writes canonical
        JSON; checking the request's part of ``job.submitted`` and ``job.decided`` here
        means a job never runs only to find that its record cannot be written.
        """
        probe = {
            "job_id": "0" * 32,
            "identity": {
                k: identity.get(k) for k in ("user", "kernel_id", "accessor", "environment")
            },
            "request": request,
            "circuit_hashes": [],
            "decision_id": "0" * 32,
        }
        try:
            canonical_json(validate_body("job.submitted", probe))
            canonical_json(validate_body("job.decided", {"request_id": request_id}))
        except InvalidEntry as exc:
            raise InvalidJob(
                f"the request cannot be recorded in the audit ledger: {exc.message}",
                hint="a job request is recorded as sent: it must not carry a secret; "
                "remove it from the named field",
            ) from None
        except (ValueError, TypeError, RecursionError) as exc:
            raise InvalidJob(
                f"the request cannot be recorded in the audit ledger ({type(exc).__name__})",
                hint="send JSON values the ledger can hold: printable text, integers "
                "within +/-(2**53 - 1)",
            ) from None

    def _unrecorded(self, exc: Exception, what: str, consequence: str) -> Unavailable:
        """The 503 for a ledger write that failed (never the exception's text if not ours)."""
        reason = exc.message if isinstance(exc, QSecureError) else type(exc).__name__
        message = f"{what} could not be recorded in the ledger ({reason}): {consequence}"
        log.error("jupyter-qsecure jobs: %s", message)
        return Unavailable(message, hint="check the ledger (`jupyter qsecure audit verify`)")

    def has_unwritten(self) -> bool:
        """True while jobs wait to be recorded as failed (the ledger was unavailable)."""
        return bool(self._unwritten)

    def flush_unwritten(self) -> int:
        """Record the jobs a ledger failure left unrecorded, oldest first; the count written.

        Each is written as it was decided and submitted, with ``job.completed`` status
        ``failed`` (its result was never released). Stops at the first failure (the ledger
        is still down) and keeps the rest for the next call.
        """
        written = 0
        if not self._unwritten:  # the hot path: one read, no lock
            return written
        with self._flush_lock:
            while True:
                with self._lock:
                    if not self._unwritten:
                        return written
                    job_id, actor, entries = self._unwritten[0]
                try:
                    self.ledger.append_many(entries, actor=actor, correlation_id=job_id)
                except (InvalidEntry, ValueError, TypeError) as exc:  # never writable as it is
                    log.error(
                        "job %s: the ledger refuses its entries (%s)", job_id, type(exc).__name__
                    )
                    with self._lock:
                        if len(entries) > 1:  # record the failure alone
                            self._unwritten[0] = (job_id, actor, [entries[-1]])
                        else:
                            self._unwritten.pop(0)
                    continue
                except Exception as exc:
                    if written == 0:
                        raise
                    log.warning("job records: the ledger failed again (%s)", type(exc).__name__)
                    return written
                with self._lock:
                    self._unwritten.pop(0)
                written += 1
                log.info("job %s: recorded as failed now that the ledger is back", job_id)

    def _keep(self, state: JobState) -> None:
        with self._lock:
            self._jobs[state.job_id] = state
            while len(self._jobs) > self._max_jobs:
                self._jobs.popitem(last=False)

    def keep_ended(self, state: JobState, encoded: bytes | None = None) -> None:
        """Keep an ended job in the store as an :class:`EndedJob`: its record's bytes and the
        fields :meth:`get`, :meth:`cancel` and :meth:`take_approval` read, one object the
        garbage collector tracks where the :class:`JobState` held some 30.

        ``encoded``: the job's record as answered (``encode_record(state.record())``, which
        the REST layer has built anyway); encoded here when not given. Call it once the
        job's answer is out and nothing changes its record any more: :meth:`complete`
        does for callers that do not pass ``archive_after``, :meth:`run` for jobs
        followed in the background. Does nothing for a job not ended, or no longer kept.
        """
        if not self.compact_ended or state.status not in TERMINAL:
            return
        if self._jobs.get(state.job_id) is not state:  # evicted meanwhile
            return
        ended = EndedJob.of(state, encoded)
        with self._lock:
            if self._jobs.get(state.job_id) is state:  # keeps its place in the store
                self._jobs[state.job_id] = ended

    async def run(self, state: JobState) -> JobState:
        """Follow an allowed (and, if needed, approved) job to its end: wait for the
        approval, then run it (or wait for the queued job), sign and record its result."""
        state.finished = state.finished or asyncio.Event()
        if state.status == JobStatus.PENDING_APPROVAL:
            approved = await self._approval(state)
            # read again: cancel() may have changed it during the wait
            cancelled = state.current_status() == JobStatus.CANCELLED
            if not approved or cancelled:
                if not cancelled:
                    state.status, state.error = JobStatus.FAILED, "not approved in time"
                _give_up_place(state)
                state.finished.set()
                self.keep_ended(state)
                return state
        try:
            # complete() keeps the ended job compactly (it is not passed archive_after)
            return await self.call(self.complete, state)  # type: ignore[no-any-return]
        finally:
            _give_up_place(state)
            state.finished.set()

    # ---- the queue ---------------------------------------------------------------------------
    def owner(self, identity: dict[str, Any]) -> str:
        """Whose turn a job takes in the fair queue, and whose share of the queue it uses:
        the same key as the policy's rate limits and quotas (``environment:user``)."""
        return f"{identity.get('environment') or self.environment}:{identity['user']}"

    def submit(
        self, token: str | None, body: Any, *, wait: bool = True, archive_after: bool = False
    ) -> JobState:
        """Admit, prepare and queue a submission in the calling (broker) thread; with
        ``wait`` also run it to the end (:meth:`complete`).

        First a place in the queue is taken for the identity (the executor's
        :meth:`~jupyter_qsecure.jobs.executor.Executor.admit`): when the user's share of
        the queue or the whole queue is taken the submission is refused with
        :class:`Busy` (HTTP 429 with ``Retry-After``), waiting or not, before its body is
        parsed and before anything is decided, counted against a quota or recorded. An
        accepted job keeps its place until it is queued, so a job answered 202 never
        finds the queue full later. Without ``wait`` the job is returned ``queued`` (its
        end is followed by :meth:`run`). A job that needs an approval is returned
        ``pending_approval`` and keeps its place until it is approved (:meth:`run`),
        cancelled or given up. ``archive_after``: see :meth:`complete`.
        """
        identity = self.authenticate(token)
        place = self._admit(identity)
        try:
            state = self.prepare(token, body, record_later=wait, identity=identity)
        except BaseException:
            if place is not None:
                place.release()
            raise
        state.place = place
        if state.status == JobStatus.PENDING_APPROVAL:
            return state
        try:
            if wait:
                return self.complete(state, archive_after=archive_after)
            self._enqueue(state)
            return state
        finally:
            _give_up_place(state)  # a no-op once the job was queued with it

    def submit_and_wait(self, token: str | None, body: Any) -> JobState:
        """``submit(token, body, wait=True)``."""
        return self.submit(token, body, wait=True)

    def _admit(self, identity: dict[str, Any]) -> QueuePlace | None:
        try:  # None from an executor without places: its submit() checks the queue
            return self.executor.admit(self.owner(identity))
        except QueueFull as exc:
            raise _busy(exc) from None

    def _enqueue(self, state: JobState) -> None:
        """Hand a job that nobody waits for to the executor's queue, with its place."""
        try:
            state.handle = self.executor.submit(
                state.job_id,
                state.payload,
                timeout=self.job_timeout,
                owner=self.owner(state.identity),
                place=state.place,
            )
        except QueueFull as exc:  # only an executor without places gets here
            self._record(state, "rejected", {"error": exc.message})
            state.status, state.error = JobStatus.FAILED, exc.message
            raise _busy(exc) from None

    def complete(self, state: JobState, *, archive_after: bool = False) -> JobState:
        """:meth:`_complete`, then :meth:`JobState.settle` the job once it has ended.

        A completed job is archived (for replay) and kept as an :class:`EndedJob`
        (:meth:`keep_ended`) before this returns; with ``archive_after`` the caller does
        both, once it has answered, with :meth:`archive` and :meth:`keep_ended`: nothing of
        the answer depends on them, so they leave the job's critical path (and the REST
        layer passes the record's bytes it answered with, encoded once).
        """
        try:
            self._complete(state)
        finally:
            if state.status in TERMINAL:
                state.settle()
        if not archive_after:
            if state.status == JobStatus.COMPLETED:
                self._archive_writer_now(state)
            self.keep_ended(state)
        return state

    def _complete(self, state: JobState) -> JobState:
        """Run an allowed, released job to the end in the calling (broker) thread: submit,
        wait, sign, then record everything in ONE durable ledger commit.

        The commit holds the entries ``prepare(record_later=True)`` left (``job.decided``,
        ``job.submitted``) and ``job.completed`` with the job's real outcome (completed,
        failed, cancelled, rejected, or not signed). Nothing of the result is visible
        (status, counts, manifest) before that commit succeeded; if it fails, the result
        is dropped and :class:`Unavailable` raised. One thread follows the job, so the
        result reaches the signing code without hopping through the event loop; broker
        threads outnumber the jobs the executor accepts, so waiting never starves others.
        """
        if state.handle is None:  # not queued yet (a waiting submission, an approved run)
            try:
                # here: this thread waits for the result anyway, so it may run the job itself
                state.handle = self.executor.submit(
                    state.job_id,
                    state.payload,
                    timeout=self.job_timeout,
                    here=True,
                    owner=self.owner(state.identity),
                    place=state.place,
                )
            except QueueFull as exc:  # only without a held place
                self._record(state, "rejected", {"error": exc.message})
                state.status, state.error = JobStatus.FAILED, exc.message
                raise _busy(exc) from None
        # still "queued" here: current_status() says "running" once a worker has it
        try:
            outcome = state.handle.result()
        except ExecutorError as exc:
            status = (
                JobStatus.CANCELLED if state.status == JobStatus.CANCELLED else JobStatus.FAILED
            )
            self._record(state, status.value, {"error": exc.message})
            state.status, state.error = status, exc.message
            return state
        handle = state.handle
        if handle.started_at is not None and handle.finished_at is not None:
            run = (handle.finished_at - handle.started_at) * 1000
            waited = (time.time() - handle.submitted_at) * 1000
            state.timings["queue"] = max(0.0, waited - run)
            state.timings["run"] = run
        try:
            sealed = self._seal(state, outcome)
        except QSecureError as exc:  # e.g. OpenBao down: no signature, no result
            error = f"the result could not be signed: {exc.message}"
            self._record(state, "failed", {"error": error})
            state.status, state.error = JobStatus.FAILED, error
            raise Unavailable(
                error, hint=exc.hint, payload={"job_id": state.job_id, "status": "failed"}
            ) from None
        recording = time.perf_counter()
        self._record(state, "completed", sealed.completion)
        state.timings["record"] = (time.perf_counter() - recording) * 1000
        state.manifest, state.result_envelope = sealed.manifest, sealed.result_envelope
        state.result = sealed.result
        state.status = JobStatus.COMPLETED
        return state

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run blocking broker work (OpenBao, ledger, parsing) in the broker's own threads.

        Not the event loop's default executor: that has ``cpus + 4`` threads, shared with
        the rest of Jupyter Server (contents, kernels), and jobs waiting on a signature
        or a durable commit would starve it (and be starved by it).
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def _approval(self, state: JobState) -> bool:
        """Wait (without holding a thread) until the job is approved or cancelled."""
        loop = asyncio.get_running_loop()
        wakeup = asyncio.Event()
        state.wake = lambda: loop.call_soon_threadsafe(wakeup.set)
        if state.approved.is_set():
            return True
        try:
            await asyncio.wait_for(wakeup.wait(), self.job_timeout)
        except asyncio.TimeoutError:
            return state.approved.is_set()
        return True

    def _record(self, state: JobState, status: str, fields: dict[str, Any]) -> None:
        """Commit the job's unwritten entries and its ``job.completed`` in one transaction;
        on failure mark the job failed and raise :class:`Unavailable` (fail closed)."""
        with self._lock:
            entries = [
                *state.unrecorded,
                ("job.completed", {"job_id": state.job_id, "status": status, **fields}),
            ]
            state.unrecorded = []
        actor = f"user:{state.identity['user']}"
        try:
            self._append_many(entries, actor=actor, correlation_id=state.job_id)
        except Exception as exc:  # fail closed: no record, no result
            reason = exc.message if isinstance(exc, QSecureError) else type(exc).__name__
            state.status = JobStatus.FAILED
            state.error = f"the job could not be recorded in the ledger: {reason}"
            log.error("job %s: %s", state.job_id, state.error)
            # ...and recorded as soon as the ledger takes writes again: a completed job as
            # failed (its result was not released), any other outcome as it was
            kind, completion = entries[-1]
            failed = (
                kind,
                {
                    **completion,
                    "status": "failed" if status == "completed" else status,
                    "error": f"{state.error}; its result was not released"
                    if status == "completed"
                    else f"{completion.get('error') or status} ({state.error})",
                },
            )
            with self._lock:
                self._unwritten.append((state.job_id, actor, [*entries[:-1], failed]))
            raise Unavailable(
                state.error,
                hint="check the ledger (`jupyter qsecure audit verify`)",
                payload={"job_id": state.job_id, "status": "failed"},
            ) from None

    def _seal(self, state: JobState, outcome: dict[str, Any]) -> _Sealed:
        """Build and sign the manifest and the result (one signing call); nothing is
        published on ``state`` but the transpiled hashes."""
        state.transpiled_hashes = list(outcome["transpiled_hashes"])
        metadata = dict(outcome["metadata"])
        seed = metadata.get("seed", state.request["seed"])
        statement = build_job_statement(
            job_id=state.job_id,
            circuit_hashes=state.circuit_hashes,
            transpiled_hashes=state.transpiled_hashes,
            identity=state.identity,
            backend=state.request["backend"],
            options={
                "shots": state.request["shots"],
                "seed": seed,
                "method": state.request["method"],
                "noise_model_sha256": noise_model_sha256(state.request["noise"]),
                "error_mitigation": None,
                "noise": state.request["noise"],
                "tags": list(state.request["tags"]),
            },
            decision={
                "decision_id": state.decision.decision_id,
                "policy_sha256": state.decision.policy_sha256,
                "allowed": state.decision.allowed,
                "rule": state.decision.rule,
            },
            correlation_id=state.job_id,
            submitted_at=state.decision.evaluated_at,
            request_id=state.request_id,
        )
        # Each statement is written as canonical JSON once: the ledger records the
        # digest of the very bytes that are signed.
        job_body = canonical_statement(statement)
        manifest_sha256 = hashlib.sha256(job_body).hexdigest()
        counts = outcome["counts"]
        result_statement = build_result_statement(
            job_id=state.job_id,
            manifest_digest=manifest_sha256,
            counts=counts,
            metadata=metadata,
            completed_at=_utc(),
        )
        # One signing call for both (and, through a BatchingSigner, shared with the
        # jobs that finish at the same moment).
        began = time.perf_counter()
        bodies = [job_body, canonical_statement(result_statement)]
        manifest, result_envelope = sign_bodies(bodies, self.signer)
        state.timings["sign"] = (time.perf_counter() - began) * 1000
        self._note_signer_versions([manifest, result_envelope])
        return _Sealed(
            manifest=manifest,
            result_envelope=result_envelope,
            result={"counts": counts, "metadata": metadata},
            completion={
                "manifest_sha256": manifest_sha256,
                # the digest the signed result names (result_digest of counts, metadata)
                "result_sha256": result_statement["subject"][0]["digest"]["sha256"],
                "transpiled_hashes": state.transpiled_hashes,
            },
        )

    # ---- the archive (for replay) -------------------------------------------------------------
    def archive(self, state: JobState, record: dict[str, Any] | None = None) -> None:
        """Archive a completed job (what ``jupyter qsecure replay`` re-runs) in the
        archive's own thread, with the other jobs queued by then (one transaction): for a
        caller of ``complete(..., archive_after=True)``, once it has answered. ``record``:
        the job's :meth:`JobState.record` if the caller built it already (not changed
        afterwards). Readers of the archive in this process call :meth:`flush_archive`
        first. Does nothing for a job that did not complete or without an archive."""
        writer = self._archive_writer()
        if writer is None or state.status != JobStatus.COMPLETED:
            return
        try:
            if not self._closed:
                writer.put(state.job_id, self._archive_record(state, record))
                return
        except RuntimeError:  # the writer closed meanwhile
            pass
        # the broker is shutting down (the job's answer is out; its ledger record holds)
        log.warning("job %s was not archived: the broker is shutting down", state.job_id)

    def flush_archive(self, timeout: float | None = 10.0) -> bool:
        """Wait until the jobs :meth:`archive` queued so far are written (or failed,
        logged); False if ``timeout`` passed first."""
        writer = self._archiver
        return True if writer is None else writer.flush(timeout)

    def _archive_writer_now(self, state: JobState) -> None:
        writer = self._archive_writer()
        if writer is not None:
            writer.write_now(state.job_id, self._archive_record(state))

    @staticmethod
    def _archive_record(
        state: JobState, record: dict[str, Any] | None = None
    ) -> Callable[[], dict[str, Any]]:
        """What builds the job's archive record: its JobRecord as of now (or ``record``,
        already built) with the worker payload added."""
        built = record if record is not None else state.record()
        payload = state.payload
        return lambda: {**built, "payload": payload}

    def _archive_writer(self) -> ArchiveWriter | None:
        if self.archive_dir is None:
            return None
        writer = self._archiver
        if writer is None:
            directory = self.archive_dir
            with self._lock:
                if self._archiver is None:
                    self._archiver = ArchiveWriter(lambda: JobArchive(directory))
                writer = self._archiver
        return writer

    # ---- queries ------------------------------------------------------------------------------
    def get(self, token: str | None, job_id: str) -> JobState | EndedJob:
        """The caller's job (in flight, or ended: then an :class:`EndedJob`); a job of
        another user is not found, as one that does not exist."""
        identity = self.authenticate(token)
        state = self._jobs.get(job_id)
        if state is None or state.user != identity.get("user"):
            raise NotFound(f"no job {job_id} for this user", hint="check the job id")
        return state

    def cancel(self, token: str | None, job_id: str) -> JobState | EndedJob:
        state = self.get(token, job_id)
        if isinstance(state, EndedJob) or state.status in TERMINAL:
            return state
        state.status = JobStatus.CANCELLED
        if state.handle is not None:
            self.executor.cancel(job_id)
        self._release(state)
        with self._lock:  # entries not written yet: keep the ledger in the job's order
            if state.unrecorded:
                state.unrecorded.append(("job.cancelled", {"job_id": job_id}))
                return state
        actor = f"user:{state.identity['user']}"
        try:
            self._append_many(
                [("job.cancelled", {"job_id": job_id})], actor=actor, correlation_id=job_id
            )
        except Exception as exc:  # cancelled all the same; recorded when the ledger is back
            with self._lock:
                self._unwritten.append((job_id, actor, [("job.cancelled", {"job_id": job_id})]))
            log.error("job %s: cancellation not recorded yet (%s)", job_id, type(exc).__name__)
        return state

    def take_approvals(self, start: int, end: int) -> int:
        """Verify the ``job.approved`` entries at ledger indexes ``start`` to ``end``.

        Each approval of a job waiting here is checked (:class:`ApprovalVerifier`): a
        valid one is recorded as ``job.released`` (approver and submitter) and releases
        the job; any other as ``job.approval_refused`` (why). Returns the index to resume
        from: ``end``, or the first approval whose outcome could not be recorded (the
        ledger failed; its job stays waiting and it is checked again next time).
        """
        from ..ledger import EntryFilter

        entries = self.ledger.entries(EntryFilter(kinds=["job.approved"], start=start))
        for entry in entries:
            if entry.index >= end:
                break
            try:
                self.take_approval(entry.index, entry.body)
            except Exception as exc:
                log.warning(
                    "job approvals: the outcome of ledger entry %d could not be recorded (%s); "
                    "checked again shortly",
                    entry.index,
                    type(exc).__name__,
                )
                return int(entry.index)
        return end

    def take_approval(self, index: int, body: dict[str, Any]) -> str | None:
        """Verify one recorded approval (ledger entry ``index``); release its job if it
        holds. Returns ``released``, ``refused``, or None when no job here waits for it."""
        job_id = body.get("job_id")
        state = self._jobs.get(job_id) if isinstance(job_id, str) else None
        if not isinstance(state, JobState) or state.status != JobStatus.PENDING_APPROVAL:
            return None  # none, or ended (an EndedJob)
        submitter = str(state.user)
        try:
            if self.approvals is None:
                raise ApprovalRefused("this server trusts no approver")
            verified = self.approvals.verify(
                body,
                job_id=state.job_id,
                decision_id=state.decision.decision_id,
                subject=approval_subject(
                    state.job_id, state.decision.decision_id, state.circuit_hashes, state.request
                ),
                submitter=submitter,
                allow_self=self.engine.policy.rules.allow_self_approval,
            )
        except ApprovalRefused as exc:
            log.warning(
                "job %s: approval (ledger entry %d) refused: %s", state.job_id, index, exc.message
            )
            self._append_many(
                [
                    (
                        "job.approval_refused",
                        {
                            "job_id": state.job_id,
                            "approval_index": index,
                            "submitter": submitter,
                            "reason": exc.message,
                        },
                    )
                ],
                actor="qsecure:broker",
                correlation_id=state.job_id,
            )
            return "refused"
        # recorded before the job is released: a job never runs on an unrecorded approval
        self._append_many(
            [
                (
                    "job.released",
                    {
                        "job_id": state.job_id,
                        "approval_index": index,
                        "approver": verified.to_ledger(),
                        "submitter": {
                            "user": submitter,
                            "kernel_id": state.identity.get("kernel_id"),
                        },
                    },
                )
            ],
            actor=f"approver:{verified.approver}",
            correlation_id=state.job_id,
        )
        if state.status != JobStatus.PENDING_APPROVAL:  # cancelled meanwhile
            return None
        state.status = JobStatus.QUEUED
        self._release(state)
        log.info("job %s approved by %s (%s)", state.job_id, verified.approver, verified.source)
        return "released"

    @staticmethod
    def _release(state: JobState) -> None:
        """End a wait for approval (approved or cancelled), waking ``run`` if it waits."""
        state.approved.set()
        if state.wake is not None:
            state.wake()

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._parser is not None:
            self._parser.close()
        if self._executor is not None:
            self._executor.close()
        if self._archiver is not None:
            self._archiver.close()
