"""Cache, pathological inputs, concurrency, redaction, baseline and the shared corpus."""

from __future__ import annotations

import copy
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
import scan_fakes as fk

from jupyter_qsecure.scan import (
    Baseline,
    Scanner,
    placeholder_for,
    redact_notebook,
    redact_text,
)
from jupyter_qsecure.scan.extract import notebook_units

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "notebooks"


def _big_notebook(cells: int = 40):
    nb = nbformat.v4.new_notebook()
    for i in range(cells):
        cell = nbformat.v4.new_code_cell(f"x{i} = compute({i})\nprint(x{i})")
        cell.outputs = [
            nbformat.v4.new_output("stream", name="stdout", text=f"result {i}\n" * 20),
            nbformat.v4.new_output(
                "execute_result",
                data={"text/plain": f"{i}", "text/html": f"<b>value</b> {i}"},
                execution_count=i,
            ),
        ]
        nb.cells.append(cell)
    return nb


# ---------------------------------------------------------------- cache
def test_rescan_after_one_cell_change_touches_only_that_cell() -> None:
    scanner = Scanner()
    nb = _big_notebook()
    scanner.scan_notebook(nb)
    before = scanner.stats.units_scanned
    assert before == len(notebook_units(nb))
    assert scanner.scan_notebook(nb).findings == []
    assert scanner.stats.units_scanned == before  # unchanged: all cache hits
    key = fk.aws_key()
    nb.cells[17].source = f"k = '{key}'"
    result = scanner.scan_notebook(nb)
    assert scanner.stats.units_scanned == before + 1
    assert [(f.cell, f.type) for f in result.findings] == [(17, "AWS Access Key")]


# ---------------------------------------------------------------- pathological
@pytest.mark.timeout(120)
def test_fifty_megabyte_single_line_output() -> None:
    key = fk.aws_key()
    line = ("ab=cd'ef\"gh" * 4_600_000)[:50_000_000] + " " + key
    nb = fk.code_notebook("print(blob)")
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text=line)]
    result = Scanner().scan_notebook(nb)
    assert [f.type for f in result.findings] == ["AWS Access Key"]


@pytest.mark.timeout(120)
def test_lines_of_thousands_of_spaces() -> None:
    secret = fk.password()
    source = "\n".join(
        [" " * 5000 + "x", "password =" + " " * 8000 + f'"{secret}"', "a" + " " * 20000 + "= f(x)"]
        * 30
    )
    result = Scanner().scan_notebook(fk.code_notebook(source))
    assert {f.type for f in result.findings} == {"Secret Keyword"}


@pytest.mark.timeout(120)
def test_deeply_nested_json_output_and_metadata() -> None:
    token = fk.github_token()
    deep: object = token
    for i in range(20_000):
        deep = {"k": deep} if i % 2 else [deep]
    nb = json.loads(nbformat.writes(fk.code_notebook("x")))  # plain dicts: nbformat recurses
    nb["cells"][0]["outputs"] = [
        {"output_type": "display_data", "metadata": {}, "data": {"application/json": deep}}
    ]
    nb["metadata"]["deep"] = deep
    result = Scanner().scan_notebook(nb)
    assert {(f.where, f.type) for f in result.findings} == {
        ("outputs", "GitHub Token"),
        ("metadata", "GitHub Token"),
    }


@pytest.mark.timeout(120)
def test_many_keyword_lines_and_long_quoted_strings() -> None:
    text = ("secret key password token " * 2000 + "\n") * 50 + "'" + "A1b2" * 500_000
    assert Scanner().scan_text(text, path="x.txt").findings == []


# ---------------------------------------------------------------- concurrency
@pytest.mark.timeout(300)
def test_concurrent_scans_from_threads_are_correct() -> None:
    from detect_secrets.settings import transient_settings

    scanner = Scanner()
    keys = [fk.aws_key() for _ in range(24)]
    notebooks = []
    for i, key in enumerate(keys):
        nb = _big_notebook(8)
        nb.cells[i % 8].source = f"key = '{key}'\npassword = \"{fk.password()}\""
        notebooks.append(nb)
    expected = [
        sorted((f.cell, f.type, f.fingerprint) for f in Scanner().scan_notebook(nb).findings)
        for nb in notebooks
    ]
    stop = threading.Event()

    def meddle() -> None:  # another library user reconfiguring detect-secrets meanwhile
        while not stop.is_set():
            with transient_settings({"plugins_used": [{"name": "AWSKeyDetector"}]}):
                pass

    meddler = threading.Thread(target=meddle)
    meddler.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            got = list(
                pool.map(
                    lambda nb: sorted(
                        (f.cell, f.type, f.fingerprint)
                        for f in scanner.scan_notebook(copy.deepcopy(nb)).findings
                    ),
                    notebooks * 3,
                )
            )
    finally:
        stop.set()
        meddler.join()
    assert got == expected * 3
    assert all({t for _, t, _ in e} == {"AWS Access Key", "Secret Keyword"} for e in expected)


# ---------------------------------------------------------------- redaction
def test_redact_notebook_everywhere() -> None:
    key, pw, token = fk.aws_key(), fk.password(), fk.github_token()
    nb = fk.code_notebook(f"k = '{key}'\nprint(k)")
    nb.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="conn postgres://u:" + pw[:7]),
        nbformat.v4.new_output("stream", name="stdout", text=pw[7:] + "@db.example.com/x\n"),
        nbformat.v4.new_output(
            "display_data", data={"text/html": f"<i>token</i> {token}", "text/plain": token}
        ),
    ]
    nb.metadata["widgets"] = {"state": {"v": {"value": token}}}
    scanner = Scanner()
    result = scanner.scan_notebook(nb)
    redacted = redact_notebook(nb, result, scanner=scanner)
    dumped = json.dumps(redacted)
    for secret in (key, pw, token, pw[:7], pw[7:]):
        assert secret not in dumped
    assert redacted.cells[0].source == f"k = '{placeholder_for('AWS Access Key')}'\nprint(k)"
    assert "«secret:GitHub Token»" in redacted.metadata["widgets"]["state"]["v"]["value"]
    assert redacted.cells[0].outputs[1]["text"] == "@db.example.com/x\n"
    assert scanner.scan_notebook(redacted).clean
    assert nb.cells[0].source.startswith("k = 'AKIA")  # the original is untouched


def test_redact_text_and_pem() -> None:
    pem = fk.pem_private_key()
    text = f"KEY='''{pem}'''\nok = 1\n"
    out = redact_text(text, path="k.py")
    assert pem.splitlines()[1] not in out and "«secret:PEM Private Key»" in out
    assert out.endswith("ok = 1\n")


# ---------------------------------------------------------------- baseline
def test_baseline_suppresses_known_secret(tmp_path: Path) -> None:
    import hashlib

    key = fk.aws_key()
    other = fk.aws_key()
    path = tmp_path / "nb.ipynb"
    nbformat.write(fk.code_notebook(f"k = '{key}'", f"j = '{other}'"), str(path))
    baseline_file = tmp_path / ".secrets.baseline"
    baseline_file.write_text(
        json.dumps(
            {
                "version": "1.5.0",
                "results": {
                    "nb.ipynb": [
                        {
                            "type": "AWS Access Key",
                            "filename": "nb.ipynb",
                            "hashed_secret": hashlib.sha1(key.encode()).hexdigest(),  # noqa: S324
                            "line_number": 1,
                        }
                    ]
                },
            }
        )
    )
    report = Scanner().scan_paths([path], baseline=Baseline.load(baseline_file))
    assert [f.cell for f in report.findings] == [1]


# ---------------------------------------------------------------- corpus
@pytest.mark.timeout(300)
def test_shared_corpus_has_zero_findings() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    report = Scanner().scan_paths([CORPUS])
    assert report.files >= 100
    assert report.errors == []
    assert [f.describe() for f in report.findings] == []
