"""``BrokerClient`` against a fake job broker speaking the REST contract over real HTTP.

:class:`FakeBroker` is a boundary mock: an ``http.server`` on a free loopback port that
implements ``/qsecure/api/jobs`` as documented in :mod:`jupyter_qsecure.jobs` (auth by
bearer token, 200/202/401/403/404/422/429), runs circuits on Aer and signs manifests
and results with the real :mod:`jupyter_qsecure.jobs.manifest` code and a local
Ed25519 key. Knobs let a test make it deny, fill its queue, tamper with counts, publish
the wrong key, or name another circuit. ``tests/kernel/test_qsubmit_magic.py`` reuses it.
"""

from __future__ import annotations

import base64
import io
import json
import secrets as pysecrets
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from jupyter_qsecure.errors import QSecureError
from jupyter_qsecure.jobs import manifest as m
from jupyter_qsecure.jobs.canonical import circuit_hash
from jupyter_qsecure.jobs.client import (
    BrokerClient,
    BrokerUnavailable,
    InvalidCircuit,
    JobDenied,
    JobNotFound,
    JobTimeout,
    QueueFull,
    RequestConflict,
    Unauthorized,
    encode_circuit,
    encode_qasm,
    qasm_format,
)
from jupyter_qsecure.jobs.result import (
    Expected,
    ResultVerificationFailed,
    fetch_keyring,
    verify_record,
)
from jupyter_qsecure.signing.signers import Ed25519FileSigner
from jupyter_qsecure.testing.circuits import ghz
from jupyter_qsecure.testing.ports import free_loopback_port

PREFIX = "/qsecure/api/jobs"


def make_token() -> str:
    return "s." + pysecrets.token_urlsafe(24)


# ---------------------------------------------------------------------------- fake broker


def _load_circuit(spec: dict[str, Any]) -> Any:
    from qiskit import qasm2, qasm3, qpy

    fmt, data = spec.get("format"), spec.get("data")
    if not isinstance(data, str):
        raise ValueError("circuit data must be a string")
    if fmt == "qpy":
        return qpy.load(io.BytesIO(base64.b64decode(data)))[0]
    if fmt == "qasm2":
        return qasm2.loads(data, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
    if fmt == "qasm3":
        try:
            return qasm3.loads(data)
        except Exception:  # qiskit_qasm3_import is optional: the Rust importer then
            return qasm3.loads_experimental(data)
    raise ValueError(f"unknown circuit format {fmt!r}")


class FakeBroker:
    """The job broker's REST API on 127.0.0.1, signing with a local Ed25519 key."""

    def __init__(self, key_dir: Path, token: str | None = None) -> None:
        # Import Qiskit and Aer here, in the main thread, not first in a request thread.
        import qiskit.qpy  # noqa: F401
        import qiskit_aer  # noqa: F401

        from jupyter_qsecure.jobs import canonical, manifest  # noqa: F401
        from jupyter_qsecure.signing.signers import Ed25519FileSigner

        self.token = token or make_token()
        self.signer = Ed25519FileSigner(key_dir / "jobs-signing.pem")
        self.published = [k.model_dump() for k in self.signer.public_keys()]
        self.jobs: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.requests: list[dict[str, Any]] = []
        self.request_ids: set[str] = set()
        # knobs
        self.deny: dict[str, Any] | None = None
        self.queue_full: float | None = None
        self.tamper = False  # flip a count after signing
        self.swap_subject = False  # sign a manifest naming another circuit
        self.relink = False  # result linked to another manifest digest
        self.manifest_signer: Any = None  # sign the manifest only with this (untrusted) key
        self.result_signer: Any = None  # sign the result only with this (untrusted) key
        self.replay_last = False  # answer with the previous job's signed record, as is
        self.polls_to_finish = 0  # GETs a queued job stays queued/running
        self.sleep = 0.0  # delay every answer
        self.echo_auth_in_401 = False  # a careless server quoting the header back
        self.fail: str | None = None
        self.unavailable: dict[str, Any] | None = None  # a 503 body for submissions
        self.signed_options: dict[str, Any] = {}  # signed instead of what was asked
        self.lock = threading.Lock()
        self.port = free_loopback_port()
        broker = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                broker._handle(self, "GET")

            def do_POST(self) -> None:
                broker._handle(self, "POST")

            def do_DELETE(self) -> None:
                broker._handle(self, "DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def use_wrong_key(self, key_dir: Path) -> None:
        """Publish another key than the one that signs."""
        from jupyter_qsecure.signing.signers import Ed25519FileSigner

        other = Ed25519FileSigner(key_dir / "other-signing.pem")
        self.published = [k.model_dump() for k in other.public_keys()]

    # -- HTTP ------------------------------------------------------------------------

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: Any, headers=None) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        auth = h.headers.get("Authorization") or ""
        self.requests.append({"method": method, "path": h.path, "authorization": auth, "body": raw})
        if self.sleep:
            time.sleep(self.sleep)
        if not h.path.startswith(PREFIX):
            return self._send(h, 404, {"message": "not found"})
        if auth != f"Bearer {self.token}":
            message = "invalid or expired token"
            if self.echo_auth_in_401:
                message += f" (got {auth!r})"
            return self._send(h, 401, {"error": "unauthorized", "message": message})
        rest = h.path[len(PREFIX) :].strip("/")
        if method == "POST" and rest == "":
            return self._submit(h, raw)
        if method == "GET" and rest == "keys":
            return self._send(h, 200, {"keys": self.published})
        if rest and rest in self.jobs:
            if method == "GET":
                return self._send(h, 200, self._view(rest))
            if method == "DELETE":
                job = self.jobs[rest]
                if job["status"] in ("queued", "running"):
                    job["status"] = "cancelled"
                    job["result"] = job["result_envelope"] = None
                return self._send(h, 200, self._view(rest))
        return self._send(h, 404, {"error": "not_found", "message": f"no job {rest!r}"})

    def _view(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        if job["status"] in ("queued", "running"):
            self.polls[job_id] = self.polls.get(job_id, 0) + 1
            if self.polls[job_id] > self.polls_to_finish:
                job["status"] = "completed"
            else:
                return {**job, "status": "running", "result": None, "result_envelope": None}
        return job

    def _submit(self, h: BaseHTTPRequestHandler, raw: bytes) -> None:
        try:
            body = json.loads(raw)
        except ValueError:
            return self._send(h, 400, {"error": "bad_request", "message": "not JSON"})
        if self.unavailable is not None:
            return self._send(h, 503, self.unavailable)
        if self.queue_full is not None:
            return self._send(
                h,
                429,
                {"error": "queue_full", "message": "queue full"},
                {"Retry-After": f"{self.queue_full:g}"},
            )
        request_id = body.get("request_id")
        if request_id in self.request_ids:
            return self._send(h, 409, {"error": "replayed", "message": "request id reused"})
        self.request_ids.add(request_id)
        decision_id = "dec-" + uuid.uuid4().hex[:12]
        if self.deny is not None:
            return self._send(h, 403, {"error": "denied", "decision_id": decision_id, **self.deny})
        if self.replay_last and self.jobs:
            return self._send(h, 200, list(self.jobs.values())[-1])
        try:
            job = self._run(body, decision_id)
        except ValueError as exc:
            return self._send(h, 422, {"error": "invalid_circuit", "message": str(exc)})
        with self.lock:
            self.jobs[job["job_id"]] = job
        if body.get("wait", True) and not self.polls_to_finish:
            return self._send(h, 200, job)
        job["status"] = "queued"
        return self._send(h, 202, {**job, "result": None, "result_envelope": None})

    def _run(self, body: dict[str, Any], decision_id: str) -> dict[str, Any]:
        from qiskit import transpile
        from qiskit_aer import AerSimulator

        from jupyter_qsecure.jobs import manifest as m
        from jupyter_qsecure.jobs.canonical import circuit_hash

        circuits = []
        bind = body.get("bind") or {}
        for spec in body.get("circuits") or []:
            try:
                qc = _load_circuit(spec)
            except Exception as exc:
                raise ValueError(f"cannot read the circuit: {type(exc).__name__}") from None
            values = {p: bind[p.name] for p in qc.parameters if p.name in bind}
            if values:
                qc = qc.assign_parameters(values)
            if qc.parameters:
                names = ", ".join(sorted(p.name for p in qc.parameters))
                raise ValueError(f"unbound parameters: {names}")
            circuits.append(qc)
        if not circuits:
            raise ValueError("no circuits")
        shots, seed = int(body.get("shots") or 1024), body.get("seed")
        sim = AerSimulator(method=body.get("method") or "automatic")
        transpiled = transpile(circuits, sim, seed_transpiler=11)
        run = sim.run(transpiled, shots=shots, seed_simulator=seed).result()
        counts = [dict(run.get_counts(i)) for i in range(len(circuits))]
        hashes = [circuit_hash(qc) for qc in circuits]
        if self.swap_subject:
            hashes = ["0" * 64 for _ in hashes]
        job_id = uuid.uuid4().hex
        now = datetime.now(timezone.utc)
        identity = {"user": "alice", "entity_id": "ent-1", "environment": "test"}
        decision = {
            "decision_id": decision_id,
            "policy_sha256": "ab" * 32,
            "allowed": True,
            "rule": None,
        }
        statement = m.build_job_statement(
            job_id=job_id,
            circuit_hashes=hashes,
            transpiled_hashes=[circuit_hash(t) for t in transpiled],
            identity=identity,
            backend=body.get("backend") or "aer_simulator",
            options={
                "shots": shots,
                "seed": seed,
                "method": body.get("method"),
                "noise": body.get("noise"),
                "tags": body.get("tags") or [],
                **self.signed_options,
            },
            decision=decision,
            correlation_id=body.get("request_id") or "",
            submitted_at=now,
            request_id=body.get("request_id"),
        )
        manifest = m.sign_envelope(statement, self.manifest_signer or self.signer)
        metadata = {"seed": seed, "shots": shots, "seed_transpiler": 11}
        digest = m.statement_digest(manifest)
        result_statement = m.build_result_statement(
            job_id=job_id,
            manifest_digest="cd" * 32 if self.relink else digest,
            counts=counts,
            metadata=metadata,
            completed_at=now,
        )
        result_envelope = m.sign_envelope(result_statement, self.result_signer or self.signer)
        if self.tamper:  # move one shot from the most to the least frequent outcome
            c = counts[0]
            hi, lo = max(c, key=c.get), min(c, key=c.get)
            if hi == lo:
                c[hi + "x"] = 0
                lo = hi + "x"
            c[hi] -= 1
            c[lo] += 1
        return {
            "job_id": job_id,
            "status": "completed" if self.fail is None else "failed",
            "identity": identity,
            "decision": decision,
            "manifest": manifest.model_dump(mode="json"),
            "result": None if self.fail else {"counts": counts, "metadata": metadata},
            "result_envelope": None if self.fail else result_envelope.model_dump(mode="json"),
            "error": self.fail,
            "circuit_hashes": hashes,
            "transpiled_hashes": [circuit_hash(t) for t in transpiled],
        }


@pytest.fixture
def broker(tmp_path: Path):
    fake = FakeBroker(tmp_path)
    yield fake
    fake.close()


def assert_no_token(text: str, token: str) -> None:
    assert token not in text
    assert token[2:] not in text


# ---------------------------------------------------------------------------- tests


def test_submit_success_and_bearer_header(broker: FakeBroker) -> None:
    client = BrokerClient(broker.url, broker.token, timeout=30)
    record = client.submit([encode_circuit(ghz())], shots=256, seed=7, tags=["t1"])
    assert record["status"] == "completed"
    assert set(record["result"]["counts"][0]) == {"000", "111"}
    assert sum(record["result"]["counts"][0].values()) == 256
    sent = broker.requests[-1]
    assert sent["authorization"] == f"Bearer {broker.token}"
    body = json.loads(sent["body"])
    assert body["shots"] == 256 and body["seed"] == 7 and body["tags"] == ["t1"]
    assert body["circuits"][0]["format"] == "qpy" and body["wait"] is True
    assert len(body["request_id"]) == 32
    assert broker.token not in sent["body"].decode()  # only in the header
    assert client.status(record["job_id"])["job_id"] == record["job_id"]
    keys = client.keys()
    assert keys[0]["algorithm"] == "ed25519"
    assert broker.token not in repr(client)


def test_record_verifies_with_the_real_manifest_code(broker: FakeBroker) -> None:
    from jupyter_qsecure.jobs import manifest as m
    from jupyter_qsecure.jobs.canonical import circuit_hash
    from jupyter_qsecure.jobs.result import Expected, fetch_keyring, verify_record

    client = BrokerClient(broker.url, broker.token)
    qc = ghz(4)
    record = client.submit([encode_circuit(qc)], shots=100, seed=1)
    keyring = fetch_keyring(client)
    v = verify_record(record, keyring, [Expected("qpy", circuit_hash(qc))], {"shots": 100})
    assert v.verified and v.hash_sources == ("local",)
    assert v.manifest_digest == m.statement_digest(record["manifest"])
    assert v.signer.startswith("local key ed25519:") and v.signer.endswith(" v1")
    # the manifest module's own end-to-end check agrees
    m.verify_result(
        record["result_envelope"],
        keyring,
        manifest=record["manifest"],
        counts=record["result"]["counts"],
        metadata=record["result"]["metadata"],
    )


@pytest.mark.parametrize(
    ("key", "signed"),
    [
        ("shots", 99),
        ("seed", 2),
        ("method", "statevector"),
        ("noise", "readout-1e-2"),
        ("tags", ["someone-else"]),
        ("tags", []),
    ],
)
def test_signed_options_must_be_the_ones_asked_for(
    broker: FakeBroker, key: str, signed: Any
) -> None:
    from jupyter_qsecure.jobs.canonical import circuit_hash
    from jupyter_qsecure.jobs.result import (
        Expected,
        ResultVerificationFailed,
        fetch_keyring,
        verify_record,
    )

    client = BrokerClient(broker.url, broker.token)
    qc = ghz(3)
    asked = {"shots": 100, "seed": 1, "method": "automatic", "noise": None, "tags": ["mine"]}
    expected = [Expected("qpy", circuit_hash(qc))]
    record = client.submit([encode_circuit(qc)], **asked)
    keyring = fetch_keyring(client)
    assert verify_record(record, keyring, expected, asked).verified

    broker.signed_options = {key: signed}
    record = client.submit([encode_circuit(qc)], **asked)
    with pytest.raises(ResultVerificationFailed) as info:
        verify_record(record, keyring, expected, asked)
    assert f"asked for {key} {asked[key]} but the signed manifest records {signed}" in str(
        info.value
    )
    assert info.value.failed_checks == ["options"]


BELL_QASM2 = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
    "h q[0];\ncx q[0],q[1];\nmeasure q -> c;\n"
)


def test_a_verification_names_each_check_and_how_each_circuit_hash_was_known(
    broker: FakeBroker,
) -> None:
    from jupyter_qsecure.jobs.canonical import circuit_hash
    from jupyter_qsecure.jobs.result import Check, Expected, fetch_keyring, verify_record

    client = BrokerClient(broker.url, broker.token)
    qc = ghz(3)
    asked: dict[str, Any] = {"shots": 64, "seed": 5, "backend": "aer_simulator"}
    record = client.submit([encode_circuit(qc), encode_qasm(BELL_QASM2)], **asked)
    expected = [Expected("qpy", circuit_hash(qc)), Expected("qasm2", None)]
    v = verify_record(record, fetch_keyring(client), expected, asked)
    signer = v.signer
    assert signer.startswith("local key ed25519:") and v.result_signer == signer
    assert v.checks == (
        Check("manifest signature", True, signer),
        Check("circuit hashes", True, "local, broker"),
        Check("options", True),
        Check("result signature", True, signer),
        Check("manifest link", True, v.manifest_digest),
        Check("result hash", True, v.result_digest),
    )
    assert v.hash_sources == ("local", "broker")
    assert v.summary() == "verified ✓ (QASM hash by broker)"


def _edit_record(record: dict[str, Any], edit: str, signer: Any) -> dict[str, Any]:
    """``record`` with one thing changed that its signatures do not cover (or re-signed)."""
    from jupyter_qsecure.jobs import manifest as m

    record = json.loads(json.dumps(record))
    if edit == "job id":
        record["job_id"] = "another-job"
    elif edit == "no job id":
        del record["job_id"]
    elif edit == "reported hash":
        record["circuit_hashes"] = ["f" * 64]
    elif edit == "result as manifest":  # a validly signed statement of the other kind
        record["manifest"] = record["result_envelope"]
    elif edit == "no counts":
        record["result"] = None
    elif edit == "counts not a mapping":
        record["result"]["counts"] = [["000"]]
    elif edit == "counts":
        record["result"]["counts"][0]["000"] += 1
    else:  # re-signed by the broker's own key: a broker bug, or one that was tricked
        no_metadata = edit == "no metadata"  # a broker that signed no metadata sends none
        statement = m.build_result_statement(
            job_id="another-job" if edit == "result for another job" else record["job_id"],
            manifest_digest=m.statement_digest(record["manifest"]),
            counts=record["result"]["counts"],
            metadata={} if no_metadata else record["result"]["metadata"],
            completed_at=datetime.now(timezone.utc),
        )
        if edit == "link not a mapping":
            statement["predicate"]["manifest"] = m.statement_digest(
                record["manifest"]
            )  # a bare string
        record["result_envelope"] = m.sign_envelope(statement, signer).model_dump(mode="json")
        if no_metadata:
            del record["result"]["metadata"]
    return record


def _submitted_ghz3(broker: FakeBroker) -> tuple[BrokerClient, Any, dict[str, Any]]:
    """A 3-qubit GHZ job (64 shots, seed 5) sent through the fake broker: client, circuit,
    the record as answered."""
    client = BrokerClient(broker.url, broker.token)
    qc = ghz(3)
    return client, qc, client.submit([encode_circuit(qc)], shots=64, seed=5)


@pytest.mark.parametrize(
    ("edit", "check", "message"),
    [
        ("job id", "manifest job id", "the signed manifest is for job {job_id}"),
        ("no job id", "manifest job id", "the signed manifest is for job {job_id}"),
        (
            "reported hash",
            "circuit hash",
            "circuit 0: the job record's circuit hash differs from the signed manifest",
        ),
        ("no counts", "counts", "the job record does not carry counts for every circuit sent"),
        ("counts not a mapping", "result hash", "cannot hash the result: "),
        ("counts", "result hash", "the counts do not match the signed result"),
        (
            "result as manifest",
            "manifest signature",
            "manifest does not verify: statement predicateType is "
            "'https://jupyter-qsecure.dev/result/v1', expected "
            "'https://jupyter-qsecure.dev/job/v1'",
        ),
        ("result for another job", "result job id", "the signed result is for job another-job"),
        (
            "link not a mapping",
            "manifest link",
            "the signed result is linked to another manifest (sha256 ?, not ",
        ),
    ],
)
def test_a_record_changed_after_signing_is_refused_by_its_check(
    broker: FakeBroker, edit: str, check: str, message: str
) -> None:

    client, qc, record = _submitted_ghz3(broker)
    keyring = fetch_keyring(client)
    expected = [Expected("qpy", circuit_hash(qc))]
    with pytest.raises(ResultVerificationFailed) as info:
        verify_record(_edit_record(record, edit, broker.signer), keyring, expected)
    err = info.value
    assert err.failed_checks == [check]
    assert err.failures[0].startswith(message.format(job_id=record["job_id"]))
    assert err.job_id == {"job id": "another-job", "no job id": "?"}.get(edit, record["job_id"])
    assert err.hint == (
        "the counts were withheld; do not trust this job. Report the job id to "
        "your administrator (`jupyter qsecure audit` shows its ledger entries)"
    )


def test_a_result_linked_to_another_manifest_names_both_digests(broker: FakeBroker) -> None:

    broker.relink = True  # validly signed, linked to the digest "cdcd…"
    client, qc, record = _submitted_ghz3(broker)
    with pytest.raises(ResultVerificationFailed) as info:
        verify_record(record, fetch_keyring(client), [Expected("qpy", circuit_hash(qc))])
    digest = m.statement_digest(record["manifest"])
    assert info.value.failed_checks == ["manifest link"]
    assert info.value.failures == [
        f"the signed result is linked to another manifest (sha256 {'cd' * 6}…, not {digest[:12]}…)"
    ]


def test_a_record_without_metadata_verifies_when_none_was_signed(broker: FakeBroker) -> None:

    client = BrokerClient(broker.url, broker.token)
    qc = ghz(3)
    record = _edit_record(
        client.submit([encode_circuit(qc)], shots=64), "no metadata", broker.signer
    )
    v = verify_record(record, fetch_keyring(client), [Expected("qpy", circuit_hash(qc))])
    assert v.verified


def test_a_circuit_or_request_other_than_the_one_sent_is_named_in_the_refusal(
    broker: FakeBroker,
) -> None:

    client, qc, record = _submitted_ghz3(broker)
    keyring = fetch_keyring(client)
    signed_hash, other_hash = circuit_hash(qc), circuit_hash(ghz(4))
    with pytest.raises(ResultVerificationFailed) as info:
        verify_record(record, keyring, [Expected("qpy", other_hash, "cell 3")])
    assert info.value.failed_checks == ["circuit hash"]
    assert info.value.failures == [
        f"cell 3: the signed manifest names circuit sha256 {signed_hash[:12]}…, "
        f"but the circuit sent hashes to {other_hash[:12]}…"
    ]

    v = verify_record(record, keyring, [Expected("qpy", signed_hash)])
    signed_id = v.statement["predicate"]["request_id"]
    sent_id = "0123456789abcdef0123"
    with pytest.raises(ResultVerificationFailed) as info:
        verify_record(record, keyring, [Expected("qpy", signed_hash)], {"request_id": sent_id})
    assert info.value.failed_checks == ["request id"]
    assert info.value.failures == [
        f"the signed manifest answers another request ({signed_id[:12]}…, "
        f"not {sent_id[:12]}…): a replayed or mixed-up result"
    ]

    with pytest.raises(ResultVerificationFailed) as info:
        verify_record(record, keyring, [Expected("qpy", signed_hash)], {"backend": "ibm_other"})
    assert info.value.failed_checks == ["options"]
    assert info.value.failures == [
        "asked for backend ibm_other but the signed manifest records aer_simulator"
    ]


@pytest.mark.parametrize("bad", ["manifest", "result"])
def test_an_envelope_signed_by_a_key_the_broker_does_not_publish_is_refused_by_its_check(
    broker: FakeBroker, tmp_path: Path, bad: str
) -> None:

    setattr(broker, f"{bad}_signer", Ed25519FileSigner(tmp_path / "untrusted.pem"))
    client, qc, record = _submitted_ghz3(broker)
    with pytest.raises(ResultVerificationFailed) as info:
        verify_record(record, fetch_keyring(client), [Expected("qpy", circuit_hash(qc))])
    assert info.value.failed_checks == [f"{bad} signature"]
    assert len(info.value.failures) == 1
    assert info.value.failures[0].startswith(
        f"{bad} does not verify: envelope is not signed by 1 trusted key(s): signature 1 "
    )
    assert "is not trusted and no trusted key verifies it" in info.value.failures[0]


def test_no_wait_then_wait_and_cancel(broker: FakeBroker) -> None:
    client = BrokerClient(broker.url, broker.token)
    broker.polls_to_finish = 2
    queued = client.submit([encode_circuit(ghz())], shots=64, seed=3, wait=False)
    assert queued["status"] == "queued" and queued["result"] is None
    done = client.wait(queued["job_id"], timeout=10)
    assert done["status"] == "completed" and done["result"]["counts"]

    broker.polls_to_finish = 10**6
    slow = client.submit([encode_circuit(ghz())], shots=64, wait=False)
    with pytest.raises(JobTimeout) as info:
        client.wait(slow["job_id"], timeout=0.3)
    assert slow["job_id"] in str(info.value) and "--cancel" in str(info.value)
    assert client.cancel(slow["job_id"])["status"] == "cancelled"
    assert client.status(slow["job_id"])["status"] == "cancelled"


def test_denial_is_job_denied_with_rule_and_message(broker: FakeBroker) -> None:
    broker.deny = {"rule": "max_depth", "limit": 500, "message": "depth 812 exceeds dev limit 500"}
    client = BrokerClient(broker.url, broker.token)
    with pytest.raises(JobDenied) as info:
        client.submit([encode_circuit(ghz())])
    err = info.value
    assert isinstance(err, QSecureError)
    assert err.rule == "max_depth" and err.limit == 500
    assert err.reason == "depth 812 exceeds dev limit 500"
    assert err.decision_id and err.decision_id.startswith("dec-")
    assert "depth 812 exceeds dev limit 500" in str(err) and err.decision_id in str(err)
    assert_no_token(str(err), broker.token)


def test_queue_full_has_retry_after(broker: FakeBroker) -> None:
    broker.queue_full = 3
    with pytest.raises(QueueFull) as info:
        BrokerClient(broker.url, broker.token).submit([encode_circuit(ghz())])
    assert info.value.retry_after == 3.0
    assert "retry in 3 s" in str(info.value)


def test_unauthorized_never_shows_the_token(broker: FakeBroker) -> None:
    broker.echo_auth_in_401 = True  # the server quotes the header back: we scrub it
    wrong = make_token()
    client = BrokerClient(broker.url, wrong)
    with pytest.raises(Unauthorized) as info:
        client.submit([encode_circuit(ghz())])
    text = str(info.value) + repr(info.value)
    assert "invalid or expired token" in text
    assert_no_token(text, wrong)
    assert "[token]" in text
    with pytest.raises(Unauthorized):
        client.keys()


def test_invalid_circuit_422_and_bad_request(broker: FakeBroker) -> None:
    client = BrokerClient(broker.url, broker.token)
    with pytest.raises(InvalidCircuit) as info:
        client.submit([{"format": "qasm2", "data": "OPENQASM 2.0;\nqreg q[1];\nfoo q[0];\n"}])
    assert "cannot read the circuit" in str(info.value)
    assert_no_token(str(info.value), broker.token)


def test_not_found_and_conflict(broker: FakeBroker) -> None:
    client = BrokerClient(broker.url, broker.token)
    with pytest.raises(JobNotFound):
        client.status("nope")
    with pytest.raises(JobNotFound):
        client.status("")
    client.submit([encode_circuit(ghz())], request_id="r-1")
    with pytest.raises(RequestConflict):
        client.submit([encode_circuit(ghz())], request_id="r-1")


def test_connection_refused_is_quick_broker_unavailable() -> None:
    token = make_token()
    port = free_loopback_port()
    client = BrokerClient(f"http://127.0.0.1:{port}{PREFIX}", token, timeout=30)
    start = time.monotonic()
    with pytest.raises(BrokerUnavailable) as info:
        client.submit([{"format": "qasm2", "data": "OPENQASM 2.0;"}])
    assert time.monotonic() - start < 3
    assert "cannot connect" in str(info.value)
    assert_no_token(str(info.value) + repr(info.value), token)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_slow_broker_times_out_as_unavailable(broker: FakeBroker) -> None:
    broker.sleep = 2
    client = BrokerClient(broker.url, broker.token, timeout=0.3)
    start = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="did not answer within 0.3 s"):
        client.keys()
    assert time.monotonic() - start < 1.5


def test_broker_failure_names_the_job_and_the_brokers_hint(broker: FakeBroker) -> None:
    client = BrokerClient(broker.url, broker.token)
    broker.unavailable = {
        "error": "unavailable",
        "message": "the result could not be signed: cannot reach OpenBao/Vault",
        "hint": "start OpenBao, then submit again",
        "job_id": "ab" * 16,
        "status": "failed",
    }
    with pytest.raises(BrokerUnavailable) as info:
        client.submit([encode_circuit(ghz())])
    text = str(info.value)
    assert "HTTP 503" in text and f"job {'ab' * 16}, failed" in text
    assert "could not be signed" in text and "start OpenBao, then submit again" in text
    broker.unavailable = {"message": "broker overloaded"}  # no job, no hint: a generic one
    with pytest.raises(BrokerUnavailable) as info:
        client.submit([encode_circuit(ghz())])
    assert "(job" not in str(info.value) and "the server log has the details" in str(info.value)


def test_missing_url_or_token() -> None:
    with pytest.raises(BrokerUnavailable):
        BrokerClient("", "t")
    with pytest.raises(Unauthorized):
        BrokerClient("http://127.0.0.1:1/x", "")


def test_qasm_format_detection() -> None:
    assert qasm_format("// a comment\n\nOPENQASM 3.0;\nqubit q;") == "qasm3"
    assert qasm_format("OPENQASM 3;") == "qasm3"
    assert qasm_format('OPENQASM 2.0;\ninclude "qelib1.inc";') == "qasm2"
    assert qasm_format("qreg q[1];") is None
    assert qasm_format("") is None
    assert encode_qasm("OPENQASM 2.0;")["format"] == "qasm2"
    with pytest.raises(InvalidCircuit):
        encode_qasm("h q[0];")
