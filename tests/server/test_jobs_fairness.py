"""The job queue under one user's flood, through the real server, kernels and workers.

Two named users on one server (``NamedUsers``: token login, the user named by a
header, as a Hub or a custom identity provider would name them). One Aer worker,
held busy by a "blocker" job (the worker's ``_test_sleep`` hook) until the test
cancels it, so the queue behind it is exactly what the test put there: fairness is
asserted by dispatch order, never by time.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import Broker, ghz, job, server_config, write_policy
from jupyter_server.auth.identity import IdentityProvider, User
from server_helpers import KernelClient

from jupyter_qsecure.jobs.ended import EndedJob
from jupyter_qsecure.kernel.install import install_kernelspec
from jupyter_qsecure.ledger import EntryFilter

WAIT = 120.0  # upper bound of any single wait on an event; never reached when things work
USER_HEADER = "X-Test-User"


class NamedUsers(IdentityProvider):
    """Jupyter's token login; the request's ``X-Test-User`` header names the user."""

    async def get_user(self, handler: Any) -> User | None:  # type: ignore[override]
        user = await self._get_user(handler)
        name = handler.request.headers.get(USER_HEADER)
        if user is None or not name:
            return user
        return User(username=name, name=name, display_name=name)


# The server of each test; a test overrides these with @pytest.mark.parametrize.
@pytest.fixture
def queue_config() -> dict[str, Any]:
    # No spare worker: the queue's order alone decides (see the spare worker's test).
    return {
        "job_workers": 1,
        "job_queue_size": 64,
        "job_queue_per_user": 60,
        "job_spare_workers": 0,
    }


@pytest.fixture
def identity_provider() -> type[IdentityProvider] | None:
    return NamedUsers


@pytest.fixture
def jobs_per_minute() -> int:
    return 1000


@pytest.fixture
def jp_server_config(
    qsecure_data_dir: Path,
    tmp_path: Path,
    queue_config: dict[str, Any],
    identity_provider: type[IdentityProvider] | None,
    jobs_per_minute: int,
) -> dict[str, Any]:
    policy = write_policy(tmp_path / "policy.toml", jobs_per_minute=jobs_per_minute)
    config = server_config(qsecure_data_dir, policy, **queue_config)
    if identity_provider is not None:
        config["ServerApp"]["identity_provider_class"] = identity_provider
    return config


async def kernel_of(b: Broker, user: str | None) -> tuple[str, KernelClient]:
    """A qsecure kernel opened by ``user`` (None: an anonymous token session) that has
    executed once: (its broker token, its client)."""
    install_kernelspec(user=True)
    headers = {USER_HEADER: user} if user else {}
    response = await b.fetch(
        "api", "kernels", method="POST", body=json.dumps({"name": "qsecure"}), headers=dict(headers)
    )
    kernel_id = json.loads(response.body)["id"]
    ws = await b.ws_fetch("api", "kernels", kernel_id, "channels", headers=dict(headers))
    client = KernelClient(ws, "legacy")
    await client.execute("pass")  # the first execution issues the kernel's token
    creds = b.app.web_app.settings["qsecure_credentials"].broker.cached(kernel_id)
    return creds.token, client


async def status_of(b: Broker, token: str, job_id: str) -> str:
    response = await b.http.fetch(
        f"{b.base_url.rstrip('/')}/qsecure/api/jobs/{job_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    return str(json.loads(response.body)["status"])


async def cancel(b: Broker, token: str, job_id: str) -> None:
    await b.http.fetch(
        f"{b.base_url.rstrip('/')}/qsecure/api/jobs/{job_id}",
        method="DELETE",
        headers={"Authorization": f"Bearer {token}"},
    )


async def start_blocker(b: Broker, token: str, hooks: dict[str, Any]) -> str:
    """A no-wait job that holds the only worker until it is cancelled."""
    hooks["_test_sleep"] = 600
    code, body, _ = await b.post(token, job(ghz(2), wait=False))
    hooks.clear()
    assert code == 202, body
    handle = b.service._jobs[body["job_id"]].handle
    assert await asyncio.to_thread(handle.wait_started, WAIT)
    return str(body["job_id"])


async def finished(b: Broker, job_ids: list[str]) -> None:
    for job_id in job_ids:
        state = b.service._jobs[job_id]
        assert state.finished is not None
        await asyncio.wait_for(state.finished.wait(), WAIT)


async def test_another_users_job_is_served_within_a_turn_of_a_flood(
    broker: Broker,
    worker_test_hooks: dict[str, Any],
) -> None:
    alice, _ = await kernel_of(broker, "alice")
    bob, _ = await kernel_of(broker, "bob")
    blocker = await start_blocker(broker, alice, worker_test_hooks)
    flood = []
    for _ in range(50):
        code, body, _ = await broker.post(alice, job(ghz(3), wait=False, shots=64))
        assert code == 202, body
        flood.append(body["job_id"])
    code, body, _ = await broker.post(bob, job(ghz(3), wait=False, shots=10))
    assert code == 202, body
    bobs = broker.service._jobs[body["job_id"]]
    assert bobs.identity["user"] == "bob"  # a named user keeps its name
    assert broker.service._jobs[flood[0]].identity["user"] == "alice"
    # held while they wait behind the blocker: an ended job is kept without its handle
    floods = [broker.service._jobs[j] for j in flood]

    await cancel(broker, alice, blocker)
    await finished(broker, [bobs.job_id])
    assert bobs.status == "completed" and sum(bobs.result["counts"][0].values()) == 10
    handle = bobs.handle
    # 50 of alice's jobs were waiting when bob's arrived; one of them went first.
    ahead = handle.dispatch_seq - handle.queue_seq - 1
    assert ahead <= 1, f"{ahead} jobs were dispatched before bob's"
    seqs = [state.handle.dispatch_seq for state in floods]
    assert len([s for s in seqs if s is not None and s < handle.dispatch_seq]) <= 1
    await finished(broker, flood)
    assert all(broker.service._jobs[j].status == "completed" for j in flood)


@pytest.mark.parametrize(
    "queue_config",
    [{"job_workers": 1, "job_queue_size": 4, "job_queue_per_user": 3, "job_spare_workers": 0}],
)
async def test_a_full_queue_is_429_with_retry_after_whether_or_not_the_client_waits(
    broker: Broker,
    worker_test_hooks: dict[str, Any],
) -> None:
    alice, alice_kernel = await kernel_of(broker, "alice")
    bob, _ = await kernel_of(broker, "bob")
    blocker = await start_blocker(broker, alice, worker_test_hooks)
    accepted = [blocker]
    for _ in range(3):  # alice's share of the queue
        code, body, _ = await broker.post(alice, job(ghz(2), wait=False))
        assert code == 202, body
        accepted.append(body["job_id"])

    for wait in (False, True):
        code, body, response = await broker.post(alice, job(ghz(2), wait=wait))
        assert code == 429, (wait, body)
        assert int(response.headers["Retry-After"]) >= 1
        assert body["retry_after"] == int(response.headers["Retry-After"])
        assert body["scope"] == "user" and body["limit"] == 3
        assert "you already have 3 jobs waiting" in body["message"]

    code, body, _ = await broker.post(bob, job(ghz(2), wait=False))  # bob's share is free
    assert code == 202, body
    accepted.append(body["job_id"])
    code, body, response = await broker.post(bob, job(ghz(2), wait=True))  # 4 of 4 waiting
    assert code == 429 and body["scope"] == "global", body
    assert "the job queue is full" in body["message"] and int(response.headers["Retry-After"]) >= 1

    # Refused before anything was decided or counted: the ledger has the accepted jobs only.
    decided = broker.ledger.entries(EntryFilter(kinds=["job.decided"]))
    assert sorted(e.body["job_id"] for e in decided) == sorted(accepted)

    # %qsubmit in alice's kernel says what happened and what to do.
    messages = await alice_kernel.execute(
        "from jupyter_qsecure.testing.circuits import ghz\nqc = ghz(2)\n%qsubmit qc --no-wait"
    )
    [error] = [m["content"] for m in messages if m["header"]["msg_type"] == "error"]
    assert error["ename"] == "QueueFull"
    assert "you already have 3 jobs waiting" in error["evalue"] and "retry in" in error["evalue"]
    shown = "\n".join(error["traceback"])
    assert "%qsubmit --cancel" in shown and alice not in shown

    await cancel(broker, alice, blocker)
    await finished(broker, accepted)
    assert [broker.service._jobs[j].status for j in accepted[1:]] == ["completed"] * 4


@pytest.mark.parametrize("queue_config", [{"job_workers": 1, "job_spare_workers": 1}])
async def test_a_user_with_nothing_running_does_not_wait_for_another_users_long_job(
    broker: Broker,
    worker_test_hooks: dict[str, Any],
) -> None:
    alice, _ = await kernel_of(broker, "alice")
    bob, _ = await kernel_of(broker, "bob")
    blocker = await start_blocker(broker, alice, worker_test_hooks)  # the only worker
    flood = []
    for _ in range(10):
        code, body, _ = await broker.post(alice, job(ghz(3), wait=False))
        assert code == 202, body
        flood.append(body["job_id"])
    code, body, _ = await broker.post(bob, job(ghz(3), shots=10))  # waits for its result
    assert code == 200 and body["status"] == "completed", body
    assert sum(body["result"]["counts"][0].values()) == 10
    # Served by the spare worker while alice's long job still runs and hers still wait.
    assert await status_of(broker, alice, blocker) == "running"
    assert {await status_of(broker, alice, j) for j in flood} == {"queued"}
    await cancel(broker, alice, blocker)
    await finished(broker, flood)


async def test_queued_and_running_are_distinct_states(
    broker: Broker,
    worker_test_hooks: dict[str, Any],
) -> None:
    alice, kernel = await kernel_of(broker, "alice")
    blocker = await start_blocker(broker, alice, worker_test_hooks)
    code, body, _ = await broker.post(alice, job(ghz(2), wait=False))
    assert code == 202 and body["status"] == "queued", body
    waiting = body["job_id"]
    assert await status_of(broker, alice, blocker) == "running"
    assert await status_of(broker, alice, waiting) == "queued"
    out = await kernel.execute(f"h = %qsubmit --status {waiting}\nprint('STATUS', h.last_status)")
    assert "STATUS queued" in "".join(
        m["content"].get("text", "") for m in out if m["header"]["msg_type"] == "stream"
    )

    await cancel(broker, alice, blocker)
    assert await status_of(broker, alice, blocker) == "cancelled"
    await finished(broker, [waiting])
    assert await status_of(broker, alice, waiting) == "completed"


@pytest.mark.parametrize(("identity_provider", "jobs_per_minute"), [(None, 2)])
async def test_a_fresh_session_of_the_same_user_shares_the_quota(
    broker: Broker,
) -> None:
    # A single-user server with Jupyter's stock login: every token session is a new
    # anonymous user to Jupyter, but one user (the account running the server) to quotas.
    first, _ = await kernel_of(broker, None)
    second, _ = await kernel_of(broker, None)  # a new session: a new anonymous Jupyter user
    assert (await broker.post(first, job(ghz(2), shots=16)))[0] == 200
    code, body, _ = await broker.post(second, job(ghz(2), shots=16))
    assert code == 200, body
    assert body["identity"]["user"] == getpass.getuser()
    code, body, _ = await broker.post(second, job(ghz(2), shots=16))
    assert code == 403 and body["rule"] == "jobs_per_minute", body
    submitted = broker.ledger.entries(EntryFilter(kinds=["job.submitted"]))
    assert {e.body["identity"]["user"] for e in submitted} == {getpass.getuser()}


async def test_an_ended_job_is_served_as_answered_and_only_to_its_owner(broker: Broker) -> None:
    """The broker keeps an ended job compactly (an EndedJob: its record's bytes): GET and
    DELETE of it answer exactly the record its POST answered, to its owner only."""
    alice, _ = await kernel_of(broker, "alice")
    bob, _ = await kernel_of(broker, "bob")
    code, record, answer = await broker.post(alice, job(ghz(3), shots=50))
    assert code == 200 and record["status"] == "completed", record
    job_id = record["job_id"]
    assert isinstance(broker.service._jobs[job_id], EndedJob)
    url = f"{broker.base_url.rstrip('/')}/qsecure/api/jobs/{job_id}"
    for method in ("GET", "DELETE"):  # cancelling an ended job changes nothing
        response = await broker.http.fetch(
            url, method=method, headers={"Authorization": f"Bearer {alice}"}
        )
        assert response.code == 200 and response.body == answer.body, method
        other = await broker.http.fetch(
            url, method=method, headers={"Authorization": f"Bearer {bob}"}, raise_error=False
        )
        assert other.code == 404, method
        assert "counts" not in other.body.decode() and "manifest" not in other.body.decode()
    kinds = [e.kind for e in broker.ledger.entries() if e.correlation_id == job_id]
    assert kinds == ["job.decided", "job.submitted", "job.completed"]

    # a job not waited for: followed to its end in the background, then kept compactly
    code, body, _ = await broker.post(alice, job(ghz(3), wait=False, shots=20))
    assert code == 202, body
    await finished(broker, [body["job_id"]])
    kept = broker.service._jobs[body["job_id"]]
    assert isinstance(kept, EndedJob)
    response = await broker.http.fetch(
        f"{broker.base_url.rstrip('/')}/qsecure/api/jobs/{body['job_id']}",
        headers={"Authorization": f"Bearer {alice}"},
    )
    assert response.body == kept.encoded
    done = json.loads(response.body)
    assert done["status"] == "completed" and sum(done["result"]["counts"][0].values()) == 20
