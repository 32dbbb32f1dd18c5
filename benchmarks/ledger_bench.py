"""Ledger benchmark: durable appends/s, verification of 1M entries, inclusion proofs.

Runs, in one process on the same disk:
  * ours, SQLite (WAL, synchronous=FULL), one caller (one fsync per append);
  * ours, SQLite, 8 threads appending at once (group commit: one fsync per batch);
  * the broker's shape: 4 threads each recording jobs (``append_many`` of a job's 3
    entries), with the jobs each commit (fsync) carried and the CPU time per job;
  * a naive hash-chained JSON Lines log with fsync per entry (the simplest durable log);
  * pymerkle 7 with its SQLite backend, appending one entry at a time;
then builds a 1,000,000-entry ledger, times `audit verify` on it (the library call and
the CLI), and times inclusion proofs (generation from the node table, and offline check).

Usage: python benchmarks/ledger_bench.py [--appends N] [--verify-entries N] [--skip-cli]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from jupyter_qsecure.ledger import Ledger, verify_inclusion_proof
from jupyter_qsecure.ledger.store.sqlite import SQLiteStore
from jupyter_qsecure.signing.signers import Ed25519FileSigner, MLDSA65FileSigner, Signer


def run_threads(work: Callable[[int], None], threads: int) -> float:
    """Wall seconds for ``threads`` threads running ``work(t)`` side by side."""
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - started


def body(i: int) -> dict[str, str]:
    return {"text": f"job {i} submitted by researcher-{i % 17} on aer_simulator"}


def ours_sequential(folder: Path, n: int) -> float:
    ledger = _ledger(folder / "seq.db", folder)
    started = time.perf_counter()
    for i in range(n):
        ledger.append("note", body(i))
    elapsed = time.perf_counter() - started
    assert ledger.verify().ok
    ledger.close()
    return n / elapsed


def ours_threads(folder: Path, n: int, threads: int = 8) -> float:
    ledger = _ledger(folder / "threads.db", folder)
    per = n // threads

    def work(t: int) -> None:
        for i in range(per):
            ledger.append("note", body(t * per + i))

    elapsed = run_threads(work, threads)
    assert ledger.size() == per * threads and ledger.verify().ok
    ledger.close()
    return per * threads / elapsed


def job_entries(i: int) -> list[tuple[str, dict[str, object]]]:
    """What the broker records for one waited job (as tests/ledger/test_append_cost.py)."""
    job_id = f"{i:032x}"
    hashes = [f"{i:064x}"]
    identity = {"user": "alice", "kernel_id": "k1", "accessor": "a1", "environment": "dev"}
    request = {"shots": 128, "seed": i, "backend": "aer_simulator", "tags": []}
    return [
        ("job.decided", {"job_id": job_id, "request_id": job_id, "circuit_hashes": hashes}),
        (
            "job.submitted",
            {
                "job_id": job_id,
                "identity": identity,
                "request": request,
                "circuit_hashes": hashes,
                "decision_id": job_id,
            },
        ),
        ("job.completed", {"job_id": job_id, "status": "completed", "transpiled_hashes": hashes}),
    ]


def ours_jobs(folder: Path, n: int, threads: int = 4) -> tuple[float, float, float]:
    """Jobs/s, jobs per commit (fsync) and CPU ms per job, ``threads`` broker threads."""
    ledger = _ledger(folder / "jobs.db", folder)
    per = n // threads

    def work(t: int) -> None:
        for i in range(t * per, (t + 1) * per):
            ledger.append_many(job_entries(i), correlation_id=f"{i:032x}")

    commits = ledger.commits
    cpu = time.process_time()
    elapsed = run_threads(work, threads)
    cpu = time.process_time() - cpu
    jobs = per * threads
    per_commit = jobs / (ledger.commits - commits)
    assert ledger.size() == 3 * jobs and ledger.verify().ok
    ledger.close()
    return jobs / elapsed, per_commit, cpu / jobs * 1000


def naive_jsonl(folder: Path, n: int) -> float:
    path = folder / "naive.jsonl"
    previous = b"\x00" * 32
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    started = time.perf_counter()
    for i in range(n):
        record = {"index": i, "prev": previous.hex(), "kind": "note", "body": body(i)}
        line = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        previous = hashlib.sha256(line).digest()
        os.write(fd, line)
        os.fsync(fd)
    elapsed = time.perf_counter() - started
    os.close(fd)
    return n / elapsed


def pymerkle_sqlite(folder: Path, n: int) -> float | None:
    try:
        from pymerkle import SqliteTree
    except ImportError:
        return None
    tree = SqliteTree(str(folder / "pymerkle.db"), algorithm="sha256")
    started = time.perf_counter()
    for i in range(n):
        tree.append_entry(json.dumps(body(i), sort_keys=True).encode())
    elapsed = time.perf_counter() - started
    tree.close()
    return n / elapsed


def _ledger(path: Path, folder: Path, *, every: int = 1000) -> Ledger:
    signers: list[Signer] = [
        Ed25519FileSigner(folder / "k.pem"),
        MLDSA65FileSigner(folder / "k.mldsa"),
    ]
    ledger = Ledger(SQLiteStore(path, create=True), signers=signers)
    ledger.checkpoint_policy.every_entries = every
    return ledger


def build_big(path: Path, folder: Path, n: int) -> Ledger:
    ledger = _ledger(path, folder, every=100_000)
    chunk = 20_000
    for start in range(0, n, chunk):
        ledger.append_many(("note", body(i)) for i in range(start, min(n, start + chunk)))
        ledger.checkpoint_if_due()
    ledger.checkpoint()
    return ledger


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--appends", type=int, default=4000)
    parser.add_argument("--verify-entries", type=int, default=1_000_000)
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args()
    n = args.appends
    with tempfile.TemporaryDirectory(
        prefix="qsecure-bench-", dir=os.environ.get("BENCH_DIR")
    ) as tmp:
        folder = Path(tmp)
        print(f"durable appends/s on SQLite, {n} entries each, same disk ({folder})")
        results = {
            "ours, 1 caller (fsync per append)": ours_sequential(folder, n),
            "ours, 8 threads (group commit)": ours_threads(folder, n),
            "naive hash-chained JSONL, fsync per entry": naive_jsonl(folder, n),
        }
        rate, per_commit, cpu_ms = ours_jobs(folder, n // 3)
        print(
            f"  broker shape, 4 threads recording jobs (3 entries each): {rate:,.0f} jobs/s, "
            f"{per_commit:.2f} jobs per commit (fsync), {cpu_ms:.3f} CPU-ms per job"
        )
        pm = pymerkle_sqlite(folder, min(n, 2000))
        if pm is not None:
            results["pymerkle 7 SqliteTree, one at a time"] = pm
        best_ours = max(v for k, v in results.items() if k.startswith("ours"))
        for name, rate in results.items():
            print(
                f"  {name:<45} {rate:>9,.0f} appends/s   ours-best/this = {best_ours / rate:5.2f}x"
            )

        total = args.verify_entries
        print(f"\nbuilding a {total:,}-entry ledger (append_many in 20k batches)...")
        started = time.perf_counter()
        big = build_big(folder / "big.db", folder, total)
        build_s = time.perf_counter() - started
        print(f"  built in {build_s:.1f} s ({total / build_s:,.0f} entries/s in batches)")
        started = time.perf_counter()
        report = big.verify()
        lib_s = time.perf_counter() - started
        assert report.ok, report.problems[:3]
        print(
            f"  verify (library): {lib_s:.2f} s for {report.entries:,} entries, "
            f"{report.checkpoints} checkpoints, {report.signatures} signatures"
        )
        if not args.skip_cli:
            keyring = folder / "keyring.json"
            keyring.write_text(big.keyring.to_json())
            env = dict(os.environ, QSECURE_DATA_DIR=str(folder / "cli-data"))
            cmd = [
                sys.executable,
                "-m",
                "jupyter_qsecure.cli.main",
                "audit",
                "verify",
                "--ledger",
                f"sqlite://{folder / 'big.db'}",
                "--keys",
                str(keyring),
            ]
            started = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            cli_s = time.perf_counter() - started
            print(
                f"  `jupyter qsecure audit verify` (process, incl. start-up): {cli_s:.2f} s "
                f"-> exit {out.returncode}: {out.stdout.strip() or out.stderr.strip()}"
            )

        rng = random.Random(7)
        indices = [rng.randrange(total) for _ in range(300)]
        checkpoint = big.checkpoints()[-1]
        gen, check = [], []
        for index in indices:
            t0 = time.perf_counter()
            proof = big.prove(index, checkpoint=checkpoint)
            t1 = time.perf_counter()
            assert verify_inclusion_proof(proof, big.keyring) == []
            t2 = time.perf_counter()
            gen.append((t1 - t0) * 1000)
            check.append((t2 - t1) * 1000)
        print(f"\ninclusion proofs in the {total:,}-entry tree (path length {len(proof.path)}):")
        print(f"  generate: p50 {statistics.median(gen):.3f} ms, p95 {sorted(gen)[284]:.3f} ms")
        print(
            f"  offline check (hashes + Ed25519 + ML-DSA-65): p50 {statistics.median(check):.3f} ms"
        )
        big.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
