"""The job broker under hostile request bodies, through the real server.

Every malformed body gets a clear 4xx before anything runs and without a traceback in
the log; bodies over the size limit, and every body without a valid kernel token, are
refused while the request is being read, not after the server buffered it; a job whose
record cannot be written is recorded as failed once the ledger is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import uuid
from typing import Any

import pytest
from jobs_helpers import Broker, ghz, job

from jupyter_qsecure.ledger import EntryFilter

MiB = 1024 * 1024


@pytest.fixture
def jp_server_config(jobs_server_config: dict[str, Any]) -> dict[str, Any]:
    return jobs_server_config


class Spy:
    """Counts the jobs handed to the executor (a worker run), then passes them on."""

    def __init__(self, broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
        executor = broker.service.executor
        real = executor.submit
        self.submitted: list[str] = []

        def submit(job_id: str, payload: dict[str, Any], **kwargs: Any) -> Any:
            self.submitted.append(job_id)
            return real(job_id, payload, **kwargs)

        monkeypatch.setattr(executor, "submit", submit)


def job_kinds(b: Broker) -> list[str]:
    return [e.kind for e in b.ledger.entries() if e.kind.startswith("job.")]


def no_traceback(caplog: pytest.LogCaptureFixture, stream: Any) -> None:
    text = caplog.text + stream.getvalue()
    assert "Traceback" not in text, text[-3000:]
    assert not [r for r in caplog.records if r.exc_info], text[-3000:]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], text[-3000:]


async def test_fields_the_record_cannot_hold_are_422_and_nothing_runs(
    broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = await broker.kernel_token()
    spy = Spy(broker, monkeypatch)
    before = job_kinds(broker)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tags": ["ok", "lone \ud800 surrogate"]}, "tags[1]"),
        ({"tags": ["bell\x07"]}, "tags[0]"),
        ({"tags": ["x" * 65]}, "tags[0]"),
        ({"tags": [f"t{i}" for i in range(33)]}, "tags"),
        ({"seed": 2**70}, "seed"),
        ({"seed": 2**53}, "seed"),  # Aer would take it, JSON cannot hold it exactly
        ({"seed": -1}, "seed"),
        ({"shots": 2**70}, "shots"),
        ({"request_id": "r-\ud800" + uuid.uuid4().hex}, "request_id"),
        ({"backend": "aer\nsimulator"}, "backend"),
        # recorded in the ledger, so it must not carry a secret (the ledger's guard
        # would refuse the record after the job ran)
        ({"tags": ["ghp_" + "A1b2C3d4" * 5]}, "tags[0]"),
    ]
    for extra, field in cases:
        code, body, _ = await broker.post(token, job(ghz(2), **extra))
        assert code == 422, (extra, code, body)
        assert field in body["message"], (field, body)
    assert spy.submitted == []
    assert job_kinds(broker) == before  # nothing decided, submitted or completed
    # The largest seed the record can hold exactly still runs.
    code, body, _ = await broker.post(token, job(ghz(2), seed=2**53 - 1, tags=["edge"]))
    assert code == 200, body
    assert len(spy.submitted) == 1


async def test_malformed_bodies_are_4xx_without_a_traceback(
    broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    jp_logging_stream: Any,
) -> None:
    token = await broker.kernel_token()
    spy = Spy(broker, monkeypatch)
    caplog.set_level(logging.INFO)
    # (under the 200 kB body limit of these tests' server)
    nested = b"[" * 90_000 + b"]" * 90_000
    deep_object = b'{"a":' * 30_000 + b"1" + b"}" * 30_000
    for who in (token, None, "qsk.forged-" + uuid.uuid4().hex):
        for raw in (nested, deep_object, b"{not json", b"\xff\xfe", b""):
            code, body, _ = await broker.post(who, raw)
            expected = 401 if who != token else 400
            assert code == expected, (who is token, raw[:20], code, body)
            assert body.get("message"), body
    wrong_types: list[tuple[dict[str, Any], str]] = [
        ({"method": 5}, "method"),
        ({"method": ["statevector"]}, "method"),
        ({"noise": {"p": 0.1}}, "noise"),
        ({"noise": 1e-3}, "noise"),
        ({"shots": "10"}, "shots"),
        ({"shots": 10.0}, "shots"),
        ({"shots": True}, "shots"),
        ({"seed": 1.5}, "seed"),
        ({"seed": "7"}, "seed"),
        ({"wait": "no"}, "wait"),
        ({"tags": "nightly"}, "tags"),
        ({"tags": [1, 2]}, "tags[0]"),
        ({"bind": [1]}, "bind"),
        ({"bind": {"theta": "x"}}, "bind"),
        ({"bind": {"theta": [[[[1]]]]}}, "bind"),
        ({"request_id": 12345678}, "request_id"),
        ({"backend": {}}, "backend"),
        ({"circuits": "OPENQASM 2.0;"}, "circuits"),
        ({"circuits": [{"format": 1, "data": "x"}]}, "circuits[0].format"),
        ({"circuits": [{"format": "qpy", "data": None}]}, "circuits[0].data"),
        ({"circuits": [{"format": "qpy", "data": "AA==", "extra": 1}]}, "circuits[0]"),
        ({"circuits": []}, "circuits"),
    ]
    for extra, field in wrong_types:
        code, body, _ = await broker.post(token, job(ghz(2), **extra))
        assert code == 422, (extra, code, body)
        assert field in body["message"], (field, body)
    code, body, _ = await broker.post(token, [job(ghz(2))])
    assert code == 422 and "JSON object" in body["message"]
    assert spy.submitted == []
    no_traceback(caplog, jp_logging_stream)
    assert (await broker.post(token, job(ghz(2))))[0] == 200  # and the broker still serves


async def raw_post(
    port: int, path: str, headers: dict[str, str], size: int
) -> tuple[int | None, int]:
    """POST ``size`` bytes (sent lazily, 1 MiB at a time) on a raw connection.

    Returns the HTTP status the server answered (None when the connection was reset
    before the answer could be read: a server that closes with unread data sends a
    TCP reset) and how many body bytes it accepted before it closed the connection.
    With ``Expect: 100-continue`` nothing is sent until the server asks for the body.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    writer.write(head.encode() + b"\r\n")
    status_line = asyncio.ensure_future(reader.readline())
    sent = 0
    try:
        if headers.get("Expect") == "100-continue":
            await asyncio.wait({status_line}, timeout=30)
            if status_line.done() and b" 100 " in status_line.result():
                status_line = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
            else:
                size = 0  # answered without asking for the body
        chunk = b"[" * MiB
        while sent < size and not status_line.done():
            writer.write(chunk)
            try:
                await asyncio.wait_for(writer.drain(), timeout=30)
            except (ConnectionError, asyncio.TimeoutError):
                break
            sent += len(chunk)
        try:
            line = await asyncio.wait_for(status_line, timeout=60)
        except (ConnectionError, asyncio.IncompleteReadError):
            return None, sent
    finally:
        writer.close()
    return (int(line.split()[1]) if line else None), sent


async def test_bodies_are_refused_while_reading_not_after_buffering(
    broker: Broker,
    jp_http_port: int,
    caplog: pytest.LogCaptureFixture,
    jp_logging_stream: Any,
) -> None:
    token = await broker.kernel_token()
    path = f"{broker.base_url.rstrip('/')}/qsecure/api/jobs"
    limit = broker.app.web_app.settings["qsecure"].job_max_payload_bytes
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    size = 100 * MiB
    length = {"Content-Length": str(size)}
    forged = {"Authorization": "Bearer qsk.forged-" + uuid.uuid4().hex}
    valid = {"Authorization": f"Bearer {token}"}
    continue_ = {"Expect": "100-continue"}
    cases = [
        (length, 401),  # no token
        ({**length, **forged}, 401),
        ({**length, **valid}, 413),  # declared over the limit
    ]
    for headers, expected in cases:
        # A client that waits for "100 Continue" gets the answer without sending a byte.
        status, accepted = await raw_post(jp_http_port, path, {**headers, **continue_}, size)
        assert (status, accepted) == (expected, 0), headers
        # One that sends at once is cut off: socket buffers take a few MiB, not 100 MB.
        status, accepted = await raw_post(jp_http_port, path, headers, size)
        assert status in (expected, None), headers
        assert accepted < 32 * MiB, (headers, accepted)
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert (peak_after - peak_before) * 1024 < 50 * MiB, (peak_before, peak_after)

    # Chunked, authenticated, no declared length: cut off at the limit while reading.
    response = await broker.http.fetch(
        path,
        method="POST",
        headers=valid,
        body_producer=lambda write: _produce(write, limit + MiB),
        raise_error=False,
    )
    assert response.code == 413, response.code
    assert "limit" in json.loads(response.body)["message"]
    no_traceback(caplog, jp_logging_stream)
    assert (await broker.post(token, job(ghz(2))))[0] == 200


async def _produce(write: Any, size: int) -> None:
    sent = 0
    while sent < size:
        await write(b" " * 65536)
        sent += 65536


async def test_a_job_that_could_not_be_recorded_is_recorded_as_failed_when_the_ledger_returns(
    broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyter_qsecure.errors import LedgerUnavailable

    token = await broker.kernel_token()
    ledger = broker.ledger

    def down(*args: Any, **kwargs: Any) -> Any:
        raise LedgerUnavailable("the ledger database is not reachable", hint="start it")

    # A waiting job runs, then its one commit fails: no result is released.
    monkeypatch.setattr(ledger, "append_many", down)
    code, body, _ = await broker.post(token, job(ghz(3)))
    assert code == 503 and body["status"] == "failed" and "counts" not in json.dumps(body)
    lost = body["job_id"]
    # A job that does not wait is not accepted while its decision cannot be recorded.
    code, body, _ = await broker.post(token, job(ghz(3), wait=False))
    assert code == 503 and "nothing was run" in body["message"], body
    assert not [e for e in ledger.entries() if e.correlation_id == lost]

    monkeypatch.undo()  # the ledger is back: the next write records the lost job first
    extension = broker.app.web_app.settings["jupyter_qsecure_server"]
    await extension._records_tick()  # what the server's 1 s timer does
    kinds = [(e.kind, e.body.get("status")) for e in ledger.entries() if e.correlation_id == lost]
    assert kinds == [("job.decided", None), ("job.submitted", None), ("job.completed", "failed")]
    completed = ledger.entries(EntryFilter(kinds=["job.completed"]))[-1].body
    assert "could not be recorded" in completed["error"]
    assert ledger.verify().ok
    assert (await broker.post(token, job(ghz(3))))[0] == 200
