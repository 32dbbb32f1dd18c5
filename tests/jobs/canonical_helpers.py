"""A circuit exercising everything the canonical form covers (``build``), shared by the
canonical-hash and declared-resources tests."""

from __future__ import annotations

import textwrap

from qiskit import QuantumCircuit

# One circuit exercising everything the form covers; built the same way in this
# process and in child processes (hence source text, executed in both).
BUILDER = textwrap.dedent(
    """
    import numpy as np
    from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
    from qiskit.circuit import Clbit, Parameter, ParameterVector, Qubit
    from qiskit.circuit.classical import expr
    from qiskit.circuit.library import UnitaryGate


    def build():
        theta, phi, v = Parameter("theta"), Parameter("phi"), ParameterVector("v", 2)
        qr, anc = QuantumRegister(3, "q"), QuantumRegister(1, "anc")
        cr, flags = ClassicalRegister(3, "c"), ClassicalRegister(1, "flags")
        loose_q, loose_c = Qubit(), Clbit()
        qc = QuantumCircuit(qr, anc, [loose_q], cr, flags, [loose_c], global_phase=theta / 2)
        sub = QuantumCircuit(2, name="bell")
        sub.h(0)
        sub.cx(0, 1)
        sub.rz(phi, 1)
        bell = sub.to_gate()
        qc.h(qr[0])
        qc.rx(theta * 2 + phi, qr[1])
        qc.ry(0.1 + 0.2, anc[0])
        qc.rz(v[0] - v[1], loose_q)
        qc.append(bell, [qr[2], anc[0]])
        qc.append(UnitaryGate(np.array([[0, 1j], [1j, 0]])), [qr[1]])
        qc.cx(qr[0], qr[1])
        qc.barrier()
        qc.delay(100, qr[2], unit="dt")
        qc.measure(qr, cr)
        qc.measure(loose_q, loose_c)
        with qc.if_test((cr, 5)) as else_:
            qc.x(qr[0])
            qc.z(qr[2])
        with else_:
            qc.y(qr[1])
        with qc.switch(flags) as case:
            with case(0):
                qc.s(qr[0])
            with case(case.DEFAULT):
                qc.t(qr[1])
        with qc.for_loop(range(2)) as i:
            qc.rx(i, qr[2])
        with qc.while_loop((loose_c, 1)):
            qc.h(loose_q)
            qc.measure(loose_q, loose_c)
        with qc.if_test(expr.logic_and(expr.equal(cr, 3), expr.lift(flags[0]))):
            qc.x(anc[0])
        qc.reset(qr[0])
        qc.measure(anc[0], flags[0])
        return qc
    """
)


def build() -> QuantumCircuit:
    namespace: dict[str, object] = {}
    exec(BUILDER, namespace)  # noqa: S102 - fixed source text above
    return namespace["build"]()  # type: ignore[operator]
