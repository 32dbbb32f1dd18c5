"""The gate reads text in the encoding it is in, and writes a redacted copy back in it."""

from __future__ import annotations

import base64
import codecs
import secrets
import string
from pathlib import Path

import pytest

from jupyter_qsecure.gate import SaveGate
from jupyter_qsecure.gate.recovery import LocalKeyWrapper, RecoveryStore
from jupyter_qsecure.scan import Scanner


def fake_key() -> str:
    return "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))


def gate(tmp_path: Path, mode: str) -> SaveGate:
    store = RecoveryStore(tmp_path / "recovery", LocalKeyWrapper(tmp_path / "recovery.key"))
    return SaveGate(scanner=Scanner(), recovery=store, mode=mode)


@pytest.mark.parametrize("codec", ["cp1252", "latin-1", "utf-16", "utf-32", "utf-8-sig"])
def test_non_utf8_bytes_are_refused(tmp_path: Path, codec: str) -> None:
    raw = f"nom;clé\nMüller;{fake_key()}\n".encode(codec)
    outcome = gate(tmp_path, "block").check_bytes(raw, "export.csv", "alice")
    assert outcome.action == "block" and [f.type for f in outcome.findings] == ["AWS Access Key"]


@pytest.mark.parametrize("codec", ["cp1252", "utf-16"])
def test_redacted_copy_keeps_the_encoding(tmp_path: Path, codec: str) -> None:
    key = fake_key()
    raw = f"nom;clé\nMüller;{key}\n".encode(codec)
    outcome = gate(tmp_path, "redact").check_bytes(raw, "export.csv", "alice")
    assert outcome.action == "redact" and outcome.content is not None
    text = outcome.content.decode(codec)
    assert text.startswith("nom;clé\nMüller;«secret:") and key not in text
    if codec == "utf-16":
        assert outcome.content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))

    model = {"type": "file", "format": "base64", "content": base64.b64encode(raw).decode()}
    outcome = gate(tmp_path, "redact").check_model(model, "export.csv", "alice")
    assert outcome.model is not None
    saved = base64.b64decode(outcome.model["content"]).decode(codec)
    assert saved.startswith("nom;clé\nMüller;«secret:") and key not in saved


def test_binary_bytes_are_not_scanned(tmp_path: Path) -> None:
    raw = b"\x89PNG\r\n\x1a\n\0\0" + fake_key().encode()
    assert gate(tmp_path, "block").check_bytes(raw, "plot.png", "alice").action == "allow"
