"""The secret guard's fast walk (no paths) refuses exactly what the full check refuses."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from jupyter_qsecure.errors import InvalidEntry
from jupyter_qsecure.ledger.secret_guard import _check, _suspect, check_no_secrets


def fake_token() -> str:
    return "hvs." + secrets.token_urlsafe(24)


def bodies() -> list[dict[Any, Any]]:
    token = fake_token()
    return [
        {},
        {"job_id": "a" * 32, "hashes": ["f" * 64], "n": 3, "ok": True, "none": None},
        {"note": token},
        {"items": [{"deep": [["x", token]]}]},
        {"password": "short"},  # named like a secret: refused whatever the value
        {"password": ""},  # empty values are never refused
        {"password_hash": "x" * 20},  # safe names win
        {"a.password": "value-1"},  # the name is the key's last dotted part
        {"password.a": "value-2"},
        {"token[0]": "value-3"},  # ... before any "["
        {"tokens": ["value-4"]},
        {"token": ["", "value-5"]},  # list items inherit the list's name
        {"token": [{"inner": "value-6"}]},  # dict keys inside the list name their own
        {"outer": {"secret": ("tuple", "value-7")}},
        {1: "int keys", "auth": 7},  # non-string values are never refused
        {"url": "https://user:" + secrets.token_urlsafe(8) + "@example.org/x"},
        {"aws": "AKIA" + "A" * 16},
        {"word": "alphanumericwordlongerthaneight"},
    ]


@pytest.mark.parametrize("body", bodies(), ids=lambda b: ",".join(map(str, b)) or "empty")
def test_fast_walk_agrees_with_the_full_check(body: dict[Any, Any]) -> None:
    try:
        _check(body, kind="note")
    except InvalidEntry as exc:
        refused: str | None = exc.message
    else:
        refused = None
    assert _suspect(body, False) is (refused is not None)
    if refused is None:
        check_no_secrets(body, kind="note")
    else:
        with pytest.raises(InvalidEntry) as caught:
            check_no_secrets(body, kind="note")
        assert caught.value.message == refused  # same message, naming the field
