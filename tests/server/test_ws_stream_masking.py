"""Values split across stream messages, and binary buffers, on the kernel websocket.

Issue 11, cases 1 and 8, end to end: a real Jupyter Server with the extension, a real
OpenBao holding the value, a real qsecure kernel and a websocket client on both
protocols. Each test collects everything the browser receives for one execution (up
to its ``execute_reply`` and ``idle``), joins the stream texts as JupyterLab's output
area does, and checks that no value (nor, once the engine masks fragments, any run of
12 characters of it) is shown, and that everything else arrives complete and in order:
the joined text must be exactly the server's ``masker.mask`` of what the kernel wrote.

The pauses inside the kernel code are the scenario (output written in parts, with
time between them), not synchronisation: every wait is on a message.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any

import ahocorasick_rs
import pytest
from server_helpers import KernelClient, KernelSession

from jupyter_qsecure.testing.values import Hidden, HiddenList
from jupyter_qsecure.vault.masking import Masker

FRAGMENT = 12  # the engine's default fragment length (issue 11, case 2)
PAUSE = 0.3  # seconds between two writes: longer than any timer a carry-over could use


def service_account_json() -> str:
    """A service-account JSON with a PEM key, about 2,000 characters (random key body)."""
    body = base64.b64encode(secrets.token_bytes(1270)).decode()
    pem = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "qsecure-test",
            "private_key_id": secrets.token_hex(20),
            "private_key": f"-----BEGIN PRIVATE KEY-----\n{pem}\n-----END PRIVATE KEY-----\n",  # pragma: allowlist secret
            "client_email": "runner@qsecure-test.iam.example.com",
        }
    )


@pytest.fixture(scope="module", params=[32, 300, 2000], ids=lambda n: f"value{n}")
def fake_value(request: pytest.FixtureRequest) -> str:
    """Overrides the conftest's value: random, 32 and 300 characters, or a ~2,000-character JSON."""
    length: int = request.param
    if length == 2000:
        return Hidden(service_account_json())
    return Hidden(secrets.token_urlsafe(length)[:length])


@pytest.fixture
def jp_server_config(ibm_server_config: dict[str, Any]) -> dict[str, Any]:
    return ibm_server_config


PRELUDE = "import sys, time\nfrom jupyter_qsecure import secrets\nv = secrets.get('ibm')\n"


# ---- what the browser shows -------------------------------------------------------------
def stream_outputs(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(name, text) of each stream output, joined as JupyterLab's output area joins them.

    Consecutive messages of one stream name become one output; outputs of stdout and
    stderr are shown next to each other. (Stricter than the browser: a display output
    in between does not separate two stream messages here.)
    """
    outputs: list[tuple[str, str]] = []
    for msg in messages:
        if msg["header"]["msg_type"] != "stream":
            continue
        name, text = msg["content"]["name"], msg["content"]["text"]
        if outputs and outputs[-1][0] == name:
            outputs[-1] = (name, outputs[-1][1] + text)
        else:
            outputs.append((name, text))
    return outputs


def shown(messages: list[dict[str, Any]]) -> str:
    """All stream text of one execution, in the order the browser shows it."""
    return "".join(text for _, text in stream_outputs(messages))


def expect(condition: bool, message: str) -> None:
    """An assert on received text whose failure shows ``message``, never the text.

    (pytest's assert rewriting would print the operands, which may hold the value.)
    """
    if not condition:
        raise AssertionError(message)


def server_masker(jp_serverapp: Any) -> Any:
    masker = jp_serverapp.web_app.settings["qsecure_credentials"].masker()
    assert masker is not None, "the server masks nothing: no value was injected"
    return masker


def masks_fragments(masker: Any, value: str) -> bool:
    """Whether the engine masks runs of a value on their own (issue 11, case 2)."""
    run = value[: 2 * FRAGMENT]
    return bool(masker.mask(run) != run)


def leaks(text: str, value: str, masker: Any) -> str | None:
    """What of ``value`` shows in ``text`` (a description without the value), or None.

    Placeholders are cut out first: their labels (``ibm.private_key``) may spell a key
    name of the document they stand for, which is no leak.
    """
    text = re.sub(r"«secret:[^«»]*»", "\0", text)
    if value in text:
        return f"the whole value ({len(value)} characters)"
    if masks_fragments(masker, value):
        grams = sorted({value[i : i + FRAGMENT] for i in range(len(value) - FRAGMENT + 1)})
        hit = ahocorasick_rs.AhoCorasick(grams).find_matches_as_indexes(text)
        if hit:
            return f"{len(hit)} run(s) of {FRAGMENT} characters of the value, first at {hit[0][1]}"
    return None


def assert_shown_exactly(messages: list[dict[str, Any]], written: str, masker: Any) -> str:
    """The browser shows ``masker.mask(written)``: no value, nothing lost, nothing moved.

    Pass ``written`` as :class:`Hidden`: it holds the value.
    """
    text = shown(messages)
    expected = masker.mask(written)
    if text != expected:  # describe without showing either text: they may hold the value
        at = next(
            (i for i, (a, b) in enumerate(zip(text, expected, strict=False)) if a != b),
            min(len(text), len(expected)),
        )
        raise AssertionError(
            f"the browser shows {len(text)} characters of stream text, expected "
            f"{len(expected)} (the masked output); they first differ at {at}"
        )
    return text


def assert_no_leak(messages: list[dict[str, Any]], value: str, masker: Any) -> None:
    text = shown(messages)
    leak = leaks(text, value, masker)
    assert leak is None, f"stream text shown by the browser holds {leak}"
    # ensure_ascii=False keeps placeholders as they are, so their labels are cut out
    everything = json.dumps([(m["content"], m["metadata"]) for m in messages], ensure_ascii=False)
    leak = leaks(everything, Hidden(json.dumps(value)[1:-1]), masker)
    assert leak is None, f"a message's content or metadata holds {leak}"


async def execute(client: KernelClient, code: str) -> list[dict[str, Any]]:
    """Everything the browser receives for one execution (hidden from failure reports)."""
    messages = HiddenList(await client.execute(code, timeout=120))
    errors = [m["content"]["ename"] for m in messages if m["header"]["msg_type"] == "error"]
    assert not errors, errors
    return messages


@dataclass
class Browser:
    """What the browser receives from a qsecure kernel holding ``value`` as ``ibm``."""

    session: KernelSession
    app: Any
    value: str

    async def run(self, code: str) -> tuple[list[dict[str, Any]], Any]:
        """Everything received for one execution of ``PRELUDE + code``, checked to hold no
        run of the value, and the server's masker."""
        messages = await execute(await self.session.client(), PRELUDE + code)
        masker = server_masker(self.app)
        assert_no_leak(messages, self.value, masker)
        return messages, masker


@pytest.fixture
def browser(kernel_session: KernelSession, jp_serverapp: Any, fake_value: str) -> Browser:
    return Browser(kernel_session, jp_serverapp, fake_value)


# ---- tests --------------------------------------------------------------------------------
async def test_value_written_in_two_parts_with_a_pause(browser: Browser, fake_value: str) -> None:
    half = len(fake_value) // 2
    messages, masker = await browser.run(
        "print('start')\n"
        f"sys.stdout.write('before ' + v[:{half}]); sys.stdout.flush()\n"
        f"time.sleep({PAUSE})\n"
        f"sys.stdout.write(v[{half}:] + ' after\\n'); sys.stdout.flush()\n"
        "print('end')\n",
    )
    text = assert_shown_exactly(
        messages, Hidden(f"start\nbefore {fake_value} after\nend\n"), masker
    )
    expect(text == "start\nbefore «secret:ibm» after\nend\n", "one placeholder, in place")


async def test_plain_text_after_a_held_prefix_keeps_its_place(
    browser: Browser, fake_value: str
) -> None:
    # The second write holds no part of the value: it must still come after the held
    # prefix (which the carry-over releases masked with it), not overtake it.
    messages, masker = await browser.run(
        "sys.stdout.write('before ' + v[:20]); sys.stdout.flush()\n"
        f"time.sleep({PAUSE})\n"
        "sys.stdout.write(' after\\n'); sys.stdout.flush()\n"
    )
    assert_shown_exactly(messages, Hidden(f"before {fake_value[:20]} after\n"), masker)


async def test_long_shell_loop_without_pauses(browser: Browser, fake_value: str) -> None:
    count = max(2000, 2_000_000 // len(fake_value))  # enough output for many stream messages
    messages, masker = await browser.run(
        "import os\nos.environ['QSECURE_TEST_V'] = v\nprint('start')\n"
        # (IPython runs `!` in a pseudo-terminal: the final newline arrives as \r\n)
        f"!for i in $(seq {count}); do printf '%s' \"$QSECURE_TEST_V\"; done; echo\n"
        "print('end')\n",
    )
    assert sum(m["header"]["msg_type"] == "stream" for m in messages) > 2
    text = assert_shown_exactly(messages, Hidden(f"start\n{fake_value * count}\r\nend\n"), masker)
    expect(text.count("«secret:ibm»") == count, "one placeholder per value written")


async def test_halves_on_stdout_and_stderr(browser: Browser, fake_value: str) -> None:
    third = len(fake_value) // 3
    messages, masker = await browser.run(
        "print('start')\n"
        # out | err, with a pause
        f"sys.stdout.write('one ' + v[:{third}]); sys.stdout.flush()\n"
        f"time.sleep({PAUSE})\n"
        f"sys.stderr.write(v[{third}:] + ' two\\n'); sys.stderr.flush()\n"
        # err | out | err: the held tail spans both streams
        f"sys.stderr.write('three ' + v[:{third}]); sys.stderr.flush()\n"
        f"sys.stdout.write(v[{third}:{2 * third}]); sys.stdout.flush()\n"
        f"time.sleep({PAUSE})\n"
        f"sys.stderr.write(v[{2 * third}:] + ' four\\n'); sys.stderr.flush()\n"
        "print('end')\n",
    )
    written = Hidden(f"start\none {fake_value} two\nthree {fake_value} four\nend\n")
    assert_shown_exactly(messages, written, masker)
    outputs = stream_outputs(messages)
    # each stream keeps its own text, in order
    err = "".join(text for name, text in outputs if name == "stderr")
    out = "".join(text for name, text in outputs if name == "stdout")
    expect(out.startswith("start\none ") and out.endswith("end\n"), "stdout keeps its text")
    expect(err.startswith(" two\nthree ") and err.endswith(" four\n"), "stderr keeps its text")
    expect(
        outputs[0] == ("stdout", "start\none «secret:ibm»"),
        "a value across both streams is shown once, where it starts",
    )


async def test_half_a_value_is_the_last_output_before_idle(
    browser: Browser, fake_value: str
) -> None:
    half = len(fake_value) // 2
    messages, masker = await browser.run(
        f"print('start')\nsys.stdout.write('before ' + v[:{half}]); sys.stdout.flush()\n",
    )
    assert_shown_exactly(messages, Hidden(f"start\nbefore {fake_value[:half]}"), masker)
    # released before the kernel's idle, after which the browser drops the cell's output
    # (ipykernel may send the execute_reply first: it does not end the stream)
    kinds = [(m["header"]["msg_type"], m["content"].get("execution_state")) for m in messages]
    last_stream = max(i for i, (kind, _) in enumerate(kinds) if kind == "stream")
    assert last_stream < kinds.index(("status", "idle")), kinds
    # the next execution starts clean
    messages = await execute(await browser.session.client(), "print('next')\n")
    expect(shown(messages) == "next\n", "nothing held over into the next execution")


async def test_rest_of_a_value_in_the_kernels_last_flush(browser: Browser, fake_value: str) -> None:
    """The cell ends with the value's second half unflushed: the kernel's own last flush.

    ipykernel flushes it before sending the execute_reply, but the reply travels on the
    shell channel and may reach the server first: only idle (iopub) ends the stream.
    """
    half = len(fake_value) // 2
    messages, masker = await browser.run(
        f"sys.stdout.write('before ' + v[:{half}]); sys.stdout.flush()\n"
        f"time.sleep({PAUSE})\n"
        f"sys.stdout.write(v[{half}:] + ' after')\n",
    )
    text = assert_shown_exactly(messages, Hidden(f"before {fake_value} after"), masker)
    expect(text == "before «secret:ibm» after", "one placeholder, in place")


async def test_binary_buffers_of_comm_and_display_messages(
    browser: Browser, fake_value: str
) -> None:
    raw = fake_value.encode()
    sent = [
        b"pre:" + raw + b":post",
        base64.b64encode(raw),
        raw.hex().encode(),
        raw + raw,
        b"clean bytes \x00\xff",
    ]
    messages, masker = await browser.run(
        "import base64\nfrom comm import create_comm\nraw = v.encode()\n"
        "c = create_comm(target_name='qsecure.test', data={'n': 1},\n"
        "                buffers=[b'pre:' + raw + b':post', base64.b64encode(raw)])\n"
        "c.send(data={'n': 2}, buffers=[raw.hex().encode(), memoryview(raw + raw)])\n"
        "pub = get_ipython().display_pub\n"
        "pub.session.send(pub.pub_socket, 'display_data',\n"
        "                 {'data': {'text/plain': 'with buffers'}, 'metadata': {}},\n"
        "                 parent=pub.parent_header, buffers=[b'clean bytes \\x00\\xff'])\n"
        "print('done')\n",
    )
    received = [b for m in messages for b in m["buffers"]]
    assert len(received) == len(sent), [m["header"]["msg_type"] for m in messages]
    assert [len(b) for b in received] == [len(b) for b in sent]  # same-length overwrite
    for got in received:
        as_text = got.decode("latin-1")
        leak = leaks(as_text, fake_value, masker)
        assert leak is None, f"a binary buffer holds {leak}"
        expect(base64.b64encode(raw).decode()[:-4] not in as_text, "a buffer holds its base64")
        expect(raw.hex() not in as_text, "a binary buffer holds the value in hex")
    expect(received[0].startswith(b"pre:") and received[0].endswith(b":post"), "bytes around it")
    expect(received[4] == sent[4], "bytes without a value pass unchanged")
    expect(shown(messages) == "done\n", "the stream text")


async def test_a_value_in_a_stream_messages_metadata(browser: Browser) -> None:
    """Stream messages skip metadata masking when it is empty: a value in it is masked."""
    messages, _ = await browser.run(
        "pub = get_ipython().display_pub\n"
        "pub.session.send(pub.pub_socket, 'stream', {'name': 'stdout', 'text': 'tagged\\n'},\n"
        "                 parent=pub.parent_header, metadata={'note': v})\n"
        "print('done')\n",
    )
    tagged = [m for m in messages if m["content"].get("text") == "tagged\n"]
    expect(len(tagged) == 1, "the stream message with metadata arrives once")
    expect(tagged[0]["metadata"] == {"note": "«secret:ibm»"}, "its metadata is masked")
    expect(shown(messages) == "tagged\ndone\n", "the stream text")


async def test_non_ascii_stream_text_is_screened_in_the_frame_it_came_in(
    browser: Browser, fake_value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server screens plain stream text in the content frame the kernel sent (UTF-8
    # JSON, on both protocols) rather than encoding the decoded text again; what the
    # browser shows is the same.
    seen: list[tuple[bool, type, bool]] = []
    passes = Masker.passes

    def recording(self: Masker, text: str, raw: bytes | str | None = None) -> bool:
        answer = passes(self, text, raw)
        seen.append((text.isascii(), type(raw), answer))
        return answer

    monkeypatch.setattr(Masker, "passes", recording)
    messages, masker = await browser.run(
        "for i in range(3):\n"
        "    print('█' * (i + 1), f'{i * 50}%'); sys.stdout.flush()\n"
        f"    time.sleep({PAUSE})\n"
        "print('█ token=' + v + ' █'); sys.stdout.flush()\n"
        f"time.sleep({PAUSE})\n"
        "print('█ done')\n"
    )
    written = "█ 0%\n██ 50%\n███ 100%\n█ token=" + fake_value + " █\n█ done\n"
    text = assert_shown_exactly(messages, Hidden(written), masker)
    expect(text.count("«secret:ibm") >= 1, "the value is masked")
    expect(any(not a and t is bytes for a, t, _ in seen), "non-ASCII text came with its frame")
    if set(fake_value) <= set(string.ascii_letters + string.digits + "-_"):
        # (the service-account JSON's newlines and quotes are escaped in JSON: not screened
        # there, and every line ends in a character the value continues from)
        expect((False, bytes, True) in seen, "plain non-ASCII text passed on its frame")
