"""Issue 11, cases 7 and 8: files the save gate did not read, and errors that echoed content.

Through a real Jupyter Server with the extension: values injected into a kernel (32
and 300 random characters, and a service-account JSON with a PEM key) are registered
as the server's credential service does, then saved in forms the gate used to miss:
text that is not UTF-8, notebook attachments (stored base64-encoded), SVG text split
over ``<tspan>`` elements, an upload abandoned after its first chunk; and a file named
``.ipynb`` that is not JSON, whose first bytes the 400 error used to repeat.
"""

from __future__ import annotations

import base64
import codecs
import json
import logging
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_markdown_cell, new_notebook, new_output
from save_gate_helpers import fake_github_token
from server_fakes import shows, sized_values
from tornado.httpclient import HTTPClientError

from jupyter_qsecure_server.save_gate import STAGING_MAX_IDLE_SECONDS

SIZES = ["v32", "v300", "sa"]


@pytest.fixture(scope="module")
def values() -> dict[str, str]:
    return sized_values()


@pytest.fixture
def qsecure_data_dir(tmp_path: Path, values: dict[str, str]) -> Path:
    """The data dir, with a plaintext part file left behind by an earlier server."""
    data = tmp_path / "qsecure-data"
    (data / "staging").mkdir(parents=True)
    (data / "staging" / ("0" * 32 + ".part")).write_bytes(f"id,key\n1,{values['v32']}\n".encode())
    return data


@pytest.fixture
def injected(jp_serverapp: Any, values: dict[str, str], name: str) -> str:
    """The value ``name``, registered as handed to a kernel (the gate matches it exactly)."""
    registry = jp_serverapp.web_app.settings["qsecure_registry"]
    registry.register("kernel-under-test", {name: values[name]})
    return values[name]


def assert_not_shown(text: str, value: str, where: str) -> None:
    assert not shows(text, value), f"the value, or part of it, is in {where}"


async def put(jp_fetch: Any, path: str, model: dict[str, Any]) -> Any:
    return await jp_fetch("api", "contents", path, method="PUT", body=json.dumps(model))


async def refused(jp_fetch: Any, path: str, model: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(HTTPClientError) as info:
        await put(jp_fetch, path, model)
    assert info.value.code == 422, info.value.response.body if info.value.response else None
    assert info.value.response is not None
    return dict(json.loads(info.value.response.body))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def svg_split(value: str) -> str:
    """An SVG whose text shows ``value`` whole, split over two ``<tspan>`` elements."""
    half = len(value) // 2
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="40">'
        f'<text x="0" y="20"><tspan>{value[:half]}</tspan><tspan font-weight="bold">'
        f"{value[half:]}</tspan></text></svg>"
    )


# ---- case 7: text that is not UTF-8 --------------------------------------------------------
@pytest.mark.parametrize("name", SIZES)
@pytest.mark.parametrize(
    ("filename", "encode"),
    [
        ("results.csv", lambda text: text.encode("cp1252")),
        ("notes.txt", lambda text: text.encode("utf-16")),  # with a byte order mark
        ("notes-be.txt", lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be")),
        ("notes32.txt", lambda text: text.encode("utf-32")),
    ],
)
async def test_text_that_is_not_utf8_is_scanned(
    jp_fetch: Any,
    jp_root_dir: Path,
    injected: str,
    name: str,
    filename: str,
    encode: Any,
) -> None:
    value = injected
    text = f"name;city;price\nMüller;Zürich;€ 5\n“quoted”;{value};x\n"
    body = await refused(
        jp_fetch, filename, {"type": "file", "format": "base64", "content": b64(encode(text))}
    )
    assert not (jp_root_dir / filename).exists()
    assert_not_shown(json.dumps(body), value, "the 422 body")
    assert any(f["type"].startswith("Injected Secret") for f in body["findings"])


async def test_latin1_upload_in_chunks_is_scanned(jp_fetch: Any, jp_root_dir: Path) -> None:
    token = fake_github_token()
    payload = "".join(f"ligne {i};café\n" for i in range(3000)).encode("latin-1")
    payload += f"jeton;{token}\n".encode("latin-1") + b"\x81 undefined in cp1252\n"
    pieces = [payload[:20000], payload[20000:40000], payload[40000:]]
    for number, piece in zip([1, 2, -1], pieces, strict=True):
        model = {"type": "file", "format": "base64", "chunk": number, "content": b64(piece)}
        if number != -1:
            await put(jp_fetch, "export.csv", model)
        else:
            body = await refused(jp_fetch, "export.csv", model)
            assert token not in json.dumps(body)
    assert not (jp_root_dir / "export.csv").exists()


async def test_binary_files_are_still_not_scanned(jp_fetch: Any, jp_root_dir: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)) * 8 + fake_github_token().encode()
    response = await put(
        jp_fetch, "plot.png", {"type": "file", "format": "base64", "content": b64(png)}
    )
    assert response.code in (200, 201) and (jp_root_dir / "plot.png").read_bytes() == png


# ---- case 7: notebook attachments ----------------------------------------------------------
def notebook_with_attachment(filename: str, mime: str, data: bytes) -> dict[str, Any]:
    nb = new_notebook()
    cell = new_markdown_cell(f"see ![{filename}](attachment:{filename})")
    cell["attachments"] = {filename: {mime: b64(data)}}
    nb.cells.append(cell)
    return dict(json.loads(nbformat.writes(nb)))


@pytest.mark.parametrize("name", SIZES)
@pytest.mark.parametrize(
    ("filename", "mime", "encode"),
    [
        ("settings.env", "application/octet-stream", lambda v: f"API_KEY={v}\n".encode()),
        ("table.csv", "text/csv", lambda v: f"clé;{v}\n".encode("utf-16")),
        ("chart.svg", "image/svg+xml", lambda v: svg_split(v).encode()),
    ],
)
async def test_attachments_are_decoded_and_scanned(
    jp_fetch: Any,
    jp_root_dir: Path,
    injected: str,
    name: str,
    filename: str,
    mime: str,
    encode: Any,
) -> None:
    value = injected
    nb = notebook_with_attachment(filename, mime, encode(value))
    body = await refused(jp_fetch, "report.ipynb", {"type": "notebook", "content": nb})
    assert not (jp_root_dir / "report.ipynb").exists()
    assert {f["where"] for f in body["findings"]} == {"attachments"}
    assert any(f["type"] == "Injected Secret" for f in body["findings"])
    assert_not_shown(json.dumps(body), value, "the 422 body")


async def test_a_detector_finds_a_token_in_a_base64_text_attachment(jp_fetch: Any) -> None:
    token = fake_github_token()
    nb = notebook_with_attachment("notes.txt", "text/plain", f"my token {token}\n".encode())
    body = await refused(jp_fetch, "notes.ipynb", {"type": "notebook", "content": nb})
    assert [f["type"] for f in body["findings"]] == ["GitHub Token"]


async def test_an_image_attachment_still_saves(jp_fetch: Any, jp_root_dir: Path) -> None:
    nb = notebook_with_attachment("pic.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    response = await put(jp_fetch, "pic.ipynb", {"type": "notebook", "content": nb})
    assert response.code in (200, 201) and (jp_root_dir / "pic.ipynb").exists()


# ---- case 7: SVG text split over <tspan> ---------------------------------------------------
@pytest.mark.parametrize("name", SIZES)
async def test_svg_text_split_over_tspans_is_found(
    jp_fetch: Any, jp_root_dir: Path, injected: str, name: str
) -> None:
    value = injected
    svg = svg_split(value)
    nb = new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("plot()"))
    nb.cells[0].outputs = [new_output("display_data", data={"image/svg+xml": svg})]
    content = json.loads(nbformat.writes(nb))
    body = await refused(jp_fetch, "plot.ipynb", {"type": "notebook", "content": content})
    assert {f["mime"] for f in body["findings"]} == {"image/svg+xml"}
    # found whole (the PEM key inside the service-account value is found even when split)
    assert any(f["type"] == "Injected Secret" for f in body["findings"])
    assert_not_shown(json.dumps(body), value, "the 422 body")
    body = await refused(jp_fetch, "plot.svg", {"type": "file", "format": "text", "content": svg})
    assert any(f["type"] == "Injected Secret" for f in body["findings"])
    assert_not_shown(json.dumps(body), value, "the 422 body")
    assert not (jp_root_dir / "plot.svg").exists() and not (jp_root_dir / "plot.ipynb").exists()


# ---- case 7: chunked uploads are staged encrypted and cleaned up ---------------------------
def staged_bytes(jp_serverapp: Any) -> bytes:
    gate = jp_serverapp.web_app.settings["qsecure_contents_gate"]
    return b"".join(p.read_bytes() for p in sorted(gate.staging_dir.glob("*")) if p.is_file())


@pytest.mark.parametrize("name", ["v32", "v300", "sa"])
async def test_an_abandoned_upload_leaves_no_plaintext_and_is_cleaned_up(
    jp_fetch: Any, jp_root_dir: Path, jp_serverapp: Any, values: dict[str, str], name: str
) -> None:
    value = values[name]
    gate = jp_serverapp.web_app.settings["qsecure_contents_gate"]
    payload = (f"id,key\n1,{value}\n" + "2,nothing\n" * 2000).encode()
    for number, piece in ((1, payload[:10000]), (2, payload[10000:])):
        model = {"type": "file", "format": "base64", "chunk": number, "content": b64(piece)}
        await put(jp_fetch, "keys.csv", model)
    staged = staged_bytes(jp_serverapp)
    assert len(staged) > len(payload)  # it is there, sealed
    assert_not_shown(staged.decode("latin-1"), value, "the staging folder")
    assert b"nothing" not in staged
    # An upload in progress survives the periodic clean-up ...
    assert gate.cleanup_staging(now=time.time()) == 0
    assert list(gate.staging_dir.glob("*.part"))
    # ... an abandoned one does not (the clock is ours: no waiting).
    assert gate.cleanup_staging(now=time.time() + 2 * STAGING_MAX_IDLE_SECONDS) == 1
    assert not list(gate.staging_dir.glob("*.part"))
    last = {"type": "file", "format": "base64", "chunk": -1, "content": b64(b"tail\n")}
    with pytest.raises(HTTPClientError) as info:
        await put(jp_fetch, "keys.csv", last)
    assert info.value.code == 400
    assert "upload the file again" in info.value.response.body.decode()
    assert not (jp_root_dir / "keys.csv").exists()


async def test_part_files_left_by_an_earlier_server_are_removed_at_start(
    jp_serverapp: Any, qsecure_data_dir: Path
) -> None:
    assert not list((qsecure_data_dir / "staging").glob("*.part"))


async def test_a_staged_upload_still_assembles(jp_fetch: Any, jp_root_dir: Path) -> None:
    payload = "".join(f"ligne {i};café\n" for i in range(5000)).encode("cp1252")
    pieces = [payload[:30000], payload[30000:60000], payload[60000:]]
    for number, piece in zip([1, 2, -1], pieces, strict=True):
        model = {"type": "file", "format": "base64", "chunk": number, "content": b64(piece)}
        await put(jp_fetch, "big.csv", model)
    assert (jp_root_dir / "big.csv").read_bytes() == payload


# ---- case 8: a file named .ipynb that is not JSON ------------------------------------------
@pytest.mark.parametrize("name", ["v32", "v300", "sa"])
async def test_a_non_json_ipynb_error_does_not_echo_its_content(
    jp_fetch: Any,
    jp_root_dir: Path,
    values: dict[str, str],
    name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    value = values[name]
    (jp_root_dir / "broken.ipynb").write_text(f"token {value}\n")
    bodies = []
    for args, kwargs in (
        (("api", "contents", "broken.ipynb"), {}),
        (
            ("api", "contents", ""),
            {"method": "POST", "body": json.dumps({"copy_from": "broken.ipynb"})},
        ),
        (("nbconvert", "html", "broken.ipynb"), {}),
    ):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch(*args, **kwargs)
        assert info.value.code == 400
        bodies.append(info.value.response.body.decode())
    message = json.loads(bodies[0])["message"]
    assert message.startswith("broken.ipynb is not a readable notebook: it is not JSON")
    assert "Editor" in message
    log = "\n".join(record.getMessage() for record in caplog.records)
    assert "is not a readable notebook" in log
    assert_not_shown("\n".join(bodies), value, "the 400 bodies")
    assert_not_shown(log, value, "the server log")
