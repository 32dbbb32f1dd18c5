"""Names and policies jupyter-qsecure uses in OpenBao/Vault: one contract for all parts.

Per environment ``E`` (dev, test, prod):

- KV v2 secrets live under ``secret/data/qsecure/E/...`` (the ``secrets`` setting names
  ``secret/qsecure/E/PATH#field``); dynamic database roles are named ``qsecure-E-*``.
- Kernels get child tokens from the token role ``qsecure-kernel-E``, whose only policy
  ``qsecure-kernel-E`` reads that environment's secrets, nothing else.
- The server's own token has policy ``qsecure-server-E``: it may mint ``qsecure-kernel-E``
  tokens (never another environment's), look up and revoke them, renew and revoke
  leases, sign with ``transit/sign/qsecure-*`` (except the approver keys), wrap
  recovery keys, create (once) and read the fingerprint key at
  ``secret/data/qsecure/_system/E/fingerprint-key``, and store, list and delete the
  environment's secrets by name (``secret/qsecure/E/NAME``, field ``value``) for its
  users without reading them.
- Approvers of heavy runs hold tokens with policy ``qsecure-approver-E`` (from any auth
  method: userpass, OIDC, or ``create_approver_token``): the only identity that may sign
  with the transit key ``qsecure-approver-E``. The server may read that key's public
  keys and verify, never sign; kernels' tokens have no transit access at all. So an
  approval verified against that key was made by an approver, not by a kernel or by the
  server on a kernel's behalf.

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


def approver_policy(env: str) -> str:
    return f"qsecure-approver-{env}"


def approver_transit_key(env: str) -> str:
    """The transit key that signs approvals of ``env``'s heavy runs."""
    return f"qsecure-approver-{env}"


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
# Approvals are made by approvers only: the server reads and verifies, never signs.
path "{TRANSIT_MOUNT}/sign/qsecure-approver-*" {{ capabilities = ["deny"] }}
path "{TRANSIT_MOUNT}/keys/qsecure-approver-*" {{ capabilities = ["read"] }}
# Secrets stored by name for users of this environment (`secret put`, the Secrets panel):
# write and list them, read their metadata (versions, times), delete them; never read a
# value (kernels read values with their own tokens).
path "{KV_MOUNT}/data/{kv_prefix(env)}/*" {{ capabilities = ["create", "update"] }}
path "{KV_MOUNT}/metadata/{kv_prefix(env)}/*" {{ capabilities = ["list", "read", "delete"] }}
"""


def approver_policy_hcl(env: str) -> str:
    return f"""
# Approvers of the {env} environment's heavy runs: sign approvals, nothing else.
path "{TRANSIT_MOUNT}/sign/{approver_transit_key(env)}" {{ capabilities = ["update"] }}
path "{TRANSIT_MOUNT}/keys/{approver_transit_key(env)}" {{ capabilities = ["read"] }}
path "auth/token/lookup-self" {{ capabilities = ["read"] }}
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
        client.sys.create_or_update_policy(
            name=approver_policy(env), policy=approver_policy_hcl(env)
        )
        _ensure_approver_key(client, env)
        client.write(
            f"auth/token/roles/{kernel_token_role(env)}",
            allowed_policies=[kernel_policy(env)],
            orphan=False,
            renewable=True,
            token_explicit_max_ttl=KERNEL_TOKEN_MAX_TTL,
            token_type="service",  # noqa: S106
            token_no_default_policy=True,
        )


def _ensure_approver_key(client: Any, env: str) -> None:
    """The approver transit key of ``env`` (ed25519, not exportable), created by the admin:
    the server's policy may not create it (it could then pick a key it can use)."""
    import hvac.exceptions

    name = approver_transit_key(env)
    try:
        client.secrets.transit.read_key(name=name, mount_point=TRANSIT_MOUNT)
    except hvac.exceptions.InvalidPath:
        client.secrets.transit.create_key(name=name, key_type="ed25519", mount_point=TRANSIT_MOUNT)


def create_approver_token(client: Any, env: str, name: str, *, ttl: str = "8h") -> dict[str, Any]:
    """A token for approver ``name`` of ``env`` (auth data: client_token, accessor).

    Hand it to the approver only (it signs approvals); prefer an auth method that gives
    each approver their own login (userpass, OIDC) with policy ``qsecure-approver-ENV``.
    """
    response = client.auth.token.create_orphan(
        policies=[approver_policy(env)],
        ttl=ttl,
        renewable=False,
        no_default_policy=True,
        display_name=name,
        meta={"approver": name, "environment": env},
    )
    return dict(response["auth"])


def approver_name(token_data: dict[str, Any]) -> str:
    """The approver a token (``lookup-self`` / ``lookup-accessor`` data) belongs to.

    ``meta.username`` (userpass, LDAP logins) or ``meta.approver`` (created by
    :func:`create_approver_token`), else the display name without its auth-method prefix
    (OpenBao writes ``token-alice``, ``userpass-alice``).
    """
    meta = token_data.get("meta") or {}
    for key in ("username", "approver"):
        value = meta.get(key) if isinstance(meta, dict) else None
        if isinstance(value, str) and value:
            return value
    display = str(token_data.get("display_name") or "")
    method, _, rest = display.partition("-")
    return rest if rest and method in _AUTH_PREFIXES else display


_AUTH_PREFIXES = frozenset(
    {"token", "userpass", "ldap", "oidc", "jwt", "github", "approle", "cert"}
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
