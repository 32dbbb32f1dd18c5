"""Fakes shared by the kernel tests."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any


class FakeKernel:
    """What ``jupyter_qsecure.kernel.context`` reads from ipykernel: the parent request
    of the shell channel (an execute_request without credentials unless given one)."""

    def __init__(self, parent: dict[str, Any] | None = None) -> None:
        self.parent: dict[str, Any] = (
            parent
            if parent is not None
            else {"header": {"msg_type": "execute_request"}, "metadata": {}}
        )

    def get_parent(self, channel: str | None = None) -> dict[str, Any]:
        assert channel == "shell"
        return self.parent


def credentials_block(
    *,
    environment: str = "dev",
    kernel_id: str = "k-123",
    api_minutes: float = 10,
    warehouse_minutes: float = 60,
    token_left: timedelta = timedelta(minutes=15),
    **overrides: Any,
) -> dict[str, Any]:
    """The server extension's credentials contract (execute_request metadata ``qsecure``)
    with fresh fake values: a KV secret ``api``, a database secret ``warehouse``, the
    kernel token (``token_left`` before it expires), and ``broken``, which failed.
    ``overrides`` replace top-level keys."""
    now = datetime.now(timezone.utc)

    def lease(kind: str, lease_id: str | None, minutes: float, renewable: bool) -> dict[str, Any]:
        return {
            "kind": kind,
            "lease_id": lease_id,
            "expires_at": (now + timedelta(minutes=minutes)).isoformat(),
            "ttl_seconds": int(minutes * 60),
            "renewable": renewable,
        }

    warehouse = lease(
        "database",
        f"database/creds/qsecure-{environment}-ro/" + secrets.token_hex(8),
        warehouse_minutes,
        True,
    )
    warehouse["expires_at"] = warehouse["expires_at"].replace("+00:00", "Z")  # both forms
    token = lease("token", None, token_left.total_seconds() / 60, True)
    token["ttl_seconds"] = 900
    block: dict[str, Any] = {
        "v": 1,
        "kernel_id": kernel_id,
        "environment": environment,
        "identity": {
            "user": "alice",
            "accessor": "acc-" + secrets.token_hex(12),
            "policies": [f"qsecure-kernel-{environment}"],
        },
        "vault_addr": "http://127.0.0.1:8200",
        "token": "s." + secrets.token_urlsafe(24),
        "secrets": {
            "api": "v-" + secrets.token_urlsafe(24),
            "warehouse": {
                "username": "v-user-" + secrets.token_hex(4),
                "password": "p-" + secrets.token_urlsafe(24),
            },
        },
        "leases": {
            "api": lease("kv", None, api_minutes, False),
            "warehouse": warehouse,
            "token": token,
        },
        "errors": {"broken": f"permission denied on secret/qsecure/{environment}/broken"},
        "error": None,
    }
    block.update(overrides)
    return block
