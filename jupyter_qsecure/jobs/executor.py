"""Where circuits run: Aer in worker processes, or on a Dask cluster.

Both executors share one API (:class:`Executor`) and one set of errors:

- :meth:`Executor.submit` returns a :class:`JobHandle` at once, never blocking on the job;
  when ``capacity`` jobs are already waiting, or ``capacity_per_owner`` of the job's
  owner, it raises :class:`QueueFull` with ``retry_after_seconds`` (the REST layer
  answers 429 with ``Retry-After``). :meth:`Executor.admit` takes that decision ahead
  of time: it holds a :class:`QueuePlace` that a later ``submit`` uses up.
- Waiting jobs are dispatched in round robin across owners (FIFO within one owner,
  :class:`~jupyter_qsecure.jobs.fair_queue.FairQueue`), so one user's backlog does not
  delay another user's job.
- :meth:`JobHandle.result` returns :func:`~jupyter_qsecure.jobs.aer_run.run_aer`'s dict or
  raises :class:`JobTimeout`, :class:`JobCancelled`, :class:`WorkerCrashed` or
  :class:`JobFailed`; :meth:`JobHandle.wait` gives an asyncio future for Tornado handlers.
- :meth:`Executor.cancel` removes a queued job at once and stops a running one.

:class:`LocalExecutor` (:mod:`.local_executor`) runs Aer in worker processes of its own;
:class:`DaskExecutor` (:mod:`.dask_executor`) on a Dask distributed cluster. This module is
the one to import from; :mod:`.executor_base` holds what the two share.
"""

from __future__ import annotations

from typing import Any

from jupyter_qsecure.errors import ConfigError

from .dask_executor import DaskExecutor
from .executor_base import (
    Executor,
    ExecutorClosed,
    ExecutorError,
    ExecutorUnavailable,
    HandleStatus,
    JobCancelled,
    JobFailed,
    JobHandle,
    JobTimeout,
    QueueFull,
    QueuePlace,
    ResultNotReady,
    WorkerCrashed,
)
from .local_executor import LocalExecutor

__all__ = [
    "DaskExecutor",
    "Executor",
    "ExecutorClosed",
    "ExecutorError",
    "ExecutorUnavailable",
    "JobCancelled",
    "JobFailed",
    "HandleStatus",
    "JobHandle",
    "JobTimeout",
    "LocalExecutor",
    "QueueFull",
    "QueuePlace",
    "ResultNotReady",
    "WorkerCrashed",
    "executor_from_settings",
]


def executor_from_settings(kind: str = "local", **options: Any) -> LocalExecutor | DaskExecutor:
    """The executor a configuration names: ``"local"`` or ``"dask"`` plus its options.

    ``local``: ``max_workers``, ``max_queued``, ``max_queued_per_owner``, ``worker_env``,
    ``mp_context``.
    ``dask``: ``address`` (scheduler, e.g. ``tcp://127.0.0.1:8786``), ``cluster``,
    ``max_queued``, ``max_queued_per_owner``, ``connect_timeout``, ``restart_on_timeout``.
    """
    if kind == "local":
        return LocalExecutor(**options)
    if kind == "dask":
        return DaskExecutor(**options)
    raise ConfigError(f"unknown executor {kind!r}", hint="set the executor to 'local' or 'dask'")
