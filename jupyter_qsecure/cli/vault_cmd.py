"""``jupyter qsecure vault up|status|down``: the embedded local OpenBao.

Never prints a token or the unseal key: only addresses, pids, states and the
paths of the (0600) files that hold them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..config import QSecure
from ..vault.embedded import EmbeddedStatus
from ..vault.layout import ENVIRONMENTS, server_policy
from ..vault.resolve import embedded_from_settings, external_vault_addr

__all__ = ["describe", "embedded_from_settings", "external_vault_addr", "register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "vault",
        help="start, inspect and stop the embedded local OpenBao (up, status, down)",
        description="The embedded OpenBao: a persistent local server under "
        "<data_dir>/openbao that jupyter-qsecure initialises and unseals itself "
        "(unseal key and tokens in 0600 files there). Not used when vault_addr "
        "(BAO_ADDR/VAULT_ADDR) points at another OpenBao/Vault.",
    )
    sub = parser.add_subparsers(dest="vault_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args, settings: _usage(parser))

    up = sub.add_parser(
        "up",
        help="start (first time: initialise), unseal and set up the local OpenBao",
        description="Start the embedded OpenBao if it is not running, initialise it on first "
        "use, unseal it, enable KV and transit, create the dev/test/prod policies and token "
        "roles, and make sure the Jupyter server's token (server.token) exists. Idempotent.",
    )
    up.add_argument(
        "--environment",
        choices=ENVIRONMENTS,
        default=None,
        help="environment of the server token (default: the `environment` setting)",
    )
    up.add_argument(
        "--embedded",
        action="store_true",
        help="start the embedded OpenBao even though vault_addr names another server",
    )
    up.set_defaults(handler=_up)

    status = sub.add_parser(
        "status",
        help="is the local OpenBao running, initialised, unsealed?",
        description="Report the embedded OpenBao's state: running, pid, address, "
        "initialised, sealed, version and folder. No tokens.",
    )
    status.add_argument("--json", action="store_true", help="print as JSON")
    status.set_defaults(handler=_status)

    down = sub.add_parser(
        "down",
        help="stop the local OpenBao (its data stays)",
        description="Stop the embedded OpenBao (SIGTERM, then SIGKILL after a timeout). Its "
        "storage, unseal key and tokens stay; `vault up` starts it again. Idempotent.",
    )
    down.set_defaults(handler=_down)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


# ---- shared with `lab` (and the other commands, through vault.resolve) ------------------
def describe(status: EmbeddedStatus) -> str:
    if not status.running:
        state = "not running"
        if status.initialized:
            state += " (initialised; `jupyter qsecure vault up` starts it)"
        return f"embedded OpenBao: {state}\n  folder: {status.data_dir}"
    if status.initialized is None:
        state = "running but not answering"
    elif not status.initialized:
        state = "running, not initialised"
    else:
        state = "running, " + ("sealed" if status.sealed else "unsealed")
    version = f", OpenBao {status.version}" if status.version else ""
    return (
        f"embedded OpenBao: {state} at {status.addr} (pid {status.pid}{version})\n"
        f"  folder: {status.data_dir}"
    )


# ---- handlers ---------------------------------------------------------------------------
def _up(args: argparse.Namespace, settings: QSecure) -> int:
    bao = embedded_from_settings(settings)
    external = external_vault_addr(settings, bao)
    if external and not args.embedded:
        print(
            f"vault_addr is set to {external} (BAO_ADDR/VAULT_ADDR or c.QSecure.vault_addr): "
            "jupyter-qsecure uses that OpenBao/Vault; not starting the embedded one.\n"
            "  Pass --embedded to start the embedded OpenBao anyway, or unset vault_addr."
        )
        return 0
    environment = args.environment or settings.environment
    status = bao.up(environment)
    print(describe(status))
    print(
        f"  server token: {bao.server_token_path} (0600; policy {server_policy(environment)})\n"
        f"  admin token:  {bao.admin_token_path} (0600; root: for administration only)\n"
        f"  log:          {bao.log_path}\n"
        "To use it from a shell:\n"
        f"  export BAO_ADDR={status.addr}"
    )
    if external:
        print(
            f"note: vault_addr still points at {external}; jupyter-qsecure keeps using that "
            "server until you change it",
            file=sys.stderr,
        )
    return 0


def _status(args: argparse.Namespace, settings: QSecure) -> int:
    bao = embedded_from_settings(settings)
    status = bao.status()
    external = external_vault_addr(settings, bao)
    if args.json:
        print(json.dumps({**status.to_dict(), "external_vault_addr": external}, indent=2))
        return 0
    print(describe(status))
    if external:
        print(f"configured vault_addr: {external} (jupyter-qsecure uses that server)")
    return 0


def _down(args: argparse.Namespace, settings: QSecure) -> int:
    bao = embedded_from_settings(settings)
    pid = bao.status().pid
    if bao.down():
        print(f"stopped the embedded OpenBao (pid {pid}); its data stays in {bao.root}")
    else:
        print("the embedded OpenBao is not running")
    return 0
