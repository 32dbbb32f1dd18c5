"""What ``%qsubmit`` returns: verified results and handles on running jobs.

:func:`verify_record` checks a finished ``JobRecord`` (see :mod:`jupyter_qsecure.jobs`)
before anyone sees its counts:

1. the manifest envelope's signature verifies with the broker's public keys;
2. the manifest's subjects include the hash of every circuit that was sent: the hash
   computed *locally* (:func:`jupyter_qsecure.jobs.canonical.circuit_hash`) for
   ``QuantumCircuit`` objects; for OpenQASM source, which the kernel does not parse,
   the hash the broker computed (reported as such in :attr:`Verification.hash_sources`);
3. the result envelope's signature verifies;
4. the result statement links to this manifest (its digest);
5. the counts and metadata hash (``result_digest``) to the result statement's subject.

Any failure raises :class:`ResultVerificationFailed` and no counts are returned.
:class:`QSubmitResult` then holds the counts with their provenance and renders a
histogram (inline SVG, no network, no plotting library) and a one-line summary.
:class:`JobHandle` is what ``--no-wait`` returns.

Nothing here holds a token: a :class:`JobHandle` gets a client from a callable each
time it talks to the broker (in a kernel, from the credentials of the execution that
calls it).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import QSecureError, VerificationFailed
from .client import TERMINAL_STATUSES, BrokerClient, BrokerError, JobDenied
from .status import JobStatus

__all__ = [
    "Check",
    "Expected",
    "JobCancelled",
    "JobFailed",
    "JobHandle",
    "QSubmitResult",
    "ResultVerificationFailed",
    "Verification",
    "fetch_keyring",
    "result_from_record",
    "verify_record",
]


class ResultVerificationFailed(VerificationFailed):
    """A job's manifest or result did not verify: its counts are not returned."""

    def __init__(self, job_id: str, failures: Sequence[str], checks: Sequence[str] = ()) -> None:
        self.job_id = job_id
        self.failures = list(failures)
        self.failed_checks = list(checks)  # names, e.g. "manifest signature"
        super().__init__(
            f"the result of job {job_id} failed verification: " + "; ".join(self.failures),
            hint="the counts were withheld; do not trust this job. Report the job id to "
            "your administrator (`jupyter qsecure audit` shows its ledger entries)",
        )


class JobFailed(BrokerError):
    """The job ran and failed on the broker."""


class JobCancelled(BrokerError):
    """The job was cancelled before it finished."""


@dataclass(frozen=True)
class Expected:
    """What the kernel sent for one circuit: ``format`` (qpy/qasm2/qasm3), the locally
    computed canonical hash (None for QASM source), and a label for messages."""

    format: str
    local_hash: str | None
    label: str = ""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Verification:
    """How a result was verified. ``verified`` is True only if every check passed."""

    checks: tuple[Check, ...]
    signer: str = ""
    result_signer: str = ""
    hash_sources: tuple[str, ...] = ()  # per circuit: "local" or "broker"
    manifest_digest: str = ""
    result_digest: str = ""
    statement: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    result_statement: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def verified(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[str]:
        return [f"{c.name}: {c.detail}" if c.detail else c.name for c in self.checks if not c.ok]

    def summary(self) -> str:
        if not self.verified:
            return "NOT verified ✗"
        note = ""
        if "broker" in self.hash_sources:
            note = " (QASM hash by broker)"
        return f"verified ✓{note}"


# ---------------------------------------------------------------------------- helpers


def _short(value: str | None, n: int = 8) -> str:
    if not value:
        return "?"
    return value[:n] + "…" if len(value) > n else value


def _subjects(statement: Mapping[str, Any]) -> dict[str, str]:
    """``{subject name: sha256}`` of an (already verified) in-toto statement."""
    out: dict[str, str] = {}
    for subject in statement.get("subject") or []:
        if isinstance(subject, Mapping) and isinstance(subject.get("digest"), Mapping):
            out[str(subject.get("name"))] = str(subject["digest"].get("sha256"))
    return out


def _signer_label(signers: Sequence[Any]) -> str:
    """Which trusted key signed an envelope (the keys ``verify_envelope_keys`` returned),
    e.g. ``transit:transit/qsecure-jobs v1`` or ``local key ed25519:0123456789abcdef v1``."""
    if not signers:
        return "?"
    key = signers[0]
    if key.source.startswith("transit") or key.key_id.startswith("transit:"):
        return f"{key.key_id} v{key.key_version}"
    return f"{key.source} key {key.key_id} v{key.key_version}"


def fetch_keyring(client: BrokerClient) -> Any:
    """The broker's public keys as a :class:`jupyter_qsecure.signing.signers.KeyRing`."""
    from ..signing.signers import KeyRing, PublicKeyRecord

    try:
        return KeyRing(PublicKeyRecord.model_validate(k) for k in client.keys())
    except (ValueError, TypeError, QSecureError) as exc:
        raise BrokerError(
            f"the job broker published malformed public keys ({type(exc).__name__})"
        ) from None


# ---------------------------------------------------------------------------- verification


def verify_record(
    record: Mapping[str, Any],
    keyring: Any,
    expected: Sequence[Expected],
    request: Mapping[str, Any] | None = None,
) -> Verification:
    """Verify a completed ``JobRecord`` (see the module docstring); returns the
    :class:`Verification` or raises :class:`ResultVerificationFailed`.

    ``request`` (shots, seed, backend, method as sent) is checked against the options
    the broker signed, when given."""
    from . import manifest as m

    job_id = str(record.get("job_id") or "?")
    checks: list[Check] = []
    hash_sources: list[str] = []

    def fail(name: str, detail: str) -> ResultVerificationFailed:
        checks.append(Check(name, False, detail))
        failed = [c for c in checks if not c.ok]
        return ResultVerificationFailed(
            job_id, [c.detail or c.name for c in failed], [c.name for c in failed]
        )

    # 1. manifest signature
    try:
        envelope = m.Envelope.model_validate(record.get("manifest"))
        statement, manifest_signers = m.verify_envelope_keys(
            envelope, keyring, predicate_type=m.JOB_PREDICATE_TYPE
        )
        manifest_digest = m.statement_digest(envelope)
    except Exception as exc:  # ManifestError, pydantic's ValidationError
        raise fail("manifest signature", f"manifest does not verify: {_reason(exc)}") from None
    signer = _signer_label(manifest_signers)
    checks.append(Check("manifest signature", True, signer))
    predicate = statement["predicate"]
    if str(predicate.get("job_id")) != job_id:
        raise fail("manifest job id", f"the signed manifest is for job {predicate.get('job_id')}")
    sent_id = request.get("request_id") if request else None
    if sent_id is not None:
        if predicate.get("request_id") != sent_id:
            raise fail(
                "request id",
                "the signed manifest answers another request "
                f"({_short(str(predicate.get('request_id')), 12)}, not {_short(sent_id, 12)}): "
                "a replayed or mixed-up result",
            )
        checks.append(Check("request id", True))

    # 2. circuits: subject circuit:i is the hash of circuit i as sent
    subjects = _subjects(statement)
    signed_circuits = [k for k in subjects if k.startswith("circuit:")]
    if len(signed_circuits) != len(expected):
        raise fail(
            "circuits",
            f"{len(expected)} circuit(s) sent but the signed manifest names {len(signed_circuits)}",
        )
    reported = list(record.get("circuit_hashes") or [])
    for i, exp in enumerate(expected):
        label = exp.label or f"circuit {i}"
        signed_hash = subjects.get(f"circuit:{i}")
        if exp.local_hash is not None:
            if signed_hash != exp.local_hash:
                raise fail(
                    "circuit hash",
                    f"{label}: the signed manifest names circuit sha256 "
                    f"{_short(signed_hash, 12)}, but the circuit sent hashes to "
                    f"{_short(exp.local_hash, 12)}",
                )
            hash_sources.append("local")
        else:
            hash_sources.append("broker")
        if i < len(reported) and reported[i] != signed_hash:
            raise fail(
                "circuit hash",
                f"{label}: the job record's circuit hash differs from the signed manifest",
            )
    checks.append(Check("circuit hashes", True, ", ".join(hash_sources)))

    # 2b. the options the broker signed are the ones asked for
    if request:
        options = predicate.get("options") or {}
        # shots, seed, method: None leaves the choice to the broker; noise and tags, when
        # asked about, must match exactly (no noise asked for means none may be signed)
        asked = {
            key: request.get(key)
            for key in ("shots", "seed", "method")
            if request.get(key) is not None
        }
        if "noise" in request:
            asked["noise"] = request["noise"]
        if "tags" in request:
            asked["tags"] = list(request["tags"] or [])
        for key, value in asked.items():
            if options.get(key) != value:
                raise fail(
                    "options",
                    f"asked for {key} {value} but the signed manifest records {options.get(key)}",
                )
        backend = request.get("backend")
        if backend and predicate.get("backend") != backend:
            raise fail(
                "options",
                f"asked for backend {backend} but the signed manifest records "
                f"{predicate.get('backend')}",
            )
        checks.append(Check("options", True))

    # 3. result signature
    try:
        result_envelope = m.Envelope.model_validate(record.get("result_envelope"))
        result_statement, result_signers = m.verify_envelope_keys(
            result_envelope, keyring, predicate_type=m.RESULT_PREDICATE_TYPE
        )
    except Exception as exc:
        raise fail("result signature", f"result does not verify: {_reason(exc)}") from None
    result_signer = _signer_label(result_signers)
    checks.append(Check("result signature", True, result_signer))

    # 4. link to this manifest and job
    rpred = result_statement["predicate"]
    link = rpred.get("manifest")
    linked = link.get("digest", {}).get("sha256") if isinstance(link, Mapping) else None
    if linked != manifest_digest:
        raise fail(
            "manifest link",
            "the signed result is linked to another manifest "
            f"(sha256 {_short(linked, 12)}, not {_short(manifest_digest, 12)})",
        )
    if str(rpred.get("job_id")) != job_id:
        raise fail("result job id", f"the signed result is for job {rpred.get('job_id')}")
    checks.append(Check("manifest link", True, manifest_digest))

    # 5. counts and metadata hash to the result's subject
    result = record.get("result") or {}
    counts = result.get("counts") if isinstance(result, Mapping) else None
    metadata = result.get("metadata") if isinstance(result, Mapping) else None
    if not isinstance(counts, list) or len(counts) != len(expected):
        raise fail("counts", "the job record does not carry counts for every circuit sent")
    try:
        digest = m.result_digest(counts, metadata if metadata is not None else {})
    except Exception as exc:
        raise fail("result hash", f"cannot hash the result: {_reason(exc)}") from None
    if _subjects(result_statement).get(f"result:{job_id}") != digest:
        raise fail(
            "result hash",
            "the counts do not match the signed result (changed after signing)",
        )
    checks.append(Check("result hash", True, digest))
    return Verification(
        checks=tuple(checks),
        signer=signer,
        result_signer=result_signer,
        hash_sources=tuple(hash_sources),
        manifest_digest=manifest_digest,
        result_digest=digest,
        statement=statement,
        result_statement=result_statement,
    )


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message).splitlines()[0][:300]


# ---------------------------------------------------------------------------- result


@dataclass
class QSubmitResult:
    """A verified job result: counts with their provenance.

    ``counts`` is one ``{bitstring: count}`` dict when one circuit was sent, a list of
    them otherwise (``counts_list`` is always the list)."""

    job_id: str
    counts_list: list[dict[str, int]]
    manifest_digest: str
    result_digest: str
    circuit_hashes: list[str]
    transpiled_hashes: list[str]
    verification: Verification
    identity: Any = None
    decision: Any = None
    backend: str = "aer_simulator"
    shots: int | None = None
    seed: int | None = None
    method: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    single: bool = True
    labels: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def counts(self) -> dict[str, int] | list[dict[str, int]]:
        return (
            self.counts_list[0] if self.single and len(self.counts_list) == 1 else self.counts_list
        )

    @property
    def verified(self) -> bool:
        return self.verification.verified

    def get_counts(self, index: int | None = None) -> dict[str, int] | list[dict[str, int]]:
        """Like Qiskit's ``Result.get_counts``: one circuit's counts, or all."""
        return self.counts if index is None else self.counts_list[index]

    # -- text --------------------------------------------------------------------------

    def provenance(self) -> str:
        """One line: job, backend, shots, seed, manifest digest, signer, verification."""
        parts = [f"job {_short(self.job_id)}", self.backend or "?"]
        if self.method:
            parts.append(f"method {self.method}")
        if self.shots is not None:
            parts.append(f"{self.shots} shots")
        parts.append(f"seed {self.seed}" if self.seed is not None else "no seed")
        if len(self.counts_list) > 1:
            parts.append(f"{len(self.counts_list)} circuits")
        parts.append(
            f"manifest sha256 {_short(self.manifest_digest)} signed by {self.verification.signer}"
        )
        parts.append(self.verification.summary())
        return " · ".join(parts)

    def _who(self) -> str:
        ident = self.identity
        if isinstance(ident, Mapping):
            return str(ident.get("user") or ident.get("entity") or ident.get("name") or "")
        return str(ident) if ident else ""

    def _decision_id(self) -> str:
        d = self.decision
        if isinstance(d, Mapping):
            return str(d.get("decision_id") or d.get("id") or "")
        return ""

    def __repr__(self) -> str:
        lines = [self.provenance()]
        for i, counts in enumerate(self.counts_list):
            label = self._label(i)
            lines.append(f"{label}: {_counts_text(counts)}")
        return "\n".join(lines)

    def _label(self, i: int) -> str:
        label = self.labels[i] if i < len(self.labels) and self.labels[i] else f"circuit {i}"
        return label

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text("QSubmitResult(...)" if cycle else repr(self))

    # -- HTML --------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        esc = html.escape
        blocks = []
        for i, counts in enumerate(self.counts_list):
            title = self._label(i)
            chash = self.circuit_hashes[i] if i < len(self.circuit_hashes) else ""
            source = (
                self.verification.hash_sources[i] if i < len(self.verification.hash_sources) else ""
            )
            caption = f"{title} · circuit sha256 {_short(chash, 12)}"
            if source == "broker":
                caption += " (computed by the broker)"
            blocks.append(
                f'<div class="qsecure-histogram" style="margin:4px 0">'
                f'<div style="font-size:90%;color:#555">{esc(caption)}</div>'
                f"{counts_svg(counts)}</div>"
            )
        ok = self.verification.verified
        color = "#1a7f37" if ok else "#cf222e"
        who = self._who()
        details = [f"job id {self.job_id}", f"manifest sha256 {self.manifest_digest}"]
        details.append(f"result sha256 {self.result_digest}")
        if who:
            details.append(f"identity {who}")
        if self._decision_id():
            details.append(f"decision {self._decision_id()}")
        details.append(f"result signed by {self.verification.result_signer}")
        checks = "; ".join(f"{c.name} {'✓' if c.ok else '✗'}" for c in self.verification.checks)
        return (
            '<div class="qsecure-result">'
            + "".join(blocks)
            + f'<div class="qsecure-provenance" style="font-family:monospace;font-size:85%;'
            f'color:{color}">{esc(self.provenance())}</div>'
            + '<details style="font-size:85%"><summary>provenance details</summary>'
            + "<br>".join(esc(d) for d in details)
            + f"<br>{esc(checks)}</details></div>"
        )


def _counts_text(counts: Mapping[str, int], limit: int = 16) -> str:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{k!r}: {v}" for k, v in items[:limit])
    more = f", … {len(items) - limit} more" if len(items) > limit else ""
    return "{" + shown + more + "}"


def counts_svg(counts: Mapping[str, int], *, max_bars: int = 32) -> str:
    """An inline SVG bar chart of ``counts`` (the ``max_bars`` most frequent outcomes,
    in bitstring order)."""
    esc = html.escape
    total = sum(counts.values()) or 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_bars]
    items = sorted(top, key=lambda kv: kv[0])
    if not items:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="20"><text x="4" y="14" font-size="11">no counts</text></svg>'
    longest = max(len(k) for k, _ in items)
    # labels are rotated by 60 degrees: room for the longest below the bars
    bar_w, gap, height, top_pad = 28, 6, 120, 14
    label_h = min(16 + round(longest * 6 * 0.87), 240)
    width = len(items) * (bar_w + gap) + gap
    peak = max(v for _, v in items) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
        f'height="{height + label_h + top_pad}" font-family="sans-serif" font-size="10">',
        f"<title>{esc(f'counts of {len(counts)} outcomes, {total} shots')}</title>",
    ]
    for i, (key, value) in enumerate(items):
        x = gap + i * (bar_w + gap)
        h = max(1, round(height * value / peak))
        y = top_pad + height - h
        parts.append(
            f'<rect class="bar" x="{x}" y="{y}" width="{bar_w}" height="{h}" fill="#6929c4">'
            f"<title>{esc(f'{key}: {value} ({value / total:.1%})')}</title></rect>"
        )
        parts.append(f'<text x="{x + bar_w / 2}" y="{y - 2}" text-anchor="middle">{value}</text>')
        ly = top_pad + height + 6
        parts.append(
            f'<text x="{x + bar_w / 2}" y="{ly}" text-anchor="end" '
            f'transform="rotate(-60 {x + bar_w / 2} {ly})">{esc(key)}</text>'
        )
    parts.append("</svg>")
    more = len(counts) - len(items)
    note = (
        f'<div style="font-size:80%;color:#555">{more} less frequent outcomes not shown</div>'
        if more > 0
        else ""
    )
    return "".join(parts) + note


def result_from_record(
    record: Mapping[str, Any],
    keyring: Any,
    expected: Sequence[Expected],
    *,
    request: Mapping[str, Any] | None = None,
    single: bool = True,
) -> QSubmitResult:
    """Check the record's status, verify it, and build the :class:`QSubmitResult`
    (provenance taken from the *signed* manifest, not from the unsigned record).

    Raises :class:`JobFailed`, :class:`JobCancelled`, :class:`JobDenied`, or
    :class:`ResultVerificationFailed` (counts withheld)."""
    job_id = str(record.get("job_id") or "?")
    raise_for_status(record)
    if record.get("status") != JobStatus.COMPLETED:
        raise BrokerError(f"job {job_id} is {record.get('status')}, not completed")
    verification = verify_record(record, keyring, expected, request)
    predicate = verification.statement["predicate"]
    options = predicate.get("options") or {}
    subjects = _subjects(verification.statement)
    n = len(expected)
    result = record["result"]
    metadata = result.get("metadata") or {}
    return QSubmitResult(
        job_id=job_id,
        counts_list=[dict(c) for c in result["counts"]],
        manifest_digest=verification.manifest_digest,
        result_digest=verification.result_digest,
        circuit_hashes=[subjects[f"circuit:{i}"] for i in range(n)],
        transpiled_hashes=[subjects.get(f"transpiled:{i}", "") for i in range(n)],
        verification=verification,
        identity=predicate.get("identity"),
        decision=predicate.get("decision"),
        backend=str(predicate.get("backend") or "?"),
        shots=options.get("shots"),
        seed=options.get("seed") if options.get("seed") is not None else metadata.get("seed"),
        method=options.get("method"),
        metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
        single=single,
        labels=[e.label for e in expected],
        record=dict(record),
    )


def raise_for_status(record: Mapping[str, Any]) -> None:
    """Raise the error a failed, cancelled or denied ``JobRecord`` stands for."""
    job_id = str(record.get("job_id") or "?")
    status = record.get("status")
    if status == JobStatus.FAILED:
        raise JobFailed(
            f"job {job_id} failed: {record.get('error') or 'no reason given'}",
            hint="fix the circuit or options and submit again; the failure is in the ledger",
        )
    if status == JobStatus.CANCELLED:
        raise JobCancelled(f"job {job_id} was cancelled before it finished")
    if status == JobStatus.DENIED:
        d = record.get("decision") or {}
        d = d if isinstance(d, Mapping) else {}
        raise JobDenied(
            d.get("rule"),
            str(d.get("message") or record.get("error") or "denied by policy"),
            d.get("decision_id"),
            d.get("limit"),
            job_id=str(record["job_id"]) if record.get("job_id") else None,
        )


# ---------------------------------------------------------------------------- handle


class JobHandle:
    """A job submitted without waiting (``%qsubmit --no-wait``), or looked up by id.

    ``connect`` returns a :class:`BrokerClient` each time the handle talks to the
    broker (so the handle never keeps a token); ``keyring`` returns the broker's
    public keys (cached by the caller). ``expected`` describes what was sent, for
    verification; a handle for a job submitted elsewhere verifies against the
    broker's hashes only."""

    def __init__(
        self,
        job_id: str,
        connect: Callable[[], BrokerClient],
        keyring: Callable[[BrokerClient, bool], Any],
        expected: Sequence[Expected] | None = None,
        *,
        request: Mapping[str, Any] | None = None,
        single: bool = True,
        last_status: str | None = None,
    ) -> None:
        self.job_id = job_id
        self._connect = connect
        self._keyring = keyring
        self._expected = list(expected) if expected is not None else None
        self._request = dict(request or {})
        self._single = single
        self.last_status = last_status
        self.last_error: str | None = None
        self._result: QSubmitResult | None = None

    def __repr__(self) -> str:
        status = self.last_status or "unknown"
        if self.last_error:
            status += f" ({self.last_error})"
        return f"<JobHandle job {self.job_id} · {status} · .status() .result(timeout) .cancel()>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def status(self) -> str:
        """The job's current status (queued, running, completed, …)."""
        record = self._connect().status(self.job_id)
        self.last_status = str(record.get("status"))
        return self.last_status

    def cancel(self) -> str:
        """Ask the broker to cancel the job; returns its status afterwards."""
        record = self._connect().cancel(self.job_id)
        self.last_status = str(record.get("status"))
        return self.last_status

    def done(self) -> bool:
        return self.status() in TERMINAL_STATUSES

    def result(self, timeout: float | None = None) -> QSubmitResult:
        """Wait up to ``timeout`` seconds for the job, verify it and return the result."""
        if self._result is not None:
            return self._result
        client = self._connect()
        record = client.wait(self.job_id, timeout)
        self.last_status = str(record.get("status"))
        self._result = finish(
            record, client, self._keyring, self._expected, self._request, self._single
        )
        return self._result


def expected_from_record(record: Mapping[str, Any]) -> list[Expected]:
    """For a job this session did not submit: trust the broker's circuit hashes (still
    checked against the signed manifest)."""
    return [
        Expected("unknown", None, f"circuit {i}")
        for i, _ in enumerate(record.get("circuit_hashes") or [])
    ]


def finish(
    record: Mapping[str, Any],
    client: BrokerClient,
    keyring: Callable[[BrokerClient, bool], Any],
    expected: Sequence[Expected] | None,
    request: Mapping[str, Any] | None = None,
    single: bool = True,
) -> QSubmitResult:
    """Verify a finished record with the broker's keys (fetched again once if a
    signature names a key not seen yet, e.g. after a key rotation)."""
    raise_for_status(record)
    exp = list(expected) if expected is not None else expected_from_record(record)
    try:
        return result_from_record(
            record, keyring(client, False), exp, request=request, single=single
        )
    except ResultVerificationFailed as exc:
        # a key we have not fetched yet (rotation): fetch the keys once more, then decide
        if not {"manifest signature", "result signature"} & set(exc.failed_checks):
            raise
    return result_from_record(record, keyring(client, True), exp, request=request, single=single)
