"""``jupyter qsecure promote NOTEBOOK -o DIR`` and ``jupyter qsecure verify-promotion DIR``.

``promote`` refuses (exit 1, naming the reason and the cell) a notebook without enough
valid approvals of its current digest, with a secret anywhere in it, or with a cell that
cannot be translated faithfully to plain Python; an invalid notebook, a missing
kernelspec or a non-Python kernel are refused too. Nothing is written then. Otherwise
it writes ``DIR/NAME.py``, ``DIR/requirements.lock``, ``DIR/approvals.json`` and the
signed ``DIR/promotion.intoto.json``, and records ``promotion.created`` in the ledger.

``verify-promotion`` checks every hash, signature and approval of such a folder: exit 0
when all hold, 1 naming the first mismatch (see :mod:`jupyter_qsecure.promote.verify`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "promote",
        help="export an approved notebook as a pinned, signed script",
        description="Export an approved notebook as plain Python that runs without IPython, "
        "with a PEP 723 block and a hashed lock pinning its dependencies, signed SLSA "
        "provenance and a ledger entry. Exit 0 when promoted, 1 when refused, 2 on error.",
    )
    parser.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb file to promote")
    parser.add_argument(
        "-o", "--output", required=True, metavar="DIR", help="new (or empty) output folder"
    )
    parser.add_argument(
        "--environment",
        choices=("dev", "test", "prod"),
        help="the environment whose review policy applies (default: the configured one)",
    )
    parser.add_argument(
        "--python",
        metavar="PATH",
        help="the kernel's interpreter (default: the one the notebook's kernelspec runs)",
    )
    parser.add_argument(
        "--find-links",
        action="append",
        default=[],
        metavar="DIR",
        help="also look for distributions in this folder of wheels (repeatable), e.g. "
        "a jupyter-qsecure wheel not on your index",
    )
    parser.add_argument(
        "--keys",
        action="append",
        default=[],
        metavar="FILE",
        help="more trusted reviewer keys (keyring JSON), repeatable",
    )
    parser.set_defaults(handler=run_promote)

    verify = subparsers.add_parser(
        "verify-promotion",
        help="check every hash, signature and approval of a promotion",
        description="Check a folder written by `jupyter qsecure promote`: the signed "
        "provenance, every file's hash, the pins against the lock, and every approval. "
        "Exit 0 when all hold, 1 naming the first mismatch, 2 on error.",
    )
    verify.add_argument("directory", metavar="DIR")
    verify.add_argument(
        "--keys",
        metavar="FILE",
        help="trusted public keys (keyring JSON; default: the configured keyring file)",
    )
    verify.set_defaults(handler=run_verify)


def run_promote(args: argparse.Namespace, settings: Any) -> int:
    from ..promote.promote import promote

    result = promote(
        args.notebook,
        args.output,
        environment=args.environment,
        settings=settings,
        python=args.python,
        find_links=args.find_links,
        keys_files=args.keys,
    )
    approvals = result.statement["predicate"]["buildDefinition"]["externalParameters"]
    who = ", ".join(a["approver"] for a in approvals["approvals"]) or "nobody"
    print(
        f"promoted {args.notebook} to {result.script} for {approvals['environment']} "
        f"(approved by {who}); lock {result.lock.name}, provenance {result.envelope.name}"
        + (f", ledger entry {result.ledger_index}" if result.ledger_index is not None else "")
    )
    return 0


def run_verify(args: argparse.Namespace, settings: Any) -> int:
    from ..promote.verify import verify_promotion

    verified = verify_promotion(args.directory, keys=args.keys, settings=settings)
    print(
        f"{args.directory}: OK: {verified.script} and its lock match the provenance signed by "
        f"{verified.signer}; notebook sha256:{verified.notebook_digest[:16]}... approved for "
        f"{verified.environment} by {', '.join(verified.approvers)}",
        file=sys.stdout,
    )
    return 0
