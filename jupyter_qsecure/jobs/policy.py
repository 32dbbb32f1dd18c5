"""Policy as code for ``%qsubmit``: a versioned TOML file per environment, and the engine.

The policy file has a top-level ``version`` (string) and one section per environment
(``[dev]``, ``[test]``, ``[prod]``); ``default_policy.toml`` next to this module is the
shipped default and documents every key. :meth:`Policy.load` validates the *whole* file
(so a broken ``[prod]`` section fails in ``dev`` too) and keeps the section of one
environment; ``policy.sha256`` is the SHA-256 of the file's bytes and is recorded with
``policy.version`` in every :class:`Decision`.

:meth:`PolicyEngine.decide` checks a :class:`JobRequest` for an :class:`Identity` and
reports the FIRST violated rule, in this fixed order (``rule`` is the name in brackets,
which is the policy key where there is one):

1. the identity's environment is the policy's (``environment``)
2. the backend is allowed (``allowed_backends``)
3. the simulation method is allowed, no method meaning ``automatic`` (``allowed_methods``)
4. the noise model is allowed; no noise is always allowed (``allowed_noise``)
5. shots per circuit within bounds (``min_shots``, ``max_shots``)
6. at least one circuit (``min_circuits``), at most ``max_circuits_per_job``
7. for each circuit in order: no unbound parameters (``unbound_parameters``)
8. for each circuit in order: ``max_qubits``
9. for each circuit in order: ``max_depth``
10. for each circuit in order: every gate allowed (``allowed_gates``); ``measure`` and
    ``barrier`` are always allowed (they are not gates)
11. jobs in the last 60 s for this user (``jobs_per_minute``)
12. shots (shots x circuits) since 00:00 UTC for this user (``shots_per_day``)
13. heavy-run thresholds (``heavy_run``): not a denial, the job is allowed but
    ``needs_approval`` until ``jupyter qsecure jobs approve JOB_ID`` is recorded: a
    statement signed by an approver, who must not be the submitter unless the section
    sets ``allow_self_approval = true`` (allowed in ``[dev]`` only; see
    :mod:`jupyter_qsecure.jobs.approval`).

Steps 11 and 12 and the recording of the job's usage happen under one lock in
:class:`UsageTracker`, so concurrent submissions cannot overshoot a limit. Only allowed
jobs (including those waiting for approval) consume rate limit and quota.

Each section may also have a ``[ENV.review]`` table for notebook review and promotion
(:mod:`jupyter_qsecure.promote.review`): ``approvals_required`` (distinct approvers of
the notebook's current digest) and ``allow_self_approval`` (may the notebook's last
editor be one of them; ``[dev]`` only). Missing keys take the environment's default,
:data:`DEFAULT_REVIEW`: one approval and self-approval allowed in dev (a single
researcher can promote), two approvers other than the last editor in test and prod.

Deliberately not supported: per-user or per-group overrides inside the file (run a
separate environment instead), and inheritance between sections (each section states
every limit, so a reviewer reads one section to know what applies).
"""

from __future__ import annotations

import hashlib
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import QSecureError
from .usage import UsageTracker, UsageViolation

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the tomli backport
    import tomli as tomllib

__all__ = [
    "AER_METHODS",
    "ALWAYS_ALLOWED_OPERATIONS",
    "DEFAULT_POLICY_PATH",
    "ENVIRONMENTS",
    "SUPPORTED_BACKENDS",
    "CircuitSummary",
    "DEFAULT_REVIEW",
    "Decision",
    "EnvironmentPolicy",
    "HeavyRunThresholds",
    "Identity",
    "JobRequest",
    "Policy",
    "PolicyEngine",
    "PolicyError",
    "ReviewPolicy",
    "ReviewRules",
    "UsageTracker",
]

#: The shipped default policy (a package data file, included in the wheel).
DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.toml")

ENVIRONMENTS: tuple[str, ...] = ("dev", "test", "prod")
SUPPORTED_BACKENDS: tuple[str, ...] = ("aer_simulator",)
#: Simulation methods of ``AerSimulator`` (qiskit-aer); a policy can allow a subset.
AER_METHODS: tuple[str, ...] = (
    "automatic",
    "statevector",
    "density_matrix",
    "stabilizer",
    "extended_stabilizer",
    "matrix_product_state",
    "unitary",
    "superop",
    "tensor_network",
)
#: Operations that are not gates and are never refused by ``allowed_gates``.
ALWAYS_ALLOWED_OPERATIONS: frozenset[str] = frozenset({"measure", "barrier"})

APPROVE_COMMAND = "jupyter qsecure jobs approve JOB_ID"
#: Integers outside this range are not exact in JSON (RFC 8785); the ledger gets a string.
_JSON_SAFE_INT = 2**53 - 1


class PolicyError(QSecureError):
    """The policy file is missing, unreadable or invalid. Names the file and the key."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = path
        self.key = key
        super().__init__(message, hint=hint)


# --------------------------------------------------------------------------- the file


class HeavyRunThresholds(BaseModel):
    """Optional thresholds; a job that reaches any of them needs an approval to run."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    qubits: int | None = Field(default=None, ge=1, description="Qubits in any one circuit.")
    depth: int | None = Field(default=None, ge=1, description="Depth of any one circuit.")
    total_shots: int | None = Field(default=None, ge=1, description="shots x circuits.")


class ReviewRules(BaseModel):
    """``[ENV.review]``: what approvals a notebook needs before it is promoted.

    A key left out takes the environment's default (:data:`DEFAULT_REVIEW`).
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    approvals_required: int | None = Field(
        default=None, ge=1, le=20, description="Distinct approvers of the current digest."
    )
    allow_self_approval: bool | None = Field(
        default=None, description="May the notebook's last editor approve it? [dev] only."
    )


@dataclass(frozen=True)
class ReviewPolicy:
    """The review rules in force for one environment (defaults filled in)."""

    environment: str
    approvals_required: int
    allow_self_approval: bool

    def describe(self) -> str:
        who = (
            "any approvers" if self.allow_self_approval else "approvers other than the last editor"
        )
        return f"{self.approvals_required} approval(s) by {who} ({self.environment} policy)"


#: Review rules of an environment whose policy section has no ``[ENV.review]`` keys.
DEFAULT_REVIEW: dict[str, ReviewPolicy] = {
    "dev": ReviewPolicy("dev", approvals_required=1, allow_self_approval=True),
    "test": ReviewPolicy("test", approvals_required=2, allow_self_approval=False),
    "prod": ReviewPolicy("prod", approvals_required=2, allow_self_approval=False),
}


def _check_names(value: Any, what: str, *, star: bool) -> Any:
    """Shape check for allow-lists, giving one clear message instead of union noise."""
    if star and value == "*":
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        choices = f'a list of {what} names or "*"' if star else f"a list of {what} names"
        raise ValueError(f"must be {choices}, got {value!r}")
    return value


class EnvironmentPolicy(BaseModel):
    """The limits of one environment (one section of the policy file)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    description: str | None = None
    max_qubits: int = Field(ge=1)
    max_depth: int = Field(ge=1)
    max_circuits_per_job: int = Field(ge=1)
    min_shots: int = Field(default=1, ge=1)
    max_shots: int = Field(ge=1)
    allowed_gates: list[str] | Literal["*"]
    allowed_backends: list[str] = Field(min_length=1)
    allowed_methods: list[str] = Field(min_length=1)
    allowed_noise: list[str] | Literal["*"] = Field(default_factory=list)
    jobs_per_minute: int = Field(ge=1)
    shots_per_day: int = Field(ge=1)
    heavy_run: HeavyRunThresholds = Field(default_factory=HeavyRunThresholds)
    #: May the submitter approve their own heavy run? Only ``[dev]`` may say yes.
    allow_self_approval: bool = False
    #: Notebook review before promotion (``[ENV.review]``); defaults per environment.
    review: ReviewRules = Field(default_factory=ReviewRules)

    @field_validator("allowed_gates", mode="before")
    @classmethod
    def _gates_shape(cls, value: Any) -> Any:
        return _check_names(value, "gate", star=True)

    @field_validator("allowed_noise", mode="before")
    @classmethod
    def _noise_shape(cls, value: Any) -> Any:
        return _check_names(value, "noise model", star=True)

    @field_validator("allowed_backends", mode="before")
    @classmethod
    def _backends_known(cls, value: Any) -> Any:
        _check_names(value, "backend", star=False)
        unknown = [v for v in value if v not in SUPPORTED_BACKENDS]
        if unknown:
            raise ValueError(
                f"unsupported backend {unknown[0]!r} (supported: {', '.join(SUPPORTED_BACKENDS)})"
            )
        return value

    @field_validator("allowed_methods", mode="before")
    @classmethod
    def _methods_known(cls, value: Any) -> Any:
        _check_names(value, "simulation method", star=False)
        unknown = [v for v in value if v not in AER_METHODS]
        if unknown:
            raise ValueError(
                f"unknown Aer simulation method {unknown[0]!r} (known: {', '.join(AER_METHODS)})"
            )
        return value

    @model_validator(mode="after")
    def _shots_range(self) -> EnvironmentPolicy:
        if self.min_shots > self.max_shots:
            raise ValueError(
                f"min_shots ({self.min_shots}) is greater than max_shots ({self.max_shots})"
            )
        return self


class PolicyFile(BaseModel):
    """The whole file: ``version`` and one optional section per environment."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    description: str | None = None
    dev: EnvironmentPolicy | None = None
    test: EnvironmentPolicy | None = None
    prod: EnvironmentPolicy | None = None

    def sections(self) -> dict[str, EnvironmentPolicy]:
        return {
            name: section for name in ENVIRONMENTS if (section := getattr(self, name)) is not None
        }


def _render_key(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if not parts:
        return "(file)"
    if parts[0] in ENVIRONMENTS and len(parts) > 1:
        return f"[{parts[0]}] {'.'.join(parts[1:])}"
    if parts[0] in ENVIRONMENTS:
        return f"[{parts[0]}]"
    return ".".join(parts)


def _render_problem(err: Mapping[str, Any]) -> str:
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        if len(loc) == 1:
            return (
                f"unknown key {loc[0]!r} (top-level keys: version, description; "
                f"environments: {', '.join(ENVIRONMENTS)})"
            )
        model: type[BaseModel] = (
            EnvironmentPolicy
            if len(loc) == 2
            else ReviewRules
            if loc[1] == "review"
            else HeavyRunThresholds
        )
        return f"unknown key (known keys: {', '.join(model.model_fields)})"
    if kind == "missing":
        return "required key is missing"
    message = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    if "input" in err and not isinstance(err["input"], dict):
        message += f" (got {err['input']!r})"
    return message


@dataclass(frozen=True)
class Policy:
    """One environment's section of a validated policy file, with the file's identity."""

    environment: str
    version: str
    sha256: str
    source: str
    rules: EnvironmentPolicy
    description: str | None = None

    @property
    def review(self) -> ReviewPolicy:
        """The ``[ENV.review]`` rules, with the environment's defaults for missing keys."""
        default = DEFAULT_REVIEW[self.environment]
        rules = self.rules.review
        return ReviewPolicy(
            self.environment,
            approvals_required=(
                default.approvals_required
                if rules.approvals_required is None
                else rules.approvals_required
            ),
            allow_self_approval=(
                default.allow_self_approval
                if rules.allow_self_approval is None
                else rules.allow_self_approval
            ),
        )

    @classmethod
    def load(cls, path: Path | str | None, environment: str) -> Policy:
        """Read and validate ``path`` (``None``: the shipped default) for ``environment``."""
        file = DEFAULT_POLICY_PATH if path is None else Path(path)
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise PolicyError(
                f"cannot read policy file {file}: {exc.strerror or exc}",
                path=str(file),
                hint="check the path in the policy_file setting (QSecure.policy_file); "
                "leave it unset to use the shipped default policy",
            ) from None
        return cls.from_bytes(data, environment, source=str(file))

    @classmethod
    def from_bytes(cls, data: bytes, environment: str, *, source: str = "<memory>") -> Policy:
        """Validate policy file contents; ``source`` names the file in error messages."""
        if environment not in ENVIRONMENTS:
            raise PolicyError(
                f"unknown environment {environment!r} for policy file {source}",
                path=source,
                hint=f"set the environment setting to one of: {', '.join(ENVIRONMENTS)}",
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(
                f"policy file {source} is not UTF-8 text (byte {exc.start})", path=source
            ) from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(
                f"policy file {source} is not valid TOML: {exc}",
                path=source,
                hint="see the shipped default_policy.toml for the format",
            ) from None
        try:
            parsed = PolicyFile.model_validate(raw)
        except ValidationError as exc:
            errors = exc.errors()
            problems = "; ".join(
                f"{_render_key(tuple(err['loc']))}: {_render_problem(err)}" for err in errors
            )
            raise PolicyError(
                f"invalid policy file {source}: {problems}",
                path=source,
                key=_render_key(tuple(errors[0]["loc"])),
                hint="fix the named key; the shipped default_policy.toml documents every key",
            ) from None
        sections = parsed.sections()
        for name, section in sections.items():
            if name != "dev" and section.allow_self_approval:
                raise PolicyError(
                    f"invalid policy file {source}: [{name}] allow_self_approval: self-approval "
                    "of heavy runs may be allowed in [dev] only",
                    path=source,
                    key=f"[{name}] allow_self_approval",
                    hint="remove the key (default false): in test and prod an approver must be "
                    "someone other than the submitter",
                )
            if name != "dev" and section.review.allow_self_approval:
                raise PolicyError(
                    f"invalid policy file {source}: [{name}.review] allow_self_approval: the "
                    "last editor of a notebook may approve it in [dev] only",
                    path=source,
                    key=f"[{name}.review] allow_self_approval",
                    hint="remove the key (default false): in test and prod a notebook's "
                    "approvers must be people other than its last editor",
                )
        if environment not in sections:
            present = ", ".join(f"[{name}]" for name in sections) or "none"
            raise PolicyError(
                f"policy file {source} has no [{environment}] section (sections: {present})",
                path=source,
                key=f"[{environment}]",
                hint=f"add a [{environment}] section, or change the environment setting",
            )
        return cls(
            environment=environment,
            version=parsed.version,
            sha256=hashlib.sha256(data).hexdigest(),
            source=source,
            rules=sections[environment],
            description=parsed.description,
        )


# --------------------------------------------------------------------------- requests


class CircuitSummary(BaseModel):
    """What the policy needs to know of one circuit (``canonical.circuit_summary``).

    Extra keys (a hash, a name, ...) are kept but not used by the policy.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    num_qubits: int = Field(ge=0)
    depth: int = Field(ge=0)
    size: int = Field(ge=0)
    count_ops: dict[str, int] = Field(default_factory=dict)
    num_parameters: int = Field(default=0, ge=0)
    parameters: list[str] = Field(default_factory=list)


class JobRequest(BaseModel):
    """A submission as the policy sees it. Shots are not bounded here: the policy is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shots: int = Field(strict=True)
    seed: int | None = Field(default=None, strict=True)
    backend: str = "aer_simulator"
    method: str | None = None
    noise: str | None = None
    tags: list[str] = Field(default_factory=list)
    circuits: list[CircuitSummary]


class Identity(BaseModel):
    """Who submits, as established by the broker from the kernel's token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: str = Field(min_length=1)
    kernel_id: str | None = None
    accessor: str | None = None
    environment: str

    @property
    def usage_key(self) -> str:
        """Rate limits and quotas are per user and environment, not per kernel."""
        return f"{self.environment}:{self.user}"


# --------------------------------------------------------------------------- decisions


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json_safe(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -_JSON_SAFE_INT <= value <= _JSON_SAFE_INT else str(value)
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (str, float)):
        return value
    return str(value)


class Decision(BaseModel):
    """The outcome of :meth:`PolicyEngine.decide`; recorded in the ledger as ``job.decided``."""

    model_config = ConfigDict(frozen=True)

    decision_id: str
    allowed: bool
    needs_approval: bool = False
    rule: str | None = None
    limit: Any = None
    actual: Any = None
    message: str
    policy_sha256: str
    policy_version: str
    environment: str
    evaluated_at: datetime
    identity_key: str
    shots_charged: int = 0

    @property
    def outcome(self) -> Literal["allowed", "pending_approval", "denied"]:
        if not self.allowed:
            return "denied"
        return "pending_approval" if self.needs_approval else "allowed"

    def approval_message(self, job_id: str) -> str:
        """The message with the job's id in the approval command."""
        return self.message.replace("JOB_ID", job_id)

    def to_ledger_body(self) -> dict[str, Any]:
        """JSON data for the ledger: no secrets, integers exact in JSON, UTC timestamp."""
        return {
            "decision_id": self.decision_id,
            "outcome": self.outcome,
            "allowed": self.allowed,
            "needs_approval": self.needs_approval,
            "rule": self.rule,
            "limit": _json_safe(self.limit),
            "actual": _json_safe(self.actual),
            "message": self.message,
            "policy_sha256": self.policy_sha256,
            "policy_version": self.policy_version,
            "environment": self.environment,
            "evaluated_at": _utc_text(self.evaluated_at),
            "identity_key": self.identity_key,
            "shots_charged": _json_safe(self.shots_charged),
        }

    def to_denial(self) -> dict[str, Any]:
        """The 403 response body of the REST API."""
        return {
            "error": "denied",
            "rule": self.rule,
            "limit": _json_safe(self.limit),
            "message": self.message,
            "decision_id": self.decision_id,
        }


# --------------------------------------------------------------------------- engine


def _names(values: Iterable[str]) -> str:
    listed = ", ".join(values)
    return listed or "none"


@dataclass(frozen=True)
class _Violation:
    rule: str
    limit: Any
    actual: Any
    message: str


class PolicyEngine:
    """Applies one environment's :class:`Policy`; see the module docstring for the order."""

    def __init__(
        self,
        policy: Policy,
        *,
        clock: Callable[[], float] = time.time,
        usage: UsageTracker | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.usage = usage if usage is not None else UsageTracker()

    def decide(self, request: JobRequest, identity: Identity) -> Decision:
        now = self.clock()
        total_shots = request.shots * len(request.circuits)
        violation = self._static_check(request, identity)
        heavy: _Violation | None = None
        if violation is None:
            heavy = self._heavy_run(request, total_shots)
            used = self.usage.check_and_record(
                identity.usage_key,
                total_shots,
                now,
                jobs_per_minute=self.policy.rules.jobs_per_minute,
                shots_per_day=self.policy.rules.shots_per_day,
            )
            if used is not None:
                violation = self._usage_violation(used)
        env = self.policy.environment
        common: dict[str, Any] = {
            "decision_id": uuid.uuid4().hex,
            "policy_sha256": self.policy.sha256,
            "policy_version": self.policy.version,
            "environment": env,
            "evaluated_at": datetime.fromtimestamp(now, tz=timezone.utc),
            "identity_key": identity.usage_key,
        }
        if violation is not None:
            return Decision(
                allowed=False,
                rule=violation.rule,
                limit=violation.limit,
                actual=violation.actual,
                message=violation.message,
                **common,
            )
        if heavy is not None:
            return Decision(
                allowed=True,
                needs_approval=True,
                rule=heavy.rule,
                limit=heavy.limit,
                actual=heavy.actual,
                message=heavy.message,
                shots_charged=total_shots,
                **common,
            )
        return Decision(
            allowed=True,
            message=f"allowed by {env} policy {self.policy.version}",
            shots_charged=total_shots,
            **common,
        )

    def refuse(
        self, identity: Identity, *, rule: str, limit: Any, actual: Any, message: str
    ) -> Decision:
        """A denial decided before the circuits were parsed, from the sizes they declare
        (``jupyter_qsecure.jobs.declared``); recorded like any other denial."""
        return Decision(
            decision_id=uuid.uuid4().hex,
            allowed=False,
            rule=rule,
            limit=limit,
            actual=actual,
            message=message,
            policy_sha256=self.policy.sha256,
            policy_version=self.policy.version,
            environment=self.policy.environment,
            evaluated_at=datetime.fromtimestamp(self.clock(), tz=timezone.utc),
            identity_key=identity.usage_key,
        )

    # ------------------------------------------------------------------ rules

    def _static_check(self, request: JobRequest, identity: Identity) -> _Violation | None:
        rules = self.policy.rules
        env = self.policy.environment

        if identity.environment != env:
            return _Violation(
                "environment",
                env,
                identity.environment,
                f"identity environment {identity.environment!r} does not match the "
                f"policy environment {env!r}",
            )
        if request.backend not in rules.allowed_backends:
            return _Violation(
                "allowed_backends",
                list(rules.allowed_backends),
                request.backend,
                f"backend {request.backend!r} is not allowed in {env} "
                f"(allowed: {_names(rules.allowed_backends)})",
            )
        method = request.method or "automatic"
        if method not in rules.allowed_methods:
            return _Violation(
                "allowed_methods",
                list(rules.allowed_methods),
                method,
                f"method {method!r} is not allowed in {env} "
                f"(allowed: {_names(rules.allowed_methods)})",
            )
        if request.noise is not None and not (
            rules.allowed_noise == "*" or request.noise in rules.allowed_noise
        ):
            return _Violation(
                "allowed_noise",
                list(rules.allowed_noise),
                request.noise,
                f"noise model {request.noise!r} is not allowed in {env} "
                f"(allowed: {_names(rules.allowed_noise)})",
            )
        if not rules.min_shots <= request.shots <= rules.max_shots:
            below = request.shots < rules.min_shots
            return _Violation(
                "min_shots" if below else "max_shots",
                rules.min_shots if below else rules.max_shots,
                request.shots,
                f"shots {request.shots} must be between {rules.min_shots} and {rules.max_shots}",
            )
        count = len(request.circuits)
        if count == 0:
            return _Violation(
                "min_circuits", 1, 0, "a job needs at least one circuit; none was submitted"
            )
        if count > rules.max_circuits_per_job:
            return _Violation(
                "max_circuits_per_job",
                rules.max_circuits_per_job,
                count,
                f"{count} circuits exceeds {env} limit {rules.max_circuits_per_job} "
                "circuits per job",
            )

        def where(index: int) -> str:
            return f" (circuit {index})" if count > 1 else ""

        for index, circuit in enumerate(request.circuits):
            unbound = max(circuit.num_parameters, len(circuit.parameters))
            if unbound:
                names = f" ({', '.join(circuit.parameters)})" if circuit.parameters else ""
                plural = "parameter" if unbound == 1 else "parameters"
                return _Violation(
                    "unbound_parameters",
                    0,
                    unbound,
                    f"circuit {index} has {unbound} unbound {plural}{names}; bind them with --bind",
                )
        for index, circuit in enumerate(request.circuits):
            if circuit.num_qubits > rules.max_qubits:
                return _Violation(
                    "max_qubits",
                    rules.max_qubits,
                    circuit.num_qubits,
                    f"qubits {circuit.num_qubits} exceeds {env} limit {rules.max_qubits}"
                    + where(index),
                )
        for index, circuit in enumerate(request.circuits):
            if circuit.depth > rules.max_depth:
                return _Violation(
                    "max_depth",
                    rules.max_depth,
                    circuit.depth,
                    f"depth {circuit.depth} exceeds {env} limit {rules.max_depth}" + where(index),
                )
        if rules.allowed_gates != "*":
            allowed = set(rules.allowed_gates) | ALWAYS_ALLOWED_OPERATIONS
            for index, circuit in enumerate(request.circuits):
                refused = sorted(
                    name for name, n in circuit.count_ops.items() if n and name not in allowed
                )
                if refused:
                    quoted = ", ".join(repr(name) for name in refused)
                    noun = "gate" if len(refused) == 1 else "gates"
                    verb = "is" if len(refused) == 1 else "are"
                    in_circuit = f" in circuit {index}" if count > 1 else ""
                    return _Violation(
                        "allowed_gates",
                        list(rules.allowed_gates),
                        refused[0],
                        f"{noun} {quoted}{in_circuit} {verb} not allowed in {env} "
                        f"(allowed: {_names(sorted(allowed))})",
                    )
        return None

    def _usage_violation(self, used: UsageViolation) -> _Violation:
        env = self.policy.environment
        if used.rule == "jobs_per_minute":
            message = (
                f"rate limit: {used.actual} jobs in the last minute exceeds {env} "
                f"limit {used.limit}"
            )
        else:
            message = f"quota: {used.actual:,} shots today would exceed {env} limit {used.limit:,}"
        return _Violation(used.rule, used.limit, used.actual, message)

    def _heavy_run(self, request: JobRequest, total_shots: int) -> _Violation | None:
        heavy = self.policy.rules.heavy_run
        env = self.policy.environment
        qubits = max(c.num_qubits for c in request.circuits)
        depth = max(c.depth for c in request.circuits)
        checks: list[tuple[str, int | None, int, str]] = [
            ("qubits", heavy.qubits, qubits, f"{qubits} qubits"),
            ("depth", heavy.depth, depth, f"depth {depth}"),
            (
                "total_shots",
                heavy.total_shots,
                total_shots,
                f"{total_shots:,} total shots (shots x circuits)",
            ),
        ]
        for name, threshold, actual, what in checks:
            if threshold is not None and actual >= threshold:
                return _Violation(
                    "heavy_run",
                    {name: threshold},
                    actual,
                    f"heavy run: {what} reaches the {env} approval threshold "
                    f"(heavy_run.{name} = {threshold:,}); the job waits for an approval: "
                    f"{APPROVE_COMMAND}",
                )
        return None
