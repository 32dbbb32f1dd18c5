"""DaskExecutor: jobs on a Dask distributed cluster (see
:mod:`jupyter_qsecure.jobs.executor` for the shared API and errors).

It keeps the same bounded queue on the client side and hands jobs to the cluster only
while it has an idle worker thread, so a job starts running when it is submitted to Dask
and its timeout measures run time. Dask cannot stop a running task: on a timeout or cancel
the job fails at once, its Dask future is cancelled and the worker running it is restarted
through its nanny (``Client.restart_workers``; Dask reschedules any other task that was on
it). Without a nanny the task's thread runs to completion and its result is dropped. A
worker that dies mid-task makes Dask retry the task on another worker up to the
scheduler's ``distributed.scheduler.allowed-failures`` (default 3) before it reports
``KilledWorker``, which becomes :class:`WorkerCrashed`; set it to 0 on the scheduler to fail
a crashing job on its first crash.

Given an in-process cluster (``cluster=``, e.g. a ``LocalCluster``), the executor also starts
again any worker the cluster lost for good after a restart or crash (see
:meth:`DaskExecutor._relaunch_lost_workers`), so that jobs do not wait on a scheduler without
workers until their timeout.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import os
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from jupyter_qsecure.errors import ConfigError

from .executor_base import (
    _TERMINAL,
    ExecutorError,
    ExecutorUnavailable,
    JobCancelled,
    JobFailed,
    JobTimeout,
    WorkerCrashed,
    _Job,
    _QueuedExecutor,
)

log = logging.getLogger(__name__)


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
    ``LocalCluster``) or an existing ``client``. Jobs wait in a bounded, fair (round robin
    across owners) client-side queue and go to the cluster while it has an idle worker
    thread. ``restart_on_timeout`` restarts the
    worker of a timed-out or cancelled job (needs nannies) so that its task really stops.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        cluster: Any = None,
        client: Any = None,
        max_queued: int = 64,
        max_queued_per_owner: int | None = None,
        connect_timeout: float = 10.0,
        restart_on_timeout: bool = True,
    ) -> None:
        super().__init__(max_queued, max_queued_per_owner)
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
        # The in-process cluster (a SpecCluster such as LocalCluster) behind the client, if any.
        self._cluster: Any = cluster if cluster is not None else getattr(client, "cluster", None)
        self._lost_seen: set[Any] = set()  # workers the cluster lacked at the last check
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
        self._relaunch_lost_workers()
        try:
            self._nthreads = max(1, sum(self.client.nthreads().values()))
        except Exception as exc:
            log.warning("jupyter-qsecure: cannot ask the Dask scheduler for workers: %s", exc)
        self._nthreads_at = time.monotonic()

    def _relaunch_lost_workers(self) -> None:
        """Have an in-process SpecCluster start again the workers it wants but lost for good.

        Why: a SpecCluster (LocalCluster too) closes, for good, the nanny of a worker that is
        missing from the scheduler ``distributed.deploy.lost-worker-timeout`` (15 s) after a
        worker of the same name left, whether or not that worker came back meanwhile. A
        restart or crash less than that after an earlier one, while its worker is still
        starting again (seconds on a loaded machine), so removes the worker from the cluster
        and every later job waits on a scheduler without workers. The cluster still lists
        the worker in ``worker_spec``; ``scale`` to the same size starts it again. A name
        must be missing at two checks in a row (2 s apart), so that a worker the cluster is
        starting anyway is left alone. Called from the dispatcher thread.
        """
        cluster = self._cluster
        spec = getattr(cluster, "worker_spec", None)
        workers = getattr(cluster, "workers", None)
        if not isinstance(spec, dict) or not isinstance(workers, dict):
            return  # no in-process SpecCluster: its deployment restarts its workers
        if getattr(getattr(cluster, "status", None), "name", "") != "running":
            return
        try:  # both dicts change on the cluster's event loop thread
            missing = set(spec) - set(workers)
        except RuntimeError:
            return  # changed while read: look again at the next check
        lost, self._lost_seen = missing & self._lost_seen, missing
        if not lost:
            return
        log.warning(
            "jupyter-qsecure: the Dask cluster lost worker(s) %s; starting them again", lost
        )
        try:
            cluster.scale(len(spec))
        except Exception as exc:
            log.error("jupyter-qsecure: cannot start the lost Dask worker(s) %s: %s", lost, exc)

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
                outcome = self.client.restart_workers(sorted(workers), raise_for_error=False)
                failed = {w: state for w, state in (outcome or {}).items() if state != "OK"}
                if failed:
                    log.error(
                        "jupyter-qsecure: Dask worker(s) did not come back after a restart: %s",
                        failed,
                    )
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
                    elif self._cluster is not None and (running or self._restarting):
                        wake = min(wake, 2.0)  # jobs need workers: relaunch lost ones
                    self._cond.wait(None if wake == math.inf else max(0.0, wake))
                    continue
                if free:
                    job = self._pop_locked()
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
