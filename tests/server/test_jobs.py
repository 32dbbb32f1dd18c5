"""%qsubmit through the real server: broker REST API, policy, signatures, ledger, replay.

Embedded defaults (no OpenBao: local broker tokens and a local Ed25519 job key), a
real qsecure kernel, Aer in real worker processes.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import Broker, cli, job, qpy_b64, run_cell
from qiskit import QuantumCircuit
from server_helpers import start

from jupyter_qsecure.jobs import replay as replay_module
from jupyter_qsecure.kernel.install import install_kernelspec
from jupyter_qsecure.ledger import EntryFilter
from jupyter_qsecure.testing.circuits import ghz


@pytest.fixture
def jp_server_config(jobs_server_config: dict[str, Any]) -> dict[str, Any]:
    return jobs_server_config


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
    # Anyone can re-run it from the archive and the signed manifest (written after the
    # answer, in the archive's thread: a replay started at once waits for it here).
    assert jp_serverapp.web_app.settings["qsecure_jobs"].flush_archive(60)
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
        def admit(self, owner: str = "") -> None:
            return None  # an executor without places: submit() checks the queue

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
