"""Small circuits the test suite and examples share."""

from __future__ import annotations

from typing import Any

__all__ = ["ghz"]


def ghz(n: int = 3) -> Any:
    """An ``n``-qubit GHZ circuit named ``ghz<n>``, measured: counts only on 0...0 and 1...1."""
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(n, name=f"ghz{n}")
    qc.h(0)
    for i in range(n - 1):
        qc.cx(i, i + 1)
    qc.measure_all()
    return qc
