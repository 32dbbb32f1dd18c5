"""The cold path's masker, end to end: a real server, real kernels, a real OpenBao.

* The masker is rebuilt in the worker thread that issued or revoked credentials,
  never on the event loop (the loop would pay milliseconds on a new kernel's first
  message).
* A kernel's OpenBao token, revoked at shutdown, is no longer masked: the values
  masked do not grow with the number of kernels the server has served.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from server_helpers import V1, Build, start, stdout_of


@pytest.fixture
def jp_server_config(ibm_server_config: dict[str, Any]) -> dict[str, Any]:
    return ibm_server_config


async def test_masker_is_built_off_the_loop_and_does_not_grow_with_kernels(
    jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any, qsecure_kernel: str, builds: list[Build]
) -> None:
    service = jp_serverapp.web_app.settings["qsecure_credentials"]
    loop_thread = threading.get_ident()
    after_shutdown: list[list[str]] = []
    for _ in range(3):
        kernel_id, client = await start(jp_fetch, jp_ws_fetch, qsecure_kernel, V1)
        messages = await client.execute(
            "from jupyter_qsecure import secrets\nprint('tok', secrets.token())\n"
        )
        assert "tok «secret:openbao_token»" in stdout_of(messages)
        assert threading.get_ident() == loop_thread
        client.ws.close()
        await jp_fetch("api", "kernels", kernel_id, method="DELETE")
        after_shutdown.append(sorted(service.registry.named_values()))
        assert service.masker() is not None  # KV values linger: still masked
    assert builds, "the service built no masker"
    assert not any(b.on_loop for b in builds), "a masker was built on the event loop"
    # the revoked tokens are gone; what stays (the KV values) does not grow
    assert all("openbao_token" not in name for names in after_shutdown for name in names)
    assert after_shutdown[0] == after_shutdown[1] == after_shutdown[2]
