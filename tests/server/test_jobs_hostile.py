"""Hostile circuits through the real server (issue 12, cases 1, 3 and 4).

A kernel that sends circuits crafted to cost the server (a QPY header claiming 369
million qubits, a 40-byte ``qreg q[10000000];``), a circuit that passes every size check
but is costly to parse, or an OpenQASM ``include`` of a server file: each gets a clear
4xx, the server's memory does not grow, and the server, ``/api/status`` and another kernel
keep working. The server under test is pytest's own process (pytest-jupyter), so its
resident memory is this process's.
"""

from __future__ import annotations

import json
import struct
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from jobs_helpers import Broker, job, qpy_b64, run_cell, server_config, start_kernel
from qiskit import QuantumCircuit

from jupyter_qsecure.jobs.declared import SERVER_QASM_CHARS
from jupyter_qsecure.ledger import EntryFilter
from jupyter_qsecure.testing.circuits import ghz, nested_gates_qasm2

#: The server's memory may move a little between two requests; never by this much.
RSS_SLACK = 100 << 20
#: Comment lines that make a program longer than the server scans itself.
PADDING = ("// " + "x" * 77 + "\n") * (SERVER_QASM_CHARS // 80 + 1)


@pytest.fixture
def jp_server_config(qsecure_data_dir: Path, policy_file: Path) -> dict[str, Any]:
    return server_config(
        qsecure_data_dir,
        policy_file,
        job_workers=1,
        job_max_payload_bytes=200_000,
        job_parse_workers=1,
        job_parse_cpu_seconds=1,
    )


def circuits_job(circuits: list[dict[str, str]]) -> dict[str, Any]:
    return {"circuits": circuits, "shots": 64, "request_id": uuid.uuid4().hex, "wait": True}


def qasm_job(fmt: str, program: str) -> dict[str, Any]:
    return circuits_job([{"format": fmt, "data": program}])


def claiming_qubits(qc: QuantumCircuit, qubits: int) -> str:
    """Base64 QPY of ``qc`` whose circuit header claims ``qubits`` qubits (format 16+:
    file header, program type key, circuit table, then the header's ``num_qubits`` at 5)."""
    import base64

    data = bytearray(base64.b64decode(qpy_b64(qc)))
    (offset,) = struct.unpack_from("!Q", data, 20)
    struct.pack_into("!I", data, offset + 5, qubits)
    return base64.b64encode(bytes(data)).decode()


def resident() -> int:
    return int(psutil.Process().memory_info().rss)


async def still_serving(broker: Broker, other: Any) -> None:
    """``/api/status`` answers and another kernel runs a cell and a job to the end."""
    status = await broker.fetch("qsecure", "api", "status")
    assert status.code == 200 and json.loads(status.body)["environment"] == "dev"
    out = await run_cell(
        other,
        "from jupyter_qsecure.testing.circuits import ghz\n"
        "qc = ghz(3)\n"
        "r = %qsubmit qc --shots 64\n"
        "print('COUNTS', sorted(r.counts), r.verification.verified)\n",
    )
    assert "COUNTS ['000', '111'] True" in out


def last_decision(broker: Broker) -> dict[str, Any]:
    return dict(broker.ledger.entries(EntryFilter(kinds=["job.decided"]))[-1].body)


async def warm_broker(broker: Broker) -> tuple[str, Any]:
    """A kernel's token for the hostile payload and another kernel's client (to check the
    broker still serves it), after one ordinary job has warmed the broker up."""
    _, token, _ = await start_kernel(broker.fetch, broker.ws_fetch, broker.app)
    _, _, other = await start_kernel(broker.fetch, broker.ws_fetch, broker.app)
    assert (await broker.post(token, job(ghz(3))))[0] == 200
    return token, other


async def test_a_qpy_header_claiming_369_million_qubits_costs_nothing(
    broker: Broker,
) -> None:
    token, other = await warm_broker(broker)
    before = resident()
    hostile = claiming_qubits(ghz(3), 369_098_754)
    code, body, _ = await broker.post(token, circuits_job([{"format": "qpy", "data": hostile}]))
    assert code == 403 and body["rule"] == "max_qubits" and body["limit"] == 10
    assert "qubits 369098754 exceeds dev limit 10" in body["message"]
    assert resident() - before < RSS_SLACK
    decided = last_decision(broker)
    assert decided["allowed"] is False and decided["rule"] == "max_qubits"
    assert decided["actual"] == 369_098_754 and decided["decision_id"] == body["decision_id"]
    assert broker.service.parser.started == 1  # the hostile payload reached no parser
    await still_serving(broker, other)


async def test_huge_qasm_registers_are_refused_before_they_are_allocated(
    broker: Broker,
) -> None:
    token, other = await warm_broker(broker)
    before = resident()
    for fmt, program, qubits in (
        ("qasm2", "OPENQASM 2.0;\nqreg q[10000000];\n", 10_000_000),
        ("qasm3", "OPENQASM 3.0;\nqubit[10000000] q;\n", 10_000_000),
        ("qasm3", 'OPENQASM 3.0;\ninclude "stdgates.inc";\nh $100000000;\n', 100_000_001),
        # too long for the server's own scan: the parse worker scans it before parsing
        ("qasm2", "OPENQASM 2.0;\n" + PADDING + "qreg q[10000000];\n", 10_000_000),
    ):
        code, body, _ = await broker.post(token, qasm_job(fmt, program))
        assert code == 403 and body["rule"] == "max_qubits", (fmt, program, body)
        assert f"qubits {qubits} exceeds dev limit 10" in body["message"]
        assert last_decision(broker)["decision_id"] == body["decision_id"]
    assert resident() - before < RSS_SLACK
    await still_serving(broker, other)


async def test_a_circuit_too_costly_to_parse_costs_only_a_parse_worker(
    broker: Broker,
) -> None:
    token, other = await warm_broker(broker)
    before = resident()
    # One qubit, one gate: within every declared limit; 2**18 steps to canonicalise.
    code, body, _ = await broker.post(token, qasm_job("qasm2", nested_gates_qasm2(18)))
    assert code == 422, body
    assert "CPU limit of 1 s" in body["message"] and "job_parse_cpu_seconds" in body["hint"]
    assert resident() - before < RSS_SLACK
    code, body, _ = await broker.post(token, job(ghz(4)))  # the next job gets a fresh worker
    assert code == 200 and set(body["result"]["counts"][0]) == {"0000", "1111"}
    assert broker.service.parser.started == 2
    await still_serving(broker, other)


async def test_an_include_of_anything_but_the_standard_library_is_refused_unread(
    broker: Broker,
) -> None:
    _, token, _ = await start_kernel(broker.fetch, broker.ws_fetch, broker.app)
    for fmt, program, named, allowed in (
        ("qasm2", 'OPENQASM 2.0;\ninclude "/etc/passwd";\nqreg q[1];\n', "/etc/passwd", "qelib1"),
        ("qasm2", 'OPENQASM 2.0;\ninclude "../../../../../etc/hostname";\n', "hostname", "qelib1"),
        ("qasm3", 'OPENQASM 3.0;\ninclude "/etc/passwd";\nqubit q;\n', "/etc/passwd", "stdgates"),
    ):
        code, body, _ = await broker.post(token, qasm_job(fmt, program))
        assert code == 422, body
        assert f"circuit 0 ({fmt}) includes '" in body["message"] and named in body["message"]
        assert f"only '{allowed}.inc'" in body["message"]
        assert "root" not in json.dumps(body)  # passwd's first token, when it was read
    assert broker.service.parser.started == 0  # refused before any parser saw the text
    standard = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;\n'
    code, body, _ = await broker.post(token, qasm_job("qasm2", standard))
    assert code == 200 and set(body["result"]["counts"][0]) == {"00", "11"}


async def test_max_qubits_is_accepted_and_one_more_refused_unparsed(
    broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, token, _ = await start_kernel(broker.fetch, broker.ws_fetch, broker.app)
    parser = broker.service.parser
    parsed: list[Any] = []
    real_parse = parser.parse

    def counting_parse(items: Any, bind: Any, **checks: Any) -> Any:
        parsed.append(items)
        return real_parse(items, bind, **checks)

    monkeypatch.setattr(parser, "parse", counting_parse)
    qasm = "OPENQASM 2.0;\nqreg q[{n}];\ncreg c[{n}];\nmeasure q -> c;\n"
    for limit, over in (
        (job(ghz(10)), job(ghz(11))),
        (qasm_job("qasm2", qasm.format(n=10)), qasm_job("qasm2", qasm.format(n=11))),
    ):
        code, body, _ = await broker.post(token, limit)
        # 10 qubits is allowed; it also reaches the test policy's heavy-run threshold (8)
        assert code == 202 and body["status"] == "pending_approval", body
        assert body["decision"]["allowed"] is True
        code, body, _ = await broker.post(token, over)
        assert code == 403 and body["rule"] == "max_qubits" and body["limit"] == 10
        assert "qubits 11 exceeds dev limit 10" in body["message"]
    assert len(parsed) == 2  # only the two circuits at the limit were parsed
