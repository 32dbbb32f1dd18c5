"""``jupyter qsecure recover``: list and restore content the save gate refused."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from ..config import QSecure
from ..errors import ConfigError
from ..gate.recovery import LocalKeyWrapper, RecoveryError, RecoveryStore
from ..kernel_guard import refuse_inside_kernel
from ..vault.keywrap import TransitKeyWrapper
from ..vault.resolve import cli_openbao


class _Sealed:
    """A wrapper that opens nothing: for reading records (which key sealed a copy)."""

    name = "none"

    def wrap(self, data_key: bytes) -> str:  # pragma: no cover - never used to seal
        raise RecoveryError("this store only reads records")

    def unwrap(self, wrapped: str) -> bytes:  # pragma: no cover - never used to open
        raise RecoveryError("this store only reads records")


def _folder(settings: QSecure) -> Path:
    return settings.data_path / "recovery"


def store_for_copy(settings: QSecure, ident: str) -> RecoveryStore:
    """A store that can open copy ``ident``: with the key that sealed it.

    A copy sealed by OpenBao transit opens with the configured OpenBao, or, when none is
    configured (a plain terminal, while `jupyter qsecure lab` gave the server the embedded
    one), with the embedded OpenBao, found and unsealed as `vault up` does. A copy sealed
    with the local key opens with the key file in the data dir.
    """
    folder = _folder(settings)
    record = RecoveryStore(folder, _Sealed()).record(ident)
    if record.wrapper == "transit":
        target = cli_openbao(settings)
        note = target.started_note()
        if note:
            print(note, file=sys.stderr)
        return RecoveryStore(
            folder, TransitKeyWrapper(target.client, mount=settings.ledger_transit_mount)
        )
    if record.wrapper == "local":
        return RecoveryStore(folder, LocalKeyWrapper(settings.data_path / "keys" / "recovery.key"))
    raise RecoveryError(
        f"recovery copy {ident} was sealed with an unknown key ({record.wrapper!r})",
        hint="open it with the jupyter-qsecure version that wrote it",
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "recover",
        help="list and restore encrypted copies of saves the gate refused or redacted",
        description="The save gate keeps an encrypted copy of every refused or redacted save. "
        "List them, and restore one to a file of your choice.",
    )
    sub = parser.add_subparsers(dest="recover_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args, settings: _usage(parser))

    listing = sub.add_parser(
        "list", help="list recovery copies (newest last)", description="List recovery copies."
    )
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.set_defaults(handler=_list)

    restore = sub.add_parser(
        "restore",
        help="decrypt a copy into a file",
        description="Decrypt a recovery copy into a file. The file holds the secret(s) the gate "
        "refused: remove them before saving it again in Jupyter. Run it in a terminal: it is "
        "refused inside a Jupyter kernel (a notebook cell, ! command or subprocess).",
    )
    restore.add_argument("id", help="the recovery id (from the refusal message or `recover list`)")
    restore.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="where to write it (default: NAME.recovered.EXT in the current folder)",
    )
    restore.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    restore.set_defaults(handler=_restore)

    delete = sub.add_parser(
        "delete", help="delete a recovery copy", description="Delete a recovery copy."
    )
    delete.add_argument("id")
    delete.set_defaults(handler=_delete)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _list(args: argparse.Namespace, settings: QSecure) -> int:
    records = RecoveryStore(_folder(settings), _Sealed()).list()
    if args.json:
        print(json.dumps([r.model_dump(exclude={"wrapped_key"}) for r in records], indent=2))
        return 0
    if not records:
        print("(no recovery copies)")
        return 0
    for record in records:
        types = ", ".join(sorted({f.type for f in record.findings})) or "-"
        print(
            f"{record.id}  {record.created}  {record.user:<16} {record.path}  ({record.reason}: {types}; {record.size} bytes)"
        )
    return 0


def _restore(args: argparse.Namespace, settings: QSecure) -> int:
    refuse_inside_kernel("restoring a recovery copy")
    record, content = store_for_copy(settings, args.id).open(args.id)
    if args.output:
        target = Path(args.output)
    else:
        name = PurePosixPath(record.path).name or "recovered"
        stem, dot, ext = name.rpartition(".")
        target = Path(f"{stem}.recovered.{ext}" if dot and stem else f"{name}.recovered")
    if target.exists() and not args.force:
        raise ConfigError(
            f"{target} already exists", hint="choose another path with -o, or pass --force"
        )
    try:
        target.write_bytes(content)
        target.chmod(0o600)
    except OSError as exc:
        raise ConfigError(
            f"cannot write {target}: {exc.strerror}", hint="choose a writable path with -o"
        ) from None
    print(f"restored {record.path} (refused {record.created}) to {target}")
    if record.findings:
        print(
            "warning: it holds the secret(s) the save gate refused; remove them before saving it in Jupyter",
            file=sys.stderr,
        )
    return 0


def _delete(args: argparse.Namespace, settings: QSecure) -> int:
    refuse_inside_kernel("deleting a recovery copy")
    RecoveryStore(_folder(settings), _Sealed()).delete(args.id)
    print(f"deleted recovery copy {args.id}")
    return 0
