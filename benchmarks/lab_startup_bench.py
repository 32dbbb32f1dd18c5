"""JupyterLab start-up and notebook-open time with the jupyter-qsecure extensions against
without them (issue 16's benchmark; target: at most 5 % slower).

Each run starts JupyterLab with ``ui-tests/jupyter_server_test_config.py`` (the UI
tests' server: this checkout's build of the lab extension, the server extension on its
defaults with a throwaway ``bao server -dev``) or with both extensions off
(``QSECURE_UI_EXTENSION=off``: the server extension disabled, the lab extension not on
the path and disabled in page_config, as ``jupyter labextension disable`` does), then
drives Debian's Chromium with ``benchmarks/lab_startup_page.js`` (a fresh profile per
run): navigation to an idle launcher, then opening the largest notebook of the corpus,
copied into a temporary root at run time. The sides alternate, ``--rounds`` times each,
and the medians are compared.

``--open-rounds N`` (N > 1) then closes the notebook (its kernel shut down first) and
opens it N - 1 more times in the same page: the first open of a run also loads the
notebook's code chunks, the repeats measure only what happens on every open, with N - 1
samples per run instead of one (less noise on a shared machine; informative: the
target is checked on the first open, as the issue defines it).

Both sides open the notebook with the kernel its metadata names (the corpus notebook's
``python3``): the qsecure kernel is the default only for new notebooks. The kernel is
started after the notebook is shown, so it is not in the open time; the page reports
which kernels started.

    python benchmarks/lab_startup_bench.py [--rounds 3] [--open-rounds 1] [--corpus DIR]

Needs the UI tests' packages (``cd ui-tests && jlpm install``) and the built extension.
The machine may be shared: run it more than once and look at the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONFIG = REPO / "ui-tests" / "jupyter_server_test_config.py"
PAGE = HERE / "lab_startup_page.js"
DEFAULT_CORPUS = Path("/work/shared/corpus/notebooks")
READY = "is running at:"
SERVER_TIMEOUT = 180.0
TARGET = 1.05


def largest_notebook(corpus: Path) -> Path:
    notebooks = sorted(corpus.glob("*.ipynb"), key=lambda p: p.stat().st_size, reverse=True)
    if not notebooks:
        raise SystemExit(f"no .ipynb in {corpus}: pass --corpus DIR")
    return notebooks[0]


def free_port() -> int:
    sys.path[:0] = [str(REPO)]
    from jupyter_qsecure.testing.ports import free_loopback_port

    return free_loopback_port()


class Lab:
    """JupyterLab on the UI tests' configuration; ``ready_s``: spawn to "running at"."""

    def __init__(self, enabled: bool, root: Path, scratch: Path) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "QSECURE_UI_EXTENSION": "on" if enabled else "off",
            "QSECURE_UI_ROOT": str(root),
            "QSECURE_UI_SCRATCH": str(scratch),
            "QSECURE_UI_PORT": str(self.port),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO), str(REPO / "server_ext"), os.environ.get("PYTHONPATH")])
            ),
        }
        start = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--config", str(CONFIG)],
            cwd=CONFIG.parent,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._tail: list[str] = []
        threading.Thread(target=self._follow, daemon=True).start()
        deadline = start + SERVER_TIMEOUT
        while True:  # event driven: each server log line, or its exit
            try:
                line = self._lines.get(timeout=max(0.1, deadline - time.perf_counter()))
            except queue.Empty:
                self.stop()
                raise SystemExit("JupyterLab did not start:\n" + "".join(self._tail)) from None
            if line is None:
                raise SystemExit("JupyterLab exited:\n" + "".join(self._tail))
            if READY in line:
                break
        self.ready_s = time.perf_counter() - start
        self.url = f"http://127.0.0.1:{self.port}"

    def _follow(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._tail = (self._tail + [line])[-40:]
            self._lines.put(line)
        self._lines.put(None)

    def stop(self) -> None:
        if self.process.poll() is None:
            # The server alone: it stops its kernels and its test OpenBao and removes its
            # temporary folders; the whole group only if it does not finish.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def measure(enabled: bool, root: Path, notebook: str, open_rounds: int) -> dict[str, Any]:
    lab = Lab(enabled, root, root.parent)
    try:
        done = subprocess.run(
            ["node", str(PAGE), lab.url, notebook, str(open_rounds)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"the browser run failed:\n{done.stderr}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if result["extension"] is not enabled:
            raise SystemExit(
                f"the page {'lacks' if enabled else 'has'} the jupyter-qsecure plugins: "
                "the comparison would be wrong"
            )
    finally:
        lab.stop()
    return {
        "server_s": lab.ready_s,
        "startup_ms": result["startup_ms"],
        "open_ms": result["open_ms"],
        "reopen_ms": result.get("reopen_ms", []),
        "kernels": result.get("kernels", []),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side (alternating)")
    parser.add_argument(
        "--open-rounds",
        type=int,
        default=1,
        help="opens of the notebook per run (the repeats are reported apart from the first)",
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    if args.rounds < 1 or args.open_rounds < 1:
        parser.error("--rounds and --open-rounds need at least 1")
    if not (REPO / "ui-tests" / "node_modules" / "@playwright" / "test").is_dir():
        raise SystemExit("run `cd ui-tests && jlpm install` first (the UI tests' Playwright)")

    source = largest_notebook(args.corpus)
    results: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="qsecure-labbench-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        shutil.copy(source, root / source.name)
        print(f"notebook: {source.name} ({source.stat().st_size / 1e6:.2f} MB)")
        for i in range(args.rounds):
            order = (False, True) if i % 2 == 0 else (True, False)
            for enabled in order:
                run = measure(enabled, root, source.name, args.open_rounds)
                results[enabled].append(run)
                side = "with   " if enabled else "without"
                reopen = ""
                if run["reopen_ms"]:
                    reopen = (
                        f", reopened {'/'.join(f'{ms:.0f}' for ms in run['reopen_ms'])} ms"
                        f" (kernels {', '.join(sorted(set(map(str, run['kernels']))))})"
                    )
                print(
                    f"  round {i + 1} {side}: server ready {run['server_s']:.2f} s, "
                    f"launcher idle {run['startup_ms']:.0f} ms, notebook open {run['open_ms']:.0f} ms"
                    + reopen
                )

    print(f"medians of {args.rounds} runs per side (same Chromium, fresh profile each run):")
    verdict = 0
    for key, label, unit in (
        ("startup_ms", "start-up to an idle launcher", "ms"),
        ("open_ms", "notebook open", "ms"),
        ("server_s", "server ready (info: includes the test OpenBao)", "s"),
    ):
        with_ = statistics.median(r[key] for r in results[True])
        without = statistics.median(r[key] for r in results[False])
        ratio = with_ / without
        target = "" if key == "server_s" else f"  (target <= {TARGET:.2f}x)"
        print(
            f"  {label}: without {without:.2f} {unit}, with {with_:.2f} {unit}, ratio {ratio:.3f}x{target}"
        )
        if key != "server_s" and ratio > TARGET:
            verdict = 1
    if args.open_rounds > 1:
        with_ = statistics.median(ms for r in results[True] for ms in r["reopen_ms"])
        without = statistics.median(ms for r in results[False] for ms in r["reopen_ms"])
        count = args.rounds * (args.open_rounds - 1)
        print(
            f"  notebook reopened (info, median of {count} per side): without {without:.2f} ms, "
            f"with {with_:.2f} ms, ratio {with_ / without:.3f}x"
        )
    return verdict


if __name__ == "__main__":
    sys.exit(main())
