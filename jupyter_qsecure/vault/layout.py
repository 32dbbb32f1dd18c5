"""Names and policies jupyter-qsecure uses in OpenBao/Vault: one contract for all parts.

Per environment ``E`` (dev, test, prod):

- KV v2 secrets live under ``secret/data/qsecure/E/...`` (the ``secrets`` setting names
  ``secret/qsecure/E/PATH#field``); dynamic database roles are named ``qsecure-E-*``.
- Kernels get child tokens from the token role ``qsecure-kernel-E``, whose only policy
  ``qsecure-kernel-E`` reads that environment's secrets, nothing else.
- The server's own token has policy ``qsecure-server-E``: it may mint ``qsecure-kernel-E``
  tokens (never another environment's), look up and revoke them, renew and revoke
  leases, sign with ``transit/sign/qsecure-*``, wrap recovery keys, and create (once)
  and read the fingerprint key at ``secret/data/qsecure/_system/E/fingerprint-key``.

So a dev server cannot obtain prod credentials: its token may only create
``qsecure-kernel-dev`` tokens, and those may only read ``qsecure/dev`` paths.
"""

from __future__ import annotations

from typing import Any

ENVIRONMENTS = ("dev", "test", "prod")
KV_MOUNT = "secret"
TRANSIT_MOUNT = "transit"
DATABASE_MOUNT = "database"
KERNEL_TOKEN_TTL = "15m"  # noqa: S105 (a duration, not a secret)
KERNEL_TOKEN_MAX_TTL = "12h"  # noqa: S105


def kernel_policy(env: str) -> str:
    return f"qsecure-kernel-{env}"


def server_policy(env: str) -> str:
    return f"qsecure-server-{env}"


def kernel_token_role(env: str) -> str:
    return f"qsecure-kernel-{env}"


def database_role_prefix(env: str) -> str:
    return f"qsecure-{env}-"


def kv_prefix(env: str) -> str:
    """Logical KV path prefix (without the mount's ``data/``), e.g. ``qsecure/dev``."""
    return f"qsecure/{env}"


def fingerprint_key_path(env: str) -> str:
    """KV v2 path (in :data:`KV_MOUNT`) of the environment's fingerprint key.

    Outside ``qsecure/ENV/``, which kernels may read: a kernel never sees the key.
    """
    return f"qsecure/_system/{env}/fingerprint-key"


def kernel_policy_hcl(env: str) -> str:
    return f"""
# Kernels of the {env} environment: read this environment's secrets, nothing else.
path "{KV_MOUNT}/data/{kv_prefix(env)}/*" {{ capabilities = ["read"] }}
path "{DATABASE_MOUNT}/creds/{database_role_prefix(env)}*" {{ capabilities = ["read"] }}
path "auth/token/lookup-self" {{ capabilities = ["read"] }}
path "auth/token/renew-self" {{ capabilities = ["update"] }}
path "sys/leases/renew" {{ capabilities = ["update"] }}
"""


def server_policy_hcl(env: str) -> str:
    return f"""
# The jupyter-qsecure server of the {env} environment (the broker).
path "auth/token/create/{kernel_token_role(env)}" {{ capabilities = ["create", "update"] }}
path "auth/token/lookup" {{ capabilities = ["update"] }}
path "auth/token/lookup-accessor" {{ capabilities = ["update"] }}
path "auth/token/revoke-accessor" {{ capabilities = ["update"] }}
path "auth/token/lookup-self" {{ capabilities = ["read"] }}
path "auth/token/renew-self" {{ capabilities = ["update"] }}
path "sys/leases/renew" {{ capabilities = ["update"] }}
path "sys/leases/revoke" {{ capabilities = ["update"] }}
path "sys/leases/lookup" {{ capabilities = ["update"] }}
path "{TRANSIT_MOUNT}/keys/qsecure-*" {{ capabilities = ["create", "read", "update"] }}
path "{TRANSIT_MOUNT}/sign/qsecure-*" {{ capabilities = ["update"] }}
path "{TRANSIT_MOUNT}/verify/qsecure-*" {{ capabilities = ["update"] }}
path "{TRANSIT_MOUNT}/encrypt/qsecure-recovery" {{ capabilities = ["update"] }}
path "{TRANSIT_MOUNT}/decrypt/qsecure-recovery" {{ capabilities = ["update"] }}
# The key of the secrets' fingerprints: created once (check-and-set), then only read.
path "{KV_MOUNT}/data/{fingerprint_key_path(env)}" {{ capabilities = ["create", "read"] }}
"""


def _enable(client: Any, path: str, backend: str, **options: Any) -> None:
    mounts = client.sys.list_mounted_secrets_engines()
    mounts = mounts.get("data", mounts)
    if f"{path}/" not in mounts:
        client.sys.enable_secrets_engine(backend_type=backend, path=path, **options)


def bootstrap(
    client: Any, environments: tuple[str, ...] = ENVIRONMENTS, *, database: bool = False
) -> None:
    """Idempotently create mounts, policies and token roles (needs an admin token)."""
    _enable(client, KV_MOUNT, "kv", options={"version": "2"})
    _enable(client, TRANSIT_MOUNT, "transit")
    if database:
        _enable(client, DATABASE_MOUNT, "database")
    for env in environments:
        client.sys.create_or_update_policy(name=kernel_policy(env), policy=kernel_policy_hcl(env))
        client.sys.create_or_update_policy(name=server_policy(env), policy=server_policy_hcl(env))
        client.write(
            f"auth/token/roles/{kernel_token_role(env)}",
            allowed_policies=[kernel_policy(env)],
            orphan=False,
            renewable=True,
            token_explicit_max_ttl=KERNEL_TOKEN_MAX_TTL,
            token_type="service",  # noqa: S106
            token_no_default_policy=True,
        )


def create_server_token(client: Any, env: str, *, period: str = "24h") -> dict[str, Any]:
    """A periodic, orphan token for the server of ``env`` (auth data: client_token, accessor)."""
    response = client.auth.token.create_orphan(
        policies=[server_policy(env)],
        period=period,
        renewable=True,
        no_default_policy=True,
        display_name=f"qsecure-server-{env}",
        meta={"environment": env},
    )
    return dict(response["auth"])
