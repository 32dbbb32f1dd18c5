"""A changed ``c.QSecure.secrets`` in a config file reaches running kernels without a
server restart (real server, the session's OpenBao, a real qsecure kernel); settings a
running server does not apply live are named in its log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from server_helpers import GET_CODE, digest, start, stdout_of


@pytest.fixture
def jp_server_config(
    vault_server_config: Callable[[dict[str, str]], dict[str, Any]], vault: dict[str, str]
) -> dict[str, Any]:
    """The server's own config names no secret: the config files decide."""
    config = vault_server_config({})
    del config["QSecure"]["secrets"]
    return config


async def test_changed_config_file_applies_without_restart(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_config_dir: Path,
    qsecure_kernel: str,
    fake_value: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``c.QSecure.secrets`` in jupyter_qsecure_config.py, written while the server runs,
    reaches a running kernel at its next execution; a setting that needs a restart says so."""
    kernel_id, client = await start(jp_fetch, jp_ws_fetch, qsecure_kernel, "legacy")
    assert "UnknownSecret" in stdout_of(await client.execute(GET_CODE.format(name="cfg")))

    (jp_config_dir / "jupyter_qsecure_config.py").write_text(
        "c.QSecure.secrets = {'cfg': 'secret/qsecure/{env}/ibm#token'}\nc.QSecure.job_workers = 3\n"
    )
    caplog.set_level(logging.INFO)
    out = stdout_of(await client.execute(GET_CODE.format(name="cfg")))
    assert f"digest {digest(fake_value)}" in out and "raw «secret:cfg»" in out
    assert "applied the changed c.QSecure.secrets" in caplog.text
    assert "applied only when the server restarts: c.QSecure.job_workers" in caplog.text

    # a broken file is reported and changes nothing
    (jp_config_dir / "jupyter_qsecure_config.py").write_text("c.QSecure.secrets = {\n")
    out = stdout_of(await client.execute(GET_CODE.format(name="cfg")))
    assert f"digest {digest(fake_value)}" in out
    assert "cannot be read" in caplog.text
    assert fake_value not in caplog.text
    await jp_fetch("api", "kernels", kernel_id, method="DELETE")
