"""CLI start-up benchmark: wall time of short ``jupyter qsecure`` commands.

Runs each command N times as a fresh process, as a user types it (``jupyter qsecure
...`` through jupyter_core's dispatcher, with this interpreter), and prints the min and
median wall time next to the anchor ``python -c pass`` with the same interpreter:

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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

TARGET_SECONDS = 0.3


def wall_times(argv: Sequence[str], runs: int, env: dict[str, str]) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(
                f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-500:]}"
            )
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per command (default 10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qsecure-cli-bench-") as folder:
        root = Path(folder)
        env = dict(os.environ)
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
        print(f"{'command':<30} {'min s':>8} {'median s':>9}")
        slow = []
        for label, argv in commands.items():
            times = wall_times(argv, args.runs, env)
            best, median = min(times), statistics.median(times)
            print(f"{label:<30} {best:>8.3f} {median:>9.3f}")
            if "anchor" not in label and median > TARGET_SECONDS:
                slow.append(label)
    if slow:
        print(f"over the {TARGET_SECONDS} s target (median): {', '.join(slow)}")
        return 1
    print(f"all under the {TARGET_SECONDS} s target (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
