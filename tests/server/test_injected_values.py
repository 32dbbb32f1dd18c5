"""Injected values stay recognised after their kernel, and the server, stop.

A real server, a real qsecure kernel and the session's OpenBao: the kernel reads the
KV secret ``ibm`` (so the server injects and registers it), a notebook whose output
holds that value is saved after the kernel was restarted or shut down (its token
revoked, the KV value unchanged and still valid), after a second server started on
the same data dir, and a log file holding it is scanned by ``jupyter qsecure scan``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_server.serverapp import ServerApp
from nbformat.v4 import new_code_cell, new_notebook, new_output
from server_helpers import refused, start, stdout_of
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from jupyter_qsecure.scan.fingerprints import REGISTRY_TYPE


@pytest.fixture
def jp_server_config(ibm_server_config: dict[str, Any]) -> dict[str, Any]:
    return ibm_server_config


def notebook_holding(value: str) -> dict[str, Any]:
    nb = new_notebook()
    cell = new_code_cell("client = connect(secrets.get('ibm'))")
    cell.outputs = [new_output("stream", name="stdout", text=f"connected with {value}\n")]
    nb.cells.append(cell)
    return dict(json.loads(nbformat.writes(nb)))


async def inject(jp_fetch: Any, jp_ws_fetch: Any, kernel: str) -> str:
    """A kernel that read (and printed) the KV secret ``ibm``; its id."""
    kernel_id, client = await start(jp_fetch, jp_ws_fetch, kernel, "legacy")
    out = stdout_of(
        await client.execute("from jupyter_qsecure import secrets\nprint(secrets.get('ibm'))")
    )
    assert out == "«secret:ibm»\n"  # the browser never saw it
    client.ws.close()
    return kernel_id


def assert_no_unkeyed_hash(value: str, *texts: str) -> None:
    unkeyed = hashlib.sha256(value.encode()).hexdigest()
    for text in texts:
        assert value not in text and unkeyed not in text


@pytest.mark.parametrize("how", ["restart", "shutdown"])
async def test_value_is_refused_after_its_kernel_stops(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    jp_root_dir: Path,
    qsecure_kernel: str,
    fake_value: str,
    how: str,
) -> None:
    kernel_id = await inject(jp_fetch, jp_ws_fetch, qsecure_kernel)
    if how == "restart":
        await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="")
    else:
        await jp_fetch("api", "kernels", kernel_id, method="DELETE")
    # no cell has run since: nothing has registered the value again
    body = await refused(
        jp_fetch, "analysis.ipynb", {"type": "notebook", "content": notebook_holding(fake_value)}
    )
    assert not (jp_root_dir / "analysis.ipynb").exists()
    fingerprint = jp_serverapp.web_app.settings["qsecure_save_gate"].scanner.fingerprinter
    (finding,) = [f for f in body["findings"] if f["type"].startswith("Injected Secret")]
    assert finding["type"] == "Injected Secret" and finding["where"] == "outputs"
    assert finding["fingerprint"] == fingerprint(fake_value)
    ledger = jp_serverapp.web_app.settings["qsecure_ledger"]
    entries = json.dumps([e.body for e in ledger.entries()])
    assert fingerprint(fake_value) in entries
    assert_no_unkeyed_hash(fake_value, json.dumps(body), entries)


async def test_value_is_refused_by_a_second_server_on_the_same_data_dir(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    jp_configurable_serverapp: Any,
    jp_base_url: str,
    qsecure_kernel: str,
    fake_value: str,
    vault: dict[str, str],
    qsecure_data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await inject(jp_fetch, jp_ws_fetch, qsecure_kernel)
    first_gate = jp_serverapp.web_app.settings["qsecure_save_gate"]
    # The first server stops (kernels shut down, every credential revoked, its memory
    # gone); a second one starts on the same data dir and OpenBao.
    await jp_serverapp._cleanup()
    ServerApp.clear_instance()
    monkeypatch.setenv("BAO_TOKEN", vault["token"])  # the first server took it out
    second = jp_configurable_serverapp()
    assert second is not jp_serverapp
    assert second.web_app.settings["qsecure_registry"].all_values() == []
    sock, port = bind_unused_port()
    server = HTTPServer(second.web_app)
    server.add_sockets([sock])
    try:
        url = f"http://127.0.0.1:{port}{jp_base_url}api/contents/analysis.ipynb"
        model = {"type": "notebook", "content": notebook_holding(fake_value)}
        with pytest.raises(HTTPClientError) as info:
            await AsyncHTTPClient().fetch(
                url,
                method="PUT",
                body=json.dumps(model),
                headers={"Authorization": f"token {second.identity_provider.token}"},
            )
    finally:
        server.stop()
    assert info.value.code == 422 and info.value.response is not None
    body = json.loads(info.value.response.body)
    (finding,) = [f for f in body["findings"] if f["type"].startswith("Injected Secret")]
    assert finding["type"] == REGISTRY_TYPE and finding["secret_name"] == "ibm"
    assert finding["injected_on"] == datetime.now(timezone.utc).strftime("%Y-%m-%d")
    # same key (read from OpenBao by both servers): the same fingerprint
    assert finding["fingerprint"] == first_gate.scanner.fingerprinter(fake_value)
    assert_no_unkeyed_hash(fake_value, json.dumps(body))
    # what either server kept in the data dir (registry, ledger, keys, sealed recovery
    # copies) holds neither the value nor its unkeyed hash
    unkeyed = hashlib.sha256(fake_value.encode()).hexdigest().encode()
    for path in qsecure_data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert fake_value.encode() not in data and unkeyed not in data, path


async def test_scan_of_a_log_names_the_injected_secret(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    qsecure_kernel: str,
    qsecure_data_dir: Path,
    fake_value: str,
    vault: dict[str, str],
    tmp_path: Path,
) -> None:
    await inject(jp_fetch, jp_ws_fetch, qsecure_kernel)
    log = tmp_path / "run.log"
    log.write_text(
        "2025-01-01 12:00:00 INFO starting run\n"
        f"2025-01-01 12:00:01 DEBUG POST /api/jobs headers={{'Authorization': '{fake_value}'}}\n"
        "2025-01-01 12:00:02 INFO done\n"
    )
    exe = shutil.which("jupyter-qsecure", path=str(Path(sys.executable).parent))
    assert exe is not None
    # the command line reads the fingerprint key with its own credentials, as a
    # pre-commit hook in the user's shell would
    env = {
        **os.environ,
        "BAO_ADDR": vault["addr"],
        "BAO_TOKEN": vault["token"],
        "QSECURE_DATA_DIR": str(qsecure_data_dir),
    }
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    outputs = []
    for fmt in ("text", "json"):
        proc = await asyncio.create_subprocess_exec(
            exe,
            "scan",
            "--format",
            fmt,
            str(log),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 1, err.decode()
        outputs.append(out.decode() + err.decode())
    text, raw = outputs
    assert f"run.log line 2: {REGISTRY_TYPE}: value of secret ibm injected on {today}" in text
    (finding,) = [f for f in json.loads(raw)["findings"] if f["type"] == REGISTRY_TYPE]
    fingerprint = jp_serverapp.web_app.settings["qsecure_save_gate"].scanner.fingerprinter
    assert finding["secret_name"] == "ibm" and finding["injected_on"] == today
    assert finding["line"] == 2 and finding["fingerprint"] == fingerprint(fake_value)
    assert_no_unkeyed_hash(fake_value, text, raw)


async def test_an_unreadable_registry_refuses_saves(
    jp_fetch: Any, jp_root_dir: Path, qsecure_data_dir: Path
) -> None:
    registry = qsecure_data_dir / "fingerprints" / "injected.json"
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_text("{not json")
    clean = {"type": "notebook", "content": dict(json.loads(nbformat.writes(new_notebook())))}
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("api", "contents", "clean.ipynb", method="PUT", body=json.dumps(clean))
    assert info.value.code == 500 and info.value.response is not None
    assert "fingerprint registry" in info.value.response.body.decode()
    assert not (jp_root_dir / "clean.ipynb").exists()
    registry.unlink()  # set aside by an operator: saves work again
    response = await jp_fetch(
        "api", "contents", "clean.ipynb", method="PUT", body=json.dumps(clean)
    )
    assert response.code == 201
