"""A real Jupyter Server with the jupyter-qsecure extension, authentication enforced.

Also the fixtures of the credential tests that several modules share: a fake KV value
in a real OpenBao (``vault``), the server configuration that injects it
(``vault_server_config``; a module uses it with ``jp_server_config`` returning it) and
the ``qsecure`` kernelspec. Override ``fake_value`` in a module for other values.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# pytest-jupyter's fixtures (and its autouse server clean-up) only for server tests:
# a non-root conftest may not declare pytest_plugins, so import them here.
from pytest_jupyter.jupyter_core import *  # noqa: E402,F403
from pytest_jupyter.jupyter_server import *  # noqa: E402,F403

from jupyter_qsecure.kernel.install import install_kernelspec
from jupyter_qsecure.testing.openbao import OpenBaoDev
from jupyter_qsecure.testing.values import Hidden
from jupyter_qsecure.vault import layout


@pytest.fixture
def qsecure_data_dir(tmp_path: Path) -> Path:
    return tmp_path / "qsecure-data"


@pytest.fixture
def save_mode() -> str:
    """Override in a test module to run the server with another save_mode."""
    return "block"


@pytest.fixture
def jp_server_config(qsecure_data_dir: Path, save_mode: str) -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_qsecure_server": True},
            "allow_unauthenticated_access": False,
        },
        "QSecure": {
            "data_dir": str(qsecure_data_dir),
            "checkpoint_every_entries": 5,
            "save_mode": save_mode,
        },
    }


@pytest.fixture
def qsecure_kernel(jp_environ: Any) -> str:
    """The qsecure kernelspec, installed into the test's isolated Jupyter data dir."""
    install_kernelspec(user=True)
    return "qsecure"


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
            "ServerApp": {
                "jpserver_extensions": {"jupyter_qsecure_server": True},
                "allow_unauthenticated_access": False,
            },
            "ZMQChannelsWebsocketConnection": {"limit_rate": False},
            "QSecure": {
                "data_dir": str(qsecure_data_dir),
                "vault_addr": vault_server_token["addr"],
                "ledger_signer": "local",
                "environment": "dev",
                "secrets": secrets,
            },
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
