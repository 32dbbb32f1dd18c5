"""SaveGate decisions without a server: models, raw bytes, modes, failures."""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from jupyter_qsecure.gate import GateError, SaveGate
from jupyter_qsecure.gate.recovery import LocalKeyWrapper, RecoveryError, RecoveryStore
from jupyter_qsecure.scan import Scanner
from jupyter_qsecure.scan.fingerprints import Fingerprinter, FingerprintError, FingerprintIndex


def fake_key() -> str:
    return "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))


class ListLedger:
    def __init__(self, fail: bool = False) -> None:
        self.entries: list[tuple[str, dict[str, Any], str | None]] = []
        self.fail = fail

    def append(self, kind: str, body: dict[str, Any], *, actor: str | None = None) -> None:
        if self.fail:
            raise OSError("disk full")
        self.entries.append((kind, body, actor))


def make_gate(
    tmp_path: Path,
    mode: str = "block",
    ledger: Any = None,
    values: tuple[str, ...] = (),
    injected: Callable[[], FingerprintIndex | None] | None = None,
) -> SaveGate:
    store = RecoveryStore(tmp_path / "recovery", LocalKeyWrapper(tmp_path / "recovery.key"))
    return SaveGate(
        scanner=Scanner(),
        recovery=store,
        mode=mode,
        ledger=ledger,
        exact_values=lambda: values,
        injected=injected,
    )


def test_block_records_hashes_and_keeps_a_sealed_copy(tmp_path: Path) -> None:
    ledger = ListLedger()
    gate = make_gate(tmp_path, ledger=ledger)
    secret = fake_key()
    outcome = gate.check_model(
        {"type": "file", "format": "text", "content": f"key={secret}\n"}, "a.env", "alice"
    )
    assert outcome.action == "block" and outcome.recovery_id
    kind, body, actor = ledger.entries[0]
    assert (kind, actor, body["path"], body["user"]) == (
        "save.refused",
        "user:alice",
        "a.env",
        "alice",
    )
    assert secret not in json.dumps(body) and secret not in outcome.message
    record, content = gate.recovery.open(outcome.recovery_id)
    assert (
        content == f"key={secret}\n".encode()
        and record.findings[0].type == outcome.findings[0].type
    )


def test_injected_values_are_matched_exactly_even_encoded(tmp_path: Path) -> None:
    injected = secrets.token_urlsafe(24)
    gate = make_gate(tmp_path, values=(injected,))
    encoded = base64.b64encode(injected.encode()).decode()
    outcome = gate.check_model(
        {"type": "file", "format": "text", "content": f"blob: {encoded}\n"}, "x.txt", "u"
    )
    assert outcome.action == "block"


def test_binary_files_are_not_scanned_as_text(tmp_path: Path) -> None:
    gate = make_gate(tmp_path)
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40).decode()
    assert (
        gate.check_model({"type": "file", "format": "base64", "content": png}, "p.png", "u").action
        == "allow"
    )


def test_redact_raw_bytes_and_base64_models(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, mode="redact")
    secret = fake_key()
    raw = f"a = 1\nkey = '{secret}'\n".encode()
    outcome = gate.check_bytes(raw, "m.py", "u")
    assert (
        outcome.action == "redact"
        and outcome.content is not None
        and secret.encode() not in outcome.content
    )
    model = {"type": "file", "format": "base64", "content": base64.b64encode(raw).decode()}
    redacted = gate.check_model(model, "m.py", "u").model
    assert redacted is not None and secret.encode() not in base64.b64decode(redacted["content"])


def test_ledger_failure_refuses_even_in_warn_mode(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, mode="warn", ledger=ListLedger(fail=True))
    with pytest.raises(GateError, match="could not record its decision"):
        gate.check_model(
            {"type": "file", "format": "text", "content": f"k={fake_key()}"}, "f.txt", "u"
        )


def test_scanner_failure_is_a_gate_error_and_keeps_the_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = make_gate(tmp_path)
    monkeypatch.setattr(gate.scanner, "scan_text", lambda *a, **k: 1 / 0)
    with pytest.raises(GateError) as info:
        gate.check_model({"type": "file", "format": "text", "content": "my work"}, "w.txt", "u")
    assert "recover restore" in (info.value.hint or "")
    assert [r.reason for r in gate.recovery.list()] == ["scan failed"]


def test_clean_and_empty_models_pass(tmp_path: Path) -> None:
    gate = make_gate(tmp_path)
    assert gate.check_model({"type": "directory", "content": None}, "d", "u").action == "allow"
    assert (
        gate.check_model(
            {"type": "file", "format": "text", "content": "print(1)\n"}, "a.py", "u"
        ).action
        == "allow"
    )


def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GateError, match="not one of"):
        make_gate(tmp_path, mode="ignore")


def test_recovery_copies_are_private_and_tamper_evident(tmp_path: Path) -> None:
    store = RecoveryStore(tmp_path / "rec", LocalKeyWrapper(tmp_path / "k"))
    record = store.save(b"precious work", path="n.ipynb", user="u", reason="test", findings=[])
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "rec" / f"{record.id}.bin").stat().st_mode & 0o777 == 0o600
    sealed = tmp_path / "rec" / f"{record.id}.bin"
    data = bytearray(sealed.read_bytes())
    data[-1] ^= 1
    sealed.write_bytes(bytes(data))
    with pytest.raises(RecoveryError, match="damaged") as info:
        store.open(record.id)
    assert info.value.hint == "it cannot be opened; the ledger still records the refused save"
    other = RecoveryStore(tmp_path / "rec", LocalKeyWrapper(tmp_path / "other-key"))
    with pytest.raises(RecoveryError, match="sealed with a different local key") as info:
        other.open(record.id)
    assert "the server that refused the save" in (info.value.hint or "")
    with pytest.raises(RecoveryError, match="no recovery copy") as info:
        store.open("20990101T000000Z-deadbeef")
    assert info.value.hint == "see `jupyter qsecure recover list` (and check QSECURE_DATA_DIR)"
    with pytest.raises(RecoveryError, match="not a recovery id") as info:
        store.open("../etc/passwd")
    assert info.value.hint == "see `jupyter qsecure recover list`"
    outside = tmp_path / "outside"  # an absolute path: never read outside the folder
    (tmp_path / "outside.json").write_bytes((tmp_path / "rec" / f"{record.id}.json").read_bytes())
    for ident in (str(outside), ".hidden", "sub/dir"):
        with pytest.raises(RecoveryError, match="not a recovery id"):
            store.open(ident)


def test_a_truncated_local_recovery_key_is_a_recovery_error(tmp_path: Path) -> None:
    # A RecoveryError, which the gate's callers turn into a refusal with its fix.
    key = tmp_path / "recovery.key"
    key.touch(mode=0o600)
    key.write_bytes(b"\0" * 16)
    with pytest.raises(RecoveryError, match=f"recovery key {key} is not a 256-bit key"):
        LocalKeyWrapper(key)


def test_a_recovery_id_is_the_utc_time_of_the_save_whatever_the_local_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The id is what a user types (`recover restore ID`) and what `recover list` sorts by.
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30: a local time would be off by hours
    time.tzset()
    try:
        store = RecoveryStore(tmp_path / "rec", LocalKeyWrapper(tmp_path / "k"))
        record = store.save(b"work", path="n.ipynb", user="u", reason="test", findings=[])
    finally:
        monkeypatch.undo()
        time.tzset()
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", record.id)
    stamp = datetime.strptime(record.id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    assert abs(stamp - datetime.fromisoformat(record.created)) < timedelta(minutes=1)


def test_the_recovery_folder_is_created_with_a_data_dir_that_does_not_exist_yet(
    tmp_path: Path,
) -> None:
    # With OpenBao's transit key, no local key file has created the data dir before.
    store = RecoveryStore(tmp_path / "data" / "recovery", LocalKeyWrapper(tmp_path / "k"))
    record = store.save(b"work", path="n.ipynb", user="u", reason="test", findings=[])
    assert store.open(record.id)[1] == b"work"
    assert (tmp_path / "data" / "recovery").stat().st_mode & 0o777 == 0o700


def test_deleting_a_copy_whose_ciphertext_is_gone_removes_its_record(tmp_path: Path) -> None:
    store = RecoveryStore(tmp_path / "rec", LocalKeyWrapper(tmp_path / "k"))
    record = store.save(b"precious work", path="n.ipynb", user="u", reason="test", findings=[])
    (tmp_path / "rec" / f"{record.id}.bin").unlink()
    store.delete(record.id)
    assert store.list() == [] and not any((tmp_path / "rec").iterdir())


def test_a_recovery_folder_that_cannot_be_created_names_the_setting_to_fix(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data dir should be")
    store = RecoveryStore(blocker / "recovery", LocalKeyWrapper(tmp_path / "k"))
    with pytest.raises(RecoveryError) as info:
        store.save(b"precious work", path="n.ipynb", user="u", reason="test", findings=[])
    assert str(info.value).startswith(f"cannot create the recovery folder {blocker / 'recovery'}: ")
    assert info.value.hint == "make the data dir writable (QSECURE_DATA_DIR)"


def notebook(*sources: str) -> dict[str, Any]:
    return {
        "type": "notebook",
        "format": "json",
        "content": {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {},
            "cells": [
                {
                    "cell_type": "code",
                    "id": f"c{i}",
                    "metadata": {},
                    "source": source,
                    "outputs": [],
                    "execution_count": None,
                }
                for i, source in enumerate(sources)
            ],
        },
    }


def test_unchanged_refused_content_is_a_repeat(tmp_path: Path) -> None:
    """Autosave of an unchanged notebook: one recovery copy and one ledger entry."""
    ledger = ListLedger()
    gate = make_gate(tmp_path, ledger=ledger)
    model = notebook("x = 1", f"key = '{fake_key()}'")
    first = gate.check_model(model, "a.ipynb", "alice")
    again = gate.check_model(json.loads(json.dumps(model)), "a.ipynb", "alice")
    assert first.action == again.action == "block"
    assert (first.repeat, again.repeat) == (False, True)
    assert again.recovery_id == first.recovery_id and again.refused_at == first.refused_at
    assert len(gate.recovery.list()) == 1 and len(ledger.entries) == 1
    assert "not recorded again" in again.message
    # other content, another user, or the same content after a clean save: recorded
    changed = notebook("x = 2", f"key = '{fake_key()}'")
    assert gate.check_model(changed, "a.ipynb", "alice").repeat is False
    assert gate.check_model(changed, "a.ipynb", "bob").repeat is False
    assert gate.check_model(notebook("x = 3"), "a.ipynb", "alice").action == "allow"
    assert gate.check_model(changed, "a.ipynb", "alice").repeat is False
    assert len(gate.recovery.list()) == 4 and len(ledger.entries) == 4


def test_refusals_name_cells_as_jupyterlab_does(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, ledger=ListLedger())
    outcome = gate.check_model(
        notebook("import os", f"a = 1\nb = 2\nkey = '{fake_key()}'"), "a.ipynb", "alice"
    )
    [finding] = outcome.findings_json()
    assert finding["cell"] == 1  # the scan contract: 0-based
    assert finding["cell_number"] == 2 and finding["line"] == 3
    assert finding["location"] == "cell 2, line 3" and finding["where"] == "source"
    assert "in cell 2, line 3" in outcome.message


def test_location_texts() -> None:
    from jupyter_qsecure.scan.models import Finding

    def at(**fields: Any) -> str:
        base = {"path": "a", "where": None, "cell": None, "line": 1, "type": "T"}
        return Finding(**{**base, **fields, "fingerprint": "0" * 64}).location()

    assert at(cell=0, where="outputs", output=1, line=4) == "cell 1, output 2, line 4"
    assert at(cell=2, where="metadata") == "cell 3 metadata, line 1"
    assert (
        at(cell=0, where="attachments", mime="image/png") == "cell 1, attachment image/png, line 1"
    )
    assert at(where="metadata", line=2) == "notebook metadata, line 2"
    assert at(line=7) == "line 7"


# ---- found by mutation testing (docs/mutation-testing.md) -----------------------------------


def test_block_message_counts_the_secrets_and_names_the_recovery_command(tmp_path: Path) -> None:
    ledger = ListLedger()
    gate = make_gate(tmp_path, ledger=ledger)
    text = f"a={fake_key()}\nb={fake_key()}\n"
    outcome = gate.check_model({"type": "file", "format": "text", "content": text}, "f.env", "al")
    assert outcome.action == "block" and len(outcome.findings) == 2
    assert outcome.message.startswith("Save of f.env refused: 2 secrets found (AWS Access Key")
    assert outcome.message.endswith(
        "Your unsaved content is kept encrypted: "
        f"`jupyter qsecure recover restore {outcome.recovery_id}`."
    )
    ((kind, body, actor),) = ledger.entries
    assert body == {
        "path": "f.env",
        "user": "al",
        "mode": "block",
        "findings": [
            {
                "type": f.type,
                "fingerprint": f.fingerprint,
                "cell": None,
                "where": None,
                "line": f.line,
            }
            for f in outcome.findings
        ],
        "recovery_id": outcome.recovery_id,
    }
    one = gate.check_model(
        {"type": "file", "format": "text", "content": "a=" + fake_key()}, "g", "u"
    )
    assert "refused: 1 secret found (" in one.message


def test_scan_failure_is_recorded_as_an_error_with_its_recovery_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = ListLedger()
    gate = make_gate(tmp_path, ledger=ledger)
    monkeypatch.setattr(gate.scanner, "scan_text", lambda *a, **k: 1 / 0)
    with pytest.raises(GateError):
        gate.check_model({"type": "file", "format": "text", "content": "work"}, "w.txt", "u")
    ((kind, body, _),) = ledger.entries
    (kept,) = gate.recovery.list()
    assert (kind, body["mode"], body["recovery_id"]) == ("save.refused", "error", kept.id)


def test_redact_keeps_a_recovery_copy_and_notebooks_stay_notebooks(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, mode="redact")
    secret = fake_key()
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "source": f"k = '{secret}'",
                "metadata": {},
                "outputs": [],
                "execution_count": None,
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    outcome = gate.check_model({"type": "notebook", "content": nb}, "n.ipynb", "u")
    assert outcome.action == "redact" and outcome.recovery_id
    assert [r.reason for r in gate.recovery.list()] == ["redacted on save"]
    assert outcome.findings[0].path == "n.ipynb" and outcome.findings[0].where == "source"
    assert outcome.model is not None and isinstance(outcome.model["content"], dict)
    assert secret not in json.dumps(outcome.model["content"])
    # the same notebook saved as text stays text
    text = json.dumps(nb)
    model = {"type": "file", "format": "text", "content": text}
    as_text = gate.check_model(model, "n.ipynb", "u").model
    assert as_text is not None and isinstance(as_text["content"], str)
    assert secret not in as_text["content"] and json.loads(as_text["content"])["cells"]


def test_injected_values_are_found_and_redacted_in_notebooks_and_text(tmp_path: Path) -> None:
    injected = secrets.token_urlsafe(24)
    nb = {
        "cells": [{"cell_type": "markdown", "source": f"v {injected}", "metadata": {}}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    block = make_gate(tmp_path / "b", values=(injected,))
    assert block.check_model({"type": "notebook", "content": nb}, "n.ipynb", "u").action == "block"
    redact = make_gate(tmp_path / "r", mode="redact", values=(injected,))
    model = {"type": "file", "format": "text", "content": f"v = {injected}\n"}
    out = redact.check_model(model, "v.txt", "u").model
    assert out is not None and injected not in out["content"]


def test_allowed_bytes_come_back_as_they_are_and_directories_are_not_scanned(
    tmp_path: Path,
) -> None:
    gate = make_gate(tmp_path)
    raw = b"print('hello')\n"
    assert gate.check_bytes(raw, "a.py", "u").content == raw
    listing = {"type": "directory", "content": f"k={fake_key()}"}
    assert gate.check_model(listing, "d", "u").action == "allow"


def test_base64_with_line_breaks_and_broken_ipynb_text_are_scanned(tmp_path: Path) -> None:
    gate = make_gate(tmp_path)
    secret = fake_key()
    encoded = base64.encodebytes(("x = 1\n" * 30 + f"k = '{secret}'\n").encode()).decode()
    assert "\n" in encoded  # MIME-style lines, as some clients send
    model = {"type": "file", "format": "base64", "content": encoded}
    assert gate.check_model(model, "m.py", "u").action == "block"
    broken = {"type": "file", "format": "text", "content": f'{{"cells": [ k = "{secret}"'}
    assert gate.check_model(broken, "b.ipynb", "u").action == "block"


def test_a_redacted_copy_falls_back_to_replacement_characters() -> None:
    from jupyter_qsecure.gate.gate import _Subject

    assert _Subject("text", charset="cp1252").encode("ok ✓ «x»") == "ok ? «x»".encode("cp1252")
    assert _Subject("text", charset="utf-8").encode("ok ✓") == "ok ✓".encode()


def test_redacted_notebook_loses_secrets_in_joined_streams_and_rendered_html(
    tmp_path: Path,
) -> None:
    gate = make_gate(tmp_path, mode="redact")
    in_stream, in_html = fake_key(), fake_key()
    outputs = [
        {"output_type": "stream", "name": "stdout", "text": "connecting\n"},
        {"output_type": "stream", "name": "stdout", "text": f"key = '{in_stream}' ok\n"},
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"text/html": f"<p>aws key: <b>{in_html[:10]}</b>{in_html[10:]}</p>"},
        },
    ]
    cell = {"cell_type": "code", "source": "run()", "metadata": {}, "outputs": outputs}
    nb = {
        "cells": [{**cell, "execution_count": 1}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    outcome = gate.check_model({"type": "notebook", "content": nb}, "n.ipynb", "u")
    assert outcome.action == "redact" and outcome.model is not None
    out = outcome.model["content"]["cells"][0]["outputs"]
    assert out[0]["text"] == "connecting\n"  # the other stream message is untouched
    assert out[1]["text"].startswith("key = '«") and out[1]["text"].endswith("»' ok\n")
    dumped = json.dumps(out)
    assert in_stream not in dumped and in_html[:10] not in dumped and in_html[10:] not in dumped


# --- from mutation testing: file models holding a notebook, warn mode, check_bytes' user,
# --- a recovery copy that cannot be kept


def _notebook_with(source: str) -> dict[str, Any]:
    cell = {"cell_type": "code", "source": source, "metadata": {}, "outputs": []}
    return {
        "cells": [{**cell, "execution_count": None}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_a_notebook_in_a_file_model_is_scanned_as_a_notebook(tmp_path: Path) -> None:
    gate = make_gate(tmp_path)
    nb = _notebook_with(f"key = '{fake_key()}'")
    outcome = gate.check_model({"type": "file", "format": "json", "content": nb}, "n.ipynb", "u")
    assert outcome.action == "block"
    assert outcome.findings[0].cell_number == 1  # located in the notebook's first cell


def test_warn_mode_saves_the_model_as_it_is(tmp_path: Path) -> None:
    ledger = ListLedger()
    gate = make_gate(tmp_path, mode="warn", ledger=ledger)
    model = {"type": "file", "format": "text", "content": f"k={fake_key()}\n"}
    outcome = gate.check_model(model, "w.txt", "u")
    assert outcome.action == "warn" and outcome.model is model
    assert [kind for kind, _, _ in ledger.entries] == ["save.warned"]


def test_check_bytes_records_the_user(tmp_path: Path) -> None:
    ledger = ListLedger()
    gate = make_gate(tmp_path, ledger=ledger)
    outcome = gate.check_bytes(f"k={fake_key()}\n".encode(), "b.txt", "carol")
    assert outcome.action == "block" and outcome.content is None
    (_, body, actor) = ledger.entries[0]
    assert (body["user"], actor) == ("carol", "user:carol")


def test_a_recovery_copy_that_cannot_be_kept_is_logged_by_its_error_type(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class FullStore:
        def save(self, *args: Any, **kwargs: Any) -> Any:
            raise PermissionError("read-only")

    gate = make_gate(tmp_path)
    gate.recovery = FullStore()  # type: ignore[assignment]
    secret = fake_key()
    with caplog.at_level("ERROR", logger="jupyter_qsecure.gate.gate"):
        outcome = gate.check_model(
            {"type": "file", "format": "text", "content": f"k={secret}\n"}, "r.txt", "u"
        )
    assert outcome.action == "block" and outcome.recovery_id is None  # still refused
    assert [r.getMessage() for r in caplog.records] == [
        "could not keep a recovery copy of r.txt: PermissionError"
    ]
    assert secret not in caplog.text


def test_a_save_records_its_editor_once_per_change(tmp_path: Path) -> None:
    ledger = ListLedger()
    gate = make_gate(tmp_path, ledger=ledger)
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}

    def notebook(source: str) -> dict[str, Any]:  # with a kernelspec: it has a digest
        nb = _notebook_with(source)
        nb["metadata"]["kernelspec"] = kernelspec
        return nb

    model = {"type": "notebook", "content": notebook("print(1)")}
    for user in ("dana", "erin"):  # the second save changes nothing: no new record
        assert gate.check_model(model, "e.ipynb", user, saving=True).action == "allow"
    changed = {"type": "notebook", "content": notebook("print(2)")}
    gate.check_model(changed, "e.ipynb", "erin", saving=True)
    assert [(kind, body["user"], actor) for kind, body, actor in ledger.entries] == [
        ("notebook.saved", "dana", "user:dana"),
        ("notebook.saved", "erin", "user:erin"),
    ]


def _unreadable_registry() -> FingerprintIndex | None:
    raise FingerprintError(
        "the fingerprint registry injected.json is unreadable", hint="set it aside"
    )


def test_what_is_not_scanned_saves_while_the_registry_is_unreadable(tmp_path: Path) -> None:
    # Text is refused to be safe when the registry of injected values cannot be read;
    # directories and binary files are not scanned, so they do not depend on it.
    gate = make_gate(tmp_path, injected=_unreadable_registry)
    text = {"type": "file", "format": "text", "content": "print('hello')\n"}
    with pytest.raises(GateError, match="fingerprint registry injected.json is unreadable"):
        gate.check_model(text, "a.py", "u")
    binary = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    unscanned: list[dict[str, Any]] = [
        {"type": "directory", "content": None},
        {"type": "file", "format": "base64", "content": base64.b64encode(binary).decode()},
        {"type": "file", "format": "base64", "content": "not base64 at all"},
        {"type": "file", "format": "text", "content": ["not", "a", "string"]},
    ]
    for model in unscanned:
        outcome = gate.check_model(model, "p.png", "u")
        assert (outcome.action, outcome.model) == ("allow", model), model["content"]
    assert gate.check_bytes(binary, "p.png", "u").content == binary


def test_redacted_text_files_lose_the_values_of_the_injected_registry(tmp_path: Path) -> None:
    # A value injected before a restart is known only by its fingerprint: redaction of a
    # text file (model or bytes) must use the registry as the scan did.
    value = secrets.token_urlsafe(24)
    index = FingerprintIndex.of_values(Fingerprinter.ephemeral(), {"ibm": value}, on="2025-06-15")
    gate = make_gate(tmp_path, mode="redact", injected=lambda: index)
    model = {"type": "file", "format": "text", "content": f"seen: {value}\n"}
    outcome = gate.check_model(model, "v.txt", "u")
    assert outcome.action == "redact" and outcome.model is not None
    assert outcome.model["content"] == "seen: «secret:Injected Secret (registry)»\n"
    raw = gate.check_bytes(f"seen: {value}\n".encode(), "v.txt", "u").content
    assert raw == "seen: «secret:Injected Secret (registry)»\n".encode()
