"""Edges of the notebook walk (:mod:`jupyter_qsecure.scan.extract`) and of the scanner's
entry points that mutation testing found untested (issue 15)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import scan_fakes as fk

from jupyter_qsecure.scan import (
    InvalidNotebook,
    ScanError,
    Scanner,
    as_notebook,
    engine,
    extract,
    placeholder_for,
    redact_notebook,
    redact_text,
)
from jupyter_qsecure.scan.fingerprints import Fingerprinter, FingerprintIndex
from jupyter_qsecure.testing import planted as pl


def _notebook(*outputs: dict[str, Any], metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {
                "cell_type": "code",
                "id": "c0",
                "metadata": metadata or {},
                "source": "show()",
                "execution_count": 1,
                "outputs": list(outputs),
            }
        ],
    }


def _display(data: dict[str, Any]) -> dict[str, Any]:
    return {"output_type": "display_data", "metadata": {}, "data": data}


def test_a_binary_mime_type_before_a_text_one_does_not_hide_it() -> None:
    # matplotlib puts image/png before text/plain in an output's bundle; an attachment's
    # bundle may hold more than one representation too
    key, other = fk.aws_key(), fk.aws_key()
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256))).decode()
    nb = _notebook(_display({"image/png": png, "text/plain": f"<Figure {key}>"}))
    nb["cells"][0]["attachments"] = {
        "fig.png": {"image/png": png, "text/plain": base64.b64encode(other.encode()).decode()}
    }
    found = Scanner().scan_notebook(nb).findings
    assert [(f.type, f.where, f.mime, f.path, f.cell) for f in found] == [
        ("AWS Access Key", "outputs", "text/plain", "", 0),  # no path given: none reported
        ("AWS Access Key", "attachments", "text/plain", "", 0),
    ]


def test_long_binary_base64_with_line_breaks_in_json_is_skipped() -> None:
    # a widget buffer, base64 with MIME line breaks: a binary payload, not text
    payload = base64.encodebytes(os.urandom(600)).decode()
    assert "\n" in payload and len(payload) > 256
    nb = _notebook(metadata={"widget": {"buffers": [{"data": payload}]}})
    assert Scanner().scan_notebook(nb).findings == []


def test_a_big_metadata_value_without_text_is_remembered_as_nothing() -> None:
    # rendered once per content (the JSON memo is shared by every path): the second path
    # gets "no unit" from the memo
    key = fk.aws_key()
    nb = _notebook(metadata={"numbers": list(range(300))})
    nb["cells"][0]["source"] = f"k = '{key}'"
    scanner = Scanner()
    for path in ("a.ipynb", "b.ipynb"):
        result = scanner.scan_notebook(json.loads(json.dumps(nb)), path=path)
        assert [(f.path, f.cell, f.where) for f in result.findings] == [(path, 0, "source")]
        assert [u.where for u in result.units] == ["source"]


def test_big_html_with_a_lone_surrogate_is_scanned() -> None:
    # JSON may carry a lone surrogate ("\ud800"); a big HTML output is rendered through a
    # memo keyed by a hash of its UTF-8 bytes
    key = fk.aws_key()
    html = "<p>" + "filler " * 100 + "\ud800</p><p>" + key + "</p>"
    nb = json.loads(json.dumps(_notebook(_display({"text/html": html}))))
    for _ in range(2):  # rendered, then served from the memo
        found = Scanner().scan_notebook(nb).findings
        assert [(f.type, f.mime) for f in found] == [("AWS Access Key", "text/html")]


def test_a_notebook_without_cells_is_scanned_again_at_the_same_path() -> None:
    key = fk.aws_key()
    scanner = Scanner()
    nb: dict[str, Any] = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}
    assert scanner.scan_notebook(dict(nb), path="a.ipynb").findings == []
    assert scanner.scan_notebook(dict(nb), path="a.ipynb").findings == []
    nb["metadata"] = {"note": key}
    found = scanner.scan_notebook(nb, path="a.ipynb").findings
    assert [(f.type, f.cell, f.where) for f in found] == [("AWS Access Key", None, "metadata")]


def test_json_that_is_not_a_notebook_is_named_with_the_fix() -> None:
    with pytest.raises(InvalidNotebook) as caught:
        as_notebook({"data": []}, path="x.ipynb")
    assert caught.value.message == (
        "x.ipynb is not a valid notebook: no 'cells' list: this is JSON but not a notebook"
    )
    assert caught.value.hint == "open it in Jupyter to repair it, or exclude it from the scan"
    with pytest.raises(InvalidNotebook) as caught:
        Scanner().scan_notebook({"data": []}, path="y.ipynb")
    assert caught.value.message.startswith("y.ipynb is not a valid notebook: ")


def test_a_file_too_big_to_read_is_an_error_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.txt"
    big.write_text("x" * 100)
    monkeypatch.setattr(engine, "MAX_FILE_BYTES", 99)
    with pytest.raises(ScanError) as caught:
        Scanner().scan_file(big)
    assert caught.value.message == f"{big} is 100 bytes, more than the scanner reads (99)"
    assert caught.value.hint == "split the file or scan it with a dedicated tool"


def test_a_folder_scan_reports_its_seconds_to_the_tenth_of_a_millisecond(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    times = [100.123456, 100.0]  # started, then done (and any later reading)
    monkeypatch.setattr(time, "perf_counter", lambda: times.pop() if len(times) > 1 else times[0])
    report = Scanner(providers=False).scan_paths([tmp_path])  # nothing else reads the clock
    assert (report.files, report.seconds) == (1, 0.1235)


def test_an_unreadable_file_is_named_with_the_reason(tmp_path: Path) -> None:
    missing = tmp_path / "gone.py"
    with pytest.raises(ScanError) as caught:
        Scanner().scan_file(missing)
    assert caught.value.message == f"cannot read {missing}: No such file or directory"
    assert caught.value.hint == "check the path and its permissions"


def test_a_secret_in_an_update_display_data_output_is_found() -> None:
    key = fk.aws_key()
    out = {"output_type": "update_display_data", "metadata": {}, "data": {"text/plain": key}}
    found = Scanner().scan_notebook(_notebook(out)).findings
    assert [(f.type, f.where, f.output) for f in found] == [("AWS Access Key", "outputs", 0)]


def test_redaction_of_an_error_output_replaces_the_value_only() -> None:
    key = fk.aws_key()
    error = {
        "output_type": "error",
        "ename": "KeyError",
        "evalue": f"bad key {key} here",
        "traceback": ["Traceback", f"KeyError: {key}"],
    }
    nb = _notebook(error)
    redacted = redact_notebook(nb, scanner=Scanner())
    out = redacted["cells"][0]["outputs"][0]
    hidden = placeholder_for("AWS Access Key")
    assert (out["ename"], out["evalue"]) == ("KeyError", f"bad key {hidden} here")
    assert out["traceback"] == ["Traceback", f"KeyError: {hidden}"]


def test_redaction_keeps_json_nested_just_above_the_depth_limit() -> None:
    # leaves less than MAX_JSON_DEPTH below the walked value map back to their own string
    key = fk.aws_key()
    leaf: dict[str, Any] = {"token": key, "keep": "this"}
    deep: dict[str, Any] = leaf
    for _ in range(extract.MAX_JSON_DEPTH - 4):
        deep = {"k": deep}
    nb = _notebook(metadata=deep)
    redacted = redact_notebook(nb, scanner=Scanner())
    node = redacted["cells"][0]["metadata"]
    for _ in range(extract.MAX_JSON_DEPTH - 4):
        node = node["k"]
    assert node == {"token": placeholder_for("AWS Access Key"), "keep": "this"}


def test_redaction_of_an_svg_file_with_a_value_split_over_elements_removes_it() -> None:
    key = fk.aws_key()
    svg = f'<svg xmlns="http://www.w3.org/2000/svg"><text><tspan>{key[:10]}</tspan><tspan>{key[10:]}</tspan></text></svg>'
    result = Scanner().scan_text(svg, path="chart.svg")
    assert [f.type for f in result.findings] == ["AWS Access Key"]
    redacted = redact_text(svg, result, path="chart.svg")
    assert key[:10] not in redacted and key[10:] not in redacted


def test_big_html_outputs_are_each_rendered_from_their_own_content() -> None:
    # HTML this big is rendered once per distinct content (a memo shared by every scan)
    key = fk.aws_key()
    filler = "<p>" + "plain words " * 60 + "</p>"
    nb = _notebook(_display({"text/html": filler + "<p>nothing here</p>"}))
    nb["cells"].append(dict(nb["cells"][0], id="c1"))
    nb["cells"][1]["outputs"] = [_display({"text/html": filler + f"<p>{key}</p>"})]
    found = Scanner().scan_notebook(nb).findings
    assert [(f.type, f.cell, f.mime) for f in found] == [("AWS Access Key", 1, "text/html")]


def test_a_big_svg_attachment_is_scanned_as_rendered() -> None:
    key = fk.aws_key()
    svg = '<svg xmlns="http://www.w3.org/2000/svg">' + "<desc>chart</desc>" * 40
    svg += f"<text><tspan>{key[:10]}</tspan><tspan>{key[10:]}</tspan></text></svg>"
    assert len(svg) > extract.MEMO_MIN_CHARS
    nb = _notebook()
    nb["cells"][0]["attachments"] = {
        "chart.svg": {"image/svg+xml": base64.b64encode(svg.encode()).decode()}
    }
    found = Scanner().scan_notebook(nb).findings
    assert [(f.type, f.where, f.mime) for f in found] == [
        ("AWS Access Key", "attachments", "image/svg+xml")
    ]


def test_findings_in_json_name_their_cell_by_id() -> None:
    key = fk.aws_key()
    nb = _notebook(metadata={"conn": {"key": key}})
    found = Scanner().scan_notebook(nb).findings
    assert [(f.cell, f.cell_id, f.where) for f in found] == [(0, "c0", "metadata")]


def test_a_notebook_file_is_searched_for_the_registrys_values(tmp_path: Path) -> None:
    value = secrets.token_urlsafe(30)
    index = FingerprintIndex.of_values(Fingerprinter.ephemeral(), {"ibm": value})
    nb = _notebook()
    nb["cells"][0]["source"] = f"token = '{value}'"
    path = tmp_path / "a.ipynb"
    path.write_text(json.dumps(nb))
    found = Scanner().scan_file(path, injected=index)
    assert found is not None
    assert [(f.type, f.secret_name) for f in found.findings] == [
        ("Injected Secret (registry)", "ibm")
    ]


def test_a_folder_scan_searches_its_files_for_the_given_values(tmp_path: Path) -> None:
    value = secrets.token_urlsafe(30)
    (tmp_path / "a.txt").write_text(f"note {value}\n")
    report = Scanner().scan_paths([tmp_path], exact_values=[value])
    assert [f.type for f in report.findings] == ["Injected Secret"]


def test_a_source_list_with_other_items_keeps_its_strings() -> None:
    key = fk.aws_key()
    nb = _notebook()
    nb["cells"][0]["source"] = ["k = '", 1, key, "'"]  # not nbformat, but seen in the wild
    found = Scanner().scan_notebook(nb).findings
    assert [(f.type, f.where) for f in found] == [("AWS Access Key", "source")]


def test_an_unnamed_invalid_notebook_is_called_a_notebook() -> None:
    with pytest.raises(InvalidNotebook) as caught:
        as_notebook({"data": []})
    assert caught.value.message.startswith("notebook is not a valid notebook: ")


def test_a_credential_in_an_html_table_is_found() -> None:
    secret = fk.password()
    table = f"<table><tr><th>user</th><th>password</th></tr><tr><td>ann</td><td>{secret}</td></tr></table>"
    found = Scanner().scan_notebook(_notebook(_display({"text/html": table}))).findings
    assert [f.mime for f in found] == ["text/html"]


@pytest.mark.parametrize("filler", ["plain words ", "\u20ac"])  # the euro sign: 3 UTF-8 bytes
def test_long_base64_of_text_is_searched_for_an_injected_value(filler: str) -> None:
    # text, not a binary payload, even when its first 4 KiB end inside a character
    value = secrets.token_urlsafe(30)
    text = filler * 1500 + value + filler * 1500
    blob = base64.b64encode(text.encode()).decode()
    nb = _notebook(metadata={"state": {"b": blob}})
    found = Scanner().scan_notebook(nb, exact_values=[value]).findings
    assert [(f.type, f.where) for f in found] == [("Injected Secret (base64)", "metadata")]


def test_the_nextline_pragma_applies_to_provider_rules() -> None:
    value = pl.make_secret(pl.PROVIDER_BY_FAMILY["shopify"])
    scanner = Scanner()
    allowed = f'x = 1\n# pragma: allowlist nextline secret\nSHOPIFY = "{value}"\n'
    assert scanner.scan_text(allowed, path="a.py").findings == []
    too_far = f'# pragma: allowlist nextline secret\nx = 1\nSHOPIFY = "{value}"\n'
    assert scanner.scan_text(too_far, path="a.py").findings != []


def test_a_rule_allowlist_on_the_line_applies_to_that_rules_hits(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        "[[rules]]\n"
        'id = "acme-api-token"\n'
        "regex = '''\\b(acme_[a-z0-9]{32})\\b'''\n"
        "secretGroup = 1\n"
        "[[rules.allowlists]]\n"
        'regexTarget = "line"\n'
        "regexes = ['''# test fixture''']\n"
    )
    token = "acme_" + pl.rand(pl._sys(), 32, pl.LOWER + pl.DIGITS)
    scanner = Scanner(rules=rules)
    assert scanner.scan_text(f"t = '{token}'  # test fixture\n", path="a.py").findings == []
    assert scanner.scan_text(f"t = '{token}'\n", path="a.py").findings != []
