"""The fingerprint registry: keyed fingerprints of every value injected into a kernel
in the last N days, kept in the data dir so that tools outside Jupyter can recognise
them (``jupyter qsecure scan run.log``, the pre-commit hook) and so that the save
gate still recognises them after the server restarts.

The file (``<data dir>/fingerprints/injected.json``, mode 0600) never holds a value:
per entry the fingerprint (HMAC-SHA-256 under the fingerprint key, see
:mod:`jupyter_qsecure.scan.fingerprints`), the id of that key, the secret's name and
environment, when it was first and last injected, when the entry expires, the
value's length in UTF-8 bytes and which kinds of separator characters it holds (the
tokeniser's cheap pre-filters: neither lets anyone check a guess without the key),
and whether it is a *part* of a structured value (a PEM line, a JSON field, a URL's
password).

An entry expires ``retention`` after the last injection (the
``fingerprint_retention_days`` setting, 30 by default) or, for a value whose lease
ends sooner (dynamic database credentials, the kernel's own token), an hour after
that lease ends. Writers (the server) serialise on an ``fcntl`` lock on a side file
and replace the file atomically; readers (the gate, the command line) reload it when
it changes. A JSON file was chosen over SQLite: a few thousand entries at most,
written rarely (at most hourly per value), readable with any tool.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import QSecureError
from ..scan.fingerprints import (
    Fingerprinter,
    FingerprintIndex,
    Registered,
    Shape,
    registrable_forms,
    shape_of,
)

if TYPE_CHECKING:
    from ..config import QSecure

__all__ = ["InjectedEntry", "InjectedRegistry", "InjectedRegistryError", "RegistryStatus"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: A leased value's entry outlives the lease by this much (entries are rewritten at
#: most about this often while a lease is renewed).
LEASE_MARGIN_SECONDS = 3600.0


class InjectedRegistryError(QSecureError):
    """The fingerprint registry file cannot be read or written."""


class InjectedEntry(BaseModel):
    """One fingerprint. Never the value."""

    model_config = ConfigDict(extra="forbid")

    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    name: str
    environment: str = ""
    first_injected: str
    last_injected: str
    expires: str
    length: int = Field(ge=1, description="Length of the value in UTF-8 bytes.")
    shape: Shape = Field(
        default="raw",
        description="Which separator characters the value holds (plain, punctuated, raw): "
        "how the tokeniser looks for it.",
    )
    part: bool = False


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = FORMAT_VERSION
    keys: dict[str, str] = Field(default_factory=dict, description="key id -> where the key is")
    entries: list[InjectedEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class RegistryStatus:
    """What the registry holds for a reader with one key."""

    usable: int
    #: Live entries made with another key: where that key is -> how many.
    other_keys: Mapping[str, int]

    @property
    def unusable(self) -> int:
        return sum(self.other_keys.values())


def _iso(epoch: float) -> str:
    stamp = datetime.fromtimestamp(epoch, tz=timezone.utc).replace(microsecond=0)
    return stamp.isoformat().replace("+00:00", "Z")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class InjectedRegistry:
    """The registry file of one data dir, seen through one fingerprint key."""

    def __init__(
        self,
        path: Path,
        fingerprinter: Fingerprinter,
        *,
        environment: str = "",
        retention_seconds: float = 30 * 86400.0,
        clock: Any = time.time,
    ) -> None:
        self.path = Path(path)
        self.fingerprinter = fingerprinter
        self.environment = environment
        self.retention_seconds = float(retention_seconds)
        self.clock = clock
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._index: FingerprintIndex | None = None
        self._index_expires = math.inf
        self._status = RegistryStatus(0, {})
        #: What this process last wrote or read, (key id, fingerprint) -> (name, day,
        #: expires): an injection that changes none of it is not even read from disk.
        self._known: dict[tuple[str, str], tuple[str, str, str]] = {}

    @classmethod
    def for_settings(cls, settings: QSecure, fingerprinter: Fingerprinter) -> InjectedRegistry:
        return cls(
            settings.data_path / "fingerprints" / "injected.json",
            fingerprinter,
            environment=settings.environment,
            retention_seconds=float(settings.fingerprint_retention_days) * 86400.0,
        )

    def __repr__(self) -> str:
        return f"InjectedRegistry({self.path}, key {self.fingerprinter.key_id})"

    # ---- writing (the server) ------------------------------------------------------------
    def record(self, values: Mapping[str, str], valid_until: Mapping[str, float]) -> None:
        """Record that ``values`` (name -> value) were injected now.

        ``valid_until`` (name -> epoch) bounds an entry's life for leased values. The
        file is rewritten only when an entry is new, or its last-injection day or its
        expiry (by more than :data:`LEASE_MARGIN_SECONDS`) moved on.
        """
        now = self.clock()
        key_id = self.fingerprinter.key_id
        fresh: list[InjectedEntry] = []
        for name, value in values.items():
            end = now + self.retention_seconds
            until = valid_until.get(name)
            if until is not None:
                if until <= now:
                    continue  # ENDS_WITH_KERNEL, or already expired
                end = min(end, until + LEASE_MARGIN_SECONDS)
            whole, parts = registrable_forms(value)
            forms = ([(whole, False)] if whole else []) + [(p, True) for p in parts]
            for form, part in forms:
                fresh.append(
                    InjectedEntry(
                        fingerprint=self.fingerprinter(form),
                        key_id=key_id,
                        name=name,
                        environment=self.environment,
                        first_injected=_iso(now),
                        last_injected=_iso(now),
                        expires=_iso(end),
                        length=len(form.encode("utf-8", "surrogatepass")),
                        shape=shape_of(form),
                        part=part,
                    )
                )
        if not fresh or all(self._unchanged(entry) for entry in fresh):
            return
        with self._lock, self._locked():
            data = self._load_for_update()
            by_key = {(e.key_id, e.fingerprint): e for e in data.entries}
            changed = False
            for entry in fresh:
                old = by_key.get((entry.key_id, entry.fingerprint))
                if old is None:
                    by_key[(entry.key_id, entry.fingerprint)] = entry
                    changed = True
                    continue
                later = _epoch(entry.expires) > _epoch(old.expires) + LEASE_MARGIN_SECONDS
                if (
                    later
                    or old.last_injected[:10] != entry.last_injected[:10]
                    or (old.name != entry.name)
                ):
                    by_key[(entry.key_id, entry.fingerprint)] = entry.model_copy(
                        update={
                            "first_injected": old.first_injected,
                            "expires": max(entry.expires, old.expires),
                        }
                    )
                    changed = True
            live = [e for e in by_key.values() if _epoch(e.expires) > now]
            if len(live) != len(by_key):
                changed = True
            if data.keys.get(key_id) != self.fingerprinter.source:
                data.keys[key_id] = self.fingerprinter.source
                changed = True
            if changed:
                data.entries = sorted(live, key=lambda e: (e.first_injected, e.fingerprint))
                used = {e.key_id for e in data.entries}
                data.keys = {k: v for k, v in data.keys.items() if k in used or k == key_id}
                self._write(data)
            self._known = {
                (e.key_id, e.fingerprint): (e.name, e.last_injected[:10], e.expires) for e in live
            }

    def _unchanged(self, entry: InjectedEntry) -> bool:
        known = self._known.get((entry.key_id, entry.fingerprint))
        if known is None or known[:2] != (entry.name, entry.last_injected[:10]):
            return False
        return _epoch(entry.expires) <= _epoch(known[2]) + LEASE_MARGIN_SECONDS

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(
                self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600
            )
        except OSError as exc:
            raise InjectedRegistryError(
                f"cannot open the fingerprint registry lock in {self.path.parent}: {exc.strerror}",
                hint="make the data dir writable (QSECURE_DATA_DIR)",
            ) from None
        try:
            import fcntl  # POSIX, as the rest of the data dir's handling (modes 0600)

            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _load_for_update(self) -> _File:
        try:
            return self._read() or _File()
        except InjectedRegistryError as exc:
            # A damaged file must not stop recording: keep it aside for inspection.
            aside = self.path.with_name(f"{self.path.name}.damaged-{int(self.clock())}")
            os.replace(self.path, aside)
            log.error(
                "jupyter-qsecure: %s; moved it to %s and started a new one", exc.message, aside
            )
            return _File()

    def _write(self, data: _File) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        text = data.model_dump_json(indent=1).encode("utf-8")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise InjectedRegistryError(
                f"cannot write the fingerprint registry {self.path}: {exc.strerror}",
                hint="make the data dir writable (QSECURE_DATA_DIR)",
            ) from None

    # ---- reading (the gate, the command line) ----------------------------------------------
    def _read(self) -> _File | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise InjectedRegistryError(
                f"cannot read the fingerprint registry {self.path}: {exc.strerror}",
                hint="check the permissions of the data dir (QSECURE_DATA_DIR)",
            ) from None
        try:
            data = _File.model_validate_json(raw)
        except ValidationError as exc:
            raise InjectedRegistryError(
                f"the fingerprint registry {self.path} is damaged ({exc.error_count()} "
                "problem(s), e.g. "
                f"{'.'.join(str(p) for p in exc.errors()[0]['loc']) or 'file'}: "
                f"{exc.errors()[0]['msg']})",
                hint="move it away; the server starts a new one at the next injection",
            ) from None
        if data.version != FORMAT_VERSION:
            raise InjectedRegistryError(
                f"the fingerprint registry {self.path} has format version {data.version}, "
                f"this jupyter-qsecure reads {FORMAT_VERSION}",
                hint="use the jupyter-qsecure version that wrote it",
            )
        return data

    def index(self) -> FingerprintIndex:
        """Live fingerprints made with this registry's key (reloaded when the file changes
        or an entry expires). Raises :class:`InjectedRegistryError` if it is unreadable."""
        now = self.clock()
        try:
            info = self.path.stat()
            signature: tuple[int, int, int] | None = (info.st_ino, info.st_size, info.st_mtime_ns)
        except FileNotFoundError:
            signature = None
        except OSError as exc:
            raise InjectedRegistryError(
                f"cannot read the fingerprint registry {self.path}: {exc.strerror}",
                hint="check the permissions of the data dir (QSECURE_DATA_DIR)",
            ) from None
        with self._lock:
            if (
                self._index is not None
                and signature == self._signature
                and now < self._index_expires
            ):
                return self._index
            data = self._read() if signature is not None else None
            entries = data.entries if data is not None else []
            key_id = self.fingerprinter.key_id
            registered: dict[str, Registered] = {}
            others: dict[str, int] = {}
            expires = math.inf
            for entry in entries:
                end = _epoch(entry.expires)
                if end <= now:
                    continue
                if entry.key_id != key_id:
                    where = (data.keys if data else {}).get(entry.key_id, f"key {entry.key_id}")
                    others[where] = others.get(where, 0) + 1
                    continue
                registered[entry.fingerprint] = Registered(
                    name=entry.name,
                    injected_on=entry.last_injected[:10],
                    length=entry.length,
                    shape=entry.shape,
                    part=entry.part,
                    environment=entry.environment,
                )
                expires = min(expires, end)
            self._index = FingerprintIndex(self.fingerprinter, registered)
            self._status = RegistryStatus(len(registered), others)
            self._signature = signature
            self._index_expires = expires
            return self._index

    def status(self) -> RegistryStatus:
        """How many live entries this key can check, and how many it cannot."""
        self.index()
        return self._status
