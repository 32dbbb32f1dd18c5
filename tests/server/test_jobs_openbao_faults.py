"""The job broker when OpenBao, or a kernel's token, goes away: clear errors, a ledger
entry where a job was decided, nothing hangs, and the broker works again once OpenBao
is back. Real server, real qsecure kernels, the embedded (self-unsealing) OpenBao
signing every job with transit.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import Broker, ghz, job, start_kernel
from server_helpers import extension_config

from jupyter_qsecure.ledger import EntryFilter
from jupyter_qsecure.vault.embedded import EmbeddedOpenBao


@pytest.fixture
def identity_cache_seconds() -> float:
    """Long enough that only an explicit forget (kernel shutdown) ends a token's cached
    identity within a test; tests parametrize it to 0 to look every request up."""
    return 600.0


@pytest.fixture
def jp_server_config(
    qsecure_data_dir: Path,
    embedded: EmbeddedOpenBao,
    identity_cache_seconds: float,
) -> dict[str, Any]:
    return extension_config(
        enforce_auth=False,
        data_dir=str(qsecure_data_dir),
        vault_addr=embedded.addr,
        ledger_signer="local",
        job_workers=1,
        job_identity_cache_seconds=identity_cache_seconds,
    )


async def started_kernel(b: Broker) -> tuple[str, str]:
    """A qsecure kernel that has executed once (so holds a token): (kernel id, token)."""
    kernel_id, token, _ = await start_kernel(b.fetch, b.ws_fetch, b.app)
    return kernel_id, token


def failed_jobs(b: Broker) -> list[dict[str, Any]]:
    return [
        e.body
        for e in b.ledger.entries(EntryFilter(kinds=["job.completed"]))
        if e.body.get("status") != "completed"
    ]


async def test_stopped_kernel_token_is_refused_at_once(broker: Broker) -> None:
    kernel_id, token = await started_kernel(broker)
    code, record, _ = await broker.post(token, job(ghz(3), shots=64))
    assert code == 200 and record["status"] == "completed", record
    assert record["manifest"]["signatures"][0]["keyid"].startswith("transit:")

    await broker.fetch("api", "kernels", kernel_id, method="DELETE")
    # the server revoked the token and the broker forgot its cached identity
    code, body, response = await broker.post(token, job(ghz(3), shots=64))
    assert code == 401, body
    assert "expired, revoked, or not issued by this server" in body["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert token not in response.body.decode()


@pytest.mark.parametrize("identity_cache_seconds", [0.0])
async def test_token_revoked_in_openbao_is_refused(
    broker: Broker,
    embedded: EmbeddedOpenBao,
) -> None:
    kernel_id, token = await started_kernel(broker)
    assert (await broker.post(token, job(ghz(2), shots=32)))[0] == 200
    accessor = broker.app.web_app.settings["qsecure_credentials"].broker.cached(kernel_id).accessor
    # revoked by an operator, behind the server's back
    embedded.admin_client().auth.token.revoke_accessor(accessor)
    decided_before = len(broker.ledger.entries(EntryFilter(kinds=["job.decided"])))
    code, body, response = await broker.post(token, job(ghz(2), shots=32))
    assert code == 401 and "expired, revoked" in body["message"], body
    assert "re-run the cell" in body["hint"]
    assert token not in response.body.decode()
    assert len(broker.ledger.entries(EntryFilter(kinds=["job.decided"]))) == decided_before


async def test_openbao_down_gives_clear_errors_then_recovers(
    broker: Broker,
    embedded: EmbeddedOpenBao,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _, used = await started_kernel(broker)
    _, unseen = await started_kernel(broker)  # token issued, never shown to the broker
    assert (await broker.post(used, job(ghz(2), shots=32)))[0] == 200

    embedded.down()
    # A token the broker has never looked up cannot be checked: 503, nothing decided.
    decided_before = len(broker.ledger.entries(EntryFilter(kinds=["job.decided"])))
    code, body, _ = await broker.post(unseen, job(ghz(2), shots=32))
    assert code == 503 and "cannot check the kernel's token" in body["message"], body
    assert len(broker.ledger.entries(EntryFilter(kinds=["job.decided"]))) == decided_before

    # A known identity is decided and run, but transit cannot sign: the result is
    # withheld (503) and the job is recorded as failed, with the reason.
    code, body, _ = await broker.post(used, job(ghz(2), shots=32))
    assert code == 503 and "could not be signed" in body["message"], body
    assert body.get("hint")
    failed = failed_jobs(broker)
    assert len(failed) == 1 and failed[0]["job_id"] == body["job_id"]
    assert "counts" not in failed[0]

    # The server stayed up; with OpenBao back, both kernels submit again.
    assert (await broker.fetch("qsecure", "api", "status")).code == 200
    embedded.up("dev")
    for token in (used, unseen):
        code, record, _ = await broker.post(token, job(ghz(2), shots=32))
        assert code == 200 and record["status"] == "completed", record
    assert broker.ledger.verify().ok
    ledger_text = str([e.body for e in broker.ledger.entries()])
    assert used not in ledger_text and unseen not in ledger_text
    assert "503 POST" in caplog.text  # the server's own request log was captured ...
    assert used not in caplog.text and unseen not in caplog.text  # ... without the tokens
