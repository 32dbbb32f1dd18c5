"""Recall on planted secrets and false alarms on near misses, by syntax and notebook place.

The cases come from :mod:`jupyter_qsecure.testing.planted_context` (value kinds x syntaxes x
notebook places, generated at run time): each true secret must be reported with its
hash, each near miss (placeholder, public example, hash, UUID, version...) not at all.
With ``--carriers K`` every case is planted in one of K real notebooks of the shared
corpus (each checked clean first), in turn; otherwise in an empty notebook.

    .venv/bin/python benchmarks/planted_recall.py [--seed N] [--carriers K] [--corpus DIR]

:func:`measure` takes any ``notebook -> findings`` callable (findings need a
``hashed_secret``, the SHA-256 hex of the secret), so other scanners can be compared
on the same cases through an adapter.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from jupyter_qsecure.scan import Scanner
from jupyter_qsecure.testing import planted_context as P

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "notebooks"
Scan = Callable[[dict[str, Any]], Sequence[Any]]


def carriers_from(corpus: Path, count: int, scan: Scan) -> list[dict[str, Any]]:
    """``count`` corpus notebooks with code outputs, 20-300 KB, that ``scan`` finds clean."""
    chosen: list[dict[str, Any]] = []
    for path in sorted(corpus.glob("*.ipynb"), key=lambda p: p.stat().st_size):
        if len(chosen) == count:
            break
        if not 20_000 <= path.stat().st_size <= 300_000:
            continue
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not any(c.get("outputs") for c in nb.get("cells", [])):
            continue
        if scan(nb):
            raise SystemExit(f"carrier {path.name} is not clean: the corpus should scan clean")
        chosen.append(nb)
    return chosen


def planted_cases(seed: int, carriers: list[dict[str, Any]]) -> Iterator[P.Planted]:
    """Every case once; with carriers, case i goes into carrier ``i % len(carriers)``.

    The values are this module's and, when :mod:`jupyter_qsecure.testing.planted` is
    there, its provider formats (:func:`~.planted_context.provider_values`).
    """
    values = [*P.VALUES, *P.provider_values()]
    if not carriers:
        yield from P.cases(rng=random.Random(seed), values=values)
        return
    for k, carrier in enumerate(carriers):
        for i, case in enumerate(P.cases(rng=random.Random(seed), carrier=carrier, values=values)):
            if i % len(carriers) == k:
                yield case


def measure(scan: Scan, *, seed: int = 13, carriers: list[dict[str, Any]] | None = None) -> P.Score:
    return P.score(scan, planted_cases(seed, carriers or []))


def _rate(part: int, whole: int) -> str:
    return f"{part / whole:.3f}" if whole else "-"


def report(score: P.Score, seconds: float, label: str) -> None:
    print(
        f"{label}: recall {score.recall:.3f} ({score.found}/{score.secrets} secrets), "
        f"false alarms {score.false_alarm_rate:.3f} ({score.false_alarms}/{score.near_misses} "
        f"near misses), {seconds:.1f} s"
    )
    for axis, index in (("place", 2), ("syntax", 1), ("value", 0)):
        missed = Counter(n.split("/", 2)[index] for n in score.missed)
        alarms = Counter(n.split("/", 2)[index] for n in score.alarms)
        if missed:
            print(f"  missed by {axis}: {dict(missed.most_common(12))}")
        if alarms:
            print(f"  false alarms by {axis}: {dict(alarms.most_common(12))}")


def report_ours(corpus: Path | None, *, seed: int = 13, carriers: int = 8) -> P.Score:
    """Print jupyter-qsecure's recall on the planted set (for scan_corpus.py)."""
    scanner = Scanner()

    def scan(nb: dict[str, Any]) -> Sequence[Any]:
        return scanner.scan_notebook(nb).findings

    hosts = carriers_from(corpus, carriers, scan) if corpus is not None and carriers else []
    started = time.perf_counter()
    score = measure(scan, seed=seed, carriers=hosts)
    where = f"planted in {len(hosts)} corpus notebooks" if hosts else "in an empty notebook"
    report(score, time.perf_counter() - started, f"jupyter-qsecure, planted set {where}")
    return score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--carriers", type=int, default=0, help="real corpus notebooks as hosts")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    if args.carriers and not args.corpus.is_dir():
        print(f"corpus folder not found: {args.corpus}", file=sys.stderr)
        return 2
    report_ours(args.corpus if args.carriers else None, seed=args.seed, carriers=args.carriers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
