"""What the secrets panel and the status bar show: names, lease state, time left.

Pure functions over what the broker already holds (no network): the stored names come
from :class:`~.secret_store.SecretStore`, the leases from the broker's cached
:class:`~.broker.KernelCredentials`. Never a value. The JSON shapes are the REST
contract (``docs/rest-api.md``: ``GET secrets``, ``GET status``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .broker import TOKEN_LEASE, KernelCredentials, LeaseInfo, _iso
from .secret_store import StoredSecret
from .secrets_spec import SecretSpec

__all__ = ["kernel_status", "secrets_overview"]


def _lease_json(kernel_id: str, lease: LeaseInfo, now: float) -> dict[str, Any]:
    return {
        "kernel_id": kernel_id,
        "expires_at": _iso(lease.expires_at),
        "seconds_left": None
        if lease.expires_at is None
        else round(max(0.0, lease.expires_at - now), 1),
        "renewable": lease.renewable,
    }


def secrets_overview(
    stored: Iterable[StoredSecret],
    configured: Iterable[SecretSpec],
    kernels: Mapping[str, KernelCredentials],
    now: float,
) -> list[dict[str, Any]]:
    """Every name a kernel of this environment may get (configured first wins), sorted,
    with the running kernels' leases on it."""
    entries: dict[str, dict[str, Any]] = {}
    for spec in configured:
        entries[spec.name] = {
            "name": spec.name,
            "source": "config",
            "location": spec.location,
            "kind": spec.kind,
            "version": None,
            "updated_at": None,
        }
    for secret in stored:
        if secret.name in entries:
            continue  # the configuration maps this name elsewhere: it wins, as in kernels
        entries[secret.name] = {
            "name": secret.name,
            "source": "store",
            "location": secret.location,
            "kind": "kv",
            "version": secret.version,
            "updated_at": secret.updated_at,
        }
    for entry in entries.values():
        name = entry["name"]
        entry["leases"] = [
            _lease_json(kernel_id, creds.leases[name], now)
            for kernel_id, creds in sorted(kernels.items())
            if name in creds.leases
        ]
    return [entries[name] for name in sorted(entries)]


def kernel_status(
    kernel_id: str, name: str | None, creds: KernelCredentials | None, now: float
) -> dict[str, Any]:
    """One kernel's credential state for the status bar."""
    state: dict[str, Any] = {
        "kernel_id": kernel_id,
        "name": name,
        "credentials": "none",
        "expires_at": None,
        "seconds_left": None,
        "renewable": None,
        "secrets": [],
        "errors": {},
    }
    if creds is None:
        return state
    if creds.error is not None:
        state.update(credentials="error", errors={"*": creds.error})
        return state
    token = creds.leases.get(TOKEN_LEASE)
    state.update(
        credentials="active",
        secrets=sorted(creds.secrets),
        errors=dict(creds.errors),
    )
    if token is not None:
        lease = _lease_json(kernel_id, token, now)
        state.update(
            expires_at=lease["expires_at"],
            seconds_left=lease["seconds_left"],
            renewable=lease["renewable"],
        )
    return state


class OpenBaoHealth:
    """Is OpenBao reachable? ``sys/health`` (no token), answered from a cache for
    ``cache_seconds``; each check times out after ``timeout`` seconds. Thread-safe enough
    for the status route: a race costs one extra request."""

    def __init__(
        self,
        addr: str,
        *,
        embedded: bool = False,
        cache_seconds: float = 5.0,
        timeout: float = 2.0,
        clock: Any = None,
    ) -> None:
        import time

        self.addr = addr.rstrip("/")
        self.embedded = embedded
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._clock = clock or time.monotonic
        self._cached: tuple[float, dict[str, Any]] | None = None

    def check(self) -> dict[str, Any]:
        """``{configured, address, embedded, reachable, sealed, error}`` (blocking)."""
        if not self.addr:
            return {
                "configured": False,
                "address": None,
                "embedded": False,
                "reachable": None,
                "sealed": None,
                "error": None,
            }
        now = self._clock()
        if self._cached is not None and now - self._cached[0] < self.cache_seconds:
            return dict(self._cached[1])
        state = self._probe()
        self._cached = (now, state)
        return dict(state)

    def _probe(self) -> dict[str, Any]:
        import requests

        from .client import VaultConnection

        state: dict[str, Any] = {
            "configured": True,
            "address": self.addr,
            "embedded": self.embedded,
            "reachable": False,
            "sealed": None,
            "error": None,
        }
        connection = VaultConnection.from_environment(self.addr)
        try:
            # standbyok/sealedcode: answer 200/503 instead of other codes for those states
            response = connection.session.get(
                f"{self.addr}/v1/sys/health",
                params={"standbyok": "true", "perfstandbyok": "true"},
                timeout=self.timeout,
                verify=connection.verify,
                cert=connection.cert,
            )
        except requests.RequestException as exc:
            state["error"] = f"{type(exc).__name__}: not reachable"
            return state
        try:
            health = response.json()
        except ValueError:
            health = {}
        state["reachable"] = True
        state["sealed"] = bool(health.get("sealed")) if isinstance(health, dict) else None
        if response.status_code not in (200, 429, 472, 473):
            state["error"] = f"HTTP {response.status_code}" + (
                " (sealed)" if state["sealed"] else ""
            )
        return state
