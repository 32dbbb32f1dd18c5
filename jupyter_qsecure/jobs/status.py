"""The status of a job in the broker's records (``JobRecord.status`` of the REST API)."""

from __future__ import annotations

from enum import Enum

__all__ = ["TERMINAL", "JobStatus"]


class JobStatus(str, Enum):
    """Where a job is. A ``str`` enum: it compares equal to, and serialises as, its value.

    ``queued``            accepted and waiting for a worker (its place in the queue is held)
    ``pending_approval``  a heavy run waiting for ``jupyter qsecure jobs approve``
    ``running``           a worker is running it (or its result is being signed and recorded)
    ``completed``         signed, recorded, result available
    ``failed``            it ran and failed, or could not be run, signed or recorded
    ``cancelled``         cancelled before or while it ran
    ``denied``            refused by the policy
    """

    QUEUED = "queued"
    PENDING_APPROVAL = "pending_approval"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DENIED = "denied"

    def __str__(self) -> str:
        return self.value


#: Statuses after which nothing about the job changes any more.
TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DENIED})
