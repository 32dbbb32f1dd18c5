"""Keyed fingerprints, the local fingerprint key, and finding registered values in text."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import secrets
import stat
from pathlib import Path

import pytest

from jupyter_qsecure.config import QSecure
from jupyter_qsecure.scan import Scanner
from jupyter_qsecure.scan.fingerprints import (
    REGISTRY_PART_TYPE,
    REGISTRY_TYPE,
    Fingerprinter,
    FingerprintError,
    FingerprintIndex,
    Registered,
    candidate_tokens,
    fingerprinter_from_settings,
    registrable_forms,
    shape_of,
)

LENGTHS = (32, 300, 2000)


def urlsafe(length: int) -> str:
    return secrets.token_urlsafe(length)[:length]


def standard_b64(length: int) -> str:
    """Standard base64 with '+', '/' and '=' padding, ``length`` characters."""
    raw = secrets.token_bytes(length)
    text = base64.b64encode(raw).decode()
    return text[: length - 2] + "=="


def password(length: int) -> str:
    alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!#$%+-/@^_~"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def index_of(fingerprint: Fingerprinter, *values: str, name: str = "api") -> FingerprintIndex:
    return FingerprintIndex.of_values(
        fingerprint,
        {f"{name}~{i}" if i else name: v for i, v in enumerate(values)},
        on="2025-03-04",
    )


# ---- the fingerprint ---------------------------------------------------------------------
@pytest.mark.parametrize("length", (8, *LENGTHS))
def test_keyed_same_key_same_fingerprint_other_key_another(length: int) -> None:
    value = password(length)
    key = secrets.token_bytes(32)
    one, same, other = Fingerprinter(key, "a"), Fingerprinter(key, "b"), Fingerprinter.ephemeral()
    assert one(value) == same(value) and len(one(value)) == 64
    assert other(value) != one(value)
    assert one(value) != hashlib.sha256(value.encode()).hexdigest()  # never the unkeyed hash
    assert one(value + "x") != one(value)
    assert key.hex() not in repr(one) and one.key_id == same.key_id != other.key_id


def test_findings_are_keyed_by_the_scanner_key() -> None:
    token = "ghp_" + urlsafe(36).replace("-", "a").replace("_", "b")
    text = f'TOKEN = "{token}"\n'
    first, second = Fingerprinter.ephemeral(), Fingerprinter.ephemeral()
    (a,) = Scanner(fingerprinter=first).scan_text(text, path="x.py").findings
    (b,) = Scanner(fingerprinter=second).scan_text(text, path="x.py").findings
    assert a.fingerprint == first(token) != b.fingerprint == second(token)
    assert hashlib.sha256(token.encode()).hexdigest() not in json.dumps([a.model_dump()])


def test_wrong_key_size_is_refused() -> None:
    with pytest.raises(FingerprintError, match="not a 256-bit key"):
        Fingerprinter(b"short", "test")


# ---- the local key -----------------------------------------------------------------------
def test_local_key_is_created_once_private_and_read_strictly(tmp_path: Path) -> None:
    settings = QSecure(data_dir=str(tmp_path / "data"))
    key_file = tmp_path / "data" / "keys" / "fingerprint.key"
    reader = fingerprinter_from_settings(settings, create=False)  # the command line
    assert reader.source == "ephemeral" and not key_file.exists()
    server = fingerprinter_from_settings(settings, create=True)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_bytes()) == 32
    assert fingerprinter_from_settings(settings, create=True).key_id == server.key_id
    assert fingerprinter_from_settings(settings, create=False).key_id == server.key_id
    assert server.source == f"local:{key_file}"
    os.chmod(key_file, 0o644)
    with pytest.raises(FingerprintError, match="accessible by other users") as info:
        fingerprinter_from_settings(settings, create=False)
    assert info.value.hint == f"run: chmod 600 {key_file}"


# ---- tokenising --------------------------------------------------------------------------
CONTEXTS = {
    "log line": "2025-01-01 12:00:00 INFO using {v} for the run\n",
    "single quotes": "client = Client('{v}')\n",
    "double quotes": 'TOKEN = "{v}"\n',
    "key=value": "INFO token={v} user=alice\n",
    "key=value;": "Server=db;Password={v};Database=x\n",
    "key: value": "api_key: {v}\n",
    "json": '{{"user": "alice", "token": "{v}", "n": 1}}\n',
    "compact json": '{{"token":"{v}"}}',
    "csv middle": "alice,{v},2025-01-01\n",
    "csv last": "alice,2025-01-01,{v}\r\n",
    "end of sentence": "The key is {v}.\n",
    "parentheses": "connect({v})",
    "url query": "GET https://api.example.com/v1/jobs?token={v}&page=2 HTTP/1.1",
    "url userinfo": "DATABASE_URL=postgresql://alice:{v}@db.example:5432/x\n",
    "markdown bold": "**{v}**",
    "repr of dict": "{{'token': '{v}'}}",
}


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize(
    ("make", "context"),
    [(urlsafe, c) for c in sorted(CONTEXTS)]
    # Standard base64 is not written raw in a URL; with '=' padding it is not found
    # before sentence punctuation (a documented limit of the tokeniser).
    + [
        (standard_b64, c)
        for c in sorted(CONTEXTS)
        if c not in ("url query", "url userinfo", "end of sentence")
    ],
)
def test_registered_value_is_found_in_context(make: object, length: int, context: str) -> None:
    value = make(length)  # type: ignore[operator]
    fingerprint = Fingerprinter.ephemeral()
    index = index_of(fingerprint, value, urlsafe(40))
    text = "noise before\n" + CONTEXTS[context].format(v=value) + "noise after\n"
    found = index.find(text)
    assert [(d.type, text[d.start : d.end]) for d in found] == [(REGISTRY_TYPE, value)]
    assert found[0].secret_name == "api" and found[0].injected_on == "2025-03-04"
    assert found[0].fingerprint == fingerprint(value)


@pytest.mark.parametrize("length", [12, *LENGTHS])
def test_value_with_punctuation_is_found_written_raw(length: int) -> None:
    value = password(length - 3) + "(;="  # separators inside: found as a whole word
    index = index_of(Fingerprinter.ephemeral(), value)
    for text in (f"pw {value} ok", f"PASSWORD:\t{value}\n", f"{value}"):
        assert [text[d.start : d.end] for d in index.find(text)] == [value], text
    padded = password(length - 1) + "="
    index = index_of(Fingerprinter.ephemeral(), padded)
    for text in (f"PASSWORD={padded}\n", f"x = '{padded}'", f"[{padded}]"):
        assert [text[d.start : d.end] for d in index.find(text)] == [padded], text


def test_near_misses_are_not_found() -> None:
    value = urlsafe(32)
    index = index_of(Fingerprinter.ephemeral(), value)
    assert index.find(f"x{value} {value[:-1]} {value[1:]} {value.upper()}") == []
    assert index.find(base64.b64encode(value.encode()).decode()) == []


def test_only_registered_lengths_are_candidates() -> None:
    value = urlsafe(32)
    text = f"a {value} {urlsafe(31)} {urlsafe(33)} b"
    assert candidate_tokens(text, frozenset({32})) == {value.encode()}
    assert candidate_tokens(text, frozenset()) == set()


def test_values_are_tokenised_by_shape() -> None:
    plain, padded, quoted = urlsafe(32), urlsafe(30) + "==", urlsafe(30) + "'("
    assert shape_of(plain) == shape_of(standard_b64(40)[:-2]) == "plain"
    assert shape_of(padded) == shape_of("hvs." + plain) == "punctuated"
    assert shape_of(quoted) == "raw"
    index = index_of(Fingerprinter.ephemeral(), plain, padded, quoted)
    assert index.lengths == {"plain": {32}, "punctuated": {32}, "raw": {32}}
    text = f"A={plain}\nB={padded}\nC: {quoted}\n"
    assert sorted(d.secret for d in index.find(text)) == sorted([plain, padded, quoted])


def test_index_survives_pickling_and_caches_by_digest() -> None:
    value = urlsafe(32)
    index = index_of(Fingerprinter.ephemeral(), value)
    copy = pickle.loads(pickle.dumps(index))  # noqa: S301 (our own bytes)
    assert [d.secret for d in copy.find(f"k={value}")] == [value]
    text = f"k={value}"
    first = index.find(text, key=b"digest")
    assert index.find("unrelated text", key=b"digest") == first  # served from the cache


# ---- structured values -------------------------------------------------------------------
def service_account() -> tuple[str, list[str]]:
    body = base64.b64encode(secrets.token_bytes(1190)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    head = "-----BEGIN PRIVATE KEY-----\n"  # pragma: allowlist secret (the body is random)
    pem = head + "\n".join(lines) + "\n-----END PRIVATE KEY-----\n"
    document = {
        "type": "service_account",
        "project_id": "demo-project",
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": "runner@demo-project.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    return json.dumps(document, indent=2), lines


def test_service_account_json_registers_its_key_lines_not_public_fields() -> None:
    value, lines = service_account()
    assert 1800 <= len(value) <= 2400
    whole, parts = registrable_forms(value)
    assert whole is None  # it has spaces: a text token can never equal it
    document = json.loads(value)
    assert document["private_key_id"] in parts and set(lines[:-1]) <= set(parts)
    assert not {"demo-project", document["client_email"], document["token_uri"]} & set(parts)


def test_parts_of_a_service_account_are_found_printed_or_dumped() -> None:
    value, lines = service_account()
    document = json.loads(value)
    fingerprint = Fingerprinter.ephemeral()
    _, parts = registrable_forms(value)
    registered = {
        fingerprint(p): Registered("gcp", "2025-03-04", len(p), shape_of(p), part=True)
        for p in parts
    }
    index = FingerprintIndex(fingerprint, registered)
    printed = index.find("key:\n" + document["private_key"])  # the key printed
    assert {d.secret for d in printed} >= set(lines[:-1])
    assert all(d.type == REGISTRY_PART_TYPE and d.secret_name == "gcp" for d in printed)
    dumped = index.find("creds=" + json.dumps(document))  # the JSON logged in one line
    assert {d.secret for d in dumped} >= set(lines[:-1]) | {document["private_key_id"]}


def test_url_password_is_a_part() -> None:
    secret = password(20) + "/x@y"  # '/' and '@' inside the password
    whole, parts = registrable_forms(f"postgresql://alice:{secret}@db.example:5432/x")
    assert whole is not None and parts == [secret]
    short_whole, short_parts = registrable_forms("short")
    assert short_whole is None and short_parts == []
