"""save_mode = warn: the save goes ahead unchanged, the client and the ledger are told."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from save_gate_helpers import fake_aws_key, notebook_with
from server_helpers import put

from jupyter_qsecure.ledger import EntryFilter


@pytest.fixture
def save_mode() -> str:
    return "warn"


async def test_warned_save_is_recorded_and_reported(
    jp_fetch: Any, jp_root_dir: Path, jp_serverapp: Any
) -> None:
    secret = fake_aws_key()
    response = await put(
        jp_fetch, "w.ipynb", {"type": "notebook", "content": notebook_with("metadata", secret)}
    )
    body = response.body.decode()
    assert secret not in body
    assert json.loads(body)["qsecure"]["mode"] == "warn"
    assert secret in (jp_root_dir / "w.ipynb").read_text()  # warn means: saved as is
    ledger = jp_serverapp.web_app.settings["qsecure_ledger"]
    warned = ledger.entries(EntryFilter(kinds=["save.warned"]))[-1]
    fingerprint = jp_serverapp.web_app.settings["qsecure_save_gate"].scanner.fingerprinter
    assert warned.body["findings"][0]["fingerprint"] == fingerprint(secret)
