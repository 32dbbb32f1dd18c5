"""The save gate with the provider layer and an organisation rule file (c.QSecure.scan_rules).

A real Jupyter Server with the extension; values generated at run time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from server_helpers import put, refused

from jupyter_qsecure.testing import planted as pl

RULES = """
[[rules]]
id = "acme-api-token"
description = "Acme API Token"
regex = '''\\b(acme_[a-z0-9]{32})\\b'''
secretGroup = 1

[allowlist]
paths = ['''(^|/)fixtures/''']
"""


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    rules = tmp_path / "acme-rules.toml"
    rules.write_text(RULES)
    jp_server_config["QSecure"]["scan_rules"] = str(rules)
    return jp_server_config


def _acme() -> str:
    return "acme_" + pl.rand(pl._sys(), 32, pl.LOWER + pl.DIGITS)


@pytest.mark.parametrize("family", ["shopify", "databricks", "age"])
async def test_provider_format_in_an_output_is_refused(
    jp_fetch: Any, jp_serverapp: Any, family: str
) -> None:
    provider = pl.PROVIDER_BY_FAMILY[family]
    value = pl.make_secret(provider)
    nb = pl.place_notebook(pl.snippet(provider, "yaml", value), "yaml", "stream")
    body = await refused(jp_fetch, "work.ipynb", {"type": "notebook", "content": nb})
    assert value not in json.dumps(body)
    assert [(f["where"], f["type"]) for f in body["findings"]] == [("outputs", provider.type)]
    fingerprint = jp_serverapp.web_app.settings["qsecure_save_gate"].scanner.fingerprinter
    assert body["findings"][0]["fingerprint"] == fingerprint(value)


async def test_org_rule_refuses_and_its_allowlist_allows(jp_fetch: Any, jp_root_dir: Path) -> None:
    token = _acme()
    nb = pl.place_notebook(f"Our key is {token}\n", "py", "markdown")
    body = await refused(jp_fetch, "notes.ipynb", {"type": "notebook", "content": nb})
    assert [f["type"] for f in body["findings"]] == ["Acme API Token"]
    assert token not in json.dumps(body)
    assert not (jp_root_dir / "notes.ipynb").exists()
    await jp_fetch(
        "api", "contents", "fixtures", method="PUT", body=json.dumps({"type": "directory"})
    )
    response = await put(jp_fetch, "fixtures/notes.ipynb", {"type": "notebook", "content": nb})
    assert response.code in (200, 201)
    assert token in (jp_root_dir / "fixtures" / "notes.ipynb").read_text()
