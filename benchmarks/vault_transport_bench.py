"""Client CPU per OpenBao call: hvac over requests vs urllib3's pool (issue 15).

Starts a real ``bao server -dev`` (jupyter_qsecure.testing.openbao), creates an
ed25519 transit key, and signs a small message ``--calls`` times with each transport,
in ``--rounds`` rotating rounds (the machine is shared: the median round is reported,
and the minimum). CPU is this process's ``time.process_time`` (user + system), so the
server's work is not counted; wall time per call is shown for information.

* ``requests``  ``client.adapter.post`` (hvac's default JSON adapter on a requests
  session: what every other OpenBao call does);
* ``urllib3``   :class:`jupyter_qsecure.vault.transport.VaultJSON` (what
  TransitSigner uses for direct connections);
* ``handwritten`` (only with ``--legacy-tree PATH``): the removed
  ``jupyter_qsecure/_http.py`` KeepAliveSession from a checkout of the earlier code.

Usage: python benchmarks/vault_transport_bench.py [--calls 2000] [--rounds 5]
       [--legacy-tree /path/to/older/checkout]
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_qsecure.testing.openbao import dev_openbao
from jupyter_qsecure.vault.transport import VaultJSON

KEY = "bench"
BODY = {"input": base64.b64encode(b"a checkpoint body of modest size").decode()}


def _legacy(tree: Path, addr: str, token: str) -> Callable[[], Any]:
    spec = importlib.util.spec_from_file_location("_legacy_http", tree / "jupyter_qsecure/_http.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    session = module.KeepAliveSession()
    url = f"{addr}/v1/transit/sign/{KEY}"
    headers = {
        "Content-Type": "application/json",
        "X-Vault-Request": "true",
        "X-Vault-Token": token,
    }

    def call() -> Any:
        response = session.request(
            "POST", url, data=json.dumps(BODY).encode(), headers=headers, timeout=(10.0, 10.0)
        )
        return json.loads(response.text)

    return call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--legacy-tree", type=Path)
    args = parser.parse_args()
    with dev_openbao() as bao:
        bao.enable_transit()
        client = bao.client()
        client.secrets.transit.create_key(name=KEY, key_type="ed25519")
        fast = VaultJSON(client.connection)
        cases: dict[str, Callable[[], Any]] = {
            "requests": lambda: client.adapter.post(f"/v1/transit/sign/{KEY}", json=BODY),
            "urllib3": lambda: fast.post(f"transit/sign/{KEY}", BODY, token=client.token),
        }
        if args.legacy_tree:
            cases["handwritten"] = _legacy(args.legacy_tree, bao.addr, bao.root_token)
        for call in cases.values():  # warm up, and check every case signs
            assert str(call()["data"]["signature"]).startswith("vault:v1:")
        per_round = args.calls // args.rounds
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        wall: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, call in cases.items():
                c0, w0 = time.process_time(), time.perf_counter()
                for _ in range(per_round):
                    call()
                cpu[name].append((time.process_time() - c0) / per_round * 1000)
                wall[name].append((time.perf_counter() - w0) / per_round * 1000)
    print(f"{per_round * args.rounds} transit signs per transport, {args.rounds} rounds")
    print(f"{'transport':12} {'CPU ms/call median':>19} {'min':>7} {'wall ms/call median':>20}")
    for name in cases:
        print(
            f"{name:12} {statistics.median(cpu[name]):19.3f} {min(cpu[name]):7.3f} "
            f"{statistics.median(wall[name]):20.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
