"""The job request body: every field validated strictly, errors naming the field."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import pytest

from jupyter_qsecure.jobs.request import MAX_SEED, RequestError, parse_request


def body(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "circuits": [{"format": "qasm2", "data": "OPENQASM 2.0; qreg q[1];"}],
        "shots": 100,
        "request_id": uuid.uuid4().hex,
    }
    base.update(extra)
    return base


def test_a_valid_body_keeps_its_values_and_fills_defaults() -> None:
    parsed = parse_request(body(seed=MAX_SEED, tags=["nightly", "ünïcode ok"], bind={"t": 0.5}))
    assert parsed.seed == MAX_SEED == 2**53 - 1
    assert parsed.tags == ["nightly", "ünïcode ok"]
    assert parsed.backend == "aer_simulator" and parsed.method is None and parsed.wait is True
    dumped = parsed.model_dump()
    assert dumped["circuits"] == [{"format": "qasm2", "data": "OPENQASM 2.0; qreg q[1];"}]
    assert dumped["bind"] == {"t": 0.5}


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"tags": ["\ud800"]}, "tags[0]"),
        ({"tags": ["ok", "tab\there"]}, "tags[1]"),
        ({"tags": [""]}, "tags[0]"),
        ({"tags": ["x" * 65]}, "tags[0]"),
        ({"tags": ["t"] * 33}, "tags"),
        ({"tags": "one"}, "tags"),
        ({"seed": 2**70}, "seed"),
        ({"seed": 2**53}, "seed"),
        ({"seed": -1}, "seed"),
        ({"seed": True}, "seed"),
        ({"seed": 2.0}, "seed"),
        ({"shots": "100"}, "shots"),
        ({"shots": 2**60}, "shots"),
        ({"method": 3}, "method"),
        ({"method": "state vector"}, "method"),
        ({"noise": ["depolarizing-1e-3"]}, "noise"),
        ({"backend": "a" * 65}, "backend"),
        ({"wait": 0}, "wait"),
        ({"bind": {"t": float("nan")}}, "bind"),
        ({"bind": {"t": True}}, "bind"),
        ({"bind": {"t": {"nested": 1}}}, "bind"),
        ({"request_id": "short"}, "request_id"),
        ({"request_id": "has space " + uuid.uuid4().hex}, "request_id"),
        ({"circuits": [{"format": "qasm4", "data": ""}]}, "circuits[0].format"),
        ({"circuits": [{"data": ""}]}, "circuits[0].format"),
        ({"circuits": [{"format": "qpy", "data": "", "num_qubits": 5}]}, "circuits[0]"),
        ({"circuits": [{"format": "qpy", "data": ""}] * 1001}, "circuits"),
    ],
)
def test_each_invalid_field_is_named(extra: dict[str, Any], named: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_request(body(**extra))
    assert named in caught.value.message


def test_who_submits_is_never_read_from_the_body() -> None:
    with pytest.raises(RequestError) as caught:
        parse_request(body(user="root", environment="prod"))
    assert "unknown fields in the job request: 'environment', 'user'" in caught.value.message
    assert caught.value.hint and "kernel token" in caught.value.hint


@pytest.mark.parametrize("value", [None, [], "x", 3, [body()]])
def test_a_body_that_is_not_an_object_is_refused(value: Any) -> None:
    with pytest.raises(RequestError, match="JSON object"):
        parse_request(value)


def test_messages_do_not_echo_values() -> None:
    fake = "ghp_" + secrets.token_urlsafe(30)
    for extra in (
        {"seed": fake},
        {"method": fake + " "},
        {"tags": [fake + "\x00"]},
        {"shots": fake},
    ):
        with pytest.raises(RequestError) as caught:
            parse_request(body(**extra))
        assert fake not in caught.value.message and fake[4:] not in str(caught.value)


def test_many_problems_are_listed_up_to_a_limit() -> None:
    with pytest.raises(RequestError) as caught:
        parse_request(
            body(shots="1", seed="2", method=1, noise=2, backend=3, wait="x", tags=4, bind=5)
        )
    message = caught.value.message
    assert message.count(";") == 4 and "(and 3 more)" in message
