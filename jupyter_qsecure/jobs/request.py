"""The body of ``POST /qsecure/api/jobs``, validated field by field before anything runs.

Every value a request carries ends up in the audit ledger (``job.submitted``) and in the
signed manifest, so a field is accepted only when both can hold it exactly:

- ``tags``: at most :data:`MAX_TAGS` strings of 1 to :data:`MAX_TAG_CHARS` printable
  characters (no control characters, no lone surrogates: they cannot be written as
  UTF-8);
- ``seed``: an integer from 0 to :data:`MAX_SEED` = 2**53 - 1. Aer takes seeds up to
  2**63 - 1, but RFC 8785 canonical JSON (the ledger, the manifest) represents integers
  exactly only up to 2**53 - 1, and a seed that does not round-trip cannot be replayed;
- ``shots``: an integer (the policy bounds it; 403 names the limit), within +/-(2**53-1);
- ``request_id``: 8 to 128 printable ASCII characters without spaces;
- ``backend``, ``method``, ``noise``: short printable ASCII names (the policy decides
  which are allowed); ``bind``: parameter names to finite numbers; ``wait``: a boolean;
- ``circuits``: 1 to :data:`MAX_CIRCUITS` objects ``{"format": "qpy"|"qasm2"|"qasm3",
  "data": str}``; the circuits themselves are read later, by the parser.

Types are strict: ``"10"`` is not a number of shots and ``1`` is not ``true``. Who
submits never comes from the body (``user``, ``environment`` are unknown fields): it
comes from the kernel token. :func:`parse_request` raises :class:`RequestError` with a
message naming every offending field (at most :data:`MAX_PROBLEMS`), never echoing a
value that could be long or hold a secret.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from ..errors import QSecureError

__all__ = [
    "MAX_CIRCUITS",
    "MAX_SEED",
    "MAX_TAGS",
    "MAX_TAG_CHARS",
    "REQUEST_FIELDS",
    "JobRequestBody",
    "RequestError",
    "parse_request",
]

#: The largest integer canonical JSON (RFC 8785) and so the ledger hold exactly.
JSON_SAFE_INT = 2**53 - 1
MAX_SEED = JSON_SAFE_INT
MAX_TAGS = 32
MAX_TAG_CHARS = 64
MAX_CIRCUITS = 1000
MAX_BINDINGS = 1000
MAX_NAME_CHARS = 64
MAX_PROBLEMS = 5
FORMATS = ("qpy", "qasm2", "qasm3")

#: The fields of a job request; anything else is refused, never half-read.
REQUEST_FIELDS = frozenset(
    {
        "circuits",
        "shots",
        "seed",
        "backend",
        "method",
        "noise",
        "tags",
        "bind",
        "wait",
        "request_id",
    }
)

_NAME = re.compile(r"^[\x21-\x7e]{1,64}$")  # printable ASCII, no spaces
_REQUEST_ID = re.compile(r"^[\x21-\x7e]{8,128}$")


class RequestError(QSecureError):
    """The body is not a valid job request; the message names the fields."""


def _printable_text(value: str) -> bool:
    """True for text that prints and encodes as UTF-8 (no control chars, no surrogates)."""
    return value.isprintable() and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)


class CircuitItem(BaseModel):
    """One submitted circuit, as sent; parsed later (and in a bounded worker)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["qpy", "qasm2", "qasm3"]
    data: StrictStr


class JobRequestBody(BaseModel):
    """A validated job request body (see the module docstring for every rule)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    circuits: list[CircuitItem] = Field(min_length=1, max_length=MAX_CIRCUITS)
    shots: StrictInt = Field(ge=-JSON_SAFE_INT, le=JSON_SAFE_INT)
    seed: StrictInt | None = Field(default=None, ge=0, le=MAX_SEED)
    backend: StrictStr = "aer_simulator"
    method: StrictStr | None = None
    noise: StrictStr | None = None
    tags: list[StrictStr] = Field(default_factory=list, max_length=MAX_TAGS)
    bind: dict[StrictStr, StrictInt | float] | None = Field(default=None, max_length=MAX_BINDINGS)
    wait: StrictBool = True
    request_id: StrictStr

    @field_validator("backend", "method", "noise")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError(
                f"must be a name of 1 to {MAX_NAME_CHARS} printable ASCII characters without spaces"
            )
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        for position, tag in enumerate(tags):
            if not 1 <= len(tag) <= MAX_TAG_CHARS or not _printable_text(tag):
                raise ValueError(
                    f"tags[{position}] must be 1 to {MAX_TAG_CHARS} printable characters "
                    "(no control characters, no lone surrogates)"
                )
        return tags

    @field_validator("bind", mode="before")
    @classmethod
    def _bind_shape(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError("must map parameter names to numbers")
        for name, number in value.items():
            if not isinstance(name, str) or not 1 <= len(name) <= 128 or not _printable_text(name):
                raise ValueError("parameter names must be 1 to 128 printable characters")
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                raise ValueError(f"the value of {name[:40]!r} must be a number")
            if isinstance(number, float) and not math.isfinite(number):
                raise ValueError(f"the value of {name[:40]!r} must be a finite number")
            if isinstance(number, int) and abs(number) > JSON_SAFE_INT:
                raise ValueError(f"the value of {name[:40]!r} is out of range")
        return value

    @field_validator("request_id")
    @classmethod
    def _request_id(cls, value: str) -> str:
        if not _REQUEST_ID.match(value):
            raise ValueError("must be 8 to 128 printable ASCII characters without spaces")
        return value


_MESSAGES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "literal_error": f"must be one of {', '.join(FORMATS)}",
}


def _where(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("int", "float", "str", "bool"):  # the branches of a union
            continue
        else:
            text += f".{part}" if text else str(part)
    return text or "body"


def _problem(error: Any) -> str:
    kind = error["type"]
    loc = tuple(error["loc"])
    where = _where(loc)
    if kind == "extra_forbidden" and len(loc) == 3 and loc[0] == "circuits":
        return f"circuits[{loc[1]}]: unknown key {str(loc[2])[:40]!r} (send format and data)"
    if kind in ("too_long", "too_short", "greater_than_equal", "less_than_equal"):
        context = error.get("ctx") or {}
        if where == "seed":
            return f"seed must be an integer from 0 to {MAX_SEED} (2**53 - 1), or null"
        if where == "shots":
            return f"shots must be an integer within +/-{JSON_SAFE_INT}"
        if where == "tags":
            return f"tags: at most {MAX_TAGS} tags"
        if where == "circuits":
            return f"circuits must be a list of 1 to {MAX_CIRCUITS} circuits"
        if where == "bind":
            return f"bind: at most {MAX_BINDINGS} parameters"
        return f"{where}: out of range ({', '.join(f'{k} {v}' for k, v in context.items())})"
    if kind == "value_error":
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        return message if message.startswith(f"{where}[") else f"{where}: {message}"
    message = _MESSAGES.get(kind, str(error.get("msg", "is invalid")))
    if where == "seed" and kind in ("int_type", "int_parsing"):
        message += " from 0 to 2**53 - 1, or null"
    return f"{where}: {message}"


def parse_request(body: Any) -> JobRequestBody:
    """Validate a decoded JSON body; raise :class:`RequestError` naming what is wrong."""
    if not isinstance(body, dict):
        raise RequestError(
            "the request body must be a JSON object",
            hint="send {circuits, shots, request_id, ...}; see the REST API in the README",
        )
    unknown = sorted(str(key) for key in body if key not in REQUEST_FIELDS)
    if unknown:  # e.g. a claimed "user" or "environment": refused, never half-read
        raise RequestError(
            f"unknown field{'s' if len(unknown) > 1 else ''} in the job request: "
            + ", ".join(repr(key[:40]) for key in unknown[:10]),
            hint="send only "
            + ", ".join(sorted(REQUEST_FIELDS))
            + "; who submits comes from the kernel token",
        )
    try:
        return JobRequestBody.model_validate(body)
    except ValidationError as exc:
        problems: list[str] = []
        for error in exc.errors(include_input=False, include_url=False):
            problem = _problem(error)
            if problem not in problems:
                problems.append(problem)
        more = len(problems) - MAX_PROBLEMS
        text = "; ".join(problems[:MAX_PROBLEMS]) + (f" (and {more} more)" if more > 0 else "")
        raise RequestError(
            f"invalid job request: {text}",
            hint='fix the named fields; types are strict ("10" is not a number)',
        ) from None
