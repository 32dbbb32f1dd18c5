"""``%qsubmit`` / ``%%qsubmit`` in a real IPython ``InteractiveShell``.

The shell loads the jupyter-qsecure extension as the kernelspec does. Each cell runs
with an execute_request whose metadata carries the credentials contract (a kernel
token and ``broker_url``), exposed the way ipykernel does (``kernel.get_parent``), and
the broker is the fake one of ``tests/jobs/test_client.py``: real HTTP, real Aer, and
manifests/results signed with the real manifest code and a local Ed25519 key.
"""

from __future__ import annotations

import html
import importlib.util
import secrets as pysecrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kernel_fakes import FakeKernel
from real_kernel import running_kernel

from jupyter_qsecure import secrets as qsecrets
from jupyter_qsecure.jobs.client import JobDenied
from jupyter_qsecure.jobs.result import (
    JobFailed,
    JobHandle,
    QSubmitResult,
    ResultVerificationFailed,
)
from jupyter_qsecure.testing.circuits import ghz


def _fake_broker_module() -> Any:
    name = "test_client"
    module = sys.modules.get(name)
    if module is not None and hasattr(module, "FakeBroker"):
        return module
    path = Path(__file__).resolve().parents[1] / "jobs" / "test_client.py"
    spec = importlib.util.spec_from_file_location("qsecure_fake_broker", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["qsecure_fake_broker"] = module
    spec.loader.exec_module(module)
    return module


fb = _fake_broker_module()
FakeBroker = fb.FakeBroker


def credentials(broker: FakeBroker, **overrides: Any) -> dict[str, Any]:
    block = {
        "v": 1,
        "kernel_id": "k-" + pysecrets.token_hex(4),
        "environment": "test",
        "identity": {"user": "alice", "accessor": "acc" + pysecrets.token_hex(8), "policies": []},
        "vault_addr": "http://127.0.0.1:8200",
        "token": broker.token,
        "secrets": {},
        "leases": {},
        "errors": {},
        "error": None,
        "broker_url": broker.url,
    }
    block.update(overrides)
    return block


class Session:
    """An InteractiveShell whose every cell carries credentials for ``broker``."""

    def __init__(self, shell: Any, kernel: FakeKernel, broker: FakeBroker) -> None:
        self.shell = shell
        self.kernel = kernel
        self.broker = broker

    def run(self, code: str, block: dict[str, Any] | None = None, *, creds: bool = True) -> Any:
        meta = {"qsecure": block or credentials(self.broker)} if creds else {}
        self.kernel.parent = {"header": {"msg_type": "execute_request"}, "metadata": meta}
        return self.shell.run_cell(code, store_history=False)

    def ok(self, code: str, **kwargs: Any) -> Any:
        result = self.run(code, **kwargs)
        assert result.error_before_exec is None and result.error_in_exec is None, (
            result.error_before_exec or result.error_in_exec
        )
        return result.result

    @property
    def ns(self) -> dict[str, Any]:
        return self.shell.user_ns


@pytest.fixture(scope="module")
def shell() -> Iterator[Any]:
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.extension_manager.load_extension("jupyter_qsecure.kernel")
    assert "qsubmit" in ip.magics_manager.magics["line"]
    assert "qsubmit" in ip.magics_manager.magics["cell"]
    yield ip


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[FakeBroker]:
    fake = FakeBroker(tmp_path)
    yield fake
    fake.close()


@pytest.fixture
def session(shell: Any, broker: FakeBroker) -> Iterator[Session]:
    kernel = FakeKernel()
    shell.kernel = kernel
    shell.user_ns.update({"qsecure_test": True})
    # a fresh magics instance state per test: forget cached keys of earlier brokers
    magics = shell.magics_manager.registry["QSubmitMagics"]
    magics._keyrings.clear()
    try:
        yield Session(shell, kernel, broker)
    finally:
        del shell.kernel
        shell.reset(new_session=False)


def last_body(broker: FakeBroker) -> dict[str, Any]:
    import json

    posts = [r for r in broker.requests if r["method"] == "POST"]
    return json.loads(posts[-1]["body"])


def shown(capsys: pytest.CaptureFixture[str]) -> str:
    out = capsys.readouterr()
    return out.out + out.err


# ---------------------------------------------------------------------------- success


def test_ghz_line_form_returns_verified_counts(session: Session, capsys) -> None:
    from jupyter_qsecure.jobs.canonical import circuit_hash

    session.ns["qc"] = ghz(5)
    session.ok("r = %qsubmit qc --shots 512 --seed 7 --tag demo")
    r = session.ns["r"]
    assert isinstance(r, QSubmitResult)
    assert set(r.counts) == {"00000", "11111"} and sum(r.counts.values()) == 512
    assert r.verified and r.verification.hash_sources == ("local",)
    assert r.circuit_hashes == [circuit_hash(session.ns["qc"])]
    assert r.shots == 512 and r.seed == 7 and r.backend == "aer_simulator"
    assert r.identity["user"] == "alice" and r.decision["decision_id"].startswith("dec-")
    assert len(r.manifest_digest) == 64 and len(r.result_digest) == 64
    body = last_body(session.broker)
    assert body["circuits"][0]["format"] == "qpy" and body["tags"] == ["demo"]
    assert body["bind"] is None and body["backend"] == "aer_simulator"
    line = r.provenance()
    assert line.startswith(f"job {r.job_id[:8]}… · aer_simulator · 512 shots · seed 7 · ")
    assert f"manifest sha256 {r.manifest_digest[:8]}… signed by local key ed25519:" in line
    assert line.endswith("v1 · verified ✓")
    # the same seed gives the same counts; the keys were fetched once for the session
    session.ok("r2 = %qsubmit qc --shots 512 --seed 7")
    assert session.ns["r2"].counts == r.counts
    assert sum(1 for q in session.broker.requests if q["path"].endswith("/keys")) == 1
    # bare form: the result is the cell's value (displayed)
    value = session.ok("%qsubmit qc --shots 16 --seed 1")
    assert isinstance(value, QSubmitResult)
    assert session.broker.token not in shown(capsys)


def test_list_of_circuits(session: Session) -> None:
    from qiskit import QuantumCircuit

    one = QuantumCircuit(1, name="one")
    one.x(0)
    one.measure_all()
    session.ns["circs"] = [ghz(2), one]
    session.ok("r = %qsubmit circs --shots 100 --seed 3")
    r = session.ns["r"]
    assert isinstance(r.counts, list) and len(r.counts) == 2
    assert set(r.counts[0]) <= {"00", "11"} and r.counts[1] == {"1": 100}
    assert r.get_counts(1) == {"1": 100}
    assert len(r.circuit_hashes) == 2 and r.verification.hash_sources == ("local", "local")
    assert "2 circuits" in r.provenance()
    session.ns["pair"] = (ghz(2),)
    session.ok("r = %qsubmit pair --shots 10")
    assert isinstance(session.ns["r"].counts, list)  # a tuple of one stays a list


QASM2 = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0], q[1];
measure q -> c;
"""

QASM3 = """// Bell pair
OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c = measure q;
"""


@pytest.mark.parametrize(("source", "fmt"), [(QASM2, "qasm2"), (QASM3, "qasm3")])
def test_cell_form_with_qasm(session: Session, source: str, fmt: str) -> None:
    r = session.ok(f"%%qsubmit --shots 200 --seed 5\n{source}")
    assert isinstance(r, QSubmitResult) and r.verified
    assert set(r.counts) <= {"00", "11"} and sum(r.counts.values()) == 200
    assert r.verification.hash_sources == ("broker",)
    assert "QASM hash by broker" in r.provenance()
    assert "computed by the broker" in r._repr_html_()
    body = last_body(session.broker)
    assert body["circuits"] == [{"format": fmt, "data": source}]


def test_bind_parameters_locally(session: Session) -> None:
    import math

    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter

    from jupyter_qsecure.jobs.canonical import circuit_hash

    theta, phi = Parameter("theta"), Parameter("phi")
    pc = QuantumCircuit(1, name="rot")
    pc.rx(theta, 0)
    pc.rz(phi, 0)
    pc.measure_all()
    session.ns["pc"] = pc
    session.ok("r = %qsubmit pc --bind theta=pi --bind 'phi = pi/2' --shots 64 --seed 2")
    r = session.ns["r"]
    assert r.verified and r.counts == {"1": 64}
    expected = pc.assign_parameters({theta: math.pi, phi: math.pi / 2})
    assert r.circuit_hashes == [circuit_hash(expected)]
    body = last_body(session.broker)
    assert body["bind"] is None  # bound here, before hashing
    sent = fb._load_circuit(body["circuits"][0])
    assert not sent.parameters
    assert pc.parameters  # the user's circuit is untouched


def test_unbound_parameters_refused_locally(session: Session, capsys) -> None:
    from IPython.core.error import UsageError
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter

    pc = QuantumCircuit(1, name="rot")
    pc.rx(Parameter("theta"), 0)
    pc.ry(Parameter("alpha"), 0)
    pc.measure_all()
    session.ns["pc"] = pc
    before = len(session.broker.requests)
    res = session.run("%qsubmit pc")
    assert type(res.error_in_exec) is UsageError
    message = str(res.error_in_exec)
    assert "unbound parameters: alpha, theta" in message and "--bind" in message
    res = session.run("%qsubmit pc --bind alpha=0.1")
    assert "unbound parameters: theta" in str(res.error_in_exec)
    res = session.run("%qsubmit pc --bind alpha=0.1 --bind theta=0.2 --bind nope=1")
    assert "no circuit has a parameter named nope" in str(res.error_in_exec)
    res = session.run("%qsubmit pc --bind theta=__import__('os')")
    assert "is not a number" in str(res.error_in_exec)
    assert len(session.broker.requests) == before  # nothing reached the broker
    text = shown(capsys)
    assert "UsageError" in text and "Traceback" not in text


def test_non_circuit_objects_and_bad_arguments(session: Session, capsys) -> None:
    from IPython.core.error import UsageError

    session.ns["x"] = "OPENQASM 2.0;"
    session.ns["mixed"] = [ghz(2), 42]
    cases = {
        "%qsubmit x": "x is a str, not a QuantumCircuit",
        "%qsubmit mixed": "mixed[1] is a int, not a QuantumCircuit",
        "%qsubmit missing": "name 'missing' is not defined",
        "%qsubmit x[0]": "is not a variable name",
        "%qsubmit": "name a circuit",
        "%qsubmit qc --shots 0": "--shots must be a positive integer",
        "%qsubmit qc --shots many": "invalid int value",
        "%qsubmit qc --frobnicate": "unrecognized arguments",
        "%qsubmit --status a --cancel b": "either --status or --cancel",
        "%%qsubmit\nh q[0];": "not OpenQASM",
        "%%qsubmit qc\nOPENQASM 3.0;": "not a circuit name",
    }
    session.ns["qc"] = ghz(2)
    for code, needle in cases.items():
        res = session.run(code)
        assert type(res.error_in_exec) is UsageError, code
        assert needle in str(res.error_in_exec), (code, str(res.error_in_exec))
    text = shown(capsys)
    assert "Traceback" not in text
    assert session.broker.requests == []


def test_no_wait_handle(session: Session) -> None:
    session.ns["qc"] = ghz(3)
    session.broker.polls_to_finish = 1
    session.ok("h = %qsubmit qc --no-wait --shots 128 --seed 11")
    h = session.ns["h"]
    assert isinstance(h, JobHandle) and h.last_status == "queued"
    assert h.job_id in repr(h) and session.broker.token not in repr(vars(h))
    assert last_body(session.broker)["wait"] is False
    session.ok("s = h.status()")
    assert session.ns["s"] == "running"
    session.ok("r = h.result(10)")
    r = session.ns["r"]
    assert isinstance(r, QSubmitResult) and r.verified and r.job_id == h.job_id
    assert sum(r.counts.values()) == 128 and r.verification.hash_sources == ("local",)
    assert session.ok("h.result()") is r  # cached
    # outside a cell (no credentials) a handle says so clearly
    with pytest.raises(qsecrets.NoCredentials):
        h.status()


def test_status_and_cancel(session: Session) -> None:
    session.ns["qc"] = ghz(2)
    session.broker.polls_to_finish = 10**6
    session.ok("h = %qsubmit qc --no-wait")
    job_id = session.ns["h"].job_id
    st = session.ok(f"%qsubmit --status {job_id}")
    assert isinstance(st, JobHandle) and st.last_status == "running"
    assert f"job {job_id} · running" in repr(st)
    cancelled = session.ok(f"%qsubmit --cancel {job_id}")
    assert cancelled.last_status == "cancelled"
    assert session.ok("h.status()") == "cancelled"
    from jupyter_qsecure.jobs.result import JobCancelled

    res = session.run("h.result(5)")
    assert isinstance(res.error_in_exec, JobCancelled)
    from jupyter_qsecure.jobs.client import JobNotFound

    res = session.run("%qsubmit --status no-such-job")
    assert isinstance(res.error_in_exec, JobNotFound)


def test_waiting_job_that_was_queued_is_polled(session: Session) -> None:
    session.ns["qc"] = ghz(2)
    session.broker.polls_to_finish = 2  # the broker answers 202 although we wait
    r = session.ok("%qsubmit qc --shots 50 --seed 4")
    assert isinstance(r, QSubmitResult) and r.verified


# ---------------------------------------------------------------------------- verification


def _fails(session: Session, capsys, needle: str) -> ResultVerificationFailed:
    session.ns["qc"] = ghz(3)
    res = session.run("r = %qsubmit qc --shots 256 --seed 9")
    err = res.error_in_exec
    assert isinstance(err, ResultVerificationFailed), err
    assert needle in str(err), str(err)
    assert "r" not in session.ns  # no counts returned
    text = shown(capsys)
    assert "ResultVerificationFailed" in text and "withheld" in text
    assert "Traceback" not in text and session.broker.token not in text
    return err


def test_tampered_result_is_refused(session: Session, capsys) -> None:
    session.broker.tamper = True
    _fails(session, capsys, "counts do not match the signed result")


def test_wrong_signing_key_is_refused(session: Session, capsys, tmp_path: Path) -> None:
    session.broker.use_wrong_key(tmp_path)
    err = _fails(session, capsys, "manifest does not verify")
    assert err.failed_checks == ["manifest signature"]  # the first check refuses it


@pytest.mark.parametrize("bad", ["manifest", "result"])
def test_one_envelope_signed_by_an_untrusted_key_is_refused_by_that_check(
    session: Session, capsys, tmp_path: Path, bad: str
) -> None:
    # one envelope signed by a key the broker does not publish, the other one valid:
    # the failure is named by its check, not only by the wording of the message
    from jupyter_qsecure.signing.signers import Ed25519FileSigner

    setattr(session.broker, f"{bad}_signer", Ed25519FileSigner(tmp_path / "untrusted.pem"))
    session.ns["qc"] = ghz(3)
    res = session.run("r = %qsubmit qc --shots 256 --seed 9")
    err = res.error_in_exec
    assert type(err) is ResultVerificationFailed
    assert err.failed_checks == [f"{bad} signature"]
    assert len(err.failures) == 1 and err.job_id in session.broker.jobs
    assert "r" not in session.ns  # no counts returned
    assert "Traceback" not in shown(capsys)


def test_manifest_naming_another_circuit_is_refused(session: Session, capsys) -> None:
    session.broker.swap_subject = True
    _fails(session, capsys, "the signed manifest names circuit sha256 000000000000")


def test_result_linked_to_another_manifest_is_refused(session: Session, capsys) -> None:
    session.broker.relink = True
    _fails(session, capsys, "linked to another manifest")


def test_replayed_result_for_the_same_circuit_is_refused(session: Session, capsys) -> None:
    session.ns["qc"] = ghz(3)
    first = session.ok("%qsubmit qc --shots 256")  # no seed: the broker picks one
    assert first.verified
    session.broker.replay_last = True  # the same, validly signed record again
    err = _fails(session, capsys, "the signed manifest answers another request")
    assert err.job_id == first.job_id and "request id" in err.failed_checks


def test_rotated_key_is_fetched_again(session: Session, tmp_path: Path) -> None:
    from jupyter_qsecure.signing.signers import Ed25519FileSigner

    session.ns["qc"] = ghz(2)
    session.ok("%qsubmit qc --shots 10")
    session.broker.signer = Ed25519FileSigner(tmp_path / "rotated.pem")
    session.broker.published = [k.model_dump() for k in session.broker.signer.public_keys()]
    r = session.ok("%qsubmit qc --shots 10")
    assert r.verified
    assert sum(1 for q in session.broker.requests if q["path"].endswith("/keys")) == 2


# ---------------------------------------------------------------------------- errors


def test_denial_and_failure_are_clear(session: Session, capsys) -> None:
    session.ns["qc"] = ghz(2)
    session.broker.deny = {
        "rule": "max_shots",
        "limit": 100000,
        "message": "shots 200000 exceed test limit 100000",
    }
    res = session.run("%qsubmit qc --shots 200000")
    err = res.error_in_exec
    assert isinstance(err, JobDenied) and err.rule == "max_shots"
    text = shown(capsys)
    assert "JobDenied" in text and "shots 200000 exceed test limit 100000" in text
    assert "Traceback" not in text and session.broker.token not in text
    session.broker.deny = None
    session.broker.fail = "worker crashed"
    res = session.run("%qsubmit qc")
    assert isinstance(res.error_in_exec, JobFailed)
    assert "worker crashed" in str(res.error_in_exec)


def test_without_credentials_or_broker_url(session: Session, capsys) -> None:
    session.ns["qc"] = ghz(2)
    res = session.run("%qsubmit qc", creds=False)
    assert isinstance(res.error_in_exec, qsecrets.NoCredentials)
    block = credentials(session.broker)
    del block["broker_url"]
    res = session.run("%qsubmit qc", block)
    assert "no job broker URL" in str(res.error_in_exec)
    res = session.run("%qsubmit qc", credentials(session.broker, token="s.wrong-token-xyz"))
    assert "refused this kernel's token" in str(res.error_in_exec)
    res = session.run(
        "%qsubmit qc",
        credentials(session.broker, error="OpenBao unreachable", token=None),
    )
    assert "OpenBao unreachable" in str(res.error_in_exec)
    text = shown(capsys)
    assert "Traceback" not in text and "s.wrong-token-xyz" not in text


def test_html_and_text_reprs(session: Session) -> None:
    session.ns["qc"] = ghz(3)
    r = session.ok("%qsubmit qc --shots 300 --seed 21")
    data, _ = session.shell.display_formatter.format(r)
    page = data["text/html"]
    assert "<svg" in page and page.count('class="bar"') == len(r.counts) == 2
    assert "000" in page and "111" in page
    assert html.escape(r.provenance()) in page
    assert "verified ✓" in page and session.broker.token not in page
    text = data["text/plain"]
    assert text.splitlines()[0] == r.provenance()
    assert "'000'" in text and session.broker.token not in text
    assert session.broker.token not in repr(r)


# ---------------------------------------------------------------------------- real kernel


def test_in_the_real_qsecure_kernel(tmp_path_factory, broker: FakeBroker) -> None:
    """The installed "Python 3 (qsecure)" kernel: credentials from execute_request
    metadata (ipykernel's get_parent), the HTML histogram on the wire, no token in any
    message, and a short error for a tampered result."""
    with running_kernel(tmp_path_factory.mktemp("qsecure-kernel")) as kernel:
        block = credentials(broker)
        run = kernel.execute(
            "from qiskit import QuantumCircuit\n"
            "qc = QuantumCircuit(3, name='ghz3'); qc.h(0); qc.cx(0, 1); qc.cx(1, 2)\n"
            "qc.measure_all()\n"
            "%qsubmit qc --shots 400 --seed 13",
            {"qsecure": block},
        )
        assert run.ok, run.error
        results = [m for m in run.messages if m["msg_type"] == "execute_result"]
        assert len(results) == 1
        data = results[0]["content"]["data"]
        assert "<svg" in data["text/html"] and "verified ✓" in data["text/html"]
        assert "400 shots · seed 13" in data["text/plain"]
        assert broker.token not in run.wire_text()

        broker.tamper = True
        bad = kernel.execute("r = %qsubmit qc --shots 400 --seed 13", {"qsecure": block})
        assert not bad.ok and bad.error is not None
        assert bad.error["ename"] == "ResultVerificationFailed"
        assert len(bad.error["traceback"]) <= 2
        assert "withheld" in "\n".join(bad.error["traceback"])
        assert broker.token not in bad.wire_text()
        check = kernel.execute("print('r' in globals())")
        assert check.stdout.strip() == "False"
