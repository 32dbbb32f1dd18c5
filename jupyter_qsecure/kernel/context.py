"""Read the credentials the server attached to the execute_request being run.

The jupyter-qsecure server extension puts the credentials of each execution in the
``qsecure`` key of the execute_request's *metadata* (never in the kernel's environment
or on disk)::

    msg["metadata"]["qsecure"] = {
        "v": 1, "kernel_id": str, "environment": "dev" | "test" | "prod",
        "identity": {"user": str, "accessor": str, "policies": [str]},
        "vault_addr": str, "token": str,
        "secrets": {name: str | {"username": str, "password": str}},
        "leases": {name: {"kind": "kv" | "database" | "token", "lease_id": str | None,
                          "expires_at": ISO 8601 UTC str | None,
                          "ttl_seconds": int | None, "renewable": bool}},
        "errors": {name: message}, "error": str | None,
    }

How the current request is found: ipykernel (>= 6) keeps the parent message of the
shell request being handled in a context variable, read with
``kernel.get_parent("shell")``. Code of the cell itself, and coroutines and tasks it
starts, see that cell's request.

When an execution ends, the kernel extension (:mod:`jupyter_qsecure.kernel`) removes
the ``qsecure`` block from the request that ipykernel keeps in memory
(:func:`forget_current`), so the values live in the kernel only while their cell runs
(and in whatever the user's code keeps).

Threads: ``threading.Thread`` does not copy context variables, so in a thread
ipykernel falls back to the context of the *most recent* shell request. A thread
started by a cell therefore sees that cell's credentials while the cell runs; while
a later cell runs it sees the later cell's credentials (or none if that request
carried none); between executions it sees none. Threads that outlive their cell
should do their credentialed work from a cell, or be given what they need when they
start. Requests that are not executions (completion, inspection) also become the
current request and carry no credentials.

Nothing here stores what it reads: :func:`current_metadata` returns the dictionary
held in the parent message, and :func:`parse` builds short-lived objects from it
that the caller drops after use. No value is cached across executions, because each
execute_request carries fresh ones.

This module imports neither IPython nor ipykernel: outside a kernel it only looks
at what is already imported.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

#: Metadata key the server extension writes, and the contract version understood here.
METADATA_KEY = "qsecure"
CONTRACT_VERSION = 1
ENVIRONMENTS = ("dev", "test", "prod")
LEASE_KINDS = ("kv", "database", "token")


class Where(enum.Enum):
    """Where the calling code runs."""

    NO_IPYTHON = "no-ipython"  #: plain Python (a script, a promoted job)
    NO_KERNEL = "no-kernel"  #: an IPython shell that is not a Jupyter kernel
    KERNEL = "kernel"  #: a Jupyter kernel (ipykernel)


@dataclass(frozen=True)
class Found:
    """What :func:`current_metadata` found: where we run, and the raw ``qsecure`` block."""

    where: Where
    raw: Any = field(default=None, repr=False)  # the metadata block, or None


def _shell() -> Any:
    """The running IPython shell, or None. Never imports IPython."""
    if "IPython" not in sys.modules:
        return None
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - a broken IPython install
        return None
    return get_ipython()


def parent_message(shell: Any) -> Mapping[str, Any] | None:
    """The parent message of the shell request being handled, or None if not in a kernel."""
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return None
    get_parent = getattr(kernel, "get_parent", None)
    if get_parent is not None:  # ipykernel >= 6
        parent = get_parent("shell")
    else:  # pragma: no cover - ipykernel < 6
        parent = getattr(shell, "parent_header", None)
    return parent if isinstance(parent, Mapping) else {}


def current_metadata(shell: Any = None) -> Found:
    """Find the ``qsecure`` metadata of the current execution (``raw`` None if absent)."""
    if shell is None:
        shell = _shell()
        if shell is None:
            return Found(Where.NO_IPYTHON)
    parent = parent_message(shell)
    if parent is None:
        return Found(Where.NO_KERNEL)
    metadata = parent.get("metadata")
    raw = metadata.get(METADATA_KEY) if isinstance(metadata, Mapping) else None
    return Found(Where.KERNEL, raw)


def forget_current(shell: Any) -> bool:
    """Remove the ``qsecure`` block from the current request kept by the kernel.

    Called when an execution ends. Returns True if there was one.
    """
    parent = parent_message(shell)
    metadata = parent.get("metadata") if parent else None
    if isinstance(metadata, dict) and METADATA_KEY in metadata:
        del metadata[METADATA_KEY]
        return True
    return False


# --------------------------------------------------------------------------- parsed form


@dataclass(frozen=True)
class Identity:
    """Who the credentials of this execution belong to (never a secret)."""

    user: str
    accessor: str
    policies: tuple[str, ...]
    environment: str
    kernel_id: str

    @property
    def accessor_prefix(self) -> str:
        """The first characters of the token accessor, enough to find it in the audit log."""
        return self.accessor[:8] + ("..." if len(self.accessor) > 8 else "")


@dataclass(frozen=True)
class Lease:
    """One lease as the server reports it (never the value)."""

    name: str
    kind: str
    lease_id: str | None
    expires_at: datetime | None
    ttl_seconds: int | None
    renewable: bool

    def seconds_left(self, now: datetime | None = None) -> float | None:
        """Seconds until ``expires_at`` (negative once expired), None if it has no expiry."""
        if self.expires_at is None:
            return None
        now = now or datetime.now(timezone.utc)
        return (self.expires_at - now).total_seconds()

    def time_left(self, now: datetime | None = None) -> str:
        """Human-readable time left, e.g. ``14m 58s``, ``expired``, ``no expiry``."""
        left = self.seconds_left(now)
        if left is None:
            if self.ttl_seconds is not None:
                return f"~{format_duration(self.ttl_seconds)} (TTL at issue)"
            return "no expiry"
        if left <= 0:
            return "expired"
        return format_duration(left)


def format_duration(seconds: float) -> str:
    """``3725`` -> ``1h 2m 5s``; under a minute -> ``42s``."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days}d")
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if secs or not parts:
        parts.append(f"{secs}s")
    return " ".join(parts[:3])


@dataclass(frozen=True)
class Credentials:
    """The parsed ``qsecure`` block of one execution. Lives only for one API call.

    ``token`` and ``secrets`` are left out of ``repr`` so that printing this object
    (or a traceback that shows it) never shows a value.
    """

    kernel_id: str
    environment: str
    identity: Identity | None
    vault_addr: str
    token: str | None = field(repr=False)
    secrets: Mapping[str, Any] = field(repr=False)
    leases: Mapping[str, Lease]
    errors: Mapping[str, str]
    error: str | None

    def names(self) -> list[str]:
        """Every secret name configured for this kernel, sorted (values or not)."""
        names = set(self.secrets) | set(self.errors)
        names.update(n for n, lease in self.leases.items() if lease.kind != "token")
        return sorted(names)


class MalformedMetadata(ValueError):
    """The ``qsecure`` block does not follow the contract. The message names the field
    only, never its content."""


def _str(value: Any, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise MalformedMetadata(f"{where} must be a string")
    return value


def _parse_time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedMetadata(f"{where} must be an ISO 8601 string or null")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedMetadata(f"{where} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:  # the contract says UTC
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def _parse_lease(name: str, raw: Any) -> Lease:
    where = f"leases[{name!r}]"
    if not isinstance(raw, Mapping):
        raise MalformedMetadata(f"{where} must be an object")
    kind = raw.get("kind")
    if kind not in LEASE_KINDS:
        raise MalformedMetadata(f"{where}.kind must be one of {', '.join(LEASE_KINDS)}")
    ttl = raw.get("ttl_seconds")
    if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool)):
        raise MalformedMetadata(f"{where}.ttl_seconds must be an integer or null")
    return Lease(
        name=name,
        kind=kind,
        lease_id=_str(raw.get("lease_id"), f"{where}.lease_id", optional=True),
        expires_at=_parse_time(raw.get("expires_at"), f"{where}.expires_at"),
        ttl_seconds=ttl,
        renewable=bool(raw.get("renewable", False)),
    )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise MalformedMetadata(f"{where} must be an object with string keys")
    return value


def parse(raw: Any) -> Credentials:
    """Check the ``qsecure`` block against the contract and return its parsed form.

    Raises :class:`MalformedMetadata` (naming the field, never showing a value) when the
    block does not follow version 1 of the contract.
    """
    if not isinstance(raw, Mapping):
        raise MalformedMetadata("the qsecure metadata must be an object")
    version = raw.get("v")
    if version != CONTRACT_VERSION:
        raise MalformedMetadata(
            f"the qsecure metadata has version {version!r}; this kernel understands "
            f"version {CONTRACT_VERSION}"
        )
    error = _str(raw.get("error"), "error", optional=True)
    environment = raw.get("environment")
    if environment not in ENVIRONMENTS:
        if error:  # a failed issue may come without the rest: report the error, not this
            environment = environment if isinstance(environment, str) else "unknown"
        else:
            raise MalformedMetadata(f"environment must be one of {', '.join(ENVIRONMENTS)}")
    kernel_id = _str(raw.get("kernel_id"), "kernel_id", optional=True) or ""

    identity = None
    raw_identity = raw.get("identity")
    if raw_identity is not None:
        if not isinstance(raw_identity, Mapping):
            raise MalformedMetadata("identity must be an object")
        policies = raw_identity.get("policies") or []
        if not isinstance(policies, list) or not all(isinstance(p, str) for p in policies):
            raise MalformedMetadata("identity.policies must be a list of strings")
        identity = Identity(
            user=_str(raw_identity.get("user"), "identity.user", optional=True) or "",
            accessor=_str(raw_identity.get("accessor"), "identity.accessor", optional=True) or "",
            policies=tuple(policies),
            environment=environment,
            kernel_id=kernel_id,
        )

    secrets = _mapping(raw.get("secrets"), "secrets")
    for name, value in secrets.items():
        if isinstance(value, str):
            continue
        if (
            isinstance(value, Mapping)
            and isinstance(value.get("username"), str)
            and isinstance(value.get("password"), str)
        ):
            continue
        raise MalformedMetadata(
            f"secrets[{name!r}] must be a string or an object with username and password"
        )
    errors = _mapping(raw.get("errors"), "errors")
    for name, message in errors.items():
        _str(message, f"errors[{name!r}]")
    leases = {
        name: _parse_lease(name, lease)
        for name, lease in _mapping(raw.get("leases"), "leases").items()
    }
    token = _str(raw.get("token"), "token", optional=True)
    return Credentials(
        kernel_id=kernel_id,
        environment=environment,
        identity=identity,
        vault_addr=_str(raw.get("vault_addr", ""), "vault_addr", optional=True) or "",
        token=token or None,
        secrets=secrets,
        leases=leases,
        errors=dict(errors),
        error=error or None,
    )
