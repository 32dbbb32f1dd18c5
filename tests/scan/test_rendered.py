"""Visible text of HTML, SVG, ANSI and JSON-escaped output, mapped back to the source."""

from __future__ import annotations

import html
import json
import secrets

import pytest

from jupyter_qsecure.scan.rendered import source_pieces, token_end, visible_text


def check_map(source: str, kind: str) -> str:
    visible, index = visible_text(source, kind)
    assert len(index) == len(visible)
    assert index == sorted(index)
    for i, ch in enumerate(visible):
        start = index[i]
        end = token_end(source, kind, start)
        piece = source[start:end]
        if end - start == 1:
            assert piece == ch
        elif kind == "json":
            assert ch in json.loads(f'"{piece}"')
        else:
            assert ch in html.unescape(piece)
    return visible


def test_html_tags_removed_and_entities_decoded() -> None:
    value = secrets.token_urlsafe(24)
    half = len(value) // 2
    source = (
        f'<div class="highlight"><pre><span class="n">{value[:half]}</span>'
        f'<span class="o">{html.escape(value[half:])}</span> a &lt; b &amp;c</pre></div>'
    )
    visible = check_map(source, "html")
    assert visible == f"{value} a < b &c"


def test_comparison_signs_are_text_and_attributes_with_gt_are_one_tag() -> None:
    assert check_map("x < y and y > z", "html") == "x < y and y > z"
    assert check_map("<a title='1 > 0'>link</a><!-- hidden -->!", "html") == "link!"
    assert check_map("&zzzz; &amp", "html") == "&zzzz; &"


def test_svg_tspan_split() -> None:
    source = '<svg><text x="0"><tspan>abc</tspan><tspan dy="1">def</tspan></text></svg>'
    visible, index = visible_text(source, "svg")
    assert visible == "abcdef"
    assert source_pieces(source, "svg", index, 1, 5) == [
        (source.index("bc"), source.index("bc") + 2),
        (source.index("de"), source.index("de") + 2),
    ]


def test_ansi_codes_removed() -> None:
    source = "\x1b[1;31mred\x1b[0m \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \x1b(Bplain"
    assert check_map(source, "ansi") == "red link plain"


def test_json_escapes_decoded() -> None:
    text = 'a/b "q" \\ é\n😀'
    source = json.dumps(text).replace("/", "\\/")
    assert "\\/" in source
    assert check_map(source, "json") == f'"{text}"'


def test_pieces_merge_contiguous_text_and_skip_markup() -> None:
    source = "<b>ab&amp;c</b>de"
    visible, index = visible_text(source, "html")
    assert visible == "ab&cde"
    assert source_pieces(source, "html", index, 1, 6) == [(4, 11), (15, 17)]


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind 'xml'"):
        visible_text("x", "xml")


def test_json_slash_escape_as_repr_shows_it() -> None:
    source = repr('{"u": "a\\/b"}')  # the repr of to_json output doubles the backslash
    assert "\\\\/" in source
    visible, index = visible_text(source, "json")
    assert visible == '\'{"u": "a/b"}\''
    assert source_pieces(source, "json", index, 8, 11) == [(8, 13)]
