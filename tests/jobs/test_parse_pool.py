"""Circuits parsed in real worker processes with limits (jupyter_qsecure.jobs.parse_pool).

The hostile payloads here go straight to the pool, past the broker's declared-size checks
(jupyter_qsecure.jobs.declared): the pool is what bounds whatever gets past them.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import pytest
from qiskit import qpy

from jupyter_qsecure.jobs.canonical import circuit_summary, hash_many
from jupyter_qsecure.jobs.declared import SERVER_QASM_CHARS, OverPolicy, check_declared
from jupyter_qsecure.jobs.parse_pool import ParsePool, ParseRefused, ParseUnavailable
from jupyter_qsecure.jobs.parse_worker import decode_request, encode_request, parse_circuits
from jupyter_qsecure.jobs.policy import Policy
from jupyter_qsecure.testing.circuits import ghz
from jupyter_qsecure.testing.circuits import nested_gates_qasm2 as nested_gates


def qpy_entry(circuit: object) -> dict[str, str]:
    buffer = io.BytesIO()
    qpy.dump(circuit, buffer)
    return {"format": "qpy", "data": base64.b64encode(buffer.getvalue()).decode()}


@pytest.fixture
def pool() -> Iterator[ParsePool]:
    parsers = ParsePool(1, memory_mb=512, cpu_seconds=1)
    yield parsers
    parsers.close()


def test_a_worker_parses_as_the_server_would(pool: ParsePool) -> None:
    items = [qpy_entry([ghz(3), ghz(4)]), {"format": "qasm2", "data": nested_gates(3)}]
    parsed = pool.parse(items, None)
    here = parse_circuits(items, None)
    assert parsed.hashes == hash_many(here)
    assert parsed.summaries == [circuit_summary(c) for c in here]
    assert pool.parse([items[0]], None).qpy == items[0]["data"]  # one QPY entry: as sent
    assert pool.started == 1  # one worker served every request


def test_a_circuit_over_the_cpu_limit_costs_only_its_worker(pool: ParsePool) -> None:
    with pytest.raises(ParseRefused) as refused:
        pool.parse([{"format": "qasm2", "data": nested_gates(20)}], None)
    assert "CPU limit of 1 s" in refused.value.message
    assert "job_parse_cpu_seconds" in (refused.value.hint or "")
    assert pool.parse([qpy_entry(ghz(2))], None).summaries[0]["num_qubits"] == 2
    assert pool.started == 2  # the stopped worker was replaced


def test_a_circuit_over_the_memory_limit_costs_only_its_worker(pool: ParsePool) -> None:
    with pytest.raises(ParseRefused) as refused:
        pool.parse([{"format": "qasm2", "data": "OPENQASM 2.0; qreg q[200000000];"}], None)
    assert "512 MiB" in refused.value.message
    assert pool.parse([qpy_entry(ghz(2))], None).hashes


def test_a_worker_past_the_timeout_is_killed() -> None:
    slow = ParsePool(1, memory_mb=0, cpu_seconds=0, timeout=3)  # no CPU limit: the clock
    try:
        with pytest.raises(ParseRefused, match="took longer than 3 s"):
            slow.parse([{"format": "qasm2", "data": nested_gates(24)}], None)
        assert slow.parse([qpy_entry(ghz(2))], None).hashes
    finally:
        slow.close()


def test_the_worker_reads_no_file_an_include_names(pool: ParsePool) -> None:
    program = 'OPENQASM 2.0;\ninclude "/etc/passwd";\nqreg q[1];\n'
    with pytest.raises(ParseRefused) as refused:
        pool.parse([{"format": "qasm2", "data": program}], None)
    assert "unable to find '/etc/passwd'" in refused.value.message
    assert "root" not in refused.value.message  # the file's first token, when it was read


def test_malformed_circuits_are_refused_and_the_worker_kept(pool: ParsePool) -> None:
    with pytest.raises(ParseRefused, match=r"circuit 0 \(qasm2\) is malformed"):
        pool.parse([{"format": "qasm2", "data": "OPENQASM 2.0; qreg q[2]; frob q[0];"}], None)
    with pytest.raises(ParseRefused, match="'bind' must map parameter names to numbers"):
        pool.parse([qpy_entry(ghz(2))], {"theta": "pi"})
    assert pool.parse([qpy_entry(ghz(2))], None).hashes
    assert pool.started == 1


def test_a_closed_pool_refuses() -> None:
    closed = ParsePool(1)
    closed.close()
    with pytest.raises(ParseUnavailable, match="shut down"):
        closed.parse([qpy_entry(ghz(2))], None)
    assert closed.started == 0


def test_the_worker_checks_declared_sizes_before_it_parses(pool: ParsePool) -> None:
    rules = Policy.load(None, "dev").rules
    # Longer than the server scans itself: the worker scans it, under its limits.
    padding = "// " + "x" * 77 + "\n"
    program = "OPENQASM 2.0;\n" + padding * (SERVER_QASM_CHARS // len(padding) + 1)
    assert check_declared([{"format": "qasm2", "data": program + "qreg q[99];"}], rules, "dev")
    assert (
        check_declared(
            [{"format": "qasm2", "data": program + "qreg q[99];"}], rules, "dev", server=True
        )
        is None
    )
    with pytest.raises(OverPolicy) as over:
        pool.parse(
            [{"format": "qasm2", "data": program + "qreg q[10000000];"}],
            None,
            rules=rules,
            environment="dev",
        )
    assert (over.value.excess.rule, over.value.excess.actual) == ("max_qubits", 10_000_000)
    with pytest.raises(ParseRefused, match="includes '/etc/passwd'"):
        pool.parse(
            [{"format": "qasm2", "data": program + 'include "/etc/passwd";'}],
            None,
            rules=rules,
            environment="dev",
        )
    parsed = pool.parse(
        [{"format": "qasm2", "data": program + "qreg q[3];\ncreg c[3];\nmeasure q -> c;"}],
        None,
        rules=rules,
        environment="dev",
    )
    assert parsed.summaries[0]["num_qubits"] == 3
    assert pool.started == 1


def test_any_text_crosses_the_pipe_intact() -> None:
    items = [
        {"format": "qasm3", "data": "OPENQASM 3.0; // \u00e9\u4e2d \ud800 \n qubit q;"},
        {"format": "qpy", "data": ""},
    ]
    request = decode_request(encode_request(items, {"θ": 1.5}, None, "dev"))
    assert request["circuits"] == items and request["bind"] == {"θ": 1.5}
