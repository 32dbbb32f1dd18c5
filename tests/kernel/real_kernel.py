"""The "Python 3 (qsecure)" kernel started for real from its installed kernelspec, and a
blocking client for it (``running_kernel``), shared by the kernel tests."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from jupyter_qsecure.kernel.install import install_kernelspec

TIMEOUT = 30


@dataclass
class Execution:
    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)

    def stream(self, name: str) -> str:
        """The text of stream ``name`` (stdout, stderr)."""
        return "".join(
            m["content"]["text"]
            for m in self.messages
            if m["msg_type"] == "stream" and m["content"]["name"] == name
        )

    @property
    def stdout(self) -> str:
        return self.stream("stdout")

    @property
    def stderr(self) -> str:
        return self.stream("stderr")

    @property
    def error(self) -> dict[str, Any] | None:
        errors = [m["content"] for m in self.messages if m["msg_type"] == "error"]
        return errors[0] if errors else None

    @property
    def ok(self) -> bool:
        return self.reply["content"]["status"] == "ok"

    def wire_text(self) -> str:
        """Everything the kernel sent for this execution, as text."""
        return json.dumps([self.reply, *self.messages], default=str)


@dataclass
class Kernel:
    client: BlockingKernelClient
    manager: KernelManager
    cwd: Path
    runtime_dir: Path
    ipython_dir: Path

    def execute(self, code: str, metadata: dict[str, Any] | None = None) -> Execution:
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        msg = self.client.session.msg("execute_request", content, metadata=metadata or {})
        self.client.shell_channel.send(msg)
        msg_id = msg["header"]["msg_id"]
        while True:
            reply = self.client.get_shell_msg(timeout=TIMEOUT)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        messages = []
        while True:
            message = self.client.get_iopub_msg(timeout=TIMEOUT)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "status":
                if message["content"]["execution_state"] == "idle":
                    break
                continue
            messages.append(message)
        return Execution(reply, messages)


@contextmanager
def running_kernel(base: Path) -> Iterator[Kernel]:
    """The qsecure kernelspec installed under ``base`` (an empty folder) and its kernel
    running there, shut down on exit."""
    destination = install_kernelspec(prefix=base)
    kernels_dir = base / "share" / "jupyter" / "kernels"
    assert Path(destination) == kernels_dir / "qsecure"
    cwd, runtime_dir, ipython_dir = base / "work", base / "runtime", base / "ipython"
    for folder in (cwd, runtime_dir, ipython_dir):
        folder.mkdir()
    env = dict(os.environ)
    env.update(
        JUPYTER_PATH=str(base / "share" / "jupyter"),
        JUPYTER_RUNTIME_DIR=str(runtime_dir),
        IPYTHONDIR=str(ipython_dir),
    )
    manager = KernelManager(
        kernel_name="qsecure",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]),
        connection_file=str(runtime_dir / "kernel-qsecure-test.json"),
    )
    assert manager.kernel_spec is not None
    assert manager.kernel_spec.display_name == "Python 3 (qsecure)"
    manager.start_kernel(cwd=str(cwd), env=env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield Kernel(client, manager, cwd, runtime_dir, ipython_dir)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
