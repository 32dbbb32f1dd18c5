"""CLI start-up benchmark: wall time of short ``jupyter qsecure`` commands.

Runs each command N times as a fresh process, as a user types it (``jupyter qsecure
...`` through jupyter_core's dispatcher, with this interpreter), and prints the min and
median wall time next to the anchor ``python -c pass`` with the same interpreter, and
the same for CPU time (user + system of the child processes), which a busy shared
machine disturbs less than wall time:

  * ``jupyter qsecure --version``
  * ``jupyter qsecure audit note ...`` (a real append to a fresh SQLite ledger in a
    temporary folder, so the first run creates it and the others append)

Target (issue 15): both under 0.3 s. Find what a command imports with
``python -X importtime -m jupyter_qsecure.cli.main --version 2> imports.txt``.

Usage: python benchmarks/cli_startup_bench.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

TARGET_SECONDS = 0.3


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_times(
    argv: Sequence[str], runs: int, env: dict[str, str]
) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds) of each of ``runs`` runs of ``argv``."""
    walls, cpus = [], []
    subprocess.run(argv, env=env, capture_output=True, check=False)  # warm-up: caches, .pyc
    for _ in range(runs):
        cpu_before = _children_cpu()
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, check=False)
        walls.append(time.perf_counter() - started)
        cpus.append(_children_cpu() - cpu_before)
        if done.returncode != 0:
            raise SystemExit(
                f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-500:]}"
            )
    return walls, cpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per command (default 10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qsecure-cli-bench-") as folder:
        root = Path(folder)
        env = dict(os.environ)
        # An installed package has its .pyc files; without them every run recompiles.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(
            QSECURE_DATA_DIR=str(root / "data"),
            QSECURE_LEDGER=f"sqlite:///{root / 'audit.db'}",
            JUPYTER_CONFIG_DIR=str(root / "config"),
        )
        qsecure = [sys.executable, "-m", "jupyter", "qsecure"]
        commands = {
            "python -c pass (anchor)": [sys.executable, "-c", "pass"],
            "jupyter qsecure --version": [*qsecure, "--version"],
            "jupyter qsecure audit note": [*qsecure, "audit", "note", "benchmark", "remark"],
        }
        print(f"{args.runs} runs each, {sys.executable}")
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        print(f"{'':<30} {'---- wall s ----':>19} {'---- CPU s -----':>19}")
        print(f"{'command':<30} {'min':>9} {'median':>9} {'min':>9} {'median':>9}")
        slow = []
        for label, argv in commands.items():
            walls, cpus = run_times(argv, args.runs, env)
            median = statistics.median(walls)
            print(
                f"{label:<30} {min(walls):>9.3f} {median:>9.3f} "
                f"{min(cpus):>9.3f} {statistics.median(cpus):>9.3f}"
            )
            if "anchor" not in label and median > TARGET_SECONDS:
                slow.append(label)
    if slow:
        print(f"over the {TARGET_SECONDS} s target (median): {', '.join(slow)}")
        return 1
    print(f"all under the {TARGET_SECONDS} s target (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
