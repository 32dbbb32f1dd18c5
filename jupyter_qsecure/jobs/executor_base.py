"""The parts both job executors share: their errors, :class:`JobHandle`, the
:class:`Executor` protocol and the bounded queue (:class:`_QueuedExecutor`).

The executors themselves are :class:`~jupyter_qsecure.jobs.local_executor.LocalExecutor`
and :class:`~jupyter_qsecure.jobs.dask_executor.DaskExecutor`; import all of it from
:mod:`jupyter_qsecure.jobs.executor`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

from jupyter_qsecure.errors import ConfigError, QSecureError

from .fair_queue import FairQueue

log = logging.getLogger(__name__)

#: A handle's status. (The broker's job records have their own, wider set:
#: :class:`jupyter_qsecure.jobs.status.JobStatus`.)
HandleStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
#: Which limit refused a job: the submitting owner's share of the queue, or the queue.
QueueScope = Literal["user", "global"]
_TERMINAL = frozenset({"completed", "failed", "cancelled"})


# ---- errors -------------------------------------------------------------------------------
class ExecutorError(QSecureError):
    """Base class of the executors' errors (a bad submission, or a job that did not finish)."""


class QueueFull(ExecutorError):
    """The bounded job queue is full: retry after ``retry_after_seconds`` (HTTP 429).

    ``scope`` says which limit: ``"user"`` (the owner already has ``limit`` jobs waiting)
    or ``"global"`` (``limit`` jobs wait in all); ``waiting`` is how many do.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after_seconds: int,
        scope: QueueScope = "global",
        limit: int | None = None,
        waiting: int | None = None,
    ) -> None:
        super().__init__(message, hint=f"retry in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds
        self.scope: QueueScope = scope
        self.limit = limit
        self.waiting = waiting


class ExecutorClosed(ExecutorError):
    """The executor was closed; it accepts no more jobs."""


class ExecutorUnavailable(ExecutorError):
    """The executor's backend (worker processes, the Dask scheduler) cannot be reached."""


class ResultNotReady(ExecutorError, TimeoutError):
    """``JobHandle.result(timeout=...)`` gave up waiting; the job itself goes on."""


class JobTimeout(ExecutorError):
    """The job ran longer than its timeout and was stopped."""


class JobCancelled(ExecutorError):
    """The job was cancelled (by request, or because the executor shut down)."""


class WorkerCrashed(ExecutorError):
    """The worker running the job died (exit, signal, out of memory) before replying."""


class JobFailed(ExecutorError):
    """The job ran and raised (bad payload, Aer error); ``detail`` holds the traceback."""

    def __init__(self, message: str, *, hint: str | None = None, detail: str = "") -> None:
        super().__init__(message, hint=hint)
        self.detail = detail


def _owner_of(job: _Job) -> str:
    return job.owner


# ---- job handles --------------------------------------------------------------------------
class JobHandle:
    """One submitted job: its status, and its result when it has one.

    ``result()`` blocks the calling thread; from a Tornado/asyncio handler use
    ``await handle.wait()`` instead. Cancelling that awaitable stops waiting, not the job:
    cancel the job with :meth:`Executor.cancel`.
    """

    def __init__(self, job_id: str, timeout: float, owner: str = "") -> None:
        self.job_id = job_id
        self.timeout = timeout
        self.owner = owner
        self.status: HandleStatus = "queued"
        self.submitted_at = time.time()
        #: Jobs the executor had dispatched when this one was queued, and this job's own
        #: number in dispatch order (1 = the first job it ever dispatched): how many
        #: jobs went ahead of it is ``dispatch_seq - queue_seq - 1``.
        self.queue_seq: int | None = None
        self.dispatch_seq: int | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        self._started = threading.Event()
        #: Set by ``LocalExecutor.submit(..., here=True)``: the first ``result()`` or
        #: ``exception()`` call runs the job in its own thread.
        self._run_here: Callable[[], None] | None = None
        #: Set by ``LocalExecutor.submit(..., here=True)`` when the job had to queue:
        #: ``result()`` and ``exception()`` wait for its turn with it (``timeout``), and
        #: when a worker is handed to the waiting thread, run the job in that thread.
        self._wait_turn: Callable[[float | None], None] | None = None

    def _drive(self, timeout: float | None) -> float | None:
        """Run the job here if this thread may (see ``_run_here``, ``_wait_turn``); the
        time left of ``timeout`` to wait for the outcome."""
        deadline = None if timeout is None else time.monotonic() + timeout
        wait_turn = self._wait_turn
        if wait_turn is not None:
            wait_turn(timeout)  # ResultNotReady when the timeout passed before its turn
        run, self._run_here = self._run_here, None
        if run is not None:
            run()
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def __repr__(self) -> str:
        return f"<JobHandle {self.job_id} {self.status}>"

    def done(self) -> bool:
        """True once the job completed, failed or was cancelled."""
        return self._future.done()

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """The job's result; raises the job's error, or :class:`ResultNotReady` on timeout."""
        timeout = self._drive(timeout)
        try:
            return self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise ResultNotReady(
                f"job {self.job_id} is still {self.status} after waiting {timeout} s"
            ) from None

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The job's error (``None`` if it completed); same waiting rules as :meth:`result`."""
        timeout = self._drive(timeout)
        try:
            return self._future.exception(timeout)
        except concurrent.futures.TimeoutError:
            raise ResultNotReady(
                f"job {self.job_id} is still {self.status} after waiting {timeout} s"
            ) from None

    def wait(self, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Future[dict[str, Any]]:
        """An asyncio future, on ``loop`` (default: the running loop), for the job's result.

        Safe to await from Tornado handlers: the result is delivered with
        ``call_soon_threadsafe`` and nothing blocks the loop.
        """
        loop = loop or asyncio.get_running_loop()
        waiter: asyncio.Future[dict[str, Any]] = loop.create_future()

        def deliver(source: concurrent.futures.Future[dict[str, Any]]) -> None:
            def settle() -> None:
                if waiter.done():
                    return
                error = source.exception()
                if error is not None:
                    waiter.set_exception(error)
                else:
                    waiter.set_result(source.result())

            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:  # the loop was closed meanwhile: nobody is waiting
                pass

        self._future.add_done_callback(deliver)
        return waiter

    def add_done_callback(self, fn: Callable[[JobHandle], Any]) -> None:
        """Call ``fn(handle)`` when the job finishes (in the executor's thread, or at once)."""
        self._future.add_done_callback(lambda _: fn(self))

    def wait_started(self, timeout: float | None = None) -> bool:
        """Block until the job started running (or finished); False if ``timeout`` passed."""
        if self._started.wait(timeout):
            return True
        return self.done()


@runtime_checkable
class Executor(Protocol):
    """What the job service needs from an executor."""

    def admit(self, owner: str = "") -> QueuePlace | None:
        """A held place in the queue for one job of ``owner`` (:class:`QueueFull` when
        there is none), or None from an executor without a queue to share."""
        ...

    def submit(
        self,
        job_id: str,
        payload: dict[str, Any],
        *,
        timeout: float,
        here: bool = False,
        owner: str = "",
        place: QueuePlace | None = None,
    ) -> JobHandle: ...

    def cancel(self, job_id: str) -> bool: ...

    def close(self) -> None: ...

    @property
    def queue_depth(self) -> int: ...

    @property
    def capacity(self) -> int: ...


class QueuePlace:
    """A place in the queue, held for one job from its submission until the job is
    queued (``submit(..., place=...)`` uses it up) or given up (:meth:`release`).

    :meth:`_QueuedExecutor.admit` hands it out, and that is where a full queue is
    refused: before the broker parses, decides or records anything, so a refused
    submission costs nothing and a job that was answered "accepted" never finds the
    queue full later. A held place counts as a waiting job of its owner.
    """

    __slots__ = ("_executor", "_held", "owner")

    def __init__(self, executor: _QueuedExecutor, owner: str) -> None:
        self._executor = executor
        self.owner = owner
        self._held = True

    @property
    def held(self) -> bool:
        """True until the place is used by a submission or released."""
        return self._held

    def release(self) -> None:
        """Give the place back (the job was refused, failed or cancelled before it was
        queued). Idempotent; a no-op once ``submit`` used it."""
        self._executor._give_back(self)

    def __repr__(self) -> str:
        return f"<QueuePlace {self.owner!r} {'held' if self._held else 'spent'}>"


class _Job:
    __slots__ = (
        "cancel_reason",
        "deadline",
        "go",
        "handed",
        "handle",
        "owner",
        "payload",
        "runner",
        "started",
        "waiting",
    )

    def __init__(self, handle: JobHandle, payload: dict[str, Any]) -> None:
        self.handle = handle
        self.owner = handle.owner
        self.payload = payload
        self.cancel_reason: str | None = None
        self.runner: Any = None  # the worker process (local) or Dask future running it
        self.started = 0.0  # time.monotonic() when it started running
        self.deadline = math.inf
        #: For a queued job whose submitter waits to run it itself (``here=True``): the
        #: condition (on the executor's lock) that thread waits on, the worker handed to
        #: it, and whether it waits now (else a slot thread runs the job).
        self.go: threading.Condition | None = None
        self.handed: Any = None
        self.waiting = False


class _QueuedExecutor:
    """The bounded fair queue, bookkeeping and error delivery both executors share.

    Jobs wait in a :class:`~jupyter_qsecure.jobs.fair_queue.FairQueue`: round robin
    across owners (``submit(..., owner=...)``), FIFO within one. At most ``max_queued``
    jobs wait in all, and at most ``max_queued_per_owner`` (default: ``max_queued``) of
    one owner, so one user cannot fill the queue for everyone.
    """

    def __init__(self, max_queued: int, max_queued_per_owner: int | None = None) -> None:
        if max_queued < 0:
            raise ConfigError(f"max_queued must be >= 0, got {max_queued}")
        if max_queued_per_owner is not None and max_queued_per_owner < 1:
            raise ConfigError(
                f"max_queued_per_owner must be >= 1, got {max_queued_per_owner}",
                hint="leave it unset for no limit below max_queued",
            )
        self._max_queued = max_queued
        self._max_per_owner = min(
            max_queued, max_queued if max_queued_per_owner is None else max_queued_per_owner
        )
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending: FairQueue[_Job] = FairQueue(_owner_of)
        self._jobs: dict[str, _Job] = {}  # queued and running jobs
        self._places: collections.Counter[str] = collections.Counter()  # held, per owner
        self._places_total = 0
        self._dispatched = 0  # jobs taken from the queue (or run at once) so far
        # Dispatched and not finished: running, or about to (all, and per owner).
        self._in_flight = 0
        self._in_flight_by: collections.Counter[str] = collections.Counter()
        self._owners_seen: set[str] = set()  # up to two: is there more than one user?
        self._closing = False
        self._avg_seconds = 1.0  # moving average of run times, for Retry-After

    # -- public API ------------------------------------------------------------------------
    @property
    def queue_depth(self) -> int:
        """Jobs waiting for a worker (not counting running ones)."""
        return len(self._pending)

    @property
    def capacity(self) -> int:
        """How many jobs may wait before :meth:`submit` raises :class:`QueueFull`."""
        return self._max_queued

    @property
    def capacity_per_owner(self) -> int:
        """How many jobs of one owner may wait (held places included)."""
        return self._max_per_owner

    def waiting(self, owner: str) -> int:
        """Jobs of ``owner`` waiting for a worker, plus the places it holds."""
        with self._lock:
            return self._pending.count(owner) + self._places[owner]

    @property
    def running(self) -> int:
        """Jobs running now."""
        with self._lock:
            return len(self._jobs) - len(self._pending)

    def handle(self, job_id: str) -> JobHandle | None:
        """The handle of a queued or running job, else ``None``."""
        job = self._jobs.get(job_id)
        return job.handle if job else None

    def admit(self, owner: str = "") -> QueuePlace:
        """Hold a place in the queue for one job of ``owner``; :class:`QueueFull` when
        the owner's share or the whole queue is taken. Pass the place to :meth:`submit`,
        or :meth:`QueuePlace.release` it if the job does not go ahead."""
        with self._cond:
            if self._closing:
                raise ExecutorClosed("the executor is shut down; no job is accepted")
            self._see_owner_locked(owner)
            self._check_room_locked(owner, "")
            self._places[owner] += 1
            self._places_total += 1
        return QueuePlace(self, owner)

    def _give_back(self, place: QueuePlace) -> None:
        if not place._held:  # spent or released already: nothing changes, nobody to wake
            return
        with self._cond:
            if place._held:
                self._spend_locked(place)
                self._wake_locked()

    def _wake_locked(self) -> None:
        """Wake the executor's threads waiting on ``_cond`` after a job finished or a
        place was given back (lock held). Executors whose waiters can tell when none of
        them could go on override this to skip the wake-up (each costs a thread switch)."""
        self._cond.notify_all()

    def _spend_locked(self, place: QueuePlace) -> None:
        if not place._held:
            return
        place._held = False
        self._places[place.owner] -= 1
        if self._places[place.owner] <= 0:
            del self._places[place.owner]
        self._places_total -= 1

    def _check_room_locked(self, owner: str, job_id: str) -> None:
        """Raise :class:`QueueFull` unless one more job of ``owner`` may wait."""
        what = f"job {job_id}" if job_id else "the job"
        mine = self._pending.count(owner) + self._places[owner]
        if mine >= self._max_per_owner and self._max_per_owner < self._max_queued:
            raise QueueFull(
                f"{mine} jobs of the same user are already waiting, the most one user may "
                f"have queued ({self._max_per_owner}); {what} was not accepted",
                retry_after_seconds=self._retry_after_locked("user"),
                scope="user",
                limit=self._max_per_owner,
                waiting=mine,
            )
        total = len(self._pending) + self._places_total
        if total >= self._max_queued:
            raise QueueFull(
                f"the job queue is full ({total} jobs waiting for {self._slots()} workers); "
                f"{what} was not accepted",
                retry_after_seconds=self._retry_after_locked("global"),
                scope="global",
                limit=self._max_queued,
                waiting=total,
            )

    def submit(
        self,
        job_id: str,
        payload: dict[str, Any],
        *,
        timeout: float,
        here: bool = False,
        owner: str = "",
        place: QueuePlace | None = None,
    ) -> JobHandle:
        """Queue ``payload`` (a :func:`run_aer` payload) as ``job_id``; returns at once.

        ``owner`` is whose job it is (the fair queue takes turns between owners).
        ``place``, from :meth:`admit`, is used up: the job is queued even if the queue
        filled up since; without one, a full queue raises :class:`QueueFull` here.
        ``here=True`` says the caller will wait for the job with :meth:`JobHandle.result`;
        an executor that can, runs the job in that thread instead of queueing it (see
        :meth:`_reserve_locked`); the others ignore it.
        """
        if not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
            raise ExecutorError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if not isinstance(payload, dict):
            raise ExecutorError(f"payload must be a dict, got {type(payload).__name__}")
        with self._cond:
            if self._closing:
                raise ExecutorClosed(f"the executor is shut down; job {job_id} was not accepted")
            if job_id in self._jobs:
                raise ExecutorError(f"job {job_id} is already queued or running")
            if place is not None and (place._executor is not self or not place._held):
                raise ExecutorError(f"job {job_id}: its queue place was already used or released")
            if place is not None and place.owner != owner:
                raise ExecutorError(f"job {job_id}: its queue place belongs to another owner")
            self._see_owner_locked(owner)
            job = _Job(JobHandle(job_id, float(timeout), owner), payload)
            if here and self._reserve_locked(job):
                if place is not None:
                    self._spend_locked(place)
                self._jobs[job_id] = job
                self._count_dispatch_locked(job)
                return job.handle
            if place is None:
                self._check_room_locked(owner, job_id)
            else:
                self._spend_locked(place)
            self._jobs[job_id] = job
            job.handle.queue_seq = self._dispatched
            self._pending.append(job)
            self._queued_locked(job, here)
        return job.handle

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued (at once) or running job (its worker is stopped).

        True if the job will end as cancelled; False if it is unknown or already finished.
        """
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.handle.status in _TERMINAL or job.cancel_reason:
                return False
            job.cancel_reason = f"job {job_id} was cancelled"
            if job.handle.status == "queued":
                if job in self._pending:  # else reserved to run in its submitter's thread
                    self._pending.remove(job)
                reason: str | None = f"job {job_id} was cancelled before it started"
            else:
                reason = job.cancel_reason if self._stop_running_locked(job) else None
        if reason:
            self._finish(job, error=JobCancelled(reason))
        return True

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # type: ignore[attr-defined]

    # -- for subclasses --------------------------------------------------------------------
    def _slots(self) -> int:
        raise NotImplementedError

    def _reserve_locked(self, job: _Job) -> bool:
        """Arrange for ``job`` to run in the thread that will wait for it (lock held); False
        to queue it instead (the default)."""
        return False

    def _queued_locked(self, job: _Job, here: bool) -> None:
        """``job`` was just queued (lock held): wake whoever takes it (default: every
        thread waiting on ``_cond``)."""
        self._cond.notify_all()

    def _stop_running_locked(self, job: _Job) -> bool:
        """Stop a running job whose ``cancel_reason`` was just set (lock held, no blocking).

        True when the caller should report the cancel now, False when the thread running
        the job reports it.
        """
        raise NotImplementedError

    def _retry_after_locked(self, scope: QueueScope = "global") -> int:
        slots = max(1, self._slots())
        if scope == "user":  # the owner's next job starts within one turn of every owner
            turns = max(1, self._pending.owners)
            return max(1, math.ceil(self._avg_seconds * turns / slots))
        waiting = len(self._pending) + self._places_total - self._max_queued + 1
        return max(1, math.ceil(self._avg_seconds * max(1, waiting) / slots))

    def _pop_locked(self) -> _Job:
        """The next job to run, in fair order (lock held, queue not empty)."""
        job = self._pending.popleft()
        self._count_dispatch_locked(job)
        return job

    def _pop_idle_owner_locked(self) -> _Job | None:
        """The next job, in fair order, of an owner with nothing in flight (lock held)."""
        job = self._pending.popleft_where(lambda owner: self._in_flight_by[owner] == 0)
        if job is not None:
            self._count_dispatch_locked(job)
        return job

    def _count_dispatch_locked(self, job: _Job) -> None:
        self._dispatched += 1
        job.handle.dispatch_seq = self._dispatched
        if job.handle.queue_seq is None:
            job.handle.queue_seq = self._dispatched - 1
        self._in_flight += 1
        self._in_flight_by[job.owner] += 1

    def _see_owner_locked(self, owner: str) -> None:
        if len(self._owners_seen) < 2 and owner not in self._owners_seen:
            self._owners_seen.add(owner)
            if len(self._owners_seen) == 2:
                self._cond.notify_all()  # e.g. a spare worker may start now

    def _mark_running_locked(self, job: _Job, runner: Any) -> None:
        job.handle.status = "running"
        job.handle.started_at = time.time()
        job.runner = runner
        job.started = time.monotonic()
        job.deadline = job.started + job.handle.timeout
        job.handle._started.set()

    def _finish(
        self, job: _Job, *, result: dict[str, Any] | None = None, error: Exception | None = None
    ) -> bool:
        """Deliver the job's outcome once; False if it had already finished."""
        with self._cond:
            handle = job.handle
            if handle.status in _TERMINAL:
                return False
            if error is None:
                handle.status = "completed"
            elif isinstance(error, JobCancelled):
                handle.status = "cancelled"
            else:
                handle.status = "failed"
            handle.finished_at = time.time()
            if handle.dispatch_seq is not None:  # it was in flight
                self._in_flight -= 1
                self._in_flight_by[job.owner] -= 1
                if self._in_flight_by[job.owner] <= 0:
                    del self._in_flight_by[job.owner]
            if self._jobs.get(handle.job_id) is job:
                del self._jobs[handle.job_id]
            if job.started and error is None:
                elapsed = time.monotonic() - job.started
                self._avg_seconds = 0.8 * self._avg_seconds + 0.2 * elapsed
            job.payload = {}
            job.runner = None
            if job.go is not None:
                job.go.notify()  # its submitter, waiting for its turn: it is over
            self._wake_locked()
        handle._started.set()
        if error is None:
            handle._future.set_result(result or {})
        else:
            handle._future.set_exception(error)
        return True

    def _drain_pending_locked(self, reason: str) -> list[tuple[_Job, JobCancelled]]:
        dropped = [
            (job, JobCancelled(reason.format(job=job.handle.job_id))) for job in self._pending
        ]
        self._pending.clear()
        return dropped
