"""Promotion vs ``jupyter nbconvert --to script`` on the largest corpus notebook.

Anchor: ``jupyter nbconvert --to script NOTEBOOK`` (export only: no checks, no pins,
no lock, no signature). Ours: ``jupyter qsecure promote NOTEBOOK -o DIR``: digest,
approvals, secret scan, export, pins from the environment, a hashed lock from uv, SLSA
provenance signed, ledger entry. Both as whole commands (a new process each, as a user
or a deploy pipeline runs them), on the same file, in one run; the lock is resolved
from a warm uv cache (one promotion before the timed ones). Target: ours at most 3x.

The corpus notebook is copied first; cells that cannot be promoted as they are (magics
without a plain-Python meaning, imports of packages not installed here) are tagged
``skip-promote`` in the copy, which both tools then convert. The copy is approved (not
timed) by a throwaway reviewer in a throwaway data dir and ledger.

    python benchmarks/promote_bench.py [--corpus DIR] [--runs N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "notebooks"


def tag_unpromotable(nb: dict, out: Path) -> int:
    """Tag the cells ``promote`` would refuse; returns how many."""
    from jupyter_qsecure.promote.translate import CellRefused, translate_cells

    tagged = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        refuse = False
        try:
            translation = translate_cells([{"cell_type": "code", "source": source, "tags": []}])
            refuse = any(importlib.util.find_spec(m) is None for m in translation.imports)
        except CellRefused:
            refuse = True
        except SyntaxError:
            refuse = True
        if refuse:
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if "skip-promote" not in tags:
                tags.append("skip-promote")
            tagged += 1
    out.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return tagged


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])} failed:\n{done.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    source = max(args.corpus.glob("*.ipynb"), key=lambda p: p.stat().st_size)
    work = Path(tempfile.mkdtemp(prefix="promote-bench-"))
    try:
        nb_path = work / source.name
        tagged = tag_unpromotable(json.loads(source.read_text(encoding="utf-8")), nb_path)
        env = dict(os.environ)
        env.update(
            QSECURE_DATA_DIR=str(work / "data"),
            QSECURE_LEDGER=f"sqlite:///{work / 'ledger.db'}",
            JUPYTER_CONFIG_DIR=str(work / "config"),
            JUPYTERHUB_USER="bench-reviewer",
        )
        env.pop("JPY_PARENT_PID", None)
        from jupyter_qsecure.testing.wheels import build_wheel

        wheels = work / "wheels"
        wheels.mkdir()
        build_wheel(wheels)  # jupyter-qsecure for the resolver (as if on an index)
        qsecure = [sys.executable, "-m", "jupyter_qsecure.cli.main"]
        timed([*qsecure, "review", "approve", str(nb_path)], env, work)

        def promote(n: int) -> float:
            out = work / f"promoted-{n}"
            return timed(
                [*qsecure, "promote", str(nb_path), "-o", str(out), "--find-links", str(wheels)],
                env,
                work,
            )

        def nbconvert(n: int) -> float:
            return timed(
                [
                    sys.executable,
                    "-m",
                    "jupyter",
                    "nbconvert",
                    "--to",
                    "script",
                    str(nb_path),
                    "--output",
                    f"nbconvert-{n}",
                ],
                env,
                work,
            )

        promote(0)  # warm: uv's cache, the OS file cache
        nbconvert(0)
        ours, anchor = [], []
        for n in range(1, args.runs + 1):  # interleaved: both see the same machine load
            anchor.append(nbconvert(n))
            ours.append(promote(n))

        from jupyter_qsecure.config import load_settings
        from jupyter_qsecure.promote.promote import prepare_promotion

        os.environ.update(
            {
                k: env[k]
                for k in (
                    "QSECURE_DATA_DIR",
                    "QSECURE_LEDGER",
                    "JUPYTER_CONFIG_DIR",
                    "JUPYTERHUB_USER",
                )
            }
        )
        began = time.perf_counter()
        prepared = prepare_promotion(nb_path, settings=load_settings(), find_links=[str(wheels)])
        in_process = time.perf_counter() - began
        stages = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in prepared.timings.items())

        cells = len(json.loads(nb_path.read_text())["cells"])
        pins = len(prepared.statement["predicate"]["buildDefinition"]["resolvedDependencies"])
        a, o = statistics.median(anchor), statistics.median(ours)
        print(
            f"notebook: {source.name} ({source.stat().st_size / 1e6:.1f} MB, {cells} cells, "
            f"{tagged} tagged skip-promote in the copy), {pins} pinned distributions"
        )
        print(
            f"anchor  jupyter nbconvert --to script: median {a:.2f} s  runs {[round(x, 2) for x in anchor]}"
        )
        print(
            f"ours    jupyter qsecure promote:       median {o:.2f} s  runs {[round(x, 2) for x in ours]}"
        )
        print(f"ratio   {o / a:.2f}x (target <= 3x)")
        print(f"in-process promotion (imports warm): {in_process:.2f} s: {stages}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
