"""The save modes other than block, through the real server: ``warn`` saves unchanged and
tells the client and the ledger; ``redact`` saves placeholders and keeps the original
recoverable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from save_gate_helpers import fake_aws_key, notebook_with
from server_helpers import put

from jupyter_qsecure.ledger import EntryFilter

# ``save_mode`` is the conftest fixture that configures the server; parametrised per test.
WARN = pytest.mark.parametrize("save_mode", ["warn"])
REDACT = pytest.mark.parametrize("save_mode", ["redact"])


async def save_with_a_key(jp_fetch: Any, path: str, where: str) -> tuple[str, Any]:
    """Saves a notebook with a fresh fake AWS key in its ``where``: (the key, the response)."""
    secret = fake_aws_key()
    model = {"type": "notebook", "content": notebook_with(where, secret)}
    return secret, await put(jp_fetch, path, model)


@WARN
async def test_warned_save_is_recorded_and_reported(
    jp_fetch: Any, jp_root_dir: Path, jp_serverapp: Any
) -> None:
    secret, response = await save_with_a_key(jp_fetch, "w.ipynb", "metadata")
    body = response.body.decode()
    assert secret not in body
    assert json.loads(body)["qsecure"]["mode"] == "warn"
    assert secret in (jp_root_dir / "w.ipynb").read_text()  # warn means: saved as is
    ledger = jp_serverapp.web_app.settings["qsecure_ledger"]
    warned = ledger.entries(EntryFilter(kinds=["save.warned"]))[-1]
    fingerprint = jp_serverapp.web_app.settings["qsecure_save_gate"].scanner.fingerprinter
    assert warned.body["findings"][0]["fingerprint"] == fingerprint(secret)


@REDACT
async def test_redacted_save_holds_placeholders_not_secrets(
    jp_fetch: Any, jp_root_dir: Path, jp_serverapp: Any
) -> None:
    secret, response = await save_with_a_key(jp_fetch, "r.ipynb", "output")
    report = json.loads(response.body)["qsecure"]
    assert (
        report["mode"] == "redact" and report["findings"] and secret not in response.body.decode()
    )
    on_disk = (jp_root_dir / "r.ipynb").read_text()
    assert secret not in on_disk and "«secret:AWS Access Key»" in on_disk
    nbformat.validate(nbformat.reads(on_disk, as_version=4))
    gate = jp_serverapp.web_app.settings["qsecure_save_gate"]
    _, original = gate.recovery.open(report["recovery_id"])
    assert secret in original.decode()
    ledger = jp_serverapp.web_app.settings["qsecure_ledger"]
    assert ledger.entries(EntryFilter(kinds=["save.redacted"]))[-1].body["path"] == "r.ipynb"


@REDACT
async def test_redacted_text_file(jp_fetch: Any, jp_root_dir: Path) -> None:
    secret = fake_aws_key()
    await put(
        jp_fetch,
        "c.py",
        {"type": "file", "format": "text", "content": f"KEY = '{secret}'\nprint(KEY)\n"},
    )
    text = (jp_root_dir / "c.py").read_text()
    assert secret not in text and "print(KEY)" in text
