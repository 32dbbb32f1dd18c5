"""save_mode = redact: the save goes ahead with placeholders; the original is recoverable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from save_gate_helpers import fake_aws_key, notebook_with
from server_helpers import put

from jupyter_qsecure.ledger import EntryFilter


@pytest.fixture
def save_mode() -> str:
    return "redact"


async def test_redacted_save_holds_placeholders_not_secrets(
    jp_fetch: Any, jp_root_dir: Path, jp_serverapp: Any
) -> None:
    secret = fake_aws_key()
    response = await put(
        jp_fetch, "r.ipynb", {"type": "notebook", "content": notebook_with("output", secret)}
    )
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


async def test_redacted_text_file(jp_fetch: Any, jp_root_dir: Path) -> None:
    secret = fake_aws_key()
    await put(
        jp_fetch,
        "c.py",
        {"type": "file", "format": "text", "content": f"KEY = '{secret}'\nprint(KEY)\n"},
    )
    text = (jp_root_dir / "c.py").read_text()
    assert secret not in text and "print(KEY)" in text
