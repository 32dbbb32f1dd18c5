"""``secrets.get`` for promoted scripts: read from OpenBao with the production identity.

Same calls as :mod:`jupyter_qsecure.secrets` in a kernel::

    from jupyter_qsecure.runtime import secrets

    key = secrets.get("openai")  # a KV value: str
    db = secrets.get("warehouse")  # dynamic database credentials: {"username", "password"}
    secrets.names()  # the names configured in c.QSecure.secrets
    secrets.identity()  # who the script runs as (user, accessor, policies, environment, ...)

A name resolves through ``c.QSecure.secrets`` (name -> ``MOUNT/PATH#FIELD`` or
``MOUNT/creds/ROLE``, ``{env}`` replaced by the environment) when it is configured
there, else by convention to field ``value`` of ``secret/qsecure/ENV/NAME``. Values are
read when asked for and never cached, logged or put in an error message; what OpenBao
allows the identity to read is OpenBao's decision (its policies).

Deliberately not supported: reading without OpenBao (there is nowhere safe to read a
secret from), renewing or revoking dynamic credentials (their lease ends on its own),
and ``secrets.token()``: a kernel's token is for the Jupyter server's job broker, which
a script does not use (``jupyter qsecure promote`` refuses a notebook that calls it).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..secrets import CredentialsError, SecretUnavailable, UnknownSecret

if TYPE_CHECKING:
    from .identity import RuntimeIdentity

__all__ = [
    "CredentialsError",
    "SecretUnavailable",
    "SecretsUnavailable",
    "UnknownSecret",
    "get",
    "identity",
    "names",
]

#: Field read from a secret named only by convention (``secret/qsecure/ENV/NAME``).
CONVENTION_FIELD = "value"


class SecretsUnavailable(CredentialsError):
    """No OpenBao/Vault is configured, or it cannot be reached."""


def _specs() -> dict[str, Any]:
    from ..vault.secrets_spec import parse_secret_specs
    from . import default

    settings = default().settings
    return {s.name: s for s in parse_secret_specs(settings.secrets, settings.environment)}


def names() -> list[str]:
    """The names configured in ``c.QSecure.secrets`` (others resolve by convention)."""
    return sorted(_specs())


def identity() -> RuntimeIdentity:
    """Who the script runs as: ``user``, ``accessor``, ``policies``, ``environment`` (and
    ``source``, ``method``, ``entity_id``); a script has no kernel id. Contains no secret."""
    from . import default

    return default().identity()


def get(name: str) -> Any:
    """The value of secret ``name``: a ``str`` (KV), or a new ``{"username", "password"}``
    dict (dynamic database credentials)."""
    if not isinstance(name, str):
        raise TypeError(f"secret names are strings, not {type(name).__name__}")
    from ..vault.secrets_spec import NAME_PATTERN, parse_secret_specs
    from . import default

    runtime = default()
    settings = runtime.settings
    specs = _specs()
    spec = specs.get(name)
    if spec is None:
        if not NAME_PATTERN.match(name):
            raise UnknownSecret(name, sorted(specs))
        convention = f"secret/qsecure/{settings.environment}/{name}#{CONVENTION_FIELD}"
        (spec,) = parse_secret_specs({name: convention}, settings.environment)
    if not settings.vault_addr:
        raise SecretsUnavailable(
            f"secret {name!r}: no OpenBao/Vault is configured for this script",
            hint="set BAO_ADDR (or VAULT_ADDR) and the script's credentials "
            "(QSECURE_ROLE_ID/QSECURE_SECRET_ID, QSECURE_JWT, or BAO_TOKEN)",
        )
    client = runtime.vault_client()
    return _read(client, spec)


def _read(client: Any, spec: Any) -> Any:
    import hvac
    import requests

    try:
        if spec.kind == "kv":
            response = client.secrets.kv.v2.read_secret_version(
                path=spec.path, mount_point=spec.mount, raise_on_deleted_version=True
            )
        else:
            response = client.read(spec.api_path)
    except requests.exceptions.RequestException as exc:
        raise SecretsUnavailable(
            f"cannot reach OpenBao/Vault to read {spec.location} ({type(exc).__name__})",
            hint="check BAO_ADDR/VAULT_ADDR and the network path to it",
        ) from None
    except hvac.exceptions.Forbidden:
        raise SecretUnavailable(
            spec.name, f"permission denied reading {spec.location} with the script's identity"
        ) from None
    except hvac.exceptions.InvalidPath:
        raise SecretUnavailable(spec.name, f"nothing is stored at {spec.location}") from None
    except hvac.exceptions.VaultError as exc:
        raise SecretUnavailable(
            spec.name, f"OpenBao refused to read {spec.location} ({type(exc).__name__})"
        ) from None
    data = response.get("data") if isinstance(response, dict) else None
    if not isinstance(data, dict):
        raise SecretUnavailable(spec.name, f"nothing is stored at {spec.location}")
    if spec.kind == "kv":
        payload = data.get("data") or {}
        if spec.field not in payload:
            raise SecretUnavailable(spec.name, f"{spec.location} has no field {spec.field!r}")
        raw = payload[spec.field]
        return raw if isinstance(raw, str) else json.dumps(raw, separators=(",", ":"))
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise SecretUnavailable(spec.name, f"{spec.location} returned no username/password")
    return {"username": username, "password": password}
