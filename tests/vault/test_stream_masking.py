"""The stream carry-over (StreamMasker) and binary buffer masking, without a server.

The invariant: for one execution, everything ``write`` and ``release`` return, joined
in order, equals ``masker.mask`` of everything written, however the text is cut into
messages and whichever stream (stdout, stderr) each part is written to.
"""

from __future__ import annotations

import base64
import random
import secrets
import string
from collections.abc import Hashable
from urllib.parse import quote

import pytest

from jupyter_qsecure.vault import masking
from jupyter_qsecure.vault.masking import Masker, forms_for, placeholder
from jupyter_qsecure.vault.stream_masking import StreamMasker, mask_bytes

NAMES = ("stdout", "stderr")


def value_of(rng: random.Random, length: int) -> str:
    alphabet = string.ascii_letters + string.digits + "-_"
    return "".join(rng.choice(alphabet) for _ in range(length))


def values_of(rng: random.Random) -> dict[str, str]:
    """Values of 32, 300 and 2,000 characters, one with characters JSON and HTML escape."""
    return {
        "short": value_of(rng, 32),
        "mid": value_of(rng, 300),
        "long": value_of(rng, 2000),
        "quoted": 'q"w<e>r&t/y ' + value_of(rng, 20),
    }


def stream_text(rng: random.Random, values: list[str], size: int) -> str:
    """Filler text (no «») with values, their forms and their prefixes in it."""
    filler = string.ascii_letters + string.digits + " \n\t.,:;=-_/"
    parts = []
    while sum(map(len, parts)) < size:
        roll = rng.random()
        if roll < 0.25:
            value = rng.choice(values)
            parts.append(rng.choice(forms_for(value)) if rng.random() < 0.3 else value)
        elif roll < 0.4:  # a prefix that never completes: held, then released
            value = rng.choice(values)
            parts.append(value[: rng.randint(1, len(value) - 1)])
        else:
            parts.append("".join(rng.choice(filler) for _ in range(rng.randint(1, 40))))
    return "".join(parts)


def random_cuts(rng: random.Random, text: str, most: int) -> list[str]:
    k = min(len(text) - 1, rng.randint(1, most))
    cuts = sorted(rng.sample(range(1, len(text)), k=k))
    return [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def held_length(stream: StreamMasker) -> int:
    return sum(len(tail) for tail in stream._held.values())


def run(
    stream: StreamMasker, key: Hashable, writes: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Everything emitted for ``writes`` (name, text), then the release, in order."""
    out = []
    for name, text in [*writes, ("", "")]:
        pieces = stream.write(key, name, text) if text else stream.release(key)
        # one message per run of one stream, none empty
        assert all(t for _, t in pieces)
        assert all(a[0] != b[0] for a, b in zip(pieces, pieces[1:], strict=False))
        assert held_length(stream) <= stream.masker.longest_form
        out.extend(pieces)
    assert not stream.holds(key)
    return out


def assert_no_value(text: str, values: dict[str, str]) -> None:
    for value in values.values():
        leaked = value in text
        assert not leaked, "a whole value was emitted"


# ---- the invariant ------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_one_stream_cut_at_random_equals_masking_the_whole(seed: int) -> None:
    rng = random.Random(seed)
    values = values_of(rng)
    masker = Masker(values)
    for _ in range(60):
        text = stream_text(rng, list(values.values()), size=rng.randint(50, 6000))
        pieces = random_cuts(rng, text, most=40)
        out = run(StreamMasker(masker), "exec-1", [("stdout", p) for p in pieces])
        joined = "".join(t for _, t in out)
        equal = joined == masker.mask(text)
        assert equal, "emitted text differs from masking the whole stream"
        assert {name for name, _ in out} <= {"stdout"}
        assert_no_value(joined, values)


@pytest.mark.parametrize("seed", range(4))
def test_stdout_and_stderr_are_matched_as_one_text_and_keep_their_own_text(
    seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(100 + seed)
    values = values_of(rng)
    masker = Masker(values)
    crossing = 0
    for _ in range(60):
        text = stream_text(rng, list(values.values()), size=rng.randint(50, 6000))
        writes = [(rng.choice(NAMES), p) for p in random_cuts(rng, text, most=40)]
        out = run(StreamMasker(masker), "exec-1", writes)
        joined = "".join(t for _, t in out)
        equal = joined == masker.mask(text)
        assert equal, "emitted text differs from masking both streams as one text"
        assert_no_value(joined, values)
        # Each stream shows its own characters (those outside a match), in order, and
        # each placeholder in the stream where its match starts.
        owner = [name for name, piece in writes for _ in piece]
        expected: dict[str, list[str]] = {name: [] for name in NAMES}
        pos = 0
        for start, end, shown_as in masker.spans(text):
            for i in range(pos, start):
                expected[owner[i]].append(text[i])
            expected[owner[start]].append(shown_as)
            crossing += len(set(owner[start:end])) > 1
            pos = end
        for i in range(pos, len(text)):
            expected[owner[i]].append(text[i])
        for name in NAMES:
            same = "".join(t for n, t in out if n == name) == "".join(expected[name])
            assert same, f"{name} lost, gained or moved text"
    assert crossing > 20  # values across the two streams were tested
    assert not caplog.records  # the engine's split and spans agreed every time


def test_a_value_across_both_streams_is_shown_once_where_it_starts() -> None:
    value = value_of(random.Random(1), 40)
    stream = StreamMasker(Masker({"tok": value}))
    assert stream.write("p", "stdout", "key: " + value[:10]) == [("stdout", "key: ")]
    assert stream.write("p", "stderr", value[10:25]) == []
    assert stream.write("p", "stdout", value[25:] + " ok\n") == [
        ("stdout", placeholder("tok") + " ok\n")
    ]
    assert stream.write("p", "stderr", "warn " + value[:5]) == [("stderr", "warn ")]
    assert stream.write("p", "stdout", value[5:] + "\n") == [
        ("stderr", placeholder("tok")),
        ("stdout", "\n"),
    ]
    assert stream.pending_keys() == []


# ---- holding and releasing ----------------------------------------------------------------
def test_only_a_tail_that_can_still_become_a_value_is_held() -> None:
    value = value_of(random.Random(2), 300)
    masker = Masker({"tok": value})
    stream = StreamMasker(masker)
    for text in ("line\n", "progress 42%\r", "a sentence.", "x" * 5000 + "\n"):
        assert stream.write("p", "stdout", text) == [("stdout", text)]
        assert not stream.holds("p")
    assert stream.write("p", "stdout", "k=" + value[:100]) == [("stdout", "k=")]
    assert stream.pending_keys() == ["p"] and held_length(stream) == 100
    # text that proves the tail is not the value releases it (masked as the engine masks
    # a part of a value on its own)
    assert stream.write("p", "stdout", "!\n") == [("stdout", masker.mask(value[:100] + "!\n"))]
    assert not stream.holds("p")


def test_release_gives_the_held_tail_masked_and_forgets_it() -> None:
    value = value_of(random.Random(3), 32)
    masker = Masker({"tok": value})
    stream = StreamMasker(masker)
    assert stream.write("p", "stdout", "tail " + value[:16]) == [("stdout", "tail ")]
    released = stream.release("p")
    assert released == [("stdout", masker.mask(value[:16]))]
    assert stream.release("p") == [] and stream.pending_keys() == []
    # across names: each keeps its part (together shorter than a masked fragment)
    stream.write("p", "stdout", value[:5])
    stream.write("p", "stderr", value[5:10])
    assert [name for name, _ in stream.release("p")] == ["stdout", "stderr"]


def test_empty_text_changes_nothing() -> None:
    value = value_of(random.Random(4), 32)
    stream = StreamMasker(Masker({"tok": value}))
    stream.write("p", "stdout", value[:8])
    assert stream.write("p", "stderr", "") == []
    assert stream.write("p", "stdout", value[8:]) == [("stdout", placeholder("tok"))]


def test_executions_are_independent() -> None:
    value = value_of(random.Random(5), 32)
    masker = Masker({"tok": value})
    stream = StreamMasker(masker)
    stream.write("a", "stdout", value[:9])
    assert stream.write("b", "stdout", value[9:] + "\n") == [
        ("stdout", masker.mask(value[9:]) + "\n")
    ]
    assert stream.write("a", "stderr", value[9:] + "\n") == [
        ("stdout", placeholder("tok")),
        ("stderr", "\n"),
    ]
    assert stream.pending_keys() == []


def test_a_new_masker_matches_held_tails_against_the_new_values() -> None:
    rng = random.Random(6)
    old, new = value_of(rng, 32), value_of(rng, 32)
    stream = StreamMasker(Masker({"old": old}))
    assert stream.write("p", "stdout", "x " + new[:5] + old[:5]) == [("stdout", "x " + new[:5])]
    stream.masker = Masker({"old": old, "new": new})
    assert stream.write("p", "stdout", old[5:] + "\n") == [("stdout", placeholder("old") + "\n")]
    assert stream.write("p", "stdout", "y " + new[:12]) == [("stdout", "y ")]
    assert stream.write("p", "stdout", new[12:]) == [("stdout", placeholder("new"))]


def test_the_single_stream_interface_still_works() -> None:
    value = value_of(random.Random(7), 32)
    stream = masking.StreamMasker(Masker({"tok": value}))  # re-exported where it was
    assert stream.feed(("p", "stdout"), "a " + value[:20]) == "a "
    assert stream.feed(("p", "stdout"), value[20:]) == placeholder("tok")
    assert stream.feed(("p", "stdout"), "b " + value[:3]) == "b "
    assert stream.flush(("p", "stdout")) == value[:3]


@pytest.mark.parametrize("seed", range(3))
def test_the_single_stream_interface_gives_what_write_gives_piece_by_piece(seed: int) -> None:
    rng = random.Random(40 + seed)
    values = values_of(rng)
    values["accents"] = "pässwörd-€-" + value_of(rng, 20)  # non-ASCII text and value
    masker = Masker(values)
    for _ in range(40):
        text = stream_text(rng, list(values.values()), size=rng.randint(20, 3000))
        text = text.replace("\t", "█é")  # non-ASCII filler too
        fed, written = StreamMasker(masker), StreamMasker(masker)
        for piece in [*random_cuts(rng, text, most=30), ""]:
            out = fed.feed("k", piece)
            assert out == "".join(t for _, t in written.write("k", "", piece))
            assert fed._held == written._held and fed._names == written._names
        assert fed.flush("k") == "".join(t for _, t in written.release("k"))


# ---- binary buffers -----------------------------------------------------------------------
def test_mask_bytes_overwrites_every_form_with_stars_keeping_the_length() -> None:
    rng = random.Random(8)
    value = value_of(rng, 40)
    accented = "pässwörd-" + value_of(rng, 20)  # non-ASCII: UTF-8 bytes differ from chars
    masker = Masker({"tok": value, "acc": accented})
    forms = [
        value.encode(),
        value.encode().hex().encode(),
        base64.b64encode(b"\x00\x01" + value.encode()),
        quote(value).encode(),
        accented.encode(),
    ]
    for form in forms:
        data = rng.randbytes(50) + form + b"\xff\xfe\x80" + rng.randbytes(30)
        out = mask_bytes(masker, data)
        assert len(out) == len(data)
        assert out[:50] == data[:50] and out[-33:] == data[-33:]
        assert b"****" in out
        for raw in (value.encode(), accented.encode(), value.encode().hex().encode()):
            assert raw not in out
        assert base64.b64encode(value.encode())[4:-4] not in out


def test_mask_bytes_returns_clean_data_as_it_is() -> None:
    masker = Masker({"tok": value_of(random.Random(9), 32)})
    data = secrets.token_bytes(4096)
    assert mask_bytes(masker, data) is data
    assert mask_bytes(Masker({}), data) is data


def test_mask_bytes_uses_the_engine_when_it_has_one() -> None:
    class Engine:
        def mask_bytes(self, data: bytes) -> bytes:
            return b"engine:" + data

    assert mask_bytes(Engine(), b"x") == b"engine:x"  # type: ignore[arg-type]
