"""The job broker configured for Dask (``job_executor = "dask"``, the scheduler address
in config), against a real ``distributed.LocalCluster`` with worker processes: a job
submitted with %qsubmit runs on the cluster, comes back signed and verified, is in the
ledger, and has the counts a local run gives for the same seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import LocalCluster
from jobs_helpers import Broker, job, kernel_token, run_cell, server_config

from jupyter_qsecure.jobs.aer_run import run_aer
from jupyter_qsecure.jobs.archive import read_archived
from jupyter_qsecure.testing.circuits import ghz


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    local = LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        # The scheduler serves HTTP even without a dashboard, on 8787 unless told otherwise.
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )
    try:
        yield local
    finally:
        local.close()


@pytest.fixture
def jp_server_config(
    qsecure_data_dir: Path,
    policy_file: Path,
    cluster: LocalCluster,
) -> dict[str, Any]:
    return server_config(
        qsecure_data_dir,
        policy_file,
        job_executor="dask",
        dask_scheduler=cluster.scheduler_address,
    )


async def test_qsubmit_runs_on_the_dask_cluster(
    broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyter_qsecure.jobs.executor import DaskExecutor

    token, client = await kernel_token(broker.fetch, broker.ws_fetch, broker.app)
    executor = broker.service.executor
    assert isinstance(executor, DaskExecutor)
    sent_to_cluster: list[Any] = []
    real_submit = executor.client.submit

    def recording_submit(*args: Any, **kwargs: Any) -> Any:
        sent_to_cluster.append(args[0])
        return real_submit(*args, **kwargs)

    monkeypatch.setattr(executor.client, "submit", recording_submit)
    out = await run_cell(
        client,
        "from jupyter_qsecure.testing.circuits import ghz\n"
        "qc = ghz(4)\n"
        "r = %qsubmit qc --shots 300 --seed 21\n"
        "print('VERIFIED', r.verification.verified)\n"
        "print('JOB', r.job_id)\n",
    )
    assert "VERIFIED True" in out
    job_id = out.split("JOB ", 1)[1].split()[0]
    assert len(sent_to_cluster) == 1  # the job went to the scheduler, not a local worker
    state = broker.service._jobs[job_id]
    # the same payload (as archived for replay) run here, in this process, gives the same
    # counts (an ended job in the broker's store keeps its record, not its payload)
    assert broker.service.flush_archive(60)
    archived = read_archived(broker.service.archive_dir, job_id)
    assert archived is not None
    assert state.result["counts"] == run_aer(dict(archived["payload"]))["counts"]
    kinds = [e.kind for e in broker.ledger.entries() if e.correlation_id == job_id]
    assert kinds == ["job.decided", "job.submitted", "job.completed"]

    code, record, _ = await broker.post(token, job(ghz(3), shots=200, seed=5))
    assert code == 200 and record["status"] == "completed", record
    assert sum(record["result"]["counts"][0].values()) == 200
    assert len(sent_to_cluster) == 2
