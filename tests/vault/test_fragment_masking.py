"""Masking of long and structured values: fragments, fields, rendered splits, numbers, bytes.

Issue 11, cases 2, 3 and 8 (the engine's side). Every secret is generated at run time;
assertions compare booleans and counts, so a failure prints no secret.
"""

from __future__ import annotations

import base64
import html
import json
import random
import secrets
import string
import textwrap
from urllib.parse import quote, urlsplit

import pytest

from jupyter_qsecure.scan.exact import fragment_sources
from jupyter_qsecure.testing.leaks import leaks, service_account_json, strings_in
from jupyter_qsecure.vault.masking import Masker, StreamMasker, mask_message, placeholder

P = placeholder
K = 12


def check(condition: bool, what: object = "") -> None:
    """``assert`` that shows no operand: these hold secrets, which a test must not print."""
    assert condition, what


def token(length: int) -> str:
    return secrets.token_urlsafe(length)[:length]


def jmsg(msg_type: str, content: dict, **extra: object) -> dict:
    msg = {
        "header": {"msg_id": secrets.token_hex(8), "msg_type": msg_type, "version": "5.4"},
        "parent_header": {"msg_id": "parent-1", "msg_type": "execute_request"},
        "metadata": {},
        "content": content,
        "buffers": [],
        "channel": "iopub",
    }
    msg.update(extra)
    return msg


@pytest.fixture(scope="module")
def service_account() -> str:
    return service_account_json()


# --- fragments -------------------------------------------------------------------------


@pytest.mark.parametrize("length", [32, 300, 2000])
def test_truncated_and_wrapped_values_are_masked(length: int) -> None:
    value = token(length)
    masker = Masker({"tok": value})
    texts = [
        f"tok    str    {value[:40]}...",  # pandas / %whos style truncation
        f"'{value[:25]}<...>{value[-25:]}'",  # reprlib-style middle cut
        textwrap.fill(f"token: {value}", width=37),  # wrapped over lines
        f"Docstring: {value[5 : 5 + K]}",  # exactly min_fragment characters
        value[length // 3 : length // 3 + 30] + "\n",
    ]
    out = [masker.mask(text) for text in texts]
    check(leaks(out, value) == 0)
    check(all(P("tok") in text for text in out))
    check(leaks(texts, value) == len(texts))  # the check itself sees them unmasked


def test_runs_shorter_than_min_fragment_and_short_values_stay_whole_only() -> None:
    value, short = token(64), token(10)
    masker = Masker({"tok": value, "pin": short})
    check(masker.mask(f"[{value[7 : 7 + K - 1]}]") == f"[{value[7 : 7 + K - 1]}]")
    check(masker.mask(f"[{value[7 : 7 + K]}]") == f"[{P('tok')}]")
    check(masker.mask(f"[{short[:8]}]") == f"[{short[:8]}]")  # short values: whole only
    check(masker.mask(f"[{short}]") == f"[{P('pin')}]")
    whole_only = Masker({"tok": value}, min_fragment=0)
    check(whole_only.mask(value[:40]) == value[:40])
    check(Masker({"tok": value}, min_fragment=20).mask(value[:19]) == value[:19])


@pytest.mark.parametrize("bad", [-1, 1, 7, 3.5])
def test_min_fragment_must_be_zero_or_at_least_eight(bad: object) -> None:
    with pytest.raises(ValueError, match="mask_fragment_min"):
        Masker({"tok": token(20)}, min_fragment=bad)  # type: ignore[arg-type]


def test_min_fragment_of_exactly_eight_masks_runs_of_eight() -> None:
    value = token(20)
    masker = Masker({"tok": value}, min_fragment=8)  # the floor itself is allowed
    check(masker.mask(f"[{value[3:11]}]") == f"[{P('tok')}]")
    check(masker.mask(f"[{value[3:10]}]") == f"[{value[3:10]}]")


def test_fragments_of_escaped_forms_are_masked() -> None:
    value = 'pa"ss\\wörd<&>' + token(40)
    masker = Masker({"pw": value})
    for form in (json.dumps(value)[1:-1], html.escape(value), repr(value)[1:-1]):
        out = masker.mask(f"x {form[3:40]} y")
        check(leaks([out], value) == 0 and P("pw") in out)


def test_overlapping_runs_are_merged_into_one_masked_range() -> None:
    value = token(80)
    while value[50] == value[30] or value[29] == value[49]:  # else a run extends past the seam
        value = token(80)
    masker = Masker({"tok": value})
    text = value[10:50] + value[30:70]  # two runs, the second overlaps the first's values
    spans = masker.spans(text)
    check([(s, e) for s, e, _ in spans] == [(0, 40), (40, 80)])
    check(masker.mask(text) == P("tok") * 2)


# --- structured values --------------------------------------------------------------------


def test_service_account_fields_are_values_of_their_own(service_account: str) -> None:
    masker = Masker({"sa": service_account})
    doc = json.loads(service_account)
    key = doc["private_key"]
    lines = [line for line in key.splitlines() if line and not line.startswith("-----")]
    check(masker.mask(service_account) == P("sa"))
    check(masker.mask(f"key: {key}") == f"key: {P('sa.private_key')}")
    check(masker.mask(lines[3]) == P("sa.private_key"))
    check(masker.mask("".join(lines)) == P("sa.private_key"))
    check(masker.mask(doc["client_email"]) == P("sa.client_email"))
    check(masker.mask(doc["private_key_id"]) == P("sa.private_key_id"))
    # pieces, as a formatter shows them
    texts = [
        json.dumps(doc)[:300] + "...",
        repr(key)[:120],
        textwrap.fill(key.replace("\n", ""), 50),
        str(doc)[200:900],
    ]
    out = [masker.mask(t) for t in texts]
    for field in ("private_key", "private_key_id", "client_email"):
        check(leaks(out, doc[field]) == 0, field)
    check(leaks(out, service_account) == 0)  # nor of the document's own text


def test_placeholders_already_in_the_text_are_left_as_they_are(service_account: str) -> None:
    # "private_key_id" in a field's placeholder is a run of the document: the plain pass
    # that follows the rendered one (and any second pass) must not mask it again.
    value = token(30)
    masker = Masker({"sa": service_account, "tok": value})
    key_id = json.loads(service_account)["private_key_id"]
    coloured = f"id: \x1b[32m{key_id}\x1b[0m"
    check(masker.mask_output(coloured) == f"id: \x1b[32m{P('sa.private_key_id')}\x1b[0m")
    once = masker.mask(f"id: {key_id}")
    check(once == f"id: {P('sa.private_key_id')}" and masker.mask(once) == once)
    # and what stands next to a placeholder is still masked
    check(masker.mask(f"{once} and {value}") == f"{once} and {P('tok')}")


def test_dsn_password_alone_encoded_and_cut_at_a_slash() -> None:
    password = token(20) + "/" + token(16) + "@x"
    dsn = f"postgresql://analyst:{quote(password, safe='/')}@db.example:5432/prod"
    masker = Masker({"db": dsn})
    check(masker.mask(password) == P("db.password"))
    check(masker.mask(quote(password, safe="/")) == P("db.password"))
    # a parse error shows the password up to the "/": a fragment of it
    raw = f"postgresql://analyst:{password}@db.example/prod"
    with pytest.raises(ValueError) as caught:
        urlsplit(raw).port  # noqa: B018
    message = str(caught.value)
    check(leaks([message], password) == 1)  # the error really shows a run of it
    check(leaks([masker.mask(message)], password) == 0)
    check(P("db.password") in masker.mask(message))


# --- rendered splits ------------------------------------------------------------------------


def _value_with_dashes(length: int) -> str:
    rng = random.Random(length)
    chars = list(token(length))
    for i in range(5, length, 9):  # pygments splits names at '-' (an operator)
        chars[i] = rng.choice("-_")
    return "".join(chars)


@pytest.mark.parametrize("length", [32, 300])
def test_highlighted_code_html_and_latex(length: int) -> None:
    from IPython.display import Code

    value = _value_with_dashes(length)
    code = Code(f"token = {value}", language="python")
    bundle = {"text/html": code._repr_html_(), "text/latex": code._repr_latex_()}
    check("</span><span" in bundle["text/html"])
    masker = Masker({"tok": value})
    out = mask_message(jmsg("display_data", {"data": bundle, "metadata": {}}), masker)
    masked = out["content"]["data"]
    check(leaks(strings_in(masked), value) == 0)
    check(html.escape(P("tok")) in masked["text/html"])
    check(masked["text/html"].count("<span") == masked["text/html"].count("</span>"))


def test_svg_text_split_over_tspans() -> None:
    value = token(48)
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg"><text x="0" y="15">'
        f'<tspan x="0">{value[:20]}</tspan><tspan x="0" dy="15">{value[20:]}</tspan>'
        "</text></svg>"
    )
    masker = Masker({"tok": value})
    out = mask_message(
        jmsg("display_data", {"data": {"image/svg+xml": svg}, "metadata": {}}), masker
    )
    masked = out["content"]["data"]["image/svg+xml"]
    check(leaks([masked], value) == 0)
    check(masked.count("<tspan") == masked.count("</tspan>") == 2)


def test_ansi_coloured_text_stream_and_traceback() -> None:
    value = token(40)
    coloured = "".join(
        f"\x1b[{31 + i % 6}m{value[i : i + 7]}\x1b[0m" for i in range(0, len(value), 7)
    )
    masker = Masker({"tok": value})
    stream = StreamMasker(masker)
    msgs = [
        jmsg("stream", {"name": "stdout", "text": coloured + "\n"}),
        jmsg("display_data", {"data": {"text/plain": coloured}, "metadata": {}}),
        jmsg(
            "error", {"ename": "E", "evalue": "x", "traceback": [f"\x1b[0;31mE\x1b[0m: {coloured}"]}
        ),
    ]
    for msg in msgs:
        out = mask_message(msg, masker, stream)
        check(leaks(strings_in(out["content"]), value) == 0, msg["header"]["msg_type"])
        check(P("tok") in json.dumps(out["content"], ensure_ascii=False))


def test_json_with_escaped_slashes_as_printed_and_as_repr() -> None:
    value = token(14) + "/" + token(9) + "/" + token(11)  # every piece under 12 characters
    escaped = json.dumps({"password": value}).replace("/", "\\/")  # pandas to_json
    masker = Masker({"pw": value})
    stream = StreamMasker(masker)
    printed = mask_message(
        jmsg("stream", {"name": "stdout", "text": escaped + "\n"}), masker, stream
    )
    shown = mask_message(
        jmsg("execute_result", {"data": {"text/plain": repr(escaped)}, "metadata": {}}), masker
    )
    for out in (printed, shown):
        check(leaks(strings_in(out["content"]), value) == 0)
        text = json.dumps(out["content"], ensure_ascii=False)
        check(P("pw") in text)
        check(not any(piece in text for piece in value.split("/")))  # not even short pieces


def test_contains_any_sees_values_cut_by_markup_in_raw_json_frames() -> None:
    value = _value_with_dashes(40)
    from IPython.display import Code

    frame = json.dumps({"data": {"text/html": Code(value)._repr_html_()}})
    masker = Masker({"tok": value})
    check(not Masker({"other": token(30)}).contains_any(frame))
    check(masker.contains_any(frame))
    coloured = json.dumps({"text": "\x1b[31m" + value[:20] + "\x1b[0m" + value[20:]})
    check(masker.contains_any(coloured))


def test_contains_any_sees_a_value_cut_by_terminal_colours_into_short_pieces() -> None:
    # Every piece shorter than a fragment: only the text without ANSI codes holds the value.
    # The websocket screens raw frames with contains_any; a "no" lets the frame through.
    value = token(2 * K - 2)
    coloured = "\x1b[31m" + value[: K - 1] + "\x1b[0m" + value[K - 1 :] + "\x1b[0m"
    masker = Masker({"tok": value})
    for text in (coloured, json.dumps({"text": coloured})):
        check(masker.contains_any(text))
        check(not Masker({"other": token(30)}).contains_any(text))
    check(masker.mask_output(coloured).count(P("tok")) == 1)


# --- numbers and bytes ----------------------------------------------------------------------


def test_numbers_in_json_content_and_metadata() -> None:
    pin = str(secrets.randbelow(10**12) + 10**12)  # 13 digits
    masker = Masker({"pin": pin})
    msg = jmsg(
        "execute_result",
        {
            "execution_count": 4,
            "data": {"application/json": {"pin": int(pin), "ratio": float(pin), "n": 7}},
            "metadata": {},
        },
        metadata={"pin": int(pin), "ok": True},
    )
    out = mask_message(msg, masker)
    data = out["content"]["data"]["application/json"]
    check(data["pin"] == P("pin"))
    check(P("pin") in data["ratio"])  # 1234567890123.0
    check(data["n"] == 7 and out["content"]["execution_count"] == 4)
    check(out["metadata"] == {"pin": P("pin"), "ok": True})
    check(leaks(strings_in(out), pin) == 0)
    # without a value of digits, numbers are not even looked at
    plain = Masker({"tok": token(20)})
    check(mask_message(msg, plain)["content"]["data"]["application/json"]["pin"] == int(pin))


def test_mask_bytes_overwrites_raw_hex_and_base64_forms_keeping_the_size() -> None:
    value = token(32) + "é"
    raw = value.encode()
    rng = random.Random(3)
    buffer = (
        rng.randbytes(10)
        + raw
        + rng.randbytes(7)
        + raw.hex().encode()
        + b"|"
        + base64.b64encode(b"\x00\x01" + raw + b"\xff")
        + b"\xfe"
        + raw[5:25]  # a fragment, as a truncating formatter writes it
        + rng.randbytes(5)
    )
    masker = Masker({"tok": value})
    out = masker.mask_bytes(memoryview(buffer))
    check(isinstance(out, bytes) and len(out) == len(buffer))
    check(raw not in out and raw.hex().encode() not in out)
    check(base64.b64encode(raw)[4:20] not in out)
    check(raw[5:25] not in out and raw[8:20] not in out)
    check(out.count(b"*" * len(raw)) >= 1)
    check(out[:10] == buffer[:10] and out[-5:] == buffer[-5:])
    check(masker.mask_bytes(b"nothing here") == b"nothing here")


# --- stream carry-over with fragments -------------------------------------------------------


def _values(rng: random.Random, service_account: str) -> dict[str, str]:
    letters = string.ascii_letters + string.digits + "-_"

    def rand(n: int) -> str:
        return "".join(rng.choice(letters) for _ in range(n))

    base = rand(60)
    return {
        "short": rand(6),
        "mid": rand(20),
        "long": rand(300),
        "a": base[:40],
        "b": base[20:],  # overlaps a
        "periodic": rand(7) * 6,
        "pw": 'q"w<e>r&t/y ' + rand(20),
        "dsn": f"postgresql://u:{rand(14)}/{rand(12)}@h/db",
        "sa": service_account,
    }


def _piece(rng: random.Random, values: list[str]) -> str:
    value = rng.choice(values)
    roll = rng.random()
    if roll < 0.15:
        return value
    if roll < 0.3:
        return rng.choice(fragment_sources(value) or [value])
    if roll < 0.75:
        start = rng.randrange(len(value))
        return value[start : rng.randint(start, min(len(value), start + 50))]
    return rng.choice(["\n", " ", "ab", "é€", "0.5", "\x1b[31m", "-", "_"])


@pytest.mark.parametrize("seed", range(6))
def test_split_in_pieces_equals_masking_the_whole(seed: int, service_account: str) -> None:
    """emit + mask(tail + next) == mask(whole), on random texts cut at random places."""
    rng = random.Random(seed)
    values = _values(rng, service_account)
    masker = Masker(values)
    pool = list(values.values())
    for _ in range(250):
        text = "".join(_piece(rng, pool) for _ in range(rng.randint(1, 8)))
        whole = masker.mask(text)
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(1, 6))))
        out, held, last = [], "", 0
        for cut in [*cuts, len(text)]:
            emit, held = masker.split(held + text[last:cut])
            check(len(held) < 2 * masker.longest_form)
            out.append(emit)
            last = cut
        out.append(masker.mask(held))
        same = "".join(out) == whole
        check(same)
    # and nothing of min_fragment characters of any value is left in the whole
    for value in pool:
        if len(value) >= K:
            check(leaks([whole], value) == 0)


def test_split_holds_only_what_can_still_grow(service_account: str) -> None:
    value = token(64)
    masker = Masker({"tok": value, "sa": service_account})
    check(masker.split(f"line {value[:3]}\n") == (f"line {value[:3]}\n", ""))  # ends a line
    check(masker.split(f"x {value}") == (f"x {P('tok')}", ""))  # a value cannot grow
    emit, held = masker.split(f"x {value[:30]}")  # a run that the value continues
    check(emit == "x " and held == value[:30])
    check(masker.mask(held + value[30:40]) == P("tok"))
    emit, held = masker.split(f"x {value[5:10]}")  # could become a run with more text
    check(emit == "x " and held == value[5:10])


def test_mask_fragment_min_setting() -> None:
    from traitlets import TraitError

    from jupyter_qsecure.config import QSecure

    assert QSecure().mask_fragment_min == 12
    assert QSecure(mask_fragment_min=0).mask_fragment_min == 0
    with pytest.raises(TraitError, match="mask_fragment_min must be 0"):
        QSecure(mask_fragment_min=5)
