"""Secrets by name through the server: the REST routes of the secrets panel, a kernel
with no ``secrets`` configuration, and a config file changed while the server runs.

A real Jupyter Server with the extension, a real OpenBao (the session's, bootstrapped
with the qsecure layout; the server holds a dev server token only), real qsecure
kernels. Every value is generated at run time and must appear in no response, no
ledger entry and no log line.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from server_helpers import GET_CODE, digest, start, stdout_of

from jupyter_qsecure.testing.values import Hidden

NAME = "panel_key"


def fresh_value() -> str:
    return Hidden("pk-" + secrets.token_urlsafe(32))


@pytest.fixture
def jp_server_config(
    vault_server_config: Callable[[dict[str, str]], dict[str, Any]], vault: dict[str, str]
) -> dict[str, Any]:
    """No name stored by convention is configured; ``ibm`` maps elsewhere (config)."""
    return vault_server_config({"ibm": "secret/qsecure/dev/ibm#token"})


@pytest.fixture(autouse=True)
def forget_stored_names(openbao_client: Any) -> Iterator[None]:
    """Names stored by a test are deleted after it (the OpenBao is the session's)."""
    yield
    listed = openbao_client.secrets.kv.v2.list_secrets(path="qsecure/dev", mount_point="secret")
    for key in listed["data"]["keys"]:
        if key in (NAME, "other_key", "cli_key"):
            openbao_client.secrets.kv.v2.delete_metadata_and_all_versions(
                path=f"qsecure/dev/{key}", mount_point="secret"
            )


async def call(jp_fetch: Any, method: str, *path: str, body: Any = None) -> tuple[int, Any]:
    response = await jp_fetch(
        "qsecure",
        "api",
        *path,
        method=method,
        body=None if body is None else json.dumps(body),
        raise_error=False,
        allow_nonstandard_methods=True,
    )
    text = response.body.decode()
    return response.code, json.loads(text) if text else None


async def test_store_rotate_delete_through_the_panel_routes(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    qsecure_kernel: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    first, second = fresh_value(), fresh_value()
    kernel_id, client = await start(jp_fetch, jp_ws_fetch, qsecure_kernel, "legacy")
    before = stdout_of(await client.execute(GET_CODE.format(name=NAME)))
    assert "UnknownSecret" in before and "secret put" in before  # the hint says how

    answers: list[Any] = []
    code, stored = await call(jp_fetch, "PUT", "secrets", NAME, body={"value": first})
    answers.append(stored)
    assert code == 201 and stored["created"] is True and stored["version"] == 1
    assert stored["location"] == f"secret/qsecure/dev/{NAME}#value"

    # the kernel that already had credentials gets it at its next execution
    messages = await client.execute(GET_CODE.format(name=NAME))
    out = stdout_of(messages)
    assert f"digest {digest(first)}" in out and f"raw «secret:{NAME}»" in out
    assert first not in json.dumps(messages)

    code, listing = await call(jp_fetch, "GET", "secrets")
    answers.append(listing)
    assert code == 200 and listing["environment"] == "dev" and listing["writable"] is True
    assert listing["prefix"] == "secret/qsecure/dev/"
    by_name = {s["name"]: s for s in listing["secrets"]}
    assert by_name[NAME]["source"] == "store" and by_name[NAME]["version"] == 1
    assert [lease["kernel_id"] for lease in by_name[NAME]["leases"]] == [kernel_id]
    assert by_name[NAME]["leases"][0]["seconds_left"] > 0
    assert by_name["ibm"]["source"] == "config"

    code, status = await call(jp_fetch, "GET", "status")
    answers.append(status)
    [kernel] = [k for k in status["kernels"] if k["kernel_id"] == kernel_id]
    assert kernel["credentials"] == "active" and kernel["seconds_left"] > 0
    assert NAME in kernel["secrets"] and status["openbao"]["reachable"] is True

    code, rotated = await call(jp_fetch, "PUT", "secrets", NAME, body={"value": second})
    answers.append(rotated)
    assert code == 200 and rotated["created"] is False and rotated["version"] == 2
    messages = await client.execute(GET_CODE.format(name=NAME))
    assert f"digest {digest(second)}" in stdout_of(messages)

    code, gone = await call(jp_fetch, "DELETE", "secrets", NAME)
    answers.append(gone)
    assert code == 200 and gone == {"name": NAME, "deleted": True}
    after = stdout_of(await client.execute(GET_CODE.format(name=NAME)))
    assert "UnknownSecret" in after
    code, missing = await call(jp_fetch, "DELETE", "secrets", NAME)
    assert code == 404 and missing["error"] == "not_found"

    ledger = jp_serverapp.web_app.settings["qsecure_ledger"]
    changes = [e for e in ledger.entries() if e.kind.startswith("secret.")]
    assert [(e.kind, e.body["version"]) for e in changes] == [
        ("secret.stored", 1),
        ("secret.stored", 2),
        ("secret.deleted", 2),
    ]
    recorded = json.dumps([e.model_dump() for e in ledger.entries()])
    for value in (first, second):
        assert value not in recorded
        assert value not in json.dumps(answers)
        assert value not in caplog.text
    await jp_fetch("api", "kernels", kernel_id, method="DELETE")


async def test_secret_routes_refuse_bad_requests(jp_fetch: Any) -> None:
    value = fresh_value()
    code, body = await call(jp_fetch, "PUT", "secrets", "9lives", body={"value": value})
    assert (
        code == 422 and body["error"] == "invalid" and "not a valid secret name" in body["message"]
    )
    code, body = await call(jp_fetch, "PUT", "secrets", NAME, body={"val": value})
    assert code == 400 and '"value"' in body["message"]
    code, body = await call(jp_fetch, "PUT", "secrets", NAME, body={"value": "   "})
    assert code == 422 and "empty" in body["message"]
    code, body = await call(jp_fetch, "PUT", "secrets", NAME, body={"value": 42})
    assert code == 422 and "string" in body["message"]
    code, body = await call(jp_fetch, "PUT", "secrets", "ibm", body={"value": value})
    assert code == 409 and body["error"] == "conflict" and "c.QSecure.secrets" in body["message"]
    response = await jp_fetch(
        "qsecure", "api", "secrets", NAME, method="PUT", body=b"{not json", raise_error=False
    )
    assert response.code == 400
    for answer in (body, response.body.decode()):
        assert value not in json.dumps(answer)


async def test_secrets_set_by_the_server_config_are_not_overridden_by_a_file(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_config_dir: Path,
    qsecure_kernel: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """This server's own config (not a config file) sets ``secrets``: it keeps winning
    over the files, also when one changes; the log says a restart is needed."""
    kernel_id, client = await start(jp_fetch, jp_ws_fetch, qsecure_kernel, "legacy")
    (jp_config_dir / "jupyter_qsecure_config.py").write_text(
        "c.QSecure.secrets = {'cfg': 'secret/qsecure/dev/ibm#token'}\n"
    )
    caplog.set_level(logging.INFO)
    assert "UnknownSecret" in stdout_of(await client.execute(GET_CODE.format(name="cfg")))
    assert "restart the server to apply the change" in caplog.text
    await jp_fetch("api", "kernels", kernel_id, method="DELETE")
