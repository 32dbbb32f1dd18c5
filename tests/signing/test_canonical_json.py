"""canonical_json's fast path gives exactly the rfc8785 library's bytes (and errors)."""

from __future__ import annotations

import random
from typing import Any

import pytest
import rfc8785

from jupyter_qsecure.signing.canonical import _plain, canonical_json

_CHARS = [chr(c) for c in [*range(0x30), 0x7F, 0x80, 0xE9, 0x2028, 0xFEFF, 0xE000, 0xFFFF]]
_CHARS += ["\U0001f600", "\U00010000", "\ud800", *'abcXYZ\\"/']
_SCALARS: list[Any] = [True, False, None, 2**53 - 1, -(2**53 - 1), 2**53, -(2**60), 1.5, 0.0]
_SCALARS += [1e21, -0.0, 5e-7, 12.0, 7, 1e-4, 9.999e-5, 1e16, 1e16 + 2.0, 123456789.125]
_SCALARS += [-0.5, 0.1, 1 / 3, 2.5e15, float("inf"), float("nan"), -1e-7]


def _random_float(rng: random.Random) -> float:
    """Floats around every formatting boundary: fixed or exponent, integral or not."""
    return rng.choice([-1, 1]) * rng.random() * 10.0 ** rng.randint(-9, 23)


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.5:
        if rng.random() < 0.5:
            return "".join(rng.choice(_CHARS) for _ in range(rng.randint(0, 8)))
        return rng.choice(_SCALARS + [rng.randint(-1000, 1000), _random_float(rng)])
    if roll < 0.75:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["k", "a", "B", "é", "\U0001f600", "\uffff", "\ud800", "\n"]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _outcome(fn: Any, value: Any) -> tuple[bytes | None, type | None]:
    try:
        return fn(value), None
    except Exception as exc:
        return None, type(exc)


def test_random_values_match_rfc8785_bytes_and_errors() -> None:
    rng = random.Random(8785)
    fast = 0
    for _ in range(20000):
        value = _random_value(rng)
        assert _outcome(canonical_json, value) == _outcome(rfc8785.dumps, value), value
        fast += _plain(value)
    assert fast > 1000  # the fast path was exercised, not only the fallback


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [True, None, "x\u0007y\u001f\u007f"], "A": {"z": "", "\t": 0}},
        {"n": 2**53 - 1, "m": -(2**53 - 1)},
        {"n": 2**53},  # out of range: the library's error
        {"f": 1.0, "g": 1e21, "h": 5e-7},  # ECMAScript formatting: the library's
        {"\U0001f600": 1, "\uffff": 2},  # UTF-16 order differs from code points
        {"s": "lone \ud800 surrogate"},
        {"t": (1, 2)},
        {1: "int key"},
    ],
)
def test_edge_cases_match_rfc8785(value: Any) -> None:
    assert _outcome(canonical_json, value) == _outcome(rfc8785.dumps, value)


def test_fast_path_is_used_for_plain_documents() -> None:
    document = {"job_id": "ab" * 16, "shots": 1024, "tags": ["x"], "ok": True, "none": None}
    assert _plain(document)
    assert _plain({"time_taken": 0.25, "p": -1.5e-3})  # floats written as repr by both
    assert not _plain({"time_taken": 2.0})  # ECMAScript writes "2"
    assert not _plain({"x": 1e-5}) and not _plain({"x": 1e16}) and not _plain({"x": 1e300})
    assert not _plain({"é": 1})
    assert canonical_json(document) == rfc8785.dumps(document)
