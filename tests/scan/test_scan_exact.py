"""Exact-value matching: injected credentials and their encodings."""

from __future__ import annotations

import base64
import html
import json
import secrets
from urllib.parse import quote, quote_plus

import pytest
import scan_fakes as fk

from jupyter_qsecure.scan import ExactMatcher, Scanner


@pytest.fixture
def value() -> str:
    # characters that every escaping changes: quote, ampersand, slash, plus, space, <
    return fk.rand(18) + '"&/+ <é'


def _types(matcher: ExactMatcher, text: str) -> list[str]:
    return [d.type for d in matcher.find(text)]


@pytest.mark.parametrize("prefix", [b"", b"u", b"us", b"user:", b"Authorization=Basic "])
def test_base64_all_alignments(value: str, prefix: bytes) -> None:
    matcher = ExactMatcher([value])
    payload = prefix + value.encode() + b" trailing bytes"
    std = base64.b64encode(payload).decode()
    url = base64.urlsafe_b64encode(payload).decode()
    assert _types(matcher, f"header: {std}") == ["Injected Secret (base64)"]
    found = _types(matcher, f"token={url}")
    assert found and found[0] in ("Injected Secret (base64url)", "Injected Secret (base64)")


def test_alignment_offsets_cover_0_1_2(value: str) -> None:
    matcher = ExactMatcher([value])
    for k in range(3):
        text = base64.b64encode(b"x" * k + value.encode()).decode()
        assert matcher.find(text), k


@pytest.mark.parametrize(
    "encode,name",
    [
        (lambda v: v, "Injected Secret"),
        (lambda v: v.encode().hex(), "Injected Secret (hex)"),
        (lambda v: v.encode().hex().upper(), "Injected Secret (hex)"),
        (lambda v: quote(v, safe=""), "Injected Secret (url)"),
        (lambda v: quote_plus(v), "Injected Secret (url)"),
        (lambda v: json.dumps(v)[1:-1], "Injected Secret (json)"),
        (lambda v: json.dumps(v, ensure_ascii=False)[1:-1], "Injected Secret (json)"),
        (lambda v: html.escape(v), "Injected Secret (html)"),
    ],
)
def test_encodings(value: str, encode, name: str) -> None:
    matcher = ExactMatcher([value])
    detections = matcher.find(f"prefix {encode(value)} suffix")
    assert [d.type for d in detections] == [name]
    assert detections[0].fingerprint_of == value  # the finding fingerprints the value


def test_many_values_one_pass_and_no_partial_matches() -> None:
    values = [fk.rand(32) for _ in range(500)]
    matcher = ExactMatcher(values)
    text = "noise " * 1000 + values[123] + " more " + values[-1][:-1] + "!"
    found = matcher.find(text)
    assert [d.fingerprint_of for d in found] == [values[123]]
    assert "values" not in repr(matcher) or values[0] not in repr(matcher)


def test_short_values_ignored() -> None:
    assert not ExactMatcher(["abc", ""])


def test_exact_values_in_notebook_scan(value: str) -> None:
    nb = fk.code_notebook("print(creds)")
    import nbformat

    b64 = base64.b64encode(b"k:" + value.encode()).decode()
    nb.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=f"header Basic {b64}\n"),
        nbformat.v4.new_output("display_data", data={"text/html": f"<p>{html.escape(value)}</p>"}),
    ]
    result = Scanner().scan_notebook(nb, exact_values={value})
    by_output = {(f.output, f.type) for f in result.findings if f.type.startswith("Injected")}
    assert (0, "Injected Secret (base64)") in by_output
    assert (1, "Injected Secret") in by_output  # HTML is unescaped before matching
    assert value not in fk.dumps_all(result.to_json())
    scanner = Scanner(exact_values=[value])
    assert any(f.type.startswith("Injected") for f in scanner.scan_notebook(nb).findings)


@pytest.mark.parametrize("length", [300, 2000])
def test_long_values_are_found_without_recursion(length: int) -> None:
    """A value of ~248+ characters made the trie regex recurse: every save failed (500)."""
    value = fk.rand(length)
    matcher = ExactMatcher([value])
    for text, name in (
        (f"x {value} y", "Injected Secret"),
        (value.encode().hex(), "Injected Secret (hex)"),
        (base64.b64encode(b"ab" + value.encode()).decode(), "Injected Secret (base64)"),
    ):
        found = matcher.find(text)
        ok = [d.type for d in found] == [name] and found[0].fingerprint_of == value
        assert ok, name
    nb = fk.code_notebook("print(creds)")
    import nbformat

    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text=value + "\n")]
    findings = Scanner().scan_notebook(nb, exact_values={value}).findings
    assert [f.type for f in findings if f.type.startswith("Injected")] == ["Injected Secret"]


def test_fifty_values_with_long_ones_in_one_matcher() -> None:
    values = [fk.rand(300 if i % 5 == 0 else 40) for i in range(50)]
    matcher = ExactMatcher(values)
    text = " | ".join(values[i] for i in range(0, 50, 7))
    found = matcher.find(text)
    assert [d.fingerprint_of for d in found] == [values[i] for i in range(0, 50, 7)]
    assert ExactMatcher(values) is not matcher and ExactMatcher(values)._engine is matcher._engine


def test_fragments_only_when_asked() -> None:
    value = fk.rand(100)
    piece = value[30:60]
    assert ExactMatcher([value]).find(f"a {piece} b") == []
    found = ExactMatcher([value], min_fragment=12).find(f"a {piece} b")
    assert [(d.type, d.start, d.end) for d in found] == [("Injected Secret (fragment)", 2, 32)]
    assert found[0].fingerprint_of == value


def test_exact_matches_are_remembered_per_text_and_value_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An autosave after a one-cell edit searches only the changed text again, and another
    set of values is never answered from the first set's results."""
    import secrets

    first, second = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    nb = fk.code_notebook(f"a = {first!r}", f"b = {second!r}", "print('plain')")
    searched: list[str] = []
    find = ExactMatcher.find

    def counting(self: ExactMatcher, text: str) -> list:  # type: ignore[type-arg]
        searched.append(text)
        return find(self, text)

    monkeypatch.setattr(ExactMatcher, "find", counting)
    scanner = Scanner()
    found = scanner.scan_notebook(nb, exact_values=[first])
    assert [f.type for f in found.findings if f.type.startswith("Injected")] == ["Injected Secret"]
    searched.clear()
    again = scanner.scan_notebook(nb, exact_values=[first])
    assert searched == [] and again.findings == found.findings
    other = scanner.scan_notebook(nb, exact_values=[second])
    injected = [f for f in other.findings if f.type.startswith("Injected")]
    assert len(injected) == 1 and injected[0].cell == 1 and searched


def test_every_escaped_form_is_a_form_and_a_fragment_source() -> None:
    # found by mutation testing: quote=False HTML and non-ASCII JSON forms were untested
    from jupyter_qsecure.scan.exact import encoded_forms, fragment_sources

    value = 'p"w<é>' + secrets.token_urlsafe(12)
    forms = encoded_forms(value)
    assert forms[html.escape(value, quote=False)] == "html"
    assert forms[html.escape(value)] == "html"
    assert forms[json.dumps(value, ensure_ascii=False)[1:-1]] == "json"
    sources = fragment_sources(value)
    for form in (
        json.dumps(value, ensure_ascii=False)[1:-1],
        json.dumps(value)[1:-1],
        html.escape(value, quote=False),
        html.escape(value),
    ):
        assert form in sources


def test_base64_cores_reach_the_last_character_the_value_determines() -> None:
    # found by mutation testing: the core's end (padding strip, tail length) was untested
    from jupyter_qsecure.scan.exact import _base64_cores

    raw = secrets.token_bytes(23) + b"\x17"  # 24 bytes; aligned, the last char is "X"
    cores = _base64_cores(raw)
    assert cores[0] == base64.b64encode(raw).decode() and cores[0].endswith("X")
    assert [len(c) for c in cores] == [32, 31, 31]  # 8*(k+24)//6 - ceil(8k/6) at k = 0, 1, 2
    for k, core in enumerate(cores):
        for _ in range(4):  # whatever surrounds the value at this alignment
            blob = secrets.token_bytes(3 * 5 + k) + raw + secrets.token_bytes(5)
            assert core in base64.b64encode(blob).decode()
