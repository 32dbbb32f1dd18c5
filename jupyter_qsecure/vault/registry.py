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

Values never leave this object except through these methods; ``repr`` shows
counts only.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RegistrySnapshot", "ValueRegistry"]

#: Retired values kept per kernel (oldest dropped first).
MAX_RETIRED_PER_KERNEL = 256


@dataclass(frozen=True)
class RegistrySnapshot:
    """An immutable view: ``named`` maps each value to the name it is masked as."""

    version: int
    named: Mapping[str, str]

    def __repr__(self) -> str:
        return f"RegistrySnapshot(version={self.version}, values={len(self.named)})"


class ValueRegistry:
    """Thread-safe map kernel_id -> {name: value}, with a change counter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[str, dict[str, str]] = {}
        self._retired: dict[str, dict[str, str]] = {}  # kernel -> value -> name
        self._version = 0
        self._cache_version = -1
        self._all: list[str] = []
        self._named: dict[str, str] = {}

    def __repr__(self) -> str:
        with self._lock:
            count = sum(len(v) for v in self._current.values())
            return (
                f"ValueRegistry(kernels={len(self._current)}, values={count}, "
                f"version={self._version})"
            )

    @property
    def version(self) -> int:
        """Increases on every change; equal versions mean equal contents."""
        return self._version

    def register(self, kernel_id: str, values: Mapping[str, str]) -> None:
        """Set the values ``kernel_id`` currently holds (replacing its previous set).

        Previous values no longer held are kept as retired (still masked) until
        :meth:`drop`. Empty values are ignored: an empty string cannot be masked.
        """
        if not isinstance(kernel_id, str) or not kernel_id:
            raise ValueError("kernel_id must be a non-empty string")
        fresh = {str(name): value for name, value in values.items() if isinstance(value, str)}
        fresh = {name: value for name, value in fresh.items() if value}
        with self._lock:
            previous = self._current.get(kernel_id, {})
            if previous == fresh:
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
        """Forget every value of ``kernel_id`` (current and retired). Idempotent."""
        with self._lock:
            had = self._current.pop(kernel_id, None) is not None
            had = self._retired.pop(kernel_id, None) is not None or had
            if had:
                self._version += 1
            return had

    def clear(self) -> None:
        with self._lock:
            if self._current or self._retired:
                self._current.clear()
                self._retired.clear()
                self._version += 1

    def _rebuild(self) -> None:
        # caller holds the lock
        if self._cache_version == self._version:
            return
        named: dict[str, str] = {}
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
        """Every distinct value handed out to any live kernel (incl. retired), longest first."""
        with self._lock:
            self._rebuild()
            return list(self._all)

    def named_values(self, kernel_id: str | None = None) -> dict[str, str]:
        """name -> value for a masker: one kernel's values, or every live kernel's (default).

        Values held under the same name by several kernels (or retired after a
        re-issue) get unique keys ``NAME~2``, ``NAME~3``... so none is lost; each
        distinct value appears once.
        """
        with self._lock:
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

    def snapshot(self) -> RegistrySnapshot:
        """Version and value -> name for every live kernel, taken atomically."""
        with self._lock:
            self._rebuild()
            return RegistrySnapshot(version=self._version, named=dict(self._named))
