"""An ended job as the broker's job store keeps it: a few plain values and its record's bytes.

The broker keeps up to ``max_jobs_kept`` (10,000) ended jobs for status queries. Kept as
:class:`~jupyter_qsecure.jobs.service.JobState` objects, each held about 30 objects the
garbage collector walks (its dicts and lists, the decision, the signed envelopes, an
event), so every full collection walked some 300,000 of them: a pause of the whole
Jupyter Server (every kernel's websocket, every save) of 100-300 ms. An :class:`EndedJob`
is one object the collector tracks, holding strings and the job's JobRecord encoded as
compact JSON (bytes, which the collector does not track): the record is encoded once,
when the job has ended (the REST layer passes the very bytes it answered with), served
as it is by ``GET /jobs/ID``, and decoded only when something asks for its fields.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from .status import JobStatus

if TYPE_CHECKING:
    from .service import JobState

__all__ = ["EndedJob", "encode_record"]


def encode_record(record: dict[str, Any]) -> bytes:
    """A JobRecord (or any REST response) as compact JSON bytes: how the REST layer answers
    and how the job store keeps an ended job's record, so both are the same bytes."""
    return json.dumps(record, default=str, separators=(",", ":")).encode()


class EndedJob:
    """An ended job in the job store (see the module docstring). Only what the broker's
    own checks read is kept as fields: the job id, its owner (``identity["user"]``, which
    ``get`` and ``cancel`` compare with the caller's) and its (terminal) status; the rest
    is in ``encoded``, the record the REST contract returns, byte for byte."""

    __slots__ = ("job_id", "user", "status", "encoded")

    def __init__(self, job_id: str, user: str | None, status: JobStatus, encoded: bytes) -> None:
        self.job_id = job_id
        self.user = user
        self.status = status
        self.encoded = encoded

    @classmethod
    def of(cls, state: JobState, encoded: bytes | None = None) -> EndedJob:
        """``state`` once it has ended; ``encoded``: its record as answered, if the caller
        has those bytes (else encoded here)."""
        if encoded is None:
            encoded = encode_record(state.record())
        return cls(state.job_id, state.user, state.status, encoded)

    def current_status(self) -> JobStatus:
        return self.status

    def record(self) -> dict[str, Any]:
        """The JobRecord (decoded from its bytes: a new dict on every call)."""
        record: dict[str, Any] = json.loads(self.encoded)
        return record

    @property
    def identity(self) -> dict[str, Any]:
        identity: dict[str, Any] = self.record()["identity"]
        return identity

    @property
    def result(self) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.record()["result"]
        return result

    @property
    def error(self) -> str | None:
        error: str | None = self.record()["error"]
        return error

    @property
    def finished(self) -> asyncio.Event:
        """Set, as a job's ``finished`` event is once it has ended."""
        done = asyncio.Event()
        done.set()
        return done

    def __repr__(self) -> str:
        return f"EndedJob({self.job_id!r}, {str(self.status)!r})"
