"""The credential broker: per-kernel child tokens and leased secrets from OpenBao/Vault.

The server holds one token with policy ``qsecure-server-ENV`` (see
:mod:`jupyter_qsecure.vault.layout`). For every kernel the broker:

1. creates a child token through the token role ``qsecure-kernel-ENV`` (policy
   ``qsecure-kernel-ENV`` only, short TTL, renewable, metadata kernel_id, user,
   environment);
2. reads every configured secret, and every name stored under the environment's
   prefix (``secret/qsecure/ENV/NAME``, field ``value``: :mod:`.secret_store`; the
   configured entries win on a clash), *with that child token*, so OpenBao's policy,
   not this code, decides what the kernel may read, and dynamic leases (database
   users) belong to the child token;
3. registers the values in the :class:`~jupyter_qsecure.vault.registry.ValueRegistry`
   and records ``credential.issued`` ledger entries (accessor, lease id, policies,
   TTL; never a value);
4. caches the result: while the leases are fresh, :meth:`CredentialBroker.credentials_for`
   returns from memory without any network call; when less than a third of a
   TTL remains it renews the token and the dynamic leases (``credential.renewed``),
   and when renewal is refused (max TTL reached, token revoked, OpenBao
   restarted) it re-issues everything;
5. revokes the dynamic leases and the token on :meth:`CredentialBroker.revoke`
   (``credential.revoked``), so a value leaked from an output is dead once the
   kernel stops;
6. after :meth:`CredentialBroker.refresh` (a secret stored or deleted, the ``secrets``
   setting changed: :meth:`CredentialBroker.set_specs`), reads the secrets again at each
   kernel's next call, with the kernel's token (a changed database role: a new grant).

The API is synchronous; the server calls it through ``asyncio.to_thread``. Every
request has a short timeout, so an unreachable or hung OpenBao produces an error
in seconds, never a hang. Failures never raise out of ``credentials_for``: they
come back in :class:`KernelCredentials` (``error`` for the whole kernel,
``errors[name]`` per secret) and as ``credential.failed`` entries; the next call
retries.

Deliberately not done here: masking (the websocket layer reads the registry),
and authenticating the server itself (``jupyter_qsecure.vault.client``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal

import hvac
import hvac.exceptions
import requests

from ..errors import QSecureError
from ..identity import user_actor
from . import layout
from .client import connection_of
from .registry import ValueRegistry
from .secret_store import convention_spec
from .secrets_spec import NAME_PATTERN, SecretSpec

__all__ = [
    "CredentialBroker",
    "KernelCredentials",
    "LeaseInfo",
    "TOKEN_LEASE",
    "VaultUnavailable",
]

log = logging.getLogger(__name__)

#: Key of the kernel token's own entry in ``KernelCredentials.leases`` (secret
#: names must start with a letter, so it never collides with one).
TOKEN_LEASE = "_token"  # noqa: S105 (a dictionary key, not a secret)
METADATA_VERSION = 1
#: Renew when less than this fraction of a lease's TTL remains.
RENEW_FRACTION = 1 / 3
#: After a per-secret failure, try that secret again after this many seconds.
SECRET_RETRY_SECONDS = 10.0
#: After a failed renewal while the token is still valid, try again after at most this.
RENEW_RETRY_SECONDS = 5.0
#: Do not record the same failure for the same kernel more often than this.
FAILURE_RECORD_INTERVAL = 60.0
#: Threads for a cold issue's OpenBao requests (listing names while the token is created,
#: the secrets read together): round trips to OpenBao, mostly waiting.
REQUEST_THREADS = 8


class VaultUnavailable(QSecureError):
    """OpenBao/Vault could not be reached or is sealed (message says what to do)."""


LeaseKind = Literal["kv", "database", "token"]


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    stamp = datetime.fromtimestamp(epoch, tz=timezone.utc).replace(microsecond=0)
    return stamp.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class LeaseInfo:
    """Time and renewability of one credential (never its value)."""

    kind: LeaseKind
    lease_id: str | None
    expires_at: float | None
    ttl_seconds: int | None
    renewable: bool

    def to_metadata(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "lease_id": self.lease_id,
            "expires_at": _iso(self.expires_at),
            "ttl_seconds": self.ttl_seconds,
            "renewable": self.renewable,
        }


@dataclass(frozen=True)
class KernelCredentials:
    """What one kernel gets for one execution. ``repr`` never shows the token or values.

    :meth:`to_metadata` is the kernel contract (``execute_request`` metadata
    ``["qsecure"]``).
    """

    kernel_id: str
    environment: str
    user: str
    vault_addr: str
    accessor: str | None = None
    policies: tuple[str, ...] = ()
    token: str | None = field(default=None, repr=False)
    secrets: Mapping[str, str | Mapping[str, str]] = field(default_factory=dict, repr=False)
    leases: Mapping[str, LeaseInfo] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the kernel has a token (some secrets may still be in ``errors``)."""
        return self.error is None and self.token is not None

    def to_metadata(self) -> dict[str, Any]:
        """The dict the kernel extension reads from ``metadata["qsecure"]`` (fresh copy)."""
        secrets: dict[str, Any] = {
            name: (dict(value) if isinstance(value, Mapping) else value)
            for name, value in self.secrets.items()
        }
        return {
            "v": METADATA_VERSION,
            "kernel_id": self.kernel_id,
            "environment": self.environment,
            "identity": {
                "user": self.user,
                "accessor": self.accessor,
                "policies": list(self.policies),
            },
            "vault_addr": self.vault_addr,
            "token": self.token,
            "secrets": secrets,
            "leases": {name: lease.to_metadata() for name, lease in self.leases.items()},
            "errors": dict(self.errors),
            "error": self.error,
        }


@dataclass
class _Grant:
    """One dynamic lease held by a kernel token."""

    name: str
    lease_id: str
    duration: int
    renewable: bool
    expires_at: float


@dataclass
class _KernelState:
    kernel_id: str
    user: str
    grant_id: str
    token: str = field(repr=False)
    accessor: str
    policies: tuple[str, ...]
    token_ttl: int
    token_renewable: bool
    token_expires_at: float
    renew_at: float
    values: dict[str, str | dict[str, str]] = field(default_factory=dict, repr=False)
    specs: list[SecretSpec] = field(default_factory=list)
    generation: int = 0
    reload_retry_at: float = 0.0
    kv_meta: dict[str, int | None] = field(default_factory=dict)
    grants: dict[str, _Grant] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    retry_at: float = float("inf")
    credentials: KernelCredentials | None = None

    @property
    def fresh_until(self) -> float:
        return min(self.renew_at, self.retry_at)


#: What reading one spec gives: (value, dynamic grant, kv version, error message).
_ReadResult = tuple[str | dict[str, str] | None, _Grant | None, int | None, str | None]


class _Transport(Exception):  # noqa: N818 - internal signal, never escapes
    """OpenBao unreachable, sealed or timed out; ``message`` says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class _Pending:
    """One revocation: what to revoke in OpenBao, and the values that die with it."""

    accessor: str
    lease_ids: list[str]
    kernel_id: str
    user: str
    #: The token itself: unusable once its accessor is revoked.
    token: str = field(default="", repr=False)
    #: lease id -> the values (database username, password) unusable once it is revoked.
    lease_values: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, state: _KernelState) -> _Pending:
        lease_values: dict[str, tuple[str, ...]] = {}
        for name, grant in state.grants.items():
            value = state.values.get(name)
            if grant.lease_id and isinstance(value, dict):
                lease_values[grant.lease_id] = tuple(value.values())
        return cls(
            accessor=state.accessor,
            lease_ids=[g.lease_id for g in state.grants.values() if g.lease_id],
            kernel_id=state.kernel_id,
            user=state.user,
            token=state.token,
            lease_values=lease_values,
        )

    def dead_values(self, revoked: _Revoked) -> list[str]:
        """The values OpenBao confirmed unusable by ``revoked``."""
        dead = [self.token] if revoked.token and self.token else []
        for lease_id in revoked.lease_ids:
            dead.extend(self.lease_values.get(lease_id, ()))
        return dead


@dataclass(frozen=True)
class _Revoked:
    """What OpenBao confirmed revoked (an error answer, e.g. already gone, confirms nothing)."""

    lease_ids: tuple[str, ...]
    token: bool


class CredentialBroker:
    """Issues, caches, renews and revokes per-kernel credentials (thread-safe, sync)."""

    def __init__(
        self,
        server_client: hvac.Client,
        *,
        environment: str,
        specs: Sequence[SecretSpec],
        ledger: Any | None = None,
        registry: ValueRegistry,
        token_ttl: str | int = layout.KERNEL_TOKEN_TTL,
        clock: Callable[[], float] = time.time,
        vault_addr: str | None = None,
        timeout: float = 5.0,
        connect_timeout: float = 2.0,
        discover: bool = True,
    ) -> None:
        if environment not in layout.ENVIRONMENTS:
            raise QSecureError(
                f"unknown environment {environment!r}",
                hint=f"use one of {', '.join(layout.ENVIRONMENTS)}",
            )
        self.server_client = server_client
        self.environment = environment
        self.specs: list[SecretSpec] = []
        self._generation = 0
        self.set_specs(specs)
        self.discover = discover
        self._discovery_refused = False
        self.ledger = ledger
        self.registry = registry
        self.token_ttl = token_ttl
        self.clock = clock
        # this broker's clients: the server's connection (TLS, namespace, session)
        # with short timeouts, at vault_addr when given
        connection = connection_of(server_client)
        if vault_addr:
            connection = replace(connection, addr=vault_addr)
        self.vault_addr = connection.addr
        self._connection = connection.with_timeout((min(connect_timeout, timeout), timeout))
        self._server = self._client(token=None)
        self._kernels: dict[str, _KernelState] = {}
        self._token_index: dict[bytes, str] = {}  # sha256(token) -> kernel_id
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._failure_marks: dict[tuple[str, str | None, str], tuple[str, float]] = {}
        self._pending: list[_Pending] = []
        self._pending_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    # ---- plumbing ---------------------------------------------------------------------
    def _client(self, token: str | None) -> hvac.Client:
        return self._connection.client(token)

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn`` in this broker's request threads (created on first use)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="qsecure-bao")
            return self._pool.submit(fn, *args)

    def close(self) -> None:
        """Stop the request threads (idempotent; a later call starts them again)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _srv(self) -> hvac.Client:
        """The server's identity, with this broker's short timeouts (follows re-logins)."""
        self._server.token = self.server_client.token
        return self._server

    def _lock_for(self, kernel_id: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(kernel_id)
            if lock is None:
                lock = self._locks[kernel_id] = threading.Lock()
            return lock

    @property
    def kernel_policy(self) -> str:
        return layout.kernel_policy(self.environment)

    @property
    def token_role(self) -> str:
        return layout.kernel_token_role(self.environment)

    def _transport(self, exc: BaseException, doing: str) -> _Transport:
        if isinstance(exc, hvac.exceptions.VaultDown):
            return _Transport(
                f"OpenBao/Vault at {self.vault_addr} is sealed or not ready while {doing}; "
                "unseal it (or restart the local one: `jupyter qsecure vault up`); "
                "the next execution retries"
            )
        kind = "timed out" if isinstance(exc, requests.exceptions.Timeout) else "is unreachable"
        return _Transport(
            f"OpenBao/Vault at {self.vault_addr} {kind} while {doing} "
            f"({type(exc).__name__}); start it (`jupyter qsecure vault up`) or fix "
            "BAO_ADDR/VAULT_ADDR; the next execution retries"
        )

    _TRANSPORT_ERRORS = (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        hvac.exceptions.VaultDown,
        hvac.exceptions.BadGateway,
    )

    def _record(self, kind: str, body: dict[str, Any], actor: str, *, strict: bool) -> None:
        """Append to the ledger; ``strict`` re-raises (issuance fails closed)."""
        if self.ledger is None:
            return
        try:
            self.ledger.append(kind, body, actor=user_actor(actor))
        except Exception as exc:
            if strict:
                raise
            log.warning("could not record %s in the ledger: %s", kind, type(exc).__name__)

    def _base_body(self, state_or_kernel: _KernelState | str, user: str) -> dict[str, Any]:
        kernel_id = (
            state_or_kernel if isinstance(state_or_kernel, str) else state_or_kernel.kernel_id
        )
        return {"kernel_id": kernel_id, "user": user, "environment": self.environment}

    def _record_failure(
        self,
        kernel_id: str,
        user: str,
        message: str,
        *,
        name: str | None = None,
        stage: str = "issue",
        accessor: str | None = None,
    ) -> None:
        """Record credential.failed, at most once per FAILURE_RECORD_INTERVAL per message."""
        now = self.clock()
        key = (kernel_id, name, stage)
        with self._locks_guard:
            last = self._failure_marks.get(key)
            if last is not None and last[0] == message and now - last[1] < FAILURE_RECORD_INTERVAL:
                return
            self._failure_marks[key] = (message, now)
            if len(self._failure_marks) > 10_000:
                self._failure_marks.clear()
        body = self._base_body(kernel_id, user)
        body.update(stage=stage, reason=message, name=name, accessor=accessor)
        self._record("credential.failed", body, user, strict=False)

    # ---- which secrets -----------------------------------------------------------------
    def set_specs(self, specs: Sequence[SecretSpec]) -> None:
        """Replace the configured secrets (``c.QSecure.secrets``); kernels read them again
        at their next call."""
        names = [spec.name for spec in specs]
        if len(names) != len(set(names)):
            raise QSecureError("duplicate secret names in specs", hint="give each secret one name")
        self.specs = list(specs)
        self.refresh()

    def refresh(self) -> None:
        """Secrets changed (stored, rotated, deleted, or the mapping): every kernel reads
        them again at its next call (with its own token; nothing is read now)."""
        self._generation += 1

    @property
    def generation(self) -> int:
        return self._generation

    def stored_names(self) -> list[str]:
        """Names stored under ``secret/qsecure/ENV/`` (listed with the server's token).

        ``[]`` when the server's policy may not list them (an OpenBao bootstrapped by an
        older jupyter-qsecure; logged once). Raises ``_Transport``.
        """
        try:
            response = self._srv().secrets.kv.v2.list_secrets(
                path=layout.kv_prefix(self.environment), mount_point=layout.KV_MOUNT
            )
        except self._TRANSPORT_ERRORS as exc:
            raise self._transport(exc, "listing the stored secrets") from None
        except hvac.exceptions.InvalidPath:
            return []
        except hvac.exceptions.VaultError as exc:
            if not self._discovery_refused:
                self._discovery_refused = True
                log.warning(
                    "cannot list the secrets stored under %s/%s/ (%s): only c.QSecure.secrets "
                    "is offered to kernels; re-run `jupyter qsecure vault up` (or "
                    "layout.bootstrap) to update the server's policy",
                    layout.KV_MOUNT,
                    layout.kv_prefix(self.environment),
                    type(exc).__name__,
                )
            return []
        keys = (response.get("data") or {}).get("keys") or [] if isinstance(response, dict) else []
        return sorted(k for k in keys if isinstance(k, str) and NAME_PATTERN.match(k))

    def effective_specs(self) -> list[SecretSpec]:
        """The configured specs plus a convention spec for every stored name not
        configured (the configuration wins). Raises ``_Transport``."""
        specs = list(self.specs)
        if not self.discover:
            return specs
        configured = {spec.name for spec in specs}
        for name in self.stored_names():
            if name not in configured:
                specs.append(convention_spec(name, self.environment))
        return specs

    def kernel_leases(self) -> dict[str, KernelCredentials]:
        """Cached credentials of every kernel (no network; for status displays)."""
        found: dict[str, KernelCredentials] = {}
        for kernel_id, state in list(self._kernels.items()):
            if state.credentials is not None:
                found[kernel_id] = state.credentials
        return found

    # ---- public API -------------------------------------------------------------------
    def credentials_for(self, kernel_id: str, user: str) -> KernelCredentials:
        """Credentials for ``kernel_id``: cached, renewed or freshly issued. Never raises
        for OpenBao problems: they come back in ``error`` / ``errors``."""
        if not isinstance(kernel_id, str) or not kernel_id:
            raise ValueError("kernel_id must be a non-empty string")
        state = self._kernels.get(kernel_id)
        if state is not None and state.credentials is not None:
            if self.clock() < state.fresh_until and state.generation == self._generation:
                return state.credentials
        with self._lock_for(kernel_id):
            state = self._kernels.get(kernel_id)
            now = self.clock()
            if state is None:
                return self._issue(kernel_id, user, reason=None, previous=None)
            if state.generation != self._generation and now >= state.reload_retry_at:
                return self._reload(state, now)
            if now >= state.renew_at:
                return self._renew(state, now)
            if now >= state.retry_at:
                return self._retry_secrets(state, now)
            assert state.credentials is not None
            return state.credentials

    def cached(self, kernel_id: str) -> KernelCredentials | None:
        """The kernel's credentials if they are cached and fresh, else None.

        Never blocks and never touches the network, so an async caller can try it
        on the event loop before falling back to ``credentials_for`` in a thread.
        """
        state = self._kernels.get(kernel_id)
        if state is not None and state.credentials is not None:
            now = self.clock()
            stale = state.generation != self._generation and now >= state.reload_retry_at
            if now < state.fresh_until and not stale:
                return state.credentials
        return None

    def revoke(self, kernel_id: str, reason: str) -> bool:
        """Revoke ``kernel_id``'s leases and token, forget its values. Idempotent.

        Returns True when OpenBao confirmed the revocation (or there was nothing to
        revoke). When OpenBao is unreachable the revocation is retried later (and
        the token expires on its own at the end of its TTL).
        """
        with self._lock_for(kernel_id):
            state = self._kernels.pop(kernel_id, None)
            self.registry.drop(kernel_id)
            if state is None:
                return True
            self._forget_token(state)
            return self._revoke_state(state, reason)

    def revoke_all(self, reason: str) -> int:
        """Revoke every kernel's credentials (server stop). Returns how many kernels."""
        kernel_ids = list(self._kernels)
        for kernel_id in kernel_ids:
            self.revoke(kernel_id, reason)
        self.retry_pending_revocations()
        return len(kernel_ids)

    def identify(self, token: str) -> dict[str, Any] | None:
        """Who holds ``token``: {kernel_id, user, environment, accessor, policies} if it is
        the live token of one of this broker's kernels, else None.

        Raises :class:`VaultUnavailable` when OpenBao cannot be asked.
        """
        if not isinstance(token, str) or not token:
            return None
        kernel_id = self._token_index.get(hashlib.sha256(token.encode()).digest())
        if kernel_id is None:
            return None
        state = self._kernels.get(kernel_id)
        if state is None or not hmac.compare_digest(state.token, token):
            return None
        try:
            data = self._srv().auth.token.lookup(token)["data"]
        except self._TRANSPORT_ERRORS as exc:
            raise VaultUnavailable(
                self._transport(exc, "identifying a kernel token").message
            ) from None
        except hvac.exceptions.VaultError:
            return None  # bad token, revoked, expired
        meta = data.get("meta") or {}
        policies = list(data.get("policies") or [])
        if (
            data.get("accessor") != state.accessor
            or meta.get("kernel_id") != kernel_id
            or meta.get("environment") != self.environment
            or self.kernel_policy not in policies
        ):
            return None
        return {
            "kernel_id": kernel_id,
            "user": meta.get("user", state.user),
            "environment": self.environment,
            "accessor": state.accessor,
            "policies": policies,
        }

    def kernels(self) -> list[str]:
        """Kernel ids that currently hold credentials."""
        return sorted(self._kernels)

    def retry_pending_revocations(self) -> int:
        """Retry revocations that failed because OpenBao was unreachable; returns how many
        are still pending."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        still: list[_Pending] = []
        for item in pending:
            try:
                self._revoke_pending(item)
            except _Transport:
                still.append(item)
                continue
            self._record(
                "credential.revoked",
                {
                    **self._base_body(item.kernel_id, item.user),
                    "accessor": item.accessor,
                    "lease_ids": item.lease_ids,
                    "reason": "retried after OpenBao was unreachable",
                },
                item.user,
                strict=False,
            )
        with self._pending_lock:
            self._pending.extend(still)
            return len(self._pending)

    # ---- issuing ----------------------------------------------------------------------
    def _error(self, kernel_id: str, user: str, message: str) -> KernelCredentials:
        return KernelCredentials(
            kernel_id=kernel_id,
            environment=self.environment,
            user=user,
            vault_addr=self.vault_addr,
            error=message,
        )

    def _create_token(self, kernel_id: str, user: str) -> dict[str, Any]:
        try:
            response = self._srv().auth.token.create(
                role_name=self.token_role,
                policies=[self.kernel_policy],
                ttl=self.token_ttl,
                renewable=True,
                no_default_policy=True,
                display_name=f"kernel-{kernel_id}"[:64],
                meta={"kernel_id": kernel_id, "user": user, "environment": self.environment},
            )
        except self._TRANSPORT_ERRORS as exc:
            raise self._transport(exc, "creating the kernel's token") from None
        except hvac.exceptions.Forbidden:
            raise _Transport(
                f"OpenBao/Vault refused to create a kernel token with role {self.token_role} "
                f"(permission denied): the server's token is expired, revoked or lacks policy "
                f"{layout.server_policy(self.environment)}; re-authenticate the server (restart "
                "it, or renew/replace its token); the next execution retries"
            ) from None
        except hvac.exceptions.VaultError as exc:
            raise _Transport(
                f"OpenBao/Vault refused to create a kernel token with role {self.token_role} "
                f"({type(exc).__name__}: {_vault_reason(exc)}); check that the layout is "
                "bootstrapped (`jupyter qsecure vault up`, or layout.bootstrap); the next "
                "execution retries"
            ) from None
        auth = response.get("auth") if isinstance(response, dict) else None
        if not auth or not auth.get("client_token"):
            raise _Transport("OpenBao/Vault returned no token when creating the kernel's token")
        return dict(auth)

    def _read_spec(
        self, child: hvac.Client, spec: SecretSpec, now: float
    ) -> tuple[str | dict[str, str] | None, _Grant | None, int | None, str | None]:
        """(value, dynamic grant, kv version, error message). Raises _Transport."""
        doing = f"reading {spec.location}"
        try:
            if spec.kind == "kv":
                response = child.secrets.kv.v2.read_secret_version(
                    path=spec.path, mount_point=spec.mount, raise_on_deleted_version=True
                )
            else:
                response = child.read(spec.api_path)
        except self._TRANSPORT_ERRORS as exc:
            raise self._transport(exc, doing) from None
        except hvac.exceptions.Forbidden:
            return None, None, None, self._denied_message(spec)
        except hvac.exceptions.InvalidPath:
            if spec.convention:
                return None, None, None, None  # deleted since it was listed: not offered
            return None, None, None, self._missing_message(spec)
        except hvac.exceptions.VaultError as exc:
            return (
                None,
                None,
                None,
                f"OpenBao refused to read {spec.location} ({type(exc).__name__}: "
                f"{_vault_reason(exc)}); fix c.QSecure.secrets[{spec.name!r}] or the OpenBao "
                "configuration",
            )
        if not isinstance(response, dict) or not isinstance(response.get("data"), dict):
            return None, None, None, self._missing_message(spec)
        if spec.kind == "kv":
            payload = response["data"].get("data") or {}
            version = (response["data"].get("metadata") or {}).get("version")
            if spec.field not in payload and spec.convention:
                return None, None, None, None  # not stored by name (another field): skip
            if spec.field not in payload:
                fields = ", ".join(sorted(map(str, payload))) or "none"
                return (
                    None,
                    None,
                    None,
                    f"the secret {spec.mount}/{spec.path} has no field {spec.field!r} "
                    f"(fields: {fields}); fix c.QSecure.secrets[{spec.name!r}] or add the field",
                )
            raw = payload[spec.field]
            value = raw if isinstance(raw, str) else json.dumps(raw, separators=(",", ":"))
            if not value:
                return (
                    None,
                    None,
                    None,
                    f"field {spec.field!r} of {spec.mount}/{spec.path} is empty",
                )
            return value, None, version if isinstance(version, int) else None, None
        data = response["data"]
        username, password = data.get("username"), data.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            return (
                None,
                None,
                None,
                f"{spec.location} returned no username/password; is it a database role?",
            )
        duration = int(response.get("lease_duration") or 0)
        grant = _Grant(
            name=spec.name,
            lease_id=str(response.get("lease_id") or ""),
            duration=duration,
            renewable=bool(response.get("renewable")),
            expires_at=now + duration,
        )
        return {"username": username, "password": password}, grant, None, None

    def _denied_message(self, spec: SecretSpec) -> str:
        if not spec.in_environment:
            return (
                f"permission denied reading {spec.location}: {self.environment} kernels may "
                f"only read {spec.allowed_location(self.environment)} (policy "
                f"{self.kernel_policy}); use a {self.environment} path in "
                f"c.QSecure.secrets[{spec.name!r}], or run a server with that environment"
            )
        return (
            f"permission denied reading {spec.location} (policy {self.kernel_policy}); ask an "
            "OpenBao operator to re-run the jupyter-qsecure bootstrap or grant the path"
        )

    def _missing_message(self, spec: SecretSpec) -> str:
        if spec.kind == "kv":
            return (
                f"no secret at {spec.mount}/{spec.path} (KV v2 mount {spec.mount!r}); create "
                f"it (`bao kv put -mount={spec.mount} {spec.path} {spec.field}=...`) or fix "
                f"c.QSecure.secrets[{spec.name!r}]"
            )
        return (
            f"no database role {spec.role!r} at {spec.mount}/roles; create it or fix "
            f"c.QSecure.secrets[{spec.name!r}]"
        )

    def _issue(
        self,
        kernel_id: str,
        user: str,
        *,
        reason: str | None,
        previous: _KernelState | None,
        previous_valid: bool = False,
    ) -> KernelCredentials:
        """Cold path: new token, read every spec, register, record. Caller holds the lock."""
        if self._pending:
            self.retry_pending_revocations()
        now = self.clock()
        generation = self._generation
        # the stored names are listed (server token) while the kernel's token is created
        listing = self._submit(self.effective_specs) if self.discover else None
        try:
            auth = self._create_token(kernel_id, user)
        except _Transport as failure:
            if listing is not None:
                listing.exception()  # wait: nothing runs on after the call returns
            return self._fail_issue(kernel_id, user, failure.message, previous, previous_valid)
        try:
            specs = listing.result() if listing is not None else self.effective_specs()
        except _Transport as failure:
            self._abandon_token(kernel_id, user, auth, "OpenBao failed while listing secrets")
            return self._fail_issue(kernel_id, user, failure.message, previous, previous_valid)
        except BaseException:
            self._abandon_token(kernel_id, user, auth, "listing the stored secrets failed")
            raise
        token = auth["client_token"]
        ttl = int(auth.get("lease_duration") or 0)
        state = _KernelState(
            kernel_id=kernel_id,
            user=user,
            grant_id=uuid.uuid4().hex,
            token=token,
            accessor=str(auth.get("accessor") or ""),
            policies=tuple(auth.get("policies") or auth.get("token_policies") or ()),
            token_ttl=ttl,
            token_renewable=bool(auth.get("renewable")),
            token_expires_at=now + ttl,
            renew_at=now + ttl * (1 - RENEW_FRACTION),
            specs=specs,
            generation=generation,
        )
        read_failure: _Transport | None = None
        for spec, result in zip(specs, self._read_all(token, specs, now), strict=True):
            if isinstance(result, _Transport):
                read_failure = read_failure or result  # the first in spec order is reported
                continue
            value, grant, version, problem = result
            if grant is not None:  # kept even when another read failed: revoked below
                state.grants[spec.name] = grant
            if problem is not None:
                state.errors[spec.name] = problem
                continue
            if value is None:
                continue  # a convention name that is not (or no longer) stored
            state.values[spec.name] = value
            state.kv_meta[spec.name] = version
        if read_failure is not None:
            self._abandon(state, "OpenBao failed while reading secrets")
            return self._fail_issue(kernel_id, user, read_failure.message, previous, previous_valid)
        self._schedule(state, now)
        try:
            self._record_issue(state, reason=reason, names=[s.name for s in specs])
        except Exception as exc:
            self._abandon(state, "could not record the issue in the ledger")
            message = (
                f"could not record the credential issue in the audit ledger "
                f"({type(exc).__name__}); credentials are withheld until the ledger works "
                "again (check ledger_url and the database); the next execution retries"
            )
            return self._fail_issue(kernel_id, user, message, previous, previous_valid)
        for name, problem in state.errors.items():
            self._record_failure(kernel_id, user, problem, name=name, accessor=state.accessor)
        self._install(state)
        if previous is not None:
            self._forget_token(previous)
            self._revoke_state(previous, "re-issued: " + (reason or "renewal refused"))
        assert state.credentials is not None
        return state.credentials

    def _read_all(
        self, token: str, specs: Sequence[SecretSpec], now: float
    ) -> list[_ReadResult | _Transport]:
        """Every spec read with ``token``, together; a result or the _Transport it raised,
        in spec order. Every read is finished when this returns (a dynamic grant made by
        one read is known even when another failed)."""

        def read(spec: SecretSpec) -> _ReadResult | _Transport:
            try:
                return self._read_spec(self._client(token), spec, now)
            except _Transport as failure:
                return failure

        if len(specs) < 2:
            return [read(spec) for spec in specs]
        futures = [self._submit(read, spec) for spec in specs[1:]]
        first = read(specs[0])  # this thread reads one too
        return [first, *(future.result() for future in futures)]

    def _abandon_token(self, kernel_id: str, user: str, auth: Mapping[str, Any], why: str) -> None:
        """Revoke a just-created token we will not hand out (queued if OpenBao is gone)."""
        item = _Pending(
            accessor=str(auth.get("accessor") or ""),
            lease_ids=[],
            kernel_id=kernel_id,
            user=user,
            token=str(auth.get("client_token") or ""),
        )
        try:
            self._revoke_pending(item)
        except _Transport:
            with self._pending_lock:
                self._pending.append(item)
        log.info("abandoned a kernel token for %s: %s", kernel_id, why)

    def _fail_issue(
        self,
        kernel_id: str,
        user: str,
        message: str,
        previous: _KernelState | None,
        previous_valid: bool,
    ) -> KernelCredentials:
        """Issuing failed: keep serving a still-valid previous grant, else report ``message``."""
        self._record_failure(kernel_id, user, message)
        if previous is not None:
            now = self.clock()
            if previous_valid and now < previous.token_expires_at and previous.credentials:
                previous.renew_at = now + min(
                    RENEW_RETRY_SECONDS, max(0.5, (previous.token_expires_at - now) / 4)
                )
                return previous.credentials
            previous.credentials = None  # next call goes through renew -> re-issue again
        return self._error(kernel_id, user, message)

    def _abandon(self, state: _KernelState, why: str) -> None:
        """Revoke a token we will not hand out (queued for later if OpenBao is gone)."""
        item = _Pending.of(state)
        try:
            self._revoke_pending(item)
        except _Transport:
            with self._pending_lock:
                self._pending.append(item)
        log.info("abandoned a kernel token for %s: %s", state.kernel_id, why)

    def _schedule(self, state: _KernelState, now: float) -> None:
        renew_at = state.token_expires_at - state.token_ttl * RENEW_FRACTION
        for grant in state.grants.values():
            renew_at = min(renew_at, grant.expires_at - grant.duration * RENEW_FRACTION)
        state.renew_at = renew_at
        state.retry_at = now + SECRET_RETRY_SECONDS if state.errors else float("inf")

    def _install(self, state: _KernelState) -> None:
        """Build the cached credentials, register the values and publish the state."""
        leases: dict[str, LeaseInfo] = {
            TOKEN_LEASE: LeaseInfo(
                kind="token",
                lease_id=None,
                expires_at=state.token_expires_at,
                ttl_seconds=state.token_ttl,
                renewable=state.token_renewable,
            )
        }
        values: dict[str, str] = {}
        # When each value stops being valid, for the registry (KV values: unknown).
        valid_until: dict[str, float] = {"openbao_token": state.token_expires_at}
        for name, value in state.values.items():
            grant = state.grants.get(name)
            if grant is not None:
                leases[name] = LeaseInfo(
                    kind="database",
                    lease_id=grant.lease_id or None,
                    expires_at=min(grant.expires_at, state.token_expires_at),
                    ttl_seconds=grant.duration,
                    renewable=grant.renewable,
                )
            else:
                leases[name] = LeaseInfo(
                    kind="kv",
                    lease_id=None,
                    expires_at=state.token_expires_at,
                    ttl_seconds=state.token_ttl,
                    renewable=state.token_renewable,
                )
            if isinstance(value, dict):
                values[f"{name}.username"] = value["username"]
                values[f"{name}.password"] = value["password"]
                if grant is not None:  # the lease dies with the token at the latest
                    end = min(grant.expires_at, state.token_expires_at)
                    valid_until[f"{name}.username"] = valid_until[f"{name}.password"] = end
            else:
                values[name] = value
        state.credentials = KernelCredentials(
            kernel_id=state.kernel_id,
            environment=self.environment,
            user=state.user,
            vault_addr=self.vault_addr,
            accessor=state.accessor,
            policies=state.policies,
            token=state.token,
            secrets={n: (dict(v) if isinstance(v, dict) else v) for n, v in state.values.items()},
            leases=leases,
            errors=dict(state.errors),
            error=None,
        )
        # The kernel's own OpenBao token is a credential too: mask it and match it on save.
        values["openbao_token"] = state.token
        self.registry.register(state.kernel_id, values, valid_until=valid_until)
        self._token_index[hashlib.sha256(state.token.encode()).digest()] = state.kernel_id
        self._kernels[state.kernel_id] = state

    def _forget_token(self, state: _KernelState) -> None:
        key = hashlib.sha256(state.token.encode()).digest()
        if self._token_index.get(key) == state.kernel_id:
            del self._token_index[key]

    def _record_issue(
        self, state: _KernelState, *, reason: str | None, names: Iterable[str]
    ) -> None:
        base = self._base_body(state, state.user)
        common = {
            **base,
            "accessor": state.accessor,
            "policies": list(state.policies),
            "grant_id": state.grant_id,
        }
        if reason:
            common["reason"] = reason
        bodies: list[dict[str, Any]] = [
            {
                **common,
                "lease_kind": "token",
                "token_role": self.token_role,
                "ttl_seconds": state.token_ttl,
                "renewable": state.token_renewable,
            }
        ]
        by_name = {spec.name: spec for spec in state.specs}
        bodies.extend(
            self._secret_body(common, state, by_name[name])
            for name in names
            if name in state.values
        )
        self._record_all("credential.issued", bodies, state.user)

    def _record_all(self, kind: str, bodies: Sequence[dict[str, Any]], actor: str) -> None:
        """Append every body, strictly: in one durable commit when the ledger can (all or
        none), else one by one."""
        if self.ledger is None:
            return
        append_many = getattr(self.ledger, "append_many", None)
        if append_many is None:
            for body in bodies:
                self._record(kind, body, actor, strict=True)
            return
        append_many([(kind, body) for body in bodies], actor=user_actor(actor))

    def _secret_body(
        self, common: dict[str, Any], state: _KernelState, spec: SecretSpec
    ) -> dict[str, Any]:
        grant = state.grants.get(spec.name)
        body = {
            **common,
            "name": spec.name,
            "lease_kind": spec.kind,
            "path": spec.location,
            "lease_id": grant.lease_id if grant else None,
            "ttl_seconds": grant.duration if grant else state.token_ttl,
        }
        if spec.kind == "kv":
            body["kv_version"] = state.kv_meta.get(spec.name)
        return body

    # ---- renewing ---------------------------------------------------------------------
    def _renew(self, state: _KernelState, now: float) -> KernelCredentials:
        """Renew the token and dynamic leases; re-issue when refused. Caller holds the lock."""
        child = self._client(state.token)
        try:
            try:
                response = child.auth.token.renew_self(increment=self.token_ttl)
            except self._TRANSPORT_ERRORS as exc:
                raise self._transport(exc, "renewing the kernel's token") from None
            except hvac.exceptions.VaultError as exc:
                return self._issue(
                    state.kernel_id,
                    state.user,
                    reason=f"token renewal refused ({_vault_reason(exc)})",
                    previous=state,
                )
            auth = response.get("auth") or {}
            ttl = int(auth.get("lease_duration") or 0)
            if ttl <= state.token_ttl * RENEW_FRACTION:
                return self._issue(
                    state.kernel_id,
                    state.user,
                    reason="token reached its maximum TTL",
                    previous=state,
                    previous_valid=True,
                )
            renewed_leases: list[tuple[_Grant, int]] = []
            for grant in state.grants.values():
                if not grant.renewable or not grant.lease_id:
                    return self._issue(
                        state.kernel_id,
                        state.user,
                        reason=f"lease of {grant.name} is not renewable",
                        previous=state,
                        previous_valid=True,
                    )
                try:
                    lease = child.sys.renew_lease(lease_id=grant.lease_id, increment=grant.duration)
                except self._TRANSPORT_ERRORS as exc:
                    raise self._transport(exc, f"renewing the lease of {grant.name}") from None
                except hvac.exceptions.VaultError as exc:
                    return self._issue(
                        state.kernel_id,
                        state.user,
                        reason=f"lease renewal of {grant.name} refused ({_vault_reason(exc)})",
                        previous=state,
                    )
                duration = int(lease.get("lease_duration") or 0)
                if duration <= grant.duration * RENEW_FRACTION:
                    return self._issue(
                        state.kernel_id,
                        state.user,
                        reason=f"lease of {grant.name} reached its maximum TTL",
                        previous=state,
                        previous_valid=True,
                    )
                renewed_leases.append((grant, duration))
        except _Transport as failure:
            self._record_failure(
                state.kernel_id,
                state.user,
                failure.message,
                stage="renew",
                accessor=state.accessor,
            )
            if now < state.token_expires_at and state.credentials is not None:
                # still valid: keep serving the cached credentials, try again soon
                state.renew_at = now + min(
                    RENEW_RETRY_SECONDS, max(0.5, (state.token_expires_at - now) / 4)
                )
                return state.credentials
            return self._error(state.kernel_id, state.user, failure.message)
        state.token_ttl = ttl
        state.token_expires_at = now + ttl
        state.token_renewable = bool(auth.get("renewable", state.token_renewable))
        for grant, duration in renewed_leases:
            grant.duration = duration
            grant.expires_at = now + duration
        self._schedule(state, now)
        state.retry_at = now if state.errors else float("inf")  # retry failed names now
        base = {
            **self._base_body(state, state.user),
            "accessor": state.accessor,
            "policies": list(state.policies),
            "grant_id": state.grant_id,
        }
        self._record(
            "credential.renewed",
            {**base, "lease_kind": "token", "ttl_seconds": ttl},
            state.user,
            strict=False,
        )
        for grant, duration in renewed_leases:
            self._record(
                "credential.renewed",
                {
                    **base,
                    "lease_kind": "database",
                    "name": grant.name,
                    "lease_id": grant.lease_id,
                    "ttl_seconds": duration,
                },
                state.user,
                strict=False,
            )
        self._install(state)
        if state.errors:
            return self._retry_secrets(state, now)
        assert state.credentials is not None
        return state.credentials

    def _retry_secrets(self, state: _KernelState, now: float) -> KernelCredentials:
        """Try the names in ``state.errors`` again with the kernel's token."""
        child = self._client(state.token)
        recovered: list[str] = []
        try:
            for spec in state.specs:
                if spec.name not in state.errors:
                    continue
                value, grant, version, problem = self._read_spec(child, spec, now)
                if problem is not None:
                    self._record_failure(
                        state.kernel_id,
                        state.user,
                        problem,
                        name=spec.name,
                        accessor=state.accessor,
                    )
                    state.errors[spec.name] = problem
                    continue
                if value is None:  # a convention name that is no longer stored
                    del state.errors[spec.name]
                    continue
                del state.errors[spec.name]
                state.values[spec.name] = value
                state.kv_meta[spec.name] = version
                if grant is not None:
                    state.grants[spec.name] = grant
                recovered.append(spec.name)
        except _Transport as failure:
            self._record_failure(
                state.kernel_id,
                state.user,
                failure.message,
                stage="retry",
                accessor=state.accessor,
            )
        self._schedule(state, now)
        if recovered:
            try:
                common = {
                    **self._base_body(state, state.user),
                    "accessor": state.accessor,
                    "policies": list(state.policies),
                    "grant_id": state.grant_id,
                    "reason": "retried after an earlier failure",
                }
                by_name = {spec.name: spec for spec in state.specs}
                for name in recovered:
                    self._record(
                        "credential.issued",
                        self._secret_body(common, state, by_name[name]),
                        state.user,
                        strict=True,
                    )
            except Exception as exc:
                for name in recovered:
                    state.values.pop(name, None)
                    state.errors[name] = (
                        f"could not record the issue in the audit ledger ({type(exc).__name__})"
                    )
        self._install(state)
        assert state.credentials is not None
        return state.credentials

    # ---- secrets changed ---------------------------------------------------------------
    def _reload(self, state: _KernelState, now: float) -> KernelCredentials:
        """Read the (changed) secrets again with the kernel's token. Caller holds the lock.

        KV values are read again (a rotated value, a new or deleted name); dynamic
        database grants are kept while their spec is unchanged, else everything is
        re-issued (a new token and grant; the old ones revoked). Values the kernel no
        longer holds stay masked (the registry retires them).
        """
        generation = self._generation
        try:
            specs = self.effective_specs()
        except _Transport as failure:
            return self._reload_failed(state, now, failure.message)
        old_db = {s.name: s for s in state.specs if s.kind == "database"}
        new_db = {s.name: s for s in specs if s.kind == "database"}
        if old_db != new_db:
            return self._issue(
                state.kernel_id,
                state.user,
                reason="the secrets setting changed",
                previous=state,
                previous_valid=True,
            )
        child = self._client(state.token)
        values: dict[str, str | dict[str, str]] = {}
        kv_meta: dict[str, int | None] = {}
        errors: dict[str, str] = {}
        try:
            for spec in specs:
                if spec.kind == "database":
                    if spec.name in state.values:
                        values[spec.name] = state.values[spec.name]
                    elif spec.name in state.errors:
                        errors[spec.name] = state.errors[spec.name]
                    continue
                value, _grant, version, problem = self._read_spec(child, spec, now)
                if problem is not None:
                    errors[spec.name] = problem
                    continue
                if value is None:
                    continue  # a convention name that is not (or no longer) stored
                values[spec.name] = value
                kv_meta[spec.name] = version
        except _Transport as failure:
            return self._reload_failed(state, now, failure.message)
        old_specs = {s.name: s for s in state.specs}
        changed = [
            s.name
            for s in specs
            if s.kind == "kv"
            and s.name in values
            and (
                old_specs.get(s.name) != s
                or s.name not in state.values
                or state.kv_meta.get(s.name) != kv_meta.get(s.name)
            )
        ]
        state.specs, state.values, state.errors = specs, values, errors
        state.kv_meta = {**{n: state.kv_meta.get(n) for n in values}, **kv_meta}
        state.generation = generation
        self._schedule(state, now)
        if changed:
            common = {
                **self._base_body(state, state.user),
                "accessor": state.accessor,
                "policies": list(state.policies),
                "grant_id": state.grant_id,
                "reason": "secrets changed",
            }
            by_name = {spec.name: spec for spec in specs}
            try:
                for name in changed:
                    self._record(
                        "credential.issued",
                        self._secret_body(common, state, by_name[name]),
                        state.user,
                        strict=True,
                    )
            except Exception as exc:  # fail closed: not recorded, not handed out
                for name in changed:
                    state.values.pop(name, None)
                    state.errors[name] = (
                        f"could not record the issue in the audit ledger ({type(exc).__name__})"
                    )
                state.retry_at = now + SECRET_RETRY_SECONDS
        for name, problem in errors.items():
            self._record_failure(
                state.kernel_id, state.user, problem, name=name, accessor=state.accessor
            )
        self._install(state)
        assert state.credentials is not None
        return state.credentials

    def _reload_failed(self, state: _KernelState, now: float, message: str) -> KernelCredentials:
        """OpenBao failed while reading changed secrets: keep serving what the kernel
        has, try again after ``SECRET_RETRY_SECONDS``."""
        self._record_failure(
            state.kernel_id, state.user, message, stage="reload", accessor=state.accessor
        )
        state.reload_retry_at = now + SECRET_RETRY_SECONDS
        if state.credentials is not None and now < state.token_expires_at:
            return state.credentials
        return self._error(state.kernel_id, state.user, message)

    # ---- revoking ---------------------------------------------------------------------
    def _revoke_in_openbao(self, accessor: str, lease_ids: Sequence[str]) -> _Revoked:
        """Revoke dynamic leases (synchronously), then the token. Raises _Transport.

        Returns what OpenBao confirmed revoked; an error answer (already gone, expired,
        OpenBao restarted, or refused) confirms nothing, so such values keep lingering
        until their end of validity."""
        srv = self._srv()
        confirmed: list[str] = []
        for lease_id in lease_ids:
            try:
                srv.sys.revoke_lease(lease_id=lease_id)
            except self._TRANSPORT_ERRORS as exc:
                raise self._transport(exc, "revoking a lease") from None
            except hvac.exceptions.VaultError:
                continue  # already gone (expired, revoked, OpenBao restarted)
            confirmed.append(lease_id)
        if not accessor:
            return _Revoked(tuple(confirmed), token=False)
        try:
            srv.auth.token.revoke_accessor(accessor)
        except self._TRANSPORT_ERRORS as exc:
            raise self._transport(exc, "revoking the kernel's token") from None
        except hvac.exceptions.VaultError:
            return _Revoked(tuple(confirmed), token=False)  # already gone
        return _Revoked(tuple(confirmed), token=True)

    def _revoke_pending(self, item: _Pending) -> None:
        """Revoke ``item`` in OpenBao and stop masking what is confirmed dead. Raises
        _Transport (nothing confirmed: the values keep lingering)."""
        revoked = self._revoke_in_openbao(item.accessor, item.lease_ids)
        dead = item.dead_values(revoked)
        if dead:
            self.registry.revoked(dead)

    def _revoke_state(self, state: _KernelState, reason: str) -> bool:
        item = _Pending.of(state)
        lease_ids = item.lease_ids
        body = {
            **self._base_body(state, state.user),
            "accessor": state.accessor,
            "policies": list(state.policies),
            "grant_id": state.grant_id,
            "lease_ids": lease_ids,
            "reason": reason,
        }
        try:
            self._revoke_pending(item)
        except _Transport as failure:
            with self._pending_lock:
                self._pending.append(item)
            self._record_failure(
                state.kernel_id,
                state.user,
                f"revocation pending: {failure.message}",
                stage="revoke",
                accessor=state.accessor,
            )
            return False
        self._record("credential.revoked", body, state.user, strict=False)
        return True


def _vault_reason(exc: BaseException) -> str:
    """OpenBao's error text (never holds a value), one line, bounded."""
    errors = getattr(exc, "errors", None)
    if isinstance(errors, (list, tuple)) and errors:
        text = "; ".join(str(e) for e in errors)
    else:
        text = str(exc) or type(exc).__name__
    text = " ".join(text.replace("1 error occurred:", "").split())
    return text[:300] or type(exc).__name__
