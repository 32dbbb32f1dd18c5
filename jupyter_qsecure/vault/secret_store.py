"""Secrets stored by name: ``NAME`` is field ``value`` of the KV v2 secret
``secret/qsecure/ENV/NAME``.

This is the convention that lets ``secrets.get("NAME")`` work in a kernel with no
configuration: the broker offers every name stored under the environment's prefix
(besides the entries of ``c.QSecure.secrets``, which win on a clash), and kernels of
``ENV`` may read that prefix (:mod:`.layout`). ``jupyter qsecure secret put|list|rm``
and the server's ``secrets`` REST routes write through :class:`SecretStore`.

A value goes in (``put``) and never comes out of this module: listing returns names,
versions and times; errors name the secret and the path, never the value.

Deliberately not supported: names with ``/`` (folders under the prefix are skipped when
listing, since ``secrets.get`` takes flat names), fields other than ``value`` (use
``c.QSecure.secrets`` to map a name to another field or path), and soft deletion (``rm``
deletes every version and the metadata, so nothing of the value stays in OpenBao).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

from ..errors import QSecureError
from . import layout
from .secrets_spec import NAME_PATTERN, SecretSpec

__all__ = [
    "ChangeStamp",
    "FIELD",
    "MAX_VALUE_BYTES",
    "SecretStore",
    "SecretStoreError",
    "StoredSecret",
    "check_name",
    "check_value",
    "convention_spec",
    "location",
    "mark_changed",
]

#: The KV field a stored name's value lives in.
FIELD = "value"
#: Largest value accepted (bytes of UTF-8): tokens, keys and certificates fit.
MAX_VALUE_BYTES = 64 * 1024


class SecretStoreError(QSecureError):
    """Storing, listing or deleting a secret by name failed. ``code`` is the REST error
    code (docs/rest-api.md) and ``status`` its HTTP status."""

    code = "openbao_error"
    status = 502


class InvalidSecret(SecretStoreError):
    code, status = "invalid", 422


class SecretNotFound(SecretStoreError):
    code, status = "not_found", 404


class StoreForbidden(SecretStoreError):
    code, status = "forbidden", 403


class StoreUnavailable(SecretStoreError):
    code, status = "openbao_unavailable", 503


def location(name: str, environment: str) -> str:
    """``secret/qsecure/ENV/NAME#value``: where a stored name lives (for people)."""
    return f"{layout.KV_MOUNT}/{layout.kv_prefix(environment)}/{name}#{FIELD}"


def convention_spec(name: str, environment: str) -> SecretSpec:
    """The spec a stored name stands for (as if ``c.QSecure.secrets[name]`` named it)."""
    return SecretSpec(
        name=name,
        kind="kv",
        mount=layout.KV_MOUNT,
        path=f"{layout.kv_prefix(environment)}/{name}",
        field=FIELD,
        raw=location(name, environment),
        in_environment=True,
        convention=True,
    )


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        shown = repr(name) if isinstance(name, str) and len(name) <= 80 else "the name"
        raise InvalidSecret(
            f"{shown} is not a valid secret name",
            hint="start with a letter; use letters, digits, '_' and '-' (at most 64 "
            "characters), e.g. ibm_token",
        )
    return name


def check_value(value: Any, name: str) -> str:
    """The value, if it can be stored; the error never quotes it."""
    if not isinstance(value, str):
        raise InvalidSecret(f"the value of {name} must be a string")
    if not value.strip():
        raise InvalidSecret(f"the value of {name} is empty", hint="paste the value, then store it")
    if "\x00" in value:
        raise InvalidSecret(f"the value of {name} holds a NUL character")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
        raise InvalidSecret(
            f"the value of {name} is longer than {MAX_VALUE_BYTES // 1024} KiB",
            hint="store a file's path or a reference instead of the file",
        )
    return value


@dataclass(frozen=True)
class StoredSecret:
    """A stored name's metadata (no value)."""

    name: str
    environment: str
    version: int | None = None
    updated_at: str | None = None
    created: bool = False

    @property
    def location(self) -> str:
        return location(self.name, self.environment)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "location": self.location,
            "version": self.version,
            "updated_at": self.updated_at,
        }


_TRANSPORT = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    hvac.exceptions.VaultDown,
    hvac.exceptions.BadGateway,
)


def _utc(text: Any) -> str | None:
    """OpenBao's RFC 3339 time (nanoseconds) as ``YYYY-MM-DDTHH:MM:SSZ``."""
    if not isinstance(text, str) or len(text) < 19:
        return None
    return text[:19] + "Z"


class SecretStore:
    """Names under ``secret/qsecure/ENV/`` through one authenticated hvac client.

    The client needs, for that prefix: ``create``/``update`` on ``data/`` (put),
    ``list``/``read`` on ``metadata/`` (list, versions) and ``delete`` on ``metadata/``
    (rm): the server's policy (``qsecure-server-ENV``) or an admin token.
    """

    def __init__(self, client: hvac.Client, environment: str) -> None:
        if environment not in layout.ENVIRONMENTS:
            raise InvalidSecret(
                f"unknown environment {environment!r}",
                hint=f"use one of {', '.join(layout.ENVIRONMENTS)}",
            )
        self.client = client
        self.environment = environment
        self.mount = layout.KV_MOUNT
        self.prefix = layout.kv_prefix(environment)

    @property
    def address(self) -> str:
        return str(getattr(self.client, "url", "") or self.client.adapter.base_uri)

    def _fail(self, exc: BaseException, doing: str) -> SecretStoreError:
        if isinstance(exc, _TRANSPORT):
            sealed = isinstance(exc, hvac.exceptions.VaultDown)
            return StoreUnavailable(
                f"OpenBao at {self.address} is {'sealed' if sealed else 'unreachable'} "
                f"while {doing} ({type(exc).__name__})",
                hint="start or unseal it (`jupyter qsecure vault up` for the local one)",
            )
        if isinstance(exc, hvac.exceptions.Forbidden):
            return StoreForbidden(
                f"OpenBao refused {doing} under {self.mount}/{self.prefix}/ (permission denied)",
                hint="the token needs the qsecure-server-"
                f"{self.environment} policy of this version (re-run `jupyter qsecure vault "
                "up`, or layout.bootstrap with an admin token) or an admin token",
            )
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        return SecretStoreError(
            f"OpenBao refused {doing} ({type(exc).__name__}: {reason})",
            hint=f"check that the KV v2 mount {self.mount!r} exists (`jupyter qsecure vault up`)",
        )

    def names(self) -> list[str]:
        """Stored names (sorted); keys that are not valid names (folders) are skipped."""
        try:
            response = self.client.secrets.kv.v2.list_secrets(
                path=self.prefix, mount_point=self.mount
            )
        except hvac.exceptions.InvalidPath:
            return []  # nothing stored yet
        except Exception as exc:
            raise self._fail(exc, "listing secrets") from None
        keys = (response.get("data") or {}).get("keys") or [] if isinstance(response, dict) else []
        return sorted(k for k in keys if isinstance(k, str) and NAME_PATTERN.match(k))

    def get_meta(self, name: str) -> StoredSecret | None:
        """A stored name's current version and time, or None when it is not stored."""
        check_name(name)
        try:
            response = self.client.secrets.kv.v2.read_secret_metadata(
                path=f"{self.prefix}/{name}", mount_point=self.mount
            )
        except hvac.exceptions.InvalidPath:
            return None
        except Exception as exc:
            raise self._fail(exc, f"reading the metadata of {name}") from None
        data = response.get("data") or {}
        version = data.get("current_version")
        versions = data.get("versions") or {}
        current = versions.get(str(version)) or {}
        if current.get("destroyed") or current.get("deletion_time"):
            return None  # its current version was deleted: not stored as far as users go
        return StoredSecret(
            name=name,
            environment=self.environment,
            version=version if isinstance(version, int) else None,
            updated_at=_utc(current.get("created_time") or data.get("updated_time")),
        )

    def list(self) -> list[StoredSecret]:
        """Every stored name with its metadata (one call per name after the listing)."""
        found = []
        for name in self.names():
            meta = self.get_meta(name)
            if meta is not None:
                found.append(meta)
        return found

    def put(self, name: str, value: str) -> StoredSecret:
        """Store (or rotate: a new version) ``value`` under ``name``."""
        check_name(name)
        check_value(value, name)
        existed = self.get_meta(name) is not None
        try:
            response = self.client.secrets.kv.v2.create_or_update_secret(
                path=f"{self.prefix}/{name}", secret={FIELD: value}, mount_point=self.mount
            )
        except Exception as exc:
            raise self._fail(exc, f"storing {name}") from None
        data = response.get("data") or {} if isinstance(response, dict) else {}
        version = data.get("version")
        return StoredSecret(
            name=name,
            environment=self.environment,
            version=version if isinstance(version, int) else None,
            updated_at=_utc(data.get("created_time")),
            created=not existed,
        )

    def delete(self, name: str) -> None:
        """Delete every version and the metadata of ``name``; SecretNotFound if absent."""
        check_name(name)
        if self.get_meta(name) is None:
            raise SecretNotFound(
                f"no secret named {name} in {self.environment}",
                hint="`jupyter qsecure secret list` shows the stored names",
            )
        try:
            self.client.secrets.kv.v2.delete_metadata_and_all_versions(
                path=f"{self.prefix}/{name}", mount_point=self.mount
            )
        except Exception as exc:
            raise self._fail(exc, f"deleting {name}") from None


# ---- telling a running server -----------------------------------------------------------
#: A file in the data dir that ``secret put``/``rm`` replace; the server checks it before
#: each execution's credential fetch and has its kernels read their secrets again.
STAMP_NAME = "secrets.changed"


def mark_changed(data_dir: Path) -> None:
    """Replace the stamp (a new file each time: a new inode even within one clock tick)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = data_dir / STAMP_NAME
    tmp = data_dir / f".{STAMP_NAME}.{uuid.uuid4().hex}"
    tmp.write_text(datetime.now(timezone.utc).isoformat() + "\n", encoding="utf-8")
    os.replace(tmp, stamp)


class ChangeStamp:
    """Notices :func:`mark_changed` (one ``stat`` per call)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / STAMP_NAME
        self._seen = self._stat()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def changed(self) -> bool:
        """True (once) when the stamp was replaced since the last call."""
        now = self._stat()
        if now == self._seen:
            return False
        self._seen = now
        return True
