"""LocalExecutor: Aer in worker processes on this machine (see
:mod:`jupyter_qsecure.jobs.executor` for the shared API and errors).

It is a small process pool of its own rather than
:class:`concurrent.futures.ProcessPoolExecutor`: that pool cannot stop one task (only the
whole pool), and one worker dying breaks it for every job in flight. Here each of
``max_workers`` worker processes (started with ``spawn``: the server has threads, so ``fork``
is unsafe) is driven over a pipe by the thread that runs a job on it: one of ``max_workers``
slot threads for queued jobs, or, for ``submit(..., here=True)``, the thread that waits for
the job: it runs the job itself when a worker is idle, and when the job had to queue, the
thread whose job ends hands its worker straight to it (no slot thread woken, no result
handed back: one thread switch where there were three). A submitter that stops waiting
(``result(timeout)`` ran out) leaves its job to the slot threads.

Queued jobs are taken in fair order (round robin across owners). A job that is already
running is never stopped for another user, so with only fair order a user's small job
still waits for the end of another user's long one. ``spare_workers`` (default 0; the
server sets 1) adds worker processes that run only jobs of owners with nothing in flight
while others' jobs fill the ``max_workers``: a user who starts a job while another keeps
every worker busy gets one at once. They are started only once a second owner submits, so
a single user never has more than ``max_workers`` jobs running or processes started.

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
"""

from __future__ import annotations

import collections
import functools
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from multiprocessing.connection import wait as wait_for
from typing import Any

from jupyter_qsecure.errors import ConfigError

from .executor_base import (
    _TERMINAL,
    JobCancelled,
    JobFailed,
    JobTimeout,
    ResultNotReady,
    WorkerCrashed,
    _Job,
    _QueuedExecutor,
)

log = logging.getLogger(__name__)


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


class WorkerProcess:
    """A worker process and our end of its pipe (also the parse pool's workers)."""

    def __init__(self, process: Any, conn: Any) -> None:
        self.process = process
        self.conn = conn

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


class _Worker(WorkerProcess):
    def __init__(self, process: Any, conn: Any, key: int) -> None:
        super().__init__(process, conn)
        self.key = key  # its entry in LocalExecutor._workers


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
    """Aer in ``max_workers`` worker processes on this machine, with a bounded fair queue
    (``max_queued`` jobs waiting in all, ``max_queued_per_owner`` of one owner).

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
        max_queued_per_owner: int | None = None,
        spare_workers: int = 0,
        worker_env: Mapping[str, str] | None = None,
        mp_context: str = "spawn",
        startup_timeout: float = 120.0,
    ) -> None:
        if max_workers < 1:
            raise ConfigError(f"max_workers must be >= 1, got {max_workers}")
        if spare_workers < 0:
            raise ConfigError(f"spare_workers must be >= 0, got {spare_workers}")
        if mp_context not in ("spawn", "forkserver"):
            raise ConfigError(
                f"mp_context must be 'spawn' or 'forkserver', got {mp_context!r}",
                hint="fork is unsafe in a server process that runs threads",
            )
        super().__init__(max_queued, max_queued_per_owner)
        self.max_workers = max_workers
        self.spare_workers = spare_workers
        self._ctx: Any = multiprocessing.get_context(mp_context)
        self._env = dict(worker_env or {})
        self._startup_timeout = startup_timeout
        # Every live worker (None while one starts), by key; idle ones also in _idle.
        self._workers: dict[int, _Worker | None] = {}
        self._idle: list[_Worker] = []
        self._next_key = 0
        #: Slot threads waiting in _acquire_worker for a worker (see _wake_locked).
        self._worker_waiters = 0
        #: What slot threads wait on (a job to take, a worker); ``_cond`` wakes a spare slot
        #: thread waiting for a second owner, and the threads of closing.
        self._slot_cond = threading.Condition(self._lock)
        #: Jobs taken from the queue, each with the idle worker it runs on, for a slot thread
        #: (their submitter does not wait to run them itself).
        self._ready: collections.deque[tuple[_Job, _Worker]] = collections.deque()
        #: Notified whenever a worker is handed back, for observers (tests) only: the
        #: executor's own threads wait on ``_cond``, woken only when they can go on.
        self._returned = threading.Condition(self._lock)
        self._threads = [
            threading.Thread(
                target=self._slot_loop, args=(slot,), name=f"qsecure-executor-{slot}", daemon=True
            )
            for slot in range(max_workers + spare_workers)
        ]
        for thread in self._threads:
            thread.start()

    def _slots(self) -> int:
        return self.max_workers

    def _wake_locked(self) -> None:
        """Wake the slot threads only when one of them could go on: a job was handed a
        worker (``_ready``), a queued job may be taken now (``_next_locked``), one waits
        for a worker (``_acquire_worker``), or the executor is closing. Otherwise every
        job's end (and its worker's return) would wake every idle slot thread for
        nothing: a thread switch each, several per job. First idle workers go to queued
        jobs whose submitters wait to run them (:meth:`_dispatch_locked`)."""
        self._dispatch_locked()
        if self._ready or self._closing:
            self._slot_cond.notify_all()
        elif (self._worker_waiters or self._could_take_locked()) and self._worker_available():
            self._slot_cond.notify_all()

    def _worker_available(self) -> bool:
        """An idle worker, or room to start one (lock held). Not so while a job that just
        ended still holds its worker: its thread hands it on (:meth:`_release_worker`)."""
        spare = self.spare_workers if len(self._owners_seen) >= 2 else 0  # see _slot_loop
        return bool(self._idle) or len(self._workers) < self.max_workers + spare

    def _could_take_locked(self) -> bool:
        """True when :meth:`_next_locked` would give a free slot a job now."""
        if not self._pending:
            return False
        if self._in_flight < self.max_workers:
            return True
        return self._in_flight < self.max_workers + self.spare_workers and (
            self._pending.any_owner(lambda owner: self._in_flight_by[owner] == 0)
        )

    def _queued_locked(self, job: _Job, here: bool) -> None:
        """A job was queued: when its submitter waits for it (``here``), that thread runs it
        once a worker is handed to it (:meth:`_dispatch_locked`), so the job reaches a
        worker and its result its submitter with one thread switch instead of two or
        three (slot thread woken, result handed back)."""
        if here:  # its submitter calls result() next (the contract of here=True)
            job.go = threading.Condition(self._lock)
            job.waiting = True  # until it gives up waiting (a timeout): then a slot runs it
            job.handle._wait_turn = functools.partial(self._wait_turn, job)
        self._wake_locked()

    def _dispatch_locked(self) -> None:
        """Give idle workers to queued jobs in fair order (lock held): to the thread that
        submitted the job and waits to run it, else to a slot thread (``_ready``). Not
        while slot threads hold jobs and wait for a worker: they go first."""
        while self._pending and self._idle and not self._worker_waiters:
            worker = self._idle_worker_locked()
            if worker is None:
                return
            job = self._next_locked()
            if job is None:
                self._idle.append(worker)
                return
            job.handle.status = "running"
            if job.waiting and job.go is not None:
                job.handed = worker
                job.go.notify()
            else:
                self._ready.append((job, worker))

    def _wait_turn(self, job: _Job, timeout: float | None) -> None:
        """In the submitter's thread (``JobHandle.result``): wait until a worker is handed
        to the job, then run it here, or until it ended otherwise (cancelled, or a slot
        thread ran it); :class:`ResultNotReady` when ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        go = job.go
        assert go is not None
        with self._lock:
            # (a slot thread may run it instead, if it was dispatched while this thread did
            # not wait: its end notifies ``go`` too)
            while job.handed is None and job.handle.status not in _TERMINAL:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    job.waiting = False  # not waiting any more: a slot thread runs it
                    raise ResultNotReady(
                        f"job {job.handle.job_id} is still {job.handle.status} after waiting "
                        f"{timeout} s"
                    )
                job.waiting = True
                go.wait(remaining)
            worker, job.handed = job.handed, None
            if worker is not None:
                job.handle._wait_turn = None
        if worker is not None:
            self._run_reserved(worker, job)

    def _reserve_locked(self, job: _Job) -> bool:
        """For ``submit(..., here=True)``: when no job is waiting and a worker is idle, the
        job is not queued but reserved that worker, and the first
        :meth:`JobHandle.result` (or ``exception``) call runs it in the calling thread,
        talking to the worker itself. A thread that submits a job and then waits for it
        (the job broker) so saves two hand-offs between threads per job. Only for callers
        that will call ``result()``: nothing else starts a reserved job."""
        if self._pending or self._in_flight >= self.max_workers:
            return False  # others wait, or every regular slot is taken: the queue decides
        worker = self._idle_worker_locked()
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
            self._slot_cond.notify_all()
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
                self._worker_waiters += 1
                try:
                    self._slot_cond.wait()
                finally:
                    self._worker_waiters -= 1
        return self._start_worker(key, for_job=True)

    def _new_worker_key_locked(self) -> int | None:
        """A key for one more worker, counted from now on, or None at ``max_workers`` (plus
        ``spare_workers``: at most one process per job in flight)."""
        if len(self._workers) >= self.max_workers + self.spare_workers:
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
            self._wake_locked()
            self._returned.notify_all()  # no syscall unless an observer waits
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
                self._slot_cond.notify_all()
                return None, "the executor is shut down"
            try:
                _spawnable_main()
                process.start()
            except Exception as exc:  # e.g. spawn refused: unguarded __main__, no resources
                parent.close()
                child.close()
                self._workers.pop(key, None)
                self._slot_cond.notify_all()
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
            self._slot_cond.notify_all()
            closing = self._closing
        if not closing:
            log.error("jupyter-qsecure: Aer worker process %s", reason)
        return None, f"the worker process {reason} while starting"

    # -- running jobs ------------------------------------------------------------------------
    def _take(self) -> tuple[_Job, _Worker | None] | None:
        """The next job for this slot thread, with its worker if it was handed one; None
        once the executor is closing and nothing is left."""
        with self._cond:
            while True:
                if self._ready:
                    return self._ready.popleft()
                job = self._next_locked()
                if job is not None:
                    job.handle.status = "running"
                    return job, None
                if self._closing and not self._pending:
                    return None
                self._slot_cond.wait()

    def _next_locked(self) -> _Job | None:
        """The job a free slot runs now, if any: the next in fair order while fewer than
        ``max_workers`` jobs are in flight; beyond that (a spare slot) only the next job
        of an owner with nothing in flight."""
        if not self._pending:
            return None
        if self._in_flight < self.max_workers:
            return self._pop_locked()
        if self._in_flight < self.max_workers + self.spare_workers:
            return self._pop_idle_owner_locked()
        return None

    def _slot_loop(self, slot: int) -> None:
        """One slot: start a worker (so one is warm before the first job), then run queued
        jobs, each on an idle worker. A spare slot (beyond ``max_workers``) starts its
        worker only once a second owner has submitted: a single user never needs it."""
        if slot >= self.max_workers:
            with self._cond:
                while len(self._owners_seen) < 2 and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
        with self._cond:  # one more worker, never taking an idle one: all start warm
            key = self._new_worker_key_locked()
        if key is not None:
            worker, _ = self._start_worker(key, for_job=False)
            if worker is not None:
                self._release_worker(worker, True)
        while True:
            taken = self._take()
            if taken is None:
                return
            job, worker = taken
            if worker is not None:
                self._run_reserved(worker, job)
                continue
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
