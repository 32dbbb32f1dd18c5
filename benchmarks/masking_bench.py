"""Cost of masking 50 injected values in kernel output, vs passing the output through unmasked.

Anchor (unmasked): what the server's kernel websocket does with every message anyway,
``json.loads`` of the message and ``json.dumps`` for the browser. Ours: the same plus
``mask_message`` with a ``StreamMasker`` (carry-over) and a 50-value ``Masker``.
Both run in the same process on the same ~200 MB of iopub ``stream`` messages (4 KB
chunks of realistic output, ~1% containing an injected value in some encoding),
alternated, best of ``--repeat``.

Then raw ``mask(text)`` throughput for each multi-pattern engine evaluated (same forms,
same texts, outputs checked equal): the Masker (ahocorasick-rs on UTF-8 bytes with a
sharded SIMD prefilter), one ahocorasick-rs automaton on ``str``, pyahocorasick, and
Python's ``re`` with a trie-shaped alternation.

Usage: python benchmarks/masking_bench.py [--mb 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import secrets
import string
import time
from collections.abc import Callable

import ahocorasick_rs

try:  # evaluated, not a dependency: pip install pyahocorasick to include it
    import ahocorasick
except ImportError:
    ahocorasick = None

from jupyter_qsecure.scan.exact import _trie_regex
from jupyter_qsecure.vault.masking import Masker, StreamMasker, forms_for, mask_message, placeholder

CHUNK = 4096
POOL = 4096  # distinct messages, cycled up to the requested size


def fifty_values(rng: random.Random) -> dict[str, str]:
    makers: list[Callable[[], str]] = [
        lambda: secrets.token_urlsafe(32),  # API tokens
        lambda: secrets.token_hex(20),  # hex secrets
        lambda: "AKIA" + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16)),
        lambda: "".join(rng.choice(string.ascii_letters + string.digits + "-.") for _ in range(20)),
        lambda: "hvs." + secrets.token_urlsafe(70),  # OpenBao/Vault tokens
    ]
    return {f"secret_{i:02d}": makers[i % len(makers)]() for i in range(50)}


def output_line(rng: random.Random, step: int, bar: str) -> str:
    kind = rng.randrange(7)
    if kind == 0:
        return f"Epoch {step % 50}/50 - loss: {rng.random():.4f} - accuracy: {rng.random():.4f} - val_loss: {rng.random():.4f}\n"
    if kind == 1:
        return f"2025-05-01 12:{step % 60:02d}:{rng.randrange(60):02d},{rng.randrange(1000):03d} INFO  qiskit.transpiler: Pass {rng.choice(['Unroll3qOrMore', 'SabreLayout', 'Optimize1qGates'])} took {rng.random() * 100:.3f} ms\n"
    if kind == 2:
        return "[" + " ".join(f"{rng.gauss(0, 1): .8f}" for _ in range(6)) + "]\n"
    if kind == 3:
        counts = {format(rng.randrange(16), "04b"): rng.randrange(1024) for _ in range(6)}
        return f"job {secrets.token_hex(12)} counts: {counts}\n"
    if kind == 4:
        return f"{step:6d}  sample_{step:<6d} {rng.random():.6f}  {rng.choice(['True', 'False'])}  {rng.choice(['alpha', 'beta', 'gamma'])}\n"
    if kind == 5:
        return f"{{'id': {step}, 'name': 'run-{step}', 'uuid': '{secrets.token_hex(16)}', 'ok': True}}\n"
    return (
        f"Processing: {step % 100:3d}%|{bar * (step % 20)}{' ' * (20 - step % 20)}| {step}/10000\n"
    )


def injected(rng: random.Random, value: str) -> str:
    forms = forms_for(value)
    raw = rng.randbytes(rng.randint(0, 20)) + value.encode() + rng.randbytes(rng.randint(0, 20))
    return rng.choice(
        [f"token={value}\n", f"{rng.choice(forms)}\n", base64.b64encode(raw).decode() + "\n"]
    )


def make_chunks(rng: random.Random, values: list[str], bar: str = "█") -> list[str]:
    chunks, step = [], 0
    for _ in range(POOL):
        lines, size = [], 0
        while size < CHUNK:
            line = injected(rng, rng.choice(values)) if rng.random() < 0.0002 else ""
            line = line or output_line(rng, step, bar)
            step += 1
            lines.append(line)
            size += len(line)
        text = "".join(lines)
        # most flushes end at a line end; some cut a line (kernel flushed mid-line)
        chunks.append(text if rng.random() < 0.9 else text[: rng.randint(CHUNK // 2, len(text))])
    return chunks


def wire_message(text: str, parent: str) -> str:
    msg = {
        "header": {
            "msg_id": secrets.token_hex(16),
            "msg_type": "stream",
            "username": "jovyan",
            "session": "b7a5f3e0c9d84a6e8b1f2c3d4e5f6a7b",
            "date": "2025-05-01T12:00:00.123456Z",
            "version": "5.4",
        },
        "msg_id": "",
        "msg_type": "stream",
        "parent_header": {
            "msg_id": parent,
            "msg_type": "execute_request",
            "username": "jovyan",
            "session": "c0ffee",
            "date": "2025-05-01T11:59:59.000000Z",
            "version": "5.4",
        },
        "metadata": {},
        "content": {"name": "stdout", "text": text},
        "buffers": [],
        "channel": "iopub",
    }
    return json.dumps(msg)


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def compare(label: str, masker: Masker, chunks: list[str], mb: float, repeat: int) -> None:
    wire = [wire_message(text, f"parent-{i // 64}") for i, text in enumerate(chunks)]
    pool_bytes = sum(len(w.encode()) for w in wire)
    cycles = max(1, round(mb * 1e6 / pool_bytes))
    total_mb = cycles * pool_bytes / 1e6
    with_values = sum(masker.contains_any(c) for c in chunks)
    print(
        f"{label}: {total_mb:.0f} MB of stream messages "
        f"({cycles} x {len(wire)} distinct, {with_values} of them containing a form)"
    )
    loads, dumps = json.loads, json.dumps

    def unmasked() -> None:
        for _ in range(cycles):
            for w in wire:
                dumps(loads(w))

    def masked() -> None:
        stream = StreamMasker(masker)
        for _ in range(cycles):
            for w in wire:
                dumps(mask_message(loads(w), masker, stream))
        for key in stream.pending_keys():
            stream.flush(key)

    t_plain, t_mask = [], []
    for _ in range(repeat):  # alternate, so both see the same machine state
        t_plain.append(best(unmasked, 1))
        t_mask.append(best(masked, 1))
    plain, mask = min(t_plain), min(t_mask)
    print(f"  unmasked (json.loads + json.dumps)    {plain:7.3f} s  {total_mb / plain:7.0f} MB/s")
    print(f"  masked   (+ mask_message, 50 values)  {mask:7.3f} s  {total_mb / mask:7.0f} MB/s")
    print(f"  ratio masked / unmasked               {mask / plain:7.3f}  (target < 1.3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--raw-mb", type=float, default=16.0, help="text per engine, raw mask")
    args = parser.parse_args()

    rng = random.Random(42)
    values = fifty_values(rng)
    masker = Masker(values)
    print(f"{len(values)} values, {len(masker._placeholders)} forms")
    for label, bar in (
        ("ASCII output ('#' progress bars)", "#"),
        ("non-ASCII output ('█' bars)", "█"),
    ):
        chunks = make_chunks(random.Random(7), list(values.values()), bar)
        compare(label, masker, chunks, args.mb, args.repeat)

    # raw mask() throughput per engine
    owner: dict[str, str] = {}
    for name in sorted(values):
        for form in forms_for(values[name]):
            owner.setdefault(form, name)
    forms = sorted(owner)
    holder = {form: placeholder(owner[form]) for form in forms}

    ac_str = ahocorasick_rs.AhoCorasick(
        forms,
        matchkind=ahocorasick_rs.MATCHKIND_LEFTMOST_LONGEST,
        implementation=ahocorasick_rs.Implementation.DFA,
    )

    def rs_str_mask(text: str) -> str:
        found = ac_str.find_matches_as_indexes(text)
        if not found:
            return text
        parts, last = [], 0
        for index, start, end in found:
            parts += [text[last:start], holder[forms[index]]]
            last = end
        return "".join(parts) + text[last:]

    def pyaho_mask(text: str) -> str:
        parts, last = [], 0
        for end, form in automaton.iter_long(text):
            start = end - len(form) + 1
            parts += [text[last:start], holder[form]]
            last = end + 1
        return "".join(parts) + text[last:] if parts else text

    if ahocorasick is not None:
        automaton = ahocorasick.Automaton()
        for form in forms:
            automaton.add_word(form, form)
        automaton.make_automaton()

    regex = re.compile(_trie_regex(forms))

    def re_mask(text: str) -> str:
        return regex.sub(lambda m: holder[m.group(0)], text)

    engines: list[tuple[str, Callable[[str], str]]] = [
        ("Masker: ahocorasick-rs bytes + 64-form SIMD shards", masker.mask),
        ("ahocorasick-rs, one DFA on str (no prefilter)", rs_str_mask),
        ("pyahocorasick iter_long", pyaho_mask),
        ("re, trie-shaped alternation", re_mask),
    ]
    if ahocorasick is None:
        engines.pop(2)
    texts = chunks[: max(1, int(args.raw_mb * 1e6 / CHUNK))]  # the non-ASCII mix
    text_mb = sum(len(t) for t in texts) / 1e6
    expected = [masker.mask(t) for t in texts]
    print(f"raw mask(text) throughput, {text_mb:.0f} MB of 4 KB texts:")
    for label, fn in engines:
        same = [fn(t) for t in texts] == expected
        seconds = best(lambda fn=fn: [fn(t) for t in texts], 1 if fn is re_mask else args.repeat)
        note = "" if same else "  (OUTPUT DIFFERS)"
        print(f"  {label:52s} {text_mb / seconds:8.0f} MB/s{note}")


if __name__ == "__main__":
    main()
