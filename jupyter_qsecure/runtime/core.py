"""The job broker inside a promoted script's own process.

:class:`Runtime` builds the same :class:`~jupyter_qsecure.jobs.service.JobService` the
Jupyter server runs (policy check, canonical circuit hashing, signed DSSE manifest and
result, ledger entries), with the script's production identity
(:mod:`.identity`) in place of a kernel token and an in-process executor
(:class:`~jupyter_qsecure.jobs.inline_executor.InlineExecutor`) in place of worker
processes. Every result is verified (signatures, circuit hashes, counts) before
:meth:`Runtime.submit` returns it, exactly as ``%qsubmit`` verifies what the broker sends.

Deliberately not supported: heavy runs that need an approval (a script has nobody to
wait for: run it in Jupyter, or raise the policy's threshold for its environment), and
``--no-wait`` submissions (a script waits for its results).
"""

from __future__ import annotations

import math
import secrets
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, QSecureError
from .identity import RuntimeIdentity, login

if TYPE_CHECKING:
    from ..config import QSecure
    from ..jobs.result import QSubmitResult

__all__ = ["ENVIRONMENT_RANK", "Runtime", "RuntimeRefused"]

#: Environments from the least to the most strict: a script approved for one may run
#: there or in a less strict one, never in a stricter one.
ENVIRONMENT_RANK = {"dev": 0, "test": 1, "prod": 2}


class RuntimeRefused(QSecureError):
    """The runtime refuses to run a job here (wrong environment, needs an approval)."""


def _environment_configured(settings: QSecure) -> bool:
    """True when the environment was set on purpose (config file or variable), not the
    default ``dev``."""
    import os

    if os.environ.get("QSECURE_ENVIRONMENT"):
        return True
    section = settings.config.get("QSecure", {}) if settings.config else {}
    return "environment" in section


class Runtime:
    """One process's broker: identity, policy, signer, ledger, created on first use."""

    def __init__(self, settings: QSecure | None = None) -> None:
        if settings is None:
            from ..config import load_settings

            settings = load_settings()
        self.settings = settings
        self.promotion: dict[str, Any] | None = None
        self._lock = threading.RLock()
        self._identity: RuntimeIdentity | None = None
        self._client: Any = None
        self._service: Any = None
        self._ledger: Any = None
        self._token = secrets.token_hex(16)  # names this process to its own JobService

    # ---- context ------------------------------------------------------------------------
    def promoted(self, *, notebook: str, digest: str, environment: str) -> None:
        """Record what promoted script this is (called by its first lines).

        ``environment`` is the one the notebook was approved for. The script runs in the
        configured environment (``QSECURE_ENVIRONMENT``, ``c.QSecure.environment``) when
        one is set, else in ``environment``; it refuses to run in a stricter one.
        """
        if environment not in ENVIRONMENT_RANK:
            raise ConfigError(f"unknown environment {environment!r} in the promoted script")
        configured = _environment_configured(self.settings)
        running = str(self.settings.environment) if configured else environment
        if ENVIRONMENT_RANK[running] > ENVIRONMENT_RANK[environment]:
            raise RuntimeRefused(
                f"this script was promoted from {notebook} for the {environment} environment; "
                f"it may not run in {running}",
                hint=f"have the notebook approved for {running} and promote it with "
                f"--environment {running}",
            )
        with self._lock:
            if self._service is not None and running != self.settings.environment:
                raise RuntimeRefused("promoted() must run before the first job")
            self.settings.environment = running
            self.promotion = {"notebook": notebook, "digest": digest, "environment": environment}

    def identity(self) -> RuntimeIdentity:
        """The production identity (logs in to OpenBao on first use)."""
        with self._lock:
            if self._identity is None:
                self._identity, self._client = login(self.settings)
            return self._identity

    def vault_client(self) -> Any:
        """The authenticated hvac client of the identity (None without OpenBao)."""
        self.identity()
        return self._client

    # ---- the broker -----------------------------------------------------------------------
    def service(self) -> Any:
        """The in-process :class:`~jupyter_qsecure.jobs.service.JobService`."""
        with self._lock:
            if self._service is None:
                self._service = self._build_service()
            return self._service

    def _build_service(self) -> Any:
        from ..jobs.inline_executor import InlineExecutor
        from ..jobs.parse_pool import InlineParser
        from ..jobs.policy import Policy, PolicyEngine, UsageTracker
        from ..jobs.service import JobService
        from ..jobs.wiring import job_signer, trust_signer
        from ..ledger import Ledger
        from ..ledger.keys import signers_from_settings

        settings = self.settings
        identity = self.identity()
        signer = job_signer(settings, self._client)
        trust_signer(settings, signer)
        policy = Policy.load(settings.policy_file or None, settings.environment)
        # the ledger signs checkpoints as the script's identity too, not as configured
        # for the server (a script may have AppRole/JWT credentials only)
        self._ledger = Ledger.open(
            settings=settings, signers=signers_from_settings(settings, self._client)
        )
        job_identity = identity.to_job_identity()
        token = self._token

        def identify(presented: str) -> dict[str, Any] | None:
            return dict(job_identity) if secrets.compare_digest(presented, token) else None

        return JobService(
            identify=identify,
            engine=PolicyEngine(policy, usage=UsageTracker.from_ledger(self._ledger)),
            signer=signer,
            ledger=self._ledger,
            executor=InlineExecutor(),
            parser=InlineParser(),  # no worker processes in a promoted script
            environment=settings.environment,
            archive_dir=settings.data_path / "jobs",
            job_timeout=settings.job_timeout_seconds,
            aer_threads=settings.job_aer_threads,
            io_threads=1,
            max_in_flight=1,
        )

    def submit(
        self,
        circuits: Any,
        *,
        shots: int = 1024,
        seed: int | None = None,
        backend: str = "aer_simulator",
        method: str | None = None,
        noise: str | None = None,
        tags: Iterable[str] = (),
        bind: Mapping[str, float] | None = None,
        timeout: float | None = None,
    ) -> QSubmitResult:
        """Run ``circuits`` through the broker and return the verified result.

        ``circuits``: a ``QuantumCircuit``, a list or tuple of them, or OpenQASM 2/3
        source text. ``bind`` assigns parameters by name (for QASM 3 ``input``
        parameters, the broker binds them). Raises the broker's errors (``Denied``,
        ``InvalidJob``, ...) or :class:`RuntimeRefused`; a result that does not verify
        raises :class:`~jupyter_qsecure.jobs.result.ResultVerificationFailed`.
        """
        from ..jobs.result import Expected, result_from_record
        from ..jobs.status import JobStatus

        if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
            raise ValueError(f"shots must be a positive integer, got {shots!r}")
        payload, expected, single, broker_bind = _encode(circuits, dict(bind or {}))
        all_tags = list(tags)
        if self.promotion is not None:
            all_tags.append(f"promotion:{self.promotion['digest'][:16]}")
        request = {
            "shots": shots,
            "seed": seed,
            "backend": backend,
            "method": method,
            "noise": noise,
            "tags": all_tags,
            "request_id": uuid.uuid4().hex,
        }
        body = {**request, "circuits": payload, "bind": broker_bind, "wait": True}
        service = self.service()
        if timeout is not None:
            service.job_timeout = float(timeout)
        state = service.submit_and_wait(self._token, body)
        if state.status == JobStatus.PENDING_APPROVAL:
            service.cancel(self._token, state.job_id)
            raise RuntimeRefused(
                f"job {state.job_id} is a heavy run that needs an approval; promoted scripts "
                "cannot wait for one",
                hint="submit it from Jupyter (`jupyter qsecure jobs approve`), or change the "
                "policy's heavy_run thresholds for this environment",
            )
        keyring = service.keyring
        return result_from_record(
            state.record(),
            keyring,
            [Expected(*e) for e in expected],
            request=request,
            single=single,
        )

    def close(self) -> None:
        with self._lock:
            if self._service is not None:
                self._service.close()
                self._service = None
            if self._ledger is not None:
                try:
                    self._ledger.checkpoint_if_due()
                finally:
                    self._ledger.close()
                    self._ledger = None


def _encode(
    circuits: Any, bind: dict[str, float]
) -> tuple[list[dict[str, str]], list[tuple[str, str | None, str]], bool, dict[str, float] | None]:
    """(request circuits, expected hashes, single?, bind for the broker)."""
    from ..jobs.client import encode_circuit, qasm_format

    for name, value in bind.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"bind[{name!r}] must be a number")
        if not math.isfinite(float(value)):
            raise ValueError(f"bind[{name!r}] is not finite")
    if isinstance(circuits, str):
        fmt = qasm_format(circuits)
        if fmt is None:
            raise ValueError(
                'OpenQASM source must begin with an "OPENQASM 3.0;" or "OPENQASM 2.0;" header'
            )
        source = circuits.strip("\n") + "\n"
        return [{"format": fmt, "data": source}], [(fmt, None, f"{fmt} source")], True, bind or None
    from qiskit import QuantumCircuit

    from ..jobs.canonical import circuit_hash_of_encoded

    single = isinstance(circuits, QuantumCircuit)
    items: Sequence[Any] = [circuits] if single else circuits
    if not isinstance(items, (list, tuple)) or not items:
        raise TypeError("circuits must be a QuantumCircuit, a non-empty list of them, or OpenQASM")
    bound = []
    used: set[str] = set()
    for position, qc in enumerate(items):
        if not isinstance(qc, QuantumCircuit):
            raise TypeError(f"circuits[{position}] is a {type(qc).__name__}, not a QuantumCircuit")
        values = {p: float(bind[p.name]) for p in qc.parameters if p.name in bind}
        used.update(p.name for p in values)
        qc = qc.assign_parameters(values, inplace=False) if values else qc
        free = sorted(p.name for p in qc.parameters)
        if free:
            raise ValueError(f"circuit {qc.name!r} has unbound parameters: {', '.join(free)}")
        bound.append(qc)
    unknown = sorted(set(bind) - used)
    if unknown:
        raise ValueError(f"no circuit has a parameter named {', '.join(unknown)}")
    payload = [encode_circuit(qc) for qc in bound]
    expected: list[tuple[str, str | None, str]] = [
        ("qpy", circuit_hash_of_encoded(qc, item["data"]), qc.name)
        for qc, item in zip(bound, payload, strict=True)
    ]
    return payload, expected, single, None
