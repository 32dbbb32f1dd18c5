"""Files a kernel writes, opened in the browser: injected values never come back.

A real server, a real OpenBao (dev server token only), a real qsecure kernel that
reads three random values (32, 300 and 2,000 characters) and writes them to
``run.log``, ``config.json``, ``results.csv``, a notebook's output and a binary
file. Every route by which the server sends file or terminal content must show
``«secret:NAME»`` (or, in a binary file, ``*`` of the same length) instead, and
the ledger must note once per file version which secrets a file held.

PYTEST_DONT_REWRITE: a failing assertion must not print the (fake) values it compares.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from server_helpers import KernelClient, start, stdout_of
from tornado import web
from tornado.httpclient import HTTPClientError

from jupyter_qsecure.ledger import EntryFilter
from jupyter_qsecure.vault.exposure import CHUNK_SIZE, KIND
from jupyter_qsecure.vault.masking import placeholder
from jupyter_qsecure_server.file_masking import check_routes

NAMES = ("short", "medium", "long")
TEXT_FILES = ("run.log", "config.json", "results.csv", "written.ipynb")


@pytest.fixture(scope="module")
def values() -> dict[str, str]:
    return {
        "short": secrets.token_urlsafe(24),  # 32 characters
        "medium": secrets.token_urlsafe(225),  # 300
        "long": secrets.token_urlsafe(1500),  # 2,000
    }


@pytest.fixture
def vault(
    vault_server_token: dict[str, str], openbao_client: Any, values: dict[str, str]
) -> dict[str, str]:
    openbao_client.secrets.kv.v2.create_or_update_secret(
        path="qsecure/dev/files", secret=values, mount_point="secret"
    )
    return vault_server_token


@pytest.fixture
def files_handler(request: pytest.FixtureRequest) -> str | None:
    """The /files handler class to configure (None: the contents manager's default)."""
    return getattr(request, "param", None)


@pytest.fixture
def jp_server_config(
    vault_server_config: Callable[[dict[str, str]], dict[str, Any]],
    vault: dict[str, str],
    files_handler: str | None,
) -> dict[str, Any]:
    config = vault_server_config({name: f"secret/qsecure/dev/files#{name}" for name in NAMES})
    if files_handler is not None:
        config["FileContentsManager"] = {"files_handler_class": files_handler}
    return config


WRITE = """
import csv, json, logging, os, nbformat
from jupyter_qsecure import secrets
os.chdir({root!r})
vals = {{n: secrets.get(n) for n in {names!r}}}
log = logging.getLogger("run")
handler = logging.FileHandler("run.log")
log.addHandler(handler); log.setLevel(logging.INFO)
for n, v in vals.items():
    log.info("connecting %s with %s", n, v)
handler.close(); log.removeHandler(handler)
with open("config.json", "w") as f:
    json.dump({{"endpoint": "https://example.invalid", **vals}}, f, indent=1)
with open("results.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["name", "value"])
    for n, v in vals.items():
        w.writerow([n, v])
nb = nbformat.v4.new_notebook()  # as papermill writes one: parameters, then outputs
nb.cells.append(nbformat.v4.new_code_cell("\\n".join(f"{{n}} = {{v!r}}" for n, v in vals.items())))
nb.cells.append(nbformat.v4.new_code_cell("print(v)", outputs=[
    nbformat.v4.new_output("stream", name="stdout", text="\\n".join(vals.values()))]))
nbformat.write(nb, "written.ipynb")
with open("blob.bin", "wb") as f:
    f.write(b"\\x89PNG\\x00\\xff" + b"".join(v.encode() + os.urandom(50) for v in vals.values()))
print("written")
"""


async def write_files(jp_fetch: Any, jp_ws_fetch: Any, kernel: str, root: Path) -> KernelClient:
    _, client = await start(jp_fetch, jp_ws_fetch, kernel, "legacy")
    messages = await client.execute(WRITE.format(root=str(root), names=NAMES))
    assert "written" in stdout_of(messages), [m["content"] for m in messages]
    return client


def assert_masked(
    body: str | bytes, values: dict[str, str], names: tuple[str, ...] = NAMES
) -> None:
    """No value in ``body``, a placeholder for each name (failures name secrets, never values)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    leaked = [name for name, value in values.items() if value in text]
    assert not leaked, f"injected values reached the browser: {leaked}"
    missing = [name for name in names if placeholder(name) not in text]
    assert not missing, f"no placeholder for {missing}"


def assert_overwritten(body: bytes, values: dict[str, str]) -> None:
    """A binary body: each value replaced by ``*`` of the same length."""
    leaked = [n for n, v in values.items() if v.encode() in body]
    assert not leaked, f"injected values reached the browser: {leaked}"
    missing = [n for n, v in values.items() if b"*" * len(v) not in body]
    assert not missing, f"not overwritten in place: {missing}"


async def test_contents_api_masks_every_format(
    jp_fetch: Any, jp_ws_fetch: Any, qsecure_kernel: str, jp_root_dir: Path, values: dict[str, str]
) -> None:
    await write_files(jp_fetch, jp_ws_fetch, qsecure_kernel, jp_root_dir)

    async def get(path: str, **params: str) -> dict[str, Any]:
        response = await jp_fetch("api", "contents", path, method="GET", params=params)
        leaked = [n for n, v in values.items() if v in response.body.decode()]
        assert not leaked, f"injected values reached the browser: {leaked}"
        return dict(json.loads(response.body))

    for path in TEXT_FILES:
        text = await get(path, type="file", format="text")
        assert_masked(text["content"], values)
        encoded = await get(path, type="file", format="base64")
        assert_masked(base64.b64decode(encoded["content"]), values)
    notebook = await get("written.ipynb")  # type notebook, JSON
    assert notebook["type"] == "notebook"
    assert_masked(json.dumps(notebook, ensure_ascii=False), values)
    output = notebook["content"]["cells"][1]["outputs"][0]["text"]
    shows_placeholders = output == "\n".join(placeholder(name) for name in NAMES)
    assert shows_placeholders, "the notebook output does not show exactly the placeholders"
    default = await get("config.json")
    assert_masked(default["content"], values)

    blob = await get("blob.bin", type="file", format="base64")
    raw = (jp_root_dir / "blob.bin").read_bytes()
    masked = base64.b64decode(blob["content"])
    assert len(masked) == len(raw)  # binary: overwritten in place
    assert_overwritten(masked, values)


@pytest.mark.parametrize(
    "files_handler",
    # the default streams from disk; FilesHandler (non-file contents managers) reads a model
    [None, "jupyter_server.files.handlers.FilesHandler"],
    indirect=True,
)
async def test_files_and_downloads_are_masked(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    qsecure_kernel: str,
    jp_root_dir: Path,
    values: dict[str, str],
    files_handler: str | None,
) -> None:
    await write_files(jp_fetch, jp_ws_fetch, qsecure_kernel, jp_root_dir)
    for path in TEXT_FILES:
        shown = await jp_fetch("files", path, method="GET")
        assert_masked(shown.body, values)
        download = await jp_fetch("files", path, method="GET", params={"download": "1"})
        assert download.headers["Content-Disposition"].startswith("attachment")
        assert_masked(download.body, values)
        if files_handler is None:
            assert download.headers.get("Cache-Control") == "no-store"
    await assert_head(jp_fetch, "run.log")
    # Ranged and conditional requests get the whole masked body, never raw bytes or a 304.
    ranged = await jp_fetch(
        "files",
        "run.log",
        method="GET",
        headers={"Range": "bytes=0-99999", "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    )
    assert ranged.code == 200 and "Accept-Ranges" not in ranged.headers
    assert_masked(ranged.body, values)
    raw = (jp_root_dir / "blob.bin").read_bytes()
    blob = await jp_fetch("files", "blob.bin", method="GET", params={"download": "1"})
    assert len(blob.body) == len(raw)
    assert_overwritten(blob.body, values)


async def assert_head(jp_fetch: Any, path: str) -> None:
    """HEAD /files/PATH: 200 and no body, 404 for a missing file; no coroutine left unawaited.

    jupyter_server's FilesHandler.head calls ``get`` twice and awaits only the second; with
    an async ``get`` the first never runs and Python warns when it is collected.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        head = await jp_fetch("files", path, method="HEAD")
        with pytest.raises(HTTPClientError) as missing:
            await jp_fetch("files", "no-such-file.txt", method="HEAD")
    assert head.code == 200 and not head.body
    assert missing.value.code == 404 and not (
        missing.value.response and missing.value.response.body
    )
    assert not [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize(
    "files_handler", [None, "jupyter_server.files.handlers.FilesHandler"], indirect=True
)
async def test_head_of_a_file_is_answered_once(
    jp_fetch: Any, jp_root_dir: Path, files_handler: str | None
) -> None:
    """HEAD without any injected value (the server's own path through our handler)."""
    (jp_root_dir / "plain.txt").write_text("nothing secret here\n")
    await assert_head(jp_fetch, "plain.txt")


async def test_large_file_streams_masked_across_chunks(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    qsecure_kernel: str,
    jp_root_dir: Path,
    values: dict[str, str],
) -> None:
    client = await write_files(jp_fetch, jp_ws_fetch, qsecure_kernel, jp_root_dir)
    # ~3 MB of log lines with a value across every boundary of the server's read chunks
    code = (
        f"chunk, names = {CHUNK_SIZE}, {NAMES!r}\n"
        "parts, pos = [], 0\n"
        "for k in range(1, 13):\n"
        "    v = vals[names[k % 3]]\n"
        "    start = k * chunk - len(v) // 2\n"
        "    lines = ('step %d ok' % k + '.' * 90 + '\\n') * ((start - pos) // 100 + 1)\n"
        "    parts += [lines[: start - pos], v]\n"
        "    pos = start + len(v)\n"
        "with open('big.log', 'w') as f: f.write(''.join(parts) + '\\nend\\n')\n"
        "print('big written')\n"
    )
    assert "big written" in stdout_of(await client.execute(code))
    shown = await jp_fetch("files", "big.log", method="GET")
    assert_masked(shown.body, values)
    masker = jp_serverapp.web_app.settings["qsecure_credentials"].masker()
    same = shown.body.decode() == masker.mask((jp_root_dir / "big.log").read_text())
    assert same, "the streamed body differs from masking the whole file at once"


async def test_nbconvert_output_is_masked(
    jp_fetch: Any, jp_ws_fetch: Any, qsecure_kernel: str, jp_root_dir: Path, values: dict[str, str]
) -> None:
    await write_files(jp_fetch, jp_ws_fetch, qsecure_kernel, jp_root_dir)
    for fmt in ("script", "html"):
        converted = await jp_fetch("nbconvert", fmt, "written.ipynb", method="GET")
        assert_masked(converted.body, values)
        download = await jp_fetch(
            "nbconvert", fmt, "written.ipynb", method="GET", params={"download": "true"}
        )
        assert_masked(download.body, values)


async def read_terminal(ws: Any, until: str, timeout: float = 60) -> str:
    """Everything a terminal websocket shows, up to and including ``until``."""
    shown = ""
    while until not in shown:
        raw = await asyncio.wait_for(ws.read_message(), timeout)
        assert raw is not None, "terminal websocket closed"
        kind, *data = json.loads(raw)
        if kind == "stdout":
            shown += data[0]
    return shown


async def test_terminal_cat_is_masked(
    jp_fetch: Any, jp_ws_fetch: Any, qsecure_kernel: str, jp_root_dir: Path, values: dict[str, str]
) -> None:
    await write_files(jp_fetch, jp_ws_fetch, qsecure_kernel, jp_root_dir)
    response = await jp_fetch("api", "terminals", method="POST", body="{}")
    name = json.loads(response.body)["name"]
    ws = await jp_ws_fetch("terminals", "websocket", name)
    files = " ".join(str(jp_root_dir / path) for path in TEXT_FILES)
    # the shell prints END-42 only after cat is done; the typed command shows END-$((6*7))
    await ws.write_message(json.dumps(["stdin", f"cat {files}; echo END-$((6*7))\r"]))
    shown = await read_terminal(ws, "END-42")
    assert_masked(shown, values)
    ws.close()
    # a new connection is sent the terminal's history first: masked too
    again = await jp_ws_fetch("terminals", "websocket", name)
    assert_masked(await read_terminal(again, "END-42"), values)
    again.close()
    await jp_fetch("api", "terminals", name, method="DELETE")


async def test_ledger_notes_each_file_version_once(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    qsecure_kernel: str,
    jp_root_dir: Path,
    values: dict[str, str],
) -> None:
    client = await write_files(jp_fetch, jp_ws_fetch, qsecure_kernel, jp_root_dir)
    ledger = jp_serverapp.web_app.settings["qsecure_ledger"]

    def noted() -> list[dict[str, Any]]:
        return [e.body for e in ledger.entries(EntryFilter(kinds=[KIND]))]

    for _ in range(2):
        await jp_fetch("api", "contents", "run.log", method="GET")
        await jp_fetch("api", "contents", "run.log", method="GET", params={"format": "base64"})
        await jp_fetch("files", "run.log", method="GET")
        await jp_fetch("files", "run.log", method="GET", params={"download": "1"})
        await jp_fetch("api", "contents", "written.ipynb", method="GET")
        await jp_fetch("nbconvert", "script", "written.ipynb", method="GET")
    await jp_fetch("api", "contents", "", method="GET")  # a listing holds no values
    bodies = noted()
    assert sorted(b["path"] for b in bodies) == ["run.log", "written.ipynb"]
    for body in bodies:
        assert body["secret_names"] == sorted(NAMES)
        assert body["size"] == (jp_root_dir / body["path"]).stat().st_size
    first = next(b for b in bodies if b["path"] == "run.log")
    assert first["via"] == "contents"

    # a new version of the file is noted again, once
    code = f"import os\nwith open({str(jp_root_dir / 'run.log')!r}, 'a') as f: f.write(vals['short'] + '\\n')\nprint('appended')"
    assert "appended" in stdout_of(await client.execute(code))
    await jp_fetch("files", "run.log", method="GET")
    await jp_fetch("api", "contents", "run.log", method="GET")
    runs = [b for b in noted() if b["path"] == "run.log"]
    assert len(runs) == 2 and runs[1]["via"] == "files"
    assert runs[1]["size"] == (jp_root_dir / "run.log").stat().st_size

    everything = json.dumps([e.body for e in ledger.entries()])
    leaked = [n for n, v in values.items() if v in everything]
    assert not leaked, f"injected values in the ledger: {leaked}"


def test_masked_handlers_serve_every_route(jp_serverapp: Any) -> None:
    check_routes(jp_serverapp.web_app, jp_serverapp)  # raises if another handler wins


def test_another_handler_on_a_file_route_stops_the_extension() -> None:
    class Foreign(web.RequestHandler):
        pass

    app = web.Application([(r"/(.*)", Foreign)], base_url="/")
    with pytest.raises(RuntimeError, match="Foreign serves that route"):
        check_routes(app, object())
