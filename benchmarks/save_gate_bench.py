"""Save latency added by the save gate, for a ~3 MB real notebook, cold and after a one-cell change.

Anchor: the same Jupyter Server contents manager (AsyncLargeFileManager) saving the same
model without the gate, in the same process, same disk. Ours: the manager with the
gate installed (scan + decision; a clean notebook is neither recorded nor copied).

  cold        a fresh scanner (empty content-hash cache) for every save
  one-cell    the same scanner, after changing one cell's source

With ``--values N`` (default 50) the gate also holds N registered injected values (one
in ten 300 characters long), matched exactly with their encodings and fragments, as on a
server whose kernels hold them.

Usage: python benchmarks/save_gate_bench.py [--notebook PATH] [--repeat N] [--values N]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import logging
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

from jupyter_qsecure.gate import SaveGate
from jupyter_qsecure.gate.recovery import LocalKeyWrapper, RecoveryStore
from jupyter_qsecure.scan import Scanner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server_ext"))
from jupyter_qsecure_server.save_gate import ContentsGate  # noqa: E402

DEFAULT = (
    Path(__file__).resolve().parents[2]
    / "shared/corpus/notebooks/qiskit-community__content_ch-ex_hello-qiskit.ipynb"
)


async def timed_saves(
    cm: AsyncLargeFileManager, models: list[dict], name: str, cpu: list[float] | None = None
) -> list[float]:
    """Wall time (ms) of each save; with ``cpu``, its process CPU time is appended there
    too (other load on the machine inflates wall time, hardly CPU time)."""
    times = []
    for model in models:
        started, cpu_started = time.perf_counter(), time.process_time()
        await cm.save(model, name)
        times.append((time.perf_counter() - started) * 1000)
        if cpu is not None:
            cpu.append((time.process_time() - cpu_started) * 1000)
    return times


def edited(nb: dict, n: int) -> dict:
    """``nb`` with one code cell changed, as a fresh JSON parse (what the server receives:
    the request body, parsed with ``json.loads``; no string shared with ``nb``)."""
    changed = copy.deepcopy(nb)
    code = [c for c in changed["cells"] if c["cell_type"] == "code"]
    code[n % len(code)]["source"] += f"\n# edit {n}"
    return json.loads(json.dumps(changed))


def injected_values(n: int) -> list[str]:
    """``n`` fake injected values, one in ten 300 characters long (generated per run)."""
    return [secrets.token_urlsafe(225 if i % 10 == 9 else 30) for i in range(n)]


async def main_async(notebook: Path, repeat: int, n_values: int) -> None:
    nb = nbformat.read(notebook, as_version=4)
    # plain JSON data, as a save request's body reaches the contents manager (and the gate)
    content = json.loads(nbformat.writes(nb))
    size = len(nbformat.writes(nb).encode())
    model = {"type": "notebook", "content": content}
    with tempfile.TemporaryDirectory() as root, tempfile.TemporaryDirectory() as data:
        plain = AsyncLargeFileManager(root_dir=root)
        gated = AsyncLargeFileManager(root_dir=root)
        recovery = RecoveryStore(Path(data) / "rec", LocalKeyWrapper(Path(data) / "k"))
        values = injected_values(n_values)
        gate = SaveGate(
            scanner=Scanner(), recovery=recovery, mode="block", exact_values=lambda: values
        )
        ContentsGate(gated, gate, Path(data) / "staging", logging.getLogger("bench")).install()
        await plain.save(model, "warmup.ipynb")
        await gated.save(model, "warmup.ipynb")

        # cold: a new scanner (empty cache) before every gated save
        plain_cold, gated_cold = [], []
        for _ in range(repeat):
            plain_cold += await timed_saves(plain, [model], "a.ipynb")
            gate.scanner = Scanner()
            gated_cold += await timed_saves(gated, [model], "b.ipynb")

        # one-cell change: warm scanner, each save is the notebook with one cell changed
        # (another each time: it differs from the last save in two cells);
        # plain and gated saves alternate so machine load affects both alike
        gate.scanner = Scanner()
        await gated.save(model, "c.ipynb")
        plain_edit, gated_edit, plain_cpu, gated_cpu = [], [], [], []
        for i in range(repeat):
            edit = {"type": "notebook", "content": edited(content, i)}
            plain_edit += await timed_saves(plain, [edit], "d.ipynb", plain_cpu)
            gated_edit += await timed_saves(gated, [edit], "c.ipynb", gated_cpu)
        scan_only, scan_cpu = [], []
        for i in range(repeat):
            changed = edited(content, 1000 + i)
            started, cpu_started = time.perf_counter(), time.process_time()
            gate.check_model({"type": "notebook", "content": changed}, "c.ipynb", "bench")
            scan_only.append((time.perf_counter() - started) * 1000)
            scan_cpu.append((time.process_time() - cpu_started) * 1000)

    p50 = statistics.median
    print(
        f"notebook: {notebook.name} ({size / 1e6:.2f} MB, {len(nb.cells)} cells), {repeat} saves "
        f"each, {n_values} registered injected values"
    )
    print(f"{'case':<22}{'without gate p50':>18}{'with gate p50':>16}{'added':>12}{'ratio':>9}")
    for label, base, ours in (
        ("cold save", plain_cold, gated_cold),
        ("after one-cell edit", plain_edit, gated_edit),
    ):
        print(
            f"{label:<22}{p50(base):>15.1f} ms{p50(ours):>13.1f} ms{p50(ours) - p50(base):>9.1f} ms{p50(ours) / p50(base):>8.2f}x"
        )
    print(
        f"{'  (process CPU time)':<22}{p50(plain_cpu):>15.1f} ms{p50(gated_cpu):>13.1f} ms"
        f"{p50(gated_cpu) - p50(plain_cpu):>9.1f} ms"
    )
    print(
        f"gate decision alone after a one-cell edit (no I/O): p50 {p50(scan_only):.1f} ms "
        f"(process CPU time {p50(scan_cpu):.1f} ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--notebook", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--values", type=int, default=50, help="registered injected values")
    args = parser.parse_args()
    if not args.notebook.exists():
        print(
            f"notebook {args.notebook} not found (it is in ../shared/corpus/notebooks)",
            file=sys.stderr,
        )
        return 2
    asyncio.run(main_async(args.notebook, args.repeat, args.values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
