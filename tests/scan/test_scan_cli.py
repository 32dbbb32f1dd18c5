"""``jupyter qsecure scan``: exit codes, formats, folders, text and binary files, baseline."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest
import scan_fakes as fk

from jupyter_qsecure.cli.main import main
from jupyter_qsecure.config import QSecure, load_settings
from jupyter_qsecure.scan import Fingerprinter, fingerprinter_from_settings
from jupyter_qsecure.testing.ports import free_loopback_port
from jupyter_qsecure.vault.injected import InjectedRegistry


@pytest.fixture(autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The scan reads the fingerprint key and registry of the data dir: never the user's."""
    path = tmp_path_factory.mktemp("qsecure-data")
    monkeypatch.setenv("QSECURE_DATA_DIR", str(path))
    return path


def _write_nb(path: Path, *sources: str) -> None:
    nbformat.write(fk.code_notebook(*sources), str(path))


def test_clean_file_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_nb(tmp_path / "a.ipynb", "x = 1")
    assert main(["scan", str(tmp_path / "a.ipynb")]) == 0
    assert "no secrets found in 1 file" in capsys.readouterr().out


def test_findings_exit_1_json_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fingerprint = fingerprinter_from_settings(load_settings(), create=True)  # as the server
    key = fk.aws_key()
    (tmp_path / "src").mkdir()
    _write_nb(tmp_path / "src" / "a.ipynb", "x = 1", f"k = '{key}'")
    assert main(["scan", "--format", "json", str(tmp_path / "src")]) == 1
    out = capsys.readouterr().out
    assert key not in out
    report = json.loads(out)
    assert report["files"] == 1 and isinstance(report["seconds"], float)
    (finding,) = report["findings"]
    assert finding == {
        "path": str(tmp_path / "src" / "a.ipynb"),
        "cell": 1,
        "cell_id": finding["cell_id"],
        "where": "source",
        "output": None,
        "mime": None,
        "line": 1,
        "type": "AWS Access Key",
        "fingerprint": fingerprint(key),  # keyed with the data dir's key, not a bare hash
        "secret_name": None,
        "injected_on": None,
    }
    assert hashlib.sha256(key.encode()).hexdigest() not in out


def test_text_output_never_has_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = fk.password()
    (tmp_path / "settings.py").write_text(f'DB_PASSWORD = "{secret}"\n')
    assert main(["scan", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "Secret Keyword" in captured.out and "settings.py" in captured.out
    assert secret not in captured.out + captured.err


def test_folder_recursion_text_binary_and_invalid_notebook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = fk.github_token()
    sub = tmp_path / "deep" / "er"
    sub.mkdir(parents=True)
    (sub / "notes.md").write_text(f"use {token}\n")
    (sub / "blob.bin").write_bytes(b"\0\1\2" + token.encode())
    (tmp_path / "broken.ipynb").write_text("{not json")
    _write_nb(tmp_path / "ok.ipynb", "x = 1")
    code = main(["scan", "--format", "json", str(tmp_path)])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 1
    assert [Path(f["path"]).name for f in report["findings"]] == ["notes.md"]
    assert report["files"] == 2  # notes.md and ok.ipynb; binary skipped, broken reported
    assert any("broken.ipynb" in e for e in report["errors"])
    assert "broken.ipynb is not a valid notebook" in captured.err


def test_invalid_notebook_alone_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.ipynb").write_text('{"cells": 3')
    assert main(["scan", str(tmp_path / "broken.ipynb")]) == 2
    err = capsys.readouterr().err
    assert "broken.ipynb is not a valid notebook" in err and "hint:" in err


def test_missing_path_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_baseline_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = fk.aws_key()
    nb_path = tmp_path / "a.ipynb"
    _write_nb(nb_path, f"k = '{key}'")
    baseline = tmp_path / ".secrets.baseline"
    baseline.write_text(
        json.dumps(
            {
                "results": {
                    "a.ipynb": [
                        {
                            "type": "AWS Access Key",
                            "filename": "a.ipynb",
                            "hashed_secret": hashlib.sha1(key.encode()).hexdigest(),  # noqa: S324
                            "is_verified": False,
                            "line_number": 5,
                        }
                    ]
                }
            }
        )
    )
    assert main(["scan", str(nb_path)]) == 1
    assert main(["scan", "--baseline", str(baseline), str(nb_path)]) == 0
    (tmp_path / "bad.baseline").write_text("[]")
    assert main(["scan", "--baseline", str(tmp_path / "bad.baseline"), str(nb_path)]) == 2
    assert "no 'results'" in capsys.readouterr().err


def test_pre_commit_hook_manifest() -> None:
    manifest = Path(__file__).resolve().parents[2] / ".pre-commit-hooks.yaml"
    text = manifest.read_text()
    assert "id: qsecure-scan" in text and "entry: jupyter-qsecure scan" in text


# ---- the fingerprint registry of injected values ----------------------------------------
def _register(data_dir: Path, fingerprinter: Fingerprinter, **values: str) -> None:
    settings = QSecure(data_dir=str(data_dir))
    InjectedRegistry.for_settings(settings, fingerprinter).record(values, {})


def test_registered_value_in_a_log_is_named_never_shown(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    value = secrets.token_urlsafe(24)
    server_key = fingerprinter_from_settings(QSecure(data_dir=str(data_dir)), create=True)
    _register(data_dir, server_key, warehouse=value)
    log = tmp_path / "run.log"
    log.write_text(f"INFO start\nDEBUG connect password={value} host=db\n")
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert main(["scan", str(log)]) == 1
    captured = capsys.readouterr()
    assert (
        f"run.log line 2: Injected Secret (registry): value of secret warehouse injected on {today}"
        in captured.out
    )
    assert main(["scan", "--format", "json", str(log)]) == 1
    raw = capsys.readouterr().out
    (finding,) = json.loads(raw)["findings"]
    assert finding["secret_name"] == "warehouse" and finding["injected_on"] == today
    assert finding["fingerprint"] == server_key(value)
    for text in (captured.out, captured.err, raw):
        assert value not in text and hashlib.sha256(value.encode()).hexdigest() not in text


def test_fingerprints_of_another_key_are_not_called_clean(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(data_dir, Fingerprinter.ephemeral(), api=secrets.token_urlsafe(24))
    (tmp_path / "clean.txt").write_text("nothing here\n")
    assert main(["scan", str(tmp_path / "clean.txt")]) == 2
    err = capsys.readouterr().err
    assert "1 fingerprint(s)" in err and "another key" in err and "not checked" in err


def test_unreadable_openbao_key_stops_a_scan_that_needs_it(
    tmp_path: Path,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "clean.txt").write_text("nothing here\n")
    monkeypatch.setenv("BAO_ADDR", f"http://127.0.0.1:{free_loopback_port()}")  # nothing listens
    monkeypatch.setenv("BAO_TOKEN", "t-" + secrets.token_urlsafe(8))
    assert main(["scan", str(tmp_path / "clean.txt")]) == 0  # no registry: nothing to check
    capsys.readouterr()
    _register(data_dir, Fingerprinter.ephemeral(), api=secrets.token_urlsafe(24))
    assert main(["scan", str(tmp_path / "clean.txt")]) == 2
    err = capsys.readouterr().err
    assert "cannot check the fingerprint registry" in err and "hint:" in err
