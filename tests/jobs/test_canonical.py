"""Canonical circuit form and hash (jupyter_qsecure.jobs.canonical)."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from canonical_helpers import BUILDER, build
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, qasm2, qpy
from qiskit.circuit import Clbit, Gate, Parameter, Qubit
from qiskit.circuit.library import CXGate, UnitaryGate
from qiskit.circuit.random import random_circuit

from jupyter_qsecure.jobs.canonical import (
    CanonicalisationError,
    _jcs,
    canonical_form,
    circuit_hash,
    circuit_hash_of_encoded,
    circuit_summary,
    hash_many,
)
from jupyter_qsecure.signing.canonical import canonical_json


def _child_hash(seed: str) -> str:
    code = BUILDER + textwrap.dedent(
        """
        from jupyter_qsecure.jobs.canonical import circuit_hash
        print(circuit_hash(build()))
        """
    )
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _qpy_round_trip(qc: QuantumCircuit) -> QuantumCircuit:
    buffer = io.BytesIO()
    qpy.dump(qc, buffer)
    buffer.seek(0)
    (loaded,) = qpy.load(buffer)
    return loaded


def _bell() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    return qc


# ---- stability ----------------------------------------------------------------------------
def test_hash_is_sha256_of_rfc8785_form() -> None:
    qc = build()
    form = canonical_form(qc)
    assert form["format"] == "jupyter-qsecure/circuit/v1"
    assert _jcs(form) == canonical_json(form)  # the fast encoder is exactly RFC 8785
    import hashlib

    assert circuit_hash(qc) == hashlib.sha256(canonical_json(form)).hexdigest()
    assert len(circuit_hash(qc)) == 64


def test_identical_across_processes_and_hash_seeds() -> None:
    here = circuit_hash(build())
    assert circuit_hash(build()) == here  # fresh Parameter UUIDs, fresh bits
    assert _child_hash("1") == here
    assert _child_hash("4242") == here


def test_qpy_round_trip_keeps_hash() -> None:
    qc = build()
    assert circuit_hash(_qpy_round_trip(qc)) == circuit_hash(qc)
    bound = qc.assign_parameters({p: 0.25 * (i + 1) for i, p in enumerate(qc.parameters)})
    assert circuit_hash(_qpy_round_trip(bound)) == circuit_hash(bound)


def test_hash_of_encoded_circuit_follows_the_circuit_not_the_object() -> None:
    from jupyter_qsecure.jobs.client import encode_circuit

    qc = random_circuit(4, 5, measure=True, seed=3)
    text = encode_circuit(qc)["data"]
    assert circuit_hash_of_encoded(qc, text) == circuit_hash(qc)
    assert circuit_hash_of_encoded(qc, text) == circuit_hash(qc)  # memoised: the same
    qc.x(0)  # changed in place: a new encoding, so a new hash
    changed = encode_circuit(qc)["data"]
    assert changed != text
    assert circuit_hash_of_encoded(qc, changed) == circuit_hash(qc)
    assert circuit_hash_of_encoded(qc, changed) != circuit_hash_of_encoded(qc, text)


def test_qasm2_round_trip_keeps_hash() -> None:
    qc = QuantumCircuit(QuantumRegister(3, "q"), ClassicalRegister(3, "c"), name="before_qasm")
    qc.h(0)
    qc.cx(0, 1)
    qc.rz(np.pi / 4, 2)
    qc.rx(0.5, 1)
    qc.barrier()
    qc.measure([0, 1, 2], [0, 1, 2])
    loaded = qasm2.loads(qasm2.dumps(qc))
    assert loaded.name != qc.name  # OpenQASM 2 keeps no name: the round trip loses it ...
    assert circuit_hash(loaded) == circuit_hash(qc)  # ... and the hash, which ignores it, holds


def test_name_and_metadata_and_labels_are_not_hashed() -> None:
    a = _bell()
    b = _bell()
    b.name = "something else"
    b.metadata = {"owner": "me"}
    assert circuit_hash(a) == circuit_hash(b)
    c = QuantumCircuit(2, 2)
    c.h(0, label="hadamard")  # type: ignore[call-arg]
    c.cx(0, 1)
    c.measure([0, 1], [0, 1])
    assert circuit_hash(c) == circuit_hash(a)
    assert circuit_hash(a.copy()) == circuit_hash(a)


# ---- deterministic gate order -------------------------------------------------------------
def test_commuting_operations_on_disjoint_qubits_hash_the_same() -> None:
    a = QuantumCircuit(3)
    a.h(0)
    a.x(1)
    a.cx(0, 2)
    a.rz(0.3, 1)
    b = QuantumCircuit(3)
    b.x(1)
    b.rz(0.3, 1)
    b.h(0)
    b.cx(0, 2)
    assert circuit_hash(a) == circuit_hash(b)


def test_order_on_a_shared_wire_matters() -> None:
    a = QuantumCircuit(1)
    a.h(0)
    a.x(0)
    b = QuantumCircuit(1)
    b.x(0)
    b.h(0)
    assert circuit_hash(a) != circuit_hash(b)
    # a barrier orders what it spans
    c = QuantumCircuit(2)
    c.h(0)
    c.barrier()
    c.x(1)
    d = QuantumCircuit(2)
    d.x(1)
    d.barrier()
    d.h(0)
    assert circuit_hash(c) != circuit_hash(d)
    # measurements into the same clbit are ordered by the clbit wire
    e = QuantumCircuit(2, 1)
    e.measure(0, 0)
    e.measure(1, 0)
    f = QuantumCircuit(2, 1)
    f.measure(1, 0)
    f.measure(0, 0)
    assert circuit_hash(e) != circuit_hash(f)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_topological_order_of_a_random_circuit_hashes_the_same(seed: int) -> None:
    qc = random_circuit(8, 12, max_operands=3, measure=True, seed=seed)
    reference = circuit_hash(qc)
    rng = random.Random(seed)
    last: dict[object, int] = {}
    preds: list[set[int]] = []
    for i, instruction in enumerate(qc.data):
        preds.append({last[w] for w in (*instruction.qubits, *instruction.clbits) if w in last})
        for w in (*instruction.qubits, *instruction.clbits):
            last[w] = i
    for _ in range(5):
        done: set[int] = set()
        order: list[int] = []
        while len(order) < len(qc.data):
            ready = [i for i in range(len(qc.data)) if i not in done and preds[i] <= done]
            pick = rng.choice(ready)
            done.add(pick)
            order.append(pick)
        shuffled = qc.copy_empty_like()
        for i in order:
            shuffled.append(qc.data[i])
        assert [qc.data[i].name for i in order] != [x.name for x in qc.data] or len(qc.data) < 3
        assert circuit_hash(shuffled) == reference


def test_commuting_order_inside_control_flow_bodies() -> None:
    def make(swap: bool) -> QuantumCircuit:
        qc = QuantumCircuit(2, 1)
        qc.measure(0, 0)
        with qc.if_test((qc.clbits[0], 1)):
            if swap:
                qc.x(1)
                qc.h(0)
            else:
                qc.h(0)
                qc.x(1)
        return qc

    assert circuit_hash(make(False)) == circuit_hash(make(True))


# ---- parameters ---------------------------------------------------------------------------
def test_parameters_by_name_not_uuid() -> None:
    def make(name: str = "theta") -> QuantumCircuit:
        p = Parameter(name)
        qc = QuantumCircuit(1)
        qc.rx(p, 0)
        qc.rz(2 * p + 1, 0)
        return qc

    assert circuit_hash(make()) == circuit_hash(make())
    assert circuit_hash(make()) != circuit_hash(make("phi"))
    form = canonical_form(make())
    assert form["instructions"][0]["op"]["params"] == [{"param": "theta"}]
    assert form["instructions"][1]["op"]["params"] == [{"expr": "1 + 2*theta", "params": ["theta"]}]


def test_bound_values_hash_as_floats() -> None:
    theta = Parameter("theta")
    template = QuantumCircuit(1)
    template.rx(theta, 0)
    bound = template.assign_parameters({theta: 0.5})
    direct = QuantumCircuit(1)
    direct.rx(0.5, 0)
    assert circuit_hash(bound) == circuit_hash(direct)
    assert canonical_form(direct)["instructions"][0]["op"]["params"] == [{"float": "0.5"}]
    as_int = QuantumCircuit(1)
    as_int.rx(1, 0)
    as_float = QuantumCircuit(1)
    as_float.rx(1.0, 0)
    assert circuit_hash(as_int) == circuit_hash(as_float)
    # floats are exact: 0.1 + 0.2 is stable and is not 0.3
    a, b = QuantumCircuit(1), QuantumCircuit(1)
    a.rx(0.1 + 0.2, 0)
    b.rx(0.3, 0)
    assert circuit_hash(a) != circuit_hash(b)
    assert canonical_form(a)["instructions"][0]["op"]["params"] == [
        {"float": "0.30000000000000004"}
    ]
    zero, negative_zero = QuantumCircuit(1), QuantumCircuit(1)
    zero.rz(0.0, 0)
    negative_zero.rz(-0.0, 0)
    assert circuit_hash(zero) == circuit_hash(negative_zero)


# ---- everything semantic changes the hash -------------------------------------------------
def _variants() -> dict[str, QuantumCircuit]:
    def base(**change: object) -> QuantumCircuit:
        cname = str(change.get("creg", "c"))
        qc = QuantumCircuit(QuantumRegister(2, "q"), ClassicalRegister(2, cname))
        qc.global_phase = float(change.get("phase", 0.0))  # type: ignore[arg-type]
        getattr(qc, str(change.get("gate", "h")))(0)
        qc.rz(float(change.get("angle", 0.25)), 1)  # type: ignore[arg-type]
        if change.get("reverse_cx"):
            qc.cx(1, 0)
        else:
            qc.cx(0, 1)
        qc.measure(0, int(change.get("target", 0)))  # type: ignore[call-overload]
        qc.measure(1, 1 - int(change.get("target", 0)))  # type: ignore[call-overload]
        return qc

    return {
        "base": base(),
        "gate": base(gate="x"),
        "param": base(angle=0.26),
        "qubit order": base(reverse_cx=True),
        "measurement target": base(target=1),
        "classical register": base(creg="m"),
        "global phase": base(phase=0.5),
    }


def test_semantic_differences_change_the_hash() -> None:
    hashes = {name: circuit_hash(qc) for name, qc in _variants().items()}
    assert len(set(hashes.values())) == len(hashes), hashes


def test_registers_and_loose_bits() -> None:
    flat = QuantumCircuit(2)
    split = QuantumCircuit(QuantumRegister(1, "a"), QuantumRegister(1, "b"))
    loose = QuantumCircuit([Qubit(), Qubit()])
    sized = QuantumCircuit(3)
    hashes = {circuit_hash(c) for c in (flat, split, loose, sized)}
    assert len(hashes) == 4
    form = canonical_form(QuantumCircuit(QuantumRegister(1, "a"), [Qubit()], [Clbit()]))
    assert form["qregs"] == [{"name": "a", "bits": [0]}]
    assert form["num_qubits"] == 2 and form["cregs"] == [] and form["num_clbits"] == 1


def test_control_flow_contents_are_hashed() -> None:
    def make(value: int = 1, body_gate: str = "x", else_gate: str | None = None) -> QuantumCircuit:
        qc = QuantumCircuit(1, 1)
        qc.measure(0, 0)
        with qc.if_test((qc.clbits[0], value)) as else_:
            getattr(qc, body_gate)(0)
        if else_gate:
            with else_:
                getattr(qc, else_gate)(0)
        return qc

    hashes = [
        circuit_hash(make()),
        circuit_hash(make(value=0)),
        circuit_hash(make(body_gate="y")),
        circuit_hash(make(else_gate="z")),
    ]
    assert len(set(hashes)) == 4

    def loop(n: int) -> QuantumCircuit:
        qc = QuantumCircuit(1)
        with qc.for_loop(range(n)) as i:
            qc.rx(i, 0)
        return qc

    assert circuit_hash(loop(2)) != circuit_hash(loop(3))
    assert circuit_hash(loop(2)) == circuit_hash(loop(2))


def test_delays_with_units() -> None:
    def delay(duration: float, unit: str) -> QuantumCircuit:
        qc = QuantumCircuit(1)
        qc.delay(duration, 0, unit=unit)
        return qc

    assert circuit_hash(delay(100, "ns")) != circuit_hash(delay(100, "us"))
    assert circuit_hash(delay(100, "ns")) != circuit_hash(delay(200, "ns"))
    assert circuit_hash(delay(100, "dt")) == circuit_hash(_qpy_round_trip(delay(100, "dt")))


def test_custom_gates_by_name_and_definition() -> None:
    def custom(second: str) -> Gate:
        sub = QuantumCircuit(2, name="mine")
        sub.h(0)
        getattr(sub, second)(0, 1)
        return sub.to_gate()

    def use(gate: Gate) -> QuantumCircuit:
        qc = QuantumCircuit(2)
        qc.append(gate, [0, 1])
        return qc

    assert circuit_hash(use(custom("cx"))) == circuit_hash(use(custom("cx")))
    assert circuit_hash(use(custom("cx"))) != circuit_hash(use(custom("cz")))
    form = canonical_form(use(custom("cx")))
    assert len(form["instructions"][0]["op"]["definition"]) == 64
    # standard gates with a non-default control state are different gates
    a, b = QuantumCircuit(2), QuantumCircuit(2)
    a.append(CXGate(), [0, 1])
    b.append(CXGate(ctrl_state=0), [0, 1])
    assert circuit_hash(a) != circuit_hash(b)


def test_unitary_matrix_params() -> None:
    def unitary(matrix: np.ndarray) -> QuantumCircuit:
        qc = QuantumCircuit(1)
        qc.append(UnitaryGate(matrix), [0])
        return qc

    x = np.array([[0, 1], [1, 0]], dtype=complex)
    y = np.array([[0, -1j], [1j, 0]])
    assert circuit_hash(unitary(x)) == circuit_hash(unitary(x.copy()))
    assert circuit_hash(unitary(x)) != circuit_hash(unitary(y))
    (param,) = canonical_form(unitary(y))["instructions"][0]["op"]["params"]
    assert param["array"]["shape"] == [2, 2]
    assert param["array"]["data"][1] == ["0.0", "-1.0"]


# ---- API ----------------------------------------------------------------------------------
def test_hash_many_and_summary() -> None:
    circuits = [_bell(), build(), _bell()]
    assert hash_many(circuits) == [circuit_hash(c) for c in circuits]
    summary = circuit_summary(_bell())
    assert summary == {
        "num_qubits": 2,
        "num_clbits": 2,
        "depth": 3,
        "size": 4,
        "count_ops": {"cx": 1, "h": 1, "measure": 2},
        "num_parameters": 0,
        "parameters": [],
    }
    assert circuit_summary(build())["parameters"] == ["phi", "theta", "v[0]", "v[1]"]
    json.dumps(canonical_form(build()))  # plain JSON


def test_non_circuits_are_refused() -> None:
    with pytest.raises(CanonicalisationError, match="expected a qiskit QuantumCircuit, got str"):
        circuit_hash("OPENQASM 2.0;")  # type: ignore[arg-type]
    with pytest.raises(CanonicalisationError, match="got dict"):
        circuit_summary({})  # type: ignore[arg-type]
