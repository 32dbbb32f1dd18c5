"""run_aer and LocalExecutor: reproducible counts, bounded queue, timeouts, cancel, crashes.

The workers run with ``QSECURE_TESTING=1`` so that the test-only payload keys
``_test_sleep`` (sleep inside the worker: a long job) and ``_test_crash`` (``os._exit(1)`` or
SIGSEGV inside the worker) are honoured. Waiting is always on futures or events, never on
sleeps in the test process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from jupyter_qsecure.errors import ConfigError, QSecureError
from jupyter_qsecure.jobs.aer_run import (
    TESTING_ENV,
    circuits_to_qpy,
    noise_model,
    noise_model_names,
    noise_model_sha256,
    run_aer,
)
from jupyter_qsecure.jobs.executor import (
    Executor,
    ExecutorClosed,
    ExecutorError,
    JobCancelled,
    JobFailed,
    JobTimeout,
    LocalExecutor,
    QueueFull,
    ResultNotReady,
    WorkerCrashed,
    executor_from_settings,
)
from jupyter_qsecure.testing.circuits import ghz, mixer

WAIT = 60.0  # upper bound for any single wait on a future; never reached when things work
TEST_ENV = {TESTING_ENV: "1"}


def payload(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "circuits_qpy": circuits_to_qpy([ghz(), mixer()]),
        "shots": 128,
        "seed": 1234,
        "method": None,
        "noise": None,
        "max_parallel_threads": 1,
    }
    body.update(overrides)
    return body


@pytest.fixture(scope="module")
def executor() -> Iterator[LocalExecutor]:
    ex = LocalExecutor(max_workers=2, max_queued=8, worker_env=TEST_ENV)
    yield ex
    ex.close()


# ---- run_aer in this process -----------------------------------------------------------------
def test_run_aer_same_seed_same_counts_and_metadata() -> None:
    body = payload()
    first = run_aer(body)
    second = run_aer(dict(body))
    assert first["counts"] == second["counts"]
    assert len(first["counts"]) == 2
    for counts in first["counts"]:
        assert list(counts) == sorted(counts)
        assert sum(counts.values()) == 128
    assert set(first["counts"][0]) <= {"000", "111"}
    meta = first["metadata"]
    assert meta["backend"] == "aer_simulator"
    assert meta["shots"] == 128 and meta["seed"] == 1234
    assert meta["method"] == "automatic" and meta["num_circuits"] == 2
    assert meta["qiskit_aer"] and meta["qiskit"] and meta["time_taken"] >= 0
    assert len(first["transpiled_hashes"]) == 2
    assert all(len(h) == 64 for h in first["transpiled_hashes"])
    assert first["transpiled_hashes"] == second["transpiled_hashes"]
    other = run_aer(payload(seed=99))
    assert other["counts"] != first["counts"]


@pytest.mark.parametrize("noise", [None, "depolarizing-1e-3+readout-1e-2"])
def test_run_aer_gives_what_the_public_aer_call_gives(
    noise: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # run_aer calls Aer's job function in its own thread; the public
    # AerSimulator.run(...).result() (also the fallback) must give the same counts.
    from jupyter_qsecure.jobs import aer_run

    body = payload(noise=noise, shots=512)
    direct = run_aer(body)
    public_calls: list[int] = []

    def public(simulator: Any, circuits: list[Any], options: dict[str, Any]) -> Any:
        public_calls.append(len(circuits))
        return simulator.run(circuits, **options).result()

    monkeypatch.setattr(aer_run, "_execute", public)
    assert run_aer(dict(body))["counts"] == direct["counts"]
    assert public_calls == [2]


def test_run_aer_falls_back_to_the_public_call() -> None:
    from jupyter_qsecure.jobs.aer_run import _execute

    class PublicOnly:  # a simulator without Aer's internal job function
        def __init__(self) -> None:
            self.options: dict[str, Any] = {}

        def run(self, circuits: list[Any], **options: Any) -> Any:
            self.options = options
            return self

        def result(self) -> str:
            return "result"

    simulator = PublicOnly()
    assert _execute(simulator, [ghz()], {"shots": 7}) == "result"
    assert simulator.options == {"shots": 7}


def test_run_aer_without_seed_records_the_seed_it_drew() -> None:
    result = run_aer(payload(seed=None))
    seed = result["metadata"]["seed"]
    assert isinstance(seed, int)
    assert run_aer(payload(seed=seed))["counts"] == result["counts"]


def test_named_noise_models_are_deterministic() -> None:
    assert "depolarizing-1e-3" in noise_model_names()
    digest = noise_model_sha256("depolarizing-1e-3")
    assert digest == noise_model_sha256("depolarizing-1e-3")
    assert digest != noise_model_sha256("depolarizing-1e-2")
    assert len({noise_model_sha256(name) for name in noise_model_names()}) == len(
        noise_model_names()
    )
    assert noise_model_sha256(None) is None
    assert noise_model("readout-1e-2").noise_instructions == ["measure"]
    noisy = run_aer(payload(noise="depolarizing-1e-2", shots=256))
    assert noisy["metadata"]["noise_model_sha256"] == noise_model_sha256("depolarizing-1e-2")
    assert noisy["counts"] == run_aer(payload(noise="depolarizing-1e-2", shots=256))["counts"]
    assert set(noisy["counts"][0]) - {"000", "111"}, "depolarizing noise leaves a trace"
    with pytest.raises(ValueError, match="unknown noise model 'nope'; known: "):
        noise_model("nope")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"shots": 0}, "shots must be an integer from 1"),
        ({"shots": -5}, "shots must be an integer from 1"),
        ({"shots": 10**9}, "shots must be an integer from 1"),
        ({"shots": True}, "shots must be an integer"),
        ({"seed": -1}, "seed must be an integer from 0"),
        ({"seed": "1"}, "seed must be an integer"),
        ({"circuits_qpy": "not base64 !"}, "circuits_qpy is not base64 QPY"),
        ({"circuits_qpy": "aGVsbG8="}, "circuits_qpy is not base64 QPY"),
        ({"circuits_qpy": 7}, "circuits_qpy must be a base64 QPY string"),
        ({"method": "quantum_magic"}, "unknown simulation method 'quantum_magic'"),
        ({"noise": "loud"}, "unknown noise model 'loud'"),
        ({"surprise": 1}, r"unknown payload keys: \['surprise'\]"),
        ({"max_parallel_threads": -1}, "max_parallel_threads must be"),
    ],
)
def test_run_aer_rejects_bad_payloads(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_aer(payload(**overrides))


def test_run_aer_rejects_unbound_parameters_and_circuits_without_measurements() -> None:
    theta = Parameter("theta")
    qc = QuantumCircuit(1)
    qc.rx(theta, 0)
    qc.measure_all()
    with pytest.raises(ValueError, match="circuit 0 has unbound parameters: theta"):
        run_aer(payload(circuits_qpy=circuits_to_qpy(qc)))
    bare = QuantumCircuit(2)
    bare.h(0)
    with pytest.raises(ValueError, match="circuit 1 has no measurements"):
        run_aer(payload(circuits_qpy=circuits_to_qpy([ghz(), bare])))
    with pytest.raises(ValueError, match="payload must be a dict"):
        run_aer([1, 2])  # type: ignore[arg-type]


def test_transpile_cache_keeps_circuits_apart_and_keeps_checking() -> None:
    from jupyter_qsecure.jobs import aer_run
    from jupyter_qsecure.jobs.canonical import hash_many

    aer_run._TRANSPILED.clear()
    sent = circuits_to_qpy([ghz(), mixer()])  # one QPY text, sent again and again
    first = run_aer(payload(circuits_qpy=sent))
    other = run_aer(payload(circuits_qpy=circuits_to_qpy([mixer(), ghz(4)])))
    again = run_aer(payload(circuits_qpy=sent, seed=99))  # served from the cache
    assert len(aer_run._TRANSPILED) == 2
    assert again["transpiled_hashes"] == first["transpiled_hashes"]
    assert other["transpiled_hashes"] != first["transpiled_hashes"]
    assert again["counts"] != first["counts"]  # the new seed is used, not a cached result
    assert run_aer(payload(circuits_qpy=sent))["counts"] == first["counts"]
    assert run_aer(payload())["transpiled_hashes"] == first["transpiled_hashes"]
    # what the cache returns is what transpiling the circuits again gives
    _, passes = aer_run._simulator_and_passes("automatic", None)
    assert hash_many(passes.run([ghz(), mixer()])) == first["transpiled_hashes"]
    # refused circuits are never cached: refused again, every time
    bare = QuantumCircuit(1)
    bare.h(0)
    for _ in range(2):
        with pytest.raises(ValueError, match="no measurements"):
            run_aer(payload(circuits_qpy=circuits_to_qpy(bare)))
    assert len(aer_run._TRANSPILED) == 3


def test_test_hooks_are_refused_unless_the_worker_is_in_testing_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TESTING_ENV, raising=False)
    with pytest.raises(ValueError, match="test-only and need QSECURE_TESTING=1"):
        run_aer(payload(_test_sleep=0.01))
    with pytest.raises(ValueError, match="test-only"):
        run_aer(payload(_test_crash=True))


# ---- LocalExecutor: results ----------------------------------------------------------------
def test_local_executor_matches_in_process_run(executor: LocalExecutor) -> None:
    assert isinstance(executor, Executor)
    body = payload()
    expected = run_aer(body)
    noisy_expected = run_aer(payload(noise="depolarizing-1e-3", shots=200, seed=7))
    handles = [executor.submit(f"same-{i}", dict(body), timeout=WAIT) for i in range(3)]
    noisy = executor.submit(
        "noisy", payload(noise="depolarizing-1e-3", shots=200, seed=7), timeout=WAIT
    )
    for handle in handles:
        result = handle.result(WAIT)
        assert result["counts"] == expected["counts"]
        assert result["transpiled_hashes"] == expected["transpiled_hashes"]
        assert handle.status == "completed" and handle.done()
        assert handle.started_at is not None and handle.finished_at is not None
    noisy_result = noisy.result(WAIT)
    assert noisy_result["counts"] == noisy_expected["counts"]
    assert noisy_result["metadata"]["noise_model_sha256"] == noise_model_sha256("depolarizing-1e-3")


def test_job_errors_come_back_as_job_failed(executor: LocalExecutor) -> None:
    handle = executor.submit("bad-shots", payload(shots=0), timeout=WAIT)
    with pytest.raises(JobFailed, match="job bad-shots failed: ValueError: shots must be") as info:
        handle.result(WAIT)
    assert "Traceback" in info.value.detail
    assert isinstance(info.value, QSecureError)
    assert handle.status == "failed"
    assert executor.submit("after-bad", payload(), timeout=WAIT).result(WAIT)["counts"]


def test_submit_never_blocks_the_event_loop(executor: LocalExecutor) -> None:
    async def scenario() -> tuple[float, int, dict[str, Any]]:
        started = time.perf_counter()
        handle = executor.submit("async-1", payload(_test_sleep=0.5), timeout=WAIT)
        submit_seconds = time.perf_counter() - started
        ticks = 0
        waiter = handle.wait()
        while not waiter.done():
            await asyncio.sleep(0.01)  # the loop keeps turning while the job runs
            ticks += 1
        return submit_seconds, ticks, await waiter

    submit_seconds, ticks, result = asyncio.run(scenario())
    assert submit_seconds < 0.1
    assert ticks >= 20
    assert result["counts"] == run_aer(payload())["counts"]


def test_wait_delivers_job_errors_to_asyncio(executor: LocalExecutor) -> None:
    async def scenario() -> None:
        with pytest.raises(JobFailed, match="unknown noise model"):
            await executor.submit("async-bad", payload(noise="loud"), timeout=WAIT).wait()

    asyncio.run(scenario())


def test_submit_validates_its_arguments(executor: LocalExecutor) -> None:
    with pytest.raises(ExecutorError, match="timeout must be a positive number"):
        executor.submit("t0", payload(), timeout=0)
    with pytest.raises(ExecutorError, match="timeout must be a positive number"):
        executor.submit("tinf", payload(), timeout=float("inf"))
    with pytest.raises(ExecutorError, match="payload must be a dict"):
        executor.submit("tp", "payload", timeout=1)  # type: ignore[arg-type]
    long = executor.submit("dup", payload(_test_sleep=30), timeout=WAIT)
    try:
        with pytest.raises(ExecutorError, match="job dup is already queued or running"):
            executor.submit("dup", payload(), timeout=WAIT)
        with pytest.raises(ResultNotReady, match="job dup is still"):
            long.result(timeout=0.01)
        assert isinstance(ResultNotReady("x"), TimeoutError)
    finally:
        assert executor.cancel("dup")
    with pytest.raises(JobCancelled):
        long.result(WAIT)


# ---- LocalExecutor: backpressure, timeouts, cancel, crashes ---------------------------------
def test_queue_full_gives_retry_after_and_cancel_of_queued_jobs_is_immediate() -> None:
    ex = LocalExecutor(max_workers=1, max_queued=2, worker_env=TEST_ENV)
    try:
        assert ex.capacity == 2 and ex.queue_depth == 0
        blocker = ex.submit("blocker", payload(_test_sleep=60), timeout=WAIT)
        assert blocker.wait_started(WAIT) and blocker.status == "running"
        first = ex.submit("queued-1", payload(), timeout=WAIT)
        second = ex.submit("queued-2", payload(), timeout=WAIT)
        assert ex.queue_depth == 2 and first.status == "queued"
        with pytest.raises(QueueFull, match="the job queue is full") as info:
            ex.submit("overflow", payload(), timeout=WAIT)
        assert blocker.status == "running"  # refused while the slot is busy: no waiting
        assert isinstance(info.value.retry_after_seconds, int)
        assert info.value.retry_after_seconds >= 1
        assert "retry in" in str(info.value)

        assert ex.cancel("queued-1") is True
        assert first.done() and first.status == "cancelled"  # no waiting: it never ran
        with pytest.raises(JobCancelled, match="cancelled before it started"):
            first.result(0)
        assert ex.cancel("queued-1") is False
        third = ex.submit("queued-3", payload(), timeout=WAIT)  # room again

        assert ex.cancel("blocker") is True
        with pytest.raises(JobCancelled, match="job blocker was cancelled"):
            blocker.result(WAIT)
        expected = run_aer(payload())["counts"]
        assert second.result(WAIT)["counts"] == expected
        assert third.result(WAIT)["counts"] == expected
        assert ex.queue_depth == 0 and ex.running == 0
    finally:
        ex.close()


def test_owners_take_turns_and_one_owner_cannot_fill_the_queue() -> None:
    ex = LocalExecutor(max_workers=1, max_queued=6, max_queued_per_owner=4, worker_env=TEST_ENV)
    try:
        assert ex.capacity == 6 and ex.capacity_per_owner == 4
        blocker = ex.submit("blocker", payload(_test_sleep=60), timeout=WAIT, owner="a")
        assert blocker.wait_started(WAIT)
        flood = [ex.submit(f"a-{i}", payload(), timeout=WAIT, owner="a") for i in range(4)]
        with pytest.raises(QueueFull) as info:  # a's share is taken; the queue is not full
            ex.submit("a-4", payload(), timeout=WAIT, owner="a")
        assert info.value.scope == "user" and info.value.limit == 4 and info.value.waiting == 4
        assert info.value.retry_after_seconds >= 1
        with pytest.raises(QueueFull, match="already waiting"):
            ex.admit("a")

        place = ex.admit("b")  # b's share is untouched: a place is held for b's job
        assert place.held and ex.waiting("b") == 1
        late = ex.submit("b-0", payload(), timeout=WAIT, owner="b", place=place)
        assert not place.held and ex.waiting("b") == 1  # the place became the queued job
        with pytest.raises(ExecutorError, match="already used"):
            ex.submit("b-1", payload(), timeout=WAIT, owner="b", place=place)
        held = ex.admit("c")  # the 6th waiting job: the queue is now full for everyone
        with pytest.raises(QueueFull, match="the job queue is full") as info:
            ex.admit("d")
        assert info.value.scope == "global" and info.value.limit == 6
        held.release()
        held.release()  # idempotent
        assert ex.waiting("c") == 0 and ex.admit("d").held  # room again

        assert ex.cancel("blocker")
        expected = run_aer(payload())["counts"]
        assert late.result(WAIT)["counts"] == expected
        assert all(h.result(WAIT)["counts"] == expected for h in flood)
        # Dispatch order, not time: b's job went after one of a's, not after all four.
        assert late.queue_seq is not None and late.dispatch_seq is not None
        assert late.dispatch_seq - late.queue_seq - 1 == 1
        assert [h.dispatch_seq for h in flood] == [2, 4, 5, 6]
    finally:
        ex.close()


def test_a_spare_worker_serves_an_owner_with_nothing_running_at_once() -> None:
    ex = LocalExecutor(max_workers=1, max_queued=8, spare_workers=1, worker_env=TEST_ENV)
    try:
        blocker = ex.submit("blocker", payload(_test_sleep=600), timeout=900, owner="a")
        assert blocker.wait_started(WAIT)
        more = ex.submit("a-1", payload(), timeout=WAIT, owner="a")
        with ex._lock:  # one owner so far: no spare process was started for it
            assert len(ex._workers) == 1
        late = ex.submit("b-0", payload(), timeout=WAIT, owner="b", here=True)
        # b has nothing running: its job runs on the spare while a's long job goes on
        assert late.result(WAIT)["counts"] == run_aer(payload())["counts"]
        assert blocker.status == "running" and more.status == "queued"  # a waits its turn
        assert ex.cancel("blocker")
        assert more.result(WAIT)["counts"]
    finally:
        ex.close()


def test_timeout_kills_the_job_and_the_executor_keeps_serving(executor: LocalExecutor) -> None:
    started = time.perf_counter()
    slow = executor.submit("slow", payload(_test_sleep=60), timeout=1.0)
    neighbour = executor.submit("neighbour", payload(), timeout=WAIT)
    with pytest.raises(JobTimeout, match=r"job slow exceeded its timeout of 1 s") as info:
        slow.result(WAIT)
    assert time.perf_counter() - started < 15
    assert "worker process was killed" in str(info.value)
    assert slow.status == "failed"
    assert neighbour.result(WAIT)["counts"] == run_aer(payload())["counts"]
    after = [executor.submit(f"after-timeout-{i}", payload(), timeout=WAIT) for i in range(2)]
    for handle in after:
        assert handle.result(WAIT)["counts"] == neighbour.result()["counts"]


def test_cancel_running_job_kills_its_worker(executor: LocalExecutor) -> None:
    running = executor.submit("to-cancel", payload(_test_sleep=60), timeout=WAIT)
    assert running.wait_started(WAIT)
    started = time.perf_counter()
    assert executor.cancel("to-cancel") is True
    with pytest.raises(JobCancelled, match="job to-cancel was cancelled"):
        running.result(WAIT)
    assert time.perf_counter() - started < 10
    assert running.status == "cancelled"
    assert executor.cancel("to-cancel") is False
    assert executor.cancel("never-submitted") is False
    assert executor.submit("after-cancel", payload(), timeout=WAIT).result(WAIT)["counts"]


@pytest.mark.parametrize(
    ("crash", "how"), [(True, "exited with code 1"), ("segfault", "was killed by signal SIGSEGV")]
)
def test_worker_crash_fails_only_that_job(executor: LocalExecutor, crash: Any, how: str) -> None:
    crashing = executor.submit("crash", payload(_test_crash=crash), timeout=WAIT)
    bystander = executor.submit("bystander", payload(_test_sleep=0.2), timeout=WAIT)
    with pytest.raises(
        WorkerCrashed, match=f"job crash did not complete: its worker process {how}"
    ):
        crashing.result(WAIT)
    assert crashing.status == "failed"
    expected = run_aer(payload())["counts"]
    assert bystander.result(WAIT)["counts"] == expected
    handles = [executor.submit(f"after-crash-{i}", payload(), timeout=WAIT) for i in range(3)]
    assert [h.result(WAIT)["counts"] for h in handles] == [expected] * 3


def test_close_cancels_queued_and_running_jobs_and_refuses_new_ones() -> None:
    ex = LocalExecutor(max_workers=1, max_queued=4, worker_env=TEST_ENV)
    running = ex.submit("r", payload(_test_sleep=60), timeout=WAIT)
    assert running.wait_started(WAIT)
    queued = ex.submit("q", payload(), timeout=WAIT)
    ex.close()
    with pytest.raises(JobCancelled, match="executor shut down"):
        running.result(WAIT)
    with pytest.raises(JobCancelled, match="executor shut down before it started"):
        queued.result(0)
    with pytest.raises(ExecutorClosed):
        ex.submit("late", payload(), timeout=WAIT)
    ex.close()  # idempotent


def test_close_with_wait_lets_jobs_finish() -> None:
    with LocalExecutor(max_workers=1, max_queued=4) as ex:
        handles = [ex.submit(f"w{i}", payload(), timeout=WAIT) for i in range(3)]
        ex.close(wait=True)
        assert [h.status for h in handles] == ["completed"] * 3


def test_executor_from_settings() -> None:
    ex = executor_from_settings("local", max_workers=1, max_queued=3)
    try:
        assert isinstance(ex, LocalExecutor) and ex.capacity == 3 and ex.max_workers == 1
    finally:
        ex.close()
    with pytest.raises(ConfigError, match="unknown executor 'cloud'"):
        executor_from_settings("cloud")
    with pytest.raises(ConfigError, match="needs a scheduler address"):
        executor_from_settings("dask")
    with pytest.raises(ConfigError, match="fork is unsafe"):
        LocalExecutor(mp_context="fork")
    with pytest.raises(ConfigError, match="max_workers must be >= 1"):
        LocalExecutor(max_workers=0)


# ---- submit(here=True): the waiting thread runs the job -----------------------------------
def _until_a_worker_is_idle(ex: LocalExecutor) -> None:
    # The result is delivered before the worker is handed back: wait for the hand-back.
    with ex._returned:
        assert ex._returned.wait_for(lambda: bool(ex._idle), WAIT)


@pytest.fixture
def idle_executor() -> Iterator[LocalExecutor]:
    """One worker, warm and idle (a job has run on it)."""
    ex = LocalExecutor(max_workers=1, max_queued=4, worker_env=TEST_ENV)
    ex.submit("warm", payload(), timeout=WAIT).result(WAIT)
    _until_a_worker_is_idle(ex)
    yield ex
    ex.close()


def test_here_runs_the_job_in_the_thread_that_waits(idle_executor: LocalExecutor) -> None:
    import threading

    handle = idle_executor.submit("h1", payload(), timeout=WAIT, here=True)
    assert handle._run_here is not None and handle.status == "queued"  # reserved, not queued
    assert idle_executor.queue_depth == 0
    runners: list[int] = []
    original = idle_executor._run

    def spy(worker: Any, job: Any) -> bool:
        runners.append(threading.get_ident())
        return original(worker, job)

    idle_executor._run = spy  # type: ignore[method-assign]
    result = handle.result(WAIT)
    assert runners == [threading.get_ident()]  # this thread talked to the worker
    queued = idle_executor.submit("h2", payload(), timeout=WAIT).result(WAIT)
    assert result["counts"] == queued["counts"]  # same job, same seed: same counts
    assert handle.status == "completed" and handle.started_at and handle.finished_at


def test_here_queues_when_no_worker_is_idle(idle_executor: LocalExecutor) -> None:
    busy = idle_executor.submit("busy", payload(_test_sleep=0.5), timeout=WAIT)
    assert busy.wait_started(WAIT)
    handle = idle_executor.submit("h3", payload(), timeout=WAIT, here=True)
    assert handle._run_here is None and idle_executor.queue_depth == 1  # the normal queue
    assert handle.result(WAIT)["counts"] and busy.result(WAIT)["counts"]


def test_here_cancelled_before_it_ran_frees_its_worker(idle_executor: LocalExecutor) -> None:
    handle = idle_executor.submit("h4", payload(), timeout=WAIT, here=True)
    assert idle_executor.cancel("h4")
    with pytest.raises(JobCancelled, match="before it started"):
        handle.result(WAIT)
    _until_a_worker_is_idle(idle_executor)  # handed back unused
    assert idle_executor.submit("h5", payload(), timeout=WAIT).result(WAIT)["counts"]


@pytest.mark.parametrize("crash", [True, "segfault"])
def test_here_crash_and_timeout_fail_only_that_job(
    idle_executor: LocalExecutor, crash: Any
) -> None:
    crashing = idle_executor.submit("h6", payload(_test_crash=crash), timeout=WAIT, here=True)
    with pytest.raises(WorkerCrashed):
        crashing.result(WAIT)
    slow = idle_executor.submit("h7", payload(_test_sleep=30), timeout=0.5, here=True)
    with pytest.raises(JobTimeout):
        slow.result(WAIT)
    again = idle_executor.submit("h8", payload(), timeout=WAIT, here=True)
    assert again.result(WAIT)["counts"]  # a fresh worker serves the next job


def test_close_cancels_a_reserved_job() -> None:
    ex = LocalExecutor(max_workers=1, max_queued=4, worker_env=TEST_ENV)
    ex.submit("warm", payload(), timeout=WAIT).result(WAIT)
    _until_a_worker_is_idle(ex)
    handle = ex.submit("h9", payload(), timeout=WAIT, here=True)
    assert handle._run_here is not None
    ex.close()
    with pytest.raises(JobCancelled, match="shut down before it started"):
        handle.result(WAIT)


class _CountingCondition:
    """The executor's condition, counting notify_all calls (wake-ups of its threads)."""

    def __init__(self, cond: Any) -> None:
        self._cond = cond
        self.notified = 0

    def notify_all(self) -> None:
        self.notified += 1
        self._cond.notify_all()

    def __enter__(self) -> Any:
        return self._cond.__enter__()

    def __exit__(self, *exc: object) -> Any:
        return self._cond.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cond, name)


def test_a_job_run_here_with_nothing_queued_wakes_no_slot_thread(
    idle_executor: LocalExecutor,
) -> None:
    # The idle slot thread waits for a queued job: a job's end, its worker's return or a
    # spent place given back change nothing for it, and waking it costs a thread switch.
    counting = _CountingCondition(idle_executor._slot_cond)
    idle_executor._slot_cond = counting  # type: ignore[assignment]
    place = idle_executor.admit("")  # the owner the warm-up job had: no new owner
    handle = idle_executor.submit("h8", payload(), timeout=WAIT, here=True, owner="", place=place)
    place.release()  # what the broker does once the job was submitted: a no-op
    assert handle.result(WAIT)["counts"]
    _until_a_worker_is_idle(idle_executor)
    assert counting.notified == 0
    # ...while a queued job still wakes it, and runs
    assert idle_executor.submit("h9", payload(), timeout=WAIT, owner="").result(WAIT)
    assert counting.notified >= 1


# ---- a queued here=True job: the worker is handed to the thread that waits for it ----------
def _runner_spy(ex: LocalExecutor) -> list[str]:
    """Record which thread talks to the worker for each job (by job id and thread name)."""
    import threading

    ran: list[str] = []
    original = ex._run

    def spy(worker: Any, job: Any) -> bool:
        ran.append(f"{job.handle.job_id}@{threading.current_thread().name}")
        return original(worker, job)

    ex._run = spy  # type: ignore[method-assign]
    return ran


def _busy(ex: LocalExecutor, job_id: str, seconds: float) -> Any:
    """A job that keeps the only worker busy (queued normally: a slot thread runs it)."""
    handle = ex.submit(job_id, payload(_test_sleep=seconds), timeout=WAIT)
    assert handle.wait_started(WAIT)
    return handle


def test_a_queued_here_job_runs_in_its_own_thread_without_waking_a_slot_thread(
    idle_executor: LocalExecutor,
) -> None:
    import threading

    ran = _runner_spy(idle_executor)
    busy = _busy(idle_executor, "busy", 0.5)
    counting = _CountingCondition(idle_executor._slot_cond)
    idle_executor._slot_cond = counting  # type: ignore[assignment]
    handle = idle_executor.submit("q1", payload(), timeout=WAIT, here=True)
    assert handle._run_here is None and idle_executor.queue_depth == 1  # it had to queue
    assert handle.result(WAIT)["counts"] == run_aer(payload())["counts"]
    assert busy.result(WAIT)["counts"]
    # busy's thread handed its worker straight to this one: no slot thread was woken
    assert ran == ["busy@qsecure-executor-0", f"q1@{threading.current_thread().name}"]
    assert counting.notified == 0
    assert handle.status == "completed" and handle.dispatch_seq == busy.dispatch_seq + 1


def test_a_queued_here_job_whose_worker_dies_is_reported_and_the_next_runs(
    idle_executor: LocalExecutor,
) -> None:
    _busy(idle_executor, "busy", 0.3)
    crashing = idle_executor.submit("q2", payload(_test_crash=True), timeout=WAIT, here=True)
    assert crashing._run_here is None  # queued behind busy, then handed to this thread
    with pytest.raises(WorkerCrashed, match="q2 did not complete"):
        crashing.result(WAIT)
    assert crashing.status == "failed"
    _busy(idle_executor, "busy2", 0.3)
    again = idle_executor.submit("q3", payload(), timeout=WAIT, here=True)
    assert again.result(WAIT)["counts"]  # a fresh worker, handed over the same way


def test_a_queued_here_job_cancelled_while_it_waits_or_runs_stops(
    idle_executor: LocalExecutor,
) -> None:
    import threading

    ran = _runner_spy(idle_executor)
    busy = _busy(idle_executor, "busy", 0.3)
    waiting = idle_executor.submit("q4", payload(), timeout=WAIT, here=True)
    assert idle_executor.cancel("q4")
    with pytest.raises(JobCancelled, match="q4 was cancelled before it started"):
        waiting.result(WAIT)
    assert busy.result(WAIT)["counts"]
    # cancelled while it runs in the thread that waited for it: its worker is killed
    _busy(idle_executor, "busy2", 0.3)
    slow = idle_executor.submit("q5", payload(_test_sleep=600), timeout=900, here=True)
    errors: list[BaseException | None] = []
    waiter = threading.Thread(target=lambda: errors.append(slow.exception(WAIT)), name="waiter")
    waiter.start()
    assert slow.wait_started(WAIT)
    assert idle_executor.cancel("q5")
    waiter.join(WAIT)
    assert len(errors) == 1 and isinstance(errors[0], JobCancelled)
    assert "q5@waiter" in ran and slow.status == "cancelled"
    assert idle_executor.submit("q6", payload(), timeout=WAIT, here=True).result(WAIT)["counts"]


def test_a_queued_here_job_whose_submitter_stops_waiting_still_runs(
    idle_executor: LocalExecutor,
) -> None:
    ran = _runner_spy(idle_executor)
    blocker = _busy(idle_executor, "blocker", 600)
    handle = idle_executor.submit("q7", payload(), timeout=WAIT, here=True)
    with pytest.raises(ResultNotReady, match="q7 is still queued"):
        handle.result(0.05)  # the blocker holds the only worker for ten minutes
    assert idle_executor.cancel("blocker")
    # nobody waits for q7 now: a slot thread runs it on a fresh worker
    with idle_executor._returned:
        assert idle_executor._returned.wait_for(lambda: handle.done(), WAIT)
    assert handle.result(WAIT)["counts"] == run_aer(payload())["counts"]
    assert ran[-1].startswith("q7@qsecure-executor-") and blocker.status == "cancelled"
