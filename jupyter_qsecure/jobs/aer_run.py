"""Run a job's circuits on Qiskit Aer: the one function every executor runs.

:func:`run_aer` is a pure, top-level function of a plain ``dict`` so that it pickles to a
worker process (:class:`~jupyter_qsecure.jobs.executor.LocalExecutor`) or a Dask worker
(:class:`~jupyter_qsecure.jobs.executor.DaskExecutor`) and gives the same answer wherever it
runs: the same payload (with a seed) gives identical counts in any process, on any worker.

Reproducibility comes from fixing everything that is otherwise free:

- circuits are transpiled here, for the simulator that runs them, with a fixed
  ``seed_transpiler`` (:data:`SEED_TRANSPILER`) and ``optimization_level``
  (:data:`OPTIMIZATION_LEVEL`), in this process (``num_processes=1``);
- Aer runs with ``seed_simulator`` and ``max_parallel_threads`` threads (one for circuits
  under :data:`PARALLEL_QUBITS` qubits); counts do not depend on the thread count;
- noise models are built from a name (:func:`noise_model`), never shipped as objects, and
  identified by :func:`noise_model_sha256`.

When the payload has no seed, one is drawn and returned in ``metadata["seed"]`` so that the
run can be replayed. ``metadata["time_taken"]`` is the only field that varies between two
runs of the same payload.

Test hooks: the payload keys ``_test_sleep`` (seconds to sleep before running) and
``_test_crash`` (``os._exit(1)`` in the worker; ``"segfault"`` raises SIGSEGV instead) are
honoured only when the environment variable ``QSECURE_TESTING=1`` is set *in the process
that runs* :func:`run_aer`; otherwise a payload carrying them is refused. They exist so that
the executors' timeout and crash handling can be tested without big circuits.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import os
import secrets
import signal
import time
import uuid
from typing import Any

from .._lru import LRU

__all__ = [
    "MAX_SEED",
    "MAX_SHOTS",
    "NOISE_MODELS",
    "OPTIMIZATION_LEVEL",
    "SEED_TRANSPILER",
    "SIMULATION_METHODS",
    "TESTING_ENV",
    "circuits_from_qpy",
    "circuits_to_qpy",
    "noise_model",
    "noise_model_names",
    "noise_model_sha256",
    "run_aer",
]

#: Simulation methods that give counts (``unitary`` and ``superop`` do not).
SIMULATION_METHODS = (
    "automatic",
    "statevector",
    "density_matrix",
    "stabilizer",
    "matrix_product_state",
    "extended_stabilizer",
)
#: Transpiler settings fixed for every job (recorded in the result's metadata).
SEED_TRANSPILER = 11
OPTIMIZATION_LEVEL = 1
#: Below this many qubits Aer does not parallelise a state update (its
#: ``statevector_parallel_threshold``), so such jobs run on one thread.
PARALLEL_QUBITS = 14
#: Upper bounds enforced here as a last line of defence; policy sets the real limits.
MAX_SHOTS = 10_000_000
MAX_SEED = 2**63 - 1
#: Environment variable that enables the ``_test_*`` payload keys in the worker.
TESTING_ENV = "QSECURE_TESTING"

#: Named noise models: name -> (1-qubit depolarizing p, 2-qubit depolarizing p, readout p).
NOISE_MODELS: dict[str, tuple[float, float, float]] = {
    "depolarizing-1e-3": (1e-3, 1e-2, 0.0),
    "depolarizing-1e-2": (1e-2, 5e-2, 0.0),
    "readout-1e-2": (0.0, 0.0, 1e-2),
    "depolarizing-1e-3+readout-1e-2": (1e-3, 1e-2, 1e-2),
}
_ONE_QUBIT_GATES = ("sx", "x")
_TWO_QUBIT_GATES = ("cx",)
_ALLOWED_KEYS = frozenset(
    {"circuits_qpy", "shots", "seed", "method", "noise", "max_parallel_threads"}
)
_TEST_KEYS = frozenset({"_test_sleep", "_test_crash"})


def noise_model_names() -> list[str]:
    """The names :func:`noise_model` accepts, sorted."""
    return sorted(NOISE_MODELS)


def noise_model(name: str) -> Any:
    """Build the named :class:`qiskit_aer.noise.NoiseModel`, deterministically.

    ``depolarizing-P``: depolarizing error P on every 1-qubit gate (``sx``, ``x``) and a
    stronger one on ``cx``; ``readout-P``: symmetric readout error P on every qubit;
    ``A+B`` combines both. Unknown names raise :class:`ValueError` naming the known ones.
    """
    from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error

    try:
        p1, p2, readout = NOISE_MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown noise model {name!r}; known: {', '.join(noise_model_names())}"
        ) from None
    model = NoiseModel(basis_gates=["cx", "id", "rz", "sx", "x"])
    if p1:
        model.add_all_qubit_quantum_error(depolarizing_error(p1, 1), list(_ONE_QUBIT_GATES))
    if p2:
        model.add_all_qubit_quantum_error(depolarizing_error(p2, 2), list(_TWO_QUBIT_GATES))
    if readout:
        model.add_all_qubit_readout_error(
            ReadoutError([[1 - readout, readout], [readout, 1 - readout]])
        )
    return model


def _strip_ids(value: Any) -> Any:
    # QuantumError.to_dict() carries a random UUID per error object: not part of the model.
    if isinstance(value, dict):
        return {k: _strip_ids(v) for k, v in value.items() if k != "id"}
    if isinstance(value, list):
        return [_strip_ids(v) for v in value]
    return value


@functools.lru_cache(maxsize=64)
def noise_model_sha256(name: str | None) -> str | None:
    """SHA-256 hex of the named model's canonical JSON (``None`` for no noise).

    The hash covers the model as this qiskit-aer version builds it (errors, gates, basis
    gates), with the random per-error ids removed, so it is identical across processes.
    """
    if name is None:
        return None
    model = noise_model(name)
    body = {"name": name, "basis_gates": sorted(model.basis_gates)}
    body["model"] = _strip_ids(model.to_dict(serializable=True))
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def circuits_to_qpy(circuits: Any) -> str:
    """Base64 QPY of a circuit or a list of circuits."""
    from qiskit import qpy

    if not isinstance(circuits, (list, tuple)):
        circuits = [circuits]
    buffer = io.BytesIO()
    qpy.dump(list(circuits), buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def circuits_from_qpy(data: str) -> list[Any]:
    """The circuits in base64 QPY ``data``; :class:`ValueError` when it is not that."""
    from qiskit import QuantumCircuit, qpy

    try:
        raw = base64.b64decode(data, validate=True)
        circuits = qpy.load(io.BytesIO(raw))
    except Exception as exc:  # binascii.Error, QpyError, struct.error, ...
        raise ValueError(f"circuits_qpy is not base64 QPY: {exc}") from None
    if not circuits or not all(isinstance(c, QuantumCircuit) for c in circuits):
        raise ValueError("circuits_qpy holds no circuits")
    return list(circuits)


def _int(payload: dict[str, Any], key: str, low: int, high: int) -> int:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key} must be an integer from {low} to {high}, got {value!r}")
    return value


def _test_hooks(payload: dict[str, Any]) -> None:
    present = _TEST_KEYS.intersection(payload)
    if not present:
        return
    if os.environ.get(TESTING_ENV) != "1":
        raise ValueError(
            f"payload keys {sorted(present)} are test-only and need {TESTING_ENV}=1 in the worker"
        )
    sleep = payload.get("_test_sleep")
    if sleep:
        time.sleep(float(sleep))
    crash = payload.get("_test_crash")
    if crash == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif crash:
        os._exit(1)


#: Per worker process: (method, noise) -> (simulator, preset pass manager). Building
#: AerSimulator's target is most of a small job's cost when done per call (qiskit's
#: ``transpile(backend=...)`` rebuilds it); the pass manager gives the same circuits.
_SIMULATORS: dict[tuple[str, str | None], tuple[Any, Any]] = {}


def _simulator_and_passes(method: str, noise: str | None) -> tuple[Any, Any]:
    cached = _SIMULATORS.get((method, noise))
    if cached is not None:
        return cached
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_aer import AerSimulator

    known = [m for m in SIMULATION_METHODS if m in AerSimulator().available_methods()]
    if method not in known:
        raise ValueError(f"unknown simulation method {method!r}; known: {', '.join(known)}")
    options: dict[str, Any] = {"method": method}
    if noise is not None:
        options["noise_model"] = noise_model(noise)
    simulator = AerSimulator(**options)
    passes = generate_preset_pass_manager(
        optimization_level=OPTIMIZATION_LEVEL,
        target=simulator.target,
        seed_transpiler=SEED_TRANSPILER,
    )
    _SIMULATORS[(method, noise)] = (simulator, passes)
    return simulator, passes


#: Per worker process: (method, noise, SHA-256 of the QPY text) -> (transpiled circuits,
#: their canonical hashes). Transpilation is deterministic (fixed seed and level), so a
#: circuit submitted again (a seed or shots sweep) skips QPY decoding, transpilation and
#: hashing. Bounded in entries and in instructions held.
_TRANSPILED: LRU[tuple[str, str | None, str], tuple[list[Any], list[str]]] = LRU(128)
_TRANSPILED_MAX_OPS = 20_000


def _transpiled(
    circuits_qpy: str, method: str, noise: str | None, passes: Any
) -> tuple[list[Any], list[str]]:
    key = (method, noise, hashlib.sha256(circuits_qpy.encode("ascii", "replace")).hexdigest())
    cached = _TRANSPILED.get(key)
    if cached is not None:
        return cached
    circuits = circuits_from_qpy(circuits_qpy)
    for index, circuit in enumerate(circuits):
        if circuit.parameters:
            names = ", ".join(sorted(p.name for p in circuit.parameters))
            raise ValueError(f"circuit {index} has unbound parameters: {names}")
        if not any(inst.operation.name == "measure" for inst in circuit.data):
            raise ValueError(f"circuit {index} has no measurements, so it has no counts")
    transpiled = passes.run(circuits)
    if not isinstance(transpiled, list):
        transpiled = [transpiled]
    from .canonical import hash_many

    entry = (transpiled, hash_many(transpiled))
    if sum(len(c.data) for c in transpiled) <= _TRANSPILED_MAX_OPS:
        _TRANSPILED.put(key, entry)
    return entry


def _execute(simulator: Any, circuits: list[Any], run_options: dict[str, Any]) -> Any:
    """Aer's ``Result`` for ``circuits``, computed in this thread.

    ``AerSimulator.run(...).result()`` hands the run to Aer's thread pool and waits for
    it: two thread switches, about a quarter of a small job's cost in a worker that runs
    one job at a time anyway. ``_execute_circuits_job`` is the function that pool runs,
    called with the same arguments (qiskit-aer 0.15 to 0.18); if a later qiskit-aer
    drops it, the public call is used.
    """
    direct = getattr(simulator, "_execute_circuits_job", None)
    if direct is None:
        return simulator.run(circuits, **run_options).result()
    return direct(list(circuits), None, dict(run_options), str(uuid.uuid4()))


def run_aer(payload: dict[str, Any]) -> dict[str, Any]:
    """Transpile and run ``payload``'s circuits on AerSimulator; return counts and metadata.

    ``payload``: ``{"circuits_qpy": base64 QPY (list of circuits), "shots": int,
    "seed": int | None, "method": str | None ("automatic"), "noise": str | None,
    "max_parallel_threads": int (1)}``.

    Returns ``{"counts": [dict per circuit, keys sorted], "metadata": {...},
    "transpiled_hashes": canonical hash of each transpiled circuit}``. Invalid payloads
    raise :class:`ValueError` with a message naming the field.
    """
    if not isinstance(payload, dict):
        raise ValueError(f"payload must be a dict, got {type(payload).__name__}")
    unknown = set(payload) - _ALLOWED_KEYS - _TEST_KEYS
    if unknown:
        raise ValueError(f"unknown payload keys: {sorted(unknown)}")
    _test_hooks(payload)

    import qiskit
    import qiskit_aer

    shots = _int(payload, "shots", 1, MAX_SHOTS)
    seed = payload.get("seed")
    if seed is None:
        seed = secrets.randbelow(2**31)
    else:
        seed = _int(payload, "seed", 0, MAX_SEED)
    threads = payload.get("max_parallel_threads", 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= 1024:
        raise ValueError(f"max_parallel_threads must be an integer >= 0, got {threads!r}")
    method = payload.get("method") or "automatic"
    noise = payload.get("noise")
    circuits_qpy = payload.get("circuits_qpy")
    if not isinstance(circuits_qpy, str):
        raise ValueError("circuits_qpy must be a base64 QPY string")
    simulator, passes = _simulator_and_passes(method, noise)
    transpiled, transpiled_hashes = _transpiled(circuits_qpy, method, noise, passes)
    if max(c.num_qubits for c in transpiled) < PARALLEL_QUBITS:
        threads = 1  # Aer would not parallelise these; extra threads only spin
    run_options: dict[str, Any] = {
        "shots": shots,
        "seed_simulator": seed,
        "max_parallel_threads": threads,
    }
    if threads == 1:
        run_options.update(max_parallel_experiments=1, max_parallel_shots=1)
    result = _execute(simulator, transpiled, run_options)
    if not result.success:
        raise RuntimeError(f"Aer run failed: {result.status}")

    counts = []
    methods = []
    for index in range(len(transpiled)):
        raw = result.get_counts(index)
        counts.append({key: int(raw[key]) for key in sorted(raw)})
        methods.append(result.results[index].metadata.get("method", method))
    metadata = {
        "backend": "aer_simulator",
        "method": method,
        "methods_used": methods,
        "shots": shots,
        "seed": seed,
        "noise": noise,
        "noise_model_sha256": noise_model_sha256(noise),
        "seed_transpiler": SEED_TRANSPILER,
        "optimization_level": OPTIMIZATION_LEVEL,
        "max_parallel_threads": threads,
        "num_circuits": len(transpiled),
        "time_taken": float(result.time_taken),
        "qiskit": qiskit.__version__,
        "qiskit_aer": qiskit_aer.__version__,
    }
    return {
        "counts": counts,
        "metadata": metadata,
        # Hashed here, where the circuits already are, not reloaded from QPY by the broker.
        "transpiled_hashes": list(transpiled_hashes),
    }
