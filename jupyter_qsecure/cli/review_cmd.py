"""``jupyter qsecure review approve|status NOTEBOOK``.

``approve`` signs the notebook's digest as the reviewer (see
:mod:`jupyter_qsecure.promote.approve`); ``status`` says whether the notebook as it is
now is approved under an environment's policy. Exit status: 0 approved (``status``) or
approval recorded (``approve``), 1 not approved / changed since approval / approval
refused by policy / a secret in the code, 2 usage or environment error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from ..config import QSecure

ENVIRONMENTS = ("dev", "test", "prod")


def register(subparsers: Any) -> None:
    review = subparsers.add_parser(
        "review",
        help="approve notebooks (signed) and check their approvals before promotion",
        description="Reviewers approve the exact code a notebook runs (a digest of its cells, "
        "tags and kernel); `review status` says whether the notebook as it is now has the "
        "approvals its environment's policy requires.",
    )
    sub = review.add_subparsers(dest="review_command", metavar="ACTION")
    review.set_defaults(handler=lambda args, settings: _usage(review))

    approve = sub.add_parser(
        "approve",
        help="sign an approval of the notebook as it is now",
        description="Sign the notebook's digest as you (your OpenBao approver token through "
        "transit when OpenBao is configured, else your local reviewer key and Jupyter/OS user), "
        "append it to NOTEBOOK.approvals.json and record it in the ledger. Refused when the "
        "policy forbids the notebook's last editor to approve it and you are that editor, and "
        "inside a Jupyter kernel.",
    )
    approve.add_argument("notebook", metavar="NOTEBOOK")
    approve.add_argument("--note", default="", help="why it is approved (signed and recorded)")
    approve.add_argument(
        "--environment",
        choices=ENVIRONMENTS,
        help="the environment whose policy and approver key apply (default: the configured one)",
    )
    approve.set_defaults(handler=_approve)

    status = sub.add_parser(
        "status",
        help="approved, unapproved, or changed since approval (naming the cells)",
        description="Check NOTEBOOK.approvals.json against the notebook as it is now and the "
        "environment's [ENV.review] policy. Exit 0 approved, 1 not approved or changed, 2 error.",
    )
    status.add_argument("notebook", metavar="NOTEBOOK")
    status.add_argument(
        "--diff", action="store_true", help="show the changed cells' diff since the approval"
    )
    status.add_argument(
        "--environment", choices=ENVIRONMENTS, help="default: the configured environment"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--keys",
        action="append",
        default=[],
        metavar="FILE",
        help="more trusted reviewer public keys (JSON from `audit keys`); repeatable",
    )
    status.set_defaults(handler=_status)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _approve(args: argparse.Namespace, settings: QSecure) -> int:
    from ..promote.approve import approve_notebook

    result = approve_notebook(
        args.notebook,
        settings=settings,
        environment=args.environment,
        note=args.note,
    )
    approval = result.approval
    print(
        f"approved {approval.notebook} (sha256 {approval.digest[:16]}…) as "
        f"{approval.reviewer.name} ({approval.reviewer.source} key {approval.keyid}) in "
        f"{approval.environment}: approval {result.position} in "
        f"{approval.notebook}.approvals.json, ledger entry {result.ledger_index}"
    )
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    _print_summary(result.check, sys.stdout)
    return 0


def _status(args: argparse.Namespace, settings: QSecure) -> int:
    from ..promote.review import valid_approvals

    environment = args.environment or settings.environment
    check = valid_approvals(args.notebook, environment, keys_files=args.keys, settings=settings)
    if args.json:
        print(json.dumps(check.to_json(), indent=2))
    else:
        _print_summary(check, sys.stdout)
        unverified = [r for r in check.records if r.problem is not None]
        for record in unverified:
            print(f"  approval {record.position}: {record.problem}")
        if any(r.approval is None for r in unverified):
            print(
                "  hint: trust other reviewers' keys with --keys FILE (their "
                "`jupyter qsecure audit keys`); an altered approval never verifies"
            )
        if args.diff:
            _print_diff(check, sys.stdout)
    return 0 if check.satisfied else 1


def _print_summary(check: Any, out: TextIO) -> None:
    name = check.notebook.name
    need = check.policy.approvals_required
    if check.status == "approved":
        print(
            f"{name}: approved in {check.environment} ({len(check.approvers)} of {need}: "
            f"{', '.join(check.approvers)})",
            file=out,
        )
        return
    if check.status == "changed":
        earlier = check.latest_earlier()
        print(
            f"{name}: changed since its approval by {earlier.reviewer.name} "
            f"({earlier.environment}, {earlier.approved_at[:19].replace('T', ' ')} UTC): "
            f"{_describe_changes(check)}",
            file=out,
        )
    else:
        print(f"{name}: unapproved in {check.environment}", file=out)
    for reason in check.reasons():
        print(f"  {reason}", file=out)


def _describe_changes(check: Any) -> str:
    parts = []
    for change in check.changes():
        if change.kind == "changed":
            parts.append(f"cell {change.new + 1} changed")
        elif change.kind == "added":
            parts.append(f"cell {change.new + 1} added")
        else:
            parts.append(f"cell {change.old + 1} of the approved version removed")
    if check.kernelspec_changed():
        parts.append("kernel changed")
    return ", ".join(parts) or "no cell differs (the digest format changed)"


def _as_notebook(document: dict[str, Any]) -> Any:
    """A notebook node of a canonical document (what nbdime diffs): no outputs, no ids."""
    import nbformat

    cells = []
    for cell in document["cells"]:
        node: dict[str, Any] = {
            "cell_type": cell["cell_type"],
            "metadata": {"tags": list(cell["tags"])} if cell["tags"] else {},
            "source": cell["source"],
        }
        if cell["cell_type"] == "code":
            node.update({"outputs": [], "execution_count": None})
        cells.append(node)
    return nbformat.from_dict(  # type: ignore[no-untyped-call]
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {"kernelspec": dict(document["kernelspec"])},
            "cells": cells,
        }
    )


def _print_diff(check: Any, out: TextIO) -> None:
    """The diff since the latest approval of an earlier version, by nbdime."""
    earlier = check.latest_earlier()
    if earlier is None or earlier.digest == check.digest:
        return
    import nbdime
    from nbdime.prettyprint import PrettyPrintConfig, pretty_print_notebook_diff

    before, after = _as_notebook(earlier.document), _as_notebook(check.document)
    config = PrettyPrintConfig(
        out=out,
        use_git=False,
        use_diff=False,
        use_color=bool(getattr(out, "isatty", None) and out.isatty()),
    )
    label = f"{check.notebook.name} (approved by {earlier.reviewer.name})"
    pretty_print_notebook_diff(
        label, f"{check.notebook.name} (now)", before, nbdime.diff_notebooks(before, after), config
    )
