"""MaskedLines: a kernel's raw stdout/stderr bytes in, masked log lines out."""

from __future__ import annotations

import random
import secrets

from jupyter_qsecure.vault.masking import Masker, placeholder
from jupyter_qsecure.vault.output_log import MaskedLines


def run(masker: Masker | None, chunks: list[bytes], max_line: int = 1000) -> list[str]:
    lines: list[str] = []
    out = MaskedLines(lambda: masker, lines.append, max_line=max_line)
    for chunk in chunks:
        out.feed(chunk)
    out.close()
    return lines


def leaked(lines: list[str], *values: str) -> bool:
    text = "\n".join(lines)
    return any(value in text or value[: len(value) // 2 + 1] in text for value in values)


def test_a_value_split_at_every_byte_is_masked() -> None:
    value = secrets.token_urlsafe(30)
    data = f"token {value} ok\nnext line\n".encode()
    masker = Masker({"api": value})
    for cut in range(1, len(data)):
        lines = run(masker, [data[:cut], data[cut:]])
        assert lines == [f"token {placeholder('api')} ok", "next line"]


def test_random_chunking_of_many_long_values() -> None:
    values = {
        "v32": secrets.token_urlsafe(32)[:32],
        "v300": secrets.token_urlsafe(300)[:300],
        "v2000": secrets.token_urlsafe(2000)[:2000],
    }
    masker = Masker(values)
    data = "".join(f"{i} {values[name]}\n" for i in range(50) for name in values).encode()
    rng = random.Random(11)
    chunks, pos = [], 0
    while pos < len(data):
        step = rng.randint(1, 1500)
        chunks.append(data[pos : pos + step])
        pos += step
    lines = run(masker, chunks, max_line=100_000)
    assert not leaked(lines, *values.values())
    assert len(lines) == 150
    assert all(
        line.endswith(placeholder(name))
        for line, name in zip(lines, list(values) * 50, strict=True)
    )


def test_a_held_tail_is_masked_when_the_stream_ends() -> None:
    value = secrets.token_urlsafe(24)
    lines = run(Masker({"k": value}), [b"no newline at the end: ", value.encode()])
    assert lines == [f"no newline at the end: {placeholder('k')}"]


def test_values_registered_later_are_masked() -> None:
    value = secrets.token_urlsafe(24)
    current: list[Masker | None] = [None]
    lines: list[str] = []
    out = MaskedLines(lambda: current[0], lines.append)
    out.feed(b"before any value\n")
    current[0] = Masker({"late": value})
    out.feed(f"now {value}\n".encode())
    out.close()
    assert lines == ["before any value", f"now {placeholder('late')}"]


def test_utf8_split_across_reads_and_invalid_bytes() -> None:
    value = "pässwörd-" + secrets.token_hex(8)
    data = f"é {value}\n".encode() + b"\xff\n"
    masker = Masker({"p": value})
    for cut in range(1, len(data)):
        assert run(masker, [data[:cut], data[cut:]]) == [f"é {placeholder('p')}", "\ufffd"]


def test_long_lines_come_out_in_parts_and_crlf_is_trimmed() -> None:
    lines = run(None, [b"x" * 25, b"\r\n" + b"z" * 12 + b"\n", b"y" * 5], max_line=10)
    assert lines == ["x" * 10, "x" * 10, "x" * 5, "z" * 12, "y" * 5]


def test_no_masker_passes_text_through() -> None:
    assert run(None, [b"a\nb", b"c\n"]) == ["a", "bc"]
