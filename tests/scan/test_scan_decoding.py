"""Bytes to text for the scanner and the save gate; attachments and rendered SVG/HTML.

Issue 11, case 7: text that is not UTF-8 was not scanned, attachments were scanned as
their base64, and SVG text split over ``<tspan>`` elements was not found whole.
"""

from __future__ import annotations

import base64
import codecs
import gzip
import os
import secrets
from pathlib import Path

import nbformat
import pytest
import scan_fakes as fk

from jupyter_qsecure.scan import Scanner, redact_notebook
from jupyter_qsecure.scan.extract import decode_text, is_binary, rendered_text, strict_base64

TEXT = "Müller;Zürich;“€ 5”;naïve café\n"


@pytest.mark.parametrize(
    ("raw", "codec"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
        (codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"), "utf-16"),
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16"),
        (codecs.BOM_UTF32_LE + TEXT.encode("utf-32-le"), "utf-32"),
        (codecs.BOM_UTF32_BE + TEXT.encode("utf-32-be"), "utf-32"),
        (TEXT.encode("cp1252"), "cp1252"),
    ],
)
def test_decode_text_by_bom_utf8_and_cp1252(raw: bytes, codec: str) -> None:
    decoded = decode_text(raw)
    assert decoded is not None
    assert decoded.text == TEXT and decoded.codec == codec
    # a redacted copy is written back in the same encoding (UTF-16/32: native byte order)
    assert decode_text(decoded.text.encode(decoded.codec)) == decoded


def test_bytes_cp1252_leaves_undefined_fall_back_to_latin1() -> None:
    raw = "Grüße ".encode("latin-1") + b"\x81\x8d\x8f\x90\x9d" + b" key\n"
    decoded = decode_text(raw)
    assert decoded is not None and decoded.codec == "latin-1"
    assert decoded.text.endswith(" key\n") and decoded.text.encode("latin-1") == raw


@pytest.mark.parametrize(
    "raw",
    [
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)),
        gzip.compress(os.urandom(4096)),
        os.urandom(4096).replace(b"\0", b"\1"),  # no NUL: judged by its control bytes
        b"\0\1\2" + b"text after a NUL",
    ],
)
def test_binary_is_not_text(raw: bytes) -> None:
    assert is_binary(raw) and decode_text(raw) is None


def test_text_with_a_few_control_characters_is_text() -> None:
    log = ("2024-01-01 \x1b[32mOK\x1b[0m step\f done\x08\n" * 200).encode("cp1252")
    assert not is_binary(log) and decode_text(log) is not None


def test_a_wrong_bom_is_judged_by_the_bytes() -> None:
    raw = codecs.BOM_UTF16_LE + b"key=abc"  # an odd number of bytes: not UTF-16
    decoded = decode_text(raw)
    assert decoded is not None and decoded.codec == "cp1252" and decoded.text.endswith("key=abc")


def test_strict_base64() -> None:
    data = os.urandom(100)
    encoded = base64.encodebytes(data).decode()  # with line breaks
    assert strict_base64(encoded) == data
    assert strict_base64("not base64!") is None
    assert strict_base64("abc") is None  # not a multiple of four


# ---- files through the scanner -------------------------------------------------------------
@pytest.mark.parametrize("codec", ["cp1252", "utf-16", "utf-32", "utf-8-sig"])
def test_scan_file_reads_non_utf8_text(tmp_path: Path, codec: str) -> None:
    key = fk.aws_key()
    path = tmp_path / "export.csv"
    path.write_bytes(f"nom;clé\nMüller;{key}\n".encode(codec))
    result = Scanner().scan_file(path)
    assert result is not None and [f.type for f in result.findings] == ["AWS Access Key"]
    assert result.findings[0].line == 2


def test_exact_value_in_a_utf16_file(tmp_path: Path) -> None:
    value = secrets.token_urlsafe(24)
    path = tmp_path / "run.log"
    path.write_bytes(f"connecting with {value}\n".encode("utf-16"))
    result = Scanner().scan_file(path, exact_values=[value])
    assert result is not None and [f.type for f in result.findings] == ["Injected Secret"]


# ---- attachments ---------------------------------------------------------------------------
def attachment_notebook(name: str, mime: str, data: bytes | str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_markdown_cell(f"![{name}](attachment:{name})")
    payload = data if isinstance(data, str) else base64.b64encode(data).decode()
    cell.attachments = {name: {mime: payload}}
    nb.cells.append(cell)
    return nb


@pytest.mark.parametrize(
    ("mime", "encode"),
    [
        ("text/plain", lambda t: t.encode()),
        ("text/csv", lambda t: t.encode("cp1252")),
        ("text/plain", lambda t: t.encode("utf-16")),
        ("application/octet-stream", lambda t: t.encode()),
        ("", lambda t: t.encode()),
    ],
)
def test_base64_attachments_are_decoded(mime: str, encode: object) -> None:
    token = fk.github_token()
    data = encode(f"clé;{token}\n")  # type: ignore[operator]
    result = Scanner().scan_notebook(attachment_notebook("notes", mime, data))
    assert [(f.type, f.where, f.mime) for f in result.findings] == [
        ("GitHub Token", "attachments", mime)
    ]


def test_svg_attachment_with_a_split_value() -> None:
    value = secrets.token_urlsafe(24)
    svg = f"<svg><text><tspan>{value[:10]}</tspan><tspan dy='1em'>{value[10:]}</tspan></text></svg>"
    result = Scanner().scan_notebook(
        attachment_notebook("chart.svg", "image/svg+xml", svg.encode()), exact_values=[value]
    )
    assert [f.type for f in result.findings] == ["Injected Secret"]


def test_binary_attachments_are_skipped_and_plain_text_ones_still_read() -> None:
    png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + fk.aws_key().encode() + bytes(range(256)) * 4
    assert Scanner().scan_notebook(attachment_notebook("p.png", "image/png", png)).clean
    token = fk.github_token()
    stored_as_text = attachment_notebook("n.txt", "text/plain", f"my token {token}")
    assert [f.type for f in Scanner().scan_notebook(stored_as_text).findings] == ["GitHub Token"]


def test_redaction_removes_a_decoded_attachment() -> None:
    token = fk.github_token()
    nb = attachment_notebook("notes", "text/plain", f"token {token}\n".encode())
    clean = redact_notebook(nb)
    assert Scanner().scan_notebook(clean).clean
    assert base64.b64encode(token.encode()).decode()[:12] not in str(clean)


# ---- rendered SVG and HTML -----------------------------------------------------------------
def test_rendered_text_joins_elements_and_keeps_links() -> None:
    markup = (
        '<p>key <span class="s">AB</span><span class="s">CD</span>&amp;EF</p>'
        '<a href="https://example.org/x?a=1">link</a>'
    )
    assert rendered_text(markup, "html") == "key ABCD&EFlink\nhttps://example.org/x?a=1"


def test_svg_output_with_a_value_split_over_tspans() -> None:
    value = secrets.token_urlsafe(30)
    key = fk.aws_key()
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg"><text>'
        f"<tspan>{value[:7]}</tspan><tspan x='5'>{value[7:]}</tspan></text>"
        f"<text><tspan>{key[:4]}</tspan><tspan>{key[4:]}</tspan></text></svg>"
    )
    nb = fk.code_notebook("plot()")
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data={"image/svg+xml": svg})]
    result = Scanner().scan_notebook(nb, exact_values=[value])
    assert sorted(f.type for f in result.findings) == ["AWS Access Key", "Injected Secret"]


def test_highlighted_html_with_a_split_value() -> None:
    value = secrets.token_urlsafe(30)
    html = f'<pre><span class="s1">"{value[:12]}</span><span class="se">{value[12:]}"</span></pre>'
    nb = fk.code_notebook("Code(src)")
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data={"text/html": html})]
    assert [f.type for f in Scanner().scan_notebook(nb, exact_values=[value]).findings] == [
        "Injected Secret"
    ]


def test_svg_file_split_value_found_and_a_plain_one_reported_once(tmp_path: Path) -> None:
    value, other = secrets.token_urlsafe(30), secrets.token_urlsafe(30)
    svg = (
        f"<svg>\n<text><tspan>{value[:9]}</tspan><tspan>{value[9:]}</tspan></text>\n"
        f"<text>{other}</text>\n</svg>\n"
    )
    path = tmp_path / "figure.svg"
    path.write_text(svg)
    result = Scanner().scan_file(path, exact_values=[value, other])
    assert result is not None
    assert len(result.findings) == 2
    assert {f.type for f in result.findings} == {"Injected Secret"}
