"""The save gate through a real Jupyter Server (pytest-jupyter, real contents manager)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_output
from save_gate_helpers import fake_aws_key, fake_github_token, notebook_with
from server_helpers import put, refused
from tornado.httpclient import HTTPClientError

from jupyter_qsecure.ledger import EntryFilter


@pytest.mark.parametrize("where", ["source", "output", "metadata"])
async def test_notebook_with_a_secret_is_refused_and_disk_unchanged(
    jp_fetch: Any, jp_root_dir: Path, jp_serverapp: Any, where: str
) -> None:
    clean = notebook_with("none", "")
    await put(jp_fetch, "work.ipynb", {"type": "notebook", "content": clean})
    before = (jp_root_dir / "work.ipynb").read_bytes()
    secret = fake_aws_key()
    body = await refused(
        jp_fetch, "work.ipynb", {"type": "notebook", "content": notebook_with(where, secret)}
    )
    assert (jp_root_dir / "work.ipynb").read_bytes() == before
    raw = json.dumps(body)
    assert secret not in raw
    assert body["findings"] and {f["where"] for f in body["findings"]} == {
        {"source": "source", "output": "outputs", "metadata": "metadata"}[where]
    }
    fingerprint = jp_serverapp.web_app.settings["qsecure_save_gate"].scanner.fingerprinter
    assert any(f["fingerprint"] == fingerprint(secret) for f in body["findings"])
    unkeyed = hashlib.sha256(secret.encode()).hexdigest()
    assert unkeyed not in raw
    assert "recover restore" in body["message"] and body["recovery_id"]
    ledger = jp_serverapp.web_app.settings["qsecure_ledger"]
    refusals = ledger.entries(EntryFilter(kinds=["save.refused"]))
    assert refusals[-1].body["path"] == "work.ipynb"
    assert refusals[-1].body["findings"][0]["fingerprint"] == fingerprint(secret)
    everything = json.dumps([e.body for e in ledger.entries()])
    assert secret not in everything and unkeyed not in everything


async def test_refused_content_is_recoverable(jp_fetch: Any, jp_serverapp: Any) -> None:
    secret = fake_github_token()
    model = notebook_with("none", "")
    model["cells"][1]["source"] = f"token = '{secret}'  # my unsaved work"
    body = await refused(jp_fetch, "draft.ipynb", {"type": "notebook", "content": model})
    gate = jp_serverapp.web_app.settings["qsecure_save_gate"]
    record, content = gate.recovery.open(body["recovery_id"])
    assert record.path == "draft.ipynb" and "my unsaved work" in content.decode()
    sealed = (gate.recovery.folder / f"{record.id}.bin").read_bytes()
    assert secret.encode() not in sealed  # encrypted at rest


async def test_clean_notebook_saves(jp_fetch: Any, jp_root_dir: Path) -> None:
    nb = notebook_with("none", "")
    nb["cells"][1]["outputs"] = [
        new_output("stream", name="stdout", text="counts {'00': 512, '11': 512}\n")
    ]
    response = await put(jp_fetch, "clean.ipynb", {"type": "notebook", "content": nb})
    assert response.code in (200, 201)
    assert "qsecure" not in json.loads(response.body)
    assert (
        nbformat.read(jp_root_dir / "clean.ipynb", as_version=4).cells[1].source == "print('hello')"
    )


async def test_notebook_arriving_as_type_file_is_scanned(jp_fetch: Any, jp_root_dir: Path) -> None:
    secret = fake_aws_key()
    text = json.dumps(notebook_with("source", secret))
    await refused(jp_fetch, "sneaky.ipynb", {"type": "file", "format": "text", "content": text})
    b64 = base64.b64encode(text.encode()).decode()
    await refused(jp_fetch, "sneaky.ipynb", {"type": "file", "format": "base64", "content": b64})
    assert not (jp_root_dir / "sneaky.ipynb").exists()


async def test_text_file_with_a_secret_is_refused(jp_fetch: Any, jp_root_dir: Path) -> None:
    secret = fake_aws_key()
    body = await refused(
        jp_fetch,
        "settings.env",
        {"type": "file", "format": "text", "content": f"AWS_ACCESS_KEY_ID={secret}\n"},
    )
    assert body["findings"][0]["where"] is None and secret not in json.dumps(body)
    assert not (jp_root_dir / "settings.env").exists()


async def test_chunked_upload_is_scanned_whole_and_never_lands(
    jp_fetch: Any, jp_root_dir: Path
) -> None:
    (jp_root_dir / "data.txt").write_text("original\n")
    secret = fake_aws_key()
    payload = ("x = 1\n" * 2000 + f"key = '{secret}'\n" + "y = 2\n" * 2000).encode()
    half = len(payload) // 2 + 3  # the secret is split across chunks 2 and 3
    pieces = [payload[: half - 20], payload[half - 20 : half], payload[half:]]
    for number, piece in zip([1, 2, -1], pieces, strict=True):
        model = {
            "type": "file",
            "format": "base64",
            "chunk": number,
            "content": base64.b64encode(piece).decode(),
        }
        if number != -1:
            response = await put(jp_fetch, "data.txt", model)
            assert response.code in (200, 201)
            assert (jp_root_dir / "data.txt").read_text() == "original\n"  # nothing lands early
        else:
            body = await refused(jp_fetch, "data.txt", model)
            assert secret not in json.dumps(body)
    assert (jp_root_dir / "data.txt").read_text() == "original\n"


async def test_clean_chunked_upload_assembles(jp_fetch: Any, jp_root_dir: Path) -> None:
    payload = b"".join(f"line {i}\n".encode() for i in range(5000))
    pieces = [payload[:10000], payload[10000:20000], payload[20000:]]
    for number, piece in zip([1, 2, -1], pieces, strict=True):
        await put(
            jp_fetch,
            "big.txt",
            {
                "type": "file",
                "format": "base64",
                "chunk": number,
                "content": base64.b64encode(piece).decode(),
            },
        )
    assert (jp_root_dir / "big.txt").read_bytes() == payload


async def test_checkpoint_of_a_file_with_a_secret_is_refused(
    jp_fetch: Any, jp_root_dir: Path
) -> None:
    secret = fake_aws_key()
    (jp_root_dir / "outside.py").write_text(f"KEY = '{secret}'\n")  # written outside Jupyter
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("api", "contents", "outside.py", "checkpoints", method="POST", body="")
    assert info.value.code == 422 and secret not in info.value.response.body.decode()


async def test_restoring_a_checkpoint_with_a_secret_is_refused(
    jp_fetch: Any, jp_root_dir: Path, jp_serverapp: Any
) -> None:
    await put(jp_fetch, "notes.py", {"type": "file", "format": "text", "content": "x = 1\n"})
    response = await jp_fetch("api", "contents", "notes.py", "checkpoints", method="POST", body="")
    checkpoint_id = json.loads(response.body)["id"]
    cm = jp_serverapp.contents_manager
    Path(cm.checkpoints.checkpoint_path(checkpoint_id, "notes.py")).write_text(
        f"KEY = '{fake_aws_key()}'\n"
    )
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            "api", "contents", "notes.py", "checkpoints", checkpoint_id, method="POST", body=""
        )
    assert info.value.code == 422
    assert (jp_root_dir / "notes.py").read_text() == "x = 1\n"


async def test_scanner_failure_refuses_the_save(
    jp_fetch: Any, jp_root_dir: Path, jp_serverapp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = jp_serverapp.web_app.settings["qsecure_save_gate"]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("detector crashed")

    monkeypatch.setattr(gate.scanner, "scan_notebook", broken)
    with pytest.raises(HTTPClientError) as info:
        await put(jp_fetch, "any.ipynb", {"type": "notebook", "content": notebook_with("none", "")})
    assert info.value.code == 500
    assert "refused to be safe" in info.value.response.body.decode()
    assert not (jp_root_dir / "any.ipynb").exists()


async def test_scanner_failure_on_the_assembled_upload_refuses_it(
    jp_fetch: Any, jp_root_dir: Path, jp_serverapp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = jp_serverapp.web_app.settings["qsecure_save_gate"]
    (jp_root_dir / "data.txt").write_text("original\n")
    calls: list[int] = []

    def broken(text: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(text))
        raise RuntimeError("detector crashed")

    monkeypatch.setattr(gate.scanner, "scan_text", broken)
    pieces = [b"x = 1\n" * 2000, b"y = 2\n" * 2000]
    for number, piece in zip([1, -1], pieces, strict=True):
        model = {"type": "file", "format": "base64", "chunk": number}
        model["content"] = base64.b64encode(piece).decode()
        if number == 1:
            await put(jp_fetch, "data.txt", model)  # staged only: nothing is scanned yet
            assert calls == []
            continue
        with pytest.raises(HTTPClientError) as info:
            await put(jp_fetch, "data.txt", model)
        assert info.value.code == 500
        assert "refused to be safe" in info.value.response.body.decode()
    assert calls == [len(b"".join(pieces))]  # the whole assembled file went to the scanner
    assert (jp_root_dir / "data.txt").read_text() == "original\n"


async def test_unauthenticated_save_is_forbidden(
    http_server_client: Any, jp_base_url: str, jp_root_dir: Path
) -> None:
    response = await http_server_client.fetch(
        f"{jp_base_url.rstrip('/')}/api/contents/x.txt",
        method="PUT",
        body=json.dumps({"type": "file", "format": "text", "content": "hi"}),
        raise_error=False,
    )
    assert response.code == 403 and not (jp_root_dir / "x.txt").exists()
