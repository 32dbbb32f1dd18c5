"""Hostile circuits against the job broker: how fast they are refused, and what they cost.

One run starts, on this machine (as ``qsubmit_bench.py`` does, with its permissive policy:
``max_qubits = 30``):

* a local OpenBao dev server (the real ``bao`` binary), bootstrapped with the
  jupyter-qsecure layout, and a server token for environment ``dev``;
* a real Jupyter Server subprocess with the extension (OpenBao transit signing,
  ``job_parse_cpu_seconds = --parse-cpu``) and one ``qsecure`` kernel.

The kernel submits each payload ``--runs`` times with ``BrokerClient`` and its own token,
timing every request with ``time.perf_counter`` (the whole HTTP round trip: body upload,
authentication, the declared-size checks, the ledger's durable commit of the denial):

  qpy-369M-qubits      the issue's ~560-byte QPY whose circuit header claims 369,098,754
                       qubits (a valid 3-qubit QPY with that field patched): 403 max_qubits
  qasm2-qreg-1e7       ``qreg q[10000000];`` (40 bytes of OpenQASM 2): 403 max_qubits
  qasm3-qubit-1e7      ``qubit[10000000] q;`` (OpenQASM 3): 403 max_qubits
  qasm3-physical-1e8   ``h $100000000;`` (a physical qubit): 403 max_qubits
  qasm2-include        ``include "/etc/passwd";``: 422, the file never read
  ghz5 (reference)     an allowed 5-qubit GHZ, 128 shots, signed and recorded: 200

then ``--costly`` times a circuit that passes every size check but costs 2**22 steps to
canonicalise (nested gate definitions): the parse worker is stopped at its CPU limit (or
the wall-clock limit, 3 x the CPU limit and at least 10 s, on a machine too busy to give it
that much CPU) and the request gets 422, after which one more GHZ job must succeed.

Meanwhile this process polls the server's ``/api/status`` and reports its latency, and the
server process's resident memory is read before and after.

Target (issue 12): a hostile oversized payload is refused in under 50 ms (p95 of the
round trip, per payload), and the server's memory does not grow with it.

Usage: python benchmarks/hostile_bench.py [--runs 50] [--costly 2] [--parse-cpu 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from _jupyter_harness import Server, clean_environment, http, pct, servers_stopped, shutdown_server
from qsubmit_bench import POLICY, KernelClient

from jupyter_qsecure.kernel.install import install_kernelspec
from jupyter_qsecure.testing.openbao import dev_openbao
from jupyter_qsecure.vault import layout

REFUSE_MS_TARGET = 50.0
HOSTILE = ("qpy-369M-qubits", "qasm2-qreg-1e7", "qasm3-qubit-1e7", "qasm3-physical-1e8")

CELL = r"""
import base64 as _hb_b64, json as _hb_json, struct as _hb_struct, time as _hb_time
from jupyter_qsecure import secrets as _hb_secrets
from jupyter_qsecure.jobs.client import (BrokerClient as _HbClient, InvalidCircuit as _HbInvalid,
                                         JobDenied as _HbDenied, encode_circuit as _hb_encode)
from jupyter_qsecure.kernel.context import current_metadata as _hb_meta
from jupyter_qsecure.testing.circuits import ghz as _hb_ghz, nested_gates_qasm2 as _hb_nested

def _hb_claiming(qubits):
    raw = bytearray(_hb_b64.b64decode(_hb_encode(_hb_ghz(3))["data"]))
    (offset,) = _hb_struct.unpack_from("!Q", raw, 20)  # QPY 16+: the first circuit's header
    _hb_struct.pack_into("!I", raw, offset + 5, qubits)  # its num_qubits
    return {"format": "qpy", "data": _hb_b64.b64encode(bytes(raw)).decode()}

_HB_PAYLOADS = {
    "qpy-369M-qubits": [_hb_claiming(369_098_754)],
    "qasm2-qreg-1e7": [{"format": "qasm2", "data": "OPENQASM 2.0;\nqreg q[10000000];\n"}],
    "qasm3-qubit-1e7": [{"format": "qasm3", "data": "OPENQASM 3.0;\nqubit[10000000] q;\n"}],
    "qasm3-physical-1e8": [{"format": "qasm3",
                            "data": 'OPENQASM 3.0;\ninclude "stdgates.inc";\nh $100000000;\n'}],
    "qasm2-include": [{"format": "qasm2",
                       "data": 'OPENQASM 2.0;\ninclude "/etc/passwd";\nqreg q[1];\n'}],
    "ghz5 (reference)": [_hb_encode(_hb_ghz(5))],
}

def _hb_submit(client, circuits, seed):
    t0 = _hb_time.perf_counter()
    try:
        record = client.submit(circuits, shots=128, seed=seed, wait=True, timeout=300)
        outcome = f"200 {record['status']}"
    except _HbDenied as exc:
        outcome = f"403 {exc.rule}"
    except _HbInvalid as exc:
        limit = "CPU limit" in exc.message or "took longer than" in exc.message
        outcome = "422 " + ("worker limit" if limit else
                            "include" if "include" in exc.message else "invalid")
    return _hb_time.perf_counter() - t0, outcome

def _hb_measure(runs, costly, out):
    client = _HbClient(_hb_meta(get_ipython()).raw["broker_url"], _hb_secrets.token(), timeout=300)
    results = {}
    for i in range(runs + 3):  # 3 warm-up rounds, not counted
        for name, circuits in _HB_PAYLOADS.items():
            seconds, outcome = _hb_submit(client, circuits, 1000 + i)
            entry = results.setdefault(name, {"samples": [], "outcomes": {},
                                              "bytes": len(_hb_json.dumps(circuits))})
            if i >= 3:
                entry["samples"].append(seconds)
                entry["outcomes"][outcome] = entry["outcomes"].get(outcome, 0) + 1
    for i in range(costly):
        payload = [{"format": "qasm2", "data": _hb_nested(22)}]
        seconds, outcome = _hb_submit(client, payload, i)
        after_s, after = _hb_submit(client, _HB_PAYLOADS["ghz5 (reference)"], 5000 + i)
        entry = results.setdefault("costly-parse (2**22 steps)", {"samples": [], "outcomes": {},
                                   "bytes": len(_hb_json.dumps(payload)), "after": []})
        entry["samples"].append(seconds)
        entry["outcomes"][outcome] = entry["outcomes"].get(outcome, 0) + 1
        entry["after"].append(after)
    client.close()
    with open(out, "w") as f:
        _hb_json.dump(results, f)
    print("done")
"""


async def poll_status(server: Server, samples: list[float], stop: asyncio.Event) -> None:
    """``/api/status`` round trips, one after another with a short pause, until ``stop``."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await http(server, "GET", "/api/status")
        samples.append(time.perf_counter() - t0)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


async def run(args: argparse.Namespace, tmp: Path, bao: Any) -> int:
    admin = bao.client()
    layout.bootstrap(admin)
    server_token = layout.create_server_token(admin, "dev")["client_token"]
    policy_path = tmp / "bench-policy.toml"
    policy_path.write_text(POLICY)
    kernel_prefix = tmp / "kernels"
    install_kernelspec(prefix=kernel_prefix)
    server = Server(
        root=tmp / "server",
        qsecure={
            "vault_addr": bao.addr,
            "environment": "dev",
            "policy_file": str(policy_path),
            "job_parse_cpu_seconds": args.parse_cpu,
        },
        env_extra={"BAO_TOKEN": server_token},
        redact=[server_token, bao.root_token],
        stop_timeout=20.0,
    )
    out = tmp / "hostile.json"
    status: list[float] = []
    with servers_stopped([server]):
        client: KernelClient | None = None
        try:
            server.start(clean_environment(), kernel_prefix / "share" / "jupyter")
            assert server.process is not None
            process = psutil.Process(server.process.pid)
            client = await KernelClient.open(server)
            await client.execute(CELL)
            rss_before = process.memory_info().rss
            stop = asyncio.Event()
            poller = asyncio.ensure_future(poll_status(server, status, stop))
            t0 = time.perf_counter()
            await client.execute(f"_hb_measure({args.runs}, {args.costly}, {str(out)!r})")
            elapsed = time.perf_counter() - t0
            stop.set()
            await poller
            rss_after = process.memory_info().rss
        except BaseException:
            tail = server.log_tail(25)
            if tail:
                print(f"--- server log tail ---\n{tail}", file=sys.stderr)
            raise
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.close()
            await shutdown_server(server, grace=30.0)
    return report(args, json.loads(out.read_text()), status, rss_before, rss_after, elapsed)


def report(
    args: argparse.Namespace,
    results: dict[str, Any],
    status: list[float],
    rss_before: int,
    rss_after: int,
    elapsed: float,
) -> int:
    print(f"\n{args.runs} requests per payload (after 3 warm-up rounds), in {elapsed:.1f} s")
    print(f"{'payload':30s} {'bytes':>7s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s}  outcome")
    ok = True
    for name, entry in results.items():
        ms = [s * 1000 for s in entry["samples"]]
        outcomes = ", ".join(f"{k} x{v}" for k, v in sorted(entry["outcomes"].items()))
        print(
            f"{name:30s} {entry['bytes']:7d} {statistics.median(ms):8.1f} {pct(ms, 0.95):8.1f} "
            f"{max(ms):8.1f}  {outcomes}"
        )
        if name in HOSTILE:
            refused = set(entry["outcomes"]) == {"403 max_qubits"}
            ok = ok and refused and pct(ms, 0.95) < REFUSE_MS_TARGET
        if name == "qasm2-include":
            ok = ok and set(entry["outcomes"]) == {"422 include"}
        if "after" in entry:
            print(f"{'':30s} then a GHZ job: {', '.join(entry['after'])}")
            ok = ok and set(entry["outcomes"]) == {"422 worker limit"}
            ok = ok and all(a == "200 completed" for a in entry["after"])
    grew = (rss_after - rss_before) / 2**20
    print(
        f"server RSS {rss_before / 2**20:.0f} MiB before, {rss_after / 2**20:.0f} MiB after "
        f"({grew:+.0f} MiB)"
    )
    if status:
        status_ms = [s * 1000 for s in status]
        print(
            f"/api/status meanwhile: {len(status)} requests, p50 {statistics.median(status_ms):.1f}"
            f" ms, p95 {pct(status_ms, 0.95):.1f} ms, max {max(status_ms):.1f} ms"
        )
    ok = ok and grew < 100
    verdict = "PASS" if ok else "FAIL"
    print(
        f"\n{verdict}: hostile oversized payloads refused with p95 < {REFUSE_MS_TARGET:g} ms "
        "(403 max_qubits), the include refused unread (422), the costly parse stopped at the "
        "worker's CPU limit with the next job completing, server RSS growth < 100 MiB"
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="requests per payload")
    parser.add_argument("--costly", type=int, default=2, help="costly-parse requests")
    parser.add_argument(
        "--parse-cpu", type=int, default=2, help="QSecure.job_parse_cpu_seconds of the server"
    )
    args = parser.parse_args()
    clean_environment()
    with dev_openbao() as bao, tempfile.TemporaryDirectory(prefix="qsecure-hostile-") as tmp:
        return asyncio.run(run(args, Path(tmp), bao))


if __name__ == "__main__":
    sys.exit(main())
