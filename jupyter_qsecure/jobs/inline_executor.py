"""An executor that runs each job in the thread that waits for it: for one process.

The job broker (:class:`~jupyter_qsecure.jobs.service.JobService`) normally runs Aer in
worker processes (:class:`~jupyter_qsecure.jobs.local_executor.LocalExecutor`) so that a
crashing or runaway simulation cannot take the server down. A promoted script
(:mod:`jupyter_qsecure.runtime`) is its own single process: it runs each job in the
thread that submitted it, through the same :class:`JobService` (policy, hashing,
signing, ledger), with no worker processes to start.

Deliberately not supported: queueing, cancelling a running job and timeouts (a script
that must be stopped is stopped as a whole); ``submit`` refuses a second job while one
runs.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

from .aer_run import run_aer
from .executor_base import ExecutorClosed, ExecutorError, JobFailed, JobHandle, QueuePlace

__all__ = ["InlineExecutor"]


class InlineExecutor:
    """Runs :func:`run_aer` in the thread that calls :meth:`JobHandle.result`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: str | None = None
        self._closed = False

    @property
    def queue_depth(self) -> int:
        return 0

    @property
    def capacity(self) -> int:
        return 0

    def admit(self, owner: str = "") -> None:
        """No place to hold: one process runs one job at a time, in the waiting thread."""
        return None

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
        """A handle that runs the job when its result is asked for (``owner`` and
        ``place`` are the fair queue's: one process has no queue to share)."""
        if not here:
            raise ExecutorError(
                "the inline executor runs a job only in the thread that waits for it",
                hint="submit with here=True (JobService.complete does)",
            )
        with self._lock:
            if self._closed:
                raise ExecutorClosed(f"the executor is shut down; job {job_id} was not accepted")
        handle = JobHandle(job_id, timeout, owner)
        handle._run_here = lambda: self._run(handle, payload)
        return handle

    def _run(self, handle: JobHandle, payload: dict[str, Any]) -> None:
        with self._lock:
            if self._running is not None:
                error: BaseException = ExecutorError(
                    f"job {self._running} is still running in this process",
                    hint="submit jobs one after the other (or from one thread)",
                )
                handle.status = "failed"
                handle._future.set_exception(error)
                return
            self._running = handle.job_id
        handle.status = "running"
        handle.started_at = time.time()
        handle._started.set()
        try:
            outcome = run_aer(payload)
        except Exception as exc:
            handle.status = "failed"
            handle._future.set_exception(
                JobFailed(
                    f"job {handle.job_id} failed: {type(exc).__name__}: {str(exc)[:300]}",
                    detail=traceback.format_exc(),
                )
            )
        else:
            handle.status = "completed"
            handle._future.set_result(outcome)
        finally:
            handle.finished_at = time.time()
            with self._lock:
                self._running = None

    def cancel(self, job_id: str) -> bool:
        return False

    def close(self) -> None:
        with self._lock:
            self._closed = True
