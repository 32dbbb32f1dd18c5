"""OpenBao going away mid-session: clear errors, nothing hangs, recovery on the next execution.

Uses the embedded (persistent, self-unsealing) OpenBao, so a restart keeps the
server's token and the secrets, as in a real deployment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from server_helpers import extension_config, start, stdout_of

from jupyter_qsecure.kernel.install import install_kernelspec
from jupyter_qsecure.vault.embedded import EmbeddedOpenBao


@pytest.fixture
def jp_server_config(qsecure_data_dir: Path, embedded: EmbeddedOpenBao) -> dict[str, Any]:
    return extension_config(
        enforce_auth=False,
        data_dir=str(qsecure_data_dir),
        vault_addr=embedded.addr,
        ledger_signer="local",
        secrets={"api": "secret/qsecure/dev/api#key"},
    )


READ = (
    "from jupyter_qsecure import secrets\n"
    "try:\n    print('len', len(secrets.get('api')))\n"
    "except Exception as e:\n    print(type(e).__name__, e)\n"
)


async def test_openbao_down_then_back(
    jp_fetch: Any, jp_ws_fetch: Any, jp_environ: Any, jp_serverapp: Any, embedded: EmbeddedOpenBao
) -> None:
    install_kernelspec(user=True)
    _, client = await start(jp_fetch, jp_ws_fetch, "qsecure", "legacy")
    assert "len 34" in stdout_of(await client.execute(READ))

    embedded.down()
    # A kernel with a still-valid lease keeps working; a new kernel gets a clear error.
    assert "len 34" in stdout_of(await client.execute(READ))
    _, fresh = await start(jp_fetch, jp_ws_fetch, "qsecure", "legacy")
    out = stdout_of(await fresh.execute(READ, timeout=30))
    assert "SecretsUnavailable" in out and "retr" in out.lower()
    assert "still works" in stdout_of(await fresh.execute("print('still works')"))

    embedded.up("dev")
    assert "len 34" in stdout_of(await fresh.execute(READ))  # recovered on the next execution
    ledger = jp_serverapp.web_app.settings["qsecure_ledger"]
    assert any(e.kind == "credential.failed" for e in ledger.entries())
