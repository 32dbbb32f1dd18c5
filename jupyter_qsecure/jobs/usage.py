"""Per-identity usage for the policy's rate limit and daily quota (``jobs_per_minute``,
``shots_per_day``): the counts :class:`~jupyter_qsecure.jobs.policy.PolicyEngine` checks."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..ledger import EntryFilter

_RATE_WINDOW_SECONDS = 60.0  # jobs_per_minute counts jobs in this sliding window
_SECONDS_PER_DAY = 86_400


def _epoch(when: Any) -> float:
    if isinstance(when, bool):
        raise TypeError("a time is not a bool")
    if isinstance(when, (int, float)):
        return float(when)
    if isinstance(when, datetime):
        aware: datetime = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
        return aware.timestamp()
    if isinstance(when, str):
        return _epoch(datetime.fromisoformat(when.replace("Z", "+00:00")))
    raise TypeError(f"cannot read a time from {type(when).__name__}")


def _day(when: float) -> int:
    """UTC calendar day number (the Unix epoch starts at a UTC midnight)."""
    return int(when // _SECONDS_PER_DAY)


@dataclass(frozen=True)
class UsageViolation:
    rule: str
    limit: int
    actual: int


class UsageTracker:
    """Jobs in the last 60 s and shots since 00:00 UTC, per identity key. Thread-safe.

    In memory only: at server start, :meth:`from_ledger` rebuilds it from past decisions
    (ledger ``job.decided`` bodies, through :meth:`load`). Only allowed jobs are recorded.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, list[float]] = {}
        self._shots: dict[str, dict[int, int]] = {}

    # All _locked methods expect self._lock to be held.
    def _record_locked(self, key: str, shots: int, when: float) -> None:
        times = self._jobs.setdefault(key, [])
        bisect.insort(times, when)
        by_day = self._shots.setdefault(key, {})
        day = _day(when)
        by_day[day] = by_day.get(day, 0) + shots
        if len(by_day) > 2:
            newest = max(by_day)
            for old in [d for d in by_day if d < newest - 1]:
                del by_day[old]

    def _jobs_locked(self, key: str, now: float) -> int:
        times = self._jobs.get(key)
        if not times:
            return 0
        cut = bisect.bisect_right(times, now - _RATE_WINDOW_SECONDS)
        if cut:
            del times[:cut]
        return bisect.bisect_right(times, now)

    def _shots_locked(self, key: str, now: float) -> int:
        return self._shots.get(key, {}).get(_day(now), 0)

    def record(self, identity_key: str, shots: int, when: float | datetime | str) -> None:
        """Count one job of ``shots`` total shots at ``when`` (epoch seconds, datetime, ISO)."""
        with self._lock:
            self._record_locked(identity_key, int(shots), _epoch(when))

    def jobs_last_minute(self, identity_key: str, now: float) -> int:
        with self._lock:
            return self._jobs_locked(identity_key, now)

    def shots_today(self, identity_key: str, now: float) -> int:
        with self._lock:
            return self._shots_locked(identity_key, now)

    def check_and_record(
        self,
        identity_key: str,
        shots: int,
        now: float,
        *,
        jobs_per_minute: int,
        shots_per_day: int,
    ) -> UsageViolation | None:
        """Atomically: refuse if this job would break a limit, else record it."""
        with self._lock:
            jobs = self._jobs_locked(identity_key, now) + 1
            if jobs > jobs_per_minute:
                return UsageViolation("jobs_per_minute", jobs_per_minute, jobs)
            total = self._shots_locked(identity_key, now) + shots
            if total > shots_per_day:
                return UsageViolation("shots_per_day", shots_per_day, total)
            self._record_locked(identity_key, shots, now)
            return None

    def load(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Rebuild from past decisions; returns how many jobs were counted.

        Each event is a mapping with ``identity_key``, ``shots_charged`` (or ``shots``) and
        ``evaluated_at`` (or ``when``; epoch seconds, datetime or ISO 8601), e.g. the body
        of a ledger ``job.decided`` entry. Events with ``allowed`` false are skipped.
        """
        counted = 0
        with self._lock:
            for event in events:
                if event.get("allowed") is False:
                    continue
                key = event["identity_key"]
                shots = event.get("shots_charged", event.get("shots", 0))
                when = event.get("evaluated_at", event.get("when"))
                self._record_locked(str(key), int(shots), _epoch(when))
                counted += 1
        return counted

    @classmethod
    def from_ledger(cls, ledger: Any, now: datetime | None = None) -> UsageTracker:
        """A tracker rebuilt from the ``job.decided`` entries ``ledger`` holds since 00:00
        UTC today (enough for both the minute window and the daily quota): how a restarted
        server keeps counting what it allowed before."""
        today = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT00:00:00.000000Z")
        tracker = cls()
        tracker.load(
            e.body for e in ledger.entries(EntryFilter(kinds=["job.decided"], since=today))
        )
        return tracker
