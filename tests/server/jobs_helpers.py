"""Helpers of the job broker's server tests: the policy, the server config, a kernel
with its broker token, posting jobs, and :class:`Broker` (what the ``broker`` fixture in
``conftest.py`` gives a test)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qiskit import QuantumCircuit, qpy
from server_helpers import extension_config, start, stdout_of

from jupyter_qsecure.kernel.install import install_kernelspec
from jupyter_qsecure.testing.circuits import ghz

__all__ = [
    "POLICY",
    "Broker",
    "cli",
    "cli_async",
    "ghz",
    "job",
    "kernel_token",
    "post",
    "qpy_b64",
    "run_cell",
    "server_config",
    "start_kernel",
    "write_policy",
]

POLICY = """
version = "test-1"
[dev]
max_qubits = 10
max_depth = 40
max_circuits_per_job = 4
max_shots = 100000
allowed_gates = "*"
allowed_backends = ["aer_simulator"]
allowed_methods = ["automatic", "statevector"]
allowed_noise = ["depolarizing-1e-3"]
jobs_per_minute = 1000
shots_per_day = 100000000
[dev.heavy_run]
qubits = 8
"""


def write_policy(path: Path, *, jobs_per_minute: int = 1000) -> Path:
    """POLICY at ``path``, with another rate limit when given."""
    path.write_text(
        POLICY.replace("jobs_per_minute = 1000", f"jobs_per_minute = {jobs_per_minute}")
    )
    return path


def server_config(data_dir: Path, policy: Path, **qsecure: Any) -> dict[str, Any]:
    """Server config with the extension, ``policy`` and QSecure traits ``qsecure``."""
    return extension_config(
        enforce_auth=False, data_dir=str(data_dir), policy_file=str(policy), **qsecure
    )


def qpy_b64(qc: QuantumCircuit) -> str:
    buffer = io.BytesIO()
    qpy.dump(qc, buffer)
    return base64.b64encode(buffer.getvalue()).decode()


async def start_kernel(jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any) -> tuple[str, str, Any]:
    """A qsecure kernel that has executed once: (kernel id, its token, its client)."""
    install_kernelspec(user=True)
    kernel_id, client = await start(jp_fetch, jp_ws_fetch, "qsecure", "legacy")
    await client.execute("pass")  # the first execution issues the kernel's token
    creds = jp_serverapp.web_app.settings["qsecure_credentials"].broker.cached(kernel_id)
    return kernel_id, creds.token, client


async def kernel_token(jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any) -> tuple[str, Any]:
    _, token, client = await start_kernel(jp_fetch, jp_ws_fetch, jp_serverapp)
    return token, client


async def post(
    http_server_client: Any, base: str, token: str | None, body: Any
) -> tuple[int, dict[str, Any], Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    response = await http_server_client.fetch(
        f"{base.rstrip('/')}/qsecure/api/jobs",
        method="POST",
        body=raw,
        headers=headers,
        raise_error=False,
    )
    return response.code, json.loads(response.body or b"{}"), response


async def run_cell(client: Any, code: str) -> str:
    """Execute ``code`` in the kernel; its stdout, after checking it raised nothing."""
    messages = await client.execute(code, timeout=120)
    errors = [m["content"] for m in messages if m["header"]["msg_type"] == "error"]
    assert not errors, errors
    return stdout_of(messages)


@dataclass
class Broker:
    """The running server's job broker, as the REST tests reach it."""

    fetch: Any
    ws_fetch: Any
    app: Any
    http: Any
    base_url: str

    @property
    def service(self) -> Any:
        return self.app.web_app.settings["qsecure_jobs"]

    @property
    def ledger(self) -> Any:
        return self.app.web_app.settings["qsecure_ledger"]

    async def kernel_token(self) -> str:
        token, _ = await kernel_token(self.fetch, self.ws_fetch, self.app)
        return token

    async def post(self, token: str | None, body: Any) -> tuple[int, dict[str, Any], Any]:
        return await post(self.http, self.base_url, token, body)


def cli(data_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``jupyter qsecure ARGV...`` on the server's data dir, in a separate process."""
    env = {**os.environ, "QSECURE_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "jupyter_qsecure.cli.main", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


async def cli_async(env: dict[str, str], *argv: str, stdin: str = "") -> tuple[int, str, str]:
    """``jupyter qsecure ARGV`` in its own process with ``env``, without blocking the
    server's loop (the server checks approvals on its 1 s timer while the CLI waits for
    its answer): (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jupyter_qsecure.cli.main",
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), timeout=120)
    return int(process.returncode or 0), out.decode(), err.decode()


def job(qc: QuantumCircuit | list[QuantumCircuit], **extra: Any) -> dict[str, Any]:
    circuits = qc if isinstance(qc, list) else [qc]
    body = {
        "circuits": [{"format": "qpy", "data": qpy_b64(c)} for c in circuits],
        "shots": 256,
        "seed": 11,
        "request_id": uuid.uuid4().hex,
        "wait": True,
    }
    body.update(extra)
    return body
