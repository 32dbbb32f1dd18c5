"""Credentials at execution time and masking on the kernel websocket, end to end.

A real Jupyter Server with the extension, a real OpenBao (server token with the
dev server policy only), a real qsecure kernel, and a websocket client speaking
both kernel websocket protocols.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from typing import Any

import hvac
import pytest
from server_helpers import KernelSession, start, stdout_of
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_qsecure.ledger import EntryFilter
from jupyter_qsecure.testing.openbao import OpenBaoDev


@pytest.fixture
def jp_server_config(ibm_server_config: dict[str, Any]) -> dict[str, Any]:
    return ibm_server_config


async def test_secret_reaches_code_but_never_the_browser(
    kernel_session: KernelSession, jp_serverapp: Any, fake_value: str
) -> None:
    client = await kernel_session.client()
    kernel_id = kernel_session.kernel_id
    code = (
        "import base64, hashlib, sys\n"
        "from jupyter_qsecure import secrets\n"
        "v = secrets.get('ibm')\n"
        "print('digest', hashlib.sha256(v.encode()).hexdigest())\n"
        "print('raw', v)\n"
        "print('b64', base64.b64encode(('xy' + v).encode()).decode())\n"
        "sys.stdout.write(v[:7]); sys.stdout.flush(); sys.stdout.write(v[7:] + '\\n'); sys.stdout.flush()\n"
        "display({'text/html': '<b>' + v + '</b>', 'text/plain': v}, raw=True)\n"
        "print('tok', secrets.token())\n"
        "print('err', v, file=sys.stderr); sys.stderr.flush()\n"
        "v\n"
    )
    messages = await client.execute(code)
    errors = [m["content"] for m in messages if m["header"]["msg_type"] == "error"]
    assert not errors, errors
    everything = json.dumps(messages)
    assert fake_value not in everything
    kernel_token = (
        jp_serverapp.web_app.settings["qsecure_credentials"].broker.cached(kernel_id).token
    )
    assert kernel_token not in everything
    assert "tok «secret:openbao_token»" in stdout_of(messages)
    assert base64.b64encode(("xy" + fake_value).encode()).decode()[4:20] not in everything
    out = stdout_of(messages)
    import hashlib

    assert (
        f"digest {hashlib.sha256(fake_value.encode()).hexdigest()}" in out
    )  # the code got the value
    assert "raw «secret:ibm»" in out and "b64 " in out
    assert out.count("«secret:ibm»") >= 4  # raw, base64, the split write and stderr
    err = "".join(
        m["content"]["text"]
        for m in messages
        if m["header"]["msg_type"] == "stream" and m["content"]["name"] == "stderr"
    )
    stderr_masked = "err «secret:ibm»" in err  # a bool: a failure never prints the text
    assert stderr_masked, "stderr is masked as stdout is"
    results = [m for m in messages if m["header"]["msg_type"] in ("display_data", "execute_result")]
    assert results and all(
        "«secret:ibm»" in json.dumps(m["content"], ensure_ascii=False) for m in results
    )

    error = await client.execute("raise ValueError('bad key ' + secrets.get('ibm'))")
    assert fake_value not in json.dumps(error)
    assert any(
        m["header"]["msg_type"] == "error" and "«secret:ibm»" in m["content"]["evalue"]
        for m in error
    )


async def test_the_first_execution_does_not_wait_for_the_screen_compile(
    kernel_session: KernelSession, fake_value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The masker built on a kernel's first execution (its token and secrets are new
    values) goes out before Hyperscan has compiled its literal screen, which for some
    values takes 30-100 ms: here the compile is held until the execution is over."""
    from jupyter_qsecure.scan import literal_screen, valuesearch

    compiling, release, waited_out = threading.Event(), threading.Event(), threading.Event()
    real = literal_screen.build_screen

    def held_compile(literals: list[bytes]) -> literal_screen.LiteralScreen | None:
        compiling.set()
        if not release.wait(120):  # only if the execution is waiting for this compile
            waited_out.set()
        return real(literals)

    monkeypatch.setattr(valuesearch, "build_screen", held_compile)
    client = await kernel_session.client()
    try:
        messages = await client.execute(
            "from jupyter_qsecure import secrets\nprint('raw', secrets.get('ibm'))\n",
            timeout=150,
        )
        finished_first = not waited_out.is_set()
    finally:
        release.set()
    assert finished_first, "the execution waited for the screen compile"
    assert compiling.wait(120), "the masker's screen was compiled (on the screen thread)"
    assert fake_value not in json.dumps(messages)
    assert "raw «secret:ibm»" in stdout_of(messages)


async def test_environment_limits_and_clear_errors(
    jp_fetch: Any, jp_ws_fetch: Any, qsecure_kernel: str
) -> None:
    kernel_id, client = await start(jp_fetch, jp_ws_fetch, qsecure_kernel, "legacy")
    messages = await client.execute(
        "from jupyter_qsecure import secrets\n"
        "try:\n    secrets.get('prodibm')\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
        "try:\n    secrets.get('nope')\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
        "print('still usable', 6 * 7)\n"
    )
    out = stdout_of(messages)
    assert "SecretUnavailable" in out and "permission denied" in out.lower()
    assert "UnknownSecret" in out and "ibm" in out
    assert "still usable 42" in out
    await jp_fetch("api", "kernels", kernel_id, method="DELETE")


async def test_shutdown_revokes_and_ledger_has_no_values(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    qsecure_kernel: str,
    fake_value: str,
    openbao: OpenBaoDev,
) -> None:
    kernel_id, client = await start(jp_fetch, jp_ws_fetch, qsecure_kernel, "legacy")
    await client.execute("from jupyter_qsecure import secrets; secrets.get('ibm')")
    service = jp_serverapp.web_app.settings["qsecure_credentials"]
    token = service.broker.cached(kernel_id).token
    kernel_client = hvac.Client(url=openbao.addr, token=token)
    assert kernel_client.auth.token.lookup_self()["data"]["meta"]["kernel_id"] == kernel_id
    await jp_fetch("api", "kernels", kernel_id, method="DELETE")
    with pytest.raises(hvac.exceptions.Forbidden):
        kernel_client.auth.token.lookup_self()  # the leaked token is already dead
    ledger = jp_serverapp.web_app.settings["qsecure_ledger"]
    kinds = [
        e.kind
        for e in ledger.entries(EntryFilter(kinds=["credential.issued", "credential.revoked"]))
    ]
    assert "credential.issued" in kinds and "credential.revoked" in kinds
    entries = json.dumps([e.body for e in ledger.entries()])
    assert fake_value not in entries and token not in entries


async def test_restart_revokes_and_reissues(
    jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any, qsecure_kernel: str, openbao: OpenBaoDev
) -> None:
    kernel_id, client = await start(jp_fetch, jp_ws_fetch, qsecure_kernel, "legacy")
    await client.execute("from jupyter_qsecure import secrets; secrets.get('ibm')")
    service = jp_serverapp.web_app.settings["qsecure_credentials"]
    first = service.broker.cached(kernel_id).token
    await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="")
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=openbao.addr, token=first).auth.token.lookup_self()
    await jp_fetch("api", "kernels", kernel_id, method="DELETE")


def test_server_token_is_not_in_the_environment_kernels_inherit(
    jp_serverapp: Any, vault: dict[str, str]
) -> None:
    assert vault["token"] not in os.environ.values()


async def test_websocket_without_credentials_is_forbidden(
    jp_fetch: Any, jp_http_port: int, jp_base_url: str, qsecure_kernel: str
) -> None:
    response = await jp_fetch(
        "api", "kernels", method="POST", body=json.dumps({"name": qsecure_kernel})
    )
    kernel_id = json.loads(response.body)["id"]
    url = f"ws://localhost:{jp_http_port}{jp_base_url}api/kernels/{kernel_id}/channels"
    with pytest.raises(HTTPClientError) as info:
        await websocket_connect(HTTPRequest(url))
    assert info.value.code == 403
    await jp_fetch("api", "kernels", kernel_id, method="DELETE")
