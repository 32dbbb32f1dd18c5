"""``jupyter qsecure jobs approve|list|show`` and ``jupyter qsecure replay JOB_ID``."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..jobs.history import JOB_KINDS, JobSummary, resolve_job_id, summarise_jobs, user_matches
from ..vault.layout import ENVIRONMENTS, approver_name, approver_policy, approver_transit_key
from ._table import print_table
from .audit_cmd import parse_time

if TYPE_CHECKING:  # imported by the action that runs: the CLI starts without them
    from ..config import QSecure
    from ..jobs.approval import ApproverRef
    from ..ledger import Ledger


def register(subparsers: Any) -> None:
    jobs = subparsers.add_parser(
        "jobs",
        help="approve heavy runs and show recorded %%qsubmit jobs",
        description="Jobs submitted with %qsubmit, as recorded in the audit ledger.",
    )
    sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    jobs.set_defaults(handler=lambda args, settings: _usage(jobs))
    approve = sub.add_parser(
        "approve",
        help="approve a job waiting for approval (a heavy run), as an approver",
        description="Sign an approval of the job with your approver key (an OpenBao token "
        "with the qsecure-approver-ENV policy when OpenBao is configured, else your local "
        "approver key, unlocked with its passphrase) and record it in the ledger; the "
        "server checks it and runs the job. Refused inside a Jupyter kernel.",
    )
    approve.add_argument("job_id")
    approve.add_argument("--note", default="", help="why it is approved (recorded)")
    approve.add_argument(
        "--approver",
        "--actor",
        dest="approver",
        metavar="NAME",
        help="which local approver key to use (default: the only one in the key folder); "
        "the name recorded is the key's, never a name given here",
    )
    approve.add_argument(
        "--key", metavar="FILE", help="the local approver key file (instead of --approver)"
    )
    approve.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="wait this long for the server's answer (released or refused); 0: do not wait",
    )
    approve.set_defaults(handler=_approve)
    approver = sub.add_parser(
        "approver",
        help="local approver keys (the embedded default, without OpenBao)",
        description="Approver keys for heavy runs when no OpenBao is configured.",
    )
    approver_sub = approver.add_subparsers(dest="approver_command", metavar="ACTION")
    approver.set_defaults(handler=lambda args, settings: _usage(approver))
    add = approver_sub.add_parser(
        "add",
        help="create an approver key (passphrase-protected) and trust it",
        description="Create an Ed25519 approver key encrypted with a passphrase (asked on "
        "the terminal, or one line on stdin), outside the data dir, and add its public key "
        "to the approvers the server trusts (from its next start).",
    )
    add.add_argument("name")
    add.add_argument(
        "--environment",
        action="append",
        choices=ENVIRONMENTS,
        help="environments this approver approves (repeatable; default: the configured one)",
    )
    add.set_defaults(handler=_approver_add)
    listed = approver_sub.add_parser("list", help="the approvers the server trusts")
    listed.set_defaults(handler=_approver_list)
    listing = sub.add_parser(
        "list",
        help="recent jobs: who ran what, under which decision, how it ended",
        description="One line per job, built from the ledger's job entries (oldest first).",
    )
    listing.add_argument("--last", type=int, default=20, metavar="N", help="the newest N jobs")
    listing.add_argument("--user", help="only this user's jobs (alice or user:alice)")
    listing.add_argument(
        "--status",
        help="only jobs with this status (completed, failed, cancelled, denied, "
        "pending_approval, approved, unfinished)",
    )
    listing.add_argument(
        "--since", help="only jobs decided since this time (ISO 8601, or an age: 30m, 12h, 7d)"
    )
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(handler=_list)
    show = sub.add_parser(
        "show",
        help="the ledger entries of a job (by job id or decision id)",
        description="Ledger entries of one job, named by its job id or by the decision id a "
        "denial quotes.",
    )
    show.add_argument("job_id", metavar="ID", help="a job id or a decision id")
    show.set_defaults(handler=_show)

    again = subparsers.add_parser(
        "replay",
        help="re-run a recorded job on Aer and check the result against the signed one",
        description="Re-run a job from its archive and signed manifest; exit 0 if the result "
        "hash matches the recorded one, 1 if not.",
    )
    again.add_argument("job_id")
    again.add_argument(
        "--keys", metavar="FILE", help="trusted public keys (JSON); default the keyring"
    )
    again.set_defaults(handler=_replay)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _refuse_in_kernel(what: str) -> None:
    from ..jobs.approval import ApprovalError, kernel_context

    reason = kernel_context()
    if reason is not None:
        raise ApprovalError(
            f"{what} cannot run inside a Jupyter kernel ({reason})",
            hint="approvals come from an approver, outside any kernel: run it in your own "
            "terminal. A kernel cannot approve its own jobs (it has no approver key)",
        )


def _read_passphrase(prompt: str, *, confirm: bool = False) -> str:
    """From a hidden prompt on the terminal, or one line of stdin; never from argv."""
    from ..jobs.approval import ApprovalError

    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if confirm and getpass.getpass("Again: ") != first:
            raise ApprovalError("the passphrases do not match")
        return first
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line:
        raise ApprovalError(
            "no passphrase: stdin is not a terminal and is empty",
            hint="run it in a terminal, or pipe the passphrase (one line) into it",
        )
    return line.rstrip("\r\n")


def _job_entries(ledger: Ledger, job_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job's ``job.decided`` and ``job.submitted`` bodies; ApprovalError if unfit."""
    from ..jobs.approval import ApprovalError
    from ..ledger import EntryFilter

    entries = ledger.entries(EntryFilter(kinds=["job.decided", "job.submitted"]))
    decided = [
        e.body for e in entries if e.kind == "job.decided" and e.body.get("job_id") == job_id
    ]
    submitted = [
        e.body for e in entries if e.kind == "job.submitted" and e.body.get("job_id") == job_id
    ]
    if not decided or not submitted:
        raise ApprovalError(
            f"no decision recorded for job {job_id}",
            hint="check the id: `jupyter qsecure jobs list`",
        )
    if not decided[-1].get("needs_approval"):
        raise ApprovalError(f"job {job_id} does not need an approval")
    return decided[-1], submitted[-1]


def _approver_signer(
    args: argparse.Namespace, settings: QSecure, environment: str
) -> tuple[Any, ApproverRef]:
    """The approver's signer: an OpenBao approver token, or a local key and passphrase."""
    from ..jobs.approval import ApprovalError, ApproverRef, LocalApproverKey, check_name
    from ..signing.transit import TransitSigner
    from ..vault.client import client_from_settings

    if settings.vault_addr and not args.key and not args.approver:
        client = client_from_settings(settings)
        try:
            token = dict(client.auth.token.lookup_self()["data"])
        except Exception as exc:
            raise ApprovalError(
                f"cannot look up your OpenBao token at {settings.vault_addr} ({type(exc).__name__})",
                hint="log in as an approver (BAO_TOKEN), or use a local key with --approver",
            ) from None
        if approver_policy(environment) not in (token.get("policies") or []):
            raise ApprovalError(
                f"your OpenBao token does not have the {approver_policy(environment)} policy",
                hint="log in with an approver identity of this environment (the server's and "
                "kernels' tokens cannot approve)",
            )
        signer = TransitSigner(
            client, mount=settings.ledger_transit_mount, key_name=approver_transit_key(environment)
        )
        ref = ApproverRef(
            name=check_name(approver_name(token)), source="openbao", accessor=token["accessor"]
        )
        return signer, ref
    folder = settings.resolved_approver_key_dir()
    if args.key:
        path = Path(args.key).expanduser()
    elif args.approver:
        name = check_name(args.approver.removeprefix("reviewer:").removeprefix("approver:"))
        path = folder / f"{name}.key"
    else:
        keys = sorted(folder.glob("*.key")) if folder.is_dir() else []
        if len(keys) != 1:
            raise ApprovalError(
                f"{'no' if not keys else len(keys)} approver keys in {folder}",
                hint="name yours with --approver NAME (or --key FILE); create one with "
                "`jupyter qsecure jobs approver add NAME`",
            )
        path = keys[0]
    key = LocalApproverKey.unlock(path, _read_passphrase(f"Passphrase for {path}: "))
    return key, ApproverRef(name=key.name, source="local")


def _approve(args: argparse.Namespace, settings: QSecure) -> int:
    from ..jobs.approval import approval_subject, build_approval
    from ..ledger import Ledger

    _refuse_in_kernel("jupyter qsecure jobs approve")
    # No checkpoint signers: an approver's identity may not use the ledger's key (the
    # server signs the next checkpoint, which covers this entry too).
    with Ledger.open(settings=settings, create=False, signers=[]) as ledger:
        decided, submitted = _job_entries(ledger, args.job_id)
        environment = str(decided.get("environment") or settings.environment)
        signer, approver = _approver_signer(args, settings, environment)
        identity = submitted.get("identity") or {}
        body = build_approval(
            job_id=args.job_id,
            subject=approval_subject(
                args.job_id,
                str(submitted.get("decision_id")),
                submitted.get("circuit_hashes") or [],
                submitted.get("request") or {},
            ),
            decision_id=str(submitted.get("decision_id")),
            environment=environment,
            approver=approver,
            submitter=str(identity.get("user")),
            note=args.note,
            signer=signer,
        )
        entry = ledger.append(
            "job.approved", body, actor=f"approver:{approver.name}", correlation_id=args.job_id
        )
        print(
            f"approval of job {args.job_id} by {approver.name} recorded (ledger entry {entry.index})"
        )
        return _await_answer(ledger, args.job_id, entry.index, args.wait)


def _await_answer(ledger: Ledger, job_id: str, index: int, wait: float) -> int:
    """Wait (polling the ledger) for the server's answer to approval ``index``."""
    from ..ledger import EntryFilter

    deadline = time.monotonic() + max(0.0, wait)
    where = EntryFilter(kinds=["job.released", "job.approval_refused"], start=index + 1)
    while True:
        for entry in ledger.entries(where):
            if entry.body.get("job_id") != job_id or entry.body.get("approval_index") != index:
                continue
            if entry.kind == "job.released":
                print(f"the server released job {job_id}: it runs now")
                return 0
            print(f"the server refused the approval: {entry.body.get('reason')}", file=sys.stderr)
            return 1
        if time.monotonic() >= deadline:
            if wait > 0:
                print(
                    f"no answer from the server within {wait:g} s (is it running?): it checks "
                    "the approval when it sees it; `jupyter qsecure jobs show JOB_ID` tells",
                    file=sys.stderr,
                )
            return 0
        time.sleep(0.2)  # a CLI polling another process's writes; not a test


def _approver_add(args: argparse.Namespace, settings: QSecure) -> int:
    from ..jobs.approval import ApprovalError, ApproverTrust, LocalApproverKey, check_name

    _refuse_in_kernel("jupyter qsecure jobs approver add")
    name = check_name(args.name)
    environments = args.environment or [settings.environment]
    trust_file = settings.resolved_approvers_file()
    trust = ApproverTrust.load(trust_file)
    if any(a.name == name for a in trust.approvers):
        raise ApprovalError(
            f"approver {name} is already trusted (in {trust_file})",
            hint="remove the entry there first to replace the key",
        )
    path = settings.resolved_approver_key_dir() / f"{name}.key"
    passphrase = _read_passphrase(f"New passphrase for approver {name}: ", confirm=True)
    key = LocalApproverKey.create(path, name, passphrase)
    trust.add(name, key.public_keys()[0], environments)
    trust.save(trust_file)
    print(
        f"approver {name}: key {key.key_id} in {path} (keep its passphrase to yourself), "
        f"trusted for {', '.join(sorted(set(environments)))} in {trust_file}; restart the "
        "Jupyter server to have it honour this approver's approvals"
    )
    return 0


def _approver_list(args: argparse.Namespace, settings: QSecure) -> int:
    from ..jobs.approval import ApproverTrust

    trust = ApproverTrust.load(settings.resolved_approvers_file())
    rows = [(a.name, a.key.key_id, ",".join(a.environments), a.added_at) for a in trust.approvers]
    print_table(("APPROVER", "KEY", "ENVIRONMENTS", "ADDED"), rows, "(no local approvers)")
    return 0


def _list(args: argparse.Namespace, settings: QSecure) -> int:
    from ..ledger import EntryFilter, Ledger

    if args.last < 1:
        print("--last must be at least 1", file=sys.stderr)
        return 2
    where = EntryFilter(kinds=list(JOB_KINDS), since=parse_time(args.since, "--since"))
    with Ledger.open(settings=settings, create=False) as ledger:
        jobs = summarise_jobs(ledger.entries(where))
    if args.user:
        jobs = [j for j in jobs if user_matches(j.actor, args.user)]
    if args.status:
        jobs = [j for j in jobs if j.status == args.status]
    jobs = jobs[-args.last :]
    if args.json:
        print(json.dumps([j.to_json() for j in jobs], indent=2))
        return 0
    header = ("JOB", "DECIDED (UTC)", "USER", "STATUS", "CIRCUITS", "SHOTS", "DETAILS")
    rows = [
        (
            j.job_id,
            j.decided_at[:19].replace("T", " "),
            j.actor,
            j.status,
            str(j.circuits),
            "" if j.shots is None else str(j.shots),
            _details(j),
        )
        for j in jobs
    ]
    print_table(header, rows, "(no matching jobs)")
    return 0


def _details(job: JobSummary, width: int = 60) -> str:
    parts = [job.backend or ""] + [f"#{t}" for t in job.tags]
    if job.error:
        parts.append(job.error if not job.rule else f"{job.rule}: {job.error}")
    text = " ".join(p for p in parts if p)
    return text if len(text) <= width else text[: width - 1] + "…"


def _show(args: argparse.Namespace, settings: QSecure) -> int:
    from ..ledger import EntryFilter, Ledger

    with Ledger.open(settings=settings, create=False) as ledger:
        every = list(ledger.entries(EntryFilter(kinds=list(JOB_KINDS))))
    job_id = resolve_job_id(every, args.job_id.strip().lower())
    if job_id is None:
        print(
            f"jupyter qsecure jobs show: no job or decision {args.job_id} in the ledger",
            file=sys.stderr,
        )
        print("  hint: `jupyter qsecure jobs list` shows the recorded jobs", file=sys.stderr)
        return 1
    entries = [e for e in every if e.body.get("job_id") == job_id]
    print(json.dumps([e.model_dump() for e in entries], indent=2))
    return 0


def _replay(args: argparse.Namespace, settings: QSecure) -> int:
    from ..jobs.replay import replay
    from ..ledger.keys import keyring_from_settings

    keyring = keyring_from_settings(settings)
    if args.keys:
        from ..signing.signers import KeyRing

        with open(args.keys, encoding="utf-8") as handle:
            for key in KeyRing.from_json(handle.read()):
                keyring.add(key)
    report = replay(settings.data_path / "jobs", args.job_id, keyring)
    if report.matches:
        print(
            f"job {report.job_id}: replayed result matches the signed result (sha256 {report.recorded_digest[:16]}…)"
        )
        return 0
    print(f"job {report.job_id}: replayed result DIFFERS from the signed result", file=sys.stderr)
    for line in report.differences[:10]:
        print(f"  {line}", file=sys.stderr)
    return 1
