"""The broker's job store and the garbage collector: ended jobs as JobState (A) or EndedJob (B).

Issue 12 (session 10): the broker keeps up to ``max_jobs_kept`` (10,000) ended jobs for
status queries; every object they hold that the GC tracks is walked on each full
collection, a pause of the whole server. This probe, in one process, A/B interleaved:

1. runs real jobs (in process: inline Aer, a file signer, a SQLite ledger) with
   ``JobService.compact_ended`` off (A: the store keeps the settled JobState) and on (B:
   an EndedJob), and counts the GC-tracked objects the store gains per job;
2. fills a store of ``--kept`` ended jobs (clones of a real one, each with its own
   objects, as real jobs have) either way, and reports the tracked objects it holds and
   the time of a full ``gc.collect()`` with it (median of ``--collects``; wall-clock, so
   compare A with B, not with other runs);
3. times the encoding :meth:`JobService.keep_ended` does when the REST layer does not pass
   the bytes it answered with (CPU, median over the real jobs' records).

Usage: python benchmarks/job_store_gc.py [--kept 10000] [--jobs 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import statistics
import tempfile
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kept", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=40, help="real jobs per half and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--collects", type=int, default=7)
    args = parser.parse_args()

    from jupyter_qsecure.jobs.client import encode_circuit
    from jupyter_qsecure.jobs.ended import EndedJob, encode_record
    from jupyter_qsecure.jobs.policy import DEFAULT_POLICY_PATH, Policy
    from jupyter_qsecure.jobs.service import JobService, JobState
    from jupyter_qsecure.testing.circuits import ghz
    from jupyter_qsecure.testing.job_service import inline_job_service

    shipped = DEFAULT_POLICY_PATH.read_text()
    policy = Policy.from_bytes(
        shipped.replace("jobs_per_minute = 30\n", "jobs_per_minute = 100000000\n").encode(), "dev"
    )
    circuit = encode_circuit(ghz(5))

    def submit(service: JobService, seed: int) -> JobState:
        body: dict[str, Any] = {
            "circuits": [circuit],
            "shots": 1024,
            "seed": seed,
            "request_id": uuid.uuid4().hex,
        }
        return service.submit("kernel-token", body, wait=True)

    with tempfile.TemporaryDirectory() as tmp, inline_job_service(Path(tmp), policy) as service:
        service._max_jobs = 1_000_000
        for seed in range(10):  # warm up: caches, the parse worker, Aer
            submit(service, seed)
        per_job: dict[bool, list[float]] = {False: [], True: []}
        seed = 100
        template: JobState | None = None
        for _ in range(args.rounds):
            for compact in (False, True):
                service.compact_ended = compact
                gc.collect()
                before = len(gc.get_objects())
                for _ in range(args.jobs):
                    state = submit(service, seed)
                    seed += 1
                    template = template or state
                gc.collect()
                per_job[compact].append((len(gc.get_objects()) - before) / args.jobs)
        assert template is not None and template.status == "completed"
        records = [s.record() for s in service._jobs.values() if isinstance(s, JobState)]
        encode_cpu = []
        for record in records:
            began = time.process_time()
            for _ in range(20):
                encode_record(record)
            encode_cpu.append((time.process_time() - began) / 20 * 1e6)

        def clone(job_id: str) -> JobState:
            values = {
                f.name: copy.deepcopy(getattr(template, f.name))
                for f in dataclasses.fields(JobState)
                if f.name not in ("approved", "finished", "wake", "handle", "place", "job_id")
            }
            state = JobState(job_id=job_id, **values)
            state.handle = template.handle._replace(job_id=job_id)
            return state

        def ended(job_id: str) -> EndedJob:
            return EndedJob.of(clone(job_id))

        sizes: dict[bool, list[float]] = {False: [], True: []}
        pauses: dict[bool, list[float]] = {False: [], True: []}
        baseline: list[float] = []
        for _ in range(args.rounds):
            gc.collect()
            empty = len(gc.get_objects())
            for _ in range(args.collects):
                began = time.perf_counter()
                gc.collect()
                baseline.append((time.perf_counter() - began) * 1000)
            for compact in (False, True):
                make = ended if compact else clone
                store: OrderedDict[str, Any] = OrderedDict()
                for _ in range(args.kept):
                    job_id = uuid.uuid4().hex
                    store[job_id] = make(job_id)
                gc.collect()
                sizes[compact].append((len(gc.get_objects()) - empty) / args.kept)
                for _ in range(args.collects):
                    began = time.perf_counter()
                    gc.collect()
                    pauses[compact].append((time.perf_counter() - began) * 1000)
                del store
                gc.collect()

    med = statistics.median
    print(f"GC-tracked objects gained per real ended job (in the store), {args.jobs} jobs x")
    print(f"  {args.rounds} rounds: A JobState {[round(v, 1) for v in per_job[False]]}")
    print(f"  B EndedJob {[round(v, 1) for v in per_job[True]]}")
    print(f"store of {args.kept} ended jobs: tracked objects per job")
    print(f"  A {[round(v, 2) for v in sizes[False]]}  B {[round(v, 2) for v in sizes[True]]}")
    print(f"full gc.collect() ms, median of {len(baseline)} (min):")
    print(f"  no store {med(baseline):8.2f} ({min(baseline):.2f})")
    print(f"  A        {med(pauses[False]):8.2f} ({min(pauses[False]):.2f})")
    print(f"  B        {med(pauses[True]):8.2f} ({min(pauses[True]):.2f})")
    print(
        f"encode_record of a job's record (keep_ended without the REST bytes): CPU us median "
        f"{med(encode_cpu):.1f} over {len(encode_cpu)} records, {len(encode_record(records[0]))} bytes"
    )
    print(f"  tracked objects in the whole process now: {len(gc.get_objects())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
