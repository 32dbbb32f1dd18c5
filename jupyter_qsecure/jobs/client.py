"""HTTP client for the job broker's REST API (``/qsecure/api/jobs``).

Used by ``%qsubmit`` in the kernel and by promoted scripts (no IPython dependency)::

    from jupyter_qsecure.jobs.client import BrokerClient, encode_circuit

    client = BrokerClient("http://127.0.0.1:8888/qsecure/api/jobs", token, timeout=60)
    record = client.submit([encode_circuit(qc)], shots=1024, seed=7)
    record = client.wait(record["job_id"])  # when the broker answered 202 (queued)

Every method returns the broker's JSON (a ``JobRecord`` dict, see
:mod:`jupyter_qsecure.jobs`) or raises one of the :class:`BrokerError` subclasses,
each with a message that says what happened and what to do:

====================  ==========================================================
HTTP answer           exception
====================  ==========================================================
401                   :class:`Unauthorized`
403 ``denied``        :class:`JobDenied` (``rule``, ``limit``, ``decision_id``)
404                   :class:`JobNotFound`
409                   :class:`RequestConflict` (replayed request id)
413                   :class:`PayloadTooLarge`
422 / 400             :class:`InvalidCircuit`
429                   :class:`QueueFull` (``retry_after`` seconds, ``scope``)
5xx, refused, slow    :class:`BrokerUnavailable`
====================  ==========================================================

The token is sent only in the ``Authorization: Bearer`` header. It is kept in a
private attribute, left out of ``repr``, and scrubbed from every message this module
builds (including text echoed back by a server).

Deliberately not done here: verifying signatures (see :mod:`jupyter_qsecure.jobs.result`,
which needs the local circuits), retrying on 429 (the caller decides; ``retry_after``
says how long to wait), and following redirects (a redirected bearer token could
leak to another host).
"""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import QSecureError
from .status import TERMINAL

__all__ = [
    "TERMINAL_STATUSES",
    "BrokerClient",
    "BrokerError",
    "BrokerUnavailable",
    "InvalidCircuit",
    "JobDenied",
    "JobNotFound",
    "JobTimeout",
    "PayloadTooLarge",
    "QueueFull",
    "RequestConflict",
    "Unauthorized",
    "encode_circuit",
    "encode_qasm",
    "qasm_format",
]

#: Job statuses after which nothing changes any more.
#: Plain strings, as they come in JSON (a ``JobStatus`` hashes by its name, not its value).
TERMINAL_STATUSES = frozenset(status.value for status in TERMINAL)

_MAX_ERROR_TEXT = 300  # characters of a server's error text quoted in a message


class BrokerError(QSecureError):
    """Base class of the errors of the job broker client."""


class BrokerUnavailable(BrokerError):
    """The broker could not be reached, did not answer in time, or failed (5xx)."""


class Unauthorized(BrokerError):
    """The broker refused the token (401): expired, revoked, or not a kernel token."""


class JobDenied(BrokerError):
    """The broker's policy refused the job (403). ``rule`` names the rule, ``limit`` the
    limit; ``job_id`` and ``decision_id`` find the decision in the ledger
    (``jupyter qsecure jobs show`` takes either)."""

    def __init__(
        self,
        rule: str | None,
        message: str,
        decision_id: str | None = None,
        limit: Any = None,
        job_id: str | None = None,
    ) -> None:
        self.rule = rule
        self.limit = limit
        self.decision_id = decision_id
        self.job_id = job_id
        self.reason = message
        text = (
            f"job denied by policy rule {rule!r}: {message}" if rule else f"job denied: {message}"
        )
        ids = [f"job {job_id}" if job_id else "", f"decision {decision_id}" if decision_id else ""]
        if any(ids):
            text += f" ({', '.join(i for i in ids if i)})"
        ref = job_id or decision_id
        super().__init__(
            text,
            hint="change the job to fit the policy, or ask your administrator, quoting the "
            + (
                f"job id: `jupyter qsecure jobs show {ref}` shows the recorded decision"
                if ref
                else "time of the submission"
            ),
        )


class QueueFull(BrokerError):
    """The broker did not accept the job because its queue is full (429), whether the
    submission waits or not; retry after ``retry_after`` seconds.

    ``scope`` is ``"user"`` when this user already has as many jobs waiting as one user
    may (the queue has room for others), ``"global"`` when the whole queue is full."""

    def __init__(
        self,
        retry_after: float | None,
        message: str | None = None,
        *,
        scope: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        self.scope = scope
        when = f"in {retry_after:g} s" if retry_after is not None else "in a moment"
        if scope == "user":
            default = "you already have as many jobs waiting as one user may"
            hint = (
                f"submit again {when}, once one of your waiting jobs has started "
                "(`%qsubmit --status JOB`), or cancel some (`%qsubmit --cancel JOB`)"
            )
        else:
            default = "the job broker's queue is full"
            hint = f"the broker is busy: submit again {when}"
        super().__init__(f"{message or default}; retry {when}", hint=hint)


class InvalidCircuit(BrokerError):
    """The broker could not read or accept a circuit (422) or the request (400)."""


class JobNotFound(BrokerError):
    """No job with that id (404), or not one this identity may see."""


class RequestConflict(BrokerError):
    """The request id was already used (409): a replayed submission."""


class PayloadTooLarge(BrokerError):
    """The request is larger than the broker accepts (413)."""


class JobTimeout(BrokerError):
    """The job did not finish within the time the caller was willing to wait.

    The job keeps running on the broker; ``job_id`` can be polled or cancelled."""

    def __init__(self, job_id: str, seconds: float, status: str | None) -> None:
        self.job_id = job_id
        self.seconds = seconds
        self.status = status
        super().__init__(
            f"job {job_id} did not finish within {seconds:g} s (last status: {status or 'unknown'})",
            hint=f"it keeps running: `%qsubmit --status {job_id}` polls it, "
            f"`%qsubmit --cancel {job_id}` stops it",
        )


# ---------------------------------------------------------------------------- encoding


def encode_circuit(circuit: Any) -> dict[str, str]:
    """A ``QuantumCircuit`` as the REST API's ``{"format": "qpy", "data": base64}``."""
    from qiskit import qpy

    buffer = io.BytesIO()
    qpy.dump(circuit, buffer)
    return {"format": "qpy", "data": base64.b64encode(buffer.getvalue()).decode("ascii")}


def qasm_format(source: str) -> str | None:
    """``"qasm3"`` or ``"qasm2"`` from the ``OPENQASM`` header of ``source``, else None.

    Comments and blank lines before the header are skipped."""
    for raw in source.splitlines():
        line = raw.strip()
        if not line or line.startswith("//"):
            continue
        if not line.upper().startswith("OPENQASM"):
            return None
        version = line[len("OPENQASM") :].strip().rstrip(";").strip()
        if version.startswith("3"):
            return "qasm3"
        if version.startswith("2"):
            return "qasm2"
        return None
    return None


def encode_qasm(source: str) -> dict[str, str]:
    """OpenQASM 2 or 3 source as ``{"format": "qasm2"|"qasm3", "data": source}``."""
    fmt = qasm_format(source)
    if fmt is None:
        raise InvalidCircuit(
            "the source does not start with an OPENQASM 2 or 3 header",
            hint='begin it with "OPENQASM 3.0;" (or "OPENQASM 2.0;")',
        )
    return {"format": fmt, "data": source}


# ---------------------------------------------------------------------------- client


class BrokerClient:
    """Talks to the job broker at ``base_url`` with the kernel's short-lived token.

    ``timeout`` bounds every HTTP request (connecting is bounded separately by
    ``connect_timeout``, so an unreachable broker fails fast). A submission with
    ``wait=True`` may take as long as the job: pass ``timeout`` to :meth:`submit`.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout: float = 60.0,
        *,
        connect_timeout: float = 5.0,
        session: Any = None,
    ) -> None:
        if not base_url:
            raise BrokerUnavailable(
                "no job broker URL",
                hint="run in the 'Python 3 (qsecure)' kernel on a server with "
                "jupyter-qsecure enabled",
            )
        if not token:
            raise Unauthorized("no token to authenticate to the job broker")
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.__token = token
        self._session = session

    def __repr__(self) -> str:
        return f"BrokerClient({self.base_url!r}, timeout={self.timeout:g})"

    # -- public API -----------------------------------------------------------------------

    def submit(
        self,
        circuits: Sequence[Mapping[str, Any]],
        *,
        shots: int = 1024,
        seed: int | None = None,
        backend: str = "aer_simulator",
        method: str | None = None,
        noise: str | None = None,
        tags: Iterable[str] = (),
        bind: Mapping[str, float] | None = None,
        wait: bool = True,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """``POST`` a job; returns the ``JobRecord`` (finished if ``wait`` and 200, else
        queued/running: poll with :meth:`wait` or :meth:`status`)."""
        body = {
            "circuits": [dict(c) for c in circuits],
            "shots": shots,
            "seed": seed,
            "backend": backend,
            "method": method,
            "noise": noise,
            "tags": list(tags),
            "bind": dict(bind) if bind else None,
            "wait": wait,
            "request_id": request_id or uuid.uuid4().hex,
        }
        return self._record(self._request("POST", "", body, timeout=timeout))

    def status(self, job_id: str) -> dict[str, Any]:
        """``GET`` the ``JobRecord`` of ``job_id``."""
        return self._record(self._request("GET", "/" + _job_path(job_id)))

    def cancel(self, job_id: str) -> dict[str, Any]:
        """``DELETE`` (cancel) ``job_id``; returns its ``JobRecord``."""
        return self._record(self._request("DELETE", "/" + _job_path(job_id)))

    def keys(self) -> list[dict[str, Any]]:
        """The public keys that verify manifests and results (``PublicKeyRecord`` dicts)."""
        data = self._request("GET", "/keys")
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, list):
            raise BrokerUnavailable("the job broker answered /keys without a key list")
        return keys

    def wait(
        self, job_id: str, timeout: float | None = None, *, poll_interval: float = 0.05
    ) -> dict[str, Any]:
        """Poll until ``job_id`` reaches a terminal status; returns its ``JobRecord``.

        Raises :class:`JobTimeout` after ``timeout`` seconds (default: this client's
        timeout); the job itself keeps running."""
        limit = self.timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + limit
        interval = poll_interval
        while True:
            record = self.status(job_id)
            if record.get("status") in TERMINAL_STATUSES:
                return record
            left = deadline - time.monotonic()
            if left <= 0:
                raise JobTimeout(job_id, limit, record.get("status"))
            time.sleep(min(interval, left))
            interval = min(interval * 1.5, 1.0)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # -- internals ------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        token = self.__token
        return text.replace(token, "[token]") if token else text

    def _get_session(self) -> Any:
        if self._session is None:
            from ..vault.transport import session_for

            # plain HTTP: a urllib3 pool; otherwise requests (no env proxies)
            self._session = session_for(self.base_url)
        return self._session

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        import requests

        url = self.base_url + path
        headers = {"Authorization": f"Bearer {self.__token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        read_timeout = self.timeout if timeout is None else float(timeout)
        try:
            response = self._get_session().request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=(self.connect_timeout, read_timeout),
                allow_redirects=False,
            )
        except requests.Timeout:
            error: BrokerError = BrokerUnavailable(
                f"the job broker at {self.base_url} did not answer within {read_timeout:g} s",
                hint="the job may still be running; check with `%qsubmit --status JOB`",
            )
        except requests.ConnectionError:
            error = BrokerUnavailable(
                f"cannot connect to the job broker at {self.base_url}",
                hint="is the Jupyter server with jupyter-qsecure running? restart the kernel "
                "if the server was restarted",
            )
        except requests.RequestException as exc:
            error = BrokerUnavailable(
                self._scrub(f"request to the job broker failed ({type(exc).__name__})")
            )
        else:
            return self._decode(response)
        raise error from None  # no chained traceback carrying request internals

    def _decode(self, response: Any) -> Any:
        status = response.status_code
        try:
            data = response.json() if response.content else {}
        except ValueError:
            data = None
        if 200 <= status < 300:
            if data is None:
                raise BrokerUnavailable(
                    f"the job broker answered {status} with a body that is not JSON"
                )
            return data
        raise self._error(status, data, response)

    def _error(self, status: int, data: Any, response: Any) -> BrokerError:
        info = data if isinstance(data, dict) else {}

        def text(key: str = "message") -> str:
            value = info.get(key) or info.get("message") or info.get("reason")
            if not isinstance(value, str) or not value:
                raw = response.text if data is None else ""
                value = raw.strip() or response.reason or f"HTTP {status}"
            return self._scrub(str(value))[:_MAX_ERROR_TEXT]

        if status == 401:
            return Unauthorized(
                f"the job broker refused this kernel's token: {text()}",
                hint="run the cell again (each execution gets a fresh token); if it keeps "
                "failing, check `%qsecure status`",
            )
        if status == 403:
            if info.get("error") == "denied" or "rule" in info:
                return JobDenied(
                    _opt_str(info.get("rule")),
                    text(),
                    _opt_str(info.get("decision_id")),
                    info.get("limit"),
                    job_id=_opt_str(info.get("job_id")),
                )
            return Unauthorized(f"the job broker refused access: {text()}")
        if status == 404:
            return JobNotFound(f"no such job: {text()}")
        if status == 409:
            return RequestConflict(
                f"the job broker refused a replayed request: {text()}",
                hint="submit again: every submission gets a new request id",
            )
        if status == 413:
            return PayloadTooLarge(
                f"the job is larger than the broker accepts: {text()}",
                hint="send fewer or smaller circuits per job",
            )
        if status in (400, 422):
            return InvalidCircuit(f"the job broker could not accept the job: {text()}")
        if status == 429:
            scope = info.get("scope")
            return QueueFull(
                _retry_after(response, info),
                f"the job broker did not accept the job: {text()}",
                scope=scope if isinstance(scope, str) else None,
            )
        if status >= 500:
            job_id = info.get("job_id")
            job = (
                f" (job {job_id}, {info.get('status') or 'failed'})"
                if isinstance(job_id, str)
                else ""
            )
            hint = info.get("hint")
            return BrokerUnavailable(
                f"the job broker failed (HTTP {status}){job}: {text()}",
                hint=self._scrub(hint)[:_MAX_ERROR_TEXT]
                if isinstance(hint, str) and hint
                else "try again; the server log has the details",
            )
        return BrokerError(f"unexpected answer from the job broker (HTTP {status}): {text()}")

    @staticmethod
    def _record(data: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or not isinstance(data.get("job_id"), str):
            raise BrokerUnavailable("the job broker answered without a job record")
        return data


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _job_path(job_id: str) -> str:
    from urllib.parse import quote

    job_id = str(job_id).strip()
    if not job_id or job_id == "keys":
        raise JobNotFound(f"{job_id!r} is not a job id")
    return quote(job_id, safe="")


def _retry_after(response: Any, info: Mapping[str, Any]) -> float | None:
    for value in (response.headers.get("Retry-After"), info.get("retry_after")):
        if value is None:
            continue
        try:
            return max(float(value), 0.0)
        except (TypeError, ValueError):
            continue
    return None
