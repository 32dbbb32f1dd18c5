"""One secret, one stable type: across runs (hash seeds), repeated scans, threads and caches.

Issue 13: the same secret came out as "Secret Keyword" in one run and "Base64 High
Entropy String" in the next. Cause: two detections of the same span tied in the
detectors' sort, and the tie was broken by ``set`` iteration order, which follows
string hashes and so changes with ``PYTHONHASHSEED`` from one process to the next.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import scan_fakes as fk

from jupyter_qsecure.scan import Scanner
from jupyter_qsecure.scan.detectors import dedupe
from jupyter_qsecure.scan.layers import Layered, Rank, resolve
from jupyter_qsecure.scan.models import Detection
from jupyter_qsecure.testing import planted as pl

ROOT = Path(__file__).resolve().parents[2]


def _multi_layer_notebook() -> dict[str, Any]:
    """Values several layers see at once (keyword + entropy, plugin + rule engine, …)."""
    values = {
        "pw": pl.random_base64(30),
        "gh": pl.make_secret(pl.PROVIDER_BY_FAMILY["github"]),
        "slack": pl.make_secret(pl.PROVIDER_BY_FAMILY["slack"]),
        "aws": pl.make_secret(pl.PROVIDER_BY_FAMILY["aws"]),
        "stripe": pl.make_secret(pl.PROVIDER_BY_FAMILY["stripe"]),
        "db": pl.rand(pl._sys(), 20),
        "hex": pl.rand(pl._sys(), 40, pl.HEX),
    }
    source = (
        f'db_password = "{values["pw"]}"\n'
        f'GITHUB_TOKEN = "{values["gh"]}"\n'
        f'slack_token = "{values["slack"]}"\n'
        f'aws_key = "{values["aws"]}"\n'
        f'STRIPE_SECRET_KEY = "{values["stripe"]}"\n'
        f'url = "postgresql://app:{values["db"]}@db.internal:5432/prod"\n'
        f'api_secret = "{values["hex"]}"\n'
    )
    nb = pl.place_notebook(source, "py", "source")
    nb["cells"].append(
        pl._cell(
            "code",
            "print(cfg)",
            9,
            outputs=[{"output_type": "stream", "name": "stdout", "text": source}],
        )
    )
    nb["cells"].append(pl._cell("raw", f"KEY='''{fk.pem_private_key()}'''", 10))
    return nb


def _summary(result: Any) -> list[tuple[Any, ...]]:
    return [(f.cell, f.where, f.output, f.line, f.type, f.fingerprint) for f in result.findings]


def test_same_span_tie_is_broken_by_precedence_not_hash_order() -> None:
    """Failed before: which of the two survived followed set iteration order."""
    for _ in range(40):
        value = pl.random_base64(30)
        pair = [
            Detection("Base64 High Entropy String", value, 15, 15 + len(value)),
            Detection("Secret Keyword", value, 15, 15 + len(value)),
        ]
        assert [d.type for d in dedupe(pair)] == ["Secret Keyword"]
        assert [d.type for d in dedupe(reversed(pair))] == ["Secret Keyword"]


def test_resolve_is_independent_of_input_order() -> None:
    import itertools

    value = pl.random_base64(30)
    items = [
        Layered(Rank.ENTROPY, Detection("Base64 High Entropy String", value, 10, 50)),
        Layered(Rank.CONTEXT, Detection("Secret Keyword", value, 10, 50)),
        Layered(Rank.OUR_PROVIDER, Detection("GitHub Token", value[:3], 10, 13)),
        Layered(Rank.PROVIDER_RULE, Detection("GitHub Token", value[:20], 10, 30)),
        Layered(Rank.CONTEXT, Detection("Secret Keyword", "other", 60, 65)),
    ]
    outcomes = {
        tuple((r.detection.type, r.start, r.end, r.detection.secret) for r in resolve(perm))
        for perm in itertools.permutations(items)
    }
    assert outcomes == {(("GitHub Token", 10, 50, value[:20]), ("Secret Keyword", 60, 65, "other"))}


def test_types_are_the_same_in_every_process(tmp_path: Path) -> None:
    """Failed before: processes with other hash seeds reported other types."""
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(_multi_layer_notebook()))
    script = (
        "import json, sys\n"
        "from jupyter_qsecure.scan import Fingerprinter, Scanner\n"
        "key = Fingerprinter(bytes.fromhex(sys.argv[2]), 'test')\n"
        "r = Scanner(fingerprinter=key).scan_file(sys.argv[1])\n"
        "print(json.dumps([[f.cell, f.line, f.type, f.fingerprint] for f in r.findings]))\n"
    )
    key = secrets.token_bytes(32).hex()  # one fingerprint key for every process
    outputs = set()
    for seed in ("0", "1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), str(ROOT / "server_ext"), env.get("PYTHONPATH", "")]
        )
        proc = subprocess.run(
            [sys.executable, "-c", script, str(path), key],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=True,
        )
        outputs.add(proc.stdout)
    assert len(outputs) == 1
    (only,) = outputs
    types = {t for _, _, t, _ in json.loads(only)}
    assert {"Secret Keyword", "GitHub Token", "Slack Token", "AWS Access Key"} <= types


def test_types_are_the_same_over_many_scans_threads_and_caches() -> None:
    notebooks = [_multi_layer_notebook() for _ in range(4)]
    expected = [_summary(Scanner().scan_notebook(nb)) for nb in notebooks]
    assert all(len(e) >= 14 for e in expected)
    shared = Scanner()
    for _ in range(5):  # warm cache, same scanner
        assert [_summary(shared.scan_notebook(nb)) for nb in notebooks] == expected
    for workers in (2, 8):
        with ThreadPoolExecutor(max_workers=workers) as pool:
            got = list(pool.map(lambda nb: _summary(shared.scan_notebook(nb)), notebooks * 6))
            cold = list(pool.map(lambda nb: _summary(Scanner().scan_notebook(nb)), notebooks * 2))
        assert got == expected * 6
        assert cold == expected * 2
