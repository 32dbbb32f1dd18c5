"""Small circuits the test suite and examples share."""

from __future__ import annotations

from typing import Any

__all__ = ["ghz", "mixer", "nested_gates_qasm2"]


def ghz(n: int = 3) -> Any:
    """An ``n``-qubit GHZ circuit named ``ghz<n>``, measured: counts only on 0...0 and 1...1."""
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(n, name=f"ghz{n}")
    qc.h(0)
    for i in range(n - 1):
        qc.cx(i, i + 1)
    qc.measure_all()
    return qc


def mixer() -> Any:
    """A 3-qubit circuit of rotations and one CX, measured: counts spread over many states,
    so a changed seed, noise model or transpilation shows in them."""
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(3)
    qc.h(range(3))
    qc.rz(0.3, 0)
    qc.ry(1.1, 1)
    qc.cx(0, 2)
    qc.rx(0.7, 2)
    qc.measure_all()
    return qc


def nested_gates_qasm2(depth: int) -> str:
    """OpenQASM 2 for one qubit and one gate ``g<depth-1>``, each ``g<i>`` defined as two
    ``g<i-1>``: 2**depth steps to canonicalise or unroll, yet every declared size is tiny
    (a payload that passes the broker's size checks and is still costly to parse)."""
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', "gate g0 a { h a; }"]
    lines += [f"gate g{i} a {{ g{i - 1} a; g{i - 1} a; }}" for i in range(1, depth)]
    lines += ["qreg q[1];", "creg c[1];", f"g{depth - 1} q[0];", "measure q -> c;"]
    return "\n".join(lines)
