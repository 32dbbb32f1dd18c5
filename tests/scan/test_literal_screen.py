"""The SIMD screen in front of the masking automaton (issue 11, masking speed).

A text the screen calls clean skips the Aho-Corasick pass, so a screen that missed a
pattern would let a value or a fragment of one through. These tests plant runs of
random values (generated at run time) at random places in ordinary output, feed them
in random pieces, and check that nothing of ``min_fragment`` characters survives and
that the result equals the unscreened engine's. Assertions show no operand.
"""

from __future__ import annotations

import random
import secrets
import string
import threading

import pytest

from jupyter_qsecure.scan.exact import fragment_sources, whole_forms
from jupyter_qsecure.scan.literal_screen import build_screen
from jupyter_qsecure.scan.valuesearch import ValueSearch
from jupyter_qsecure.testing.leaks import leaks
from jupyter_qsecure.vault.masking import Masker, StreamMasker, mask_message

pytest.importorskip("hyperscan", reason="the screen needs Hyperscan (x86-64)")

K = 12  # the default min_fragment
SCREEN_WAIT = 60.0  # seconds for the screen thread to compile (usually milliseconds)


def check(condition: bool, what: object = "") -> None:
    """``assert`` that shows no operand: these hold secrets, which a test must not print."""
    assert condition, what


def random_values(rng: random.Random) -> dict[str, str]:
    makers = [
        lambda: secrets.token_urlsafe(rng.randint(6, 40)),
        lambda: secrets.token_hex(rng.randint(4, 24)),
        lambda: secrets.token_urlsafe(225),  # 300 characters
        lambda: "p/w+" + secrets.token_urlsafe(rng.randint(8, 30)) + 'é€"<&',
    ]
    return {f"s{i}": rng.choice(makers)() for i in range(rng.randint(1, 12))}


def filler(rng: random.Random, size: int) -> str:
    alphabet = string.ascii_letters + string.digits + " \n:.,-_/=[]{}'\"█é"
    return "".join(rng.choice(alphabet) for _ in range(size))


def test_the_masker_is_screened() -> None:
    """Otherwise the tests below would not exercise the screen at all."""
    masker = Masker({"tok": secrets.token_urlsafe(300)})
    check(masker._engine.wait_screened(SCREEN_WAIT) and masker._engine._screen is not None)


@pytest.mark.parametrize("seed", range(8))
def test_runs_planted_anywhere_and_fed_in_pieces_are_always_masked(seed: int) -> None:
    rng = random.Random(seed)
    values = random_values(rng)
    masker = Masker(values)
    check(masker._engine.wait_screened(SCREEN_WAIT))  # the screen in use from the start
    for _ in range(40):
        value = rng.choice(list(values.values()))
        source = rng.choice(fragment_sources(value))
        if len(source) < K:
            continue
        start = rng.randrange(len(source) - K + 1)
        run = source[start : rng.randint(start + K, len(source))]
        text = filler(rng, rng.randint(0, 5000)) + run + filler(rng, rng.randint(0, 5000))
        # the text arrives in random stream messages (cut anywhere, the run included)
        cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(0, 6))))
        stream = StreamMasker(masker)
        out, last = [], 0
        for cut in [*cuts, len(text)]:
            msg = {
                "header": {"msg_type": "stream"},
                "parent_header": {"msg_id": "p"},
                "content": {"name": "stdout", "text": text[last:cut]},
            }
            out.append(mask_message(msg, masker, stream)["content"]["text"])
            last = cut
        out.append(stream.flush(("p", "stdout")))
        check(leaks(["".join(out)], value, K) == 0, "a run of a planted value was shown")
        check(masker.mask(text) == "".join(out), "pieces differ from the whole")


@pytest.mark.parametrize("seed", range(4))
def test_screened_engine_finds_exactly_what_the_automaton_alone_finds(seed: int) -> None:
    rng = random.Random(100 + seed)
    values = list(random_values(rng).values())
    whole = whole_forms(values)
    fragments = [(src, i) for i, v in enumerate(values) for src in fragment_sources(v)]
    screened = ValueSearch(whole, fragments, min_fragment=K)
    plain = ValueSearch(whole, fragments, min_fragment=K, screen=False)
    check(screened.wait_screened(SCREEN_WAIT) and plain.wait_screened(0))
    check(screened._screen is not None and plain._screen is None)
    forms = [form for form, _, _ in whole]
    for _ in range(150):
        parts = [filler(rng, rng.randint(0, 300))]
        for _ in range(rng.randint(0, 3)):
            piece = rng.choice(forms + [src for src, _ in fragments])
            a = rng.randrange(len(piece))
            parts += [piece[a : rng.randint(a, len(piece))], filler(rng, rng.randint(0, 50))]
        text = "".join(parts)
        check(screened.find(text) == plain.find(text))
        check(screened.split(text) == plain.split(text))
        data = text.encode("utf-8", "surrogatepass")
        check(screened.find_bytes(data) == plain.find_bytes(data))


def assert_screen_exact(literals: list[bytes], rng: random.Random) -> None:
    """Random bytes with a literal (or only a prefix of one) planted half the time: the
    screen answers exactly what a plain search answers."""
    screen = build_screen(literals)
    check(screen is not None)
    assert screen is not None
    for _ in range(400):
        data = bytearray(rng.randbytes(rng.randint(0, 200)))
        if rng.random() < 0.5:
            literal = rng.choice(literals)
            cut = rng.randint(len(literal) // 2, len(literal))  # sometimes only a prefix
            at = rng.randint(0, len(data))
            data[at:at] = literal[:cut]
        expected = any(literal in data for literal in literals)
        check(screen.any_in(bytes(data)) == expected)


def test_screen_is_exact_for_any_bytes() -> None:
    rng = random.Random(7)
    literals = [
        b"a\x00b" + secrets.token_bytes(6),  # NUL inside: the bindings' literal mode cuts there
        b"\x00" + secrets.token_bytes(5),
        "x█y€".encode(),
        "\ud800z".encode("utf-8", "surrogatepass"),
        b".*+?()[]{}|^$\\",  # regex metacharacters are plain bytes here
        secrets.token_bytes(40),
    ]
    assert_screen_exact(literals, rng)


def test_screen_without_nul_bytes_is_exact_too() -> None:
    """Without a NUL byte the screen compiles with Hyperscan's literal compiler: still
    exact for any other bytes, metacharacters and prefixes included."""
    rng = random.Random(11)

    def no_nul(n: int) -> bytes:
        return bytes(rng.randint(1, 255) for _ in range(n))

    literals = [
        "x█y€".encode(),
        "\ud800z".encode("utf-8", "surrogatepass"),
        b".*+?()[]{}|^$\\",
        no_nul(40),
        no_nul(8),
    ]
    assert_screen_exact(literals, rng)


def test_screen_answers_from_several_threads_at_once() -> None:
    literal = secrets.token_bytes(16)
    screen = build_screen([literal])
    assert screen is not None
    hit, miss = b"x" * 5000 + literal + b"y" * 5000, b"z" * 10_000
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(300):
                check(screen.any_in(hit) and not screen.any_in(miss))
        except BaseException as exc:  # noqa: BLE001 - reported below, on the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    check(not errors, f"{len(errors)} thread(s) failed")


def test_without_hyperscan_the_automaton_alone_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_qsecure.scan import literal_screen

    monkeypatch.setattr(literal_screen, "_hs", None)
    value = secrets.token_urlsafe(40)
    check(literal_screen.build_screen([value.encode()]) is None)
    search = ValueSearch(whole_forms([value]), [(value, 0)], min_fragment=K)
    check(search.wait_screened(0) and search._screen is None)
    check(len(search.find(f"x {value[3:20]} y")) == 1)


def test_a_masker_is_built_without_waiting_for_hyperscan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hyperscan takes 30-100 ms to compile some sets of literals (it depends on the
    values): the masker built on a kernel's first execution must not wait for that.
    Until its screen is compiled, an engine searches with the automaton alone."""
    from jupyter_qsecure.scan import literal_screen, valuesearch

    compiling, release = threading.Event(), threading.Event()
    waited_out = threading.Event()
    real = literal_screen.build_screen

    def slow_compile(literals: list[bytes]) -> literal_screen.LiteralScreen | None:
        compiling.set()
        if not release.wait(SCREEN_WAIT):  # only if the build itself is waiting here
            waited_out.set()
        return real(literals)

    monkeypatch.setattr(valuesearch, "build_screen", slow_compile)
    value = secrets.token_hex(20)
    try:
        masker = Masker({"hex": value})
        check(not waited_out.is_set(), "the build waited for the compile")
        check(compiling.wait(SCREEN_WAIT), "the screen is compiled on the screen thread")
        engine = masker._engine
        check(not engine.wait_screened(0) and engine._screen is None)
        unscreened = answers(masker, value)
    finally:
        release.set()
    check(engine.wait_screened(SCREEN_WAIT) and engine._screen is not None)
    outputs, passes = unscreened
    check(outputs[0] == "key=«secret:hex»\n" and value[5:25] not in outputs[1])
    check(passes == [True, False])
    check(answers(masker, value) == unscreened, "the same answers with the screen")


def answers(masker: Masker, value: str) -> tuple[list[str], list[bool]]:
    """What ``masker`` makes of ``value`` whole and in part, and of clean text."""
    outputs = [masker.mask_output(f"key={value}\n"), masker.mask_output(f"part {value[5:25]} end")]
    return outputs, [masker.passes("nothing here\n"), masker.passes(f"key={value}\n")]
