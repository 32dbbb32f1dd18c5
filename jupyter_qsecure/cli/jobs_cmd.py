"""``jupyter qsecure jobs approve|list|show`` and ``jupyter qsecure replay JOB_ID``."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from ..config import QSecure
from ..jobs.history import JOB_KINDS, JobSummary, summarise_jobs, user_matches
from ..jobs.replay import replay
from ..ledger import EntryFilter, Ledger
from ..ledger.keys import keyring_from_settings
from ._table import print_table
from .audit_cmd import parse_time


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
        help="approve a job waiting for approval (a heavy run)",
        description="Record an approval in the ledger; the server then runs the job.",
    )
    approve.add_argument("job_id")
    approve.add_argument("--note", default="", help="why it is approved (recorded)")
    approve.add_argument("--actor", help="who approves (default reviewer:$USER)")
    approve.set_defaults(handler=_approve)
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
        "show", help="the ledger entries of a job", description="Ledger entries of one job."
    )
    show.add_argument("job_id")
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


def _approve(args: argparse.Namespace, settings: QSecure) -> int:
    actor = args.actor or f"reviewer:{getpass.getuser()}"
    with Ledger.open(settings=settings, actor=actor) as ledger:
        entries = ledger.entries(EntryFilter(kinds=["job.decided"]))
        decided = [e for e in entries if e.body.get("job_id") == args.job_id]
        if not decided:
            print(f"no decision recorded for job {args.job_id}", file=sys.stderr)
            return 2
        if not decided[-1].body.get("needs_approval"):
            print(f"job {args.job_id} does not need an approval", file=sys.stderr)
            return 2
        entry = ledger.append(
            "job.approved", {"job_id": args.job_id, "note": args.note}, correlation_id=args.job_id
        )
    print(
        f"approved job {args.job_id} (ledger entry {entry.index}); the server runs it within a second"
    )
    return 0


def _list(args: argparse.Namespace, settings: QSecure) -> int:
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
    with Ledger.open(settings=settings, create=False) as ledger:
        entries = [
            e
            for e in ledger.entries(EntryFilter(kinds=list(JOB_KINDS)))
            if e.body.get("job_id") == args.job_id
        ]
    print(json.dumps([e.model_dump() for e in entries], indent=2))
    return 0 if entries else 1


def _replay(args: argparse.Namespace, settings: QSecure) -> int:
    keyring = keyring_from_settings(settings)
    if args.keys:
        from ..ledger.signing import KeyRing

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
