"""Latency of CredentialBroker.credentials_for(), cold and with a valid lease (core part).

Setup: a local OpenBao dev server (the real ``bao`` binary), the jupyter-qsecure
layout bootstrapped, the broker running with a qsecure-server-dev token (not
root), 3 KV v2 secrets configured.

  cold   a new kernel id each call: child token + 3 KV reads with it + registry
         + ledger entries (p50/p95 over --cold calls); measured without a ledger
         and with a real SQLite ledger (durable commit per entry)
  warm   the same kernel with a valid lease: the cached path (p50/p95 over --warm calls)

Targets (issue 4): < 30 ms cold with a local OpenBao, < 1 ms p50 added with a
valid lease. The end-to-end number (per cell execution through the server's
websocket, vs the server without the extension) is a separate benchmark.

Usage: python benchmarks/credentials_bench.py [--cold 50] [--warm 10000]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jupyter_qsecure.config import ENV_OVERRIDES, QSecure
from jupyter_qsecure.ledger import Ledger
from jupyter_qsecure.testing.openbao import dev_openbao
from jupyter_qsecure.vault import layout
from jupyter_qsecure.vault.broker import CredentialBroker
from jupyter_qsecure.vault.registry import ValueRegistry
from jupyter_qsecure.vault.secrets_spec import parse_secret_specs

COLD_TARGET_MS = 30.0
WARM_TARGET_MS = 1.0


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.4f} ms"


def cold_run(broker: CredentialBroker, n: int, tag: str) -> list[float]:
    times = []
    for i in range(n + 3):
        kernel_id = f"{tag}-{i}"
        start = time.perf_counter()
        creds = broker.credentials_for(kernel_id, "bench")
        elapsed = time.perf_counter() - start
        if not creds.ok or creds.errors:
            raise SystemExit(f"cold issue failed: {creds.error or creds.errors}")
        if i >= 3:  # first calls warm up connections and imports
            times.append(elapsed)
        broker.revoke(kernel_id, "benchmark")  # not timed
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", type=int, default=50)
    parser.add_argument("--warm", type=int, default=10_000)
    args = parser.parse_args()
    for variables in ENV_OVERRIDES.values():
        for variable in variables:
            os.environ.pop(variable, None)

    with dev_openbao() as bao, tempfile.TemporaryDirectory() as tmp:
        admin = bao.client()
        layout.bootstrap(admin)
        spec_map: dict[str, str] = {}
        for name in ("ibm", "aws", "ionq"):
            admin.secrets.kv.v2.create_or_update_secret(
                path=f"qsecure/dev/bench/{name}",
                secret={"token": "bench-" + secrets.token_hex(16)},
                mount_point="secret",
            )
            spec_map[name] = f"secret/qsecure/dev/bench/{name}#token"
        specs = parse_secret_specs(spec_map, "dev")
        server = bao.client(layout.create_server_token(admin, "dev")["client_token"])

        def broker(ledger: Any = None) -> CredentialBroker:
            return CredentialBroker(
                server, environment="dev", specs=specs, ledger=ledger, registry=ValueRegistry()
            )

        plain = broker()
        cold_plain = cold_run(plain, args.cold, "plain")
        settings = QSecure(data_dir=str(Path(tmp) / "qsecure"))
        with Ledger.open(f"sqlite:///{Path(tmp) / 'ledger.db'}", settings=settings) as ledger:
            audited = broker(ledger)
            cold_ledger = cold_run(audited, args.cold, "ledger")

            audited.credentials_for("warm", "bench")
            warm = []
            for _ in range(args.warm):
                start = time.perf_counter()
                audited.credentials_for("warm", "bench")
                warm.append(time.perf_counter() - start)
            to_meta = []
            creds = audited.credentials_for("warm", "bench")
            for _ in range(min(args.warm, 2000)):
                start = time.perf_counter()
                creds.to_metadata()
                to_meta.append(time.perf_counter() - start)
            audited.revoke_all("benchmark done")
            entries = ledger.size()

    print(f"credentials_for() with 3 KV secrets, local OpenBao dev server ({bao.addr})")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; ledger entries: {entries}")
    print()
    rows = [
        ("cold, no ledger", cold_plain, COLD_TARGET_MS),
        ("cold, SQLite ledger", cold_ledger, COLD_TARGET_MS),
        ("warm (valid lease)", warm, WARM_TARGET_MS),
        ("to_metadata()", to_meta, WARM_TARGET_MS),
    ]
    print(f"{'case':<22}{'n':>7}{'p50':>12}{'p95':>12}{'target p50':>14}  verdict")
    failed = False
    for label, samples, target in rows:
        p50 = statistics.median(samples)
        ok = p50 * 1000 < target
        failed |= not ok
        print(
            f"{label:<22}{len(samples):>7}{ms(p50):>12}{ms(pct(samples, 0.95)):>12}"
            f"{f'< {target:g} ms':>14}  {'ok' if ok else 'MISSED'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
