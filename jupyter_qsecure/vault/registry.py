"""The registry of secret values handed out to kernels.

One registry per server, keyed strictly by kernel id. It feeds the websocket
masker (which rebuilds its matcher when :attr:`ValueRegistry.version` changes),
the save gate's exact-value matching (:meth:`ValueRegistry.all_values`) and
revocation (:meth:`ValueRegistry.drop`).

Dynamic database credentials are registered as two values, ``NAME.username``
and ``NAME.password``. When a kernel's credentials are re-issued, values it
held before and no longer holds stay *retired* in the registry until the kernel
is dropped: the kernel may still have them in memory and print them, so they
are still masked and still matched at save time.

When a kernel is dropped (shut down, restarted, culled; its token revoked), its
values stay *lingering* while they can still be valid: revoking the kernel's
token does not change a KV secret, and an output that holds one is still open in
the browser. A value whose end of validity is known (a dynamic lease's or the
token's expiry, given to :meth:`ValueRegistry.register`) lingers until then; any
other (KV) value for ``retention_seconds`` (the ``fingerprint_retention_days``
setting, 30 days by default). Lingering values are masked and matched at save
time like live ones. A value marked :data:`ENDS_WITH_KERNEL` does not linger.

A value OpenBao confirmed revoked (a kernel's token, a dynamic database lease,
after a successful revocation) can no longer be used: :meth:`ValueRegistry.revoked`
ends its lingering (and its retirement), so masking does not grow with every
kernel the server served. When the revocation failed or was deferred, the value
lingers until its end of validity as above. KV values are never revoked this way.

Values never leave this object except through these methods; ``repr`` shows
counts only.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = ["ENDS_WITH_KERNEL", "RegistrySnapshot", "ValueRegistry"]

log = logging.getLogger(__name__)

#: Retired values kept per kernel (oldest dropped first).
MAX_RETIRED_PER_KERNEL = 256
#: Lingering values kept at most (those whose validity ends first are dropped first).
MAX_LINGERING = 10_000
#: A ``valid_until`` meaning: the value dies with the kernel (a local broker token).
ENDS_WITH_KERNEL = 0.0
DEFAULT_RETENTION_SECONDS = 30 * 86400.0

#: Told of every registration: ``(values by name, end of validity by name)``.
Listener = Callable[[Mapping[str, str], Mapping[str, float]], None]


@dataclass(frozen=True)
class RegistrySnapshot:
    """An immutable view: ``named`` maps each value to the name it is masked as."""

    version: int
    named: Mapping[str, str]

    def __repr__(self) -> str:
        return f"RegistrySnapshot(version={self.version}, values={len(self.named)})"


class ValueRegistry:
    """Thread-safe map kernel_id -> {name: value}, with a change counter.

    ``on_register`` (e.g. the fingerprint registry's ``record``) is called after every
    registration, outside the lock; its errors are logged, never raised.
    """

    def __init__(
        self,
        *,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        clock: Callable[[], float] = time.time,
        on_register: Listener | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._current: dict[str, dict[str, str]] = {}
        self._retired: dict[str, dict[str, str]] = {}  # kernel -> value -> name
        self._until: dict[str, float] = {}  # value -> end of validity, when known
        self._lingering: dict[str, tuple[str, float]] = {}  # value -> (name, until)
        self._next_expiry = math.inf
        self.retention_seconds = float(retention_seconds)
        self.clock = clock
        self.on_register = on_register
        self._version = 0
        self._cache_version = -1
        self._all: list[str] = []
        self._named: dict[str, str] = {}

    def __repr__(self) -> str:
        with self._lock:
            count = sum(len(v) for v in self._current.values())
            return (
                f"ValueRegistry(kernels={len(self._current)}, values={count}, "
                f"lingering={len(self._lingering)}, version={self._version})"
            )

    @property
    def version(self) -> int:
        """Increases on every change (incl. a lingering value expiring); equal versions
        mean equal contents."""
        if self._next_expiry <= self.clock():
            self._expire()
        return self._version

    def register(
        self,
        kernel_id: str,
        values: Mapping[str, str],
        *,
        valid_until: Mapping[str, float] | None = None,
    ) -> None:
        """Set the values ``kernel_id`` currently holds (replacing its previous set).

        Previous values no longer held are kept as retired (still masked) until
        :meth:`drop`. Empty values are ignored: an empty string cannot be masked.
        ``valid_until``: name -> epoch seconds when that value stops being valid (a
        lease's expiry), or :data:`ENDS_WITH_KERNEL`; names not given are KV values,
        kept for ``retention_seconds`` after the kernel is dropped.
        """
        if not isinstance(kernel_id, str) or not kernel_id:
            raise ValueError("kernel_id must be a non-empty string")
        fresh = {str(name): value for name, value in values.items() if isinstance(value, str)}
        fresh = {name: value for name, value in fresh.items() if value}
        given = valid_until or {}
        until = {name: float(given[name]) for name in fresh if name in given}
        try:
            self._register(kernel_id, fresh, until)
        finally:
            self._notify(fresh, until)

    def _notify(self, fresh: dict[str, str], until: dict[str, float]) -> None:
        if self.on_register is None or not fresh:
            return
        try:
            self.on_register(fresh, until)
        except Exception as exc:  # masking and the gate go on; the log says what failed
            log.error(
                "jupyter-qsecure: could not record fingerprints of injected values: %s: %s",
                type(exc).__name__,
                getattr(exc, "message", "") or "see the data dir's permissions",
            )

    def _register(self, kernel_id: str, fresh: dict[str, str], until: dict[str, float]) -> None:
        with self._lock:
            for name, value in fresh.items():
                if name in until:
                    self._until[value] = until[name]
            changed = False
            for value in fresh.values():
                if self._lingering.pop(value, None) is not None:
                    changed = True  # live again
            previous = self._current.get(kernel_id, {})
            if previous == fresh:
                if changed:
                    self._version += 1
                return
            kept = set(fresh.values())
            retired = self._retired.setdefault(kernel_id, {})
            for name, value in previous.items():
                if value not in kept:
                    retired[value] = name
            for value in kept:
                retired.pop(value, None)
            while len(retired) > MAX_RETIRED_PER_KERNEL:
                retired.pop(next(iter(retired)))
            if not retired:
                self._retired.pop(kernel_id, None)
            self._current[kernel_id] = fresh
            self._version += 1

    def add(self, kernel_id: str, name: str, value: str) -> None:
        """Register one more value for ``kernel_id`` (keeps the others)."""
        with self._lock:
            merged = dict(self._current.get(kernel_id, {}))
        merged[name] = value
        self.register(kernel_id, merged)

    def values_for(self, kernel_id: str) -> dict[str, str]:
        """The values ``kernel_id`` currently holds, name -> value (a copy)."""
        with self._lock:
            return dict(self._current.get(kernel_id, {}))

    def kernels(self) -> list[str]:
        with self._lock:
            return sorted(set(self._current) | set(self._retired))

    def drop(self, kernel_id: str) -> bool:
        """The kernel is gone: its values (current and retired) linger while they can
        still be valid, then are forgotten. Idempotent."""
        with self._lock:
            current = self._current.pop(kernel_id, None)
            retired = self._retired.pop(kernel_id, None)
            if current is None and retired is None:
                return False
            pairs = list((retired or {}).items()) + [(v, n) for n, v in (current or {}).items()]
            self._linger(pairs)
            self._version += 1
            return True

    def clear(self) -> None:
        """Forget everything, lingering values included (not used on kernel shutdown)."""
        with self._lock:
            if self._current or self._retired or self._lingering:
                self._current.clear()
                self._retired.clear()
                self._lingering.clear()
                self._until.clear()
                self._next_expiry = math.inf
                self._version += 1

    def revoked(self, values: Iterable[str]) -> int:
        """OpenBao confirmed ``values`` revoked (a kernel's token, a database lease's
        user and password): they are no longer lingering nor retired, so no longer
        masked or matched. A value a kernel currently holds stays. Returns how many
        values were forgotten."""
        dead = {value for value in values if isinstance(value, str) and value}
        if not dead:
            return 0
        with self._lock:
            live = {v for held in self._current.values() for v in held.values()}
            forgotten = 0
            for value in dead - live:
                found = self._lingering.pop(value, None) is not None
                for kernel_id, retired in list(self._retired.items()):
                    if retired.pop(value, None) is not None:
                        found = True
                        if not retired:
                            del self._retired[kernel_id]
                self._until.pop(value, None)
                forgotten += found
            if forgotten:
                self._version += 1
            return forgotten

    def lingering_count(self) -> int:
        """How many values of dropped kernels are still masked and matched."""
        self._expire()
        with self._lock:
            return len(self._lingering)

    def _linger(self, pairs: list[tuple[str, str]]) -> None:
        # caller holds the lock; pairs are (value, name)
        now = self.clock()
        live = {v for values in self._current.values() for v in values.values()}
        live.update(v for retired in self._retired.values() for v in retired)
        for value, name in pairs:
            end = self._until.get(value)
            if end is None:
                end = now + self.retention_seconds
            if value in live or end == ENDS_WITH_KERNEL or end <= now:
                if value not in live:
                    self._until.pop(value, None)
                continue
            previous = self._lingering.get(value)
            if previous is None or previous[1] < end:
                self._lingering[value] = (name, end)
            self._next_expiry = min(self._next_expiry, end)
        if len(self._lingering) > MAX_LINGERING:
            soonest = sorted(self._lingering, key=lambda v: self._lingering[v][1])
            for value in soonest[: len(self._lingering) - MAX_LINGERING]:
                del self._lingering[value]

    def _expire(self) -> None:
        """Forget lingering values whose validity has ended."""
        now = self.clock()
        with self._lock:
            if self._next_expiry > now:
                return
            gone = [v for v, (_, end) in self._lingering.items() if end <= now]
            for value in gone:
                del self._lingering[value]
                self._until.pop(value, None)
            self._next_expiry = min((end for _, end in self._lingering.values()), default=math.inf)
            if gone:
                self._version += 1

    def _rebuild(self) -> None:
        # caller holds the lock
        if self._cache_version == self._version:
            return
        named: dict[str, str] = {value: name for value, (name, _) in self._lingering.items()}
        for retired in self._retired.values():
            named.update(retired)
        for current in self._current.values():
            for name, value in current.items():
                named[value] = name
        self._named = named
        # longest first: a masker replacing in this order never leaves part of a value
        self._all = sorted(named, key=lambda v: (-len(v), v))
        self._cache_version = self._version

    def all_values(self) -> list[str]:
        """Every distinct value handed out to any live kernel (incl. retired) and every
        lingering value, longest first."""
        self._expire()
        with self._lock:
            self._rebuild()
            return list(self._all)

    def named_values(self, kernel_id: str | None = None) -> dict[str, str]:
        """name -> value for a masker: one kernel's values, or every live kernel's and
        every lingering value (default).

        Values held under the same name by several kernels (or retired after a
        re-issue, or lingering) get unique keys ``NAME~2``, ``NAME~3``... so none is
        lost; each distinct value appears once.
        """
        self._expire()
        with self._lock:
            pairs = self._pairs(kernel_id)
        return _unique_names(pairs)

    def _pairs(self, kernel_id: str | None) -> list[tuple[str, str]]:
        # caller holds the lock
        kernels = (
            [kernel_id]
            if kernel_id is not None
            else sorted(set(self._current) | set(self._retired))
        )
        pairs: list[tuple[str, str]] = []
        for kernel in kernels:
            pairs.extend(sorted(self._current.get(kernel, {}).items()))
        for kernel in kernels:
            pairs.extend((name, value) for value, name in self._retired.get(kernel, {}).items())
        if kernel_id is None:
            pairs.extend((name, value) for value, (name, _) in self._lingering.items())
        return pairs

    def versioned_named_values(self) -> tuple[int, dict[str, str]]:
        """(version, :meth:`named_values`) read together: the values are those of that
        version (a masker built from them is labelled with the right version)."""
        self._expire()
        with self._lock:
            version = self._version
            pairs = self._pairs(None)
        return version, _unique_names(pairs)

    def snapshot(self) -> RegistrySnapshot:
        """Version and value -> name for every live kernel and lingering value, atomically."""
        self._expire()
        with self._lock:
            self._rebuild()
            return RegistrySnapshot(version=self._version, named=dict(self._named))


def _unique_names(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """name -> value, each distinct value once; a repeated name gets ``NAME~2``, ..."""
    named: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if value in seen:
            continue
        seen.add(value)
        key, n = name, 1
        while key in named:
            n += 1
            key = f"{name}~{n}"
        named[key] = value
    return named
