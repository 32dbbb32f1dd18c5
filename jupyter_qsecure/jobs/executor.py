"""Where circuits run: Aer in worker processes, or on a Dask cluster.

Both executors share one API (:class:`Executor`) and one set of errors:

- :meth:`Executor.submit` returns a :class:`JobHandle` at once, never blocking on the job;
  when ``capacity`` jobs are already waiting it raises :class:`QueueFull` with
  ``retry_after_seconds`` (the REST layer answers 429 with ``Retry-After``).
- :meth:`JobHandle.result` returns :func:`~jupyter_qsecure.jobs.aer_run.run_aer`'s dict or
  raises :class:`JobTimeout`, :class:`JobCancelled`, :class:`WorkerCrashed` or
  :class:`JobFailed`; :meth:`JobHandle.wait` gives an asyncio future for Tornado handlers.
- :meth:`Executor.cancel` removes a queued job at once and stops a running one.

:class:`LocalExecutor` is a small process pool of its own rather than
:class:`concurrent.futures.ProcessPoolExecutor`: that pool cannot stop one task (only the
whole pool), and one worker dying breaks it for every job in flight. Here each of
``max_workers`` worker processes (started with ``spawn``: the server has threads, so ``fork``
is unsafe) is driven over a pipe by the thread that runs a job on it: one of ``max_workers``
slot threads for queued jobs, or, for ``submit(..., here=True)``, the thread that waits for
the job (it runs the job itself when a worker is idle, saving two thread hand-offs):

- **Timeout**: the running thread waits for the reply with the job's deadline (the clock starts
  when the job is handed to an already running, warmed-up worker, so queueing and worker
  start-up do not count). When the deadline passes it kills the worker (SIGKILL: Aer's C++
  loops cannot be interrupted any other way), fails the job with :class:`JobTimeout` and
  starts a fresh worker. Other slots' jobs are unaffected.
- **Cancel**: a queued job is removed from the queue and fails with :class:`JobCancelled`
  immediately; a running job's worker is killed, the job fails with :class:`JobCancelled`
  and a fresh worker replaces it.
- **Crash**: when a worker exits mid-job (``os._exit``, a segfault, the OOM killer) the
  running thread sees the process sentinel, fails that job with :class:`WorkerCrashed` (exit
  code or signal in the message) and starts a fresh worker; queued jobs keep running.

:class:`DaskExecutor` keeps the same bounded queue on the client side and hands jobs to the
cluster only while it has an idle worker thread, so a job starts running when it is
submitted to Dask and its timeout measures run time. Dask cannot stop a running task: on a
timeout or cancel the job fails at once, its Dask future is cancelled and the worker running
it is restarted through its nanny (``Client.restart_workers``; Dask reschedules any other
task that was on it). Without a nanny the task's thread runs to completion and its result is
dropped. A worker that dies mid-task makes Dask retry the task on another worker up to the
scheduler's ``distributed.scheduler.allowed-failures`` (default 3) before it reports
``KilledWorker``, which becomes :class:`WorkerCrashed`; set it to 0 on the scheduler to fail a
crashing job on its first crash.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import logging
import math
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from multiprocessing.connection import wait as wait_for
from typing import Any, Literal, Protocol, runtime_checkable

from jupyter_qsecure.errors import ConfigError, QSecureError

__all__ = [
    "DaskExecutor",
    "Executor",
    "ExecutorClosed",
    "ExecutorError",
    "ExecutorUnavailable",
    "JobCancelled",
    "JobFailed",
    "JobHandle",
    "JobTimeout",
    "LocalExecutor",
    "QueueFull",
    "ResultNotReady",
    "WorkerCrashed",
    "executor_from_settings",
]

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
_TERMINAL = frozenset({"completed", "failed", "cancelled"})


# ---- errors -------------------------------------------------------------------------------
class ExecutorError(QSecureError):
    """Base class of the executors' errors (a bad submission, or a job that did not finish)."""


class QueueFull(ExecutorError):
    """The bounded job queue is full: retry after ``retry_after_seconds`` (HTTP 429)."""

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message, hint=f"retry in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


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


# ---- job handles --------------------------------------------------------------------------
class JobHandle:
    """One submitted job: its status, and its result when it has one.

    ``result()`` blocks the calling thread; from a Tornado/asyncio handler use
    ``await handle.wait()`` instead. Cancelling that awaitable stops waiting, not the job:
    cancel the job with :meth:`Executor.cancel`.
    """

    def __init__(self, job_id: str, timeout: float) -> None:
        self.job_id = job_id
        self.timeout = timeout
        self.status: JobStatus = "queued"
        self.submitted_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        self._started = threading.Event()
        #: Set by ``LocalExecutor.submit(..., here=True)``: the first ``result()`` or
        #: ``exception()`` call runs the job in its own thread.
        self._run_here: Callable[[], None] | None = None

    def _drive(self) -> None:
        run, self._run_here = self._run_here, None
        if run is not None:
            run()

    def __repr__(self) -> str:
        return f"<JobHandle {self.job_id} {self.status}>"

    def done(self) -> bool:
        """True once the job completed, failed or was cancelled."""
        return self._future.done()

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """The job's result; raises the job's error, or :class:`ResultNotReady` on timeout."""
        self._drive()
        try:
            return self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise ResultNotReady(
                f"job {self.job_id} is still {self.status} after waiting {timeout} s"
            ) from None

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The job's error (``None`` if it completed); same waiting rules as :meth:`result`."""
        self._drive()
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

    def submit(
        self, job_id: str, payload: dict[str, Any], *, timeout: float, here: bool = False
    ) -> JobHandle: ...

    def cancel(self, job_id: str) -> bool: ...

    def close(self) -> None: ...

    @property
    def queue_depth(self) -> int: ...

    @property
    def capacity(self) -> int: ...


class _Job:
    __slots__ = ("cancel_reason", "deadline", "handle", "payload", "runner", "started")

    def __init__(self, handle: JobHandle, payload: dict[str, Any]) -> None:
        self.handle = handle
        self.payload = payload
        self.cancel_reason: str | None = None
        self.runner: Any = None  # the worker process (local) or Dask future running it
        self.started = 0.0  # time.monotonic() when it started running
        self.deadline = math.inf


class _QueuedExecutor:
    """The bounded queue, bookkeeping and error delivery both executors share."""

    def __init__(self, max_queued: int) -> None:
        if max_queued < 0:
            raise ConfigError(f"max_queued must be >= 0, got {max_queued}")
        self._max_queued = max_queued
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending: collections.deque[_Job] = collections.deque()
        self._jobs: dict[str, _Job] = {}  # queued and running jobs
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
    def running(self) -> int:
        """Jobs running now."""
        with self._lock:
            return len(self._jobs) - len(self._pending)

    def handle(self, job_id: str) -> JobHandle | None:
        """The handle of a queued or running job, else ``None``."""
        job = self._jobs.get(job_id)
        return job.handle if job else None

    def submit(
        self, job_id: str, payload: dict[str, Any], *, timeout: float, here: bool = False
    ) -> JobHandle:
        """Queue ``payload`` (a :func:`run_aer` payload) as ``job_id``; returns at once.

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
            job = _Job(JobHandle(job_id, float(timeout)), payload)
            if here and self._reserve_locked(job):
                self._jobs[job_id] = job
                return job.handle
            if len(self._pending) >= self._max_queued:
                retry = self._retry_after_locked()
                raise QueueFull(
                    f"the job queue is full ({len(self._pending)} jobs waiting for "
                    f"{self._slots()} workers); job {job_id} was not accepted",
                    retry_after_seconds=retry,
                )
            self._jobs[job_id] = job
            self._pending.append(job)
            self._cond.notify_all()
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

    def _stop_running_locked(self, job: _Job) -> bool:
        """Stop a running job whose ``cancel_reason`` was just set (lock held, no blocking).

        True when the caller should report the cancel now, False when the thread running
        the job reports it.
        """
        raise NotImplementedError

    def _retry_after_locked(self) -> int:
        waiting = len(self._pending) - self._max_queued + 1
        return max(1, math.ceil(self._avg_seconds * max(1, waiting) / max(1, self._slots())))

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
            if self._jobs.get(handle.job_id) is job:
                del self._jobs[handle.job_id]
            if job.started and error is None:
                elapsed = time.monotonic() - job.started
                self._avg_seconds = 0.8 * self._avg_seconds + 0.2 * elapsed
            job.payload = {}
            job.runner = None
            self._cond.notify_all()
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


# ---- local worker processes ---------------------------------------------------------------
def _worker_main(conn: Any, env: dict[str, str]) -> None:
    """Entry point of a :class:`LocalExecutor` worker process: run jobs until told to stop."""
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's Ctrl-C is the parent's job
    import qiskit_aer  # noqa: F401  (warm up before reporting ready)

    from jupyter_qsecure.jobs.aer_run import run_aer

    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        job_id, payload = message
        reply: tuple[Any, bool, Any]
        try:
            reply = (job_id, True, run_aer(payload))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, never lost
            reply = (job_id, False, (type(exc).__name__, str(exc), traceback.format_exc()))
        try:
            conn.send(reply)
        except Exception as exc:  # e.g. an unpicklable result
            conn.send((job_id, False, (type(exc).__name__, str(exc), traceback.format_exc())))


class _Worker:
    def __init__(self, process: Any, conn: Any, key: int) -> None:
        self.process = process
        self.conn = conn
        self.key = key  # its entry in LocalExecutor._workers

    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def kill(self) -> None:
        if self.process.exitcode is None:
            try:
                self.process.kill()
            except (OSError, ValueError):
                pass

    def dispose(self) -> None:
        self.kill()
        self.process.join(5)
        self.conn.close()


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "stopped responding"
    if exitcode < 0:
        try:
            return f"was killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


def _spawnable_main() -> None:
    """Let ``spawn`` start workers even when ``__main__`` was replaced by a module object
    without ``__spec__`` (IPython does this in embedded shells): spawn reads that attribute,
    and ``None`` tells it there is no main module to re-import in the child."""
    main = sys.modules.get("__main__")
    if main is not None and not hasattr(main, "__spec__"):
        try:
            main.__spec__ = None
        except AttributeError:
            pass


class LocalExecutor(_QueuedExecutor):
    """Aer in ``max_workers`` worker processes on this machine, with a bounded queue.

    ``worker_env`` is added to each worker's environment (e.g. ``{"QSECURE_TESTING": "1"}``
    enables :mod:`~jupyter_qsecure.jobs.aer_run`'s test hooks); ``mp_context`` is
    ``"spawn"`` (default) or ``"forkserver"``, never ``"fork"``; ``startup_timeout`` bounds
    how long a new worker may take to import Qiskit Aer and report ready.
    """

    def __init__(
        self,
        max_workers: int = 2,
        max_queued: int = 64,
        *,
        worker_env: Mapping[str, str] | None = None,
        mp_context: str = "spawn",
        startup_timeout: float = 120.0,
    ) -> None:
        if max_workers < 1:
            raise ConfigError(f"max_workers must be >= 1, got {max_workers}")
        if mp_context not in ("spawn", "forkserver"):
            raise ConfigError(
                f"mp_context must be 'spawn' or 'forkserver', got {mp_context!r}",
                hint="fork is unsafe in a server process that runs threads",
            )
        super().__init__(max_queued)
        self.max_workers = max_workers
        self._ctx: Any = multiprocessing.get_context(mp_context)
        self._env = dict(worker_env or {})
        self._startup_timeout = startup_timeout
        # Every live worker (None while one starts), by key; idle ones also in _idle.
        self._workers: dict[int, _Worker | None] = {}
        self._idle: list[_Worker] = []
        self._next_key = 0
        self._threads = [
            threading.Thread(
                target=self._slot_loop, args=(slot,), name=f"qsecure-executor-{slot}", daemon=True
            )
            for slot in range(max_workers)
        ]
        for thread in self._threads:
            thread.start()

    def _slots(self) -> int:
        return self.max_workers

    def _reserve_locked(self, job: _Job) -> bool:
        """For ``submit(..., here=True)``: when no job is waiting and a worker is idle, the
        job is not queued but reserved that worker, and the first
        :meth:`JobHandle.result` (or ``exception``) call runs it in the calling thread,
        talking to the worker itself. A thread that submits a job and then waits for it
        (the job broker) so saves two hand-offs between threads per job. Only for callers
        that will call ``result()``: nothing else starts a reserved job."""
        worker = self._idle_worker_locked() if not self._pending else None
        if worker is None:
            return False
        job.handle._run_here = functools.partial(self._run_reserved, worker, job)
        return True

    def close(self, *, wait: bool = False, timeout: float | None = 30.0) -> None:
        """Stop accepting jobs and stop the workers.

        ``wait=False`` (default) cancels queued jobs and kills running ones (they end with
        :class:`JobCancelled`); ``wait=True`` lets queued and running jobs finish first.
        """
        dropped: list[tuple[_Job, JobCancelled]] = []
        with self._cond:
            self._closing = True
            if not wait:
                dropped = self._drain_pending_locked(
                    "job {job} was cancelled: the executor shut down before it started"
                )
                for job in list(self._jobs.values()):
                    if job.handle.status == "running" and not job.cancel_reason:
                        job.cancel_reason = (
                            f"job {job.handle.job_id} was cancelled: the executor shut down"
                        )
                        self._stop_running_locked(job)
                    elif job.handle.status == "queued" and not job.cancel_reason:  # reserved
                        job.cancel_reason = (
                            f"job {job.handle.job_id} was cancelled: the executor shut down "
                            "before it started"
                        )
                        dropped.append((job, JobCancelled(job.cancel_reason)))
                for worker in self._workers.values():
                    if worker is not None:
                        worker.kill()  # also stops workers that are still starting
            self._cond.notify_all()
        for job, error in dropped:
            self._finish(job, error=error)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        with self._lock:
            workers = [w for w in self._workers.values() if w is not None]
            self._workers.clear()
            self._idle.clear()
        for worker in workers:
            worker.dispose()

    # -- workers -----------------------------------------------------------------------------
    def _stop_running_locked(self, job: _Job) -> bool:
        if isinstance(job.runner, _Worker):
            job.runner.kill()
        return False  # the thread running the job sees the worker die (or the flag)

    def _idle_worker_locked(self) -> _Worker | None:
        """A live idle worker, taken out of the idle list (lock held)."""
        while self._idle:
            worker = self._idle.pop()
            if worker.alive():
                return worker
            self._workers.pop(worker.key, None)  # died while idle (already exited: no wait)
            worker.dispose()
        return None

    def _acquire_worker(self) -> tuple[_Worker | None, str]:
        """An idle worker, or a new one while fewer than ``max_workers`` live; waits for
        one otherwise. (None, why) when none could be started."""
        with self._cond:
            while True:
                worker = self._idle_worker_locked()
                if worker is not None:
                    return worker, ""
                key = self._new_worker_key_locked()
                if key is not None:
                    break
                self._cond.wait()
        return self._start_worker(key, for_job=True)

    def _new_worker_key_locked(self) -> int | None:
        """A key for one more worker, counted from now on, or None at ``max_workers``."""
        if len(self._workers) >= self.max_workers:
            return None
        key = self._next_key
        self._next_key += 1
        self._workers[key] = None  # counted while it starts
        return key

    def _release_worker(self, worker: _Worker, healthy: bool) -> None:
        """Give a worker back after a job: idle again, or replaced when it must be."""
        with self._cond:
            keep = healthy and (not self._closing or bool(self._pending))
            if keep:
                self._idle.append(worker)
            else:
                self._workers.pop(worker.key, None)
            self._cond.notify_all()
        if not keep:
            worker.dispose()

    def _start_worker(self, key: int, *, for_job: bool) -> tuple[_Worker | None, str]:
        """Start worker ``key`` (reserved in ``_workers``) and wait until it is ready. Once
        the executor is closing, only for a job already taken (``for_job``)."""
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_worker_main,
            args=(child, self._env),
            name=f"qsecure-aer-worker-{key}",
            daemon=True,
        )
        with self._lock:
            if self._closing and not for_job:
                parent.close()
                child.close()
                self._workers.pop(key, None)
                self._cond.notify_all()
                return None, "the executor is shut down"
            try:
                _spawnable_main()
                process.start()
            except Exception as exc:  # e.g. spawn refused: unguarded __main__, no resources
                parent.close()
                child.close()
                self._workers.pop(key, None)
                self._cond.notify_all()
                log.error("jupyter-qsecure: cannot start an Aer worker process: %s", exc)
                return None, f"the worker process could not be started ({exc})"
            worker = _Worker(process, parent, key)
            self._workers[key] = worker
        child.close()
        ready = wait_for([parent, process.sentinel], self._startup_timeout)
        if parent in ready:
            try:
                message = parent.recv()
                if message and message[0] == "ready":
                    return worker, ""
            except (EOFError, OSError):
                pass
        reason = (
            f"did not start within {self._startup_timeout:g} s"
            if not ready
            else _describe_exit(process.exitcode if not process.is_alive() else None)
        )
        worker.dispose()
        with self._cond:
            self._workers.pop(key, None)
            self._cond.notify_all()
            closing = self._closing
        if not closing:
            log.error("jupyter-qsecure: Aer worker process %s", reason)
        return None, f"the worker process {reason} while starting"

    # -- running jobs ------------------------------------------------------------------------
    def _take(self) -> _Job | None:
        with self._cond:
            while not self._pending:
                if self._closing:
                    return None
                self._cond.wait()
            job = self._pending.popleft()
            job.handle.status = "running"
            return job

    def _slot_loop(self, slot: int) -> None:
        """One slot: start a worker (so one is warm before the first job), then run queued
        jobs, each on an idle worker."""
        with self._cond:  # one more worker, never taking an idle one: all start warm
            key = self._new_worker_key_locked()
        if key is not None:
            worker, _ = self._start_worker(key, for_job=False)
            if worker is not None:
                self._release_worker(worker, True)
        while True:
            job = self._take()
            if job is None:
                return
            worker, start_error = self._acquire_worker()
            if worker is None:
                self._finish(
                    job,
                    error=WorkerCrashed(
                        f"job {job.handle.job_id} could not run: {start_error}",
                        hint="the executor tries a fresh worker for the next job",
                    ),
                )
                continue
            self._run_reserved(worker, job)

    def _run_reserved(self, worker: _Worker, job: _Job) -> None:
        """Run ``job`` on ``worker`` in this thread, then give the worker back."""
        healthy = False
        try:
            healthy = self._run(worker, job)
        except Exception as exc:  # a bug here must neither hang the job nor lose the worker
            log.exception("jupyter-qsecure: running job %s failed", job.handle.job_id)
            self._finish(job, error=JobFailed(f"job {job.handle.job_id}: {exc!r}"))
        finally:
            self._release_worker(worker, healthy)

    def _run(self, worker: _Worker, job: _Job) -> bool:
        """Run ``job`` on ``worker``; False when the worker must be replaced."""
        job_id = job.handle.job_id
        with self._lock:
            if job.cancel_reason:
                cancelled = True
            else:
                cancelled = False
                self._mark_running_locked(job, worker)
        if cancelled:
            self._finish(job, error=JobCancelled(job.cancel_reason or "cancelled"))
            return True
        try:
            blob = pickle.dumps((job_id, job.payload), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            self._finish(job, error=JobFailed(f"job {job_id}: the payload cannot be sent: {exc}"))
            return True
        try:
            worker.conn.send_bytes(blob)
        except (OSError, ValueError):
            pass  # the worker died: the sentinel below reports it
        while True:
            remaining = job.deadline - time.monotonic()
            ready = wait_for([worker.conn, worker.process.sentinel], max(0.0, remaining))
            if job.cancel_reason:
                worker.kill()
                self._finish(job, error=JobCancelled(job.cancel_reason))
                return False
            if worker.conn in ready:
                try:
                    reply_id, ok, body = worker.conn.recv()
                except (EOFError, OSError):
                    ready = [worker.process.sentinel]  # died while replying
                except Exception as exc:
                    self._finish(
                        job, error=JobFailed(f"job {job_id}: unreadable reply from worker: {exc}")
                    )
                    return False
                else:
                    if reply_id != job_id:  # cannot happen: one job per worker at a time
                        self._finish(
                            job, error=JobFailed(f"job {job_id}: worker answered {reply_id}")
                        )
                        return False
                    if ok:
                        self._finish(job, result=body)
                    else:
                        name, message, detail = body
                        self._finish(
                            job,
                            error=JobFailed(
                                f"job {job_id} failed: {name}: {message}", detail=detail
                            ),
                        )
                    return True
            if worker.process.sentinel in ready:
                worker.process.join(5)
                how = _describe_exit(worker.process.exitcode)
                log.warning("jupyter-qsecure: Aer worker for job %s %s", job_id, how)
                self._finish(
                    job,
                    error=WorkerCrashed(
                        f"job {job_id} did not complete: its worker process {how} while running it",
                        hint="a fresh worker serves the next job; if this repeats the circuit may "
                        "need more memory than the worker has",
                    ),
                )
                return False
            if not ready and time.monotonic() >= job.deadline:
                worker.kill()
                log.warning("jupyter-qsecure: job %s timed out; worker killed", job_id)
                self._finish(
                    job,
                    error=JobTimeout(
                        f"job {job_id} exceeded its timeout of {job.handle.timeout:g} s and was "
                        "stopped (its worker process was killed)",
                        hint="use fewer shots or a smaller circuit, or ask for a longer timeout",
                    ),
                )
                return False


def _warm_up() -> str:
    import qiskit_aer

    from jupyter_qsecure.jobs import aer_run  # noqa: F401

    return str(qiskit_aer.__version__)


def _still_running(key: str, dask_worker: Any = None) -> bool:
    """On a Dask worker: is the task ``key`` executing (or cancelled but still executing)?"""
    task = dask_worker.state.tasks.get(key) if dask_worker is not None else None
    if task is None:
        return False
    running = ("executing", "long-running")
    return bool(task.state in running or (task.state == "cancelled" and task.previous in running))


# ---- Dask ---------------------------------------------------------------------------------
class DaskExecutor(_QueuedExecutor):
    """:func:`run_aer` on a Dask distributed cluster, same API and errors as LocalExecutor.

    Give a scheduler ``address`` (``tcp://host:8786``), a ``cluster`` object (e.g. a
    ``LocalCluster``) or an existing ``client``. Jobs wait in a bounded client-side queue and
    go to the cluster while it has an idle worker thread. ``restart_on_timeout`` restarts the
    worker of a timed-out or cancelled job (needs nannies) so that its task really stops.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        cluster: Any = None,
        client: Any = None,
        max_queued: int = 64,
        connect_timeout: float = 10.0,
        restart_on_timeout: bool = True,
    ) -> None:
        super().__init__(max_queued)
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - distributed is a dependency
            raise ConfigError(
                "the dask executor needs the 'distributed' package", hint="pip install distributed"
            ) from exc
        self._owns_client = client is None
        if client is None:
            if cluster is None and not address:
                raise ConfigError(
                    "the dask executor needs a scheduler address",
                    hint="set the scheduler address, e.g. tcp://127.0.0.1:8786",
                )
            target = cluster if cluster is not None else address
            try:
                client = Client(  # type: ignore[no-untyped-call]
                    target, timeout=connect_timeout, set_as_default=False
                )
            except Exception as exc:
                raise ExecutorUnavailable(
                    f"cannot connect to the Dask scheduler at {address or cluster!r}: {exc}",
                    hint="start the scheduler (dask scheduler) or fix the address",
                ) from exc
        self.client = client
        self._restart_on_timeout = restart_on_timeout
        self._restarting = 0  # worker restarts under way (each holds back one dispatch)
        self._nthreads = 1
        self._nthreads_at = -math.inf
        self._admin = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="qsecure-dask")
        self._thread = threading.Thread(
            target=self._dispatch_loop, name="qsecure-dask", daemon=True
        )
        self._thread.start()

    def _slots(self) -> int:
        return self._nthreads

    def _refresh_slots(self) -> None:
        # Called from the dispatcher thread only (an RPC to the scheduler, at most every 2 s).
        if time.monotonic() - self._nthreads_at < 2.0:
            return
        try:
            self._nthreads = max(1, sum(self.client.nthreads().values()))
        except Exception as exc:
            log.warning("jupyter-qsecure: cannot ask the Dask scheduler for workers: %s", exc)
        self._nthreads_at = time.monotonic()

    def close(self, *, wait: bool = False, timeout: float | None = 30.0) -> None:
        """Stop accepting jobs; cancel queued and running ones unless ``wait``; close the client."""
        dropped: list[tuple[_Job, JobCancelled]] = []
        with self._cond:
            self._closing = True
            if not wait:
                dropped = self._drain_pending_locked(
                    "job {job} was cancelled: the executor shut down before it started"
                )
            self._cond.notify_all()
        for job, error in dropped:
            self._finish(job, error=error)
        if wait:
            deadline = None if timeout is None else time.monotonic() + timeout
            with self._cond:
                while self._jobs:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    self._cond.wait(left)
        with self._lock:
            running = [job for job in self._jobs.values() if not job.cancel_reason]
            for job in running:
                job.cancel_reason = f"job {job.handle.job_id} was cancelled: the executor shut down"
        for job in running:
            future = job.runner
            self._finish(job, error=JobCancelled(job.cancel_reason or "cancelled"))
            self._cancel_on_cluster(future, restart=False)
        self._thread.join(timeout)
        self._admin.shutdown(wait=True, cancel_futures=False)
        if self._owns_client:
            self.client.close()

    def _stop_running_locked(self, job: _Job) -> bool:
        # The cancel is reported at once; stopping the task on the cluster happens off the
        # caller's thread (it needs round trips to the scheduler).
        if job.runner is not None:
            self._restarting += self._restart_on_timeout
            self._admin.submit(
                self._cancel_on_cluster, job.runner, restart=self._restart_on_timeout
            )
        return True

    def _cancel_on_cluster(self, future: Any, *, restart: bool) -> None:
        """Cancel ``future``; with ``restart``, restart the worker running it (admin thread).

        While a restart is pending (``_restarting``) one fewer job is dispatched, so that no
        new job lands on a worker that is about to be restarted.
        """
        try:
            if future is not None:
                self._cancel_future(future, restart=restart)
        finally:
            if restart:
                with self._cond:
                    self._restarting -= 1
                    self._cond.notify_all()

    def _cancel_future(self, future: Any, *, restart: bool) -> None:
        key = future.key
        try:
            workers: set[str] = set()
            if restart:  # where the scheduler sent it, before cancelling makes it forget
                processing = self.client.processing()
                workers = {w for w, keys in processing.items() if key in keys}
            future.cancel()
            if restart:  # a worker that started it keeps it (as cancelled) until it returns
                answers = self.client.run(_still_running, key, on_error="return")
                workers |= {w for w, busy in answers.items() if busy is True}
            if workers:
                log.warning(
                    "jupyter-qsecure: restarting Dask worker(s) %s to stop %s", workers, key
                )
                self.client.restart_workers(sorted(workers), raise_for_error=False)
        except Exception as exc:
            log.warning("jupyter-qsecure: could not stop Dask task %s: %s", key, exc)

    def _dispatch_loop(self) -> None:
        from jupyter_qsecure.jobs.aer_run import run_aer

        try:  # import Qiskit Aer on the workers now rather than inside the first job
            self.client.run(_warm_up)
        except Exception as exc:
            log.warning("jupyter-qsecure: could not warm up the Dask workers: %s", exc)
        while True:
            self._refresh_slots()
            job = None
            with self._cond:
                if self._closing and not self._jobs:
                    return
                now = time.monotonic()
                running = [j for j in self._jobs.values() if j.handle.status == "running"]
                live = [j for j in running if not j.cancel_reason]
                expired = [j for j in live if j.deadline <= now]
                busy = len(running) + self._restarting
                free = bool(self._pending) and busy < self._nthreads
                if not expired and not free:
                    wake = min((j.deadline for j in live), default=math.inf) - now
                    if self._pending:
                        wake = min(wake, 2.0)  # the cluster may have grown: ask again
                    self._cond.wait(None if wake == math.inf else max(0.0, wake))
                    continue
                if free:
                    job = self._pending.popleft()
                    self._mark_running_locked(job, None)
                for late in expired:
                    late.cancel_reason = "timeout"
                    self._restarting += self._restart_on_timeout
            for late in expired:
                future = late.runner
                self._finish(
                    late,
                    error=JobTimeout(
                        f"job {late.handle.job_id} exceeded its timeout of "
                        f"{late.handle.timeout:g} s and was stopped",
                        hint="use fewer shots or a smaller circuit, or ask for a longer timeout",
                    ),
                )
                self._admin.submit(
                    self._cancel_on_cluster, future, restart=self._restart_on_timeout
                )
            if job is not None:
                self._dispatch(job, run_aer)

    def _dispatch(self, job: _Job, run_aer: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        job_id = job.handle.job_id
        with self._lock:
            if job.cancel_reason:  # cancelled before it reached the cluster: already reported
                return
            payload = job.payload
        try:
            future = self.client.submit(
                run_aer, payload, key=f"qsecure-{job_id}-{os.urandom(4).hex()}", pure=False
            )
        except Exception as exc:
            self._finish(
                job,
                error=ExecutorUnavailable(
                    f"job {job_id}: cannot submit to the Dask cluster: {exc}"
                ),
            )
            return
        with self._lock:
            job.runner = future
            cancelled = bool(job.cancel_reason)
            if cancelled:
                self._restarting += self._restart_on_timeout
        if cancelled:  # cancelled while being submitted: stop it like a running job
            self._admin.submit(self._cancel_on_cluster, future, restart=self._restart_on_timeout)
        future.add_done_callback(lambda fut: self._on_done(job, fut))

    def _on_done(self, job: _Job, future: Any) -> None:
        # Runs in Dask's callback thread, never on an event loop.
        job_id = job.handle.job_id
        if job.handle.status in _TERMINAL:
            return
        status = future.status
        if status == "finished":
            try:
                result = future.result()
            except Exception as exc:
                self._finish(job, error=JobFailed(f"job {job_id}: cannot fetch its result: {exc}"))
            else:
                self._finish(job, result=result)
            return
        if status == "error":
            failure = future.exception()
            if type(failure).__name__ == "KilledWorker":
                error: ExecutorError = WorkerCrashed(
                    f"job {job_id} did not complete: the Dask worker running it died ({failure})",
                    hint="a fresh worker serves the next job; if this repeats the circuit may "
                    "need more memory than the worker has",
                )
            else:
                detail = "".join(traceback.format_exception(failure)) if failure else ""
                error = JobFailed(
                    f"job {job_id} failed: {type(failure).__name__}: {failure}", detail=detail
                )
            self._finish(job, error=error)
            return
        self._finish(job, error=JobCancelled(f"job {job_id} was cancelled on the Dask cluster"))


def executor_from_settings(kind: str = "local", **options: Any) -> LocalExecutor | DaskExecutor:
    """The executor a configuration names: ``"local"`` or ``"dask"`` plus its options.

    ``local``: ``max_workers``, ``max_queued``, ``worker_env``, ``mp_context``.
    ``dask``: ``address`` (scheduler, e.g. ``tcp://127.0.0.1:8786``), ``cluster``,
    ``max_queued``, ``connect_timeout``, ``restart_on_timeout``.
    """
    if kind == "local":
        return LocalExecutor(**options)
    if kind == "dask":
        return DaskExecutor(**options)
    raise ConfigError(f"unknown executor {kind!r}", hint="set the executor to 'local' or 'dask'")
