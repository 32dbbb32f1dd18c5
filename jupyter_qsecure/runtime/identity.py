"""Who a promoted script runs as: a production identity, never a person's kernel token.

With OpenBao/Vault configured (``c.QSecure.vault_addr``, ``BAO_ADDR`` or ``VAULT_ADDR``)
the script logs in, in this order of preference:

1. AppRole from the environment: ``QSECURE_ROLE_ID`` and ``QSECURE_SECRET_ID``
   (``QSECURE_APPROLE_MOUNT``, default ``approle``);
2. JWT from the environment: ``QSECURE_JWT`` (or a file named by ``QSECURE_JWT_FILE``)
   with the role ``QSECURE_JWT_ROLE`` (default ``c.QSecure.vault_jwt_role``;
   ``QSECURE_JWT_MOUNT``, default ``jwt``), e.g. a CI system's OIDC token;
3. whatever ``c.QSecure.vault_auth_method`` configures (token, AppRole with a
   secret_id file, JWT from a file): :func:`jupyter_qsecure.vault.client.client_from_settings`.

Its identity is what OpenBao says about the token (``auth/token/lookup-self``): display
name, entity, policies, accessor. Without OpenBao the identity is the operating-system
user and jobs are signed with the local key, as on the embedded default.

Secret values (secret ids, JWTs, tokens) are read once, passed to hvac and never kept
on the :class:`RuntimeIdentity`, logged or put in an error message.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, QSecureError

if TYPE_CHECKING:
    from ..config import QSecure

__all__ = ["RuntimeIdentity", "login"]


@dataclass(frozen=True)
class RuntimeIdentity:
    """The production identity of a promoted script (no token, no secret)."""

    user: str
    source: str  # "openbao" or "local"
    environment: str
    method: str  # approle, jwt, token, os-user
    accessor: str | None = None
    entity_id: str | None = None
    policies: tuple[str, ...] = field(default_factory=tuple)

    def to_job_identity(self) -> dict[str, Any]:
        """The identity the job broker records (``user``, ``kernel_id``, ``accessor``,
        ``environment``): a script has no kernel."""
        return {
            "user": self.user,
            "kernel_id": None,
            "accessor": self.accessor,
            "environment": self.environment,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "source": self.source,
            "method": self.method,
            "environment": self.environment,
            "accessor": self.accessor,
            "entity_id": self.entity_id,
            "policies": list(self.policies),
        }


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def _client(settings: QSecure) -> Any:
    """An authenticated hvac client (see the module docstring for the order)."""
    from ..vault.client import client_from_settings, login_errors, new_client, read_secret_file

    role_id, secret_id = _env("QSECURE_ROLE_ID"), _env("QSECURE_SECRET_ID")
    jwt = _env("QSECURE_JWT")
    if not jwt and _env("QSECURE_JWT_FILE"):
        jwt = read_secret_file(_env("QSECURE_JWT_FILE"), "JWT")
    if bool(role_id) != bool(secret_id):
        raise ConfigError(
            "QSECURE_ROLE_ID and QSECURE_SECRET_ID must be set together",
            hint="set both for AppRole login, or neither",
        )
    if not role_id and not jwt:
        return client_from_settings(settings), settings.vault_auth_method
    client = new_client(settings)
    method = "approle" if role_id else "jwt"
    with login_errors(
        settings.vault_addr,
        method,
        unreachable_hint="check BAO_ADDR/VAULT_ADDR and the network path to it",
        refused_hint="check the role and the credentials given to the script",
    ):
        if role_id:
            client.auth.approle.login(
                role_id=role_id,
                secret_id=secret_id,
                mount_point=_env("QSECURE_APPROLE_MOUNT") or "approle",
            )
        else:
            role = _env("QSECURE_JWT_ROLE") or settings.vault_jwt_role
            if not role:
                raise ConfigError(
                    "QSECURE_JWT is set but no JWT role is named",
                    hint="set QSECURE_JWT_ROLE (or c.QSecure.vault_jwt_role)",
                )
            client.auth.jwt.jwt_login(role=role, jwt=jwt, path=_env("QSECURE_JWT_MOUNT") or "jwt")
    return client, method


def login(settings: QSecure) -> tuple[RuntimeIdentity, Any]:
    """The production identity and, with OpenBao, its authenticated hvac client."""
    environment = str(settings.environment)
    if not settings.vault_addr:
        return (
            RuntimeIdentity(
                user=getpass.getuser(), source="local", environment=environment, method="os-user"
            ),
            None,
        )
    client, method = _client(settings)
    try:
        data = client.auth.token.lookup_self()["data"]
    except Exception as exc:  # hvac errors, transport errors: never the token
        raise QSecureError(
            f"OpenBao/Vault did not describe the script's token ({type(exc).__name__})",
            hint="the token needs the 'auth/token/lookup-self' capability (every default "
            "policy has it)",
        ) from None
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    name = str(data.get("display_name") or "")
    role = meta.get("role_name") or meta.get("role")
    user = f"{name}:{role}" if role and str(role) not in name else name or "openbao"
    return (
        RuntimeIdentity(
            user=user,
            source="openbao",
            environment=environment,
            method=str(method),
            accessor=str(data.get("accessor") or "") or None,
            entity_id=str(data.get("entity_id") or "") or None,
            policies=tuple(str(p) for p in data.get("policies") or ()),
        ),
        client,
    )
