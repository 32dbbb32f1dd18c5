"""Declared circuit sizes, read before parsing (jupyter_qsecure.jobs.declared).

Honest payloads (what Qiskit writes) declare exactly what they hold; crafted headers and
programs are refused by size, as malformed, or for an include, without Qiskit's parsers.
"""

from __future__ import annotations

import base64
import io
import struct
from typing import Any

import pytest
from canonical_helpers import build
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, qasm2, qasm3, qpy
from qiskit.circuit.random import random_circuit
from qiskit.qpy import common as qpy_common

from jupyter_qsecure.jobs.declared import (
    MAX_CIRCUITS_PARSED,
    SERVER_QASM_CHARS,
    SERVER_QASM_MARKERS,
    Excess,
    MalformedCircuit,
    check_declared,
    declared_circuits,
    max_clbits,
)
from jupyter_qsecure.jobs.policy import Policy
from jupyter_qsecure.testing.circuits import ghz

POLICY = """
version = "declared-1"
[dev]
max_qubits = 10
max_depth = 40
max_circuits_per_job = 4
max_shots = 1000
allowed_gates = "*"
allowed_backends = ["aer_simulator"]
allowed_methods = ["automatic"]
jobs_per_minute = 100
shots_per_day = 100000
"""
RULES = Policy.from_bytes(POLICY.encode(), "dev").rules
#: Offsets of fields in the version-12+ circuit header (qiskit.qpy.formats.CIRCUIT_HEADER_V12).
NUM_QUBITS, NUM_CLBITS, NUM_INSTRUCTIONS = 5, 9, 25


def qpy_bytes(circuits: QuantumCircuit | list[QuantumCircuit], **dump: Any) -> bytes:
    buffer = io.BytesIO()
    qpy.dump(circuits, buffer, **dump)
    return buffer.getvalue()


def qpy_entry(raw: bytes) -> dict[str, str]:
    return {"format": "qpy", "data": base64.b64encode(raw).decode()}


def patched(raw: bytes, field: int, value: int, pack: str = "!I", circuit: int = 0) -> bytes:
    """``raw`` with one field of one circuit's header replaced (format version 16+)."""
    data = bytearray(raw)
    start = 19 + 1  # file header, program type key
    (offset,) = struct.unpack_from("!Q", data, start + 8 * circuit)
    struct.pack_into(pack, data, offset + field, value)
    return bytes(data)


def check(items: list[dict[str, str]]) -> Excess | None:
    return check_declared(items, RULES, "dev")


def refusal(items: list[dict[str, str]]) -> str:
    with pytest.raises(MalformedCircuit) as caught:
        check(items)
    return caught.value.message


# ---- honest payloads: exact ----------------------------------------------------------------
def honest_circuits() -> list[QuantumCircuit]:
    regs = QuantumCircuit(QuantumRegister(3, "a"), QuantumRegister(2, "b"), ClassicalRegister(4))
    regs.h(0)
    regs.cx(0, 4)
    regs.measure([0, 1, 2, 3], [0, 1, 2, 3])
    randoms = [random_circuit(n, 6, measure=True, seed=n) for n in (1, 4, 9)]
    return [ghz(2), ghz(10), regs, build(), *randoms]


@pytest.mark.parametrize("index", range(len(honest_circuits())))
def test_what_qiskit_writes_declares_exactly_what_it_holds(index: int) -> None:
    qc = honest_circuits()[index]
    [declared] = declared_circuits([qpy_entry(qpy_bytes(qc))])
    assert (declared.qubits, declared.clbits) == (qc.num_qubits, qc.num_clbits)
    if not any(op.name in ("if_else", "switch_case", "while_loop", "for_loop") for op in qc.data):
        text = qasm2.dumps(qc)
        [declared] = declared_circuits([{"format": "qasm2", "data": text}])
        assert (declared.qubits, declared.clbits) == (qc.num_qubits, qc.num_clbits)
    text = qasm3.dumps(qc)
    [declared] = declared_circuits([{"format": "qasm3", "data": text}])
    assert (declared.qubits, declared.clbits) == (qc.num_qubits, qc.num_clbits)


def test_several_circuits_in_one_qpy_file_and_older_formats() -> None:
    circuits = honest_circuits()[:3]
    declared = declared_circuits([qpy_entry(qpy_bytes(circuits))])
    assert [(d.position, d.qubits) for d in declared] == [(0, 2), (0, 10), (0, 5)]
    for version in range(qpy_common.QPY_COMPATIBILITY_VERSION, qpy_common.QPY_VERSION + 1):
        [one] = declared_circuits([qpy_entry(qpy_bytes(ghz(7), version=version))])
        assert (one.qubits, one.clbits) == (7, 7), version
    # Before format 16 there is no circuit table: a second circuit cannot be reached.
    old = qpy_bytes(circuits, version=15)
    assert "no circuit table" in refusal([qpy_entry(old)])


def test_a_circuit_at_the_limit_passes_one_over_is_refused() -> None:
    assert check([qpy_entry(qpy_bytes(ghz(10)))]) is None
    excess = check([qpy_entry(qpy_bytes(ghz(11)))])
    assert excess == Excess("max_qubits", 10, 11, "qubits 11 exceeds dev limit 10")
    for fmt, program in (
        ("qasm2", 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{n}];\ncreg c[{n}];\n'),
        ("qasm3", 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[{n}] q;\nbit[{n}] c;\n'),
    ):
        assert check([{"format": fmt, "data": program.format(n=10)}]) is None
        excess = check([{"format": fmt, "data": program.format(n=11)}])
        assert excess is not None and (excess.rule, excess.actual) == ("max_qubits", 11)
    four = [qpy_entry(qpy_bytes([ghz(2)] * 2))] * 2
    assert check(four) is None
    excess = check([*four, {"format": "qasm2", "data": "OPENQASM 2.0; qreg q[1];"}])
    assert excess is not None and excess.rule == "max_circuits_per_job" and excess.actual == 5


# ---- crafted QPY headers -------------------------------------------------------------------
def test_a_qpy_header_claiming_369_million_qubits_is_over_the_policy() -> None:
    raw = patched(qpy_bytes(ghz(3)), NUM_QUBITS, 369_098_754)
    excess = check([qpy_entry(raw)])
    assert excess is not None
    assert (excess.rule, excess.limit, excess.actual) == ("max_qubits", 10, 369_098_754)
    in_second = patched(qpy_bytes([ghz(2), ghz(3)]), NUM_QUBITS, 2**32 - 1, circuit=1)
    excess = check([qpy_entry(in_second)])
    assert excess is not None and excess.message.endswith("(circuit 1)")


def test_clbits_are_bounded_by_qubits_times_depth() -> None:
    assert max_clbits(RULES) == 400
    raw = patched(qpy_bytes(ghz(3)), NUM_CLBITS, 369_098_754)
    excess = check([qpy_entry(raw)])
    assert excess is not None and (excess.rule, excess.limit) == ("max_clbits", 400)
    program = "OPENQASM 3.0;\nqubit[2] q;\nbit[401] c;\n"
    excess = check([{"format": "qasm3", "data": program}])
    assert excess is not None and excess.rule == "max_clbits"


def test_counts_that_cannot_fit_in_the_file_are_malformed() -> None:
    raw = qpy_bytes(ghz(3))
    message = refusal([qpy_entry(patched(raw, NUM_INSTRUCTIONS, 369_098_754, "!Q"))])
    assert "declares 369,098,754 instructions in circuit 0" in message
    huge_table = bytearray(raw)
    struct.pack_into("!Q", huge_table, 10, 2**60)  # the file header's number of circuits
    excess = check([qpy_entry(bytes(huge_table))])  # over the policy before it is read
    assert excess is not None and (excess.rule, excess.actual) == ("max_circuits_per_job", 2**60)
    with pytest.raises(MalformedCircuit, match="circuits but has room for at most"):
        declared_circuits([qpy_entry(bytes(huge_table))])


def test_not_qpy_is_malformed_with_the_circuit_named() -> None:
    assert "is not base64" in refusal([{"format": "qpy", "data": "%%%"}])
    not_qpy = base64.b64encode(b"not qpy at all, really").decode()
    assert "is not a QPY file" in refusal([{"format": "qpy", "data": not_qpy}])
    short = base64.b64encode(qpy_bytes(ghz(2))[:30]).decode()
    assert "is cut short" in refusal([{"format": "qpy", "data": short}])
    future = bytearray(qpy_bytes(ghz(2)))
    future[6] = qpy_common.QPY_VERSION + 1
    assert "reads up to version" in refusal([qpy_entry(bytes(future))])


def test_the_request_shape_is_checked_first() -> None:
    assert "non-empty list" in refusal([])  # type: ignore[arg-type]
    assert "must be an object" in refusal([{"format": "qpy"}])
    assert "unknown format 'pickle'" in refusal([{"format": "pickle", "data": ""}])
    too_many = [{"format": "qasm2", "data": ""}] * (MAX_CIRCUITS_PARSED + 1)
    assert "can be parsed" in refusal(too_many)


# ---- OpenQASM ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "program", "qubits"),
    [
        ("qasm2", "OPENQASM 2.0;\nqreg q[10000000];\n", 10_000_000),
        ("qasm2", "OPENQASM 2.0; qreg a[6]; qreg b[6];", 12),
        ("qasm2", "OPENQASM 2.0;\n// a comment\r qreg q[10000000];\n", 10_000_000),
        ("qasm3", "OPENQASM 3.0;\nqubit[10000000] q;\n", 10_000_000),
        ("qasm3", "OPENQASM 3.0;\nqubit[0x989680]q;\n", 10_000_000),
        ("qasm3", "OPENQASM 3.0;\nqubit[10_000_000] q;\n", 10_000_000),
        ("qasm3", "OPENQASM 3.0; qreg q[10000000];", 10_000_000),
        ("qasm3", "OPENQASM 3.0;\nh $100000000;\n", 100_000_001),
        ("qasm3", "OPENQASM 3.0;\n/* a */ qubit[6] q; /* b */ qubit[6] r;", 12),
    ],
)
def test_qasm_registers_over_the_limit_are_refused(fmt: str, program: str, qubits: int) -> None:
    excess = check([{"format": fmt, "data": program}])
    assert excess is not None and (excess.rule, excess.actual) == ("max_qubits", qubits)


@pytest.mark.parametrize(
    ("fmt", "program", "qubits"),
    [
        ("qasm2", "OPENQASM 2.0;\n// qreg q[10000000];\nqreg q[3];\n", 3),
        ("qasm3", "OPENQASM 3.0;\n/* qubit[10000000] q;\n*/ qubit[3] q;\n", 3),
        ("qasm3", "OPENQASM 3.0; qubit[3] q;\ndef f(qubit[5] a, qubit b) { h a[0]; }", 3),
        ("qasm3", 'OPENQASM 3.0; qubit q; qubit r; bit b = "1";', 2),
        ("qasm3", 'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] c;', 2),
    ],
)
def test_comments_strings_and_parameters_are_not_declarations(
    fmt: str, program: str, qubits: int
) -> None:
    [declared] = declared_circuits([{"format": fmt, "data": program}])
    assert declared.qubits == qubits


@pytest.mark.parametrize(
    ("fmt", "program", "named"),
    [
        ("qasm2", 'OPENQASM 2.0;\ninclude "/etc/passwd";\nqreg q[1];', "'/etc/passwd'"),
        ("qasm2", 'OPENQASM 2.0;\ninclude "../../secret.inc";\n', "'../../secret.inc'"),
        ("qasm2", 'OPENQASM 2.0;\ninclude "stdgates.inc";\n', "'stdgates.inc'"),
        ("qasm2", 'OPENQASM 2.0;\ninclude\n  "/etc/hosts"  ;\n', "'/etc/hosts'"),
        ("qasm2", "OPENQASM 2.0;\ninclude /etc/passwd;\n", "'/etc/passwd;'"),
        ("qasm3", 'OPENQASM 3.0;\ninclude "/etc/passwd";\n', "'/etc/passwd'"),
        ("qasm3", "OPENQASM 3.0;\ninclude '/etc/passwd';\n", "'/etc/passwd'"),
        ("qasm3", 'OPENQASM 3.0;\ninclude "qelib1.inc";\n', "'qelib1.inc'"),
    ],
)
def test_only_the_standard_library_may_be_included(fmt: str, program: str, named: str) -> None:
    message = refusal([{"format": fmt, "data": program}])
    assert f"circuit 0 ({fmt}) includes {named}" in message
    assert "may be included" in message


def test_standard_includes_and_commented_includes_pass() -> None:
    for fmt, program in (
        ("qasm2", 'OPENQASM 2.0;\ninclude "qelib1.inc";\n// include "/etc/passwd";\n'),
        ("qasm3", "OPENQASM 3.0;\ninclude 'stdgates.inc';\n/* include \"/etc/passwd\"; */\n"),
    ):
        assert check([{"format": fmt, "data": program}]) is None


def test_register_sizes_must_be_integer_literals() -> None:
    assert "not an integer literal" in refusal(
        [{"format": "qasm3", "data": "OPENQASM 3.0; qubit[2*5000000] q;"}]
    )
    assert "not an integer literal" in refusal(
        [{"format": "qasm2", "data": "OPENQASM 2.0; qreg q[0x10];"}]
    )
    assert "a qreg size of 50 digits" in refusal(
        [{"format": "qasm2", "data": "OPENQASM 2.0; qreg q[" + "9" * 50 + "];"}]
    )
    assert "not of the form" in refusal(
        [{"format": "qasm2", "data": "OPENQASM 2.0; qreg q[" + "9" * 5000 + "];"}]
    )
    assert "not a short integer literal" in refusal(
        [{"format": "qasm3", "data": "OPENQASM 3.0; qubit[" + " " * 70 + "10000000] q;"}]
    )
    assert "without a size" in refusal([{"format": "qasm2", "data": "OPENQASM 2.0; qreg q;"}])
    assert "not of the form" in refusal([{"format": "qasm2", "data": "OPENQASM 2.0; qreg 5;"}])


def test_the_server_scans_a_bounded_share_and_leaves_the_rest_to_the_worker() -> None:
    over = "qreg q[99];\n"
    commented = "OPENQASM 2.0;\n" + "// a comment\n" * (SERVER_QASM_MARKERS + 1) + over
    long = "OPENQASM 2.0;\n" + " " * SERVER_QASM_CHARS + over
    small = {"format": "qasm2", "data": "OPENQASM 2.0;\n" + over}
    for program in (commented, long):
        entry = {"format": "qasm2", "data": program}
        full = check([entry])
        assert full is not None and full.rule == "max_qubits"
        assert check_declared([entry], RULES, "dev", server=True) is None
        # what comes after the server's share is the worker's too; what comes first is not
        assert check_declared([entry, small], RULES, "dev", server=True) is None
        first = check_declared([small, entry], RULES, "dev", server=True)
        assert first is not None and first.message.endswith("(circuit 0)")
