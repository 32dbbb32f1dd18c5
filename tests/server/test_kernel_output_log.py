"""Issue 11, case 5: what a kernel writes to its own stdout/stderr reaches the server's
log only masked.

ipykernel writes every byte of descriptor-level output (``os.system``, ``subprocess``,
C extensions) raw to the kernel's original stdout/stderr, which it inherited from the
server: the server's log. Through a real server, OpenBao and kernel (the qsecure one
and the plain ``python3`` one, which gets credentials too), a cell prints injected
values many times by every such route; the server's log (the records of the logger
kernel output goes to, and file descriptors 1 and 2 of this process, which the
kernels inherited) must hold placeholders only, while the browser still gets the
masked output.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from typing import Any

import pytest
from server_fakes import shows, sized_values
from server_helpers import V1, Build, connect, start, stdout_of

from jupyter_qsecure.vault.masking import placeholder
from jupyter_qsecure.vault.registry import ValueRegistry
from jupyter_qsecure.vault.registry_masking import RegistryMasking
from jupyter_qsecure_server.kernel_output import KernelPipe

COPIES = 300
END = "end-of-descriptor-output"


@pytest.fixture(scope="module")
def values() -> dict[str, str]:
    return sized_values()


@pytest.fixture
def vault_secrets(values: dict[str, str]) -> dict[str, str]:
    return {name: f"secret/qsecure/dev/{name}#value" for name in values}


@pytest.fixture
def jp_server_config(
    ibm_server_config: dict[str, Any], openbao_client: Any, values: dict[str, str]
) -> dict[str, Any]:
    for name, value in values.items():
        openbao_client.secrets.kv.v2.create_or_update_secret(
            path=f"qsecure/dev/{name}", secret={"value": value}, mount_point="secret"
        )
    return ibm_server_config


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def cell(names: list[str]) -> str:
    return (
        "import os, subprocess, sys\n"
        "from jupyter_qsecure import secrets\n"
        # fileno() of ipykernel's stdout is the kernel's original stdout: this bypasses the
        # browser and goes to the server's log only. (First: a direct write into a stream
        # that ipykernel is still echoing into can cut a value; see kernel_output.)
        f"for name in {names!r}:\n"
        "    subprocess.run(['printf', 'direct %s\\n', secrets.get(name)], stdout=sys.stdout)\n"
        f"for name in {names!r}:\n"
        "    os.environ['V'] = secrets.get(name)\n"
        f'    os.system(\'for i in $(seq {COPIES}); do printf "%s\\\\n" "$V"; done\')\n'
        "    subprocess.run(['printf', '%s\\n', os.environ['V']], check=True)\n"
        "    subprocess.run(['sh', '-c', 'printf \"%s\\\\n\" \"$V\" >&2'], check=True)\n"
        "    os.write(2, ('fd2 ' + os.environ['V'] + '\\n').encode())\n"
        "del os.environ['V']\n"
        f"os.system('echo {END}')\n"
        # between newlines (in no value): descriptor output cut mid-value can have this
        # print land in the cut, and a fragment mask then takes any neighbouring character
        # that happens to continue the value ("d" of "done" seen as the value's next one)
        "print('\\ndone')\n"
    )


async def until_shown(client: Any, messages: list[dict[str, Any]], text: str) -> None:
    """Read on until ``text`` reached the browser: ipykernel has then read (and echoed)
    everything written to the kernel's descriptors before it."""
    while text not in stdout_of(messages):
        raw = await asyncio.wait_for(client.ws.read_message(), 60)
        assert raw is not None, "websocket closed"
        messages.append(client._decode(raw))


def logged(records: Any, capfd: pytest.CaptureFixture[str]) -> str:
    """All the server logged: the output log's records and what reached stdout/stderr."""
    captured = capfd.readouterr()
    return "\n".join([*records.lines, captured.out, captured.err])


@pytest.mark.parametrize(
    ("kernel", "protocol"), [("qsecure", "legacy"), ("qsecure", V1), ("python3", V1)]
)
async def test_kernel_fd_output_reaches_the_server_log_masked(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    qsecure_kernel: str,
    values: dict[str, str],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    kernel: str,
    protocol: str,
) -> None:
    # ipykernel does not capture descriptor-level output when it sees it runs under pytest
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    output = jp_serverapp.web_app.settings["qsecure_kernel_output"]
    records = Records()
    logger = output.log if output is not None else jp_serverapp.log
    logger.addHandler(records)
    try:
        kernel_id, client = await start(jp_fetch, jp_ws_fetch, kernel, protocol)
        messages = await client.execute(cell(sorted(values)))
        await until_shown(client, messages, END)
        # ipykernel's descriptor-capture thread may publish after the execution's idle: read
        # on until the cell's last print arrived too (a text never shown fails on timeout)
        await until_shown(client, messages, "done")
        client.ws.close()
        # The shutdown returns once what the kernel wrote last has been logged.
        await jp_fetch("api", "kernels", kernel_id, method="DELETE")
    finally:
        logger.removeHandler(records)
    server_log = logged(records, capfd)

    errors = [m["content"] for m in messages if m["header"]["msg_type"] == "error"]
    assert not errors, errors
    shown = stdout_of(messages)
    assert "done" in shown
    # (names only in assertions: pytest would print part of a value it compares)
    assert not [name for name, value in values.items() if shows(server_log, value)], "log"
    # Each message masked (a value split across stream messages is case 1's, tested there).
    texts = [json.dumps(m["content"], ensure_ascii=False) for m in messages]
    texts += [m["content"]["text"] for m in messages if m["header"]["msg_type"] == "stream"]
    in_browser = [name for name, value in values.items() if any(value in t for t in texts)]
    assert not in_browser, "browser"
    for name in values:
        assert placeholder(name) in shown  # the browser still gets the (masked) output
        # ... and so does the log: every copy, by every route
        assert server_log.count(placeholder(name)) >= COPIES + 4, name
    assert f"kernel {kernel_id} stdout: direct {placeholder('v32')}" in server_log
    assert f"kernel {kernel_id} stderr: fd2 {placeholder('sa')}" in server_log


async def test_a_restarted_kernel_writes_into_the_masked_pipe_too(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    qsecure_kernel: str,
    values: dict[str, str],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    output = jp_serverapp.web_app.settings["qsecure_kernel_output"]
    records = Records()
    output.log.addHandler(records)
    try:
        kernel_id, client = await start(jp_fetch, jp_ws_fetch, qsecure_kernel, "legacy")
        await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="")
        client.ws.close()
        client = await connect(jp_ws_fetch, kernel_id, "legacy")
        messages = await client.execute(cell(["v32"]))
        await until_shown(client, messages, END)
        # ipykernel's descriptor-capture thread may publish after the execution's idle: read
        # on until the cell's last print arrived too (a text never shown fails on timeout)
        await until_shown(client, messages, "done")
        client.ws.close()
        await jp_fetch("api", "kernels", kernel_id, method="DELETE")
    finally:
        output.log.removeHandler(records)
    server_log = logged(records, capfd)
    assert "done" in stdout_of(messages)
    assert not shows(server_log, values["v32"])
    assert f"kernel {kernel_id} stderr: fd2 {placeholder('v32')}" in server_log
    assert not output.pipes  # closed with the kernel


async def test_the_log_and_the_websocket_mask_with_one_masker(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    qsecure_kernel: str,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    builds: list[Build],
) -> None:
    # One masker for the log and the websocket: a value registered after the kernel
    # started is masked in both, a revoked token leaves both, and no registry version
    # is built twice (the log's reader threads used to build their own copy).
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    output = jp_serverapp.web_app.settings["qsecure_kernel_output"]
    service = jp_serverapp.web_app.settings["qsecure_credentials"]
    records = Records()
    output.log.addHandler(records)
    late = secrets.token_urlsafe(32)
    try:
        kernel_id, client = await start(jp_fetch, jp_ws_fetch, qsecure_kernel, "legacy")
        service.registry.register("another-kernel", {"late": late})  # after the start
        messages = await client.execute(
            "import os\n"
            "from jupyter_qsecure import secrets\n"
            f"os.write(2, ('late ' + {late!r} + '\\n').encode())\n"
            "os.write(2, ('tok ' + secrets.token() + '\\n').encode())\n"
            f"os.system('echo {END}')\n"
            "print('done')\n"
        )
        await until_shown(client, messages, END)
        await until_shown(client, messages, "done")
        token = service.broker.cached(kernel_id).token
        assert output.masker() is service.masker()
        client.ws.close()
        await jp_fetch("api", "kernels", kernel_id, method="DELETE")
    finally:
        output.log.removeHandler(records)
    server_log = logged(records, capfd)

    assert not [m for m in messages if m["header"]["msg_type"] == "error"]
    assert not shows(server_log, late) and not shows(server_log, token)
    assert f"kernel {kernel_id} stderr: late {placeholder('late')}" in server_log
    assert f"kernel {kernel_id} stderr: tok {placeholder('openbao_token')}" in server_log
    # The token was revoked at shutdown: gone from the one masker both use.
    masker = output.masker()
    assert masker is service.masker() and masker is not None
    still_masked = masker.mask(token) != token
    assert not still_masked, "the revoked token is still masked"
    assert masker.mask(late) != late  # held by another kernel: still masked
    # Each set of values was built once (by the broker's worker thread or a reader).
    names = [build.names for build in builds]
    assert len(set(names)) == len(names), names


def test_a_failing_masker_drops_the_output_and_never_blocks_the_kernel() -> None:
    value = "v-" + "x" * 30

    def broken() -> Any:
        raise RuntimeError("masker broke")

    logger = logging.getLogger("qsecure-test-kernel-output")
    records = Records()
    logger.addHandler(records)
    try:
        pipe = KernelPipe(broken, logger)
        with os.fdopen(os.dup(pipe.write_fd), "wb") as kernel_stdout:
            kernel_stdout.write(f"{value}\n".encode() * 10_000)  # more than a pipe holds
        pipe.close_write_end()
        assert pipe.done.wait(30)
    finally:
        logger.removeHandler(records)
    assert not any(value in line for line in records.lines)
    assert any("left out of the log" in line for line in records.lines)


@pytest.mark.parametrize("min_fragment", [0, 12, 20])
def test_the_log_masker_uses_the_configured_fragment_length(min_fragment: int) -> None:
    # QSecure.mask_fragment_min applies to the server's log as to the websocket: a run
    # of 16 characters of a value is masked only when runs that short are configured.
    value = secrets.token_urlsafe(48)
    registry = ValueRegistry()
    registry.register("kernel-1", {"api": value})
    masker = RegistryMasking(registry, min_fragment=min_fragment).masker()
    assert masker is not None and masker.min_fragment == min_fragment
    run = value[5:21]
    masked = masker.mask(f"log line holding {run} only")
    assert (run in masked) is (min_fragment in (0, 20))
    assert value not in masker.mask(f"whole: {value}")
