"""The extension opens the configured ledger and reports it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


async def test_status_reports_environment_and_ledger(
    jp_fetch: Any, jp_serverapp: Any, qsecure_data_dir: Path
) -> None:
    ledger = jp_serverapp.web_app.settings["qsecure_ledger"]
    for i in range(6):
        ledger.append("note", {"text": f"server note {i}"})
    response = await jp_fetch("qsecure", "api", "status")
    data = json.loads(response.body)
    assert data["environment"] == "dev" and data["save_mode"] == "block"
    assert data["ledger"]["entries"] == 6
    assert data["ledger"]["url"] == f"sqlite://{qsecure_data_dir / 'ledger.db'}"
    assert data["ledger"]["checkpoint"]["body"]["tree_size"] == 5  # every 5 entries, per config
    assert (qsecure_data_dir / "keys" / "ledger-ed25519.pem").stat().st_mode & 0o777 == 0o600
