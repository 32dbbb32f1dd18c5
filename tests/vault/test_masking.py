"""Output masking engine: every encoding, overlaps, stream carry-over, every message type."""

from __future__ import annotations

import base64
import copy
import html
import json
import logging
import random
import secrets
import string
from urllib.parse import quote, quote_plus

import pytest

from jupyter_qsecure.vault.masking import (
    Masker,
    StreamMasker,
    forms_for,
    mask_message,
    placeholder,
)

P = placeholder


def token() -> str:
    return secrets.token_urlsafe(24)


def assert_clean(text: str, *values: str) -> None:
    for value in values:
        for form in forms_for(value):
            assert form not in text, "a value or one of its forms survived masking"


# --- every encoding -------------------------------------------------------------------


def test_raw_value_is_replaced_by_a_placeholder_naming_the_secret() -> None:
    value = token()
    masker = Masker({"api_key": value})
    out = masker.mask(f"key={value}; again {value}.")
    assert out == f"key={P('api_key')}; again {P('api_key')}."
    assert masker.contains_any(f"x{value}x")
    assert not masker.contains_any("nothing to see here")
    assert masker.mask("nothing") == "nothing"


@pytest.mark.parametrize("k", [0, 1, 2])
def test_base64_at_every_alignment_inside_a_larger_blob(k: int) -> None:
    value = token()
    masker = Masker({"tok": value})
    rng = random.Random(k)
    blob = base64.b64encode(
        rng.randbytes(30 + k) + value.encode() + rng.randbytes(40)
    ).decode()  # offset 30+k: alignment k mod 3
    out = masker.mask(f"<img src='data:image/png;base64,{blob}'>")
    assert P("tok") in out
    assert_clean(out, value)


def test_base64url_form() -> None:
    rng = random.Random(7)
    for _ in range(200):  # find a value whose base64 core has + or /
        value = token() + "ÿéÿéÿé€" + token()
        blob = base64.b64encode(rng.randbytes(5) + value.encode() + rng.randbytes(5)).decode()
        if "+" in blob[8:-8] or "/" in blob[8:-8]:
            break
    urlsafe = blob.translate(str.maketrans("+/", "-_"))
    assert urlsafe != blob
    masker = Masker({"tok": value})
    for text in (urlsafe, urlsafe.rstrip("="), blob):
        out = masker.mask(text)
        assert P("tok") in out
        assert_clean(out, value)


def test_hex_upper_and_lower() -> None:
    value = token()
    masker = Masker({"tok": value})
    for form in (value.encode().hex(), value.encode().hex().upper()):
        assert masker.mask(f"0x{form}00") == f"0x{P('tok')}00"


def test_url_encoded_json_escaped_html_escaped_and_repr() -> None:
    value = "pa\"ss\\wörd/ +&<tag>'" + token()
    masker = Masker({"pw": value})
    forms = {
        "url": quote(value, safe=""),
        "url-path": quote(value),
        "url-plus": quote_plus(value),
        "json": json.dumps(value)[1:-1],
        "json-unicode": json.dumps(value, ensure_ascii=False)[1:-1],
        "html": html.escape(value),
        "html-noquote": html.escape(value, quote=False),
        "repr": repr(value)[1:-1],
    }
    assert len(set(forms.values())) >= 7  # they really differ
    for name, form in forms.items():
        out = masker.mask(f"[{form}]")
        assert out == f"[{P('pw')}]", name
    # inside real JSON and real HTML documents
    assert P("pw") in masker.mask(json.dumps({"password": value}))
    assert_clean(masker.mask(json.dumps({"password": value})), value)
    assert_clean(masker.mask(f"<td>{html.escape(value)}</td>"), value)


def test_non_ascii_text_and_lone_surrogates() -> None:
    value = "ключ-" + token()
    masker = Masker({"k": value})
    text = f"é€😀 {value} ü\udcff {value.encode().hex()} end"
    assert masker.mask(text) == f"é€😀 {P('k')} ü\udcff {P('k')} end"


# --- values: short, shared, overlapping -----------------------------------------------


def test_short_values_are_ignored_with_a_warning_that_names_not_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        masker = Masker({"pin": "123", "empty": "", "ok": "abcd"})
    assert masker.ignored == ("empty", "pin")
    assert masker.names == ("ok",)
    assert "pin" in caplog.text and "123" not in caplog.text
    assert masker.mask("123 abcd") == f"123 {P('ok')}"
    assert not Masker({})
    assert Masker({}).mask("abcd") == "abcd"


def test_masker_is_immutable_and_repr_shows_no_values() -> None:
    value = token()
    masker = Masker({"tok": value})
    with pytest.raises(AttributeError):
        masker.names = ("x",)  # type: ignore[misc]
    assert value not in repr(masker)


def test_overlapping_and_adjacent_values_leftmost_longest() -> None:
    x, y, z = token(), token(), token()
    a, b = x + y, y + z  # a's end is b's start
    whole_only = Masker({"a": a, "b": b}, min_fragment=0)
    assert whole_only.mask(x + y + z) == P("a") + z  # a starts first
    masker = Masker({"a": a, "b": b})
    assert masker.mask(x + y + z) == P("a") + P("b")  # z, a run of b, is a fragment of b
    assert masker.mask(y + z + "!") == P("b") + "!"
    assert masker.mask(a + b) == P("a") + P("b")  # adjacent
    assert_clean(masker.mask(x + y + z), a, b)
    # one value inside another: the longest wins
    inner = token()
    masker = Masker({"outer": "pre" + inner + "post", "inner": inner})
    assert masker.mask("<pre" + inner + "post>") == f"<{P('outer')}>"
    assert masker.mask("<" + inner + ">") == f"<{P('inner')}>"


def test_same_value_under_two_names_shows_the_first_name() -> None:
    value = token()
    assert Masker({"zeta": value, "alpha": value}).mask(value) == P("alpha")


def test_a_name_that_spells_out_a_value_is_not_used_as_placeholder() -> None:
    value = token()
    out = Masker({value: value}).mask(value)
    assert value not in out and out.startswith("«secret:")


# --- stream carry-over ----------------------------------------------------------------


def feed_all(stream: StreamMasker, key: object, pieces: list[str]) -> list[str]:
    return [stream.feed(key, piece) for piece in pieces] + [stream.flush(key)]


def test_value_split_across_two_stream_messages() -> None:
    value = token()
    stream = StreamMasker(Masker({"tok": value}))
    first = stream.feed("k", "token: " + value[:10])
    assert first == "token: "
    assert stream.pending_keys() == ["k"]
    second = stream.feed("k", value[10:] + " done\n")
    assert second == P("tok") + " done\n"
    assert stream.pending_keys() == []
    assert stream.flush("k") == ""


def test_value_split_across_three_messages_and_inside_an_encoded_form() -> None:
    value = token()
    masker = Masker({"tok": value})
    hexed = value.encode().hex()
    b64 = base64.b64encode(b"\x01" + value.encode() + b"\x02").decode()
    for form in (value, hexed, hexed.upper(), b64, quote(value)):
        text = f"start {form} end\n"
        third = len(form) // 3
        cut1, cut2 = 6 + third, 6 + 2 * third
        stream = StreamMasker(masker)
        out = feed_all(stream, ("p", "stdout"), [text[:cut1], text[cut1:cut2], text[cut2:]])
        assert "".join(out) == masker.mask(text)
        assert P("tok") in "".join(out)
        for piece in out:
            assert value[:8] not in piece and hexed[:8] not in piece


def test_no_hold_back_when_the_tail_cannot_start_a_form() -> None:
    values = {f"s{i}": token() for i in range(5)}
    masker = Masker(values)
    stream = StreamMasker(masker)
    for text in ("line one\n", "progress 42%\r", "a sentence.", "tab\t", ""):
        assert stream.feed("k", text) == text
        assert stream.pending_keys() == []
    # a tail that is a prefix of some form is held, and only that much
    value = values["s3"]
    assert stream.feed("k", "x " + value[:5]) == "x "
    assert len(stream.flush("k")) == 5
    # the hold-back never exceeds longest_form - 1
    tail = value.encode().hex()[:-1]
    assert stream.feed("j", "hex " + tail) == "hex "
    assert stream.flush("j") == tail and len(tail) <= masker.longest_form - 1


def test_streams_are_independent_per_key() -> None:
    value = token()
    stream = StreamMasker(Masker({"tok": value}))
    stream.feed(("m1", "stdout"), value[:9])
    assert stream.feed(("m1", "stderr"), "err\n") == "err\n"
    assert stream.feed(("m2", "stdout"), value[-9:] + "\n") == value[-9:] + "\n"  # < 12: shown
    assert stream.feed(("m1", "stdout"), value[9:] + "\n") == P("tok") + "\n"


@pytest.mark.parametrize("count", [8, 50])
def test_stream_output_equals_masking_the_whole_stream_on_random_splits(count: int) -> None:
    rng = random.Random(1234 + count)
    values = {f"v{i}": token() for i in range(count)} | {"pw": 'q"w<e>r&t/y ' + token()}
    masker = Masker(values)
    for _ in range(150):
        text = random_text(rng, list(values.values()), size=rng.randint(50, 600), injections=4)
        cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(1, 12))))
        pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        stream = StreamMasker(masker)
        out = []
        for piece in pieces:
            out.append(stream.feed("k", piece))
            held = "".join(stream._held.values())
            assert len(held) < 2 * masker.longest_form
        out.append(stream.flush("k"))
        assert "".join(out) == masker.mask(text)
        for piece in out:
            assert_clean(piece, *values.values())


# --- 50 values against a naive reference ----------------------------------------------


def fifty_values(rng: random.Random) -> dict[str, str]:
    makers = [
        lambda: secrets.token_urlsafe(rng.randint(12, 40)),
        lambda: secrets.token_hex(rng.randint(8, 24)),
        lambda: "".join(rng.choice(string.printable[:94]) for _ in range(rng.randint(10, 30))),
        lambda: "pässwörd-" + secrets.token_urlsafe(12),
        lambda: "AKIA" + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16)),
    ]
    return {f"secret_{i:02d}": makers[i % len(makers)]() for i in range(50)}


def random_text(rng: random.Random, values: list[str], size: int, injections: int) -> str:
    words = ["loss", "epoch", "0.125", "INFO", "shape=(3, 4)", "déjà", "→", "\n", " ", "{", '"']
    parts = []
    for _ in range(injections):
        parts.append("".join(rng.choice(words) for _ in range(rng.randint(0, size // 8 + 1))))
        value = rng.choice(values)
        kind = rng.randrange(4)
        if kind == 0:
            parts.append(rng.choice(forms_for(value)))
        elif kind == 1:  # inside a larger base64 payload
            raw = (
                rng.randbytes(rng.randint(0, 9)) + value.encode() + rng.randbytes(rng.randint(0, 9))
            )
            parts.append(base64.b64encode(raw).decode())
        elif kind == 2:
            parts.append(json.dumps({"v": value}))
        else:
            parts.append(value)
    parts.append("".join(rng.choice(words) for _ in range(size // 8)))
    return "".join(parts)


def naive_mask(text: str, values: dict[str, str]) -> str:
    owner: dict[str, str] = {}
    for name in sorted(values):
        for form in forms_for(values[name]):
            owner.setdefault(form, name)
    for form in sorted(owner, key=len, reverse=True):
        text = text.replace(form, P(owner[form]))
    return text


def test_fifty_values_match_a_naive_reference_on_random_inputs() -> None:
    rng = random.Random(20240501)
    values = fifty_values(rng)
    masker = Masker(values, min_fragment=0)  # whole forms only: what the reference knows
    all_values = list(values.values())
    for round_ in range(12):
        text = random_text(rng, all_values, size=2000, injections=20 if round_ else 300)
        out = masker.mask(text)
        assert out == naive_mask(text, values)
        assert_clean(out, *all_values)
        assert masker.contains_any(text)
        assert not masker.contains_any(out)


# --- every message type ---------------------------------------------------------------


def jmsg(msg_type: str, content: dict, channel: str = "iopub", **extra: object) -> dict:
    msg = {
        "header": {
            "msg_id": secrets.token_hex(16),
            "msg_type": msg_type,
            "session": "s1",
            "username": "u",
            "date": "2025-01-01T00:00:00.000000Z",
            "version": "5.4",
        },
        "msg_id": "x",
        "msg_type": msg_type,
        "parent_header": {"msg_id": "parent-1", "msg_type": "execute_request"},
        "metadata": {},
        "content": content,
        "buffers": [],
        "channel": channel,
    }
    msg.update(extra)
    return msg


def all_messages(value: str) -> list[dict]:
    b64_png = base64.b64encode(b"\x89PNG\r\n" + value.encode() + b"\0" * 7).decode()
    bundle = {
        "text/plain": [f"'{value}'"][0],
        "text/html": f"<b>{html.escape(value)}</b>",
        "image/png": b64_png,
        "application/json": {value: [1, {"nested": value}], "ok": True},
        "text/markdown": f"`{quote(value)}`",
    }
    traceback = [
        "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
        f"\x1b[0;31mValueError\x1b[0m: bad token {value}",
    ]
    return [
        jmsg("stream", {"name": "stdout", "text": f"token={value}\n"}),
        jmsg("display_data", {"data": bundle, "metadata": {"image/png": {"alt": value}}}),
        jmsg(
            "update_display_data",
            {"data": bundle, "metadata": {}, "transient": {"display_id": "d1"}},
        ),
        jmsg("execute_result", {"execution_count": 3, "data": bundle, "metadata": {}}),
        jmsg("error", {"ename": "ValueError", "evalue": f"bad {value}", "traceback": traceback}),
        jmsg(
            "execute_reply",
            {
                "status": "error",
                "execution_count": 3,
                "ename": "ValueError",
                "evalue": value,
                "traceback": traceback,
                "user_expressions": {"x": {"status": "ok", "data": bundle, "metadata": {}}},
                "payload": [{"source": "page", "data": {"text/plain": value}, "start": 0}],
            },
            channel="shell",
            metadata={"started": "2025", "dependencies_met": True, "note": value},
        ),
        jmsg(
            "inspect_reply",
            {"status": "ok", "found": True, "data": bundle, "metadata": {}},
            channel="shell",
        ),
        jmsg(
            "complete_reply",
            {
                "status": "ok",
                "matches": ["token", value, f"'{value}'"],
                "cursor_start": 0,
                "cursor_end": 3,
                "metadata": {"_jupyter_types_experimental": [{"text": value, "type": "str"}]},
            },
            channel="shell",
        ),
        jmsg("input_request", {"prompt": f"Password for {value}: ", "password": False}, "stdin"),
        jmsg(
            "comm_open",
            {"comm_id": "c1", "target_name": "jupyter.widget", "data": {"state": {"value": value}}},
        ),
        jmsg(
            "comm_msg",
            {"comm_id": "c1", "data": {"method": "update", "state": {"description": value}}},
            buffers=[memoryview(value.encode())],
        ),
    ]


def test_every_message_type_is_masked_and_headers_and_buffers_are_kept() -> None:
    value = 'tok"<&>' + token()
    masker = Masker({"api": value})
    for msg in all_messages(value):
        original = copy.deepcopy({k: v for k, v in msg.items() if k != "buffers"})
        out = mask_message(msg, masker, StreamMasker(masker))
        name = msg["msg_type"]
        dumped = json.dumps([out["content"], out["metadata"]], ensure_ascii=False)
        assert P("api") in dumped, name
        assert_clean(dumped, value)
        assert_clean(json.dumps([out["content"], out["metadata"]]), value)
        assert out["header"] == msg["header"] and out["parent_header"] == msg["parent_header"]
        assert out["buffers"] is msg["buffers"]  # binary buffers pass through untouched
        assert {k: v for k, v in msg.items() if k != "buffers"} == original  # not mutated
    execute_reply = mask_message(all_messages(value)[5], masker)
    assert execute_reply["metadata"]["dependencies_met"] is True
    assert execute_reply["content"]["execution_count"] == 3


def test_application_json_keys_and_base64_images_are_masked() -> None:
    value = token()
    masker = Masker({"api": value})
    out = mask_message(all_messages(value)[1], masker)
    data = out["content"]["data"]
    assert list(data["application/json"]) == [P("api"), "ok"]
    assert data["application/json"][P("api")] == [1, {"nested": P("api")}]
    assert P("api") in data["image/png"]


def test_stream_messages_use_the_carry_over_keyed_by_parent_and_stream_name() -> None:
    value = token()
    masker = Masker({"api": value})
    stream = StreamMasker(masker)
    first = jmsg("stream", {"name": "stdout", "text": "key: " + value[:7]})
    second = jmsg("stream", {"name": "stdout", "text": value[7:] + "\n"})
    out1 = mask_message(first, masker, stream)
    assert out1["content"] == {"name": "stdout", "text": "key: "}
    assert stream.pending_keys() == [("parent-1", "stdout")]
    out2 = mask_message(second, masker, stream)
    assert out2["content"]["text"] == P("api") + "\n"
    # without a StreamMasker each message is masked on its own
    assert mask_message(first, masker)["content"]["text"] == "key: " + value[:7]


def test_stderr_stream_messages_are_masked_as_stdout_is() -> None:
    value = token()
    masker = Masker({"api": value})
    stream = StreamMasker(masker)
    whole = jmsg("stream", {"name": "stderr", "text": "Warning: bad key " + value + "\n"})
    assert mask_message(whole, masker)["content"]["text"] == f"Warning: bad key {P('api')}\n"
    assert mask_message(whole, masker, stream)["content"] == {
        "name": "stderr",
        "text": f"Warning: bad key {P('api')}\n",
    }
    first = jmsg("stream", {"name": "stderr", "text": "key: " + value[:7]})
    second = jmsg("stream", {"name": "stderr", "text": value[7:] + "\n"})
    assert mask_message(first, masker, stream)["content"]["text"] == "key: "
    assert mask_message(second, masker, stream)["content"]["text"] == P("api") + "\n"


def test_mask_value_masks_every_string_of_a_model_keys_included() -> None:
    from jupyter_qsecure.vault.masking import _mask_value

    value = token()
    masker = Masker({"api": value})
    model = {value: [value, (1, "x " + value), None, 2.5, True], 7: {"n": value}, "k": "plain"}
    out = _mask_value(model, masker.mask)
    assert out == {
        P("api"): [P("api"), (1, "x " + P("api")), None, 2.5, True],
        7: {"n": P("api")},
        "k": "plain",
    }
    assert isinstance(out[P("api")][1], tuple)


def test_a_masker_without_values_returns_an_equal_copy() -> None:
    msg = all_messages(token())[0]
    out = mask_message(msg, Masker({}))
    assert out == msg and out is not msg


def test_held_back_tail_is_exactly_the_longest_suffix_that_can_start_a_form() -> None:
    rng = random.Random(99)
    values = fifty_values(rng)
    masker = Masker(values)
    forms = {f for v in values.values() for f in forms_for(v)}
    prefixes = {f[:k] for f in forms for k in range(1, len(f))}
    for _ in range(300):
        value = rng.choice(list(values.values()))
        form = rng.choice(forms_for(value))
        text = random_text(rng, [value], size=40, injections=1) + form[: rng.randint(0, len(form))]
        low = max(0, len(text) - max(map(len, forms)) + 1)
        brute = [p for p in range(low, len(text)) if text[p:] in prefixes]
        assert masker._engine._prefix_starts(text) == brute


# --- found by mutation testing (docs/mutation-testing.md) ------------------------------


def test_contains_any_sees_a_value_cut_by_an_html_entity_alone() -> None:
    value = secrets.token_hex(8)  # 16 characters: each piece is shorter than a fragment
    masker = Masker({"api": value})
    cut = value[:8] + f"&#{ord(value[8])};" + value[9:]
    assert "<" not in cut and masker.contains_any(f"shown: {cut}")
    assert not masker.contains_any("shown: &amp; nothing else")


def test_html_output_with_entities_and_no_tags_is_masked_on_its_visible_text() -> None:
    # Jinja and markupsafe escape "'" as &#39; (html.escape, whose form is matched whole,
    # as &#x27;): no tag in the text, only the entity, and each piece is below a fragment.
    value = secrets.token_hex(4) + "'" + secrets.token_hex(4) + "ab"
    masker = Masker({"api": value})
    shown = "key: " + value.replace("'", "&#39;")
    assert "<" not in shown and masker.mask(shown) == shown
    assert masker.mask_output(shown, "text/html") == "key: «secret:api»"
    assert masker.mask_output("no tags, no entities", "text/html") == "no tags, no entities"


def test_a_value_cut_by_svg_markup_gets_one_escaped_placeholder() -> None:
    value = token()
    masker = Masker({"a<b": value})
    half = len(value) // 2
    svg = f"<svg><text><tspan>{value[:half]}</tspan><tspan>{value[half:]}</tspan></text></svg>"
    out = masker.mask_rendered(svg, "image/svg+xml")
    assert out.count("«secret:a&lt;b»") == 1 and value[:half] not in out
    html_out = masker.mask_rendered(f"<b>{value[:half]}</b><i>{value[half:]}</i>", "text/html")
    assert html_out == "<b>«secret:a&lt;b»</b><i></i>"


def test_stream_carry_over_reads_the_type_from_the_header() -> None:
    value = token()
    masker = Masker({"api": value})
    stream = StreamMasker(masker)
    msg = {
        "header": {"msg_type": "stream"},  # no top-level msg_type, as on the wire
        "parent_header": {"msg_id": "p"},
        "content": {"name": "stdout", "text": "key: " + value[:7]},
    }
    assert mask_message(msg, masker, stream)["content"]["text"] == "key: "
    assert stream.pending_keys() == [("p", "stdout")]


def test_stream_carry_over_reads_the_top_level_type_of_a_message_without_header() -> None:
    value = token()
    masker = Masker({"api": value})
    stream = StreamMasker(masker)
    msg = {
        "msg_type": "stream",  # a message built without a header
        "parent_header": {"msg_id": "p"},
        "content": {"name": "stdout", "text": "key: " + value[:7]},
    }
    assert mask_message(msg, masker, stream)["content"]["text"] == "key: "
    assert stream.pending_keys() == [("p", "stdout")]


def test_adjacent_values_in_html_keep_a_placeholder_each() -> None:
    a, b = secrets.token_hex(10), token()
    masker = Masker({"a": a, "b": b})
    for shown, masked in [
        (f"<i>x</i>{a}{b}<b>y</b>", f"<i>x</i>{P('a')}{P('b')}<b>y</b>"),
        (f"<i>{a[:10]}</i>{a[10:]}{b}", f"<i>{P('a')}</i>{P('b')}"),
    ]:
        assert masker.mask_rendered(shown, "text/html") == masked


# --- from mutation testing: the decoded passes of contains_any, merged edits, lists -----


def _every_third(value: str, wrap: str) -> str:
    """``value`` with every third character JSON-escaped ("json") or in <i> tags ("html")."""
    if wrap == "json":
        return "".join(f"\\u{ord(c):04x}" if i % 3 == 0 else c for i, c in enumerate(value))
    return "".join(f"<i>{c}</i>" if i % 3 == 0 else c for i, c in enumerate(value))


def test_contains_any_sees_values_only_visible_after_decoding() -> None:
    value = token()
    masker = Masker({"tok": value})
    escaped, tagged = _every_third(value, "json"), _every_third(value, "html")
    assert masker.mask(escaped) == escaped and masker.mask(tagged) == tagged  # raw: no run
    assert masker.contains_any(escaped)  # found once the JSON escapes are decoded
    assert masker.contains_any(tagged)  # found once the markup is dropped
    assert not masker.contains_any(f"<p>{token()}</p>")


def test_one_entity_shared_by_two_values_is_one_edit() -> None:
    """&fjlig; decodes to "fj": the end of one value and the start of the next."""
    a, b = token() + "f", "j" + token()
    masker = Masker({"a": a, "b": b})
    out = masker.mask_output(f"<p>{a[:-1]}&fjlig;{b[1:]}</p>", "text/html")
    assert out == f"<p>{P('a')}</p>"


def test_a_list_of_html_strings_keeps_its_mime_type() -> None:
    value = token()
    tagged = _every_third(value, "html")
    msg = {
        "header": {"msg_type": "display_data"},
        "content": {"data": {"text/html": [tagged], "text/plain": [tagged]}, "metadata": {}},
        "metadata": {},
    }
    data = mask_message(msg, Masker({"tok": value}))["content"]["data"]
    assert data["text/html"][0].startswith(f"<i>{P('tok')}</i>")
    assert value[1:3] not in data["text/html"][0]
    assert data["text/plain"] == [tagged]  # plain text is not rendered: markup is literal


# --- fast paths (speed) must not drop a value --------------------------------------------


def test_prefix_starts_matches_brute_force_on_short_and_non_ascii_tails() -> None:
    rng = random.Random(11)
    values = {"a": "pässwörd-" + token(), "b": token(), "c": "€€€" + token()}
    values["d"] = values["b"][:20] + token()  # two forms sharing a prefix
    masker = Masker(values)
    forms = {f for v in values.values() for f in forms_for(v)}
    prefixes = {f[:k] for f in forms for k in range(1, len(f))}
    for _ in range(2000):
        form = rng.choice(sorted(forms))
        head = "".join(rng.choice("xé€ \n" + form[:3]) for _ in range(rng.randint(0, 4)))
        text = (head + form[: rng.randint(0, len(form))])[-rng.randint(0, 8) :]
        if rng.random() < 0.5:
            text = head + form[: rng.randint(0, len(form))]
        brute = [p for p in range(len(text)) if text[p:] in prefixes]
        assert masker._engine._prefix_starts(text) == brute


def test_common_stream_shape_still_masks_its_name_and_metadata() -> None:
    value = token()
    masker = Masker({"api": value})
    msg = jmsg("stream", {"name": value, "text": "plain output\n"}, metadata={"note": value})
    out = mask_message(msg, masker, StreamMasker(masker))
    assert out["content"] == {"name": P("api"), "text": "plain output\n"}
    assert out["metadata"] == {"note": P("api")}
    assert msg["content"]["name"] == value  # the message itself is not changed


def test_common_stream_shape_adds_no_metadata_to_a_message_without_any() -> None:
    value = token()
    masker = Masker({"api": value})
    for text in ("plain output\n", f"key {value}\n"):
        msg = jmsg("stream", {"name": "stdout", "text": text})
        del msg["metadata"]
        out = mask_message(msg, masker, StreamMasker(masker))
        assert "metadata" not in out and out == mask_message(msg, masker)  # the general path
        assert value not in out["content"]["text"]


def assert_common_shape_as_general(
    masker: Masker,
    fast: StreamMasker,
    general: StreamMasker,
    name: str,
    piece: str,
    metadata: dict[str, str] | None,
) -> None:
    """One stream message through the common-shape path (``fast``) gives what the general
    path (``general``, taken because of an extra content field holding nothing to mask)
    gives."""
    common = jmsg("stream", {"name": name, "text": piece}, metadata=metadata)
    other = jmsg("stream", {"name": name, "text": piece, "x": 1}, metadata=metadata)
    out = mask_message(common, masker, fast)
    ref = mask_message(other, masker, general)
    assert out["content"] == {k: v for k, v in ref["content"].items() if k != "x"}
    assert out["metadata"] == ref["metadata"]


def test_common_stream_shape_gives_what_the_general_path_gives() -> None:
    rng = random.Random(5)
    values = fifty_values(rng)
    masker = Masker(values)
    fast, general = StreamMasker(masker), StreamMasker(masker)
    for i in range(200):
        text = random_text(rng, list(values.values()), size=60, injections=rng.randint(0, 2))
        cut = rng.randint(0, len(text))
        name = rng.choice(["stdout", "stderr", rng.choice(list(values.values()))])
        metadata = rng.choice([{}, {"k": rng.choice(list(values.values()))}, None])
        for piece in (text[:cut], text[cut:]):
            assert_common_shape_as_general(masker, fast, general, name, piece, metadata)
        if i % 7 == 0:
            key = ("parent-1", name)
            assert fast.flush(key) == general.flush(key)


def test_mask_output_masks_a_text_exactly_as_long_as_the_shortest_value() -> None:
    value = secrets.token_hex(4)  # 8 characters: its hex and base64 forms are longer
    masker = Masker({"pin": value})
    assert masker.mask_output(value) == P("pin")
    coloured = masker.mask_output("\x1b[1m" + value[:4] + "\x1b[0m" + value[4:])
    assert coloured == "\x1b[1m" + P("pin") + "\x1b[0m"
    assert masker.mask_output(value[:-1]) == value[:-1]


def _stream_piece(rng: random.Random, values: list[str]) -> str:
    """Stream text as kernels write it: plain, non-ASCII, a value (whole, in a form, a
    fragment, cut by ANSI codes or with JSON's ``\\/``), often cut mid-value at the end."""
    text = random_text(rng, values, size=rng.choice([8, 60, 400]), injections=rng.randint(0, 2))
    value = rng.choice(values)
    kind = rng.randrange(8)
    if kind == 0:  # coloured: a value cut by ANSI codes
        text += "\x1b[31m" + value[:10] + "\x1b[0m" + value[10:] + "\n"
    elif kind == 1:  # pandas to_json: "/" escaped (a value with "/" in it: no run left)
        slashed = [v for v in values if v.count("/") > 2] or [value]
        text += json.dumps(rng.choice(slashed) + "/x").replace("/", "\\/")
    elif kind == 2:  # a fragment, as %whos shows it
        start = rng.randrange(max(1, len(value) - 12))
        text += value[start : start + rng.randint(12, 40)]
    elif kind == 3:  # progress bars and other non-ASCII
        text += "█" * rng.randint(1, 20) + "▏ 42% 😀\n"
    elif kind == 4:  # a backslash that is no "\/"
        text += "C:\\Users\\x\\n"
    if rng.random() < 0.5:  # kernels flush mid-line: the text ends anywhere
        text = text[: rng.randint(0, len(text))]
    return text


def test_passes_is_true_only_when_split_of_the_rendered_text_shows_it_as_it_is() -> None:
    rng = random.Random(21)
    values = fifty_values(rng)
    values["long"] = secrets.token_urlsafe(225)  # 300 characters: fragments
    values["quoted"] = 'q"w/e<r>t&y ' + secrets.token_urlsafe(16)  # JSON/HTML-escaped forms
    values["slashed"] = "/".join(secrets.token_hex(3) for _ in range(6))  # no anchor w/o "/"
    masker = Masker(values)
    assert masker._engine.wait_screened(60.0)
    unscreened = Masker(values)
    assert unscreened._engine.wait_screened(60.0)  # not attached after the line below
    unscreened._engine._screen = None  # the automaton alone (no Hyperscan): same answers
    seen = set()
    for _ in range(3000):
        text = _stream_piece(rng, list(values.values()))
        passes = masker.passes(text)
        assert unscreened.passes(text) == passes
        if passes:
            assert masker.mask_rendered(text) == text
            assert masker.split(text) == (text, "")
            assert masker.mask_output(text) == text
        seen.add(passes)
    assert seen == {True, False}  # both answers were exercised


def test_common_stream_shape_gives_the_general_path_on_split_values_escapes_and_non_ascii() -> None:
    rng = random.Random(22)
    values = fifty_values(rng)
    values["long"] = secrets.token_urlsafe(225)
    values["slashed"] = "/".join(secrets.token_hex(3) for _ in range(6))
    masker = Masker(values)
    names = ["stdout", "stderr", rng.choice(list(values.values()))]
    for _ in range(60):
        fast, general = StreamMasker(masker), StreamMasker(masker)
        # one execution's output cut into messages at random: values cross messages
        whole = "".join(_stream_piece(rng, list(values.values())) for _ in range(5))
        cuts = sorted(rng.sample(range(len(whole) + 1), k=min(len(whole), rng.randint(1, 12))))
        pieces = [whole[i:j] for i, j in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
        for piece in pieces:
            name = rng.choice(names)
            metadata = rng.choice([{}, {"k": rng.choice(list(values.values()))}, None])
            assert_common_shape_as_general(masker, fast, general, name, piece, metadata)
        for name in names:
            key = ("parent-1", name)
            assert fast.flush(key) == general.flush(key)


def test_occurrences_in_non_ascii_text_are_at_the_right_characters() -> None:
    rng = random.Random(23)
    values = fifty_values(rng)  # some values non-ASCII ("pässwörd-...")
    values["long"] = secrets.token_urlsafe(225)
    engine = Masker(values)._engine
    automaton = engine._automaton
    assert automaton is not None
    seen_ascii_stretch = seen_mixed = False
    for _ in range(400):
        text = _stream_piece(rng, list(values.values()))
        if rng.random() < 0.5:  # non-ASCII right next to (or inside) the matches
            text = text.replace(rng.choice("abcdefgh"), rng.choice("é█😀"))
        data = text.encode("utf-8", "surrogatepass")
        found = automaton.find_matches_as_indexes(data, overlapping=True)
        # brute force: the character offset of a byte offset is the length of the prefix
        expected = [
            (
                p,
                len(data[:s].decode("utf-8", "surrogatepass")),
                len(data[:e].decode("utf-8", "surrogatepass")),
            )
            for p, s, e in found
        ]
        assert engine._occurrences(text) == expected
        if found and not text.isascii():
            stretch = data[min(s for _, s, _ in found) : max(e for _, _, e in found)]
            seen_ascii_stretch |= stretch.isascii()
            seen_mixed |= not stretch.isascii()
    assert seen_ascii_stretch and seen_mixed  # both conversions were exercised


# --- screening the JSON a stream text was decoded from (raw=) -------------------------


def _json_safe_values(rng: random.Random) -> dict[str, str]:
    """Values as injected credentials usually are: ASCII, no quote or backslash."""
    values = {f"token_{i:02d}": secrets.token_urlsafe(rng.randint(12, 40)) for i in range(20)}
    values.update({f"hex_{i:02d}": secrets.token_hex(rng.randint(8, 24)) for i in range(10)})
    values["long"] = secrets.token_urlsafe(225)  # 300 characters: fragments
    values["slashed"] = "/".join(secrets.token_hex(3) for _ in range(6))  # hidden by "\/"
    values["b64"] = base64.b64encode(rng.randbytes(30)).decode()  # "/" and "+"
    return values


def _escaped(text: str, upper: bool = False) -> str:
    """``text`` as a JSON string that escapes every ASCII letter and digit as ``\\u00XX``
    (valid JSON: some serialisers escape more than Python's)."""
    form = "\\u%04X" if upper else "\\u%04x"
    return (
        '"'
        + "".join(
            form % ord(c) if c.isascii() and c.isalnum() else json.dumps(c)[1:-1] for c in text
        )
        + '"'
    )


def _raw_forms(content: dict[str, str]) -> list[bytes | str]:
    """The JSON of a stream message's content (or of the whole message) as kernels and
    servers write it, and as other JSON writers may: each decodes to ``content``."""
    plain = json.dumps(content, ensure_ascii=False)
    whole = jmsg("stream", content)
    forms: list[bytes | str] = [
        json.dumps(whole),  # ensure_ascii: non-ASCII as \uXXXX (the websocket's JSON)
        json.dumps(whole, ensure_ascii=False),  # a non-ASCII str: the text is screened
        plain.encode(),  # jupyter_client's frames: UTF-8, ensure_ascii=False
        b"\xef\xbb\xbf" + plain.encode(),  # with a UTF-8 BOM
        json.dumps(content).replace("/", "\\/"),  # a writer escaping "/"
        plain.encode().replace(b"/", b"\\/"),
        f'{{"name": {_escaped(content["name"])}, "text": {_escaped(content["text"])}}}',
        f'{{"name": {_escaped(content["name"])}, "text": {_escaped(content["text"], True)}}}',
        plain.encode("utf-16-le"),  # json.loads reads UTF-16 and UTF-32 too
        plain.encode("utf-16"),
        plain.encode("utf-32-le"),
    ]
    for raw in forms:
        decoded = json.loads(raw if isinstance(raw, str) else raw.decode(json.detect_encoding(raw)))
        assert content == decoded.get("content", decoded)
    return forms


class _RecordingScreen:
    """A literal screen that records what it read and what it answered."""

    def __init__(self, screen: object) -> None:
        self.screen = screen
        self.calls: list[tuple[bytes, bool]] = []

    def any_in(self, data: bytes) -> bool:
        found = bool(self.screen.any_in(data))  # type: ignore[attr-defined]
        self.calls.append((data, found))
        return found


def test_passes_on_the_raw_json_answers_what_passes_on_the_text_answers() -> None:
    rng = random.Random(31)
    values = _json_safe_values(rng)
    masker = Masker(values)
    engine = masker._engine
    assert engine.wait_screened(60.0)
    assert engine._json_safe and engine._screen is not None
    recorder = _RecordingScreen(engine._screen)
    object.__setattr__(engine, "_screen", recorder)
    seen = set()
    screened_raw = 0
    for _ in range(600):
        text = _stream_piece(rng, list(values.values()))
        if rng.random() < 0.5:
            text += "█" * rng.randint(1, 9) + "\n"  # a progress bar: non-ASCII, ends clean
        content = {"name": rng.choice(["stdout", "stderr"]), "text": text}
        expected = masker.passes(text)
        for raw in _raw_forms(content):
            recorder.calls.clear()
            assert masker.passes(text, raw) == expected, (type(raw).__name__, raw[:40])
            raw_bytes = raw.encode() if isinstance(raw, str) else raw
            screened_raw += any(data == raw_bytes and not hit for data, hit in recorder.calls)
        seen.add(expected)
    assert seen == {True, False}
    assert screened_raw > 100  # the raw JSON alone answered, many times


def test_raw_json_is_not_screened_when_a_pattern_could_be_escaped_in_it() -> None:
    value = 'q"uote-' + secrets.token_urlsafe(16)  # a quote: \" in JSON
    for values in (
        {"q": value},
        {"u": "pässwörd-" + secrets.token_urlsafe(12)},
        {"s": "x//" + secrets.token_urlsafe(16)},  # "x\/": too short a literal to screen
    ):
        masker = Masker(values)
        assert not masker._engine._json_safe
        (secret,) = values.values()
        for text in (f"█ {secret}\n", f"█ {secret[:-1]}\n", "█ plain\n"):
            for raw in _raw_forms({"name": "stdout", "text": text}):
                assert masker.passes(text, raw) == masker.passes(text)
        assert not masker.passes(f"█ {secret}\n", json.dumps({"text": f"█ {secret}\n"}))


def test_common_stream_shape_with_the_raw_json_gives_what_it_gives_without() -> None:
    rng = random.Random(32)
    values = _json_safe_values(rng)
    masker = Masker(values)
    for _ in range(40):
        with_raw, without = StreamMasker(masker), StreamMasker(masker)
        whole = "".join(_stream_piece(rng, list(values.values())) + "█\n" for _ in range(5))
        cuts = sorted(rng.sample(range(len(whole) + 1), k=min(len(whole), rng.randint(1, 12))))
        for piece in [whole[i:j] for i, j in zip([0, *cuts], [*cuts, len(whole)], strict=True)]:
            msg = jmsg("stream", {"name": "stdout", "text": piece})
            for raw in (json.dumps(msg), json.dumps(msg["content"], ensure_ascii=False).encode()):
                ref = mask_message(msg, masker, without)
                assert mask_message(msg, masker, with_raw, raw) == ref
        key = ("parent-1", "stdout")
        assert with_raw.flush(key) == without.flush(key)
