"""Refused saves as JupyterLab meets them, through the real server: cells numbered as
JupyterLab numbers them, autosaves of unchanged content that do not stack, and "save
anyway" with a written reason where policy allows it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from save_gate_helpers import fake_aws_key
from server_helpers import extension_config

from jupyter_qsecure.ledger import EntryFilter
from jupyter_qsecure_server.identity import os_user


@pytest.fixture
def environment() -> str:
    return "dev"


@pytest.fixture
def jp_server_config(qsecure_data_dir: Path, environment: str) -> dict[str, Any]:
    return extension_config(
        data_dir=str(qsecure_data_dir),
        save_mode="block",
        allow_override=True,
        environment=environment,
    )


def notebook(*sources: str) -> dict[str, Any]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {
                "cell_type": "code",
                "id": f"cell{i}",
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for i, source in enumerate(sources)
        ],
    }


async def save(jp_fetch: Any, path: str, content: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await jp_fetch(
        "api",
        "contents",
        path,
        method="PUT",
        body=json.dumps({"type": "notebook", "format": "json", "content": content}),
        raise_error=False,
    )
    return response.code, json.loads(response.body)


def refusals(app: Any) -> list[Any]:
    ledger = app.web_app.settings["qsecure_ledger"]
    return ledger.entries(EntryFilter(kinds=["save.refused"]))


async def test_refusal_numbers_cells_as_jupyterlab_and_autosaves_do_not_stack(
    jp_fetch: Any, jp_serverapp: Any, qsecure_data_dir: Path
) -> None:
    key = fake_aws_key()
    content = notebook("import os", f"a = 1\nb = 2\nkey = '{key}'")
    code, first = await save(jp_fetch, "a.ipynb", content)
    assert code == 422 and first["repeat"] is False and first["path"] == "a.ipynb"
    [finding] = first["findings"]
    assert finding["cell"] == 1 and finding["cell_number"] == 2 and finding["line"] == 3
    assert finding["location"] == "cell 2, line 3" and finding["where"] == "source"
    assert "AWS Access Key in cell 2, line 3" in first["message"]
    assert first["override"] == {"allowed": True, "reason_min_length": 10}

    # two more autosaves of the same content: nothing new kept or recorded
    for _ in range(2):
        code, again = await save(jp_fetch, "a.ipynb", json.loads(json.dumps(content)))
        assert code == 422 and again["repeat"] is True
        assert again["recovery_id"] == first["recovery_id"]
        assert again["refused_at"] == first["refused_at"]
    copies = list((qsecure_data_dir / "recovery").glob("*.json"))
    assert len(copies) == 1 and len(refusals(jp_serverapp)) == 1

    # an edit is a new refusal
    content["cells"][0]["source"] = "import sys"
    code, edited = await save(jp_fetch, "a.ipynb", content)
    assert code == 422 and edited["repeat"] is False
    assert edited["recovery_id"] != first["recovery_id"]
    assert len(list((qsecure_data_dir / "recovery").glob("*.json"))) == 2
    [one, two] = refusals(jp_serverapp)
    assert one.body["findings"][0]["line"] == 3 and one.actor == f"user:{os_user()}"
    assert key not in json.dumps([one.body, two.body, first, again, edited])


async def test_save_anyway_with_a_reason_is_recorded(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = fake_aws_key()
    content = notebook(f"fixture = '{key}'  # revoked test key")
    code, refused = await save(jp_fetch, "fixture.ipynb", content)
    assert code == 422

    async def anyway(body: Any) -> tuple[int, dict[str, Any]]:
        response = await jp_fetch(
            "qsecure", "api", "save-anyway", method="POST", body=json.dumps(body), raise_error=False
        )
        return response.code, json.loads(response.body)

    model = {"type": "notebook", "format": "json", "content": content}
    code, body = await anyway({"path": "fixture.ipynb", "reason": "because", "model": model})
    assert code == 422 and body["error"] == "invalid" and "10 characters" in body["message"]
    leaky = f"it is only {fake_aws_key()} anyway, revoked"
    code, body = await anyway({"path": "fixture.ipynb", "reason": leaky, "model": model})
    assert code == 422 and "reason itself holds a secret" in body["message"]
    code, body = await anyway({"path": "fixture.ipynb", "reason": "a test fixture"})
    assert code == 422 and '"model"' in body["message"]
    assert not (jp_root_dir / "fixture.ipynb").exists()

    reason = "test fixture: this AWS key was revoked on the day it was made"
    code, saved = await anyway({"path": "fixture.ipynb", "reason": reason, "model": model})
    assert code == 200, saved
    assert saved["path"] == "fixture.ipynb" and saved["qsecure"]["mode"] == "override"
    assert saved["qsecure"]["findings"][0]["location"] == "cell 1, line 1"
    assert key in (jp_root_dir / "fixture.ipynb").read_text()
    ledger = jp_serverapp.web_app.settings["qsecure_ledger"]
    [entry] = ledger.entries(EntryFilter(kinds=["save.overridden"]))
    assert entry.index == saved["qsecure"]["ledger_index"]
    assert entry.body["reason"] == reason and entry.body["mode"] == "override"
    assert entry.actor == f"user:{os_user()}" and entry.body["user"] == os_user()
    assert key not in json.dumps([entry.body, saved, refused]) and key not in caplog.text


@pytest.mark.parametrize("environment", ["prod"])
async def test_save_anyway_is_never_allowed_in_prod(jp_fetch: Any, environment: str) -> None:
    content = notebook(f"key = '{fake_aws_key()}'")
    code, refused = await save(jp_fetch, "p.ipynb", content)
    assert code == 422 and refused["override"]["allowed"] is False
    response = await jp_fetch(
        "qsecure",
        "api",
        "save-anyway",
        method="POST",
        body=json.dumps(
            {
                "path": "p.ipynb",
                "reason": "I really need to save this one",
                "model": {"type": "notebook", "format": "json", "content": content},
            }
        ),
        raise_error=False,
    )
    body = json.loads(response.body)
    assert response.code == 403 and body["error"] == "override_not_allowed"
    assert "never overridden in prod" in body["message"]
