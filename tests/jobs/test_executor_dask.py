"""DaskExecutor on a real distributed.LocalCluster: same counts as local runs, same errors.

One small cluster for the module: one worker process (with a nanny, so that it can be
restarted), one thread, ``QSECURE_TESTING=1`` in the worker for the test-only payload keys,
and ``allowed-failures=0`` on the scheduler so that a crashing job fails on its first crash.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import dask
import pytest
from distributed import LocalCluster

from jupyter_qsecure.jobs.aer_run import TESTING_ENV, circuits_to_qpy, run_aer
from jupyter_qsecure.jobs.executor import (
    DaskExecutor,
    Executor,
    ExecutorUnavailable,
    JobCancelled,
    JobFailed,
    JobTimeout,
    LocalExecutor,
    QueueFull,
    WorkerCrashed,
    executor_from_settings,
)
from jupyter_qsecure.testing.circuits import ghz, mixer

WAIT = 120.0


#: LocalCluster closes, for good, the nanny of a worker still missing from the scheduler
#: ``lost-worker-timeout`` (15 s by default, read when a worker leaves) after a worker of its
#: name left. On a loaded machine a restart (4 s to stop, then a new process importing Aer)
#: can take longer, or start within 15 s of the previous one: the nanny is then closed while
#: its new worker runs the next job, which dies as KilledWorker (allowed-failures is 0 here).
#: The executor starts such a lost worker again (see the test below), but cannot save the
#: job it was running; the module's cluster keeps its nanny instead.
CLUSTER_SETTINGS = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.deploy.lost-worker-timeout": "1 hour",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with dask.config.set(CLUSTER_SETTINGS):
        local = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # The scheduler serves HTTP even without a dashboard, on 8787 unless told otherwise;
            # a port taken there (another cluster) makes distributed warn and pick another one.
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            env={TESTING_ENV: "1"},
        )
        try:
            yield local
        finally:
            local.close()


@pytest.fixture(scope="module")
def executor(cluster: LocalCluster) -> Iterator[DaskExecutor]:
    ex = DaskExecutor(cluster=cluster, max_queued=8)
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def body() -> dict[str, Any]:
    return {
        "circuits_qpy": circuits_to_qpy([ghz(4), mixer()]),
        "shots": 200,
        "seed": 4242,
        "method": None,
        "noise": None,
        "max_parallel_threads": 1,
    }


def test_dask_counts_match_local_executor_and_in_process(
    executor: DaskExecutor, body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(executor, Executor)
    noisy_body = {**body, "noise": "depolarizing-1e-3+readout-1e-2", "seed": 5}
    calling_threads: list[threading.Thread] = []
    real_submit = executor.client.submit

    def recording_submit(*args: Any, **kwargs: Any) -> Any:
        calling_threads.append(threading.current_thread())
        return real_submit(*args, **kwargs)

    monkeypatch.setattr(executor.client, "submit", recording_submit)
    on_dask = executor.submit("dask-1", dict(body), timeout=WAIT)
    noisy_dask = executor.submit("dask-noisy", noisy_body, timeout=WAIT)
    with LocalExecutor(max_workers=1, max_queued=4) as local:
        on_local = local.submit("local-1", dict(body), timeout=WAIT).result(WAIT)
        noisy_local = local.submit("local-noisy", noisy_body, timeout=WAIT).result(WAIT)
    in_process = run_aer(dict(body))
    dask_result = on_dask.result(WAIT)
    assert dask_result["counts"] == on_local["counts"] == in_process["counts"]
    assert dask_result["transpiled_hashes"] == in_process["transpiled_hashes"]
    assert dask_result["metadata"]["seed"] == 4242
    assert noisy_dask.result(WAIT)["counts"] == noisy_local["counts"]
    assert on_dask.status == "completed"
    # submit() only queues: the cluster round trip happens on the dispatcher thread
    assert calling_threads and threading.main_thread() not in calling_threads


def test_dask_job_errors_come_back_as_job_failed(
    executor: DaskExecutor, body: dict[str, Any]
) -> None:
    handle = executor.submit("dask-bad", {**body, "shots": -1}, timeout=WAIT)
    with pytest.raises(JobFailed, match="job dask-bad failed: ValueError: shots must be"):
        handle.result(WAIT)


def test_dask_queue_full_cancel_and_timeout(cluster: LocalCluster, body: dict[str, Any]) -> None:
    # One worker thread: the blocker runs, one job may wait (max_queued=1), the next is refused.
    with DaskExecutor(cluster=cluster, max_queued=1) as executor:
        blocker = executor.submit("dask-blocker", {**body, "_test_sleep": 60}, timeout=3.0)
        assert blocker.wait_started(WAIT)
        queued = executor.submit("dask-queued", dict(body), timeout=WAIT)
        assert executor.queue_depth == 1 and executor.capacity == 1
        with pytest.raises(QueueFull) as info:
            executor.submit("dask-overflow", dict(body), timeout=WAIT)
        assert info.value.retry_after_seconds >= 1
        assert executor.cancel("dask-queued") is True
        with pytest.raises(JobCancelled, match="cancelled before it started"):
            queued.result(0)
        # The blocker exceeds its 3 s timeout: it fails, and its worker is restarted.
        started = time.perf_counter()
        with pytest.raises(JobTimeout, match="job dask-blocker exceeded its timeout of 3 s"):
            blocker.result(WAIT)
        assert time.perf_counter() - started < 30
        after = executor.submit("dask-after-timeout", dict(body), timeout=WAIT)
        assert after.result(WAIT)["counts"] == run_aer(dict(body))["counts"]


def test_dask_owners_take_turns(cluster: LocalCluster, body: dict[str, Any]) -> None:
    with DaskExecutor(cluster=cluster, max_queued=8, max_queued_per_owner=4) as executor:
        blocker = executor.submit(
            "dask-fair-blocker", {**body, "_test_sleep": 60}, timeout=WAIT, owner="a"
        )
        assert blocker.wait_started(WAIT)
        flood = [
            executor.submit(f"dask-fair-a{i}", dict(body), timeout=WAIT, owner="a")
            for i in range(4)
        ]
        with pytest.raises(QueueFull) as info:
            executor.admit("a")
        assert info.value.scope == "user"
        late = executor.submit("dask-fair-b", dict(body), timeout=WAIT, owner="b")
        assert executor.cancel("dask-fair-blocker") is True
        expected = run_aer(dict(body))["counts"]
        assert late.result(WAIT)["counts"] == expected
        assert all(h.result(WAIT)["counts"] == expected for h in flood)
        assert late.queue_seq is not None and late.dispatch_seq is not None
        assert late.dispatch_seq - late.queue_seq - 1 == 1  # one of a's four went first


def test_dask_cancel_running_job(executor: DaskExecutor, body: dict[str, Any]) -> None:
    running = executor.submit("dask-running", {**body, "_test_sleep": 60}, timeout=WAIT)
    assert running.wait_started(WAIT)
    assert executor.cancel("dask-running") is True
    with pytest.raises(JobCancelled, match="job dask-running was cancelled"):
        running.result(5)
    assert executor.cancel("dask-running") is False
    after = executor.submit("dask-after-cancel", dict(body), timeout=WAIT)
    assert after.result(WAIT)["counts"] == run_aer(dict(body))["counts"]


def test_dask_worker_crash_is_worker_crashed(executor: DaskExecutor, body: dict[str, Any]) -> None:
    crashing = executor.submit("dask-crash", {**body, "_test_crash": True}, timeout=WAIT)
    with pytest.raises(WorkerCrashed, match="job dask-crash did not complete: the Dask worker"):
        crashing.result(WAIT)
    after = executor.submit("dask-after-crash", dict(body), timeout=WAIT)
    assert after.result(WAIT)["counts"] == run_aer(dict(body))["counts"]


@pytest.mark.parametrize("how", ["cancel", "crash"])
def test_dask_job_after_a_restart_runs_when_the_cluster_drops_the_worker(
    body: dict[str, Any], how: str, caplog: pytest.LogCaptureFixture
) -> None:
    # See CLUSTER_SETTINGS: a lost-worker-timeout of 0 makes every restart and crash lose
    # the worker for good, so the next job had no worker to run on and stayed "running".
    settings = {**CLUSTER_SETTINGS, "distributed.deploy.lost-worker-timeout": 0}
    with dask.config.set(settings):
        with (
            LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                env={TESTING_ENV: "1"},
            ) as local,
            DaskExecutor(cluster=local, max_queued=2) as executor,
        ):
            if how == "cancel":
                running = executor.submit("dask-drop", {**body, "_test_sleep": 60}, timeout=WAIT)
                assert running.wait_started(WAIT)
                assert executor.cancel("dask-drop") is True
                with pytest.raises(JobCancelled):
                    running.result(5)
            else:
                crashing = executor.submit("dask-drop", {**body, "_test_crash": True}, timeout=WAIT)
                with pytest.raises(WorkerCrashed):
                    crashing.result(WAIT)
            after = executor.submit("dask-after-drop", dict(body), timeout=WAIT)
            assert after.result(WAIT)["counts"] == run_aer(dict(body))["counts"]
    # the cluster did drop its worker (else this test shows nothing): the executor said so
    assert "the Dask cluster lost worker(s) {0}" in caplog.text


def test_dask_unreachable_scheduler_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ExecutorUnavailable, match="cannot connect to the Dask scheduler"):
        executor_from_settings("dask", address=f"tcp://127.0.0.1:{port}", connect_timeout=1)
