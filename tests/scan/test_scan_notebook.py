"""Where secrets hide in a notebook: outputs, tracebacks, HTML, JSON, metadata, attachments."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import nbformat
import pytest
import scan_fakes as fk

from jupyter_qsecure.scan import Scanner, as_notebook


def _nb_with_outputs(*outputs):
    nb = fk.code_notebook("do_something()")
    nb.cells[0].outputs = list(outputs)
    return nb


def _only(result, **expected):
    assert result.findings, "expected a finding"
    for finding in result.findings:
        for key, value in expected.items():
            assert getattr(finding, key) == value, (key, finding)


def test_json_escaped_keyword_secret_in_raw_ipynb(tmp_path: Path) -> None:
    secret = fk.password()
    nb = fk.code_notebook(f'api_key = "{secret}"')
    path = tmp_path / "a.ipynb"
    nbformat.write(nb, str(path))
    assert '\\"' in path.read_text()  # the quotes are JSON-escaped on disk
    result = Scanner().scan_file(path)
    assert result is not None
    _only(result, where="source", cell=0, line=1, type="Secret Keyword", path=str(path))


def test_secret_split_across_two_stream_outputs() -> None:
    key = fk.aws_key()
    nb = _nb_with_outputs(
        nbformat.v4.new_output("stream", name="stdout", text="first line\nkey is " + key[:9]),
        nbformat.v4.new_output("stream", name="stdout", text=key[9:] + " ok\n"),
    )
    result = Scanner().scan_notebook(nb)
    _only(result, where="outputs", output=0, line=2, type="AWS Access Key")
    assert key not in fk.dumps_all(result.to_json())


def test_streams_of_different_names_are_not_joined() -> None:
    key = fk.aws_key()
    nb = _nb_with_outputs(
        nbformat.v4.new_output("stream", name="stdout", text=key[:9]),
        nbformat.v4.new_output("stream", name="stderr", text=key[9:]),
    )
    assert Scanner().scan_notebook(nb).findings == []


def test_traceback_with_ansi_codes() -> None:
    secret = fk.password()
    tb = [
        "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
        "\x1b[0;31mHTTPError\x1b[0m    Traceback (most recent call last)",
        f"\x1b[0;32m----> 1\x1b[0m \x1b[0mrequests\x1b[0m.\x1b[0mget\x1b[0m(\x1b[0murl\x1b[0m, "
        f'\x1b[0mapi_key\x1b[0m\x1b[0;34m=\x1b[0m\x1b[0;34m"{secret}"\x1b[0m)',
    ]
    nb = _nb_with_outputs(
        nbformat.v4.new_output("error", ename="HTTPError", evalue="401", traceback=tb)
    )
    _only(Scanner().scan_notebook(nb), where="outputs", output=0, line=5, type="Secret Keyword")


def test_error_evalue_with_url_password() -> None:
    secret = fk.password()
    nb = _nb_with_outputs(
        nbformat.v4.new_output(
            "error",
            ename="OperationalError",
            evalue=f"could not connect to postgresql://app:{secret}@db.internal:5432/x",
            traceback=[],
        )
    )
    _only(Scanner().scan_notebook(nb), where="outputs", output=0, line=2)


def test_html_with_entities_and_tags() -> None:
    secret = fk.password()
    markup = (
        "<table><tr><th>setting</th></tr><tr><td><b>password</b> = &quot;"
        + "".join(f"&#{ord(c)};" if i % 3 == 0 else c for i, c in enumerate(secret))
        + "&quot;</td></tr></table>"
    )
    nb = _nb_with_outputs(
        nbformat.v4.new_output("display_data", data={"text/html": markup, "text/plain": "<T>"})
    )
    _only(Scanner().scan_notebook(nb), mime="text/html", output=0, type="Secret Keyword")


def test_application_json_nested() -> None:
    secret = fk.password()
    data = {"config": {"servers": [{"name": "a"}, {"name": "b", "auth": {"password": secret}}]}}
    nb = _nb_with_outputs(
        nbformat.v4.new_output("execute_result", data={"application/json": data}, execution_count=1)
    )
    _only(Scanner().scan_notebook(nb), mime="application/json", type="Secret Keyword")


def test_every_text_mime_is_scanned_images_are_not() -> None:
    key = fk.aws_key()
    png = base64.b64encode(b"\x89PNG\r\n" + key.encode() * 50).decode()
    for mime in ("text/plain", "text/markdown", "text/latex", "application/javascript"):
        nb = _nb_with_outputs(nbformat.v4.new_output("display_data", data={mime: f"x {key} y"}))
        _only(Scanner().scan_notebook(nb), mime=mime, type="AWS Access Key")
    svg = f'<svg xmlns="http://www.w3.org/2000/svg"><text x="1">{key}</text></svg>'
    nb = _nb_with_outputs(nbformat.v4.new_output("display_data", data={"image/svg+xml": svg}))
    _only(Scanner().scan_notebook(nb), mime="image/svg+xml")
    nb = _nb_with_outputs(nbformat.v4.new_output("display_data", data={"image/png": png}))
    assert Scanner().scan_notebook(nb).findings == []


def test_widget_state_in_notebook_metadata() -> None:
    token = fk.github_token()
    nb = fk.code_notebook("w = Text()")
    nb.metadata["widgets"] = {
        "application/vnd.jupyter.widget-state+json": {
            "state": {"abc": {"model_name": "TextModel", "state": {"value": token}}},
            "version_major": 2,
        }
    }
    _only(Scanner().scan_notebook(nb), cell=None, where="metadata", type="GitHub Token")


def test_cell_metadata() -> None:
    secret = fk.password()
    nb = fk.code_notebook("x = 1")
    nb.cells[0].metadata["connection"] = {"host": "db", "password": secret}
    _only(Scanner().scan_notebook(nb), cell=0, where="metadata", type="Secret Keyword")


@pytest.mark.parametrize("output_type", ["display_data", "execute_result"])
def test_secret_only_in_output_metadata(output_type: str) -> None:
    # the data bundle is harmless; the only copy of the secret is the output's own metadata
    secret = fk.password()
    extra = {"execution_count": 1} if output_type == "execute_result" else {}
    nb = _nb_with_outputs(
        nbformat.v4.new_output("stream", name="stdout", text="connected\n"),
        nbformat.v4.new_output(
            output_type,
            data={"text/plain": "<Connection db>"},
            metadata={"connection": {"host": "db", "password": secret}},
            **extra,
        ),
    )
    result = Scanner().scan_notebook(nb)
    _only(result, cell=0, where="outputs", output=1, type="Secret Keyword")
    assert secret not in fk.dumps_all(result.to_json())


def test_text_attachment() -> None:
    token = fk.github_token()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_markdown_cell("see ![notes](attachment:notes.txt)")
    cell.attachments = {
        "notes.txt": {"text/plain": f"my token {token}"},
        "pic.png": {"image/png": base64.b64encode(b"\x89PNG" + bytes(range(256)) * 4).decode()},
    }
    nb.cells.append(cell)
    _only(Scanner().scan_notebook(nb), where="attachments", mime="text/plain", type="GitHub Token")


def test_data_uri_images_in_markdown_are_skipped() -> None:
    payload = base64.b64encode(bytes(range(256)) * 8).decode()
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(f'<img src="data:image/png;base64,{payload}">'))
    nb.cells.append(nbformat.v4.new_markdown_cell(f"![x](data:image/png;base64,{payload})"))
    assert Scanner().scan_notebook(nb).findings == []


def test_accepts_dict_json_text_and_v3() -> None:
    key = fk.aws_key()
    nb = fk.code_notebook(f"k = '{key}'")
    raw = json.loads(nbformat.writes(nb))
    for form in (nb, raw, json.dumps(raw), json.dumps(raw).encode()):
        assert [f.type for f in Scanner().scan_notebook(form).findings] == ["AWS Access Key"]
    v3 = nbformat.v3.new_notebook(
        worksheets=[
            nbformat.v3.new_worksheet(cells=[nbformat.v3.new_code_cell(input=f"k='{key}'")])
        ]
    )
    assert Scanner().scan_notebook(dict(v3)).findings
    assert as_notebook(raw) is raw
