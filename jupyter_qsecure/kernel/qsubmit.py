"""``%qsubmit`` and ``%%qsubmit``: run circuits through the jupyter-qsecure job broker.

::

    %qsubmit CIRCUIT [--shots N] [--seed S] [--backend aer_simulator] [--method M]
             [--noise NAME] [--tag T]... [--bind NAME=VALUE]... [--no-wait] [--timeout SECONDS]
    %%qsubmit [same options]        (the cell body is OpenQASM 3 or 2 source)
    %qsubmit --status JOB
    %qsubmit --cancel JOB

``CIRCUIT`` names a ``QuantumCircuit``, or a list or tuple of them, in the user's
namespace. Circuits are sent as QPY after ``--bind`` has assigned their parameters by
name; a circuit with parameters left unbound is refused here (the broker checks
again). OpenQASM source is sent as text (its format from the ``OPENQASM`` header);
``--bind`` values then go to the broker, which binds QASM 3 ``input`` parameters.

The kernel authenticates with the short-lived token the server attached to this cell
execution (``metadata["qsecure"]["token"]``) and finds the broker at
``metadata["qsecure"]["broker_url"]``. Before a result is returned, its manifest and
result signatures, circuit hashes and counts are verified
(:func:`jupyter_qsecure.jobs.result.verify_record`) with the broker's public keys,
fetched once per session (again if a signature names a key not seen yet).

The result (:class:`~jupyter_qsecure.jobs.result.QSubmitResult`) is returned, so
``r = %qsubmit qc`` works, and shown as a histogram with a provenance line.
``--no-wait`` returns a :class:`~jupyter_qsecure.jobs.result.JobHandle` at once.

Errors are one-line messages with a hint (``UsageError`` for bad arguments); they never
contain the token, and the exception types stay catchable (``JobDenied``,
``QueueFull``, ``ResultVerificationFailed``, …).
"""

from __future__ import annotations

import argparse
import ast
import functools
import math
import operator
import shlex
import time
import uuid
from collections.abc import Mapping
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from ..errors import QSecureError

DEFAULT_SHOTS = 1024
DEFAULT_TIMEOUT = 300.0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print and exit
        raise UsageError(f"%qsubmit: {message} (see %qsubmit? for usage)")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        raise UsageError(message or "%qsubmit: bad arguments")


@functools.lru_cache(maxsize=1)
def _parser() -> _Parser:
    """Built once per kernel (parse_args leaves the parser unchanged; append actions copy
    their default lists)."""
    p = _Parser(prog="%qsubmit", add_help=False)
    p.add_argument("circuit", nargs="?")
    p.add_argument("--shots", type=int, default=DEFAULT_SHOTS)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--backend", default="aer_simulator")
    p.add_argument("--method", default=None)
    p.add_argument("--noise", default=None)
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--bind", action="append", default=[])
    p.add_argument("--no-wait", action="store_true", dest="no_wait")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    p.add_argument("--status", metavar="JOB", default=None)
    p.add_argument("--cancel", metavar="JOB", default=None)
    return p


# ---------------------------------------------------------------------------- --bind values

_OPS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_NAMES = {"pi": math.pi, "tau": math.tau, "e": math.e}


def _number(text: str) -> float:
    """A float from ``0.5``, ``-1e-3``, ``pi/2``, ``2*pi/3`` (no other expressions)."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool)
        ):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id in _NAMES:
            return _NAMES[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return float(_OPS[type(node.op)](ev(node.left), ev(node.right)))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return float(_OPS[type(node.op)](ev(node.operand)))
        raise ValueError(text)

    try:
        value = ev(ast.parse(text.strip(), mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError):
        raise UsageError(
            f"%qsubmit: --bind value {text!r} is not a number (use e.g. 0.5, -1e-3 or pi/2)"
        ) from None
    if not math.isfinite(value):
        raise UsageError(f"%qsubmit: --bind value {text!r} is not finite")
    return value


def parse_bind(items: list[str]) -> dict[str, float]:
    """``["theta=0.5", "phi=pi/2"]`` -> ``{"theta": 0.5, "phi": 1.5707…}``."""
    bind: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"%qsubmit: --bind takes NAME=VALUE, got {item!r}")
        if name in bind:
            raise UsageError(f"%qsubmit: parameter {name!r} is bound twice")
        bind[name] = _number(value)
    return bind


# ---------------------------------------------------------------------------- circuits


def _circuit_type() -> Any:
    from qiskit import QuantumCircuit

    return QuantumCircuit


def resolve_circuits(name: str, namespace: Mapping[str, Any]) -> tuple[list[Any], bool]:
    """The circuits named ``name`` in ``namespace`` and whether it was a single one."""
    if not name.isidentifier():
        raise UsageError(
            f"%qsubmit: {name!r} is not a variable name; put the circuit in a variable "
            "first (or use %%qsubmit with OpenQASM source in the cell)"
        )
    if name not in namespace:
        raise UsageError(f"%qsubmit: name {name!r} is not defined")
    value = namespace[name]
    qc_type = _circuit_type()
    if isinstance(value, qc_type):
        return [value], True
    if isinstance(value, (list, tuple)):
        if not value:
            raise UsageError(f"%qsubmit: {name} is an empty {type(value).__name__}")
        for i, item in enumerate(value):
            if not isinstance(item, qc_type):
                raise UsageError(
                    f"%qsubmit: {name}[{i}] is a {type(item).__name__}, not a QuantumCircuit"
                )
        return list(value), False
    raise UsageError(
        f"%qsubmit: {name} is a {type(value).__name__}, not a QuantumCircuit (or a list of them)"
    )


def bind_circuits(circuits: list[Any], bind: Mapping[str, float]) -> list[Any]:
    """Assign ``bind`` by parameter name; refuse names no circuit has and circuits left
    with unbound parameters."""
    used: set[str] = set()
    bound = []
    for qc in circuits:
        values = {p: bind[p.name] for p in qc.parameters if p.name in bind}
        used.update(p.name for p in values)
        bound.append(qc.assign_parameters(values, inplace=False) if values else qc)
    unknown = sorted(set(bind) - used)
    if unknown:
        raise UsageError(f"%qsubmit: no circuit has a parameter named {', '.join(unknown)}")
    for i, qc in enumerate(bound):
        free = sorted(p.name for p in qc.parameters)
        if free:
            where = f"circuit {qc.name!r}" if len(bound) == 1 else f"circuit {i} ({qc.name!r})"
            example = " ".join(f"--bind {n}=0.5" for n in free[:3])
            raise UsageError(
                f"%qsubmit: {where} has unbound parameters: {', '.join(free)}; "
                f"bind them, e.g. {example}"
            )
    return bound


# ---------------------------------------------------------------------------- errors


def _short_traceback(exc: QSecureError) -> QSecureError:
    """Make IPython show ``Type: message`` (and the hint) instead of a traceback through
    this module's internals. The exception keeps its type, so code can catch it."""
    lines = [f"\x1b[0;31m{type(exc).__name__}\x1b[0m: {exc.message}"]
    if exc.hint:
        lines.append(f"  hint: {exc.hint}")
    exc._render_traceback_ = lambda: lines  # type: ignore[attr-defined]
    return exc


# ---------------------------------------------------------------------------- the magics


@magics_class
class QSubmitMagics(Magics):
    """``%qsubmit`` / ``%%qsubmit``. Keeps per session: the broker's public keys and,
    for jobs submitted here, what was sent (to verify results fetched later). Never a
    token."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._keyrings: dict[str, Any] = {}
        self._sent: dict[str, tuple[list[Any], dict[str, Any], bool]] = {}
        # One HTTP session per broker for the kernel's life: its kept-alive connection
        # spares every job a TCP connect. Tokens travel per request, never in the session.
        self._sessions: dict[str, Any] = {}

    @line_cell_magic
    def qsubmit(self, line: str = "", cell: str | None = None) -> Any:
        """Submit circuits to the jupyter-qsecure job broker.

        %qsubmit CIRCUIT [--shots N] [--seed S] [--backend aer_simulator] [--method M]
                 [--noise NAME] [--tag T]... [--bind NAME=VALUE]... [--no-wait]
                 [--timeout SECONDS]
        %%qsubmit [options]      cell body: OpenQASM 3 or 2 source
        %qsubmit --status JOB    %qsubmit --cancel JOB

        Returns a verified result (counts, job id, digests, provenance), or with
        --no-wait a handle with .status(), .result(timeout) and .cancel().
        """
        try:
            return self._run(line, cell)
        except QSecureError as exc:
            raise _short_traceback(exc) from None

    # -- plumbing ------------------------------------------------------------------------

    def _client(self, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """A client with the credentials of the execution running now."""
        from .. import secrets as _secrets
        from ..jobs.client import BrokerClient
        from ..vault.transport import session_for
        from .context import current_metadata

        creds: Any = _secrets._credentials(self.shell)
        if isinstance(creds, _secrets.CredentialsError):
            raise creds
        if creds.error:
            raise _secrets._unavailable(creds.error)
        raw = current_metadata(self.shell).raw
        url = raw.get("broker_url") if isinstance(raw, Mapping) else None
        if not isinstance(url, str) or not url:
            raise _secrets.SecretsUnavailable(
                "the server attached no job broker URL to this execution",
                hint="the server's jupyter-qsecure is probably older than the kernel's: "
                "install the same version in both environments",
            )
        if not creds.token:
            raise _secrets._unavailable("the server attached no kernel token")
        session = self._sessions.get(url)
        if session is None:
            session = self._sessions[url] = session_for(url)
        return BrokerClient(url, creds.token, timeout=timeout, session=session)

    def _namespace(self) -> Mapping[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    def _keyring(self, client: Any, refresh: bool = False) -> Any:
        from ..jobs.result import fetch_keyring

        ring = None if refresh else self._keyrings.get(client.base_url)
        if ring is None:
            ring = fetch_keyring(client)
            self._keyrings[client.base_url] = ring
        return ring

    def _handle(self, job_id: str, timeout: float, last_status: str | None = None) -> Any:
        from ..jobs.result import JobHandle

        expected, request, single = self._sent.get(job_id, (None, {}, True))
        return JobHandle(
            job_id,
            lambda: self._client(timeout),
            self._keyring,
            expected,
            request=request,
            single=single,
            last_status=last_status,
        )

    # -- the command -------------------------------------------------------------------

    def _run(self, line: str, cell: str | None) -> Any:
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%qsubmit: cannot parse the arguments: {exc}") from None
        args = _parser().parse_args(argv)
        if args.timeout <= 0:
            raise UsageError("%qsubmit: --timeout must be a positive number of seconds")

        if args.status or args.cancel:
            if args.status and args.cancel:
                raise UsageError("%qsubmit: use either --status or --cancel, not both")
            if args.circuit or cell is not None:
                raise UsageError("%qsubmit: --status/--cancel take only a job id")
            return self._status_or_cancel(args)

        if args.shots < 1:
            raise UsageError(f"%qsubmit: --shots must be a positive integer, got {args.shots}")
        bind = parse_bind(args.bind)

        from ..jobs.client import encode_circuit, qasm_format
        from ..jobs.result import Expected

        payload: list[dict[str, str]]
        expected: list[Expected]
        if cell is not None:
            if args.circuit:
                raise UsageError(
                    "%%qsubmit takes OpenQASM source in the cell body, not a circuit name"
                )
            source = cell.strip("\n")
            fmt = qasm_format(source)
            if fmt is None:
                raise UsageError(
                    "%%qsubmit: the cell body is not OpenQASM: it must begin with an "
                    '"OPENQASM 3.0;" or "OPENQASM 2.0;" header'
                )
            payload = [{"format": fmt, "data": source + "\n"}]
            expected = [Expected(fmt, None, f"{fmt} cell")]
            single = True
            broker_bind: dict[str, float] | None = bind or None
        else:
            if not args.circuit:
                raise UsageError(
                    "%qsubmit: name a circuit (%qsubmit qc), or use %%qsubmit with "
                    "OpenQASM source; %qsubmit? shows the options"
                )
            circuits, single = resolve_circuits(args.circuit, self._namespace())
            circuits = bind_circuits(circuits, bind)
            from ..jobs.canonical import circuit_hash_of_encoded

            try:
                payload = [encode_circuit(qc) for qc in circuits]
            except Exception as exc:  # QPY cannot write every object a circuit may hold
                raise UsageError(
                    f"%qsubmit: cannot serialise the circuit as QPY ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:200] if str(exc) else ''})"
                ) from None
            expected = [
                Expected("qpy", circuit_hash_of_encoded(qc, item["data"]), qc.name)
                for qc, item in zip(circuits, payload, strict=True)
            ]
            broker_bind = None  # bound here, before hashing

        request = {
            "shots": args.shots,
            "seed": args.seed,
            "backend": args.backend,
            "method": args.method,
            "noise": args.noise,
            "tags": list(args.tag),
            # our own id for this request: the broker signs it into the manifest, so a
            # replayed earlier result (same circuit, same options) is told apart
            "request_id": uuid.uuid4().hex,
        }
        client = self._client(args.timeout)
        started = time.monotonic()
        record = client.submit(
            payload,
            **request,
            bind=broker_bind,
            wait=not args.no_wait,
            timeout=args.timeout,
        )
        job_id = record["job_id"]
        self._sent[job_id] = (expected, request, single)
        status = record.get("status")

        from ..jobs.client import TERMINAL_STATUSES
        from ..jobs.result import finish, raise_for_status
        from ..jobs.status import JobStatus

        raise_for_status(record)  # denied/failed/cancelled: the clear error now
        if args.no_wait:
            return self._handle(job_id, args.timeout, status)
        if status == JobStatus.PENDING_APPROVAL:
            print(
                f"job {job_id} needs an approval before it runs (heavy run); "
                "the returned handle's .result() waits for it"
            )
            return self._handle(job_id, args.timeout, status)
        if status not in TERMINAL_STATUSES:
            left = max(args.timeout - (time.monotonic() - started), 0.1)
            record = client.wait(job_id, left)
        return finish(record, client, self._keyring, expected, request, single)

    def _status_or_cancel(self, args: argparse.Namespace) -> Any:
        job_id = str(args.status or args.cancel).strip()
        client = self._client(args.timeout)
        record = client.cancel(job_id) if args.cancel else client.status(job_id)
        handle = self._handle(job_id, args.timeout, str(record.get("status")))
        if record.get("error"):
            handle.last_error = str(record["error"])
        return handle


def load_ipython_extension(ip: Any) -> None:
    """Register ``%qsubmit`` (done by :mod:`jupyter_qsecure.kernel` when it loads)."""
    ip.register_magics(QSubmitMagics)


__all__ = ["QSubmitMagics", "bind_circuits", "load_ipython_extension", "parse_bind"]
