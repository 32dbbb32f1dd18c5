"""``jupyter qsecure secret put|list|rm``: secrets stored by name, no configuration needed.

``secret put NAME`` stores a value as field ``value`` of ``secret/qsecure/ENV/NAME`` in
OpenBao (the embedded one, found and started as ``vault up`` does, with its admin token;
or the one ``BAO_ADDR``/``BAO_TOKEN`` name). A qsecure kernel of that environment then
reads it with ``secrets.get("NAME")``: the server offers every name stored there, and
running kernels get a new or rotated value at their next execution (the command leaves
a stamp in the data dir that the server checks before each execution).

The value comes from a hidden prompt on a terminal, or from standard input (``echo …
| jupyter qsecure secret put NAME`` strips one trailing newline), never from the
command line, where shells and process lists keep it. Nothing printed holds it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import TYPE_CHECKING, Any

from ..config import QSecure
from ..errors import ConfigError, QSecureError
from ..kernel_guard import refuse_inside_kernel
from ..vault.layout import ENVIRONMENTS
from ._table import print_table

if TYPE_CHECKING:  # hvac and requests are imported by the command that runs
    from ..vault.secret_store import SecretStore, StoredSecret


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "secret",
        help="store, list and remove secrets by name (secrets.get('NAME') in a kernel)",
        description="Secrets stored by name in OpenBao: NAME is field 'value' of "
        "secret/qsecure/ENV/NAME, which qsecure kernels of ENV read with "
        "secrets.get('NAME'), no configuration needed. Uses the embedded OpenBao (started "
        "if needed) unless BAO_ADDR/VAULT_ADDR names another one.",
    )
    sub = parser.add_subparsers(dest="secret_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args, settings: _usage(parser))

    def environment(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--environment",
            choices=ENVIRONMENTS,
            default=None,
            help="the environment whose kernels may read it (default: the `environment` setting)",
        )

    put = sub.add_parser(
        "put",
        help="store (or rotate) a secret's value, read from a hidden prompt or stdin",
        description="Store NAME's value (a new version when it exists). The value is read "
        "from a hidden prompt, or from stdin when it is not a terminal; never from the "
        "command line.",
    )
    put.add_argument("name", metavar="NAME")
    environment(put)
    put.set_defaults(handler=_put)

    listing = sub.add_parser(
        "list", help="the names stored for an environment (never values)", description=""
    )
    environment(listing)
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.set_defaults(handler=_list)

    remove = sub.add_parser(
        "rm",
        help="delete a stored secret (every version)",
        description="Delete NAME with every version and its metadata. Kernels holding it "
        "keep it until their credentials are revoked (restart them to drop it at once).",
    )
    remove.add_argument("name", metavar="NAME")
    environment(remove)
    remove.set_defaults(handler=_rm)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def read_value(name: str) -> str:
    """From a hidden prompt on a terminal, else all of stdin minus one trailing newline."""
    if sys.stdin is not None and sys.stdin.isatty():
        value = getpass.getpass(f"Value of {name} (not shown): ")
    else:
        value = sys.stdin.read() if sys.stdin is not None else ""
        if value.endswith("\n"):
            value = value[:-1]
            if value.endswith("\r"):
                value = value[:-1]
    if not value:
        raise ConfigError(
            f"no value for {name}: the prompt was empty, or stdin was",
            hint=f"type it at the prompt, or pipe it in: `... | jupyter qsecure secret put {name}`",
        )
    return value


def _store(args: argparse.Namespace, settings: QSecure) -> tuple[SecretStore, str]:
    from ..vault.resolve import cli_openbao
    from ..vault.secret_store import SecretStore

    target = cli_openbao(settings)
    note = target.started_note()
    if note:
        print(note, file=sys.stderr)
    return SecretStore(target.client, args.environment or settings.environment), target.describe()


def _record(settings: QSecure, kind: str, secret: StoredSecret) -> None:
    """Record the change in the ledger if there is one (best effort: it is stored)."""
    from ..ledger import Ledger

    try:
        # No checkpoint signers: the server signs the next checkpoint, which covers this.
        with Ledger.open(settings=settings, create=False, signers=[]) as ledger:
            ledger.append(
                kind,
                {
                    "name": secret.name,
                    "environment": secret.environment,
                    "location": secret.location,
                    "user": getpass.getuser(),
                    "version": secret.version,
                },
            )
    except QSecureError as exc:
        if settings.data_path.joinpath("ledger.db").exists() or settings.ledger_url:
            print(f"note: not recorded in the audit ledger ({exc.message})", file=sys.stderr)


def _put(args: argparse.Namespace, settings: QSecure) -> int:
    from ..vault.secret_store import check_name, mark_changed

    refuse_inside_kernel("storing a secret")
    name = check_name(args.name)
    value = read_value(name)
    store, where = _store(args, settings)
    stored = store.put(name, value)
    mark_changed(settings.data_path)
    _record(settings, "secret.stored", stored)
    verb = "stored" if stored.created else "rotated"
    version = f"version {stored.version}, " if stored.version is not None else ""
    print(
        f"{verb} {name} for {store.environment} ({version}{stored.location}) in {where}.\n"
        f'In a qsecure kernel: from jupyter_qsecure import secrets; secrets.get("{name}")\n'
        "Running kernels get it at their next execution."
    )
    return 0


def _list(args: argparse.Namespace, settings: QSecure) -> int:
    from ..vault.secret_store import location

    store, where = _store(args, settings)
    found = store.list()
    if args.json:
        print(
            json.dumps(
                {
                    "environment": store.environment,
                    "secrets": [s.to_json() for s in found],
                },
                indent=2,
            )
        )
        return 0
    rows = [(s.name, str(s.version or ""), (s.updated_at or "").replace("T", " ")) for s in found]
    print(f"secrets of {store.environment} in {where} ({location('NAME', store.environment)}):")
    print_table(("NAME", "VERSION", "UPDATED (UTC)"), rows, "(none stored)")
    return 0


def _rm(args: argparse.Namespace, settings: QSecure) -> int:
    from ..vault.secret_store import StoredSecret, check_name, mark_changed

    refuse_inside_kernel("deleting a secret")
    name = check_name(args.name)
    store, where = _store(args, settings)
    gone = store.get_meta(name) or StoredSecret(name=name, environment=store.environment)
    store.delete(name)
    mark_changed(settings.data_path)
    _record(settings, "secret.deleted", gone)
    print(
        f"deleted {name} of {store.environment} from {where}; kernels that hold it keep it "
        "until they restart"
    )
    return 0
