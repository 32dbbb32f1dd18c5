"""Masking of files and terminal output the server shows, and the ledger's exposure notes.

PYTEST_DONT_REWRITE: a failing assertion must not print the (fake) values it compares.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import secrets
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_qsecure.config import QSecure
from jupyter_qsecure.ledger import EntryFilter, Ledger
from jupyter_qsecure.vault import exposure
from jupyter_qsecure.vault.exposure import (
    KIND,
    ExposureLog,
    FileMasker,
    TerminalMasking,
    mask_bytes,
    mask_file_bytes,
    mask_model,
    mask_text,
)
from jupyter_qsecure.vault.masking import Masker, placeholder

P = placeholder


@pytest.fixture(scope="module")
def values() -> dict[str, str]:
    """Random values of 32, 300 and 2,000 characters, made at run time."""
    return {
        "short": secrets.token_urlsafe(24),
        "medium": secrets.token_urlsafe(225),
        "long": secrets.token_urlsafe(1500),
    }


@pytest.fixture(scope="module")
def masker(values: dict[str, str]) -> Masker:
    return Masker(values)


def assert_no_value(data: str | bytes, values: dict[str, str]) -> None:
    for value in values.values():
        needle: Any = value.encode() if isinstance(data, bytes) else value
        assert needle not in data, "an injected value survived masking"


def log_text(values: dict[str, str], seed: int, size: int = 200_000) -> str:
    """Log-like text with every value several times, at random offsets (some non-ASCII)."""
    rng = random.Random(seed)
    lines: list[str] = []
    length = 0
    while length < size:
        choice = rng.random()
        if choice < 0.05:
            line = f"connecting with token={rng.choice(list(values.values()))} é"
        elif choice < 0.08:
            line = "prefix " + rng.choice(list(values.values()))[: rng.randint(1, 31)]
        else:
            line = f"step {rng.randint(0, 10**6)} loss={rng.random():.4f} ✓"
        lines.append(line)
        length += len(line) + 1
    return "\n".join(lines)


def chunks(data: bytes, rng: random.Random, largest: int) -> Iterator[bytes]:
    pos = 0
    while pos < len(data):
        step = rng.randint(1, largest)
        yield data[pos : pos + step]
        pos += step


def stream(
    masker: Masker, data: bytes, rng: random.Random, largest: int
) -> tuple[bytes, FileMasker]:
    files = FileMasker(masker)
    out = b"".join(files.feed(chunk) for chunk in chunks(data, rng, largest)) + files.finish()
    return out, files


# --- text files ------------------------------------------------------------------------


@pytest.mark.parametrize("largest", [1, 3, 50, 4096, 70_000])
def test_text_file_in_chunks_is_masked_as_if_read_whole(
    masker: Masker, values: dict[str, str], largest: int
) -> None:
    text = log_text(values, seed=largest)
    files = FileMasker(masker)
    rng = random.Random(largest)
    out = b"".join(files.feed(c) for c in chunks(text.encode(), rng, largest)) + files.finish()
    assert out.decode() == masker.mask(text)
    assert_no_value(out, values)
    assert not files.binary
    assert files.names == {"short", "medium", "long"}


def test_multibyte_value_cut_inside_a_character(values: dict[str, str]) -> None:
    value = "ümlaut-" + secrets.token_urlsafe(30) + "-€"
    masker = Masker({"uni": value})
    data = ("before " + value + " after").encode()
    for cut in range(1, len(data)):
        files = FileMasker(masker)
        out = files.feed(data[:cut]) + files.feed(data[cut:]) + files.finish()
        assert out.decode() == f"before {P('uni')} after"


def test_held_tail_that_is_not_a_value_is_released_unchanged(
    masker: Masker, values: dict[str, str]
) -> None:
    files = FileMasker(masker)
    almost = values["medium"][:8]  # shorter than a masked fragment (12): not a value yet
    out = files.feed(f"x {almost}".encode())
    assert len(out) < len(f"x {almost}")  # a possible value is held back
    out += files.feed(b"!\n") + files.finish()
    assert out == f"x {almost}!\n".encode()
    assert files.names == set()


def test_file_without_values_is_unchanged(masker: Masker) -> None:
    data = b"nothing here\n" * 1000
    out, names = mask_file_bytes(data, masker)
    assert out == data and names == set()


# --- binary files ----------------------------------------------------------------------


@pytest.mark.parametrize("largest", [1, 7, 4096, 100_000])
def test_binary_file_keeps_its_length_and_loses_the_values(
    masker: Masker, values: dict[str, str], largest: int
) -> None:
    rng = random.Random(largest)
    parts = [b"\x89PNG\r\n\x1a\n\xff\xfe"]
    for value in values.values():
        parts += [rng.randbytes(rng.randint(0, 5000)), value.encode()]
    parts.append(rng.randbytes(300))
    data = b"".join(parts)
    out, files = stream(masker, data, rng, largest)
    assert files.binary and len(out) == len(data)
    assert_no_value(out, values)
    for value in values.values():
        assert b"*" * len(value) in out
    assert files.names == {"short", "medium", "long"}
    assert out == mask_file_bytes(data, masker)[0]  # chunking changes nothing


def test_text_that_turns_binary_later_leaks_nothing(masker: Masker, values: dict[str, str]) -> None:
    data = log_text(values, seed=1, size=20_000).encode() + b"\xff\x00" + values["long"].encode()
    out, files = stream(masker, data, random.Random(2), 3000)
    assert files.binary
    assert_no_value(out, values)
    assert P("short").encode() in out  # the text part before the binary byte: placeholders
    assert out.endswith(b"*" * len(values["long"]))


def test_mask_bytes_fallback_overwrites_in_place(values: dict[str, str]) -> None:
    value = "clé-" + secrets.token_urlsafe(20)
    masker = Masker({"k": value})
    data = b"\xff\xfe" + "é".encode() + value.encode() + b"\x00" + value.encode() + b"tail"
    out = exposure._mask_bytes_by_spans(data, masker)
    assert len(out) == len(data)
    assert value.encode() not in out
    assert out == data.replace(value.encode(), b"*" * len(value.encode()))
    assert mask_bytes(b"plain", masker) == b"plain"


# --- contents models -------------------------------------------------------------------


def model(kind: str, fmt: str | None, content: Any, name: str = "run.log") -> dict[str, Any]:
    return {
        "name": name,
        "path": f"sub/{name}",
        "type": kind,
        "format": fmt,
        "mimetype": "text/plain" if kind == "file" else None,
        "content": content,
        "last_modified": datetime(2024, 1, 2, tzinfo=timezone.utc),
        "created": datetime(2024, 1, 2, tzinfo=timezone.utc),
        "size": 10,
        "writable": True,
        "hash": None,
        "hash_algorithm": None,
    }


def test_text_model(masker: Masker, values: dict[str, str]) -> None:
    text = f"token={values['short']}\nkey: {values['long']}\n"
    out, names = mask_model(model("file", "text", text), masker)
    assert out["content"] == f"token={P('short')}\nkey: {P('long')}\n"
    assert names == {"short", "long"}
    assert out["last_modified"] == datetime(2024, 1, 2, tzinfo=timezone.utc)


def test_a_requested_hash_is_of_what_is_shown(masker: Masker, values: dict[str, str]) -> None:
    raw = values["medium"] + "\n"  # a file holding just the value: its digest is the value's
    requested = model("file", "text", raw)
    requested.update(hash=hashlib.sha256(raw.encode()).hexdigest(), hash_algorithm="sha256")
    out, _ = mask_model(requested, masker)
    assert out["hash"] == hashlib.sha256(out["content"].encode()).hexdigest()
    encoded = model("file", "base64", base64.b64encode(b"\xff" + raw.encode()).decode())
    encoded.update(hash="0" * 64, hash_algorithm="sha256")
    out, _ = mask_model(encoded, masker)
    assert out["hash"] == hashlib.sha256(base64.b64decode(out["content"])).hexdigest()
    clean = model("file", "text", "nothing\n")
    clean.update(hash="kept", hash_algorithm="sha256")
    assert mask_model(clean, masker)[0]["hash"] == "kept"


def test_base64_model_of_a_text_file_shows_placeholders(
    masker: Masker, values: dict[str, str]
) -> None:
    raw = f"a,b\n1,{values['medium']}\n".encode()
    out, names = mask_model(model("file", "base64", base64.b64encode(raw).decode()), masker)
    assert base64.b64decode(out["content"]).decode() == f"a,b\n1,{P('medium')}\n"
    assert names == {"medium"}
    assert_no_value(json.dumps(out, default=str), values)


def test_base64_model_of_a_binary_file_keeps_its_length(
    masker: Masker, values: dict[str, str]
) -> None:
    raw = b"\x00\xff" + values["short"].encode() + b"\x01"
    out, names = mask_model(model("file", "base64", base64.b64encode(raw).decode()), masker)
    decoded = base64.b64decode(out["content"])
    assert len(decoded) == len(raw) and values["short"].encode() not in decoded
    assert names == {"short"}
    clean, none = mask_model(model("file", "base64", base64.b64encode(b"\x00ok").decode()), masker)
    assert base64.b64decode(clean["content"]) == b"\x00ok" and none == set()


def test_notebook_model_is_masked_everywhere_and_stays_a_notebook(
    masker: Masker, values: dict[str, str]
) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "print(token)",
            outputs=[
                nbformat.v4.new_output("stream", name="stdout", text=values["long"] + "\n"),
                nbformat.v4.new_output(
                    "execute_result",
                    data={"text/plain": repr(values["medium"])},
                    execution_count=1,
                ),
            ],
        )
    )
    nb.metadata["note"] = values["short"]
    out, names = mask_model(model("notebook", "json", nb, name="nb.ipynb"), masker)
    assert isinstance(out["content"], nbformat.NotebookNode)
    nbformat.validate(out["content"])
    assert out["content"].cells[0].outputs[0].text == P("long") + "\n"
    assert names == {"short", "medium", "long"}
    assert_no_value(json.dumps(out, default=str), values)


def test_a_clean_notebook_model_is_served_as_it_is(masker: Masker) -> None:
    # Opening a large notebook while secrets are registered: one screen pass over all
    # its strings, no copy of the model (the plain server's object goes out).
    nb = nbformat.v4.new_notebook()
    nb.cells.extend(nbformat.v4.new_code_cell(f"x = {i}\nprint(x)") for i in range(50))
    requested = model("notebook", "json", nb, name="nb.ipynb")
    out, names = mask_model(requested, masker)
    assert out is requested and out["content"] is nb and names == set()


@pytest.mark.parametrize("seed", range(40))
def test_the_screen_first_path_masks_what_the_walk_masks(
    masker: Masker, values: dict[str, str], seed: int
) -> None:
    # A value, a fragment of one (12+ characters) or a near miss, in one string of a
    # notebook: a source, an output, a metadata key or value, or a nested list.
    rng = random.Random(seed)
    value = rng.choice(list(values.values()))
    start = rng.randrange(0, len(value) - 20)
    planted = rng.choice(
        [value, value[start : start + rng.randint(12, 20)], value[start : start + 11], "clean"]
    )
    nb = nbformat.v4.new_notebook()
    nb.cells.extend(nbformat.v4.new_code_cell(f"y = {i}") for i in range(5))
    cell = rng.choice(nb.cells)
    place = rng.randrange(4)
    if place == 0:
        cell.source = f"token = '{planted}'"
    elif place == 1:
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"é {planted}\n")]
    elif place == 2:
        cell.metadata[f"k{planted}"] = "v"
    else:
        nb.metadata["deep"] = [{"a": ["x", f"{planted}!"]}]
    out, names = mask_model(model("notebook", "json", nb, name="nb.ipynb"), masker)
    walked = exposure._mask_value(  # what the full walk shows, string by string
        json.loads(json.dumps(nb)), lambda text: masker.mask(text)
    )
    assert json.loads(json.dumps(out["content"])) == walked
    assert bool(names) is (planted in (value,) or 12 <= len(planted) < len(value))


def test_directory_listing_masks_entry_names(masker: Masker, values: dict[str, str]) -> None:
    entry = model("file", None, None, name=values["short"] + ".txt")
    listing = model("directory", "json", [entry], name="sub")
    out, names = mask_model(listing, masker)
    assert out["content"][0]["name"] == P("short") + ".txt"
    assert names == {"short"}


def test_mask_text_names_only_what_it_replaced(masker: Masker, values: dict[str, str]) -> None:
    assert mask_text(f"already {P('short')}", masker) == (f"already {P('short')}", set())
    assert mask_text(values["short"], masker) == (P("short"), {"short"})


# --- terminals -------------------------------------------------------------------------


def test_terminal_value_split_across_reads_is_masked(
    masker: Masker, values: dict[str, str]
) -> None:
    term = TerminalMasking(lambda: masker)
    text = f"$ cat run.log\r\ntoken={values['long']}\r\n$ "
    rng = random.Random(5)
    shown = "".join(term.output(c.decode()) for c in chunks(text.encode("ascii"), rng, 900))
    shown += term.release()
    assert shown == masker.mask(text)
    assert_no_value(shown, values)


def test_terminal_releases_a_held_prefix_when_the_user_types(
    masker: Masker, values: dict[str, str]
) -> None:
    term = TerminalMasking(lambda: masker)
    prefix = values["medium"][:8]  # shorter than a masked fragment (12)
    shown = term.output("password: " + prefix)
    assert shown == "password: "  # held: it may still become a value
    assert term.release() == prefix  # the user typed: it goes out, it was no value
    assert term.release() == ""


def test_terminal_follows_the_servers_masker(values: dict[str, str]) -> None:
    current: list[Masker | None] = [None]
    term = TerminalMasking(lambda: current[0])
    assert term.output(values["short"]) == values["short"]  # nothing injected yet
    current[0] = Masker({"short": values["short"]})
    assert term.output("a " + values["short"][:10]) == "a "
    current[0] = Masker({"short": values["short"], "long": values["long"]})
    # a new masker: the old one's held tail goes out first, masked by the old masker
    assert term.output(values["long"] + "\n") == values["short"][:10] + P("long") + "\n"
    current[0] = None
    assert term.output("plain") == "plain"


# --- the ledger ------------------------------------------------------------------------


@pytest.fixture
def ledger(tmp_path: Path, clean_env: None) -> Iterator[Ledger]:
    settings = QSecure(data_dir=str(tmp_path / "qsecure"))
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", settings=settings) as opened:
        yield opened


def exposures(ledger: Ledger) -> list[dict[str, Any]]:
    return [e.body for e in ledger.entries(EntryFilter(kinds=[KIND]))]


def test_one_entry_per_file_version(
    ledger: Ledger, masker: Masker, values: dict[str, str], tmp_path: Path
) -> None:
    log = ExposureLog(ledger)
    when = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    assert log.record("run.log", when, 100, {"short~2"}, via="contents", user="alice")
    assert not log.record("run.log", when, 100, {"short"}, via="files", user="alice")
    assert not log.record("run.log", when.isoformat(), 100, {"short"}, via="nbconvert", user="b")
    assert not log.record("run.log", when, 100, set(), via="files", user="alice")
    # the same version with a secret not yet named, then a new version
    assert log.record("run.log", when, 100, {"long"}, via="files", user="alice")
    assert log.record("run.log", when, 120, {"short"}, via="files", user="alice")
    bodies = exposures(ledger)
    assert [b["secret_names"] for b in bodies] == [["short"], ["long", "short"], ["short"]]
    assert bodies[0] == {
        "path": "run.log",
        "modified": when.isoformat(),
        "size": 100,
        "secret_names": ["short"],
        "via": "contents",
    }
    assert [e.actor for e in ledger.entries(EntryFilter(kinds=[KIND]))][0] == "user:alice"
    # a restarted server remembers what the ledger holds
    again = ExposureLog(ledger)
    assert not again.record("run.log", when, 120, {"short"}, via="files", user="alice")
    assert len(exposures(ledger)) == 3


def test_entry_never_holds_a_value(ledger: Ledger, masker: Masker, values: dict[str, str]) -> None:
    log = ExposureLog(ledger)
    path = f"out/{values['short']}.csv"  # a file named after a value
    assert log.record(path, None, None, {"short"}, via="files", user="u", masker=masker)
    entries = json.dumps([e.body for e in ledger.entries()])
    assert_no_value(entries, values)
    assert exposures(ledger)[0]["path"] == f"out/{P('short')}.csv"


def test_failed_append_is_retried(ledger: Ledger) -> None:
    class Failing:
        fail = True

        def append(self, kind: str, body: dict[str, Any], *, actor: str | None = None) -> Any:
            if self.fail:
                raise OSError("disk full")
            return ledger.append(kind, body, actor=actor)

        def entries(self, where: Any = None) -> list[Any]:
            return ledger.entries(where)

    failing = Failing()
    log = ExposureLog(failing)
    with pytest.raises(OSError):
        log.record("a.log", None, 1, {"x"}, via="files", user="u")
    failing.fail = False
    assert log.record("a.log", None, 1, {"x"}, via="files", user="u")
    assert len(exposures(ledger)) == 1
