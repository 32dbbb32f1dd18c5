"""A real Jupyter Server with the jupyter-qsecure extension, authentication enforced."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

# pytest-jupyter's fixtures (and its autouse server clean-up) only for server tests:
# a non-root conftest may not declare pytest_plugins, so import them here.
from pytest_jupyter.jupyter_core import *  # noqa: E402,F403
from pytest_jupyter.jupyter_server import *  # noqa: E402,F403

from jupyter_qsecure.kernel.install import install_kernelspec
from jupyter_qsecure.testing.openbao import OpenBaoDev
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


# ---- a server with OpenBao credentials (shared by the credential and job tests) -----------


@pytest.fixture(scope="module")
def fake_value() -> str:
    """The KV value of ``ibm`` in the dev environment (generated per test module)."""
    return "ibmq-" + secrets.token_urlsafe(30)


@pytest.fixture
def vault(
    openbao: OpenBaoDev, openbao_client: Any, fake_value: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The jupyter-qsecure layout in a real OpenBao, ``ibm`` (dev) and ``prodibm`` (prod)
    stored, and a dev server token in ``BAO_TOKEN``: ``{"addr", "token"}``."""
    layout.bootstrap(openbao_client)
    openbao_client.secrets.kv.v2.create_or_update_secret(
        path="qsecure/dev/ibm", secret={"token": fake_value}, mount_point="secret"
    )
    openbao_client.secrets.kv.v2.create_or_update_secret(
        path="qsecure/prod/ibm",
        secret={"token": "prod-" + secrets.token_urlsafe(20)},
        mount_point="secret",
    )
    server_token = layout.create_server_token(openbao_client, "dev")["client_token"]
    # As `jupyter qsecure lab` does: the token comes from the environment (config values
    # are echoed in debug logs), and the extension removes it before kernels start.
    monkeypatch.setenv("BAO_TOKEN", server_token)
    return {"addr": openbao.addr, "token": server_token}


@pytest.fixture
def vault_secrets() -> dict[str, str]:
    """The ``QSecure.secrets`` of :func:`vault_server_config`; override to add more."""
    return {
        "ibm": "secret/qsecure/dev/ibm#token",
        "prodibm": "secret/qsecure/prod/ibm#token",
    }


@pytest.fixture
def vault_server_config(
    qsecure_data_dir: Path, vault: dict[str, str], vault_secrets: dict[str, str]
) -> dict[str, Any]:
    """Server config with credentials from :func:`vault`; use it as ``jp_server_config``."""
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_qsecure_server": True},
            "allow_unauthenticated_access": False,
        },
        "ZMQChannelsWebsocketConnection": {"limit_rate": False},
        "QSecure": {
            "data_dir": str(qsecure_data_dir),
            "vault_addr": vault["addr"],
            "ledger_signer": "local",
            "environment": "dev",
            "secrets": vault_secrets,
        },
    }


@pytest.fixture
def qsecure_kernel(jp_environ: Any) -> str:
    """The "Python 3 (qsecure)" kernelspec, installed in the test's Jupyter data dir."""
    install_kernelspec(user=True)
    return "qsecure"
