"""``jupyter qsecure audit``: verify, show, prove, export and annotate the audit ledger."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, QSecureError, VerificationFailed
from ._table import print_table

if TYPE_CHECKING:  # the ledger (pydantic, cryptography) is imported by the action that runs
    from ..config import QSecure
    from ..ledger import KeyRing
    from ..ledger.models import Entry


def register(subparsers: Any) -> None:
    audit = subparsers.add_parser(
        "audit",
        help="verify, show, prove and export the tamper-evident audit ledger",
        description="The audit ledger: an append-only Merkle log with signed checkpoints.",
    )
    sub = audit.add_subparsers(dest="audit_command", metavar="ACTION")
    audit.set_defaults(handler=lambda args, settings: _usage(audit))

    def add(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name, help=help_text, description=help_text
        )
        parser.add_argument(
            "--ledger",
            metavar="URL",
            help="ledger URL (sqlite:///ABS/PATH.db or postgresql://...); default: "
            "QSECURE_LEDGER or c.QSecure.ledger_url or the SQLite file in the data dir",
        )
        parser.set_defaults(handler=handler)
        return parser

    verify = add(
        "verify",
        "recompute every leaf and root, check every checkpoint signature and that each "
        "checkpoint extends the previous one; exit 0 intact, 1 naming the first bad entry",
        _verify,
    )
    verify.add_argument(
        "--keys",
        metavar="FILE",
        action="append",
        default=[],
        help="extra trusted public keys (JSON from `audit keys`); repeatable",
    )
    verify.add_argument(
        "--checkpoint",
        metavar="FILE",
        action="append",
        default=[],
        help="a checkpoint saved earlier outside the database (`audit checkpoint -o`); "
        "detects a tail deleted together with its checkpoints",
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: when stderr is a terminal)",
    )

    show = add("show", "list ledger entries as a table (or JSON)", _show)
    show.add_argument("--kind", action="append", default=[], help="only this kind; repeatable")
    show.add_argument("--actor", action="append", default=[], help="only this actor; repeatable")
    show.add_argument("--since", help="from this time (ISO 8601, or relative: 30m, 12h, 7d)")
    show.add_argument("--until", help="before this time (ISO 8601, or relative)")
    show.add_argument("--last", type=_positive_int, metavar="N", help="only the newest N matches")
    show.add_argument("--json", action="store_true", help="print a JSON array")

    prove = add(
        "prove",
        "print an inclusion proof (JSON) that a third party can check with only the public keys",
        _prove,
    )
    prove.add_argument("index", type=_non_negative_int, help="entry index")
    prove.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")

    check = sub.add_parser(
        "check-proof",
        help="check an inclusion proof offline (no database)",
        description="Check a proof from `audit prove` against trusted public keys.",
    )
    check.add_argument("proof", metavar="PROOF.json")
    check.add_argument(
        "--keys",
        metavar="FILE",
        required=True,
        help="trusted public keys (JSON from `audit keys`, obtained out of band)",
    )
    check.set_defaults(handler=_check_proof)

    export = add("export", "write entries as JSON Lines (for a SIEM)", _export)
    export.add_argument("--kind", action="append", default=[], help="only this kind; repeatable")
    export.add_argument("--since", help="from this time (ISO 8601 or relative)")
    export.add_argument(
        "--from-index",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="start at entry N (for incremental export)",
    )
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")

    note = add(
        "note", "record an operator's remark (kind 'note'), e.g. 'rotated the transit key'", _note
    )
    note.add_argument("text", nargs="+", help="the remark")
    note.add_argument("--actor", help="who is speaking (default local:$USER)")

    keys = add(
        "keys", "print the trusted public keys (JSON) that verify this ledger's checkpoints", _keys
    )
    keys.add_argument("-o", "--output", metavar="FILE")

    checkpoint = add("checkpoint", "sign a checkpoint of the ledger now and print it", _checkpoint)
    checkpoint.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="also save it to FILE, to keep a copy outside the database",
    )


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def parse_time(text: str | None, option: str) -> str | None:
    """ISO 8601 or a relative age (30m, 12h, 7d) -> the ledger's UTC timestamp format."""
    if not text:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        if text[-1] in units and text[:-1].isdigit():
            moment = datetime.now(timezone.utc) - timedelta(
                seconds=int(text[:-1]) * units[text[-1]]
            )
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
    except ValueError:
        raise ConfigError(
            f"{option} {text!r} is not a time",
            hint="use ISO 8601 (2026-11-22 or 2026-11-22T10:00:00Z) or an age such as 30m, 12h, 7d",
        ) from None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _url(args: argparse.Namespace, settings: QSecure) -> str:
    return str(args.ledger or settings.resolved_ledger_url())


def _write(output: str | None, text: str) -> None:
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot write {output}: {exc.strerror}", hint="choose a writable path"
            ) from None
    else:
        sys.stdout.write(text)


def _load_json_file(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read {what} {path}: {exc.strerror}", hint="check the path"
        ) from None
    except ValueError as exc:
        raise ConfigError(
            f"{what} {path} is not valid JSON ({exc})", hint="pass the file the tool wrote"
        ) from None


def _keyring(settings: QSecure, extra_files: list[str]) -> KeyRing:
    from ..ledger import KeyRing
    from ..ledger.keys import keyring_from_settings

    keyring = keyring_from_settings(settings)
    for path in extra_files:
        data = _load_json_file(path, "key file")
        try:
            for record in KeyRing.from_json(json.dumps(data)):
                keyring.add(record)
        except ValueError as exc:
            raise ConfigError(
                f"key file {path} is not a jupyter-qsecure keyring ({exc})",
                hint="create it with `jupyter qsecure audit keys -o FILE`",
            ) from None
    return keyring


# ---- actions ---------------------------------------------------------------------------------
def _verify(args: argparse.Namespace, settings: QSecure) -> int:
    from ..ledger.models import Checkpoint
    from ..ledger.store import open_store
    from ..ledger.verify import verify_ledger

    keyring = _keyring(settings, args.keys)
    trusted = []
    for path in args.checkpoint:
        try:
            trusted.append(Checkpoint.model_validate(_load_json_file(path, "checkpoint")))
        except ValueError as exc:
            raise ConfigError(
                f"{path} is not a checkpoint ({exc.__class__.__name__})",
                hint="save one with `jupyter qsecure audit checkpoint -o FILE`",
            ) from None
    store = open_store(_url(args, settings), create=False)
    try:
        with store.read() as tx:
            total = tx.count_entries()
        show = args.progress if args.progress is not None else sys.stderr.isatty()
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(
                total=total, unit="entries", unit_scale=True, desc="verifying", file=sys.stderr
            )

        def progress(done: int) -> None:
            if bar is not None:
                bar.update(done - bar.n)

        report = verify_ledger(store, keyring, progress=progress, trusted=trusted)
        if bar is not None:
            bar.close()
    finally:
        store.close()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    elif report.ok:
        algorithms = ", ".join(sorted(report.algorithms)) or "none"
        print(
            f"ledger intact: {report.entries} entries, {report.checkpoints} checkpoints, "
            f"{report.signatures} signatures verified ({algorithms}) in {report.seconds:.2f} s"
        )
        if report.checkpoints == 0:
            print("warning: no signed checkpoint yet; run `jupyter qsecure audit checkpoint`")
        elif report.unsigned_tail:
            print(
                f"note: the newest {report.unsigned_tail} entries are not covered by a checkpoint yet"
            )
    else:
        first = report.first
        assert first is not None
        print(f"ledger verification FAILED: {first.message}", file=sys.stderr)
        for problem in report.problems[1:10]:
            print(f"  also: {problem.message}", file=sys.stderr)
        if first.kind == "unknown key":
            print(
                "  hint: pass the signer's public keys with --keys FILE (from `audit keys`)",
                file=sys.stderr,
            )
    return 0 if report.ok else 1


def _entry_summary(entry: Entry, width: int = 60) -> str:
    text = entry.body.get("text") if entry.kind == "note" else None
    summary = (
        str(text)
        if text is not None
        else json.dumps(entry.body, sort_keys=True, separators=(",", ":"))
    )
    return summary if len(summary) <= width else summary[: width - 1] + "…"


def _show(args: argparse.Namespace, settings: QSecure) -> int:
    from ..identity import user_actor
    from ..ledger import EntryFilter
    from ..ledger.models import Entry
    from ..ledger.store import open_store

    where = EntryFilter(
        kinds=args.kind,
        # a bare name is a user (``alice`` finds ``user:alice``) or an actor as written
        actors=[a for name in args.actor for a in (name, user_actor(name)) if a]
        if args.actor
        else [],
        since=parse_time(args.since, "--since"),
        until=parse_time(args.until, "--until"),
        last=args.last,
    )
    store = open_store(_url(args, settings), create=False)
    try:
        with store.read() as tx:
            rows = tx.query_entries(where)
    finally:
        store.close()
    entries = [Entry.from_bytes(bytes(r.entry), bytes(r.leaf_hash)) for r in rows]
    if args.json:
        print(json.dumps([e.model_dump() for e in entries], indent=2))
        return 0
    header = ("INDEX", "TIME (UTC)", "KIND", "ACTOR", "DETAILS")
    table = [
        (str(e.index), e.timestamp[:19].replace("T", " "), e.kind, e.actor, _entry_summary(e))
        for e in entries
    ]
    print_table(header, table, "(no matching entries)")
    return 0


def _prove(args: argparse.Namespace, settings: QSecure) -> int:
    from ..ledger import Ledger

    with Ledger.open(_url(args, settings), settings=settings, create=False) as ledger:
        proof = ledger.prove(args.index)
    _write(args.output, proof.model_dump_json(indent=2) + "\n")
    return 0


def _check_proof(args: argparse.Namespace, settings: QSecure) -> int:
    from ..config import QSecure
    from ..ledger import InclusionProof, KeyRing, verify_inclusion_proof

    data = _load_json_file(args.proof, "proof")
    try:
        proof = InclusionProof.model_validate(data)
    except ValueError:
        raise ConfigError(
            f"{args.proof} is not a jupyter-qsecure inclusion proof",
            hint="create one with `jupyter qsecure audit prove INDEX`",
        ) from None
    keyring = KeyRing()
    for record in _keyring(QSecure(data_dir="/nonexistent-qsecure-dir"), [args.keys]):
        keyring.add(record)
    problems = verify_inclusion_proof(proof, keyring)
    if problems:
        for problem in problems:
            print(f"proof INVALID: {problem}", file=sys.stderr)
        return 1
    print(
        f"proof valid: entry {proof.index} is in the ledger {proof.checkpoint.body.origin} "
        f"at tree size {proof.tree_size}, checkpoint signed {proof.checkpoint.body.timestamp} "
        f"({', '.join(proof.checkpoint.algorithms)})"
    )
    return 0


def _export(args: argparse.Namespace, settings: QSecure) -> int:
    from ..ledger.store import open_store

    since = parse_time(args.since, "--since")
    kinds = set(args.kind)
    store = open_store(_url(args, settings), create=False)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        with store.read() as tx:
            for row in tx.iter_entries(start=args.from_index):
                if kinds and row.kind not in kinds:
                    continue
                if since and row.ts < since:
                    continue
                record = json.loads(bytes(row.entry))
                record["leaf_hash"] = bytes(row.leaf_hash).hex()
                out.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")
    finally:
        store.close()
        if out is not sys.stdout:
            out.close()
    return 0


def _note(args: argparse.Namespace, settings: QSecure) -> int:
    from ..ledger import Ledger

    text = " ".join(args.text)
    with Ledger.open(_url(args, settings), settings=settings, actor=args.actor) as ledger:
        entry = ledger.append("note", {"text": text})
    print(f"recorded note as entry {entry.index} (leaf {entry.leaf_hash[:16]}…)")
    return 0


def _keys(args: argparse.Namespace, settings: QSecure) -> int:
    from ..ledger.keys import keyring_from_settings

    keyring = keyring_from_settings(settings)
    if not len(keyring):
        raise QSecureError(
            "no trusted public keys yet",
            hint="they are recorded when the ledger first signs; run `jupyter qsecure audit checkpoint`",
        )
    _write(args.output, keyring.to_json())
    return 0


def _checkpoint(args: argparse.Namespace, settings: QSecure) -> int:
    from ..ledger import Ledger

    with Ledger.open(_url(args, settings), settings=settings) as ledger:
        checkpoint = ledger.checkpoint()
    text = checkpoint.model_dump_json(indent=2) + "\n"
    if args.output:
        _write(args.output, text)
    sys.stdout.write(text)
    return 0


__all__ = ["register", "VerificationFailed"]
