"""%qsubmit through the real server: broker REST API, policy, signatures, ledger, replay.

Embedded defaults (no OpenBao: local broker tokens and a local Ed25519 job key), a
real qsecure kernel, Aer in real worker processes.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from qiskit import QuantumCircuit, qpy
from server_helpers import start, stdout_of

from jupyter_qsecure.jobs import replay as replay_module
from jupyter_qsecure.kernel.install import install_kernelspec
from jupyter_qsecure.ledger import EntryFilter
from jupyter_qsecure.testing.circuits import ghz

POLICY = """
version = "test-1"
[dev]
max_qubits = 10
max_depth = 40
max_circuits_per_job = 4
max_shots = 100000
allowed_gates = "*"
allowed_backends = ["aer_simulator"]
allowed_methods = ["automatic", "statevector"]
allowed_noise = ["depolarizing-1e-3"]
jobs_per_minute = 1000
shots_per_day = 100000000
[dev.heavy_run]
qubits = 8
"""


def write_policy(path: Path, *, jobs_per_minute: int = 1000) -> Path:
    """POLICY at ``path``, with another rate limit when given."""
    path.write_text(
        POLICY.replace("jobs_per_minute = 1000", f"jobs_per_minute = {jobs_per_minute}")
    )
    return path


def server_config(data_dir: Path, policy: Path, **qsecure: Any) -> dict[str, Any]:
    """Server config with the extension, ``policy`` and QSecure traits ``qsecure``."""
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_qsecure_server": True}},
        "QSecure": {"data_dir": str(data_dir), "policy_file": str(policy), **qsecure},
    }


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "policy.toml")


@pytest.fixture
def jp_server_config(qsecure_data_dir: Path, policy_file: Path) -> dict[str, Any]:
    return server_config(
        qsecure_data_dir, policy_file, job_workers=1, job_max_payload_bytes=200_000
    )


def qpy_b64(qc: QuantumCircuit) -> str:
    buffer = io.BytesIO()
    qpy.dump(qc, buffer)
    return base64.b64encode(buffer.getvalue()).decode()


async def start_kernel(jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any) -> tuple[str, str, Any]:
    """A qsecure kernel that has executed once: (kernel id, its token, its client)."""
    install_kernelspec(user=True)
    kernel_id, client = await start(jp_fetch, jp_ws_fetch, "qsecure", "legacy")
    await client.execute("pass")  # the first execution issues the kernel's token
    creds = jp_serverapp.web_app.settings["qsecure_credentials"].broker.cached(kernel_id)
    return kernel_id, creds.token, client


async def kernel_token(jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any) -> tuple[str, Any]:
    _, token, client = await start_kernel(jp_fetch, jp_ws_fetch, jp_serverapp)
    return token, client


async def post(
    http_server_client: Any, base: str, token: str | None, body: Any
) -> tuple[int, dict[str, Any], Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    response = await http_server_client.fetch(
        f"{base.rstrip('/')}/qsecure/api/jobs",
        method="POST",
        body=raw,
        headers=headers,
        raise_error=False,
    )
    return response.code, json.loads(response.body or b"{}"), response


async def run_cell(client: Any, code: str) -> str:
    """Execute ``code`` in the kernel; its stdout, after checking it raised nothing."""
    messages = await client.execute(code, timeout=120)
    errors = [m["content"] for m in messages if m["header"]["msg_type"] == "error"]
    assert not errors, errors
    return stdout_of(messages)


@dataclass
class Broker:
    """The running server's job broker, as the REST tests reach it."""

    fetch: Any
    ws_fetch: Any
    app: Any
    http: Any
    base_url: str

    @property
    def service(self) -> Any:
        return self.app.web_app.settings["qsecure_jobs"]

    @property
    def ledger(self) -> Any:
        return self.app.web_app.settings["qsecure_ledger"]

    async def kernel_token(self) -> str:
        token, _ = await kernel_token(self.fetch, self.ws_fetch, self.app)
        return token

    async def post(self, token: str | None, body: Any) -> tuple[int, dict[str, Any], Any]:
        return await post(self.http, self.base_url, token, body)


@pytest.fixture
def broker(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    jp_environ: Any,
    http_server_client: Any,
    jp_base_url: str,
) -> Broker:
    return Broker(jp_fetch, jp_ws_fetch, jp_serverapp, http_server_client, jp_base_url)


def cli(data_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``jupyter qsecure ARGV...`` on the server's data dir, in a separate process."""
    env = {**os.environ, "QSECURE_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "jupyter_qsecure.cli.main", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def job(qc: QuantumCircuit | list[QuantumCircuit], **extra: Any) -> dict[str, Any]:
    circuits = qc if isinstance(qc, list) else [qc]
    body = {
        "circuits": [{"format": "qpy", "data": qpy_b64(c)} for c in circuits],
        "shots": 256,
        "seed": 11,
        "request_id": uuid.uuid4().hex,
        "wait": True,
    }
    body.update(extra)
    return body


async def test_qsubmit_magic_end_to_end_and_replay(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    jp_environ: Any,
    qsecure_data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install_kernelspec(user=True)
    _, client = await start(jp_fetch, jp_ws_fetch, "qsecure", "legacy")
    out = await run_cell(
        client,
        "from qiskit import QuantumCircuit\n"
        "qc = QuantumCircuit(3); qc.h(0); qc.cx(0, 1); qc.cx(1, 2); qc.measure_all()\n"
        "r = %qsubmit qc --shots 1024 --seed 7 --tag e2e\n"
        "print('COUNTS', sorted(r.counts.items()))\n"
        "print('VERIFIED', r.verification.verified, [c.name for c in r.verification.checks])\n"
        "print('JOB', r.job_id)\n",
    )
    counts = dict(eval(out.split("COUNTS ", 1)[1].splitlines()[0]))  # noqa: S307 - our own output
    assert set(counts) == {"000", "111"} and sum(counts.values()) == 1024
    assert "VERIFIED True" in out and "manifest signature" in out and "'request id'" in out
    job_id = out.split("JOB ", 1)[1].split()[0]
    ledger = jp_serverapp.web_app.settings["qsecure_ledger"]
    kinds = [e.kind for e in ledger.entries() if e.correlation_id == job_id]
    assert kinds == ["job.decided", "job.submitted", "job.completed"]
    assert ledger.verify().ok
    # Anyone can re-run it from the archive and the signed manifest.
    replayed = cli(qsecure_data_dir, "replay", job_id)
    assert replayed.returncode == 0, replayed.stderr
    assert "matches the signed result" in replayed.stdout
    # A simulator that comes back with other counts (one shot moved) is a mismatch.
    archive = qsecure_data_dir / "jobs"
    keyring = jp_serverapp.web_app.settings["qsecure_jobs"].keyring
    assert replay_module.replay(archive, job_id, keyring).matches is True
    real_run = replay_module.run_aer

    def drifted(payload: dict[str, Any]) -> dict[str, Any]:
        outcome = dict(real_run(payload))
        first = dict(outcome["counts"][0])
        first["000"], first["111"] = first["000"] - 1, first["111"] + 1
        outcome["counts"] = [first, *outcome["counts"][1:]]
        return outcome

    monkeypatch.setattr(replay_module, "run_aer", drifted)
    report = replay_module.replay(archive, job_id, keyring)
    assert report.matches is False
    assert report.replayed_digest != report.recorded_digest
    assert len(report.differences) == 1 and report.differences[0].startswith("circuit 0: ")


async def test_rest_errors_are_clear_and_recorded(
    broker: Broker,
) -> None:
    token = await broker.kernel_token()
    ledger = broker.ledger

    code, body, response = await broker.post(None, job(ghz(2)))
    assert code == 401 and "kernel token" in body["message"]
    code, body, _ = await broker.post("qsk.forged-" + uuid.uuid4().hex, job(ghz(2)))
    assert code == 401

    deep = QuantumCircuit(1)
    for _ in range(60):
        deep.x(0)
    code, body, _ = await broker.post(token, job(deep))
    assert (
        code == 403
        and body["rule"] == "max_depth"
        and "depth 60 exceeds dev limit 40" in body["message"]
    )
    denied = ledger.entries(EntryFilter(kinds=["job.decided"]))[-1].body
    assert denied["allowed"] is False and denied["rule"] == "max_depth" and denied["policy_sha256"]

    for shots in (0, -5, 10**9):
        code, body, _ = await broker.post(token, job(ghz(2), shots=shots))
        assert code == 403 and body["rule"] in ("min_shots", "max_shots"), (shots, body)

    bad_qasm = {
        "circuits": [{"format": "qasm2", "data": "OPENQASM 2.0; qreg q[2]; frob q[0];"}],
        "shots": 10,
        "request_id": uuid.uuid4().hex,
    }
    code, body, _ = await broker.post(token, bad_qasm)
    assert code == 422 and "malformed" in body["message"]

    not_circuit = {
        "circuits": [{"format": "qpy", "data": base64.b64encode(b"not qpy").decode()}],
        "shots": 10,
        "request_id": uuid.uuid4().hex,
    }
    code, body, _ = await broker.post(token, not_circuit)
    assert code == 422

    from qiskit.circuit import Parameter

    theta = Parameter("theta")
    unbound = QuantumCircuit(1)
    unbound.rx(theta, 0)
    unbound.measure_all()
    code, body, _ = await broker.post(token, job(unbound))
    assert code == 403 and body["rule"] == "unbound_parameters" and "theta" in body["message"]

    claiming = job(ghz(2), user="root", environment="prod")
    code, body, _ = await broker.post(token, claiming)
    assert (
        code == 422
        and "unknown fields in the job request: 'environment', 'user'" in (body["message"])
    )
    assert "from the kernel token" in body["hint"]

    code, body, _ = await broker.post(token, b"x" * 300_000)
    assert code == 413

    once = job(ghz(2))
    assert (await broker.post(token, once))[0] == 200
    code, body, _ = await broker.post(token, once)
    assert code == 409 and "already submitted" in body["message"]
    assert token not in json.dumps([e.body for e in ledger.entries()])


async def test_jobs_list_tells_who_ran_what_and_how_it_ended(
    broker: Broker,
    qsecure_data_dir: Path,
) -> None:
    token = await broker.kernel_token()
    code, done, _ = await broker.post(token, job(ghz(3), tags=["nightly"]))
    assert code == 200
    deep = QuantumCircuit(1)
    for _ in range(60):
        deep.x(0)
    assert (await broker.post(token, job(deep)))[0] == 403
    code, waiting, _ = await broker.post(token, job(ghz(9), wait=False))
    assert code == 202
    user = broker.service._jobs[done["job_id"]].identity["user"]

    listed = cli(qsecure_data_dir, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    jobs = {j["job_id"]: j for j in json.loads(listed.stdout)}
    assert len(jobs) == 3
    assert jobs[done["job_id"]]["status"] == "completed"
    assert jobs[done["job_id"]]["tags"] == ["nightly"]
    assert jobs[done["job_id"]]["backend"] == "aer_simulator"
    assert jobs[done["job_id"]]["actor"] == f"user:{user}"
    [refused] = [j for j in jobs.values() if j["status"] == "denied"]
    assert refused["rule"] == "max_depth" and refused["actor"] == f"user:{user}"
    assert jobs[waiting["job_id"]]["status"] == "pending_approval"

    only_denied = json.loads(
        cli(qsecure_data_dir, "jobs", "list", "--json", "--status", "denied").stdout
    )
    assert [j["status"] for j in only_denied] == ["denied"]
    assert "depth 60 exceeds dev limit 40" in only_denied[0]["error"]
    assert (
        json.loads(cli(qsecure_data_dir, "jobs", "list", "--json", "--user", "nobody").stdout) == []
    )
    assert (
        len(json.loads(cli(qsecure_data_dir, "jobs", "list", "--json", "--last", "1").stdout)) == 1
    )

    table = cli(qsecure_data_dir, "jobs", "list", "--user", user)
    assert table.returncode == 0 and "STATUS" in table.stdout
    assert done["job_id"] in table.stdout and "#nightly" in table.stdout
    assert "max_depth: depth 60 exceeds" in table.stdout
    bad = cli(qsecure_data_dir, "jobs", "list", "--since", "yesterday-ish")
    assert bad.returncode == 2 and "is not a time" in bad.stderr
    assert "Traceback" not in bad.stderr


async def test_queue_full_answers_429_with_retry_after(
    broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyter_qsecure.jobs.executor import QueueFull

    token = await broker.kernel_token()
    service = broker.service

    class FullExecutor:  # a boundary stub: the queue-full path of the REST layer
        def submit(self, *args: Any, **kwargs: Any) -> Any:
            raise QueueFull("the job queue is full (64 waiting)", retry_after_seconds=3)

        def close(self) -> None:
            pass

    monkeypatch.setattr(service, "_executor", FullExecutor())
    code, body, response = await broker.post(token, job(ghz(2)))
    assert code == 429 and response.headers["Retry-After"] == "3"


async def test_resubmitted_circuits_are_parsed_once_and_bindings_kept_apart(
    broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from qiskit.circuit import Parameter

    token = await broker.kernel_token()
    parsed: list[int] = []
    parser = broker.service.parser
    real_parse = parser.parse

    def counting_parse(items: Any, bind: Any, **checks: Any) -> Any:
        parsed.append(len(items))
        return real_parse(items, bind, **checks)

    monkeypatch.setattr(parser, "parse", counting_parse)
    theta = Parameter("theta")
    rotated = QuantumCircuit(1)
    rotated.rx(theta, 0)
    rotated.measure_all()
    data = qpy_b64(rotated)

    def body(value: float, seed: int) -> dict[str, Any]:
        return {
            "circuits": [{"format": "qpy", "data": data}],
            "bind": {"theta": value},
            "shots": 400,
            "seed": seed,
            "request_id": uuid.uuid4().hex,
        }

    replies = [await broker.post(token, b) for b in (body(0.0, 1), body(0.0, 2), body(3.14159, 1))]
    assert [code for code, _, _ in replies] == [200, 200, 200]
    (_, first, _), (_, again, _), (_, turned, _) = replies
    assert parsed == [1, 1]  # the second submission of the same bytes was not parsed again
    assert first["circuit_hashes"] == again["circuit_hashes"]
    assert turned["circuit_hashes"] != first["circuit_hashes"]  # the binding is part of the key
    assert set(first["result"]["counts"][0]) == {"0"}  # rx(0) leaves |0>
    assert turned["result"]["counts"][0].get("1", 0) > 390  # rx(pi) flips it


async def test_no_result_is_released_when_the_submission_cannot_be_recorded(
    broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyter_qsecure.errors import LedgerError

    token = await broker.kernel_token()
    service = broker.service
    ledger = broker.ledger
    before = ledger.size()

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise LedgerError("the ledger's disk is full", hint="free some space")

    monkeypatch.setattr(ledger, "append_many", refuse)  # also for the retry of the record
    code, body, _ = await broker.post(token, job(ghz(3)))
    assert code == 503
    assert "could not be recorded in the ledger" in body["message"]
    assert "result" not in body and "counts" not in json.dumps(body)
    failed = [s for s in service._jobs.values() if s.status == "failed"]
    assert failed and failed[-1].manifest is None and failed[-1].result is None
    assert body["job_id"] == failed[-1].job_id and body["status"] == "failed"
    assert ledger.size() == before  # nothing about the job was written or signed
    monkeypatch.undo()
    assert (await broker.post(token, job(ghz(3))))[0] == 200


async def test_a_result_that_cannot_be_signed_is_withheld_and_recorded_as_failed(
    broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyter_qsecure.errors import SigningError

    token = await broker.kernel_token()
    service = broker.service
    ledger = broker.ledger

    class DownSigner:  # a boundary stub: the key service is unreachable
        key_id = service.signer.key_id
        algorithm = "ed25519"

        def sign(self, message: bytes) -> Any:
            raise SigningError("cannot reach OpenBao/Vault", hint="start it")

        def public_keys(self) -> Any:
            return []

    monkeypatch.setattr(service, "signer", DownSigner())
    code, body, _ = await broker.post(token, job(ghz(3)))
    assert code == 503 and "could not be signed" in body["message"]
    assert "counts" not in json.dumps(body)
    failed = [s for s in service._jobs.values() if s.status == "failed"][-1]
    assert failed.manifest is None and failed.result is None
    assert body["job_id"] == failed.job_id and body["status"] == "failed"
    kinds = [
        (e.kind, e.body.get("status"))
        for e in ledger.entries()
        if e.correlation_id == failed.job_id
    ]
    assert kinds == [("job.decided", None), ("job.submitted", None), ("job.completed", "failed")]
    assert ledger.verify().ok


async def test_job_routes_refuse_requests_without_the_kernel_bearer_token(
    broker: Broker,
) -> None:
    token = await broker.kernel_token()
    code, done, _ = await broker.post(token, job(ghz(2)))
    assert code == 200 and done["status"] == "completed"
    job_id = done["job_id"]
    server_token = broker.app.identity_provider.token
    base = f"{broker.base_url.rstrip('/')}/qsecure/api/jobs"

    async def fetch(method: str, path: str, headers: dict[str, str]) -> Any:
        return await broker.http.fetch(
            f"{base}/{path}", method=method, headers=headers, raise_error=False
        )

    routes = [("GET", "keys"), ("GET", job_id), ("GET", uuid.uuid4().hex), ("DELETE", job_id)]
    for headers in (
        {},  # nothing at all
        {"Authorization": f"token {server_token}"},  # the browser's Jupyter token is not enough
        {"Authorization": f"Bearer {server_token}"},
        {"Authorization": "Bearer qsk.forged-" + uuid.uuid4().hex},
        {"Authorization": f"Basic {token}"},  # the right token under another scheme
    ):
        for method, path in routes:
            response = await fetch(method, path, headers)
            assert response.code in (401, 403), (method, path, response.code)
            body = response.body.decode()
            assert '"keys"' not in body and '"counts"' not in body and job_id not in body
    # the same routes with the kernel's token: they exist and answer
    keys = await fetch("GET", "keys", {"Authorization": f"Bearer {token}"})
    assert keys.code == 200 and json.loads(keys.body)["keys"]
    got = await fetch("GET", job_id, {"Authorization": f"Bearer {token}"})
    assert got.code == 200 and json.loads(got.body)["status"] == "completed"
    assert broker.service.get(token, job_id).status == "completed"  # nothing was cancelled
