"""Secret scanning on the shared corpus: jupyter-qsecure vs detect-secrets vs secretlint.

One run, same files for every tool, wall time and number of findings (on this
corpus every finding is a false alarm). Ours runs twice: with an empty data dir,
and with a fingerprint registry of ``--registry`` injected values (default 50,
lengths 16 to 2,000), which every file is tokenised and checked against. Then the
latency the save gate adds for a ~3 MB notebook: a cold scan (fresh cache) and a
re-scan after one cell changed, through the scanner API the gate calls, also with
the registry.

    .venv/bin/python benchmarks/scan_corpus.py [--corpus DIR] [--skip-detect-secrets]

secretlint is installed with npm into a cache folder on first use
(``npm install --prefix DIR secretlint @secretlint/secretlint-rule-preset-recommend``);
it is skipped with a message if npm is not available.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "notebooks"
VENV_BIN = Path(sys.executable).parent
SECRETLINT_DIR = Path(tempfile.gettempdir()) / "qsecure-bench-secretlint"


def _run(cmd: list[str], cwd: Path | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, proc


def _run_env(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    return time.perf_counter() - started, proc


def registry_values(count: int) -> dict[str, str]:
    """``count`` random values of 16 to 2,000 characters (as KV secrets would be); one in
    five is standard base64 with '=' padding, which takes the tokeniser's longer way."""
    import base64
    import secrets

    lengths = [16, 24, 32, 40, 64, 128, 300, 2000]
    values = {}
    for i in range(count):
        n = lengths[i % len(lengths)]
        if i % 5 == 4:
            values[f"secret{i}"] = base64.b64encode(secrets.token_bytes(n))[: n - 1].decode() + "="
        else:
            values[f"secret{i}"] = secrets.token_urlsafe(n)[:n]
    return values


def make_data_dir(count: int) -> Path:
    """A data dir with a local fingerprint key and, if ``count``, a registry of that many."""
    from jupyter_qsecure.config import QSecure
    from jupyter_qsecure.scan.fingerprints import fingerprinter_from_settings
    from jupyter_qsecure.vault.injected import InjectedRegistry

    folder = Path(tempfile.mkdtemp(prefix="qsecure-bench-"))
    settings = QSecure(data_dir=str(folder))
    key = fingerprinter_from_settings(settings, create=True)
    if count:
        InjectedRegistry.for_settings(settings, key).record(registry_values(count), {})
    return folder


def bench_ours(files: list[str], registered: int = 0) -> tuple[float, int | None, str]:
    exe = shutil.which("jupyter-qsecure", path=str(VENV_BIN)) or "jupyter-qsecure"
    data_dir = make_data_dir(registered)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    env["QSECURE_DATA_DIR"] = str(data_dir)
    try:
        seconds, proc = _run_env([exe, "scan", "--format", "json", *files], env)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    if proc.returncode not in (0, 1):
        return seconds, None, f"failed: {proc.stderr.strip()[:200]}"
    how = "jupyter-qsecure scan (CLI process)"
    if registered:
        how += f", registry of {registered} fingerprints"
    return seconds, len(json.loads(proc.stdout)["findings"]), how


def bench_detect_secrets(files: list[str], corpus: Path) -> tuple[float, int | None, str]:
    exe = shutil.which("detect-secrets", path=str(VENV_BIN))
    if exe is None:
        return 0.0, None, "skipped: detect-secrets not installed"
    names = [os.path.relpath(f, corpus) for f in files]
    seconds, proc = _run([exe, "scan", "--all-files", *names], cwd=corpus)
    if proc.returncode != 0:
        return seconds, None, f"failed: {proc.stderr.strip()[:200]}"
    results = json.loads(proc.stdout)["results"]
    return seconds, sum(len(v) for v in results.values()), "detect-secrets scan (CLI process)"


def _secretlint_bin() -> tuple[Path | None, str]:
    binary = SECRETLINT_DIR / "node_modules" / ".bin" / "secretlint"
    if binary.exists():
        return binary, ""
    npm = shutil.which("npm")
    if npm is None:
        return None, "skipped: npm not available"
    SECRETLINT_DIR.mkdir(parents=True, exist_ok=True)
    print(f"installing secretlint into {SECRETLINT_DIR} …", file=sys.stderr)
    proc = subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(SECRETLINT_DIR),
            "--no-audit",
            "--no-fund",
            "secretlint",
            "@secretlint/secretlint-rule-preset-recommend",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not binary.exists():
        return None, f"skipped: npm install failed: {proc.stderr.strip()[-200:]}"
    return binary, ""


def bench_secretlint(files: list[str]) -> tuple[float, int | None, str]:
    binary, why = _secretlint_bin()
    if binary is None:
        return 0.0, None, why
    rc = SECRETLINT_DIR / ".secretlintrc.json"
    rc.write_text(json.dumps({"rules": [{"id": "@secretlint/secretlint-rule-preset-recommend"}]}))
    # stdout goes to a file: node truncates a large piped stdout when secretlint exits.
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        started = time.perf_counter()
        proc = subprocess.run(
            [str(binary), "--secretlintrc", str(rc), "--format", "json", "--no-color", *files],
            cwd=SECRETLINT_DIR,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        out.seek(0)
        raw = out.read()
    try:
        results = json.loads(raw or "[]")
    except json.JSONDecodeError:
        return seconds, None, f"failed: {(proc.stderr or raw).strip()[:200]}"
    count = sum(len(r.get("messages", [])) for r in results)
    return seconds, count, "secretlint + preset-recommend (CLI process)"


def bench_latency(notebook: Path, registered: int = 0) -> dict[str, float]:
    from jupyter_qsecure.scan import Scanner
    from jupyter_qsecure.scan.fingerprints import Fingerprinter, FingerprintIndex

    index = FingerprintIndex.of_values(Fingerprinter.ephemeral(), registry_values(registered))
    injected = index if registered else None
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    Scanner().scan_notebook({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    colds = []
    for _ in range(5):
        scanner = Scanner()
        started = time.perf_counter()
        scanner.scan_notebook(nb, injected=injected)
        colds.append(time.perf_counter() - started)
        index._cache.clear()  # noqa: SLF001 (a cold scan for the registry too)
    scanner = Scanner()
    scanner.scan_notebook(nb, injected=injected)
    code_cells = [i for i, c in enumerate(nb["cells"]) if c.get("cell_type") == "code"]
    warms = []
    for n in range(20):
        changed = copy.deepcopy(nb) if n == 0 else changed  # noqa: F821
        cell = changed["cells"][code_cells[n % len(code_cells)]]
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        cell["source"] = source + f"\n# edit {n}"
        before = scanner.stats.units_scanned
        started = time.perf_counter()
        scanner.scan_notebook(changed, injected=injected)
        warms.append(time.perf_counter() - started)
        assert scanner.stats.units_scanned - before == 1, "re-scan touched more than one text"
    return {
        "cold_ms": statistics.median(colds) * 1000,
        "warm_ms": statistics.median(warms) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--skip-detect-secrets", action="store_true", help="it takes minutes")
    parser.add_argument(
        "--registry", type=int, default=50, metavar="N", help="fingerprints in the registry run"
    )
    args = parser.parse_args()
    corpus: Path = args.corpus.resolve()
    if not corpus.is_dir():
        print(f"corpus folder not found: {corpus}", file=sys.stderr)
        return 2
    files = sorted(str(p) for p in corpus.glob("*.ipynb"))
    size_mb = sum(os.path.getsize(f) for f in files) / 1e6
    print(f"corpus: {len(files)} notebooks, {size_mb:.1f} MB, {os.cpu_count()} CPUs\n")

    rows = [("jupyter-qsecure", *bench_ours(files))]
    if args.registry:
        rows.append(("  + registry", *bench_ours(files, args.registry)))
    if args.skip_detect_secrets:
        rows.append(("detect-secrets", 0.0, None, "skipped (--skip-detect-secrets)"))
    else:
        rows.append(("detect-secrets", *bench_detect_secrets(files, corpus)))
    rows.append(("secretlint", *bench_secretlint(files)))

    ours = rows[0][1]
    print(f"{'tool':<17}{'wall s':>9}{'findings':>10}{'x ours':>9}   how")
    print("-" * 78)
    for name, seconds, count, how in rows:
        ratio = f"{seconds / ours:8.1f}x" if count is not None and ours else "       -"
        shown = f"{seconds:9.2f}" if count is not None else "        -"
        print(
            f"{name:<17}{shown}{(str(count) if count is not None else '-'):>10}{ratio:>9}   {how}"
        )
    print("(findings on this corpus are all false alarms; 'x ours' = their time / ours)\n")

    big = max(files, key=os.path.getsize)
    print(
        f"save-gate scan latency, {Path(big).name} ({os.path.getsize(big) / 1e6:.1f} MB), "
        "Scanner.scan_notebook on the parsed notebook, median:"
    )
    for registered in sorted({0, args.registry}):
        lat = bench_latency(Path(big), registered)
        label = f" (registry of {registered})" if registered else ""
        print(f"  cold (empty cache){label:<17}{lat['cold_ms']:8.1f} ms   (target < 100 ms)")
        print(f"  after a one-cell change{label:<12}{lat['warm_ms']:8.1f} ms   (target < 10 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
