"""Parse the ``secrets`` setting: which OpenBao/Vault secrets a kernel may obtain.

``c.QSecure.secrets`` maps a name (what user code passes to ``secrets.get``) to a
spec string:

``MOUNT/PATH#FIELD``
    one field of a KV version 2 secret, e.g. ``secret/qsecure/dev/ibm#token`` is
    field ``token`` of the secret at path ``qsecure/dev/ibm`` on the KV v2 mount
    ``secret`` (the API path ``secret/data/qsecure/dev/ibm``: do not write the
    ``data/`` part yourself).

``MOUNT/creds/ROLE``
    dynamic credentials from a database secrets engine, e.g.
    ``database/creds/qsecure-dev-readonly``: a fresh username and password per
    kernel, revoked with the kernel.

``{environment}`` (or ``{env}``) in a spec is replaced by the server's
environment, so one setting can serve dev, test and prod.

Deliberately not supported: KV version 1 mounts, pinned KV versions, and mounts
whose path contains ``/`` (the first path segment is always the mount). Which
paths a kernel may actually read is OpenBao's decision (the kernel token's
policy), not this parser's: a spec outside the environment parses (unless
``strict=True``) and the broker reports OpenBao's refusal for that name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError
from . import layout

__all__ = ["SecretSpec", "parse_secret_specs", "NAME_PATTERN"]

#: Secret names: a letter first (names starting with ``_`` are reserved, e.g. the
#: kernel token's lease entry ``_token``), then letters, digits, ``_`` and ``-``.
#: No dots: dynamic credentials are registered as ``NAME.username`` / ``NAME.password``.
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_.@+=-]+$")
_DYNAMIC = re.compile(r"^(?P<mount>[^/#]+)/creds/(?P<role>[^/#]+)$")

_EXAMPLES = (
    "'secret/qsecure/{env}/ibm#token' (field 'token' of a KV v2 secret) or "
    "'database/creds/qsecure-{env}-readonly' (dynamic database credentials)"
)


@dataclass(frozen=True)
class SecretSpec:
    """One entry of the ``secrets`` setting, parsed.

    ``kind`` is ``"kv"`` (``mount``, ``path``, ``field`` set) or ``"database"``
    (``mount`` and ``role`` set). ``in_environment`` says whether the spec lies
    inside the paths the environment's kernel policy allows (informational:
    OpenBao enforces it).
    """

    name: str
    kind: Literal["kv", "database"]
    mount: str
    raw: str
    path: str = ""
    field: str = ""
    role: str = ""
    in_environment: bool = True
    #: Stored by name (``secret/qsecure/ENV/NAME#value``, :mod:`.secret_store`), not
    #: configured: a secret there without a ``value`` field is someone else's, not an error.
    convention: bool = False

    @property
    def location(self) -> str:
        """Human-readable location without the value, e.g. ``secret/qsecure/dev/ibm#token``."""
        if self.kind == "kv":
            return f"{self.mount}/{self.path}#{self.field}"
        return f"{self.mount}/creds/{self.role}"

    @property
    def api_path(self) -> str:
        """The OpenBao API path that is read (``secret/data/...`` or ``database/creds/...``)."""
        if self.kind == "kv":
            return f"{self.mount}/data/{self.path}"
        return f"{self.mount}/creds/{self.role}"

    def allowed_location(self, environment: str) -> str:
        """Where kernels of ``environment`` may read secrets of this kind (for messages)."""
        if self.kind == "kv":
            return f"{layout.KV_MOUNT}/{layout.kv_prefix(environment)}/..."
        return f"{layout.DATABASE_MOUNT}/creds/{layout.database_role_prefix(environment)}*"


def _fail(name: Any, raw: Any, problem: str, hint: str) -> ConfigError:
    return ConfigError(
        f"c.QSecure.secrets[{name!r}] = {raw!r}: {problem}",
        hint=hint,
    )


def _substitute(raw: str, environment: str) -> str:
    return raw.replace("{environment}", environment).replace("{env}", environment)


def _in_environment(kind: str, mount: str, path: str, role: str, environment: str) -> bool:
    if kind == "kv":
        return mount == layout.KV_MOUNT and path.startswith(layout.kv_prefix(environment) + "/")
    return mount == layout.DATABASE_MOUNT and role.startswith(
        layout.database_role_prefix(environment)
    )


def _parse_one(name: Any, raw: Any, environment: str) -> SecretSpec:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise _fail(
            name,
            raw,
            "invalid secret name",
            "use a name that starts with a letter and has only letters, digits, '_' and '-' "
            "(at most 64 characters), e.g. 'ibm_token'",
        )
    if not isinstance(raw, str) or not raw.strip():
        raise _fail(name, raw, "the spec must be a non-empty string", f"write it as {_EXAMPLES}")
    spec = _substitute(raw.strip(), environment)
    if spec.startswith("/") or "//" in spec:
        raise _fail(
            name,
            raw,
            "empty path segment (leading '/' or '//')",
            f"start with the mount name and separate segments by one '/': {_EXAMPLES}",
        )
    if "#" in spec:
        location, _, field = spec.partition("#")
        if not field or "#" in field or not field.strip():
            raise _fail(
                name,
                raw,
                "a KV secret needs exactly one non-empty '#FIELD' at the end",
                f"name the field inside the secret: {_EXAMPLES}",
            )
        mount, _, path = location.partition("/")
        segments = path.split("/") if path else []
        if not mount or not segments:
            raise _fail(
                name,
                raw,
                "a KV secret needs a mount and a path before '#'",
                f"write it as MOUNT/PATH#FIELD, e.g. {_EXAMPLES}",
            )
        if segments[0] in ("data", "metadata"):
            fixed = f"{mount}/{'/'.join(segments[1:])}#{field}"
            raise _fail(
                name,
                raw,
                f"'{segments[0]}/' is part of the KV v2 API path, not of the secret's path",
                f"drop it: write {fixed!r}",
            )
        for segment in (mount, *segments):
            if segment in (".", "..") or not _SEGMENT.match(segment):
                raise _fail(
                    name,
                    raw,
                    f"path segment {segment!r} is not allowed",
                    "use letters, digits and _ . @ + = - in path segments, no '.'/'..' or spaces",
                )
        path = "/".join(segments)
        return SecretSpec(
            name=name,
            kind="kv",
            mount=mount,
            path=path,
            field=field,
            raw=raw,
            in_environment=_in_environment("kv", mount, path, "", environment),
        )
    match = _DYNAMIC.match(spec)
    if match is None:
        raise _fail(
            name,
            raw,
            "neither a KV field ('MOUNT/PATH#FIELD') nor dynamic credentials ('MOUNT/creds/ROLE')",
            f"add '#FIELD' for a KV v2 secret, or name a database role: {_EXAMPLES}",
        )
    mount, role = match["mount"], match["role"]
    for segment in (mount, role):
        if segment in (".", "..") or not _SEGMENT.match(segment):
            raise _fail(
                name,
                raw,
                f"path segment {segment!r} is not allowed",
                "use letters, digits and _ . @ + = - in mount and role names",
            )
    return SecretSpec(
        name=name,
        kind="database",
        mount=mount,
        role=role,
        raw=raw,
        in_environment=_in_environment("database", mount, "", role, environment),
    )


def parse_secret_specs(
    mapping: Mapping[str, str] | None, environment: str, *, strict: bool = False
) -> list[SecretSpec]:
    """Parse ``c.QSecure.secrets`` for ``environment``; raise :class:`ConfigError` on a bad entry.

    With ``strict=True`` a spec outside the environment's paths is also refused
    here (by default OpenBao's policy refuses it at read time, per name).
    """
    if environment not in layout.ENVIRONMENTS:
        raise ConfigError(
            f"unknown environment {environment!r}",
            hint=f"set c.QSecure.environment to one of {', '.join(layout.ENVIRONMENTS)}",
        )
    if mapping is None:
        return []
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            f"c.QSecure.secrets must be a dict of name -> spec, got {type(mapping).__name__}",
            hint="e.g. c.QSecure.secrets = {'ibm_token': 'secret/qsecure/dev/ibm#token'}",
        )
    specs = [_parse_one(name, raw, environment) for name, raw in mapping.items()]
    if strict:
        for spec in specs:
            if not spec.in_environment:
                raise _fail(
                    spec.name,
                    spec.raw,
                    f"outside the {environment!r} environment",
                    f"{environment} kernels may only read {spec.allowed_location(environment)}",
                )
    return specs
