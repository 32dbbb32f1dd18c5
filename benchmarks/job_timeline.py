"""One %qsubmit job's timeline, phase by phase (issue 12: the latency of one small job).

Runs the broker's core (``jupyter_qsecure.jobs.service.JobService``) in this process
with the parts the server uses: a real OpenBao dev server (the ``bao`` binary) signing
manifests and results with transit (through ``BatchingSigner``, as the server does), the
SQLite ledger (WAL, ``synchronous=FULL``), the parse pool and the local executor (Aer in
worker processes). Each phase is timed by wrapping the component's method (nothing in
the broker changes), and the kernel's own work (QPY encoding, canonical hash, result
verification) is timed in this process too. No HTTP layer: the REST handler's own
cost is the gap between the bench's ``%qsubmit`` and the sum here.

Reported per phase: median and p90 over ``--runs`` jobs (after ``--warmup``), in ms,
with the count of ledger commits and transit calls per job, and the CPU time one job
costs: ``cpu_broker`` (this process, every thread, the archive written after the answer
included), ``cpu_process`` (this process, the kernel's part included) and
``cpu_children`` (the Aer and parse workers, and OpenBao; means over the runs). Timings on a machine
others load are not reliable in absolute terms: compare phases with each other.

Usage: python benchmarks/job_timeline.py [--runs 60] [--warmup 10] [--shots 1024]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MARKS: list[tuple[str, float]] = []


def mark(label: str) -> None:
    MARKS.append((label, time.perf_counter()))


def wrap(obj: Any, name: str, label: str) -> None:
    """Mark ``label:start`` / ``label:end`` around ``obj.name``."""
    real = getattr(obj, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        mark(f"{label}:start")
        try:
            return real(*args, **kwargs)
        finally:
            mark(f"{label}:end")

    setattr(obj, name, timed)


def wrap_cm(obj: Any, name: str, label: str) -> None:
    """Mark around a context manager method (the ledger store's write transaction)."""
    real = getattr(obj, name)

    @contextlib.contextmanager
    def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
        mark(f"{label}:start")
        with real(*args, **kwargs) as value:
            yield value
        mark(f"{label}:end")

    setattr(obj, name, timed)


def phases(marks: list[tuple[str, float]], t0: float) -> dict[str, float]:
    """Durations (ms) of each labelled span, summed when a span repeats; plus counts."""
    out: dict[str, float] = defaultdict(float)
    opened: dict[str, float] = {}
    for label, at in marks:
        name, _, edge = label.rpartition(":")
        if edge == "start":
            opened[name] = at
            out[f"#{name}"] += 1
        elif edge == "end" and name in opened:
            out[name] += (at - opened.pop(name)) * 1000
        else:
            out[f"@{label}"] = (at - t0) * 1000
    return dict(out)


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's live children (the Aer and parse
    workers, and OpenBao, which signs), 0 without psutil."""
    try:
        import psutil
    except ImportError:
        return 0.0
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            total += times.user + times.system
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--shots", type=int, default=1024)
    parser.add_argument(
        "--ab",
        metavar="ATTRIBUTE",
        help="A/B in this process: set this boolean JobService attribute on every other "
        "job, and report both halves side by side; 'archive_after': archive before the "
        "answer (A) or after it (B, as the REST layer does); 'compact_ended': ended jobs "
        "kept as their JobState (A) or as an EndedJob (B)",
    )
    parser.add_argument(
        "--archive",
        choices=["after", "settled", "before"],
        default="settled",
        help="after: as the REST layer, the archive queued after the answer and written "
        "by its thread when it will (its CPU only in cpu_process); settled (default): "
        "the same, waited for after each job (its CPU in cpu_broker); before: written "
        "in the broker's thread before the answer",
    )
    args = parser.parse_args()

    from jupyter_qsecure.config import QSecure
    from jupyter_qsecure.jobs.canonical import circuit_hash_of_encoded
    from jupyter_qsecure.jobs.client import encode_circuit
    from jupyter_qsecure.jobs.ended import encode_record
    from jupyter_qsecure.jobs.local_executor import LocalExecutor
    from jupyter_qsecure.jobs.parse_pool import ParsePool
    from jupyter_qsecure.jobs.policy import Policy, PolicyEngine
    from jupyter_qsecure.jobs.result import Expected, result_from_record
    from jupyter_qsecure.jobs.service import JobService
    from jupyter_qsecure.jobs.wiring import job_signer
    from jupyter_qsecure.ledger import Ledger
    from jupyter_qsecure.signing.signers import KeyRing
    from jupyter_qsecure.testing.circuits import ghz
    from jupyter_qsecure.testing.openbao import dev_openbao

    sys.path.insert(0, str(Path(__file__).parent))
    from qsubmit_bench import POLICY  # the benchmark's permissive policy

    with tempfile.TemporaryDirectory() as tmp, dev_openbao() as bao:
        bao.enable_transit()
        data = Path(tmp)
        (data / "policy.toml").write_text(POLICY)
        settings = QSecure(
            data_dir=str(data),
            vault_addr=bao.addr,
            vault_token=bao.root_token,
            environment="dev",
        )
        signer = job_signer(settings, batching=True)
        ledger = Ledger.open(settings=settings)
        executor = LocalExecutor(max_workers=2)
        parse_pool = ParsePool(1)
        identity = {"user": "alice", "kernel_id": "k1", "accessor": "a1", "environment": "dev"}
        service = JobService(
            identify=lambda token: identity,
            engine=PolicyEngine(Policy.load(str(data / "policy.toml"), "dev")),
            signer=signer,
            ledger=ledger,
            executor=executor,
            environment="dev",
            archive_dir=data / "jobs",
            parser=parse_pool,
        )
        keyring = KeyRing(signer.public_keys())
        wrap(parse_pool, "parse", "parse")
        wrap(service.engine, "decide", "policy")
        wrap(getattr(signer, "inner", signer), "sign_many", "transit")
        wrap(ledger, "append_many", "ledger_append")
        wrap_cm(ledger.store, "write", "ledger_commit")
        wrap(executor, "submit", "release")
        # The archive: written in the broker's thread before the answer (--archive before),
        # or, as the REST layer does it, queued after the answer and written in the
        # archive's thread (``archive_after``; see --archive).
        archive_after = args.archive != "before"
        settle: Callable[[], object] = service.flush_archive
        if args.archive == "after":
            settle = lambda: None  # noqa: E731
        submit_options = {"archive_after": archive_after}
        from jupyter_qsecure.jobs.archive import JobArchive

        wrap(JobArchive, "put_many", "archive")  # every archive write goes through it

        qc = ghz(5)
        rows: list[dict[str, float]] = []
        try:
            for i in range(args.warmup + args.runs):
                if args.ab == "archive_after":  # the archive before or after the answer
                    archive_after = i % 2 == 1
                    submit_options = {"archive_after": archive_after}
                elif args.ab:  # interleaved job by job: both see the same machine
                    setattr(service, args.ab, i % 2 == 1)
                MARKS.clear()
                t0 = time.perf_counter()
                mark("kernel_encode:start")
                item = encode_circuit(qc)
                mark("kernel_encode:end")
                mark("kernel_hash:start")
                local_hash = circuit_hash_of_encoded(qc, item["data"])
                mark("kernel_hash:end")
                request = {
                    "shots": args.shots,
                    "seed": 1000 + i,
                    "backend": "aer_simulator",
                    "method": None,
                    "noise": None,
                    "tags": [],
                    "request_id": uuid.uuid4().hex,
                }
                body = {**request, "circuits": [item], "bind": None, "wait": True}
                if i == args.warmup:
                    children0 = _children_cpu()
                    process0 = time.process_time()
                cpu0 = time.process_time()
                mark("broker:start")
                state = service.submit("token", body, wait=True, **submit_options)
                mark("broker:end")
                record = state.record()  # the answer, encoded as the REST layer does
                answer = encode_record(record)
                if archive_after:  # as the REST layer: archived, kept as the bytes answered
                    service.archive(state, record)
                    service.keep_ended(state, answer)
                handle = state.handle
                verify0 = time.thread_time()
                mark("kernel_verify:start")
                result_from_record(
                    record, keyring, [Expected("qpy", local_hash, "qc")], request=request
                )
                mark("kernel_verify:end")
                verify_cpu = time.thread_time() - verify0
                settle()  # the archive written after the answer, meanwhile
                cpu_broker = (time.process_time() - cpu0 - verify_cpu) * 1000
                row = phases(MARKS, t0)
                row["aer_worker"] = (handle.finished_at - handle.started_at) * 1000
                row["job_queue"] = state.timings.get("queue", 0.0)
                row["total"] = (time.perf_counter() - t0) * 1000
                row["cpu_broker"] = cpu_broker
                row["?b"] = float(bool(args.ab) and i % 2 == 1)
                if i >= args.warmup:
                    rows.append(row)
            service.flush_archive()
            cpu_process = (time.process_time() - process0) * 1000 / len(rows)
            cpu_children = (_children_cpu() - children0) * 1000 / len(rows)
        finally:
            service.close()
            ledger.close()

    order = [
        "total",
        "kernel_encode",
        "kernel_hash",
        "broker",
        "parse",
        "policy",
        "release",
        "aer_worker",
        "job_queue",
        "transit",
        "ledger_append",
        "ledger_commit",
        "archive",
        "kernel_verify",
        "cpu_broker",
    ]
    print(f"one 5-qubit GHZ job, {args.shots} shots, {len(rows)} runs: ms (median / p90)")
    halves = [[r for r in rows if not r["?b"]], [r for r in rows if r["?b"]]]
    if args.ab:
        print(f"  (A: {args.ab}=False, {len(halves[0])} jobs | B: True, {len(halves[1])} jobs)")
    for name in order:
        cells = []
        for half in halves if args.ab else [rows]:
            values = sorted(r.get(name, 0.0) for r in half)
            p90 = values[int(0.9 * (len(values) - 1))]
            cells.append(f"{statistics.median(values):8.3f} {p90:8.3f}")
        print(f"  {name:16s} " + "  |".join(cells))
    print(f"  {'cpu_process':16s} {cpu_process:8.3f} (mean per job, the kernel's part included)")
    print(f"  {'cpu_children':16s} {cpu_children:8.3f} (mean per job)")
    counts = {k[1:]: statistics.median(r.get(k, 0) for r in rows) for k in rows[0] if k[0] == "#"}
    print("  per job (median count):", ", ".join(f"{k} {v:g}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
