"""A real Jupyter Server with the jupyter-qsecure extension, authentication enforced.

Also the fixtures of the credential tests that several modules share: a fake KV value
in a real OpenBao (``vault``), the server configuration that injects it
(``vault_server_config``; a module uses it with ``jp_server_config`` returning it),
the ``qsecure`` kernelspec and a kernel with a websocket client on each protocol
(``kernel_session``). Override ``fake_value`` in a module for other values.

The job broker's tests share ``policy_file``, ``jobs_server_config`` (a module returns it
from its ``jp_server_config``), ``broker`` and ``worker_test_hooks``; the OpenBao fault
tests share ``embedded``. Their helpers are in ``jobs_helpers``.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import Broker, server_config, write_policy

# pytest-jupyter's fixtures (and its autouse server clean-up) only for server tests:
# a non-root conftest may not declare pytest_plugins, so import them here.
from pytest_jupyter.jupyter_core import *  # noqa: E402,F403
from pytest_jupyter.jupyter_server import *  # noqa: E402,F403
from server_helpers import V1, Build, KernelSession, extension_config

from jupyter_qsecure.jobs.aer_run import TESTING_ENV
from jupyter_qsecure.kernel.install import install_kernelspec
from jupyter_qsecure.testing.openbao import OpenBaoDev
from jupyter_qsecure.testing.values import Hidden
from jupyter_qsecure.vault import layout, registry_masking
from jupyter_qsecure.vault.embedded import EmbeddedOpenBao
from jupyter_qsecure.vault.masking import Masker


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Build]:
    """Every masker the server's :class:`RegistryMasking` builds, in order."""
    seen: list[Build] = []

    class CountingMasker(Masker):
        __slots__ = ()

        def __init__(self, values: Any, *args: Any, **kwargs: Any) -> None:
            on_loop = asyncio._get_running_loop() is not None
            seen.append(Build(on_loop, threading.current_thread().name, tuple(sorted(values))))
            super().__init__(values, *args, **kwargs)

    monkeypatch.setattr(registry_masking, "Masker", CountingMasker)
    return seen


@pytest.fixture
def qsecure_data_dir(tmp_path: Path) -> Path:
    return tmp_path / "qsecure-data"


@pytest.fixture
def save_mode() -> str:
    """Override in a test module to run the server with another save_mode."""
    return "block"


@pytest.fixture
def jp_server_config(qsecure_data_dir: Path, save_mode: str) -> dict[str, Any]:
    return extension_config(
        data_dir=str(qsecure_data_dir), checkpoint_every_entries=5, save_mode=save_mode
    )


@pytest.fixture
def qsecure_kernel(jp_environ: Any) -> str:
    """The qsecure kernelspec, installed into the test's isolated Jupyter data dir."""
    install_kernelspec(user=True)
    return "qsecure"


@pytest.fixture(params=["legacy", V1])
def kernel_session(
    request: pytest.FixtureRequest,
    jp_fetch: Any,
    jp_ws_fetch: Any,
    qsecure_kernel: str,
    jp_asyncio_loop: Any,
) -> Iterator[KernelSession]:
    """A qsecure kernel and its websocket client, once for each kernel websocket protocol;
    shut down after the test."""
    session = KernelSession(jp_fetch, jp_ws_fetch, qsecure_kernel, request.param)
    yield session
    jp_asyncio_loop.run_until_complete(session.close())


@pytest.fixture
def vault_server_token(
    openbao: OpenBaoDev, openbao_client: Any, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The qsecure layout in the session's OpenBao and a dev server token in ``BAO_TOKEN``.

    As `jupyter qsecure lab` does: the token comes from the environment (config values
    are echoed in debug logs), and the extension removes it before kernels start.
    """
    layout.bootstrap(openbao_client)
    server_token = layout.create_server_token(openbao_client, "dev")["client_token"]
    monkeypatch.setenv("BAO_TOKEN", server_token)
    return {"addr": openbao.addr, "token": server_token}


@pytest.fixture
def vault_server_config(
    qsecure_data_dir: Path, vault_server_token: dict[str, str]
) -> Callable[[dict[str, str]], dict[str, Any]]:
    """Builds a server config: the extension on that OpenBao (dev) handing out ``secrets``."""

    def config(secrets: dict[str, str]) -> dict[str, Any]:
        return {
            **extension_config(
                data_dir=str(qsecure_data_dir),
                vault_addr=vault_server_token["addr"],
                ledger_signer="local",
                environment="dev",
                secrets=secrets,
            ),
            "ZMQChannelsWebsocketConnection": {"limit_rate": False},
        }

    return config


@pytest.fixture(scope="module")
def fake_value() -> str:
    return Hidden("ibmq-" + secrets.token_urlsafe(30))  # a failing test does not print it


@pytest.fixture
def vault(
    vault_server_token: dict[str, str], openbao_client: Any, fake_value: str
) -> dict[str, str]:
    """``ibm`` (``fake_value``) in dev and another value in prod, which dev kernels may not read."""
    openbao_client.secrets.kv.v2.create_or_update_secret(
        path="qsecure/dev/ibm", secret={"token": fake_value}, mount_point="secret"
    )
    openbao_client.secrets.kv.v2.create_or_update_secret(
        path="qsecure/prod/ibm",
        secret={"token": "prod-" + secrets.token_urlsafe(20)},
        mount_point="secret",
    )
    return vault_server_token


@pytest.fixture
def vault_secrets() -> dict[str, str]:
    """The ``QSecure.secrets`` of :func:`ibm_server_config`; override to add more."""
    return {"ibm": "secret/qsecure/dev/ibm#token", "prodibm": "secret/qsecure/prod/ibm#token"}


@pytest.fixture
def ibm_server_config(
    vault_server_config: Callable[[dict[str, str]], dict[str, Any]],
    vault: dict[str, str],
    vault_secrets: dict[str, str],
) -> dict[str, Any]:
    """A server whose kernels get ``ibm`` (``fake_value``) and, not allowed in dev, ``prodibm``."""
    return vault_server_config(vault_secrets)


# ---- the job broker ------------------------------------------------------------------------
@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    """The test policy (``jobs_helpers.POLICY``); override for another one."""
    return write_policy(tmp_path / "policy.toml")


@pytest.fixture
def jobs_server_config(qsecure_data_dir: Path, policy_file: Path) -> dict[str, Any]:
    """The broker tests' server: ``policy_file``, one worker, a 200 kB body limit."""
    return server_config(
        qsecure_data_dir, policy_file, job_workers=1, job_max_payload_bytes=200_000
    )


@pytest.fixture
def broker(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    jp_environ: Any,
    http_server_client: Any,
    jp_base_url: str,
) -> Broker:
    return Broker(jp_fetch, jp_ws_fetch, jp_serverapp, http_server_client, jp_base_url)


@pytest.fixture
def worker_test_hooks(broker: Broker, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Test-hook keys (filled in by the test) added to every payload the broker submits."""
    monkeypatch.setenv(TESTING_ENV, "1")  # before the executor starts its workers
    executor = broker.service.executor
    real_submit = executor.submit
    hooks: dict[str, Any] = {}

    def submit(job_id: str, payload: dict[str, Any], **kwargs: Any) -> Any:
        return real_submit(job_id, {**payload, **hooks}, **kwargs)

    monkeypatch.setattr(executor, "submit", submit)
    return hooks


# ---- an embedded OpenBao -----------------------------------------------------------------
@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedOpenBao]:
    """A persistent, self-unsealing OpenBao with one KV secret; the server's token set."""
    bao = EmbeddedOpenBao(tmp_path / "bao-data")
    bao.up("dev")
    try:
        bao.admin_client().secrets.kv.v2.create_or_update_secret(
            path="qsecure/dev/api",
            secret={"key": "k-" + secrets.token_urlsafe(24)},
            mount_point="secret",
        )
        monkeypatch.setenv("BAO_TOKEN", bao.server_token())
        yield bao
    finally:
        bao.down()
