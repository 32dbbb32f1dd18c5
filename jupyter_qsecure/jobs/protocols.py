"""What :class:`~jupyter_qsecure.jobs.service.JobService` needs from its collaborators.

Structural types, so the service is typed against the few methods it calls: the audit
ledger (:class:`~jupyter_qsecure.ledger.Ledger`), the executor
(:class:`~jupyter_qsecure.jobs.executor_base.Executor`: local, Dask or inline) and the
circuit parser (:class:`~jupyter_qsecure.jobs.parse_pool.ParsePool` or
:class:`~jupyter_qsecure.jobs.parse_pool.InlineParser`). mypy checks the implementations
against them (the assignments under ``TYPE_CHECKING`` below).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from .executor_base import Executor

if TYPE_CHECKING:
    from ..ledger.models import Entry
    from ..ledger.store import EntryFilter
    from .parse_pool import ParsedCircuits
    from .policy import EnvironmentPolicy

__all__ = ["CircuitParser", "Executor", "JobLedger"]


class JobLedger(Protocol):
    """The ledger calls of the job service: one commit per job, and reading approvals."""

    def append_many(
        self,
        items: Iterable[tuple[str, dict[str, Any]]],
        *,
        actor: str | None = None,
        correlation_id: str | None = None,
    ) -> list[Entry]: ...

    def entries(self, where: EntryFilter | None = None) -> list[Entry]: ...


class CircuitParser(Protocol):
    """Reads a request's circuits (in worker processes with limits, or inline)."""

    def parse(
        self,
        items: Any,
        bind: Any,
        *,
        rules: EnvironmentPolicy | None = None,
        environment: str = "",
    ) -> ParsedCircuits: ...

    def close(self) -> None: ...


if TYPE_CHECKING:  # structural checks, run by mypy only
    from ..ledger import Ledger
    from .dask_executor import DaskExecutor
    from .inline_executor import InlineExecutor
    from .local_executor import LocalExecutor
    from .parse_pool import InlineParser, ParsePool

    def _ledger(ledger: Ledger) -> JobLedger:
        return ledger

    def _executors(
        local: LocalExecutor, dask: DaskExecutor, inline: InlineExecutor
    ) -> tuple[Executor, Executor, Executor]:
        return local, dask, inline

    def _parsers(pool: ParsePool, inline: InlineParser) -> tuple[CircuitParser, CircuitParser]:
        return pool, inline
