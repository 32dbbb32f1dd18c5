"""Where circuits run: Aer in worker processes, or on a Dask cluster.

Both executors share one API (:class:`Executor`) and one set of errors:

- :meth:`Executor.submit` returns a :class:`JobHandle` at once, never blocking on the job;
  when ``capacity`` jobs are already waiting it raises :class:`QueueFull` with
  ``retry_after_seconds`` (the REST layer answers 429 with ``Retry-After``).
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
    JobCancelled,
    JobFailed,
    JobHandle,
    JobStatus,
    JobTimeout,
    QueueFull,
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
    "JobHandle",
    "JobStatus",
    "JobTimeout",
    "LocalExecutor",
    "QueueFull",
    "ResultNotReady",
    "WorkerCrashed",
    "executor_from_settings",
]


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
