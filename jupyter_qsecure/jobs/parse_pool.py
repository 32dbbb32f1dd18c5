"""ParsePool: submitted circuits parsed in worker processes with memory and CPU limits.

The broker never parses a circuit in the server process (see
:mod:`jupyter_qsecure.jobs.parse_worker` for what a worker does and why). This pool keeps up
to ``max_workers`` parse workers, started with ``spawn`` (the server has threads) on first
use and whenever one is needed and none is idle; each serves one request at a time over a
pipe, driven by the broker thread whose request it parses (no hand-off between threads).

A request that costs a worker its life costs nothing else: past its CPU budget the kernel
stops it (``SIGXCPU``), past its memory budget an allocation fails (the worker answers, or
dies), past the wall-clock timeout the pool kills it; the request gets :class:`ParseRefused`
(HTTP 422) naming the limit, and the next request gets a fresh worker. When no worker
can be had in time (all busy, or none can start) the request gets :class:`ParseUnavailable`
(HTTP 503).

It is a small pool of its own, not :class:`concurrent.futures.ProcessPoolExecutor`: that
pool breaks for every caller when one worker dies, and cannot kill one task.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for
from typing import Any

from ..errors import ConfigError, QSecureError
from .declared import Excess, OverPolicy
from .local_executor import WorkerProcess, _describe_exit, _spawnable_main
from .parse_worker import CircuitError, encode_request, worker_main
from .policy import EnvironmentPolicy

__all__ = ["ParsePool", "ParseRefused", "ParseUnavailable", "ParsedCircuits"]

log = logging.getLogger(__name__)

#: Largest reply read from a worker (hashes, summaries and the QPY text of the circuits).
MAX_REPLY_BYTES = 256 << 20


class ParseRefused(QSecureError):
    """The circuits cannot be read, or reading them broke a worker's limits (HTTP 422)."""


class ParseUnavailable(QSecureError):
    """No parse worker could take the request in time (HTTP 503)."""


@dataclass(frozen=True)
class ParsedCircuits:
    """What a worker returns: canonical hashes, policy summaries, QPY for the Aer worker."""

    hashes: list[str]
    summaries: list[dict[str, Any]]
    qpy: str


class ParsePool:
    """Parse workers: ``memory_mb`` MiB of address space and ``cpu_seconds`` of CPU per
    request (0: no such limit), ``timeout`` seconds of wall clock per request (default
    ``3 x cpu_seconds``, at least 10) including the wait for a free worker."""

    def __init__(
        self,
        max_workers: int = 2,
        *,
        memory_mb: int = 2048,
        cpu_seconds: int = 20,
        timeout: float | None = None,
        mp_context: str = "spawn",
        startup_timeout: float = 120.0,
    ) -> None:
        if max_workers < 1:
            raise ConfigError(f"job_parse_workers must be >= 1, got {max_workers}")
        if memory_mb < 0 or cpu_seconds < 0:
            raise ConfigError(
                "job_parse_memory_mb and job_parse_cpu_seconds must be >= 0 (0: no limit)"
            )
        if mp_context not in ("spawn", "forkserver"):
            raise ConfigError(
                f"mp_context must be 'spawn' or 'forkserver', got {mp_context!r}",
                hint="fork is unsafe in a server process that runs threads",
            )
        self.max_workers = max_workers
        self.memory_mb = memory_mb
        self.cpu_seconds = cpu_seconds
        self.timeout = timeout if timeout is not None else max(10.0, 3.0 * cpu_seconds)
        self._ctx: Any = multiprocessing.get_context(mp_context)
        self._startup_timeout = startup_timeout
        self._cond = threading.Condition()
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()
        self._starting = 0
        self._closed = False
        #: Worker processes started so far (tests read it).
        self.started = 0

    # -- public API ------------------------------------------------------------------------
    def parse(
        self,
        items: Any,
        bind: Any,
        *,
        rules: EnvironmentPolicy | None = None,
        environment: str = "",
    ) -> ParsedCircuits:
        """Parse a request's ``circuits`` and ``bind`` in a worker (blocks this thread).

        With ``rules`` the worker first checks what the circuits declare
        (:func:`~jupyter_qsecure.jobs.declared.check_declared`, every text in full) and
        raises :class:`~jupyter_qsecure.jobs.declared.OverPolicy` instead of parsing a
        circuit over them.
        """
        deadline = time.monotonic() + self.timeout
        try:
            request = encode_request(
                items, bind, None if rules is None else rules.model_dump(mode="json"), environment
            )
        except CircuitError as exc:
            raise ParseRefused(exc.message, hint=exc.hint) from None
        worker = self._acquire(deadline)
        healthy = False
        try:
            reply = self._exchange(worker, request, deadline)
            healthy = not reply.get("retire", True)
            return self._result(reply, items)
        finally:
            self._release(worker, healthy)

    @property
    def busy(self) -> int:
        """Workers parsing a request now."""
        with self._cond:
            return len(self._busy)

    def close(self) -> None:
        """Stop every worker; later requests get :class:`ParseUnavailable`."""
        with self._cond:
            self._closed = True
            workers = [*self._idle, *self._busy]
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.dispose()

    # -- workers ---------------------------------------------------------------------------
    def _acquire(self, deadline: float) -> WorkerProcess:
        with self._cond:
            while True:
                if self._closed:
                    raise ParseUnavailable("the circuit parser is shut down")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        self._busy.add(worker)
                        return worker
                    worker.dispose()  # died while idle (already exited: no wait)
                if len(self._busy) + self._starting < self.max_workers:
                    self._starting += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._cond.wait(remaining):
                    raise ParseUnavailable(
                        f"all {self.max_workers} circuit parse workers stayed busy for "
                        f"{self.timeout:g} s",
                        hint="retry shortly; the operator can raise QSecure.job_parse_workers",
                    )
        try:
            worker = self._start()
        except BaseException:
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            self._starting -= 1
            self._busy.add(worker)
            if self._closed:
                self._busy.discard(worker)
                worker.dispose()
                raise ParseUnavailable("the circuit parser is shut down")
        return worker

    def _release(self, worker: WorkerProcess, healthy: bool) -> None:
        with self._cond:
            self._busy.discard(worker)
            keep = healthy and not self._closed
            if keep:
                self._idle.append(worker)
            self._cond.notify_all()
        if not keep:
            worker.dispose()

    def _start(self) -> WorkerProcess:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=worker_main,
            args=(child, self.memory_mb << 20, self.cpu_seconds),
            name="qsecure-parse-worker",
            daemon=True,
        )
        try:
            _spawnable_main()
            process.start()
        except Exception as exc:  # e.g. spawn refused: unguarded __main__, no resources
            parent.close()
            child.close()
            log.error("jupyter-qsecure: cannot start a circuit parse worker: %s", exc)
            raise ParseUnavailable(
                f"no circuit parse worker could be started ({exc})",
                hint="check the server's log and its process and memory limits",
            ) from None
        child.close()
        worker = WorkerProcess(process, parent)
        with self._cond:
            self.started += 1
        ready = wait_for([parent, process.sentinel], self._startup_timeout)
        if parent in ready:
            try:
                if "ready" in json.loads(parent.recv_bytes(1024)):
                    return worker
            except (EOFError, OSError, ValueError, TypeError):
                pass
        reason = (
            f"did not start within {self._startup_timeout:g} s"
            if not ready
            else _describe_exit(process.exitcode if not process.is_alive() else None)
        )
        worker.dispose()
        log.error("jupyter-qsecure: circuit parse worker %s", reason)
        raise ParseUnavailable(
            f"the circuit parse worker {reason} while starting",
            hint="check the server's log; the next submission tries a fresh worker",
        )

    # -- one request -----------------------------------------------------------------------
    def _exchange(self, worker: WorkerProcess, request: bytes, deadline: float) -> dict[str, Any]:
        try:
            worker.conn.send_bytes(request)
        except (OSError, ValueError):
            pass  # the worker died: the sentinel below reports it
        ready = wait_for(
            [worker.conn, worker.process.sentinel], max(0.0, deadline - time.monotonic())
        )
        if worker.conn in ready:
            try:
                reply = json.loads(worker.conn.recv_bytes(MAX_REPLY_BYTES))
            except (EOFError, OSError):
                ready = [worker.process.sentinel]  # died while replying, or a huge reply
            except ValueError:
                return {"error": "the parse worker's reply was not JSON", "retire": True}
            else:
                if isinstance(reply, dict):
                    return reply
                return {"error": "the parse worker's reply was not an object", "retire": True}
        if not ready:
            worker.dispose()
            log.warning("jupyter-qsecure: circuit parse worker killed after %g s", self.timeout)
            raise ParseRefused(
                f"parsing the circuits took longer than {self.timeout:g} s; the parse worker "
                "was stopped",
                hint=self._limits_hint(),
            )
        worker.process.join(5)  # it is exiting (its pipe closed): let it finish, then read why
        worker.dispose()  # and make sure it is gone (a reply too large to read, a hang)
        reason = self._death(worker.process.exitcode)
        log.warning("jupyter-qsecure: circuit parse worker stopped: %s", reason)
        raise ParseRefused(reason, hint=self._limits_hint())

    def _death(self, exitcode: int | None) -> str:
        if exitcode == -signal.SIGXCPU:
            return (
                f"parsing the circuits used more than the parse worker's CPU limit of "
                f"{self.cpu_seconds} s; the worker was stopped"
            )
        return (
            f"the parse worker {_describe_exit(exitcode)} while parsing the circuits (its "
            f"limits: {self.memory_mb} MiB of memory, {self.cpu_seconds} s of CPU)"
        )

    def _limits_hint(self) -> str:
        return (
            "submit smaller or simpler circuits; the broker parses each submission in a "
            f"worker process limited to {self.memory_mb} MiB and {self.cpu_seconds} s of CPU "
            "(QSecure.job_parse_memory_mb, QSecure.job_parse_cpu_seconds)"
        )

    def _result(self, reply: dict[str, Any], items: list[dict[str, Any]]) -> ParsedCircuits:
        if "ok" in reply:
            ok = reply["ok"]
            qpy = items[0]["data"] if ok["qpy"] is None else str(ok["qpy"])
            return ParsedCircuits(
                hashes=list(ok["hashes"]), summaries=list(ok["summaries"]), qpy=qpy
            )
        if "excess" in reply:
            excess = reply["excess"]
            raise OverPolicy(
                Excess(
                    str(excess["rule"]),
                    int(excess["limit"]),
                    int(excess["actual"]),
                    str(excess["message"]),
                )
            )
        if "invalid" in reply:
            raise ParseRefused(str(reply["invalid"]), hint=reply.get("hint"))
        if reply.get("limit") == "memory":
            raise ParseRefused(
                f"parsing the circuits needed more than the parse worker's memory limit of "
                f"{self.memory_mb} MiB",
                hint=self._limits_hint(),
            )
        error = str(reply.get("error") or "no answer")
        log.warning("jupyter-qsecure: circuit parse worker failed: %s", error)
        raise ParseRefused(f"the circuits could not be parsed: {error}")


class InlineParser:
    """Parses in the calling process, with :class:`ParsePool`'s contract.

    For promoted scripts (:mod:`jupyter_qsecure.runtime`): their circuits are the approved
    code's own, not a kernel's untrusted input, and a script may not start worker
    processes (multiprocessing's spawn re-imports a ``__main__`` that has no
    ``if __name__ == "__main__"`` guard).
    """

    memory_mb = 0

    def parse(
        self,
        items: Any,
        bind: Any,
        *,
        rules: EnvironmentPolicy | None = None,
        environment: str = "",
    ) -> ParsedCircuits:
        from .parse_worker import _handle, decode_request

        try:
            raw = encode_request(
                items, bind, None if rules is None else rules.model_dump(mode="json"), environment
            )
        except CircuitError as exc:
            raise ParseRefused(exc.message, hint=exc.hint) from None
        return ParsePool._result(self, _handle(decode_request(raw)), items)  # type: ignore[arg-type]

    def _limits_hint(self) -> str:
        return "the script's own process parsed it"

    def close(self) -> None:
        """Nothing to stop."""
