"""Parsing submitted circuits, in a process that may die for it.

:func:`parse_request` turns a request's ``circuits`` (QPY base64, OpenQASM 2 or 3) and
``bind`` into what the broker needs: canonical hashes, the policy's summaries and the QPY
text the Aer worker runs. It is what a parse worker runs (:func:`worker_main`, started by
:class:`~jupyter_qsecure.jobs.parse_pool.ParsePool`), never the server itself: Qiskit's
readers trust the sizes a payload declares, and a circuit can be costly to read in ways no
header shows (gate definitions nested twenty deep cost 2**20 steps to hash).

A worker process, per request:

- sets ``RLIMIT_AS`` to its current address space plus the memory budget and ``RLIMIT_CPU``
  to the CPU seconds it has used plus the CPU budget (the kernel stops it with ``SIGXCPU``
  past that, whatever it is doing, in Python or in Qiskit's Rust);
- answers in JSON, never pickle: the server reads the reply of a process that has just
  parsed hostile input, and JSON holds no code;
- retires (exits after replying) when a request ran out of memory or its resident memory
  grew by more than half the budget, so a worker's leftovers never shrink the next budget.

Core dumps are off (a worker stopped by ``SIGXCPU`` would otherwise write one), and Qiskit
and the numeric libraries run on one thread (threads' stacks and arenas count against the
address-space limit, and parsing gains nothing from them).

Includes are resolved by the parsers with no search path: OpenQASM 2's ``qelib1.inc`` is
built in, OpenQASM 3's importer accepts ``stdgates.inc`` only; the broker refuses any other
include before a worker sees it (:mod:`jupyter_qsecure.jobs.declared`).

This module imports nothing heavy at import time: a worker sets its environment before
NumPy and Qiskit load.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import math
import os
import resource
import signal
import sys
from typing import Any

from ..errors import QSecureError

__all__ = [
    "CircuitError",
    "decode_request",
    "encode_request",
    "parse_circuits",
    "parse_request",
    "worker_main",
]

#: Set in a worker before Qiskit loads: one thread for Qiskit's Rust code and for BLAS;
#: short panic messages.
WORKER_ENV = {
    "RAYON_NUM_THREADS": "1",
    "QISKIT_PARALLEL": "FALSE",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "RUST_BACKTRACE": "0",  # a worker stopped mid-parse logs one line, not a backtrace
}


class CircuitError(QSecureError):
    """A circuit that cannot be read or canonicalised (the broker answers HTTP 422)."""


def parse_circuits(items: Any, bind: Any) -> list[Any]:
    """Circuits from a request's ``circuits`` list (QPY base64, OpenQASM 2 or 3), with the
    ``bind`` values assigned. Includes resolve only to the built-in standard libraries."""
    from qiskit import QuantumCircuit, qasm2, qpy

    if not isinstance(items, list) or not items:
        raise CircuitError("'circuits' must be a non-empty list", hint="send at least one circuit")
    circuits: list[Any] = []
    for position, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("data"), str):
            raise CircuitError(f"circuit {position} must be an object with 'format' and 'data'")
        fmt = item.get("format")
        try:
            if fmt == "qpy":
                loaded = qpy.load(io.BytesIO(base64.b64decode(item["data"], validate=True)))
            elif fmt == "qasm2":
                loaded = [
                    qasm2.loads(
                        item["data"],
                        include_path=(),  # qelib1.inc is built in; no file is ever read
                        custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS,
                    )
                ]
            elif fmt == "qasm3":
                from qiskit import qasm3

                loaded = [qasm3.loads(item["data"])]  # stdgates.inc only, built in
            else:
                raise CircuitError(
                    f"circuit {position}: unknown format {str(fmt)[:40]!r}",
                    hint="use qpy, qasm2 or qasm3",
                )
        except CircuitError:
            raise
        except (MemoryError, RecursionError):
            raise
        except (binascii.Error, ValueError) as exc:
            raise CircuitError(
                f"circuit {position} ({fmt}) cannot be read: {str(exc)[:200]}"
            ) from None
        except Exception as exc:  # qiskit parse errors have many types
            raise CircuitError(
                f"circuit {position} ({fmt}) is malformed: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None
        for circuit in loaded:
            if not isinstance(circuit, QuantumCircuit):
                raise CircuitError(
                    f"circuit {position} is a {type(circuit).__name__}, not a QuantumCircuit"
                )
            circuits.append(circuit)
    if bind:
        if not isinstance(bind, dict) or not all(
            isinstance(v, (int, float)) for v in bind.values()
        ):
            raise CircuitError("'bind' must map parameter names to numbers")
        bound = []
        for circuit in circuits:
            by_name = {p.name: p for p in circuit.parameters}
            values = {
                by_name[name]: float(value) for name, value in bind.items() if name in by_name
            }
            bound.append(circuit.assign_parameters(values) if values else circuit)
        circuits = bound
    return circuits


def parse_request(items: Any, bind: Any) -> dict[str, Any]:
    """``{"hashes", "summaries", "qpy"}`` of a request's circuits: canonical hashes, the
    policy's summaries (:func:`~jupyter_qsecure.jobs.canonical.circuit_summary`) and the
    base64 QPY the Aer worker runs (the text as sent, for one QPY entry without bindings)."""
    from .aer_run import circuits_to_qpy
    from .canonical import CanonicalisationError, circuit_summary, hash_many

    circuits = parse_circuits(items, bind)
    try:
        hashes = hash_many(circuits)
    except CanonicalisationError as exc:
        raise CircuitError(exc.message, hint=exc.hint) from None
    single_qpy = not bind and len(items) == 1 and items[0].get("format") == "qpy"
    qpy = items[0]["data"] if single_qpy else circuits_to_qpy(circuits)
    return {"hashes": hashes, "summaries": [circuit_summary(c) for c in circuits], "qpy": qpy}


# ---- the worker process ---------------------------------------------------------------------
def _address_space() -> int | None:
    """This process's virtual memory size in bytes (Linux), else None."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * resource.getpagesize()


def _resident() -> int:
    """This process's peak resident memory in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _clamp(soft: int, hard: int) -> int:
    return soft if hard == resource.RLIM_INFINITY else min(soft, hard)


def _limit(memory_bytes: int, cpu_seconds: int) -> None:
    """This request's limits: ``memory_bytes`` more address space, ``cpu_seconds`` more CPU."""
    if memory_bytes > 0:
        current = _address_space()
        if current is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            resource.setrlimit(resource.RLIMIT_AS, (_clamp(current + memory_bytes, hard), hard))
    if cpu_seconds > 0:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = math.ceil(usage.ru_utime + usage.ru_stime)
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (_clamp(used + cpu_seconds, hard), hard))


def _unlimit() -> None:
    """Lift the request's limits (up to the hard limits) while the worker waits."""
    for which in (resource.RLIMIT_AS, resource.RLIMIT_CPU):
        _, hard = resource.getrlimit(which)
        resource.setrlimit(which, (hard, hard))


def encode_request(
    items: Any, bind: Any, rules: dict[str, Any] | None = None, environment: str = ""
) -> bytes:
    """A request for a worker: one line of JSON (formats, text lengths, ``bind``, the
    policy's ``rules`` to check declared sizes against, or None), then the circuit texts
    as UTF-8, back to back. Not JSON throughout: escaping megabytes of circuit text costs
    the server more than the parse it hands off. Raises :class:`CircuitError` for a
    ``circuits`` list of the wrong shape."""
    if not isinstance(items, list) or not items:
        raise CircuitError("'circuits' must be a non-empty list", hint="send at least one circuit")
    blobs = []
    for position, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("data"), str):
            raise CircuitError(f"circuit {position} must be an object with 'format' and 'data'")
        blobs.append(item["data"].encode("utf-8", "surrogatepass"))
    header = {
        "formats": [str(item.get("format")) for item in items],
        "lengths": [len(blob) for blob in blobs],
        "bind": bind,
        "rules": rules,
        "environment": environment,
    }
    return json.dumps(header).encode() + b"\n" + b"".join(blobs)


def decode_request(raw: bytes) -> dict[str, Any]:
    """The request :func:`encode_request` wrote, with ``circuits`` rebuilt."""
    line, _, texts = raw.partition(b"\n")
    request: dict[str, Any] = json.loads(line)
    circuits, at = [], 0
    for fmt, length in zip(request.pop("formats"), request.pop("lengths"), strict=True):
        data = texts[at : at + length].decode("utf-8", "surrogatepass")
        circuits.append({"format": fmt, "data": data})
        at += length
    request["circuits"] = circuits
    return request


def _handle(request: dict[str, Any]) -> dict[str, Any]:
    from .declared import MalformedCircuit, check_declared
    from .policy import EnvironmentPolicy

    items, bind = request["circuits"], request.get("bind")
    try:
        if request.get("rules") is not None:
            rules = EnvironmentPolicy.model_validate(request["rules"])
            excess = check_declared(items, rules, str(request.get("environment")))
            if excess is not None:
                return {"excess": dataclasses.asdict(excess)}
        parsed = parse_request(items, bind)
    except MalformedCircuit as exc:
        return {"invalid": exc.message, "hint": exc.hint}
    except CircuitError as exc:
        return {"invalid": exc.message, "hint": exc.hint}
    except MemoryError:
        return {"limit": "memory"}
    except RecursionError:
        return {"invalid": "the circuit is nested too deeply to be read"}
    except Exception as exc:  # reported to the broker, which answers 422 and logs it
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    if parsed["qpy"] is items[0]["data"]:
        parsed["qpy"] = None  # the text as sent: the broker has it
    return {"ok": parsed}


def _warm_up() -> None:
    """Load Qiskit, the checks and the canonicaliser before reporting ready (not on a
    job's clock)."""
    from .declared import declared_circuits
    from .policy import EnvironmentPolicy  # noqa: F401  (pydantic: loaded now, not per job)

    program = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; h q[0];'
    items = [{"format": "qasm2", "data": program}]
    declared_circuits(items)
    parse_request(items, None)


def worker_main(conn: Any, memory_bytes: int, cpu_seconds: int) -> None:
    """Entry point of a parse worker: parse requests from ``conn`` until it closes.

    Requests are :func:`encode_request` bytes; replies are JSON: ``{"ok": {"hashes",
    "summaries", "qpy"}}`` (``qpy`` null: the one QPY text as sent), ``{"excess": {"rule",
    "limit", "actual", "message"}}`` (a declared size over the request's ``rules``: nothing
    was parsed), ``{"invalid": message, "hint"}``, ``{"limit": "memory"}`` or
    ``{"error": text}``, each with ``"retire": bool``. An empty request ends the worker.
    """
    os.environ.update(WORKER_ENV)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's Ctrl-C is the parent's job
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _warm_up()
    baseline = _resident()
    conn.send_bytes(json.dumps({"ready": os.getpid()}).encode())
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not raw:
            return
        _limit(memory_bytes, cpu_seconds)
        request = decode_request(raw)
        reply = _handle(request)
        _unlimit()
        grown = memory_bytes > 0 and _resident() - baseline > memory_bytes // 2
        reply["retire"] = "limit" in reply or grown
        try:
            conn.send_bytes(json.dumps(reply).encode())
        except (OSError, ValueError):
            return
        if reply["retire"]:
            return
