"""Fragments, fields and rendered splits of injected values never reach the browser.

Issue 11, cases 2 and 3, end to end: a real Jupyter Server with the extension, a real
OpenBao holding the values, a real qsecure kernel, both kernel websocket protocols.
Values are generated per run: random tokens of 32 and 300 characters, a service-account
JSON key (~2,000 characters, a fresh RSA key in PEM) and database URLs. Each case runs
what ordinary work does with them (contextual help, ``%whos``, verbose tracebacks,
wrapping, highlighting, colours, escaped JSON, one field alone) and checks that no
message the browser receives holds a run of 12 characters of any of them (for the
service account: of the document and of each of its fields), on the raw text or on
what it shows (tags, ANSI codes and JSON escapes removed), and that a placeholder is
shown instead.

Assertions compare counts and booleans only: a failure prints no secret.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import secrets
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1
from server_helpers import V1, KernelClient, KernelSession, start

from jupyter_qsecure.testing.leaks import leaks, service_account_json, strings_in
from jupyter_qsecure.vault.structured import expand_secret

NAMES = ("short", "long", "sa")  # 32, 300, ~2,000 characters


@pytest.fixture(scope="module")
def values() -> dict[str, str]:
    def password(length: int, slash: bool = False) -> str:
        text = secrets.token_urlsafe(length)[:length]
        return text[:16] + "/" + text[16:] if slash else text

    return {
        "short": secrets.token_urlsafe(32)[:32],
        "long": secrets.token_urlsafe(300)[:300],
        "sa": service_account_json(),
        "dsn": f"postgresql://analyst:{password(24)}@db.example:5432/prod",
        "dsn_slash": f"postgresql://analyst:{password(28, slash=True)}@db.example:5432/prod",
    }


@pytest.fixture
def jp_server_config(
    openbao_client: Any,
    vault_server_token: dict[str, str],
    vault_server_config: Callable[[dict[str, str]], dict[str, Any]],
    values: dict[str, str],
) -> dict[str, Any]:
    openbao_client.secrets.kv.v2.create_or_update_secret(
        path="qsecure/dev/masking", secret=values, mount_point="secret"
    )
    return vault_server_config({name: f"secret/qsecure/dev/masking#{name}" for name in values})


def secret_parts(value: str) -> list[str]:
    """What must not show: the value and, for a document, each of its fields."""
    return [part for _, part in expand_secret("x", value)]


async def request(client: KernelClient, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    """Send one shell request, return its reply (what contextual help does)."""
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "msg_type": msg_type,
        "session": client.session,
        "username": "test",
        "version": "5.3",
        "date": "",
    }
    if client.protocol == V1:
        parts = [json.dumps(p).encode() for p in (header, {}, {}, content)]
        await client.ws.write_message(serialize_msg_to_ws_v1(parts, "shell"), binary=True)
    else:
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
        await client.ws.write_message(json.dumps({**message, "channel": "shell", "buffers": []}))
    while True:
        raw = await asyncio.wait_for(client.ws.read_message(), 60)
        assert raw is not None, "websocket closed"
        msg = client._decode(raw)
        if (msg.get("parent_header") or {}).get("msg_id") == msg_id and msg["channel"] == "shell":
            return msg


def shown(messages: list[dict[str, Any]]) -> list[str]:
    """Every string the browser got: content and metadata of every message."""
    return [s for m in messages for part in ("content", "metadata") for s in strings_in(m[part])]


CASES: dict[str, str] = {
    "whos": "%whos\n",
    "xmode_verbose": (
        "%xmode Verbose\n"
        "def check(token):\n    size = len(token)\n    raise ValueError('rejected')\n"
        "check(v)\n"
    ),
    "textwrap": "import textwrap\nprint(textwrap.fill(v, 40))\n",
    "highlighted_code": (
        "from IPython.display import Code, display\n"
        "display(Code('token = ' + v, language='python'))\n"
    ),
    "ansi_colours": (
        "print(''.join(f'\\x1b[3{i % 7}m' + v[i:i + 5] + '\\x1b[0m' for i in range(0, len(v), 5)))\n"
    ),
    "json_escaped_slashes": (
        "import json\nw = v[:20] + '/' + v[20:]\n"
        "print(json.dumps({'v': w}).replace('/', '\\\\/'))\n"
        "json.dumps({'v': w}).replace('/', '\\\\/')\n"
    ),
    "slice_alone": "print(v[3:40])\nv[len(v) // 2:]\n",
    "pinfo": "v?\n",
    "pandas": (
        "import pandas as pd\nfrom IPython.display import display\n"
        "df = pd.DataFrame({'v': [v], 'n': [1]})\ndisplay(df)\nprint(df)\nprint(df.to_json())\n"
    ),
    "rich": "import rich\nrich.print({'token': v})\nfrom rich.pretty import pprint\npprint(v)\n",
}
NEEDS = {"pandas": "pandas", "rich": "rich"}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_formatters_show_no_run_of_a_value(
    kernel_session: KernelSession, values: dict[str, str], case: str
) -> None:
    if case in NEEDS and importlib.util.find_spec(NEEDS[case]) is None:
        pytest.skip(f"{NEEDS[case]} is not installed")
    client = await kernel_session.client()
    for name in NAMES:
        setup = await client.execute(
            f"from jupyter_qsecure import secrets\nv = secrets.get({name!r})\n"
        )
        failed = any(m["header"]["msg_type"] == "error" for m in setup)
        assert not failed, name
        messages = await client.execute(CASES[case])
        raised = any(m["header"]["msg_type"] == "error" for m in messages)
        assert raised == (case == "xmode_verbose"), (case, name)
        texts = shown(messages)
        if case == "pinfo":
            inspected = await request(
                client, "inspect_request", {"code": "v", "cursor_pos": 1, "detail_level": 0}
            )
            found = inspected["content"]["found"] is True
            assert found, name
            texts += shown([inspected])
        leaked = sum(leaks(texts, part) for part in secret_parts(values[name]))
        assert leaked == 0, (case, name, kernel_session.protocol)
        masked = any("«secret:" in text for text in texts)
        assert masked, (case, name)


async def test_one_field_or_password_alone_is_masked(
    kernel_session: KernelSession, values: dict[str, str]
) -> None:
    client = await kernel_session.client()
    code = (
        "import json, urllib.parse\nfrom jupyter_qsecure import secrets\n"
        "sa = json.loads(secrets.get('sa'))\n"
        "print(sa['private_key'])\nprint(sa['client_email'])\nprint(sa['private_key_id'])\n"
        "print(sa['private_key'].splitlines()[5])\n"
        "print(urllib.parse.urlsplit(secrets.get('dsn')).password)\n"
        "try:\n    urllib.parse.urlsplit(secrets.get('dsn_slash')).port\n"
        "except ValueError as exc:\n    print('parse error:', exc)\n"
        "urllib.parse.urlsplit(secrets.get('dsn_slash')).port\n"
    )
    messages = await client.execute(code)
    texts = shown(messages)
    sa = json.loads(values["sa"])
    parts = [sa["private_key"], sa["client_email"], sa["private_key_id"]]
    for url in (values["dsn"], values["dsn_slash"]):
        parts.append(url.split("://analyst:", 1)[1].rsplit("@", 1)[0])  # the password
    leaked = sum(leaks(texts, part) for part in parts)
    assert leaked == 0
    out = "".join(texts)
    for label in ("sa.private_key", "sa.client_email", "sa.private_key_id", "dsn.password"):
        present = f"«secret:{label}»" in out
        assert present, label
    present = "parse error:" in out and "«secret:dsn_slash.password»" in out
    assert present


async def test_saving_while_a_kernel_holds_a_long_value(
    jp_fetch: Any, jp_ws_fetch: Any, qsecure_kernel: str, values: dict[str, str]
) -> None:
    """A value of 248+ characters made the save gate's matcher recurse: every save was a 500."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output
    from tornado.httpclient import HTTPClientError

    kernel_id, client = await start(jp_fetch, jp_ws_fetch, qsecure_kernel, "legacy")
    try:
        for name in ("long", "sa"):
            await client.execute(
                f"from jupyter_qsecure import secrets\nv = secrets.get({name!r})\n"
            )
        nb = new_notebook(cells=[new_code_cell("print('hello')")])
        model = {"type": "notebook", "content": json.loads(nbformat.writes(nb))}
        response = await jp_fetch(
            "api", "contents", "clean.ipynb", method="PUT", body=json.dumps(model)
        )
        assert response.code == 201
        nb.cells[0].outputs = [new_output("stream", name="stdout", text=values["long"] + "\n")]
        model = {"type": "notebook", "content": json.loads(nbformat.writes(nb))}
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("api", "contents", "leak.ipynb", method="PUT", body=json.dumps(model))
        code = info.value.code
        assert code == 422
    finally:
        client.ws.close()
        await jp_fetch("api", "kernels", kernel_id, method="DELETE")
